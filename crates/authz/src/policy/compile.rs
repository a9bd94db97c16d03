//! The policy compiled to a SQL predicate over a tenant table's owner columns, exact for every
//! policy: a row satisfies the predicate if and only if [`super::is_allowed`] allows the action on
//! it.
//!
//! Everything that depends only on the caller (action, scope principal, `user with V in C`, the
//! caller's own attribute lists) is decided here; what depends on the row becomes an atom:
//!
//! | condition / pattern | per-row atom |
//! |---|---|
//! | `user is owner` | `owner_principal = $principal` |
//! | `resource is unowned` | `owner_principal = ''` |
//! | `user in owners C` | `owner_principal <> ''` and the owner's `C` list holds one of the caller's `C` values (on PostgreSQL one JSONB `@>` per value, or for more than [`WIDE_VALUE_LIST`] values one JSON path `@?` test; on SQLite an `EXISTS` probe of the table's side table of attribute values, see [`super::access_values`]) |
//! | resource `exact` | `id = $id` |
//! | resource `type::*`, `regex:literal`, `regex:literal.*` | `left(id, n) = $prefix` / `substr(id, 1, n) = ?` |
//! | any other `regex:re` | `($type_prefix \|\| id) ~ $translated` / `regexp(?, ? \|\| id)` (see [`super::regex_sql`]) |
//!
//! First-applying-rule order becomes a boolean chain: a permit rule is `guard OR rest`, a forbid
//! rule `NOT guard AND rest` (with `NOT COALESCE(guard, FALSE)`, so a NULL never turns into a
//! wrong answer). An all-permit policy such as the default one is a plain OR of atoms, which the
//! owner and GIN indexes serve. Principals, keys and values are always bind parameters.

use ferrostack_catalog::{Dialect, Sql, Value};
use ferrostack_config::{AccessRule, Action, Condition, Conditions, Effect, ResourcePattern};

use super::access_values::{ATTRIBUTE_CATEGORY, ATTRIBUTE_VALUE, ROW_KEY, access_values_table};
use super::eval::{SQL_RECORD, effective};
use super::regex_sql::{SqlRegex, translate};
use crate::User;

/// Owner column: the owner's principal, `''` for an unowned row (never NULL).
pub const OWNER_PRINCIPAL: &str = "owner_principal";
/// Owner column: the owner's attributes (JSONB on PostgreSQL, JSON text on SQLite; JSON `null`
/// when the owner had none).
pub const ACCESS_ATTRIBUTES: &str = "access_attributes";

/// Why a policy cannot be compiled for a table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompileError {
    /// A `regex:` resource pattern that cannot be translated exactly for PostgreSQL.
    #[error(
        "the resource pattern regex:{pattern} cannot be applied to the rows of table {table} in SQL: it uses \
         {construct}, which PostgreSQL's regular expressions cannot match exactly as ferrostack does"
    )]
    UnsupportedRegex {
        /// The regex (after `regex:`).
        pattern: String,
        /// The table.
        table: String,
        /// What in it cannot be translated.
        construct: String,
    },
}

/// The alias of SQLite's side table of attribute values inside the per-row `EXISTS`.
const SIDE_ALIAS: &str = "access_value";

/// Above this many values of a category, `user in owners C` is one JSON path test (`@?`) on
/// PostgreSQL instead of one containment test (`@>`) per value.
pub const WIDE_VALUE_LIST: usize = 8;

/// Which table the predicate is for, and how to name its columns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target<'a> {
    /// The table (the `<table>` of `sql_record::<table>::<id>`).
    pub table: &'a str,
    /// The column holding the row's identifier.
    pub id_column: &'a str,
    /// A qualifier for the columns (a table alias), when the query needs one.
    pub qualifier: Option<&'a str>,
    /// The column SQLite's side table of attribute values refers to rows by (see
    /// [`super::access_values`]): the table's tiebreak column, unique (default: `id_column`).
    pub row_key: &'a str,
}

impl<'a> Target<'a> {
    /// `table` with ids in `id_column`, columns unqualified.
    pub fn new(table: &'a str, id_column: &'a str) -> Self {
        Self { table, id_column, qualifier: None, row_key: id_column }
    }

    /// The same, with SQLite's side table of attribute values keyed by `column`.
    pub fn with_row_key(mut self, column: &'a str) -> Self {
        self.row_key = column;
        self
    }

    /// The same, with columns qualified by `alias`.
    pub fn qualified(mut self, alias: &'a str) -> Self {
        self.qualifier = Some(alias);
        self
    }

