//! SQLite's side tables of attribute values on the real schema (a temp file migrated by the
//! migrations ferrostack ships): the migration is the generator's DDL for every tenant table;
//! rows stored before the migration are backfilled; a row shared by team is listed and readable,
//! and stops being so when its attributes change, comes back when they change back, and leaves
//! no entry behind when deleted.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrostack_authz::User;
use ferrostack_authz::policy::{AuthorizedTable, Order, access_values_table, sqlite_access_values_ddl};
use ferrostack_catalog::{Catalog, Db, Sql, Value};
use ferrostack_config::{BackendConfig, StorageConfig};
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::user;

/// The migration that creates the side tables.
const MIGRATION: &str = include_str!("../../../../migrations/sqlite/V6__access_values.sql");

/// The tenant tables the stores serve: (table, row key = tiebreak column, its type, created).
const TENANT_TABLES: [(&str, &str, &str, &str); 3] = [
    ("inference_store", "id", "TEXT", "created"),
    ("openai_conversations", "id", "TEXT", "created_at"),
    ("openai_responses", "sequence", "INTEGER", "created_at"),
];

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("access_values::migration_is_the_generators_ddl", || async { migration_is_generated() }),
        Test::plain("access_values::every_tenant_table_has_one", || async { every_tenant_table().await }),
        Test::plain("access_values::rows_before_the_migration_are_backfilled", || async { backfill().await }),
        Test::plain("access_values::many_values_walk_the_table_in_order", || async { many_values().await }),
        Test::plain("access_values::shared_rows_follow_their_attributes::inference_store", || async {
            follow("inference_store", "created", None).await;
        }),
        Test::plain("access_values::shared_rows_follow_their_attributes::openai_conversations", || async {
            follow("openai_conversations", "created_at", None).await;
        }),
        Test::plain("access_values::shared_rows_follow_their_attributes::openai_responses", || async {
            follow("openai_responses", "created_at", Some("sequence")).await;
        }),
    ]
}

/// Comments dropped, identifiers unquoted, whitespace collapsed: the file as a statement list.
fn normalize(sql: &str) -> String {
    let text: Vec<&str> = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect();
    let text = text.join(" ").replace('"', "");
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.replace("( ", "(").replace(" )", ")")
}

fn migration_is_generated() {
    let generated: Vec<String> = TENANT_TABLES
        .iter()
        .flat_map(|(table, key, key_type, created)| sqlite_access_values_ddl(table, key, key_type, created))
        .map(|s| format!("{s};"))
        .collect();
    assert_eq!(normalize(MIGRATION), normalize(&generated.join("\n")));
}

/// A temp SQLite file migrated by ferrostack's migrations (the catalog keeps the pool open).
async fn migrated() -> (Catalog, Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sql.db").display().to_string();
    let backend: BackendConfig = serde_json::from_value(json!({"type": "sql_sqlite", "db_path": path})).unwrap();
    let storage = StorageConfig { backends: BTreeMap::from([("sql".to_owned(), backend)]), ..StorageConfig::default() };
    let catalog = Catalog::open(&storage).await.unwrap();
    catalog.migrate().await.unwrap();
    let db = catalog.sql("sql").unwrap();
    (catalog, db, dir)
}

async fn strings(db: &Db, sql: &str) -> Vec<String> {
    db.fetch_all(Sql::new().push(sql)).await.unwrap().iter().map(|r| r.get::<String>("name").unwrap()).collect()
}

/// Every table with the owner columns (what the authorized store layer serves) has its side
/// table and the three triggers.
async fn every_tenant_table() {
    let (catalog, db, _dir) = migrated().await;
    let tables = strings(
        &db,
        "SELECT m.name AS name FROM sqlite_master AS m WHERE m.type = 'table' AND EXISTS \
         (SELECT 1 FROM pragma_table_info(m.name) WHERE name = 'owner_principal') ORDER BY 1",
    )
    .await;
    let mut expected: Vec<&str> = TENANT_TABLES.iter().map(|t| t.0).collect();
    expected.sort_unstable();
    assert_eq!(tables, expected);
    for table in tables {
        let side = access_values_table(&table);
        let objects = strings(&db, &format!("SELECT name FROM sqlite_master WHERE tbl_name = '{side}' OR (type = 'trigger' AND tbl_name = '{table}') ORDER BY 1")).await;
        assert_eq!(
            objects,
            [
                side.clone(),
                format!("{side}_delete"),
                format!("{side}_insert"),
                format!("{side}_row_idx"),
                format!("{side}_update")
            ],
            "{table}"
        );
    }
    catalog.close().await;
}

