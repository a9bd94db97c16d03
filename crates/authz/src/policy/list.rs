//! Keyset pages of an [`AuthorizedTable`] in (created, id) order (or (created, tiebreak), see
//! [`AuthorizedTable::with_tiebreak`]), with the read predicate ANDed
//! on and `LIMIT` bound (never formatted into the text), so pages are exact and statements are
//! prepared once.

use ferrostack_catalog::sql::dialect::quote_ident;
use ferrostack_catalog::{Executor, Sql, Value};
use ferrostack_config::Action;

use super::compile::{OWNER_PRINCIPAL, Predicate, predicate};
use super::store::{AuthorizedTable, Key, Order, Page, StoreError};
use crate::User;

impl AuthorizedTable {
    /// One page in (created, id) order, after the row with key `after` when given (which must be
    /// readable by the caller: otherwise the page is empty). `limit + 1` rows are fetched, so
    /// `has_more` is exact.
    #[expect(clippy::too_many_arguments, reason = "a page's parameters, each distinct")]
    pub async fn list_in(
        &self,
        ex: &mut impl Executor,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        after: Option<Key>,
        limit: u32,
        order: Order,
    ) -> Result<Page, StoreError> {
        self.page_in(ex, Some(user), columns, filter, after, limit, order).await
    }

    /// A page where `filter` already holds the visibility condition (a child table's, through its
    /// parent): no predicate of this table's own is added.
    pub(super) async fn list_unchecked_in(
        &self,
        ex: &mut impl Executor,
        columns: &str,
        filter: Sql,
        after: Option<Key>,
        limit: u32,
        order: Order,
    ) -> Result<Page, StoreError> {
        self.page_in(ex, None, columns, filter, after, limit, order).await
    }

    /// `read`: `Some(caller)` ANDs this table's read predicate for the caller; `None` adds none.
    #[expect(clippy::too_many_arguments, reason = "a page's parameters, each distinct")]
    async fn page_in(
        &self,
        ex: &mut impl Executor,
        read: Option<Option<&User>>,
        columns: &str,
        filter: Sql,
        after: Option<Key>,
        limit: u32,
        order: Order,
    ) -> Result<Page, StoreError> {
        let created = quote_ident(self.created_column());
        let id = quote_ident(self.tiebreak_column());
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let mut filter = if filter.is_empty() { Sql::new().push("TRUE") } else { filter };
        if let Some(after) = after {
            let mut cursor = Sql::new()
                .push(&format!("SELECT {created}, {id} FROM "))
                .push_ident(self.table())
                .push(" WHERE ")
                .push_sql(self.key_filter(after)?);
            if let Some(user) = read {
                cursor = cursor.push(" AND ").push_sql(self.predicate(Action::Read, user, None)?);
            }
            filter = Sql::new()
                .push("(")
                .push_sql(filter)
                .push(&format!(") AND ({created}, {id}) {cmp} ("))
                .push_sql(cursor)
                .push(")");
        }
        let fetch = i64::from(limit) + 1;
        let order_by = |created: &str, id: &str| {
            Sql::new().push(&format!("ORDER BY {created} {dir}, {id} {dir} LIMIT ")).bind(Value::Int(fetch))
        };
        let Some(user) = read else {
            let sql = Sql::new()
                .push(&format!("SELECT {columns} FROM "))
                .push_ident(self.table())
                .push(" WHERE ")
                .push_sql(filter)
                .push(" ")
                .push_sql(order_by(&created, &id));
            return Ok(Page::of(ex.fetch_all(sql).await?, limit));
        };
        let rows = match self.readable_owners(user)? {
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
                        .push_ident(self.table())
                        .push(" WHERE (")
                        .push_sql(filter.clone())
                        .push(&format!(") AND {owner_column} = "))
                        .bind(owner)
                        .push(" ")
                        .push_sql(order_by(&created, &id))
                        .push(&format!(") AS branch{i}"));
                }
                let sql = Sql::new()
                    .push("SELECT * FROM (")
                    .push_sql(branches)
                    .push(") AS page ")
                    .push_sql(order_by("page_created", "page_id"));
                ex.fetch_all(sql).await?
            }
            _ => self.select_in(ex, user, columns, filter, order_by(&created, &id)).await?,
        };
        Ok(Page::of(rows, limit))
    }

    /// [`AuthorizedTable::list_in`] on the pool, after a row of a single-column key.
    pub async fn list(
        &self,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        after: Option<&str>,
        limit: u32,
        order: Order,
    ) -> Result<Page, StoreError> {
        self.list_in(&mut self.db().clone(), user, columns, filter, after.map(Key::from), limit, order).await
    }

    /// The owners whose rows, and only whose rows, the caller may read, when the policy folds to
    /// that for this caller (`None` otherwise). `''` stands for unowned rows.
    fn readable_owners(&self, user: Option<&User>) -> Result<Option<Vec<String>>, StoreError> {
        let tree = predicate(self.policy(), Action::Read, self.table(), user)?;
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
}
