//! The batch writer's statement, built here so that the owner stamping and the same-owner-only
//! rule exist once for every table: `INSERT ... ON CONFLICT (key) DO UPDATE SET ... WHERE
//! <table>.owner_principal = excluded.owner_principal`, each row with its own caller's owner.

use std::sync::Arc;

use ferrostack_catalog::sql::dialect::{self, quote_ident};
use ferrostack_catalog::{Sql, Value};

use super::compile::OWNER_PRINCIPAL;
use super::store::{AuthorizedTable, StoreError, is_owner_column};

impl AuthorizedTable {
    /// The same-owner-only upsert of `columns` (the owner columns are appended), conflicting on
    /// `conflict` and replacing `replaced` only where the stored row has the same owner; build it
    /// once, then [`Upsert::rows`] per batch.
    pub fn upsert(&self, columns: &[&str], conflict: &[&str], replaced: &[&str]) -> Result<Upsert, StoreError> {
        if let Some(c) = columns.iter().chain(replaced).find(|c| is_owner_column(c)) {
            return Err(StoreError::OwnerColumn((*c).to_owned()));
        }
        let owner_column = quote_ident(OWNER_PRINCIPAL);
        let tail = Sql::new()
            .push(" ")
            .push_sql(dialect::on_conflict_update(conflict, replaced))
            .push(&format!(" WHERE {}.{owner_column} = excluded.{owner_column}", quote_ident(self.table())));
        Ok(Upsert {
            head: self.insert_head(columns),
            tail,
            width: columns.len() + 2,
            table: Arc::from(self.table()),
            key: conflict.iter().map(|c| (*c).to_owned()).collect(),
        })
    }
}

/// The same-owner-only upsert of a table, built once by [`AuthorizedTable::upsert`].
#[derive(Debug, Clone)]
pub struct Upsert {
    head: String,
    tail: Sql,
    width: usize,
    table: Arc<str>,
    key: Vec<String>,
}

impl Upsert {
    /// Values bound per row (the table's columns and the two owner columns), for sizing batches
    /// under the bind limits.
    pub fn width(&self) -> usize {
        self.width
    }

    /// `INSERT ... VALUES (...), ... ON CONFLICT (...) DO UPDATE SET ... WHERE <same owner>`: each
    /// row its values and its own caller's owner columns ([`AuthorizedTable::owner_values`]).
    /// A row whose key belongs to another owner's row leaves that row untouched (and counts as
    /// not affected).
    pub fn rows<'a>(&self, rows: impl IntoIterator<Item = (Vec<Value>, &'a (Value, Value))>) -> Sql {
        Sql::new()
            .push(&self.head)
            .push_values(rows.into_iter().map(|(mut values, (principal, attributes))| {
                values.push(principal.clone());
                values.push(attributes.clone());
                values
            }))
            .push_sql(self.tail.clone())
    }

    /// `SELECT <key columns>, owner_principal FROM <table> WHERE <key> IN (...)`: who owns the
    /// rows of these keys, after an upsert affected fewer rows than it was given, to tell which
    /// keys belong to another owner. Internal to the writer: its answer is never shown to a
    /// caller (only logged by key, and counted).
    pub fn owners_sql(&self, keys: &[Vec<Value>]) -> Sql {
        let columns: Vec<String> = self.key.iter().map(|c| quote_ident(c)).collect();
        let mut sql = Sql::new().push(&format!(
            "SELECT {}, {} FROM {} WHERE ({}) IN (",
            columns.join(", "),
            quote_ident(OWNER_PRINCIPAL),
            quote_ident(&self.table),
            columns.join(", ")
        ));
        for (i, key) in keys.iter().enumerate() {
            sql = sql.push(if i == 0 { "(" } else { ", (" }).push_bind_list(key.iter().cloned()).push(")");
        }
        sql.push(")")
    }

    /// The key columns.
    pub fn key_columns(&self) -> &[String] {
        &self.key
    }
}