fn completion(id: &str, created: i64) -> Vec<Value> {
    vec![Value::from(id), Value::from(created), Value::from("m"), Value::from("[]"), Value::from("[]")]
}
const COMPLETION: [&str; 5] = ["id", "created", "model", "choices", "input_messages"];

async fn ids(table: &AuthorizedTable, caller: &User, limit: u32) -> Vec<String> {
    let page = table.list(Some(caller), "id", Sql::new(), None, limit, Order::Desc).await.unwrap();
    page.rows.iter().map(|r| r.get::<String>("id").unwrap()).collect()
}

async fn side_rows(db: &Db, table: &str) -> Vec<(String, String)> {
    let sql = format!("SELECT attribute_category, attribute_value FROM {} ORDER BY 1, 2", access_values_table(table));
    let rows = db.fetch_all(Sql::new().push(&sql)).await.unwrap();
    rows.iter()
        .map(|r| (r.get::<String>("attribute_category").unwrap(), r.get::<String>("attribute_value").unwrap()))
        .collect()
}

/// Rows stored before `V6__access_values` are in the side table once it is applied: the real
/// migration, run by the catalog on a file whose V6 was rolled back.
async fn backfill() {
    let (catalog, db, _dir) = migrated().await;
    // Back to V5: V6's objects dropped and its history row removed.
    for (table, ..) in TENANT_TABLES {
        let side = access_values_table(table);
        for trigger in ["insert", "update", "delete"] {
            db.execute(Sql::new().push(&format!("DROP TRIGGER {side}_{trigger}"))).await.unwrap();
        }
        db.execute(Sql::new().push(&format!("DROP TABLE {side}"))).await.unwrap();
    }
    db.execute(Sql::new().push("DELETE FROM refinery_schema_history WHERE version = 6")).await.unwrap();
    let table = AuthorizedTable::new(db.clone(), "inference_store", "id", "created", Arc::from(Vec::new())).unwrap();
    let alice = user("alice", &[("teams", &["red", "blue"]), ("roles", &["ops"])]);
    let bob = user("bob", &[("teams", &["red"])]);
    let carol = user("carol", &[("teams", &["green"])]);
    table.insert(Some(&alice), &COMPLETION, vec![completion("a1", 1), completion("a2", 2)]).await.unwrap();
    table.insert(Some(&carol), &COMPLETION, vec![completion("c1", 3)]).await.unwrap();
    table.insert(None, &COMPLETION, vec![completion("u1", 4)]).await.unwrap();

    let applied = catalog.migrate().await.unwrap();
    assert_eq!(applied[0].1.iter().map(ToString::to_string).collect::<Vec<_>>(), ["V6__access_values"]);
    let expected = [("roles", "ops"), ("roles", "ops"), ("teams", "blue"), ("teams", "blue"), ("teams", "green")]
        .into_iter()
        .chain([("teams", "red"), ("teams", "red")])
        .map(|(c, v)| (c.to_owned(), v.to_owned()))
        .collect::<Vec<_>>();
    assert_eq!(side_rows(&db, "inference_store").await, expected);
    // bob shares red with alice: her rows, the unowned one, not carol's.
    assert_eq!(ids(&table, &bob, 10).await, ["u1", "a2", "a1"]);
    assert_eq!(ids(&table, &bob, 1).await, ["u1"]);
    assert!(table.get(Some(&bob), "id", "a1").await.unwrap().is_some());
    assert!(table.get(Some(&bob), "id", "c1").await.unwrap().is_none());
    catalog.close().await;
}