    fn column(&self, name: &str) -> String {
        let column = ferrostack_catalog::sql::dialect::quote_ident(name);
        match self.qualifier {
            Some(q) => format!("{}.{column}", ferrostack_catalog::sql::dialect::quote_ident(q)),
            None => column,
        }
    }
}

/// A predicate over one row, before rendering; built with constant folding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Predicate {
    /// Every row.
    True,
    /// No row.
    False,
    /// `owner_principal = principal`.
    OwnerIs(String),
    /// `owner_principal = ''`.
    Unowned,
    /// The row is owned and its owner's `category` list holds one of `values` (non-empty).
    InOwners {
        /// The attribute category.
        category: String,
        /// The caller's values.
        values: Vec<String>,
    },
    /// `id = value`.
    IdEquals(String),
    /// `id` starts with the prefix (non-empty).
    IdStartsWith(String),
    /// The regex matches at the start of `type_prefix || id` (the qualified id).
    IdMatches {
        /// `sql_record::<table>::`.
        type_prefix: String,
        /// The regex for each dialect.
        regex: SqlRegex,
    },
    /// Negation (NULL counts as false underneath).
    Not(Box<Predicate>),
    /// Conjunction (at least two operands).
    And(Vec<Predicate>),
    /// Disjunction (at least two operands).
    Or(Vec<Predicate>),
}

impl Predicate {
    fn not(self) -> Predicate {
        match self {
            Predicate::True => Predicate::False,
            Predicate::False => Predicate::True,
            Predicate::Not(inner) => *inner,
            other => Predicate::Not(Box::new(other)),
        }
    }

    pub(super) fn and(items: impl IntoIterator<Item = Predicate>) -> Predicate {
        let mut out = Vec::new();
        for item in items {
            match item {
                Predicate::True => {}
                Predicate::False => return Predicate::False,
                Predicate::And(inner) => out.extend(inner),
                other => {
                    if !out.contains(&other) {
                        out.push(other);
                    }
                }
            }
        }
        match out.len() {
            0 => Predicate::True,
            1 => out.pop().unwrap_or(Predicate::True),
            _ => Predicate::And(out),
        }
    }

    pub(super) fn or(items: impl IntoIterator<Item = Predicate>) -> Predicate {
        let mut out = Vec::new();
        for item in items {
            match item {
                Predicate::False => {}
                Predicate::True => return Predicate::True,
                Predicate::Or(inner) => out.extend(inner),
                other => {
                    if !out.contains(&other) {
                        out.push(other);
                    }
                }
            }
        }
        match out.len() {
            0 => Predicate::False,
            1 => out.pop().unwrap_or(Predicate::False),
            _ => Predicate::Or(out),
        }
    }
}

/// The predicate for `user` doing `action` on rows of `target.table` under `policy` (the default
/// policy when empty), as a tree. No user (authentication off) is [`Predicate::True`].
pub fn predicate(
    policy: &[AccessRule],
    action: Action,
    table: &str,
    user: Option<&User>,
) -> Result<Predicate, CompileError> {
    let Some(user) = user else { return Ok(Predicate::True) };
    let rules = effective(policy);
    let type_prefix = format!("{SQL_RECORD}::{table}::");
    // Fold from the last rule: no applying rule means deny.
    let mut rest = Predicate::False;
    for rule in rules.iter().rev() {
        let scope = &rule.scope;
        if !scope.actions.contains(&action) || scope.principal.as_ref().is_some_and(|p| *p != user.principal) {
            continue;
        }
        let resource = match &scope.resource {
            None => Predicate::True,
            Some(pattern) => resource_predicate(pattern, &type_prefix, table)?,
        };
        let conditions = match &rule.conditions {
            Conditions::Always => Predicate::True,
            Conditions::When(cs) => Predicate::and(cs.iter().map(|c| condition(c, user))),
            Conditions::Unless(cs) => Predicate::and(cs.iter().map(|c| condition(c, user))).not(),
        };
        let guard = Predicate::and([resource, conditions]);
        rest = match rule.effect {
            Effect::Permit => Predicate::or([guard, rest]),
            Effect::Forbid => Predicate::and([guard.not(), rest]),
        };
    }
    Ok(rest)
}

/// The predicate for `user` doing `action` on rows of `target` under `policy`, as SQL for
/// `dialect`: AND it onto the statement's own conditions. Values are bound, never spliced.
pub fn compile(
    policy: &[AccessRule],
    action: Action,
    target: &Target<'_>,
    user: Option<&User>,
    dialect: Dialect,
) -> Result<Sql, CompileError> {
    let tree = predicate(policy, action, target.table, user)?;
    Ok(render(&tree, target, dialect, Sql::new()))
}

