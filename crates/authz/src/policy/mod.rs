//! The access-policy language at run time (the rules themselves are parsed by
//! `ferrostack-config`): the evaluator ([`is_allowed`], [`is_route_allowed`]), the compiler to
//! SQL predicates ([`compile`]) and the authorized store layer ([`AuthorizedTable`]).
//!
//! The evaluator is the definition; the compiler is exact with respect to it for every policy
//! (property-tested on PostgreSQL and SQLite). `docs/access-control.md` describes the language,
//! the SQL and the store contract.

mod access_values;
mod child;
mod compile;
mod eval;
mod list;
mod page;
mod regex_sql;
mod store;
mod upsert;

pub use access_values::{
    ATTRIBUTE_CATEGORY, ATTRIBUTE_VALUE, ROW_CREATED, ROW_KEY, access_values_table, sqlite_access_values_ddl,
};
pub use child::ChildTable;
pub use compile::{
    ACCESS_ATTRIBUTES, CompileError, OWNER_PRINCIPAL, Predicate, Target, WIDE_VALUE_LIST, compile,
    literal_prefix_regex, predicate,
};
pub use eval::{
    DEFAULT_CATEGORIES, Resource, SQL_RECORD, condition_holds, deciding_rule, default_policy, effective, is_allowed,
    is_route_allowed,
};
pub use page::ListPage;
pub use regex_sql::{SqlRegex, translate as translate_regex};
pub use store::{AuthorizedTable, Key, Order, Page, StoreError, attributes_from_json};
pub use upsert::Upsert;
