//! The authorized store layer: every statement on a tenant table goes through an
//! [`AuthorizedTable`], which stamps the owner on insert and ANDs the compiled policy predicate
//! onto the caller's own conditions on select, update and delete (STYLE.md 14).
//!
//! The table is the store's: it names its table, its key and `created` columns and writes its
//! own column lists and where-clauses with [`Sql`]. This layer adds only the ownership plumbing:
//!
//! - insert: `owner_principal` / `access_attributes` from the caller (anonymous: `''` and JSON
//!   null; a user without attributes: JSON null); the batch writer's same-owner-only upsert
//!   ([`super::Upsert`], in `upsert.rs`) is built by this layer too, once;
//! - select / list: the read predicate ANDed on; a row the caller may not read does not exist for
//!   them, and LIMIT / `has_more` are exact because nothing is filtered after the query;
//! - update / delete: the update / delete predicate ANDed onto the statement itself (no window
//!   between a check and the write); the owner columns can never be set; a row the caller can
//!   read but not change is [`StoreError::Forbidden`], one they cannot read [`StoreError::NotFound`].
//!
//! Composition: every statement exists as a builder (`*_sql`, returning [`Sql`]) and as a method
//! that runs it on an [`Executor`] (`*_in`): a [`ferrostack_catalog::Tx`] runs several authorized
//! statements, on several tables, in one transaction; the methods without `_in` run on the pool.
//! Keys may be composite ([`Key`]: a child row identified by its parent's id and its own), and a
//! table whose rows have no owner of their own is read through its parent ([`super::ChildTable`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrostack_catalog::sql::dialect::quote_ident;
use ferrostack_catalog::{Db, Dialect, Executor, Row, Sql, Value};
use ferrostack_config::{AccessRule, Action};

use super::compile::{ACCESS_ATTRIBUTES, CompileError, OWNER_PRINCIPAL, Target, compile};
use super::eval::Resource;
use crate::User;

/// What can go wrong on an authorized table.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The row does not exist, or the caller may not read it (the two are not told apart).
    #[error("not found")]
    NotFound,
    /// The caller may read the row but not do `action` to it (HTTP 403).
    #[error("{principal} may not {action} {resource}")]
    Forbidden {
        /// The caller.
        principal: String,
        /// What was attempted.
        action: Action,
        /// The row's qualified id.
        resource: String,
    },
    /// An update tried to set an owner column; ownership never changes.
    #[error("column {0} holds the owner and cannot be updated")]
    OwnerColumn(String),
    /// A key with as many values as the table has key columns was expected.
    #[error("table {table} has {expected} key columns, the key given has {got} values")]
    KeyArity {
        /// The table.
        table: String,
        /// Key columns of the table.
        expected: usize,
        /// Values given.
        got: usize,
    },
    /// An update with nothing to set.
    #[error("an update needs at least one column to set")]
    NothingToSet,
    /// The policy cannot be compiled for this table.
    #[error(transparent)]
    Compile(#[from] CompileError),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] ferrostack_catalog::Error),
}

/// Sort order of lists on (created, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// The rows of one page of [`AuthorizedTable::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// At most `limit` rows, in order.
    pub rows: Vec<Row>,
    /// Whether more rows follow (exact: the query fetched `limit + 1`).
    pub has_more: bool,
}

impl Page {
    /// The page of `rows`, fetched with `limit + 1`: the extra row only says that more follow.
    pub(super) fn of(mut rows: Vec<Row>, limit: u32) -> Self {
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Self { rows, has_more }
    }
}

/// The values identifying one row, one per key column, in the table's key order: an id
/// (`"chatcmpl-1"`), or a parent's id and the row's own (`("conv_1", "msg_3")`).
#[derive(Debug, Clone, PartialEq)]
pub struct Key(pub Vec<Value>);

impl Key {
    /// The row's own id as text (the last key value), for messages and policy resources.
    pub fn own_id(&self) -> String {
        match self.0.last() {
            Some(Value::Text(s)) => s.clone(),
            Some(Value::Int(i)) => i.to_string(),
            _ => String::new(),
        }
    }
}

