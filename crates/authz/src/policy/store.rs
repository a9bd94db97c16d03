//! The authorized store layer: every statement on a tenant table goes through an
//! [`AuthorizedTable`], which stamps the owner on insert and ANDs the compiled policy predicate
//! onto the caller's own conditions on select, update and delete (STYLE.md 14).
//!
//! The table is the store's: it names its table, its id and `created` columns and writes its
//! own column lists and where-clauses with [`Sql`]. This layer adds only the ownership plumbing:
//!
//! - insert: `owner_principal` / `access_attributes` from the caller (anonymous: `''` and JSON
//!   null; a user without attributes: JSON null);
//! - select / list: the read predicate ANDed on; a row the caller may not read does not exist for
//!   them, and LIMIT / `has_more` are exact because nothing is filtered after the query;
//! - update / delete: the update / delete predicate ANDed onto the statement itself (no window
//!   between a check and the write); the owner columns can never be set; a row the caller can
//!   read but not change is [`StoreError::Forbidden`], one they cannot read [`StoreError::NotFound`].

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrostack_catalog::sql::dialect::quote_ident;
use ferrostack_catalog::{Db, Dialect, Row, Sql, Value};
use ferrostack_config::{AccessRule, Action};

use super::compile::{ACCESS_ATTRIBUTES, CompileError, OWNER_PRINCIPAL, Predicate, Target, compile, predicate};
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

/// Sort order of [`AuthorizedTable::list`] on (created, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    #[default]
    Desc,
}

/// One page of [`AuthorizedTable::list`].
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// At most `limit` rows, in order.
    pub rows: Vec<Row>,
    /// Whether more rows follow (exact: the query fetched `limit + 1`).
    pub has_more: bool,
}

