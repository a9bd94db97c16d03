//! The few places PostgreSQL and SQLite differ, in one module. Store crates build their SQL
//! with these instead of branching on the dialect themselves.
//!
//! What is the same in both and needs no helper: `ON CONFLICT (..) DO UPDATE SET x = excluded.x`
//! (see [`on_conflict_update`] for building it), `RETURNING`, `LIMIT`/`OFFSET`, `TRUE`/`FALSE`,
//! row values `(a, b) < (x, y)` for keyset pagination, double-quoted identifiers.

use ferrostack_config::Dialect;

use super::Sql;

/// `ident` as a double-quoted identifier, quotes doubled (the same in both dialects).
pub fn quote_ident(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// The current instant, as the type ferrostack stores instants in: `now()` (a `TIMESTAMPTZ`,
/// the transaction's start) on PostgreSQL, Unix milliseconds (an `INTEGER`) on SQLite.
pub fn now(dialect: Dialect) -> Sql {
    match dialect {
        Dialect::Postgres => Sql::new().push("now()"),
        Dialect::Sqlite => Sql::new().push("CAST(unixepoch('subsec') * 1000 AS INTEGER)"),
    }
}

/// `ON CONFLICT (c, ..) DO UPDATE SET u = excluded.u, ..`, or `DO NOTHING` when `update` is
/// empty. Column names are quoted. Identical SQL in both dialects; append a `WHERE` to update
/// only some conflicting rows (e.g. only the same owner's).
pub fn on_conflict_update(conflict: &[&str], update: &[&str]) -> Sql {
    let conflict: Vec<String> = conflict.iter().map(|c| quote_ident(c)).collect();
    let mut text = format!("ON CONFLICT ({}) ", conflict.join(", "));
    if update.is_empty() {
        text.push_str("DO NOTHING");
    } else {
        let sets: Vec<String> = update
            .iter()
            .map(|c| {
                let c = quote_ident(c);
                format!("{c} = excluded.{c}")
            })
            .collect();
        text.push_str("DO UPDATE SET ");
        text.push_str(&sets.join(", "));
    }
    Sql::new().push(&text)
}

/// A predicate: the JSON object in `column` has, under `key`, an array that contains the string
/// `item`. The access-control filters use it for attributes (`{"roles": ["admin", ..]}`).
/// `column` is SQL text (a column name); `key` and `item` are bound. NULL columns, missing keys
/// and non-array values are false.
///
/// PostgreSQL (`column` is `JSONB`): containment, served by a GIN index on the column.
/// SQLite (`column` is JSON text): `json_each` over the object and the array.
pub fn json_array_contains(dialect: Dialect, column: &str, key: &str, item: &str) -> Sql {
    match dialect {
        Dialect::Postgres => Sql::new()
            .push("COALESCE(")
            .push(column)
            .push(" @> jsonb_build_object(")
            .bind(key)
            .push("::text, jsonb_build_array(")
            .bind(item)
            .push("::text)), FALSE)"),
        Dialect::Sqlite => Sql::new()
            .push("EXISTS (SELECT 1 FROM json_each(")
            .push(column)
            .push(") AS o, json_each(o.value) AS a WHERE o.key = ")
            .bind(key)
            .push(" AND o.type = 'array' AND a.value = ")
            .bind(item)
            .push(")"),
    }
}

/// An expression: the value under `key` of the JSON object in `column`, as text for strings
/// (and as JSON text for objects and arrays); NULL when missing. `key` is bound.
///
/// Numbers and booleans differ: PostgreSQL gives their JSON text (`"1"`, `"true"`), SQLite the
/// SQL value (`1`). Compare strings only.
pub fn json_text(dialect: Dialect, column: &str, key: &str) -> Sql {
    match dialect {
        Dialect::Postgres => Sql::new().push("(").push(column).push(" ->> ").bind(key).push("::text)"),
        Dialect::Sqlite => Sql::new()
            .push("(SELECT o.value FROM json_each(")
            .push(column)
            .push(") AS o WHERE o.key = ")
            .bind(key)
            .push(")"),
    }
}

/// The case-insensitive `LIKE` operator: `ILIKE` on PostgreSQL, `LIKE` on SQLite (whose `LIKE`
/// folds ASCII letters only).
pub fn ilike(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "ILIKE",
        Dialect::Sqlite => "LIKE",
    }
}

/// `input` with `\`, `%` and `_` escaped, to bind as a `LIKE` pattern that matches it literally;
/// write the condition as `x LIKE ? ESCAPE '\'` (both dialects), adding `%` around it for
/// "contains".
pub fn escape_like(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for c in input.chars() {
        if matches!(c, '\\' | '%' | '_') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