impl From<&str> for Key {
    fn from(id: &str) -> Self {
        Key(vec![Value::from(id)])
    }
}

impl From<&String> for Key {
    fn from(id: &String) -> Self {
        Key(vec![Value::from(id.as_str())])
    }
}

impl From<(&str, &str)> for Key {
    fn from((parent, id): (&str, &str)) -> Self {
        Key(vec![Value::from(parent), Value::from(id)])
    }
}

/// A tenant table under the access policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthorizedTable {
    db: Db,
    table: Arc<str>,
    key: Arc<[Arc<str>]>,
    created_column: Arc<str>,
    /// The column that orders rows with the same `created` (default: the id column).
    tiebreak: Option<Arc<str>>,
    policy: Arc<[AccessRule]>,
}

impl AuthorizedTable {
    /// `table` on `db`, rows identified by `id_column`, ordered by (`created_column`,
    /// `id_column`); `policy` is `server.auth.access_policy` (empty: the default policy). The
    /// table must have the owner columns ([`OWNER_PRINCIPAL`] TEXT NOT NULL, [`ACCESS_ATTRIBUTES`]).
    pub fn new(
        db: Db,
        table: &str,
        id_column: &str,
        created_column: &str,
        policy: impl Into<Arc<[AccessRule]>>,
    ) -> Result<Self, CompileError> {
        Self::with_key(db, table, &[id_column], created_column, policy)
    }

    /// Like [`AuthorizedTable::new`], with a composite key: rows identified by `key` (e.g.
    /// `["conversation_id", "id"]`), ordered by (`created_column`, last key column). The policy's
    /// resource id is the last key column.
    pub fn with_key(
        db: Db,
        table: &str,
        key: &[&str],
        created_column: &str,
        policy: impl Into<Arc<[AccessRule]>>,
    ) -> Result<Self, CompileError> {
        let this = Self {
            db,
            table: table.into(),
            key: key.iter().map(|c| Arc::from(*c)).collect(),
            created_column: created_column.into(),
            tiebreak: None,
            policy: policy.into(),
        };
        this.check_policy()?;
        Ok(this)
    }

    /// Fail now, not at the first request, if the policy cannot be compiled for this table.
    fn check_policy(&self) -> Result<(), CompileError> {
        let probe = User::new("probe", BTreeMap::new());
        for action in Action::ALL {
            compile(&self.policy, action, &self.target(), Some(&probe), Dialect::Sqlite)?;
        }
        Ok(())
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// The table name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// The policy in force (empty: the default policy).
    pub fn policy(&self) -> &[AccessRule] {
        &self.policy
    }

    /// The column holding the row's own id (the last key column).
    pub fn id_column(&self) -> &str {
        self.key.last().map_or("id", |c| c)
    }

    /// The `created` column lists are ordered by.
    pub fn created_column(&self) -> &str {
        &self.created_column
    }

    /// Order rows with the same `created` by `column` instead of the id column (a conversation's
    /// items by their insertion sequence). The column must be unique within what is listed, so
    /// that (created, column) is a total order; the `after` cursor is still a key.
    pub fn with_tiebreak(mut self, column: &str) -> Self {
        self.tiebreak = Some(column.into());
        self
    }

    /// The column that orders rows with the same `created`: the tiebreak if set, else the id.
    pub fn tiebreak_column(&self) -> &str {
        self.tiebreak.as_deref().unwrap_or_else(|| self.id_column())
    }

    pub(super) fn target(&self) -> Target<'_> {
        Target::new(&self.table, self.id_column()).with_row_key(self.tiebreak_column())
    }

    /// The compiled predicate for `user` doing `action` on this table, to AND onto a statement
    /// the store writes itself (e.g. a join). Columns are unqualified unless `alias` is given.
    pub fn predicate(&self, action: Action, user: Option<&User>, alias: Option<&str>) -> Result<Sql, CompileError> {
        let target = match alias {
            Some(a) => self.target().qualified(a),
            None => self.target(),
        };
        compile(&self.policy, action, &target, user, self.db.dialect())
    }

