//! SQLite's index of the owners' attribute values: for each tenant table `<table>`, a side table
//! `<table>_access_values` holding one entry per (row, category, value) of an owned row's
//! `access_attributes`, kept in step with the tenant table by triggers (after insert, after an
//! update of the columns it copies, after delete) and backfilled by the migration that creates it
//! (`migrations/sqlite/V6__access_values.sql`).
//!
//! PostgreSQL needs none: its GIN index on `access_attributes` serves `user in owners C`. SQLite
//! has no index for a value inside a JSON list, so without this table the test was a `json_each`
//! per row, and a list whose attribute branch matched few rows walked the whole table. With it:
//!
//! - per row, `user in owners C` is an `EXISTS` probe of the side table's `(row_key, category,
//!   value)` index ([`super::compile`]);
//! - a list drives each (category, value) of the caller from the side table's primary key
//!   `(category, value, created, row_key)`: an ordered, limited index range per value, O(page)
//!   whatever share of the table the caller sees ([`super::AuthorizedTable::list`]).
//!
//! An entry exists exactly when the row is owned (`owner_principal <> ''`), its
//! `access_attributes` is valid JSON holding an object, the object's member `category` is an
//! array, and that array holds the string `value`: what the per-row `json_each` test checked.
//! `row_key` is the table's tiebreak column (its id, or `sequence` for responses): unique, and
//! never renumbered (a table's implicit rowid could be, by `VACUUM`).

use ferrostack_catalog::sql::dialect::quote_ident;

use super::compile::{ACCESS_ATTRIBUTES, OWNER_PRINCIPAL};

/// The side table's column holding the attribute category (an `access_attributes` key).
pub const ATTRIBUTE_CATEGORY: &str = "attribute_category";
/// The side table's column holding one value of the category's list.
pub const ATTRIBUTE_VALUE: &str = "attribute_value";
/// The side table's copy of the row's `created` column (lists walk it in order).
pub const ROW_CREATED: &str = "row_created";
/// The side table's copy of the row's key (its tiebreak column).
pub const ROW_KEY: &str = "row_key";

/// The side table of `table`: `<table>_access_values`.
pub fn access_values_table(table: &str) -> String {
    format!("{table}_access_values")
}

/// The statements that create `table`'s side table, its row index, fill it from the rows already
/// there, and create the triggers that keep it in step: what `V6__access_values.sql` runs for
/// each tenant table (a test checks the file against this), and what tests run for their own
/// scratch tables. `row_key` is the table's tiebreak column (unique), of SQL type
/// `row_key_type`; `created` its created column.
pub fn sqlite_access_values_ddl(table: &str, row_key: &str, row_key_type: &str, created: &str) -> Vec<String> {
    let side = access_values_table(table);
    let side_q = quote_ident(&side);
    let table_q = quote_ident(table);
    let columns = format!("{ATTRIBUTE_CATEGORY}, {ATTRIBUTE_VALUE}, {ROW_CREATED}, {ROW_KEY}");
    // The entries of one row, `source` being the row (`NEW`, or the backfill's alias).
    let entries = |source: &str, from: &str| {
        let attributes = format!("{source}.{}", quote_ident(ACCESS_ATTRIBUTES));
        format!(
            "SELECT DISTINCT a.key, v.value, {source}.{created}, {source}.{row_key} FROM {from}json_each(CASE WHEN \
             json_valid({attributes}) THEN CASE json_type({attributes}) WHEN 'object' THEN {attributes} END END) AS a, \
             json_each(CASE a.type WHEN 'array' THEN a.value END) AS v WHERE {source}.{owner} <> '' AND a.type = \
             'array' AND v.type = 'text'",
            created = quote_ident(created),
            row_key = quote_ident(row_key),
            owner = quote_ident(OWNER_PRINCIPAL),
        )
    };
    let insert = format!("INSERT INTO {side_q} ({columns}) ");
    let delete_old = format!("DELETE FROM {side_q} WHERE {ROW_KEY} = OLD.{}", quote_ident(row_key));
    vec![
        format!(
            "CREATE TABLE {side_q} ({ATTRIBUTE_CATEGORY} TEXT NOT NULL, {ATTRIBUTE_VALUE} TEXT NOT NULL, {ROW_CREATED} \
             INTEGER NOT NULL, {ROW_KEY} {row_key_type} NOT NULL, PRIMARY KEY ({ATTRIBUTE_CATEGORY}, {ATTRIBUTE_VALUE}, \
             {ROW_CREATED}, {ROW_KEY})) WITHOUT ROWID"
        ),
        format!(
            "CREATE INDEX {} ON {side_q} ({ROW_KEY}, {ATTRIBUTE_CATEGORY}, {ATTRIBUTE_VALUE})",
            quote_ident(&format!("{side}_row_idx"))
        ),
        format!("{insert}{}", entries("source_row", &format!("{table_q} AS source_row, "))),
        format!(
            "CREATE TRIGGER {} AFTER INSERT ON {table_q} BEGIN {insert}{}; END",
            quote_ident(&format!("{side}_insert")),
            entries("NEW", "")
        ),
        format!(
            "CREATE TRIGGER {} AFTER UPDATE OF {}, {}, {}, {} ON {table_q} BEGIN {delete_old}; {insert}{}; END",
            quote_ident(&format!("{side}_update")),
            quote_ident(OWNER_PRINCIPAL),
            quote_ident(ACCESS_ATTRIBUTES),
            quote_ident(created),
            quote_ident(row_key),
            entries("NEW", "")
        ),
        format!(
            "CREATE TRIGGER {} AFTER DELETE ON {table_q} BEGIN {delete_old}; END",
            quote_ident(&format!("{side}_delete"))
        ),
    ]
}
