//! A table whose rows have no owner of their own and are seen through their parent's (a
//! conversation's items): identified by (parent id, own id), visible exactly when the parent is.
//! Reading a child needs `read` on the parent; adding or removing children is changing the
//! parent, so it needs `update` on it; deleting the parent with its children needs `delete`.

use ferrostack_catalog::sql::dialect::quote_ident;
use ferrostack_catalog::{Executor, Row, Sql, Tx, Value};
use ferrostack_config::Action;

use super::store::{AuthorizedTable, Key, Order, Page, StoreError};
use crate::User;

/// Alias of the parent table inside a child statement's `EXISTS`.
const PARENT_ALIAS: &str = "parent_row";

/// A child table under its parent's policy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ChildTable {
    parent: AuthorizedTable,
    /// The child table as a composite-key table: (`parent_column`, `id_column`). Its own policy
    /// is never used: every statement goes through [`ChildTable::visible`].
    rows: AuthorizedTable,
    parent_column: String,
}

impl ChildTable {
    /// `table`'s rows belong to the `parent` row whose id is in `parent_column`; each is
    /// identified by (`parent_column`, `id_column`) and ordered by (`created_column`, `id_column`)
    /// within its parent.
    pub fn new(
        parent: &AuthorizedTable,
        table: &str,
        parent_column: &str,
        id_column: &str,
        created_column: &str,
    ) -> Result<Self, StoreError> {
        let rows = AuthorizedTable::with_key(
            parent.db().clone(),
            table,
            &[parent_column, id_column],
            created_column,
            parent.policy().to_vec(),
        )?;
        Ok(Self { parent: parent.clone(), rows, parent_column: parent_column.to_owned() })
    }

    /// Order children with the same `created` by `column` (e.g. an insertion sequence) rather
    /// than by their id: see [`AuthorizedTable::with_tiebreak`].
    pub fn with_tiebreak(mut self, column: &str) -> Self {
        self.rows = self.rows.with_tiebreak(column);
        self
    }

    /// The parent table.
    pub fn parent(&self) -> &AuthorizedTable {
        &self.parent
    }

    /// `EXISTS (SELECT 1 FROM <parent> AS parent_row WHERE parent_row.id = <child>.<parent column>
    /// AND <parent's predicate for action>)`: the child row is visible for `action` exactly when
    /// its parent is.
    pub fn visible(&self, action: Action, user: Option<&User>) -> Result<Sql, StoreError> {
        let parent_id = format!("{}.{}", quote_ident(PARENT_ALIAS), quote_ident(self.parent.id_column()));
        let link = format!("{}.{}", quote_ident(self.rows.table()), quote_ident(&self.parent_column));
        Ok(Sql::new()
            .push("EXISTS (SELECT 1 FROM ")
            .push_ident(self.parent.table())
            .push(&format!(" AS {} WHERE {parent_id} = {link} AND ", quote_ident(PARENT_ALIAS)))
            .push_sql(self.parent.predicate(action, user, Some(PARENT_ALIAS))?)
            .push(")"))
    }

    fn of_parent(&self, parent_id: &str, filter: Sql) -> Sql {
        let sql = Sql::new().push_ident(&self.parent_column).push(" = ").bind(parent_id);
        if filter.is_empty() { sql } else { sql.push(" AND (").push_sql(filter).push(")") }
    }

    /// `SELECT <columns> FROM <child> WHERE <parent column> = $1 AND (<filter>) AND <visible>`.
    pub fn select_sql(
        &self,
        user: Option<&User>,
        parent_id: &str,
        columns: &str,
        filter: Sql,
        tail: Sql,
    ) -> Result<Sql, StoreError> {
        let sql = Sql::new()
            .push("SELECT ")
            .push(columns)
            .push(" FROM ")
            .push_ident(self.rows.table())
            .push(" WHERE ")
            .push_sql(self.of_parent(parent_id, filter))
            .push(" AND ")
            .push_sql(self.visible(Action::Read, user)?);
        Ok(if tail.is_empty() { sql } else { sql.push(" ").push_sql(tail) })
    }