fn condition(condition: &Condition, user: &User) -> Predicate {
    let owner_is = || {
        // An empty principal is never an owner: '' marks unowned rows.
        if user.principal.is_empty() { Predicate::False } else { Predicate::OwnerIs(user.principal.clone()) }
    };
    let in_owners = |category: &str| {
        let values = user.values(category);
        if values.is_empty() {
            Predicate::False
        } else {
            let mut values = values.to_vec();
            values.sort();
            values.dedup();
            Predicate::InOwners { category: category.to_owned(), values }
        }
    };
    let constant = |b: bool| if b { Predicate::True } else { Predicate::False };
    match condition {
        Condition::UserIsOwner => owner_is(),
        Condition::UserIsNotOwner => owner_is().not(),
        Condition::UserInOwners(c) => in_owners(c),
        Condition::UserNotInOwners(c) => in_owners(c).not(),
        Condition::UserWithValueIn { value, category } => constant(user.values(category).contains(value)),
        Condition::UserWithValueNotIn { value, category } => constant(!user.values(category).contains(value)),
        Condition::ResourceIsUnowned => Predicate::Unowned,
    }
}

/// The ids of `sql_record::<table>::<id>` that `pattern` matches, given `type_prefix` =
/// `sql_record::<table>::`.
fn resource_predicate(pattern: &ResourcePattern, type_prefix: &str, table: &str) -> Result<Predicate, CompileError> {
    match pattern {
        ResourcePattern::Exact(s) => Ok(match s.strip_prefix(type_prefix) {
            Some(id) => Predicate::IdEquals(id.to_owned()),
            None => Predicate::False,
        }),
        ResourcePattern::TypePrefix(prefix) => Ok(starts_with(prefix, type_prefix)),
        ResourcePattern::Regex(re) => match literal_prefix_regex(re.source()) {
            // A literal prefix: a starts-with test, which an index can serve.
            Some(prefix) => Ok(starts_with(&prefix, type_prefix)),
            None => match translate(re.source()) {
                Ok(regex) => Ok(Predicate::IdMatches { type_prefix: type_prefix.to_owned(), regex }),
                Err(construct) => Err(CompileError::UnsupportedRegex {
                    pattern: re.source().to_owned(),
                    table: table.to_owned(),
                    construct,
                }),
            },
        },
    }
}

/// Rows whose qualified id (`type_prefix` + id) starts with `prefix`.
fn starts_with(prefix: &str, type_prefix: &str) -> Predicate {
    if type_prefix.starts_with(prefix) {
        Predicate::True
    } else if let Some(rest) = prefix.strip_prefix(type_prefix) {
        Predicate::IdStartsWith(rest.to_owned())
    } else {
        Predicate::False
    }
}

/// The literal a start-anchored regex is equivalent to a starts-with test on: a regex that is a
/// literal (metacharacters escaped with `\`), optionally followed by `.*`. `None` otherwise.
pub fn literal_prefix_regex(source: &str) -> Option<String> {
    const META: &str = r"\.+*?()|[]{}^$#&-~";
    let mut literal = String::new();
    let mut chars = source.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) if META.contains(escaped) || escaped == ' ' => literal.push(escaped),
                _ => return None,
            },
            '.' => {
                return (chars.next() == Some('*') && chars.next().is_none()).then_some(literal);
            }
            // `#`, `&`, `-`, `~` are literal outside classes without the `x` flag.
            c if r"+*?()|[]{}^$".contains(c) => return None,
            c => literal.push(c),
        }
    }
    Some(literal)
}

/// `strict $."category"[*] ? (@ == "v1" || @ == "v2" ...)`: an element of the `category` array
/// equal to one of `values`. JSON string literals are jsonpath string literals (the same escapes).
fn json_path(category: &str, values: &[String]) -> String {
    let literal = |s: &str| serde_json::Value::String(s.to_owned()).to_string();
    let tests: Vec<String> = values.iter().map(|v| format!("@ == {}", literal(v))).collect();
    format!("strict $.{}[*] ? ({})", literal(category), tests.join(" || "))
}

/// `p` as SQL for `dialect` over `target`'s columns (what [`compile`] renders for a policy).
pub(super) fn render_predicate(p: &Predicate, target: &Target<'_>, dialect: Dialect) -> Sql {
    render(p, target, dialect, Sql::new())
}