/// One owned row shared by team on `table`, its attributes changed underneath (as an
/// operator's UPDATE would), then deleted.
async fn follow(name: &str, created: &str, tiebreak: Option<&str>) {
    let (catalog, db, _dir) = migrated().await;
    let mut table = AuthorizedTable::new(db.clone(), name, "id", created, Arc::from(Vec::new())).unwrap();
    if let Some(column) = tiebreak {
        table = table.with_tiebreak(column);
    }
    let (columns, rows): (Vec<&str>, Vec<Vec<Value>>) = match name {
        "inference_store" => (COMPLETION.to_vec(), vec![completion("r1", 10), completion("r2", 20)]),
        "openai_conversations" => (
            vec!["id", "created_at"],
            vec![vec![Value::from("r1"), Value::from(10_i64)], vec![Value::from("r2"), Value::from(20_i64)]],
        ),
        _ => (
            vec!["id", "created_at", "model", "response_object", "input_items"],
            ["r1", "r2"]
                .iter()
                .zip([10_i64, 20])
                .map(|(id, t)| {
                    vec![Value::from(*id), Value::from(t), Value::from("m"), Value::from("{}"), Value::from("[]")]
                })
                .collect(),
        ),
    };
    let alice = user("alice", &[("teams", &["red"])]);
    let bob = user("bob", &[("teams", &["red"])]);
    let eve = user("eve", &[("teams", &["blue"])]);
    let mut rows = rows.into_iter();
    table.insert(Some(&alice), &columns, vec![rows.next().unwrap()]).await.unwrap();
    table.insert(Some(&eve), &columns, rows.collect()).await.unwrap();
    assert_eq!(ids(&table, &bob, 10).await, ["r1"], "shared by team red");
    assert!(table.get(Some(&bob), "id", "r1").await.unwrap().is_some());

    let set_attributes = |attributes: serde_json::Value| {
        let sql = Sql::new()
            .push(&format!("UPDATE {name} SET access_attributes = "))
            .bind(Value::Json(attributes))
            .push(" WHERE id = 'r1'");
        let db = db.clone();
        async move { db.execute(sql).await.unwrap() }
    };
    set_attributes(json!({"teams": ["green"]})).await;
    assert_eq!(ids(&table, &bob, 10).await, Vec::<String>::new(), "no longer shared");
    assert!(table.get(Some(&bob), "id", "r1").await.unwrap().is_none());
    assert_eq!(ids(&table, &alice, 10).await, ["r1"], "still alice's own");
    set_attributes(json!({"teams": "red"})).await;
    assert_eq!(ids(&table, &bob, 10).await, Vec::<String>::new(), "a string is not a list");
    set_attributes(json!({"teams": ["blue", "red"]})).await;
    assert_eq!(ids(&table, &bob, 10).await, ["r1"], "shared again");
    assert_eq!(ids(&table, &eve, 10).await, ["r2", "r1"], "eve's own and one shared by blue");

    table.delete_one(Some(&alice), "r1").await.unwrap();
    assert_eq!(ids(&table, &bob, 10).await, Vec::<String>::new());
    assert_eq!(side_rows(&db, name).await, [("teams".to_owned(), "blue".to_owned())], "eve's row alone");
    catalog.close().await;
}

/// A caller with more values than a list splits into arms: one walk in order with the per-row
/// probe, the same rows.
async fn many_values() {
    let (catalog, db, _dir) = migrated().await;
    let table = AuthorizedTable::new(db.clone(), "inference_store", "id", "created", Arc::from(Vec::new())).unwrap();
    let alice = user("alice", &[("teams", &["red"])]);
    let carol = user("carol", &[("teams", &["green"])]);
    table.insert(Some(&alice), &COMPLETION, vec![completion("a1", 1), completion("a2", 3)]).await.unwrap();
    table.insert(Some(&carol), &COMPLETION, vec![completion("c1", 2)]).await.unwrap();
    let names: Vec<String> = (0..150).map(|i| format!("team{i}")).chain(["red".to_owned()]).collect();
    let values: Vec<&str> = names.iter().map(String::as_str).collect();
    let many = user("bob", &[("teams", &values)]);
    let few = user("bob", &[("teams", &["red", "team1"])]);
    // 95 values and bob's own and the unowned rows: 97 arms, just under the limit.
    let near: Vec<&str> = values[56..].to_vec();
    let near = user("bob", &[("teams", &near)]);
    let text = |caller: &User| {
        let sql = table.list_sql(Some(caller), "id", Sql::new(), None, 10, Order::Desc).unwrap();
        sql.text(ferrostack_catalog::Dialect::Sqlite)
    };
    assert!(text(&few).contains("listed_value"), "few values: one arm per value");
    assert!(!text(&many).contains("listed_value"), "151 values: no arm per value");
    assert!(text(&near).contains("listed_value"), "95 values: one arm per value");
    assert_eq!(ids(&table, &near, 10).await, ["a2", "a1"]);
    assert_eq!(ids(&table, &many, 10).await, ["a2", "a1"]);
    assert_eq!(ids(&table, &few, 10).await, ["a2", "a1"]);
    assert_eq!(ids(&table, &many, 1).await, ["a2"]);
    catalog.close().await;
}
