//! The compiler against the evaluator: for random policies and users, on a few hundred random
//! rows inserted once per database, the compiled predicate selects exactly the rows the evaluator
//! allows, for every action, on SQLite and PostgreSQL; and paging through
//! [`AuthorizedTable::list`] (both orders, several page sizes, the per-owner UNION plan included)
//! yields exactly those rows, in (created, id) order, each once, with `has_more` true on every
//! page but the last. Resource patterns include random `regex:` patterns, so the translation of
//! regexes to PostgreSQL (and the `regexp` function on SQLite) is proven against the evaluator's
//! own regex engine.
//!
//! `FERROSTACK_PROPTEST_CASES` (default [`DEFAULT_CASES`]) and `FERROSTACK_PROPTEST_SEED` (a u64,
//! default fixed) make runs reproducible. A failure is shrunk and the smallest failing policy and
//! user are printed.

use std::collections::BTreeMap;

use ferrostack_authz::User;
use ferrostack_authz::policy::{AuthorizedTable, Order, Resource, Target, compile, is_allowed};
use ferrostack_catalog::{Db, Sql, Value};
use ferrostack_config::{AccessRule, Action, Condition, Conditions, Effect, Pattern, ResourcePattern, Scope};
use ferrostack_testkit::Test;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::support::{self, Scratch, TABLE};

pub const DEFAULT_CASES: u32 = 2000;
const DEFAULT_SEED: u64 = 0x00f0_5eed;
const ROWS: usize = 300;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("property_compiled_predicate_equals_evaluator::sqlite", || async {
            run(support::sqlite().await).await;
        }),
        Test::postgres("property_compiled_predicate_equals_evaluator::postgres", |pg| async move {
            run(support::postgres(&pg).await).await;
        }),
    ]
}

const PRINCIPALS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const CATEGORIES: [&str; 5] = ["roles", "teams", "projects", "namespaces", "other"];
const VALUES: [&str; 4] = ["a", "b", "c", "d"];
/// A long value list: more distinct values than `WIDE_VALUE_LIST`, so PostgreSQL gets the JSON path
/// form of `user in owners C` (the common values first, so such lists meet the short ones).
const WIDE_VALUES: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];
const IDS: [&str; 6] = ["r1", "r10", "r2", "file-1", "file-20", "x"];

fn principal() -> impl Strategy<Value = String> {
    proptest::sample::select(&PRINCIPALS[..]).prop_map(str::to_owned)
}

fn category() -> impl Strategy<Value = String> {
    proptest::sample::select(&CATEGORIES[..]).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    proptest::sample::select(&VALUES[..]).prop_map(str::to_owned)
}

fn values() -> impl Strategy<Value = Vec<String>> {
    prop_oneof![
        6 => proptest::collection::vec(value(), 0..3),
        1 => proptest::sample::subsequence(&WIDE_VALUES[..], ferrostack_authz::policy::WIDE_VALUE_LIST + 1..=WIDE_VALUES.len())
            .prop_map(|v| v.into_iter().map(str::to_owned).collect()),
    ]
}

fn attributes() -> impl Strategy<Value = Option<BTreeMap<String, Vec<String>>>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(BTreeMap::new())),
        6 => proptest::collection::btree_map(category(), values(), 0..4).prop_map(Some),
    ]
}

pub fn user() -> impl Strategy<Value = User> {
    (principal(), attributes()).prop_map(|(principal, attributes)| User { principal, attributes })
}

fn condition() -> impl Strategy<Value = Condition> {
    prop_oneof![
        Just(Condition::UserIsOwner),
        Just(Condition::UserIsNotOwner),
        category().prop_map(Condition::UserInOwners),
        category().prop_map(Condition::UserNotInOwners),
        (value(), category()).prop_map(|(value, category)| Condition::UserWithValueIn { value, category }),
        (value(), category()).prop_map(|(value, category)| Condition::UserWithValueNotIn { value, category }),
        Just(Condition::ResourceIsUnowned),
    ]
}

fn conditions() -> impl Strategy<Value = Conditions> {
    prop_oneof![
        1 => Just(Conditions::Always),
        3 => proptest::collection::vec(condition(), 1..4).prop_map(Conditions::When),
        2 => proptest::collection::vec(condition(), 1..4).prop_map(Conditions::Unless),
    ]
}

