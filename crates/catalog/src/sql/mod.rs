//! The typed SQL layer for store crates: a statement builder where SQL text and bind values are
//! pushed separately, values, owned rows, and a [`Db`] handle that runs statements on
//! PostgreSQL or SQLite. No ORM: stores write their SQL; this layer only keeps values out of the
//! SQL text and smooths the few dialect differences ([`dialect`]).

mod db;

pub mod dialect;
mod json_text;
mod postgres;
mod sqlite;
mod tx;
mod value;

pub use db::Db;
pub use json_text::JsonText;
pub use tx::{Executor, Tx};
pub use value::{FromValue, Row, Value};

use ferrostack_config::Dialect;

/// How much of a statement's text [`Sql::summary`] reads.
const SUMMARY_HEAD_BYTES: usize = 512;

/// Most bind values one PostgreSQL statement takes (the wire protocol counts them in 16 bits).
pub const MAX_BINDS_POSTGRES: usize = 65_535;
/// Most bind values one SQLite statement takes (`SQLITE_MAX_VARIABLE_NUMBER` of the bundled
/// SQLite).
pub const MAX_BINDS_SQLITE: usize = 32_766;

#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Text(String),
    Bind(Value),
}

/// A statement under construction: SQL text and bind values, pushed separately.
///
/// ```
/// use ferrostack_catalog::sql::{Sql, Value};
/// use ferrostack_catalog::Dialect;
///
/// let sql = Sql::new()
///     .push("SELECT id FROM t WHERE owner = ")
///     .bind(Value::Text("alice".into()))
///     .push(" AND created > ")
///     .bind(1_700_000_000_i64);
/// assert_eq!(sql.text(Dialect::Postgres), "SELECT id FROM t WHERE owner = $1 AND created > $2");
/// assert_eq!(sql.text(Dialect::Sqlite), "SELECT id FROM t WHERE owner = ?1 AND created > ?2");
/// ```
///
/// Values never enter the SQL text: each `bind` becomes a numbered placeholder (`$n` on
/// PostgreSQL, `?n` on SQLite) when the statement runs. Text pushed with [`Sql::push`] must be
/// SQL written by the programmer, never input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql {
    pieces: Vec<Piece>,
}

impl Sql {
    /// An empty statement.
    pub fn new() -> Self {
        Self::default()
    }

    /// Append SQL text (written by the programmer, never input).
    pub fn push(mut self, text: &str) -> Self {
        if let Some(Piece::Text(last)) = self.pieces.last_mut() {
            last.push_str(text);
        } else {
            self.pieces.push(Piece::Text(text.to_owned()));
        }
        self
    }

    /// Append a placeholder bound to `value`.
    pub fn bind(mut self, value: impl Into<Value>) -> Self {
        self.pieces.push(Piece::Bind(value.into()));
        self
    }

    /// Append another statement fragment, text and binds (e.g. an access-control predicate).
    pub fn push_sql(mut self, other: Sql) -> Self {
        for piece in other.pieces {
            self = match piece {
                Piece::Text(t) => self.push(&t),
                Piece::Bind(v) => self.bind(v),
            };
        }
        self
    }

    /// Append an identifier (table or column name), double-quoted with quotes doubled, as both
    /// dialects read it.
    pub fn push_ident(self, ident: &str) -> Self {
        let quoted = dialect::quote_ident(ident);
        self.push(&quoted)
    }

    /// Append `v1, v2, ...` as placeholders (for `IN (...)`). An empty list appends nothing.
    pub fn push_bind_list<V: Into<Value>>(mut self, values: impl IntoIterator<Item = V>) -> Self {
        for (i, v) in values.into_iter().enumerate() {
            if i > 0 {
                self = self.push(", ");
            }
            self = self.bind(v);
        }
        self
    }

