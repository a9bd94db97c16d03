//! Keyset pages of an [`AuthorizedTable`] in (created, id) order (or (created, tiebreak), see
//! [`AuthorizedTable::with_tiebreak`]), with the read predicate ANDed
//! on and `LIMIT` bound (never formatted into the text), so pages are exact and statements are
//! prepared once.

use ferrostack_catalog::sql::dialect::quote_ident;
use ferrostack_catalog::{Dialect, Executor, Sql, Value};
use ferrostack_config::Action;

use super::access_values::{ATTRIBUTE_CATEGORY, ATTRIBUTE_VALUE, ROW_CREATED, ROW_KEY, access_values_table};
use super::compile::{OWNER_PRINCIPAL, Predicate, predicate, render_predicate};
use super::store::{AuthorizedTable, Key, Order, Page, StoreError};
use crate::User;

/// The owners a read predicate names (sorted, distinct) and its other terms, ORed.
type OwnerBranches = (Vec<String>, Option<Predicate>);

/// On SQLite, a list with more arms than this (owners, attribute values, the rest) is not split
/// by [`AuthorizedTable::side_plan`]: SQLite caps a compound `SELECT` at 500 terms, and a caller
/// with that many values is better served by one walk in (created, id) order.
const MAX_SQLITE_LIST_ARMS: usize = 100;

/// The alias of the side table of attribute values in a list's arms.
const LISTED_VALUE: &str = "listed_value";

/// SQLite: a read predicate as the arms of a list driven by the side table of attribute values
/// (see [`super::access_values`]).
#[derive(Debug)]
struct SidePlan {
    /// Owners the predicate names (`''`: unowned rows), sorted and distinct.
    owners: Vec<String>,
    /// Disjuncts with a `user in owners C` factor: one arm per value, from the side table.
    driven: Vec<Driven>,
    /// The other disjuncts, ORed: one arm walking the table in (created, id) order.
    others: Option<Predicate>,
}

/// A disjunct `user in owners C [AND rest]`.
#[derive(Debug)]
struct Driven {
    category: String,
    values: Vec<String>,
    /// The disjunct's other conjuncts (`None`: none).
    rest: Option<Predicate>,
}

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
        if let Some(user) = read
            && self.db().dialect() == Dialect::Sqlite
            && let Some(plan) = self.side_plan(user)?
        {
            return self.side_page_sql(plan, user, columns, filter, after, limit, order);
        }
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

impl AuthorizedTable {
    /// SQLite: the read predicate as a [`SidePlan`] when one of its disjuncts has a `user in
    /// owners C` factor (the default policy for a caller with attributes); `None` otherwise, or
    /// when it would take more than [`MAX_SQLITE_LIST_ARMS`] arms.
    fn side_plan(&self, user: Option<&User>) -> Result<Option<SidePlan>, StoreError> {
        let items = match predicate(self.policy(), Action::Read, self.table(), user)? {
            Predicate::True | Predicate::False => return Ok(None),
            Predicate::Or(items) => items,
            other => vec![other],
        };
        let mut owners = Vec::new();
        let mut driven = Vec::new();
        let mut others = Vec::new();
        for item in items {
            match item {
                Predicate::OwnerIs(principal) => owners.push(principal),
                Predicate::Unowned => owners.push(String::new()),
                Predicate::InOwners { category, values } => driven.push(Driven { category, values, rest: None }),
                Predicate::And(mut conjuncts) => {
                    // Drive from the factor with the fewest values: the fewest arms.
                    let factor = conjuncts
                        .iter()
                        .enumerate()
                        .filter_map(|(i, c)| match c {
                            Predicate::InOwners { values, .. } => Some((values.len(), i)),
                            _ => None,
                        })
                        .min();
                    match factor.map(|(_, i)| conjuncts.remove(i)) {
                        Some(Predicate::InOwners { category, values }) => {
                            let rest = match Predicate::and(conjuncts) {
                                Predicate::True => None,
                                rest => Some(rest),
                            };
                            driven.push(Driven { category, values, rest });
                        }
                        Some(other) => {
                            conjuncts.push(other);
                            others.push(Predicate::And(conjuncts));
                        }
                        None => others.push(Predicate::And(conjuncts)),
                    }
                }
                other => others.push(other),
            }
        }
        owners.sort();
        owners.dedup();
        let arms =
            owners.len() + driven.iter().map(|d| d.values.len()).sum::<usize>() + usize::from(!others.is_empty());
        if driven.is_empty() || arms > MAX_SQLITE_LIST_ARMS {
            return Ok(None);
        }
        let others = match others.len() {
            0 => None,
            1 => others.pop(),
            _ => Some(Predicate::Or(others)),
        };
        Ok(Some(SidePlan { owners, driven, others }))
    }