    /// The child row (`parent_id`, `id`), if its parent is readable by the caller.
    pub async fn get_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        columns: &str,
        parent_id: &str,
        id: &str,
    ) -> Result<Option<Row>, StoreError> {
        let filter = Sql::new().push_ident(self.rows.id_column()).push(" = ").bind(id);
        let sql = self.select_sql(user, parent_id, columns, filter, Sql::new().push("LIMIT 1"))?;
        Ok(ex.fetch_all(sql).await?.into_iter().next())
    }

    /// One page of the parent's children in (created, id) order, after the child `after`.
    /// [`StoreError::NotFound`] when the parent is missing or not readable (an empty page would
    /// tell the two apart from "no children").
    #[expect(clippy::too_many_arguments, reason = "a page's parameters, each distinct")]
    pub async fn list_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        parent_id: &str,
        columns: &str,
        after: Option<&str>,
        limit: u32,
        order: Order,
    ) -> Result<Page, StoreError> {
        self.parent.check_in(ex, user, parent_id, Action::Read).await.map_err(|e| match e {
            // Reading children needs only read on the parent.
            StoreError::Forbidden { .. } => StoreError::NotFound,
            other => other,
        })?;
        let filter = self.of_parent(parent_id, Sql::new()).push(" AND ").push_sql(self.visible(Action::Read, user)?);
        let after = after.map(|a| Key::from((parent_id, a)));
        // The child's own predicate is the parent's policy compiled for a table without owners
        // of its own; `filter` carries the real one (the parent's), so read through a table
        // that applies no predicate of its own.
        self.rows.list_unchecked_in(ex, columns, filter, after, limit, order).await
    }

    /// Append children to the parent `parent_id`, in `tx` (after a check that the caller may
    /// update the parent, which [`StoreError::NotFound`] / [`StoreError::Forbidden`] report):
    /// atomic with whatever else the transaction does (storing a response that appends them).
    pub async fn insert_in(
        &self,
        tx: &mut Tx,
        user: Option<&User>,
        parent_id: &str,
        columns: &[&str],
        rows: Vec<Vec<Value>>,
    ) -> Result<u64, StoreError> {
        self.parent.check_in(tx, user, parent_id, Action::Update).await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let mut names: Vec<String> = vec![quote_ident(&self.parent_column)];
        names.extend(columns.iter().map(|c| quote_ident(c)));
        let rows = rows.into_iter().map(|mut r| {
            r.insert(0, Value::from(parent_id));
            r
        });
        let sql = Sql::new()
            .push("INSERT INTO ")
            .push_ident(self.rows.table())
            .push(&format!(" ({}) ", names.join(", ")))
            .push_values(rows);
        Ok(tx.execute(sql).await?)
    }

    /// Delete the parent's children matching `filter` (empty: all), if the caller may update
    /// the parent: rows deleted (0 when it may not, or none match).
    pub async fn delete_where_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        parent_id: &str,
        filter: Sql,
    ) -> Result<u64, StoreError> {
        let sql = Sql::new()
            .push("DELETE FROM ")
            .push_ident(self.rows.table())
            .push(" WHERE ")
            .push_sql(self.of_parent(parent_id, filter))
            .push(" AND ")
            .push_sql(self.visible(Action::Update, user)?);
        Ok(ex.execute(sql).await?)
    }

    /// Delete the parent `parent_id` and its children, atomically and under the policy: the
    /// parent's 404 / 403 decide, and nothing is deleted unless the parent is.
    pub async fn delete_parent_cascade(&self, user: Option<&User>, parent_id: &str) -> Result<(), StoreError> {
        let mut tx = self.parent.db().begin().await?;
        self.parent.check_in(&mut tx, user, parent_id, Action::Delete).await?;
        let children = Sql::new()
            .push("DELETE FROM ")
            .push_ident(self.rows.table())
            .push(" WHERE ")
            .push_sql(self.of_parent(parent_id, Sql::new()));
        tx.execute(children).await?;
        self.parent.delete_one_in(&mut tx, user, parent_id).await?;
        tx.commit().await?;
        Ok(())
    }
}