/// A tenant table under the access policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AuthorizedTable {
    db: Db,
    table: Arc<str>,
    id_column: Arc<str>,
    created_column: Arc<str>,
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
        let this = Self {
            db,
            table: table.into(),
            id_column: id_column.into(),
            created_column: created_column.into(),
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

    fn target(&self) -> Target<'_> {
        Target::new(&self.table, &self.id_column)
    }

    fn id(&self) -> String {
        quote_ident(&self.id_column)
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
        let id: String = row.get(&self.id_column)?;
        Ok(Resource::sql_record(&self.table, &id, Self::owner_of(row)?))
    }

    /// Insert rows owned by `user`: `columns` are the store's, each row one value per column;
    /// the owner columns are appended. No permission check (as in the reference, creating is
    /// not policed here). Rows inserted.
    pub async fn insert(
        &self,
        user: Option<&User>,
        columns: &[&str],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64, StoreError> {
        if let Some(c) = columns.iter().find(|c| is_owner_column(c)) {
            return Err(StoreError::OwnerColumn((*c).to_owned()));
        }
        if rows.is_empty() {
            return Ok(0);
        }
        let (principal, attributes) = Self::owner_values(user);
        let mut names: Vec<String> = columns.iter().map(|c| quote_ident(c)).collect();
        names.push(quote_ident(OWNER_PRINCIPAL));
        names.push(quote_ident(ACCESS_ATTRIBUTES));
        let rows = rows.into_iter().map(|mut r| {
            r.push(principal.clone());
            r.push(attributes.clone());
            r
        });
        let sql = Sql::new()
            .push("INSERT INTO ")
            .push_ident(&self.table)
            .push(&format!(" ({}) ", names.join(", ")))
            .push_values(rows);
        Ok(self.db.execute(sql).await?)
    }

    /// `SELECT <columns> FROM <table> WHERE (<where>) AND <read predicate> <tail>`: `columns`
    /// and `tail` (ORDER BY, LIMIT, ...) are the store's SQL; `filter` its conditions (an empty
    /// `Sql` means none).
    pub async fn select(
        &self,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        tail: Sql,
    ) -> Result<Vec<Row>, StoreError> {
        let sql = Sql::new().push("SELECT ").push(columns).push(" FROM ").push_ident(&self.table).push(" WHERE ");
        let sql = self.and_predicate(sql, filter, Action::Read, user)?;
        let sql = if tail.is_empty() { sql } else { sql.push(" ").push_sql(tail) };
        Ok(self.db.fetch_all(sql).await?)
    }

    /// The row with this id, if the caller may read it (`None`: missing or not readable).
    pub async fn get(&self, user: Option<&User>, columns: &str, id: &str) -> Result<Option<Row>, StoreError> {
        let filter = Sql::new().push(&self.id()).push(" = ").bind(id);
        Ok(self.select(user, columns, filter, Sql::new().push("LIMIT 1")).await?.into_iter().next())
    }

    /// One page in (created, id) order, after the row with id `after` when given (which must be
    /// readable by the caller: otherwise the page is empty). `limit + 1` rows are fetched, so
    /// `has_more` is exact.
    pub async fn list(
        &self,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        after: Option<&str>,
        limit: u32,
        order: Order,
    ) -> Result<Page, StoreError> {
        let created = quote_ident(&self.created_column);
        let id = self.id();
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let mut filter = if filter.is_empty() { Sql::new().push("TRUE") } else { filter };
        if let Some(after) = after {
            let cursor = Sql::new()
                .push(&format!("SELECT {created}, {id} FROM "))
                .push_ident(&self.table)
                .push(&format!(" WHERE {id} = "))
                .bind(after)
                .push(" AND ")
                .push_sql(self.predicate(Action::Read, user, None)?);
            filter = Sql::new()
                .push("(")
                .push_sql(filter)
                .push(&format!(") AND ({created}, {id}) {cmp} ("))
                .push_sql(cursor)
                .push(")");
        }
        let fetch = u64::from(limit) + 1;
        let order_by = format!("ORDER BY {created} {dir}, {id} {dir} LIMIT {fetch}");
        let mut rows = match self.readable_owners(user)? {
            // The caller may read exactly the rows of a few owners (the default policy for a
            // caller without attributes: their own and the unowned ones). An ORDER BY over
            // `owner = $1 OR owner = ''` cannot use the (owner, created, id) index and walks the
            // table instead; one ordered, limited scan per owner, merged, is O(page). Each branch
            // is the policy's own predicate narrowed to one owner, and the owners are distinct,
            // so no row is added or repeated.
            Some(owners) if owners.len() > 1 => {
                let owner_column = quote_ident(OWNER_PRINCIPAL);
                let mut branches = Sql::new();
                for (i, owner) in owners.into_iter().enumerate() {
                    if i > 0 {
                        branches = branches.push(" UNION ALL ");
                    }
                    branches = branches
                        .push(&format!(
                            "SELECT * FROM (SELECT {columns}, {created} AS page_created, {id} AS page_id FROM "
                        ))
                        .push_ident(&self.table)
                        .push(" WHERE (")
                        .push_sql(filter.clone())
                        .push(&format!(") AND {owner_column} = "))
                        .bind(owner)
                        .push(&format!(" {order_by}) AS branch{i}"));
                }
                let sql = Sql::new()
                    .push("SELECT * FROM (")
                    .push_sql(branches)
                    .push(&format!(") AS page ORDER BY page_created {dir}, page_id {dir} LIMIT {fetch}"));
                self.db.fetch_all(sql).await?
            }
            _ => self.select(user, columns, filter, Sql::new().push(&order_by)).await?,
        };
        let has_more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        Ok(Page { rows, has_more })
    }

    /// The owners whose rows, and only whose rows, the caller may read, when the policy folds to
    /// that for this caller (`None` otherwise). `''` stands for unowned rows.
    fn readable_owners(&self, user: Option<&User>) -> Result<Option<Vec<String>>, StoreError> {
        let tree = predicate(&self.policy, Action::Read, &self.table, user)?;
        let Predicate::Or(items) = tree else { return Ok(None) };
        let mut owners = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Predicate::OwnerIs(principal) => owners.push(principal),
                Predicate::Unowned => owners.push(String::new()),
                _ => return Ok(None),
            }
        }
        owners.sort();
        owners.dedup();
        Ok(Some(owners))
    }

    /// `UPDATE <table> SET ... WHERE (<where>) AND <update predicate>`: rows updated. Rows the
    /// caller may not update are left alone (use [`AuthorizedTable::update_one`] to tell "not
    /// found" from "forbidden"). The owner columns cannot be set.
    pub async fn update_where(
        &self,
        user: Option<&User>,
        set: Vec<(&str, Value)>,
        filter: Sql,
    ) -> Result<u64, StoreError> {
        let sql = self.update_sql(user, set, filter)?;
        Ok(self.db.execute(sql).await?)
    }

    /// Update the row with this id: [`StoreError::NotFound`] when it is missing or unreadable,
    /// [`StoreError::Forbidden`] when readable but not updatable.
    pub async fn update_one(&self, user: Option<&User>, id: &str, set: Vec<(&str, Value)>) -> Result<(), StoreError> {
        let filter = Sql::new().push(&self.id()).push(" = ").bind(id);
        let sql = self.update_sql(user, set, filter)?;
        if self.db.execute(sql).await? > 0 {
            return Ok(());
        }
        Err(self.why_not(user, id, Action::Update).await?)
    }

    /// `DELETE FROM <table> WHERE (<where>) AND <delete predicate>`: rows deleted.
    pub async fn delete_where(&self, user: Option<&User>, filter: Sql) -> Result<u64, StoreError> {
        let sql = Sql::new().push("DELETE FROM ").push_ident(&self.table).push(" WHERE ");
        let sql = self.and_predicate(sql, filter, Action::Delete, user)?;
        Ok(self.db.execute(sql).await?)
    }

    /// Delete the row with this id: [`StoreError::NotFound`] when it is missing or unreadable,
    /// [`StoreError::Forbidden`] when readable but not deletable.
    pub async fn delete_one(&self, user: Option<&User>, id: &str) -> Result<(), StoreError> {
        let filter = Sql::new().push(&self.id()).push(" = ").bind(id);
        if self.delete_where(user, filter).await? > 0 {
            return Ok(());
        }
        Err(self.why_not(user, id, Action::Delete).await?)
    }

    fn update_sql(&self, user: Option<&User>, set: Vec<(&str, Value)>, filter: Sql) -> Result<Sql, StoreError> {
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

    /// `sql` + `(<filter>) AND <predicate>`.
    fn and_predicate(&self, sql: Sql, filter: Sql, action: Action, user: Option<&User>) -> Result<Sql, StoreError> {
        let predicate = self.predicate(action, user, None)?;
        let sql = if filter.is_empty() { sql } else { sql.push("(").push_sql(filter).push(") AND ") };
        Ok(sql.push_sql(predicate))
    }

    /// After a write touched nothing: NotFound unless the caller can read the row.
    async fn why_not(&self, user: Option<&User>, id: &str, action: Action) -> Result<StoreError, StoreError> {
        let readable = self.get(user, "1 AS one", id).await?.is_some();
        Ok(match (readable, user) {
            (true, Some(u)) => StoreError::Forbidden {
                principal: u.principal.clone(),
                action,
                resource: Resource::sql_record(&self.table, id, None).qualified_id,
            },
            _ => StoreError::NotFound,
        })
    }
}

fn is_owner_column(column: &str) -> bool {
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