    /// `k1 = $1 AND k2 = $2 ...` for `key`.
    pub fn key_filter(&self, key: impl Into<Key>) -> Result<Sql, StoreError> {
        let key = key.into();
        if key.0.len() != self.key.len() {
            return Err(StoreError::KeyArity {
                table: self.table.to_string(),
                expected: self.key.len(),
                got: key.0.len(),
            });
        }
        let mut sql = Sql::new();
        for (i, (column, value)) in self.key.iter().zip(key.0).enumerate() {
            if i > 0 {
                sql = sql.push(" AND ");
            }
            sql = sql.push_ident(column).push(" = ").bind(value);
        }
        Ok(sql)
    }

    /// The owner-column values an insert by `user` stamps: (`owner_principal`,
    /// `access_attributes`). Anonymous (or an empty principal): `''` and JSON null.
    pub fn owner_values(user: Option<&User>) -> (Value, Value) {
        match user {
            Some(u) if !u.principal.is_empty() => {
                let attributes = match &u.attributes {
                    Some(map) => serde_json::to_value(map).unwrap_or(serde_json::Value::Null),
                    None => serde_json::Value::Null,
                };
                (Value::Text(u.principal.clone()), Value::Json(attributes))
            }
            _ => (Value::Text(String::new()), Value::Json(serde_json::Value::Null)),
        }
    }

    /// The owner of a row as the policy sees it, from its owner columns (`None`: unowned).
    pub fn owner_of(row: &Row) -> Result<Option<User>, ferrostack_catalog::Error> {
        let principal: String = row.get(OWNER_PRINCIPAL)?;
        if principal.is_empty() {
            return Ok(None);
        }
        let attributes: Option<serde_json::Value> = row.get(ACCESS_ATTRIBUTES)?;
        Ok(Some(User { principal, attributes: attributes.and_then(|v| attributes_from_json(&v)) }))
    }

    /// The row as a policy resource (`sql_record::<table>::<id>`).
    pub fn resource_of(&self, row: &Row) -> Result<Resource, ferrostack_catalog::Error> {
        let id: String = row.get(self.id_column())?;
        Ok(Resource::sql_record(&self.table, &id, Self::owner_of(row)?))
    }

    pub(super) fn insert_head(&self, columns: &[&str]) -> String {
        let mut names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        names.push(quote_ident(OWNER_PRINCIPAL));
        names.push(quote_ident(ACCESS_ATTRIBUTES));
        format!("INSERT INTO {} ({}) ", quote_ident(&self.table), names.join(", "))
    }

    /// `INSERT INTO <table> (<columns>, owner columns) VALUES ...`, every row owned by `user`.
    /// No permission check (as in the reference, creating is not policed here).
    pub fn insert_sql(&self, user: Option<&User>, columns: &[&str], rows: Vec<Vec<Value>>) -> Result<Sql, StoreError> {
        if let Some(c) = columns.iter().find(|c| is_owner_column(c)) {
            return Err(StoreError::OwnerColumn((*c).to_owned()));
        }
        let (principal, attributes) = Self::owner_values(user);
        let rows = rows.into_iter().map(|mut r| {
            r.push(principal.clone());
            r.push(attributes.clone());
            r
        });
        Ok(Sql::new().push(&self.insert_head(columns)).push_values(rows))
    }

    /// Insert rows owned by `user` (see [`AuthorizedTable::insert_sql`]); rows inserted.
    pub async fn insert_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        columns: &[&str],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64, StoreError> {
        if rows.is_empty() {
            return Ok(0);
        }
        Ok(ex.execute(self.insert_sql(user, columns, rows)?).await?)
    }

