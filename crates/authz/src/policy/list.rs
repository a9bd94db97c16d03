//! Keyset pages of an [`AuthorizedTable`] in (created, id) order (or (created, tiebreak), see
//! [`AuthorizedTable::with_tiebreak`]), with the read predicate ANDed
//! on and `LIMIT` bound (never formatted into the text), so pages are exact and statements are
//! prepared once.

use ferrostack_catalog::sql::dialect::quote_ident;
use ferrostack_catalog::{Executor, Sql, Value};
use ferrostack_config::Action;

use super::compile::{OWNER_PRINCIPAL, Predicate, predicate, render_predicate};
use super::store::{AuthorizedTable, Key, Order, Page, StoreError};
use crate::User;

/// The owners a read predicate names (sorted, distinct) and its other terms, ORed.
type OwnerBranches = (Vec<String>, Option<Predicate>);

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

    /// The statement of [`AuthorizedTable::list_in`]: what it runs, for EXPLAIN and for tests.
    pub fn list_sql(
        &self,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        after: Option<Key>,
        limit: u32,
        order: Order,
    ) -> Result<Sql, StoreError> {
        self.page_sql(Some(user), columns, filter, after, limit, order)
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
        let sql = self.page_sql(read, columns, filter, after, limit, order)?;
        Ok(Page::of(ex.fetch_all(sql).await?, limit))
    }

    /// The statement of one page: `limit + 1` rows, see [`AuthorizedTable::page_in`].
    fn page_sql(
        &self,
        read: Option<Option<&User>>,
        columns: &str,
        filter: Sql,
        after: Option<Key>,
        limit: u32,
        order: Order,
    ) -> Result<Sql, StoreError> {
        let created = quote_ident(self.created_column());
        let id = quote_ident(self.tiebreak_column());
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let mut filter = if filter.is_empty() { Sql::new().push("TRUE") } else { filter };
        // The cursor row's (created, id), looked up (and its visibility checked) once per
        // statement in a CTE: the branches below each compare with it, and a subquery of their
        // own would be planned once per branch, read predicate included.
        let mut with = Sql::new();
        if let Some(after) = after {
            let mut cursor = Sql::new()
                .push(&format!("SELECT {created}, {id} FROM "))
                .push_ident(self.table())
                .push(" WHERE ")
                .push_sql(self.key_filter(after)?);
            if let Some(user) = read {
                cursor = cursor.push(" AND ").push_sql(self.predicate(Action::Read, user, None)?);
            }
            with = Sql::new().push("WITH page_after AS (").push_sql(cursor).push(") ");
            filter = Sql::new()
                .push("(")
                .push_sql(filter)
                .push(&format!(") AND ({created}, {id}) {cmp} (SELECT {created}, {id} FROM page_after)"));
        }
        let fetch = i64::from(limit) + 1;
        let order_by = |created: &str, id: &str| {
            Sql::new().push(&format!("ORDER BY {created} {dir}, {id} {dir} LIMIT ")).bind(Value::Int(fetch))
        };
        let Some(user) = read else {
            let sql = with
                .push(&format!("SELECT {columns} FROM "))
                .push_ident(self.table())
                .push(" WHERE ")
                .push_sql(filter)
                .push(" ")
                .push_sql(order_by(&created, &id));
            return Ok(sql);
        };
        let Some((owners, rest)) = self.owner_branches(user)? else {
            return Ok(with.push_sql(self.select_sql(user, columns, filter, order_by(&created, &id))?));
        };
        // The read predicate is `owner = o1 OR ... OR owner = on [OR rest]` (the default policy:
        // the caller's own rows, the unowned ones, and, for a caller with attributes, the rows
        // of owners sharing one). An ORDER BY over the whole disjunction cannot use the
        // (owner, created, id) index, and the planner sizes it by the owner terms' estimates: it
        // walks the table newest-first, through all of it when the caller sees few rows. Instead
        // one ordered, limited branch per owner (an index range each) and one for `rest` (minus
        // those owners, so no row comes twice), merged: each branch gets its own plan (the GIN
        // index for rare attribute values, a short backward scan for common ones), O(page).
        let owner_column = quote_ident(OWNER_PRINCIPAL);
        let branch = |i: usize, condition: Sql| {
            Sql::new()
                .push(&format!("SELECT * FROM (SELECT {columns}, {created} AS page_created, {id} AS page_id FROM "))
                .push_ident(self.table())
                .push(" WHERE (")
                .push_sql(filter.clone())
                .push(") AND ")
                .push_sql(condition)
                .push(" ")
                .push_sql(order_by(&created, &id))
                .push(&format!(") AS branch{i}"))
        };
        let mut branches = Sql::new();
        for (i, owner) in owners.iter().enumerate() {
            if i > 0 {
                branches = branches.push(" UNION ALL ");
            }
            branches =
                branches.push_sql(branch(i, Sql::new().push(&format!("{owner_column} = ")).bind(owner.as_str())));
        }
        if let Some(rest) = rest {
            let condition = Sql::new()
                .push("(")
                .push_sql(render_predicate(&rest, &self.target(), self.db().dialect()))
                .push(&format!(") AND {owner_column} NOT IN ("))
                .push_bind_list(owners.iter().map(String::as_str))
                .push(")");
            branches = branches.push(" UNION ALL ").push_sql(branch(owners.len(), condition));
        }
        Ok(with
            .push("SELECT * FROM (")
            .push_sql(branches)
            .push(") AS page ")
            .push_sql(order_by("page_created", "page_id")))
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

    /// When the caller's read predicate is a disjunction naming owners (`''` for unowned rows),
    /// possibly beside other terms: those owners, sorted and distinct, and the other terms ORed
    /// (`None`: the owners' rows are all the caller may read). `None` when a branch per owner
    /// would not help (no owner, or a single owner and nothing else: one index range already).
    fn owner_branches(&self, user: Option<&User>) -> Result<Option<OwnerBranches>, StoreError> {
        let tree = predicate(self.policy(), Action::Read, self.table(), user)?;
        let Predicate::Or(items) = tree else { return Ok(None) };
        let mut owners = Vec::with_capacity(items.len());
        let mut rest = Vec::new();
        for item in items {
            match item {
                Predicate::OwnerIs(principal) => owners.push(principal),
                Predicate::Unowned => owners.push(String::new()),
                other => rest.push(other),
            }
        }
        owners.sort();
        owners.dedup();
        let rest = match rest.len() {
            0 => None,
            1 => rest.pop(),
            _ => Some(Predicate::Or(rest)),
        };
        if owners.is_empty() || (owners.len() == 1 && rest.is_none()) {
            return Ok(None);
        }
        Ok(Some((owners, rest)))
    }
}
