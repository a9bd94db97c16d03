//! The KV store contract (REFERENCE.md 2.1) over the `kvstore` table, the same on SQLite and
//! PostgreSQL.
//!
//! - Values are strings (callers store JSON).
//! - The physical key is `"<namespace>:<key>"` (just `key` when the namespace is empty); the
//!   namespace is applied to `key`, `start` and `end`, and stripped from returned keys.
//!   Namespaces on one backend never see each other's keys.
//! - Ranges are half-open, `[start, end)`, in ascending byte order of the physical key (the
//!   column is `COLLATE "C"` on PostgreSQL; SQLite's BINARY collation is byte order).
//! - An entry whose expiration has passed is absent from every read; [`KvStore::purge_expired`]
//!   deletes such rows.

use chrono::{DateTime, Utc};
use tracing::field::Empty;

use crate::error::Error;
use crate::pool::PoolStatus;
use crate::sql::{Db, Sql, Value, dialect};

/// A namespace of a KV backend. Cheap to clone; every namespace on a backend shares its pool.
#[derive(Debug, Clone)]
pub struct KvStore {
    db: Db,
    namespace: String,
    prefix: String,
}

impl KvStore {
    pub(crate) fn new(db: Db, namespace: &str) -> Self {
        let prefix = if namespace.is_empty() { String::new() } else { format!("{namespace}:") };
        Self { db, namespace: namespace.to_owned(), prefix }
    }

    /// The namespace keys are prefixed with.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The backend's name.
    pub fn backend_name(&self) -> &str {
        &self.db.backend().name
    }

    /// The state of the backend's pool.
    pub fn pool_status(&self) -> PoolStatus {
        self.db.pool_status()
    }

    /// Whether both stores use the same pool (they are on the same backend).
    pub fn shares_pool_with(&self, other: &KvStore) -> bool {
        self.db.shares_pool_with(&other.db)
    }

    fn physical(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// `(expires_at IS NULL OR expires_at > <now>)`.
    fn live(&self) -> Sql {
        Sql::new().push("(expires_at IS NULL OR expires_at > ").push_sql(dialect::now(self.db.dialect())).push(")")
    }

    /// The value of `key`, or `None` when missing or expired.
    #[tracing::instrument(name = "kv.get", skip_all, fields(backend = %self.backend_name(), namespace = %self.namespace))]
    pub async fn get(&self, key: &str) -> Result<Option<String>, Error> {
        let sql = Sql::new()
            .push("SELECT value FROM kvstore WHERE key = ")
            .bind(self.physical(key))
            .push(" AND ")
            .push_sql(self.live());
        match self.db.fetch_optional(sql).await? {
            Some(row) => Ok(Some(row.get("value")?)),
            None => Ok(None),
        }
    }

    /// Insert or replace `key`; `expiration` is the absolute instant after which the entry is
    /// gone, `None` for never.
    #[tracing::instrument(name = "kv.set", skip_all, fields(backend = %self.backend_name(), namespace = %self.namespace))]
    pub async fn set(&self, key: &str, value: &str, expiration: Option<DateTime<Utc>>) -> Result<(), Error> {
        let sql = Sql::new()
            .push("INSERT INTO kvstore (key, value, expires_at) ")
            .push_values([vec![Value::from(self.physical(key)), Value::from(value), Value::from(expiration)]])
            .push(" ")
            .push_sql(dialect::on_conflict_update(&["key"], &["value", "expires_at"]));
        self.db.execute(sql).await.map(drop)
    }

    /// Insert `key` only when it is absent (or expired): whether it was inserted. One statement,
    /// so two callers racing for one key (two replicas registering the same model id) never both
    /// win.
    #[tracing::instrument(name = "kv.insert_new", skip_all, fields(backend = %self.backend_name(), namespace = %self.namespace))]
    pub async fn insert_new(&self, key: &str, value: &str, expiration: Option<DateTime<Utc>>) -> Result<bool, Error> {
        // An expired entry counts as absent: it is replaced, a live one is left as it is.
        let sql = Sql::new()
            .push("INSERT INTO kvstore (key, value, expires_at) ")
            .push_values([vec![Value::from(self.physical(key)), Value::from(value), Value::from(expiration)]])
            .push(" ")
            .push_sql(dialect::on_conflict_update(&["key"], &["value", "expires_at"]))
            .push(" WHERE kvstore.expires_at IS NOT NULL AND kvstore.expires_at <= ")
            .push_sql(dialect::now(self.db.dialect()));
        Ok(self.db.execute(sql).await? == 1)
    }

    /// Remove `key`; removing a missing key is not an error.
    #[tracing::instrument(name = "kv.delete", skip_all, fields(backend = %self.backend_name(), namespace = %self.namespace))]
    pub async fn delete(&self, key: &str) -> Result<(), Error> {
        let sql = Sql::new().push("DELETE FROM kvstore WHERE key = ").bind(self.physical(key));
        self.db.execute(sql).await.map(drop)
    }

    fn range(&self, column: &str, start: &str, end: &str) -> Sql {
        Sql::new()
            .push("SELECT ")
            .push(column)
            .push(" FROM kvstore WHERE key >= ")
            .bind(self.physical(start))
            .push(" AND key < ")
            .bind(self.physical(end))
            .push(" AND ")
            .push_sql(self.live())
            .push(" ORDER BY key")
    }

    /// Values of the live keys in `[start, end)`, in ascending key order.
    #[tracing::instrument(name = "kv.values_in_range", skip_all, fields(backend = %self.backend_name(), namespace = %self.namespace, rows = Empty))]
    pub async fn values_in_range(&self, start: &str, end: &str) -> Result<Vec<String>, Error> {
        let rows = self.db.fetch_all(self.range("value", start, end)).await?;
        tracing::Span::current().record("rows", rows.len());
        rows.iter().map(|row| row.get("value")).collect()
    }

    /// The live keys in `[start, end)`, in ascending order, without the namespace prefix.
    #[tracing::instrument(name = "kv.keys_in_range", skip_all, fields(backend = %self.backend_name(), namespace = %self.namespace, rows = Empty))]
    pub async fn keys_in_range(&self, start: &str, end: &str) -> Result<Vec<String>, Error> {
        let rows = self.db.fetch_all(self.range("key", start, end)).await?;
        tracing::Span::current().record("rows", rows.len());
        rows.iter()
            .map(|row| {
                let key: String = row.get("key")?;
                Ok(key.strip_prefix(&self.prefix).map(str::to_owned).unwrap_or(key))
            })
            .collect()
    }

    /// Delete this namespace's expired entries (all namespaces' when the namespace is empty);
    /// how many were deleted.
    #[tracing::instrument(name = "kv.purge_expired", skip_all, fields(backend = %self.backend_name(), namespace = %self.namespace))]
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        let mut sql = Sql::new()
            .push("DELETE FROM kvstore WHERE expires_at IS NOT NULL AND expires_at <= ")
            .push_sql(dialect::now(self.db.dialect()));
        if !self.namespace.is_empty() {
            // Keys of this namespace are exactly those in ["<ns>:", "<ns>;"): ';' follows ':'.
            sql = sql
                .push(" AND key >= ")
                .bind(self.prefix.clone())
                .push(" AND key < ")
                .bind(format!("{};", self.namespace));
        }
        self.db.execute(sql).await
    }
}