    /// [`AuthorizedTable::insert_in`] on the pool.
    pub async fn insert(
        &self,
        user: Option<&User>,
        columns: &[&str],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64, StoreError> {
        self.insert_in(&mut self.db.clone(), user, columns, rows).await
    }

    /// `SELECT <columns> FROM <table> WHERE (<filter>) AND <read predicate> <tail>`: `columns`
    /// and `tail` (ORDER BY, LIMIT, ...) are the store's SQL; `filter` its conditions (an empty
    /// `Sql` means none).
    pub fn select_sql(&self, user: Option<&User>, columns: &str, filter: Sql, tail: Sql) -> Result<Sql, StoreError> {
        let sql = Sql::new().push("SELECT ").push(columns).push(" FROM ").push_ident(&self.table).push(" WHERE ");
        let sql = self.and_predicate(sql, filter, Action::Read, user)?;
        Ok(if tail.is_empty() { sql } else { sql.push(" ").push_sql(tail) })
    }

    /// Run [`AuthorizedTable::select_sql`].
    pub async fn select_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        tail: Sql,
    ) -> Result<Vec<Row>, StoreError> {
        Ok(ex.fetch_all(self.select_sql(user, columns, filter, tail)?).await?)
    }

    /// [`AuthorizedTable::select_in`] on the pool.
    pub async fn select(
        &self,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        tail: Sql,
    ) -> Result<Vec<Row>, StoreError> {
        self.select_in(&mut self.db.clone(), user, columns, filter, tail).await
    }