    /// Append `VALUES (..), (..), ...` with one placeholder per value, for a multi-row INSERT:
    ///
    /// ```
    /// use ferrostack_catalog::sql::{Sql, Value};
    /// use ferrostack_catalog::Dialect;
    ///
    /// let rows = vec![vec![Value::from("a"), Value::from(1_i64)], vec![Value::from("b"), Value::from(2_i64)]];
    /// let sql = Sql::new().push("INSERT INTO t (id, n) ").push_values(rows);
    /// assert_eq!(sql.text(Dialect::Postgres), "INSERT INTO t (id, n) VALUES ($1, $2), ($3, $4)");
    /// ```
    ///
    /// Every row should have as many values as there are columns; the database rejects a
    /// statement where they differ. Mind the bind limits ([`MAX_BINDS_POSTGRES`],
    /// [`MAX_BINDS_SQLITE`]) when sizing batches.
    pub fn push_values(mut self, rows: impl IntoIterator<Item = Vec<Value>>) -> Self {
        self = self.push("VALUES ");
        for (i, row) in rows.into_iter().enumerate() {
            self = self.push(if i == 0 { "(" } else { ", (" });
            self = self.push_bind_list(row).push(")");
        }
        self
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// How many values are bound.
    pub fn bind_count(&self) -> usize {
        self.pieces.iter().filter(|p| matches!(p, Piece::Bind(_))).count()
    }

    /// The SQL text with placeholders for `dialect` (what is sent, and what spans show).
    pub fn text(&self, dialect: Dialect) -> String {
        let mut text = String::new();
        let mut n = 0;
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => text.push_str(t),
                Piece::Bind(_) => {
                    n += 1;
                    push_placeholder(&mut text, dialect, n);
                }
            }
        }
        text
    }

    /// The bound values, in placeholder order.
    pub fn binds(&self) -> Vec<&Value> {
        self.pieces
            .iter()
            .filter_map(|p| match p {
                Piece::Bind(v) => Some(v),
                Piece::Text(_) => None,
            })
            .collect()
    }

    /// The operation (`SELECT`, `INSERT`, ...) and the main table of the statement, read from
    /// its text (never from its values), for span names and attributes.
    pub(crate) fn summary(&self) -> (String, Option<String>) {
        // The operation and the table are among the first words: only the statement's head is
        // read (a batch insert's text runs to tens of kilobytes; joining all of it for every
        // statement was 8% of a proxied request's instructions, callgrind).
        let mut text = String::with_capacity(SUMMARY_HEAD_BYTES + 64);
        for piece in &self.pieces {
            if text.len() >= SUMMARY_HEAD_BYTES {
                break;
            }
            text.push_str(match piece {
                Piece::Text(t) => t.as_str(),
                Piece::Bind(_) => " ? ",
            });
        }
        let words: Vec<&str> = text.split_whitespace().take(64).collect();
        let op = words.first().map_or_else(String::new, |w| w.to_ascii_uppercase());
        let after = |keyword: &str| {
            words.iter().position(|w| w.eq_ignore_ascii_case(keyword)).and_then(|i| words.get(i + 1)).map(|w| {
                let name = w.split(['(', ',', ';']).next().unwrap_or_default();
                name.trim_matches('"').to_owned()
            })
        };
        let table = match op.as_str() {
            "INSERT" => after("INTO"),
            "UPDATE" => words.get(1).map(|w| w.trim_matches('"').to_owned()),
            _ => after("FROM"),
        }
        .filter(|t| !t.is_empty() && !t.starts_with('('));
        (op, table)
    }

    /// Consume into the text with numbered placeholders for `dialect`, and the values in order.
    pub(crate) fn into_parts(self, dialect: Dialect) -> (String, Vec<Value>) {
        let mut text = String::new();
        let mut values = Vec::new();
        for piece in self.pieces {
            match piece {
                Piece::Text(t) => text.push_str(&t),
                Piece::Bind(v) => {
                    values.push(v);
                    push_placeholder(&mut text, dialect, values.len());
                }
            }
        }
        (text, values)
    }
}

fn push_placeholder(text: &mut String, dialect: Dialect, n: usize) {
    text.push(match dialect {
        Dialect::Postgres => '$',
        Dialect::Sqlite => '?',
    });
    // Written in place: a `to_string` here was an allocation per bound value of every statement.
    let _ = std::fmt::Write::write_fmt(text, format_args!("{n}"));
}