fn render(p: &Predicate, target: &Target<'_>, dialect: Dialect, sql: Sql) -> Sql {
    match p {
        Predicate::True => sql.push("TRUE"),
        Predicate::False => sql.push("FALSE"),
        Predicate::OwnerIs(principal) => {
            sql.push(&target.column(OWNER_PRINCIPAL)).push(" = ").bind(Value::Text(principal.clone()))
        }
        Predicate::Unowned => sql.push(&target.column(OWNER_PRINCIPAL)).push(" = ''"),
        Predicate::InOwners { category, values } => {
            let owner = target.column(OWNER_PRINCIPAL);
            let attributes = target.column(ACCESS_ATTRIBUTES);
            let sql = sql.push("(").push(&owner).push(" <> '' AND ");
            let sql = match dialect {
                Dialect::Postgres if values.len() > WIDE_VALUE_LIST && !values.iter().any(|v| v.contains('\0')) => {
                    // Many values: one JSON path test, which plans in about half the time of one
                    // containment test per value (each is estimated against the column's
                    // statistics) and is served by the same GIN index. `strict`: only the
                    // elements of an array count (a lone string or an object under the category
                    // is an error, which `@?` turns into NULL: no match), and `==` between a
                    // string and anything else is false, as for `@>`.
                    sql.push("(")
                        .push(&attributes)
                        .push(" @? CAST(CAST(")
                        .bind(Value::Text(json_path(category, values)))
                        .push(" AS TEXT) AS jsonpath))")
                }
                Dialect::Postgres => {
                    // One containment test per value: each is served by the GIN index.
                    let mut sql = sql.push("(");
                    for (i, v) in values.iter().enumerate() {
                        if i > 0 {
                            sql = sql.push(" OR ");
                        }
                        let doc = serde_json::json!({ category.as_str(): [v] });
                        sql = sql.push(&attributes).push(" @> ").bind(Value::Json(doc)).push("::jsonb");
                    }
                    sql.push(")")
                }
                // An index probe of the side table of attribute values, which triggers keep in
                // step with the rows (see `access_values`): an entry per (row, category, value)
                // of an owned row whose `C` member is an array holding the string.
                Dialect::Sqlite => sql
                    .push("EXISTS (SELECT 1 FROM ")
                    .push_ident(&access_values_table(target.table))
                    .push(&format!(
                        " AS {alias} WHERE {alias}.{ROW_KEY} = {} AND {alias}.{ATTRIBUTE_CATEGORY} = ",
                        target.column(target.row_key),
                        alias = SIDE_ALIAS
                    ))
                    .bind(Value::Text(category.clone()))
                    .push(&format!(" AND {SIDE_ALIAS}.{ATTRIBUTE_VALUE} IN ("))
                    .push_bind_list(values.iter().map(|v| Value::Text(v.clone())))
                    .push("))"),
            };
            sql.push(")")
        }
        Predicate::IdEquals(id) => sql
            .push("COALESCE(")
            .push(&target.column(target.id_column))
            .push(" = ")
            .bind(Value::Text(id.clone()))
            .push(", FALSE)"),
        Predicate::IdStartsWith(prefix) => {
            let n = prefix.chars().count();
            let function = match dialect {
                Dialect::Postgres => "left(",
                Dialect::Sqlite => "substr(",
            };
            let sql = sql.push("COALESCE(").push(function).push(&target.column(target.id_column));
            let sql = match dialect {
                Dialect::Postgres => sql.push(&format!(", {n})")),
                Dialect::Sqlite => sql.push(&format!(", 1, {n})")),
            };
            sql.push(" = ").bind(Value::Text(prefix.clone())).push(", FALSE)")
        }
        Predicate::IdMatches { type_prefix, regex } => {
            let id = target.column(target.id_column);
            match dialect {
                Dialect::Postgres => sql
                    .push("COALESCE((CAST(")
                    .bind(Value::Text(type_prefix.clone()))
                    .push(" AS TEXT) || ")
                    .push(&id)
                    .push(") ~ ")
                    .bind(Value::Text(regex.postgres.clone()))
                    .push(", FALSE)"),
                Dialect::Sqlite => sql
                    .push("COALESCE(regexp(")
                    .bind(Value::Text(regex.rust.clone()))
                    .push(", ")
                    .bind(Value::Text(type_prefix.clone()))
                    .push(" || ")
                    .push(&id)
                    .push("), FALSE)"),
            }
        }
        Predicate::Not(inner) => render(inner, target, dialect, sql.push("NOT COALESCE(")).push(", FALSE)"),
        Predicate::And(items) | Predicate::Or(items) => {
            let op = if matches!(p, Predicate::And(_)) { " AND " } else { " OR " };
            let mut sql = sql.push("(");
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    sql = sql.push(op);
                }
                sql = render(item, target, dialect, sql);
            }
            sql.push(")")
        }
    }
}