    /// The row with this key, if the caller may read it (`None`: missing or not readable).
    pub async fn get_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        columns: &str,
        key: impl Into<Key>,
    ) -> Result<Option<Row>, StoreError> {
        let filter = self.key_filter(key)?;
        let tail = Sql::new().push("LIMIT 1");
        Ok(self.select_in(ex, user, columns, filter, tail).await?.into_iter().next())
    }

    /// [`AuthorizedTable::get_in`] on the pool.
    pub async fn get(
        &self,
        user: Option<&User>,
        columns: &str,
        key: impl Into<Key>,
    ) -> Result<Option<Row>, StoreError> {
        self.get_in(&mut self.db.clone(), user, columns, key).await
    }

    /// `UPDATE <table> SET ... WHERE (<filter>) AND <update predicate>`. The owner columns
    /// cannot be set.
    pub fn update_sql(&self, user: Option<&User>, set: Vec<(&str, Value)>, filter: Sql) -> Result<Sql, StoreError> {
        if let Some((c, _)) = set.iter().find(|(c, _)| is_owner_column(c)) {
            return Err(StoreError::OwnerColumn((*c).to_owned()));
        }
        if set.is_empty() {
            return Err(StoreError::NothingToSet);
        }
        let mut sql = Sql::new().push("UPDATE ").push_ident(&self.table).push(" SET ");
        for (i, (column, value)) in set.into_iter().enumerate() {
            if i > 0 {
                sql = sql.push(", ");
            }
            sql = sql.push_ident(column).push(" = ").bind(value);
        }
        self.and_predicate(sql.push(" WHERE "), filter, Action::Update, user)
    }

    /// Rows updated by [`AuthorizedTable::update_sql`]. Rows the caller may not update are left
    /// alone (use [`AuthorizedTable::update_one`] to tell "not found" from "forbidden").
    pub async fn update_where(
        &self,
        user: Option<&User>,
        set: Vec<(&str, Value)>,
        filter: Sql,
    ) -> Result<u64, StoreError> {
        Ok(self.db.execute(self.update_sql(user, set, filter)?).await?)
    }

    /// Update the row with this key: [`StoreError::NotFound`] when it is missing or unreadable,
    /// [`StoreError::Forbidden`] when readable but not updatable.
    pub async fn update_one_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        key: impl Into<Key>,
        set: Vec<(&str, Value)>,
    ) -> Result<(), StoreError> {
        let key = key.into();
        let sql = self.update_sql(user, set, self.key_filter(key.clone())?)?;
        if ex.execute(sql).await? > 0 {
            return Ok(());
        }
        Err(self.why_not(ex, user, key, Action::Update).await?)
    }

    /// [`AuthorizedTable::update_one_in`] on the pool.
    pub async fn update_one(
        &self,
        user: Option<&User>,
        key: impl Into<Key>,
        set: Vec<(&str, Value)>,
    ) -> Result<(), StoreError> {
        self.update_one_in(&mut self.db.clone(), user, key, set).await
    }

    /// `DELETE FROM <table> WHERE (<filter>) AND <delete predicate>`.
    pub fn delete_sql(&self, user: Option<&User>, filter: Sql) -> Result<Sql, StoreError> {
        let sql = Sql::new().push("DELETE FROM ").push_ident(&self.table).push(" WHERE ");
        self.and_predicate(sql, filter, Action::Delete, user)
    }

    /// Rows deleted by [`AuthorizedTable::delete_sql`].
    pub async fn delete_where_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        filter: Sql,
    ) -> Result<u64, StoreError> {
        Ok(ex.execute(self.delete_sql(user, filter)?).await?)
    }

    /// [`AuthorizedTable::delete_where_in`] on the pool.
    pub async fn delete_where(&self, user: Option<&User>, filter: Sql) -> Result<u64, StoreError> {
        self.delete_where_in(&mut self.db.clone(), user, filter).await
    }

    /// Delete the row with this key: [`StoreError::NotFound`] when it is missing or unreadable,
    /// [`StoreError::Forbidden`] when readable but not deletable.
    pub async fn delete_one_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        key: impl Into<Key>,
    ) -> Result<(), StoreError> {
        let key = key.into();
        if self.delete_where_in(ex, user, self.key_filter(key.clone())?).await? > 0 {
            return Ok(());
        }
        Err(self.why_not(ex, user, key, Action::Delete).await?)
    }

    /// [`AuthorizedTable::delete_one_in`] on the pool.
    pub async fn delete_one(&self, user: Option<&User>, key: impl Into<Key>) -> Result<(), StoreError> {
        self.delete_one_in(&mut self.db.clone(), user, key).await
    }

    /// The row with this key, for `action`: `Ok` when the caller may do it, else the error to
    /// answer (NotFound unless readable, then Forbidden). For a check before a statement on
    /// another table in the same transaction (appending a conversation's items).
    pub async fn check_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        key: impl Into<Key>,
        action: Action,
    ) -> Result<(), StoreError> {
        let key = key.into();
        let filter = self.key_filter(key.clone())?;
        let sql = Sql::new().push("SELECT 1 AS one FROM ").push_ident(&self.table).push(" WHERE ");
        let sql = self.and_predicate(sql, filter, action, user)?.push(" LIMIT 1");
        if !ex.fetch_all(sql).await?.is_empty() {
            return Ok(());
        }
        Err(self.why_not(ex, user, key, action).await?)
    }

    /// `sql` + `(<filter>) AND <predicate>`.
    fn and_predicate(&self, sql: Sql, filter: Sql, action: Action, user: Option<&User>) -> Result<Sql, StoreError> {
        let predicate = self.predicate(action, user, None)?;
        let sql = if filter.is_empty() { sql } else { sql.push("(").push_sql(filter).push(") AND ") };
        Ok(sql.push_sql(predicate))
    }

    /// After a write touched nothing: NotFound unless the caller can read the row.
    async fn why_not(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        key: Key,
        action: Action,
    ) -> Result<StoreError, StoreError> {
        let id = key.own_id();
        let readable = self.get_in(ex, user, "1 AS one", key).await?.is_some();
        Ok(match (readable, user) {
            (true, Some(u)) => StoreError::Forbidden {
                principal: u.principal.clone(),
                action,
                resource: Resource::sql_record(&self.table, &id, None).qualified_id,
            },
            _ => StoreError::NotFound,
        })
    }
}

pub(super) fn is_owner_column(column: &str) -> bool {
    column == OWNER_PRINCIPAL || column == ACCESS_ATTRIBUTES
}

/// Attributes as stored, leniently: arrays of strings are kept (non-string items dropped),
/// anything else is ignored, as the SQL predicate ignores it. JSON null or a non-object: `None`.
pub fn attributes_from_json(value: &serde_json::Value) -> Option<BTreeMap<String, Vec<String>>> {
    let object = value.as_object()?;
    Some(
        object
            .iter()
            .filter_map(|(k, v)| {
                let items = v.as_array()?;
                Some((k.clone(), items.iter().filter_map(|i| i.as_str().map(str::to_owned)).collect()))
            })
            .collect(),
    )
}