fn resource_pattern() -> impl Strategy<Value = Option<ResourcePattern>> {
    let exact =
        proptest::sample::select(&IDS[..]).prop_map(|id| ResourcePattern::Exact(format!("sql_record::{TABLE}::{id}")));
    let fixed = proptest::sample::select(vec![
        ResourcePattern::Exact("*".into()),
        ResourcePattern::Exact("sql_record::other::r1".into()),
        ResourcePattern::TypePrefix(format!("sql_record::{TABLE}::")),
        ResourcePattern::TypePrefix("sql_record::".into()),
        ResourcePattern::TypePrefix("sql_record::other::".into()),
        ResourcePattern::TypePrefix("model::".into()),
        ResourcePattern::Regex(Pattern::new(&format!("sql_record::{TABLE}::file-.*")).unwrap()),
        ResourcePattern::Regex(Pattern::new(&format!("sql_record::{TABLE}::r1")).unwrap()),
        ResourcePattern::Regex(Pattern::new("sql_record::it").unwrap()),
        ResourcePattern::Regex(Pattern::new("sql_record::other").unwrap()),
    ]);
    let random = random_regex().prop_map(|re| {
        Some(ResourcePattern::Regex(Pattern::new(&re).unwrap_or_else(|e| panic!("generated regex {re:?}: {e}"))))
    });
    prop_oneof![3 => Just(None), 1 => exact.prop_map(Some), 2 => fixed.prop_map(Some), 2 => random]
}

/// One piece of a random regex: a literal or a class, maybe repeated.
fn regex_atom() -> impl Strategy<Value = String> {
    let base = proptest::sample::select(vec![
        "r",
        "1",
        "0",
        "2",
        "file-",
        "x",
        "-",
        "items",
        "::",
        "[0-9]",
        "[a-f0-9-]",
        "[^r]",
        "[rx]",
        ".",
        "[[:digit:]]",
        "(?i:R)",
        r"\-",
        r"\d",
    ]);
    let repeat = proptest::sample::select(vec!["", "", "", "*", "+", "?", "{1,2}", "{0,3}", "{2}", "*?"]);
    (base, repeat).prop_map(|(atom, q)| if q.is_empty() { atom.to_owned() } else { format!("(?:{atom}){q}") })
}

/// A sequence of pieces, or an alternation of two (maybe repeated).
fn regex_part() -> impl Strategy<Value = String> {
    let seq = || proptest::collection::vec(regex_atom(), 1..4).prop_map(|v| v.concat());
    prop_oneof![
        3 => seq(),
        1 => (seq(), seq(), proptest::sample::select(vec!["", "*", "?", "+"]))
            .prop_map(|(a, b, q)| format!("({a}|{b}){q}")),
        1 => seq().prop_map(|a| format!("({a}|)")),
    ]
}

/// A random regex over qualified ids: a start such as `sql_record::items::`, then random parts,
/// maybe an end anchor. Every one is translatable; which ids it matches is up to chance.
fn random_regex() -> impl Strategy<Value = String> {
    let starts = vec![
        format!("sql_record::{TABLE}::"),
        "sql_record::".to_owned(),
        String::new(),
        ".*".to_owned(),
        format!("sql_record::({TABLE}|other)::"),
        "sql_record::it(e|a)ms::".to_owned(),
        "[a-z_]+::[a-z]+::".to_owned(),
    ];
    (
        proptest::sample::select(starts),
        proptest::collection::vec(regex_part(), 1..3),
        proptest::sample::select(vec!["", "", "$"]),
    )
        .prop_map(|(start, parts, end)| format!("{start}{}{end}", parts.concat()))
}

fn rule() -> impl Strategy<Value = AccessRule> {
    (
        prop_oneof![3 => Just(Effect::Permit), 2 => Just(Effect::Forbid)],
        proptest::sample::subsequence(Action::ALL.to_vec(), 1..=4),
        prop_oneof![3 => Just(None), 1 => principal().prop_map(Some)],
        resource_pattern(),
        conditions(),
    )
        .prop_map(|(effect, actions, principal, resource, conditions)| AccessRule {
            effect,
            scope: Scope { actions, principal, resource },
            conditions,
            description: None,
        })
}

pub fn policy() -> impl Strategy<Value = Vec<AccessRule>> {
    prop_oneof![1 => Just(Vec::new()), 6 => proptest::collection::vec(rule(), 1..6)]
}

/// One stored row: id and owner (`None`: unowned).
#[derive(Debug, Clone)]
pub struct StoredRow {
    pub id: String,
    pub owner: Option<User>,
}