    /// SQLite: one page from the arms of `plan`, each an ordered range of keys: an owner's on
    /// the (owner, created, key) index and the rest walking the table in order, each limited to
    /// `limit + 1`; an attribute value's on the side table's primary key (category, value,
    /// created, key), read lazily. The arms' keys are merged in order (`UNION`: a row several
    /// arms find comes once), the first `limit + 1` kept, and only their rows are read:
    ///
    /// ```sql
    /// WITH [page_after AS MATERIALIZED (<cursor row>),] page_keys AS (
    ///   SELECT * FROM (SELECT created AS page_created, id AS page_id FROM t
    ///                  WHERE (<filter>) AND owner_principal = $1 ORDER BY .. LIMIT $n) AS arm0
    ///   UNION ...
    ///   UNION SELECT listed_value.row_created AS page_created, listed_value.row_key AS page_id
    ///         FROM t_access_values AS listed_value
    ///         WHERE listed_value.attribute_category = $2 AND listed_value.attribute_value = $3
    ///   UNION ... ORDER BY page_created DESC, page_id DESC LIMIT $n)
    /// SELECT <columns> FROM page_keys CROSS JOIN t ON t.id = page_keys.page_id ORDER BY ..
    /// ```
    ///
    /// An attribute arm joins the table only when the store's filter or the disjunct's other
    /// conjuncts need its columns.
    #[expect(clippy::too_many_arguments, reason = "a page's parameters, each distinct")]
    fn side_page_sql(
        &self,
        plan: SidePlan,
        user: Option<&User>,
        columns: &str,
        filter: Sql,
        after: Option<Key>,
        limit: u32,
        order: Order,
    ) -> Result<Sql, StoreError> {
        let table = quote_ident(self.table());
        let created = quote_ident(self.created_column());
        let key = quote_ident(self.tiebreak_column());
        let owner = quote_ident(OWNER_PRINCIPAL);
        let side = quote_ident(&access_values_table(self.table()));
        let side_column = |c: &str| format!("{LISTED_VALUE}.{c}");
        let (cmp, dir) = match order {
            Order::Asc => (">", "ASC"),
            Order::Desc => ("<", "DESC"),
        };
        let fetch = i64::from(limit) + 1;
        let mut sql = Sql::new().push("WITH ");
        let cursor = match after {
            Some(after) => {
                // The cursor row's (created, key), if the caller may read it (else no arm has
                // a row after it: an empty page). Materialized: looked up, and its visibility
                // checked, once, not once per arm (SQLite would inline it in each).
                sql = sql
                    .push(&format!("page_after AS MATERIALIZED (SELECT {created}, {key} FROM {table} WHERE "))
                    .push_sql(self.key_filter(after)?)
                    .push(" AND ")
                    .push_sql(self.predicate(Action::Read, user, None)?)
                    .push("), ");
                Some(|c: &str, k: &str| format!(" AND ({c}, {k}) {cmp} (SELECT {created}, {key} FROM page_after)"))
            }
            None => None,
        };
        let filter = (!filter.is_empty()).then_some(filter);
        let order_by = |c: &str, k: &str| {
            Sql::new().push(&format!(" ORDER BY {c} {dir}, {k} {dir} LIMIT ")).bind(Value::Int(fetch))
        };
        // An arm over the table's own rows: `condition` and the store's filter.
        let table_arm = |condition: Sql| {
            let mut arm =
                Sql::new().push(&format!("SELECT {created} AS page_created, {key} AS page_id FROM {table} WHERE "));
            if let Some(f) = &filter {
                arm = arm.push("(").push_sql(f.clone()).push(") AND ");
            }
            arm = arm.push_sql(condition);
            if let Some(cursor) = &cursor {
                arm = arm.push(&cursor(&created, &key));
            }
            arm.push_sql(order_by(&created, &key))
        };
        // Arms with an ORDER BY and LIMIT of their own (wrapped in a subquery) and arms over
        // the side table, ordered by its key.
        let mut arms = Vec::new();
        let mut value_arms = Vec::new();
        for principal in &plan.owners {
            arms.push(table_arm(Sql::new().push(&format!("{owner} = ")).bind(principal.as_str())));
        }
        let target = self.target();
        for driven in &plan.driven {
            for value in &driven.values {
                let (row_created, row_key) = (side_column(ROW_CREATED), side_column(ROW_KEY));
                let mut arm = Sql::new().push(&format!(
                    "SELECT {row_created} AS page_created, {row_key} AS page_id FROM {side} AS {LISTED_VALUE}"
                ));
                if filter.is_some() || driven.rest.is_some() {
                    arm = arm.push(&format!(" CROSS JOIN {table} ON {table}.{key} = {row_key}"));
                }
                arm = arm
                    .push(&format!(" WHERE {} = ", side_column(ATTRIBUTE_CATEGORY)))
                    .bind(driven.category.as_str())
                    .push(&format!(" AND {} = ", side_column(ATTRIBUTE_VALUE)))
                    .bind(value.as_str());
                if let Some(cursor) = &cursor {
                    arm = arm.push(&cursor(&row_created, &row_key));
                }
                if let Some(f) = &filter {
                    arm = arm.push(" AND (").push_sql(f.clone()).push(")");
                }
                if let Some(rest) = &driven.rest {
                    arm = arm.push(" AND ").push_sql(render_predicate(rest, &target, Dialect::Sqlite));
                }
                // No ORDER BY / LIMIT of its own: the compound's ORDER BY is the side table's
                // key order, so SQLite reads this arm lazily as it merges (an arm with a LIMIT
                // would be read and sorted whole first), rows up to the page's end and no more.
                value_arms.push(arm);
            }
        }
        if let Some(others) = &plan.others {
            arms.push(table_arm(
                Sql::new().push("(").push_sql(render_predicate(others, &target, Dialect::Sqlite)).push(")"),
            ));
        }
        sql = sql.push("page_keys AS (");
        let wrapped = arms
            .into_iter()
            .enumerate()
            .map(|(i, arm)| Sql::new().push("SELECT * FROM (").push_sql(arm).push(&format!(") AS arm{i}")));
        for (i, arm) in wrapped.chain(value_arms).enumerate() {
            if i > 0 {
                sql = sql.push(" UNION ");
            }
            sql = sql.push_sql(arm);
        }
        Ok(sql.push_sql(order_by("page_created", "page_id")).push(&format!(
            ") SELECT {columns} FROM page_keys CROSS JOIN {table} ON {table}.{key} = page_keys.page_id ORDER BY \
                 page_keys.page_created {dir}, page_keys.page_id {dir}"
        )))
    }
}