fn stored_rows() -> Vec<StoredRow> {
    let owner = prop_oneof![1 => Just(None), 4 => user().prop_map(Some)];
    let strategy = proptest::collection::vec(owner, ROWS);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng(DEFAULT_SEED ^ 0xabcd));
    let owners = strategy.new_tree(&mut runner).unwrap().current();
    owners
        .into_iter()
        .enumerate()
        .map(|(i, owner)| StoredRow {
            id: format!("{}{}", IDS[i % IDS.len()], if i < IDS.len() { String::new() } else { format!("-{i}") }),
            owner,
        })
        .collect()
}

fn rng(seed: u64) -> TestRng {
    let mut bytes = [0_u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    TestRng::from_seed(RngAlgorithm::ChaCha, &bytes)
}

/// Store `rows`. Every third is first stored with its neighbour's owner attributes and then
/// updated to its own, and a few extra rows are stored and deleted again: the checks then also
/// prove that SQLite's side table of attribute values follows updates and deletes.
pub async fn insert_rows(db: &Db, rows: &[StoredRow]) {
    use ferrostack_authz::policy::AuthorizedTable;
    let head = "INSERT INTO items (id, created, owner_principal, access_attributes) ";
    for chunk in rows.chunks(100) {
        let values = chunk.iter().enumerate().map(|(i, r)| {
            let (principal, attributes) = AuthorizedTable::owner_values(r.owner.as_ref());
            let attributes = if i % 3 == 0 {
                AuthorizedTable::owner_values(chunk[(i + 1) % chunk.len()].owner.as_ref()).1
            } else {
                attributes
            };
            vec![Value::from(r.id.as_str()), Value::from(i as i64), principal, attributes]
        });
        db.execute(Sql::new().push(head).push_values(values)).await.unwrap();
        for r in chunk.iter().step_by(3) {
            let (_, attributes) = AuthorizedTable::owner_values(r.owner.as_ref());
            let sql = Sql::new()
                .push("UPDATE items SET access_attributes = ")
                .bind(attributes)
                .push(" WHERE id = ")
                .bind(r.id.as_str());
            db.execute(sql).await.unwrap();
        }
    }
    let doomed = rows.iter().take(30).enumerate().map(|(i, r)| {
        let (principal, attributes) = AuthorizedTable::owner_values(r.owner.as_ref());
        vec![Value::from(format!("doomed-{i}")), Value::from(i as i64), principal, attributes]
    });
    db.execute(Sql::new().push(head).push_values(doomed)).await.unwrap();
    db.execute(Sql::new().push("DELETE FROM items WHERE id LIKE 'doomed-%'")).await.unwrap();
}

/// Where SQL and the evaluator disagree for `policy` and `user`, described; `Ok` when they agree.
pub async fn check(db: &Db, rows: &[StoredRow], policy: &[AccessRule], user: &User) -> Result<(), String> {
    for action in Action::ALL {
        let predicate = compile(policy, action, &Target::new(TABLE, "id"), Some(user), db.dialect())
            .map_err(|e| format!("compile: {e}"))?;
        let text = predicate.text(db.dialect());
        let sql = Sql::new().push("SELECT id FROM items WHERE ").push_sql(predicate).push(" ORDER BY id");
        let got = db.fetch_all(sql).await.map_err(|e| format!("query failed: {e}\n{text}"))?;
        let mut got: Vec<String> = got.iter().map(|r| r.get::<String>("id").unwrap()).collect();
        got.sort();
        let mut expected: Vec<String> = rows
            .iter()
            .filter(|r| is_allowed(policy, action, &Resource::sql_record(TABLE, &r.id, r.owner.clone()), Some(user)))
            .map(|r| r.id.clone())
            .collect();
        expected.sort();
        if got != expected {
            let extra: Vec<_> = got.iter().filter(|i| !expected.contains(i)).collect();
            let missing: Vec<_> = expected.iter().filter(|i| !got.contains(i)).collect();
            let describe = |ids: &[&String]| {
                ids.iter()
                    .take(3)
                    .map(|id| format!("{id}: {:?}", rows.iter().find(|r| &&r.id == id).map(|r| &r.owner)))
                    .collect::<Vec<_>>()
                    .join("; ")
            };
            return Err(format!(
                "{action}: SQL selects {} rows the evaluator denies ({}) and misses {} it allows ({})\nSQL: {text}",
                extra.len(),
                describe(&extra),
                missing.len(),
                describe(&missing),
            ));
        }
    }
    Ok(())
}

/// `(created, id)` of each row as inserted by [`insert_rows`].
fn created_of(rows: &[StoredRow]) -> Vec<(i64, String)> {
    rows.chunks(100).flat_map(|chunk| chunk.iter().enumerate().map(|(i, r)| (i as i64, r.id.clone()))).collect()
}

/// Page through `table.list` as `user`; where the pages differ from the evaluator's readable
/// rows in (created, id) order, described.
pub async fn check_pages(
    table: &AuthorizedTable,
    rows: &[StoredRow],
    user: &User,
    limit: u32,
    order: Order,
) -> Result<(), String> {
    let keys = created_of(rows);
    let mut expected: Vec<(i64, String)> = rows
        .iter()
        .zip(&keys)
        .filter(|(r, _)| {
            is_allowed(table.policy(), Action::Read, &Resource::sql_record(TABLE, &r.id, r.owner.clone()), Some(user))
        })
        .map(|(_, k)| k.clone())
        .collect();
    expected.sort();
    if order == Order::Desc {
        expected.reverse();
    }
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let mut got = Vec::new();
    let mut after: Option<String> = None;
    for page_number in 0.. {
        let page = table
            .list(Some(user), "id", Sql::new(), after.as_deref(), limit, order)
            .await
            .map_err(|e| format!("list failed: {e}"))?;
        let ids: Vec<String> = page.rows.iter().map(|r| r.get::<String>("id").unwrap()).collect();
        if ids.len() > limit as usize || (page.has_more && ids.len() != limit as usize) {
            return Err(format!("page {page_number}: {} rows, has_more {}, limit {limit}", ids.len(), page.has_more));
        }
        got.extend(ids);
        if !page.has_more {
            break;
        }
        after = got.last().cloned();
        if got.len() > rows.len() {
            return Err(format!("pages never end: {} rows so far", got.len()));
        }
    }
    if got != expected {
        let first_difference = got.iter().zip(&expected).position(|(a, b)| a != b);
        return Err(format!(
            "pages of {limit} ({order:?}) give {} rows, the evaluator {}; first difference at {first_difference:?}",
            got.len(),
            expected.len()
        ));
    }
    Ok(())
}

/// [`check`], then [`check_pages`] for this policy and user and, so that the per-owner UNION plan
/// is exercised in every case, for the default policy and the user without attributes.
async fn check_all(
    scratch: &Scratch,
    rows: &[StoredRow],
    policy: &[AccessRule],
    user: &User,
    case: u32,
) -> Result<(), String> {
    check(&scratch.db, rows, policy, user).await?;
    let limit = [40, 100, 301][case as usize % 3];
    let order = if case.is_multiple_of(2) { Order::Desc } else { Order::Asc };
    check_pages(&scratch.table(policy.to_vec()), rows, user, limit, order).await?;
    let bare = User { principal: user.principal.clone(), attributes: None };
    check_pages(&scratch.table(Vec::new()), rows, &bare, limit, order)
        .await
        .map_err(|e| format!("default policy, no attributes: {e}"))
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn run(scratch: Scratch) {
    let started = std::time::Instant::now();
    let rows = stored_rows();
    insert_rows(&scratch.db, &rows).await;
    let cases = env_u64("FERROSTACK_PROPTEST_CASES").map_or(DEFAULT_CASES, |n| n as u32);
    let seed = env_u64("FERROSTACK_PROPTEST_SEED").unwrap_or(DEFAULT_SEED);
    let strategy = (policy(), user());
    let mut runner = TestRunner::new_with_rng(Config { cases, ..Config::default() }, rng(seed));
    for case in 0..cases {
        let mut tree = strategy.new_tree(&mut runner).unwrap();
        let (policy, user) = tree.current();
        let Err(first) = check_all(&scratch, &rows, &policy, &user, case).await else { continue };
        // Shrink: simplify while it still fails, complicate back when it passes.
        let mut smallest = (policy, user, first);
        let mut steps = 0;
        let mut simplified = tree.simplify();
        while simplified && steps < 2000 {
            steps += 1;
            let (policy, user) = tree.current();
            match check_all(&scratch, &rows, &policy, &user, case).await {
                Err(message) => {
                    smallest = (policy, user, message);
                    simplified = tree.simplify();
                }
                Ok(()) => simplified = tree.complicate(),
            }
        }
        let (policy, user, message) = smallest;
        panic!(
            "{:?}: case {case} of {cases} (seed {seed}) fails; smallest after {steps} shrink steps:\npolicy: \
             {policy:#?}\nuser: {user:?}\n{message}",
            scratch.dialect()
        );
    }
    eprintln!(
        "{:?}: {cases} cases x 4 actions and paged lists on {ROWS} rows agree ({:.1?})",
        scratch.dialect(),
        started.elapsed()
    );
}
