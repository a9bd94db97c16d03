//! The SQL layer on both dialects, against a scratch table (test-only DDL).

use std::future::Future;
use std::pin::Pin;

use chrono::{DateTime, Duration, TimeZone, Utc};
use ferrostack_catalog::sql::dialect;
use ferrostack_catalog::{Catalog, Db, Dialect, Error, Sql, Value};
use ferrostack_testkit::{Test, TestDatabase};
use serde_json::json;

use crate::support::{self, TempDir};

pub struct Scratch {
    pub db: Db,
    pub catalog: Catalog,
    _dir: Option<TempDir>,
    _pg: Option<TestDatabase>,
}

const PG_DDL: &str = "CREATE TABLE scratch (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', n BIGINT, small INTEGER, f DOUBLE PRECISION,
    b BOOLEAN, doc JSONB, created TIMESTAMPTZ)";
const SQLITE_DDL: &str = "CREATE TABLE scratch (
    id TEXT PRIMARY KEY, owner TEXT NOT NULL DEFAULT '', n INTEGER, small INTEGER, f REAL,
    b INTEGER, doc TEXT, created INTEGER)";

async fn scratch(catalog: Catalog, dir: Option<TempDir>, pg: Option<TestDatabase>) -> Scratch {
    let db = catalog.sql("sql").expect("sql backend");
    let ddl = match db.dialect() {
        Dialect::Postgres => PG_DDL,
        Dialect::Sqlite => SQLITE_DDL,
    };
    db.execute(Sql::new().push(ddl)).await.expect("create scratch table");
    Scratch { db, catalog, _dir: dir, _pg: pg }
}

pub async fn sqlite_scratch() -> Scratch {
    let dir = TempDir::new();
    let storage = support::storage([("sql", support::sqlite("sql_sqlite", &dir.file("sql.db")))]);
    scratch(support::open(&storage).await, Some(dir), None).await
}

pub async fn postgres_scratch(db: TestDatabase) -> Scratch {
    let storage = support::storage([("sql", support::postgres("sql_postgres", &db, json!({})))]);
    scratch(support::open(&storage).await, None, Some(db)).await
}

type Case = fn(Scratch) -> Pin<Box<dyn Future<Output = ()>>>;

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("hostile_strings_are_bound_not_spliced", |s| Box::pin(hostile_strings(s))),
        ("json_round_trip_and_helpers", |s| Box::pin(json_round_trip(s))),
        ("nulls", |s| Box::pin(nulls(s))),
        ("scalar_types_round_trip", |s| Box::pin(scalar_types(s))),
        ("transaction_rolls_back_on_error", |s| Box::pin(transaction_rollback(s))),
        ("multi_row_insert", |s| Box::pin(multi_row_insert(s))),
        ("typed_getter_errors_name_the_column", |s| Box::pin(typed_getter_errors(s))),
        ("upsert_only_for_same_owner", |s| Box::pin(upsert(s))),
        ("now_and_counts", |s| Box::pin(now_and_counts(s))),
        ("query_error_names_backend", |s| Box::pin(query_error(s))),
    ]
}

pub fn tests() -> Vec<Test> {
    let mut tests = Vec::new();
    for (name, case) in cases() {
        tests.push(Test::plain(format!("sql::sqlite::{name}"), move || async move {
            let s = sqlite_scratch().await;
            let catalog = s.catalog.clone();
            case(s).await;
            catalog.close().await;
        }));
        tests.push(Test::postgres(format!("sql::postgres::{name}"), move |pg| async move {
            let s = postgres_scratch(pg.fresh_database().await).await;
            let catalog = s.catalog.clone();
            case(s).await;
            catalog.close().await;
        }));
    }
    tests.push(Test::plain("sql::sqlite::regexp_function_is_registered", || async {
        let s = sqlite_scratch().await;
        sqlite_regexp(&s.db).await;
        s.catalog.close().await;
    }));
    tests
}

/// SQLite has a REGEXP operator but no function behind it: the catalog registers one on every
/// connection, running Rust's regex (the access-policy compiler relies on it).
async fn sqlite_regexp(db: &Db) {
    let test = |pattern: Option<&str>, text: Option<&str>| {
        Sql::new()
            .push("SELECT ")
            .bind(text.map_or(Value::Null, Value::from))
            .push(" REGEXP ")
            .bind(pattern.map_or(Value::Null, Value::from))
            .push(" AS m")
    };
    for (pattern, text, want) in [
        (r"\A(?:sql_record::t::file-[a-f0-9-]+)", "sql_record::t::file-0a-1", Some(true)),
        (r"\A(?:sql_record::t::file-[a-f0-9-]+)", "sql_record::t::files", Some(false)),
        ("b+", "abbc", Some(true)),
        (r"\Ab", "abc", Some(false)),
        ("é", "café", Some(true)),
    ] {
        let row = db.fetch_optional(test(Some(pattern), Some(text))).await.unwrap().unwrap();
        let got: Option<bool> = row.get("m").unwrap();
        assert_eq!(got, want, "{text} REGEXP {pattern}");
    }
    for (pattern, text) in [(None, Some("a")), (Some("a"), None)] {
        let row = db.fetch_optional(test(pattern, text)).await.unwrap().unwrap();
        assert_eq!(row.get::<Option<bool>>("m").unwrap(), None, "NULL in, NULL out");
    }
    let err = db.fetch_optional(test(Some("("), Some("a"))).await.expect_err("invalid regex");
    assert!(err.to_string().contains("regex"), "{err}");
}

async fn count(db: &Db) -> i64 {
    let row = db.fetch_optional(Sql::new().push("SELECT COUNT(*) AS c FROM scratch")).await.unwrap().unwrap();
    row.get("c").unwrap()
}

fn insert(id: &str, owner: &str, n: impl Into<Value>) -> Sql {
    Sql::new()
        .push("INSERT INTO scratch (id, owner, n) VALUES (")
        .bind(id)
        .push(", ")
        .bind(owner)
        .push(", ")
        .bind(n)
        .push(")")
}

async fn hostile_strings(s: Scratch) {
    let db = &s.db;
    let hostile = [
        "'; DROP TABLE scratch; --",
        "%",
        "_",
        "a%b_c",
        "back\\slash",
        "\\",
        "\\'",
        "\"double\"",
        "it's",
        "",
        "$1",
        "?1",
        "h\u{e9}llo \u{1f389} \u{4e2d}\u{6587}",
        "new\nline\ttab",
    ];
    for (i, id) in hostile.iter().enumerate() {
        db.execute(insert(id, "o", i64::try_from(i).unwrap())).await.unwrap_or_else(|e| panic!("insert {id:?}: {e}"));
    }
    assert_eq!(count(db).await, i64::try_from(hostile.len()).unwrap(), "the table survived and has every row");
    for (i, id) in hostile.iter().enumerate() {
        let rows = db.fetch_all(Sql::new().push("SELECT id, n FROM scratch WHERE id = ").bind(*id)).await.unwrap();
        assert_eq!(rows.len(), 1, "exactly one row for {id:?}");
        assert_eq!(rows[0].get::<String>("id").unwrap(), *id);
        assert_eq!(rows[0].get::<i64>("n").unwrap(), i64::try_from(i).unwrap());
    }
    // LIKE with escaped wildcards matches literally.
    for (pattern, expected) in [
        ("%", vec!["%", "a%b_c"]),
        ("_", vec!["_", "a%b_c"]),
        ("a%b", vec!["a%b_c"]),
        ("\\", vec!["\\", "\\'", "back\\slash"]),
    ] {
        let sql = Sql::new()
            .push("SELECT id FROM scratch WHERE id LIKE ")
            .bind(format!("%{}%", dialect::escape_like(pattern)))
            .push(" ESCAPE '\\'");
        let mut ids: Vec<String> = db.fetch_all(sql).await.unwrap().iter().map(|r| r.get("id").unwrap()).collect();
        // Sorted here: ORDER BY on a PostgreSQL text column follows the database's locale.
        ids.sort();
        assert_eq!(ids, expected, "LIKE contains {pattern:?}");
    }
    // IN lists.
    let sql = Sql::new().push("SELECT id FROM scratch WHERE id IN (").push_bind_list(["%", "_", "nope"]).push(")");
    let mut ids: Vec<String> = db.fetch_all(sql).await.unwrap().iter().map(|r| r.get("id").unwrap()).collect();
    ids.sort();
    assert_eq!(ids, vec!["%", "_"]);
}

async fn json_round_trip(s: Scratch) {
    let db = &s.db;
    let doc = json!({
        "roles": ["admin", "dev"],
        "teams": "not-an-array",
        "s": "x'y\"z \u{e9}",
        "nested": {"k": null, "list": [1, 2.5, true, {"deep": "\u{1f389}"}]},
        "big": 9_007_199_254_740_993_i64,
    });
    let sql =
        Sql::new().push("INSERT INTO scratch (id, doc) VALUES (").bind("j").push(", ").bind(doc.clone()).push(")");
    db.execute(sql).await.unwrap();
    db.execute(Sql::new().push("INSERT INTO scratch (id) VALUES (").bind("no-doc").push(")")).await.unwrap();
    let row =
        db.fetch_optional(Sql::new().push("SELECT doc FROM scratch WHERE id = ").bind("j")).await.unwrap().unwrap();
    assert_eq!(row.get::<serde_json::Value>("doc").unwrap(), doc);

    let d = db.dialect();
    for (key, item, expected) in [
        ("roles", "admin", vec!["j"]),
        ("roles", "dev", vec!["j"]),
        ("roles", "guest", vec![]),
        ("teams", "not-an-array", vec![]),
        ("missing", "admin", vec![]),
    ] {
        let sql = Sql::new()
            .push("SELECT id FROM scratch WHERE ")
            .push_sql(dialect::json_array_contains(d, "doc", key, item))
            .push(" ORDER BY id");
        let ids: Vec<String> = db.fetch_all(sql).await.unwrap().iter().map(|r| r.get("id").unwrap()).collect();
        assert_eq!(ids, expected, "{key} contains {item}");
    }
    let sql = Sql::new()
        .push("SELECT ")
        .push_sql(dialect::json_text(d, "doc", "s"))
        .push(" AS s FROM scratch WHERE id = ")
        .bind("j");
    let row = db.fetch_optional(sql).await.unwrap().unwrap();
    assert_eq!(row.get::<String>("s").unwrap(), "x'y\"z \u{e9}");
    let sql = Sql::new()
        .push("SELECT ")
        .push_sql(dialect::json_text(d, "doc", "s"))
        .push(" AS s FROM scratch WHERE id = ")
        .bind("no-doc");
    let row = db.fetch_optional(sql).await.unwrap().unwrap();
    assert_eq!(row.get::<Option<String>>("s").unwrap(), None);
}

async fn nulls(s: Scratch) {
    let db = &s.db;
    let sql = Sql::new().push("INSERT INTO scratch (id, n, small, f, b, doc, created) ").push_values([vec![
        Value::from("null"),
        Value::Null,
        Value::from(None::<i64>),
        Value::Null,
        Value::Null,
        Value::Null,
        Value::from(None::<DateTime<Utc>>),
    ]]);
    db.execute(sql).await.unwrap();
    let row = db
        .fetch_optional(Sql::new().push("SELECT n, small, f, b, doc, created FROM scratch WHERE id = ").bind("null"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<Option<i64>>("n").unwrap(), None);
    assert_eq!(row.get::<Option<i32>>("small").unwrap(), None);
    assert_eq!(row.get::<Option<f64>>("f").unwrap(), None);
    assert_eq!(row.get::<Option<bool>>("b").unwrap(), None);
    assert_eq!(row.get::<Option<serde_json::Value>>("doc").unwrap(), None);
    assert_eq!(row.get::<Option<DateTime<Utc>>>("created").unwrap(), None);
    let err = row.get::<i64>("n").unwrap_err();
    assert!(matches!(&err, Error::Column { column, .. } if column == "n"), "{err:?}");
    assert!(err.to_string().contains("NULL"), "{err}");
    // IS NULL with a bound NULL-able value.
    let rows = db.fetch_all(Sql::new().push("SELECT id FROM scratch WHERE n IS NULL")).await.unwrap();
    assert_eq!(rows.len(), 1);
}

async fn scalar_types(s: Scratch) {
    let db = &s.db;
    // Millisecond precision: what SQLite keeps.
    let created = Utc.with_ymd_and_hms(2024, 2, 29, 23, 59, 58).unwrap() + Duration::milliseconds(123);
    let sql = Sql::new().push("INSERT INTO scratch (id, n, small, f, b, created) ").push_values([
        vec![
            Value::from("max"),
            Value::from(i64::MAX),
            Value::from(i32::MIN),
            Value::from(-1.5e300),
            Value::from(true),
            Value::from(created),
        ],
        vec![
            Value::from("min"),
            Value::from(i64::MIN),
            Value::from(7_i64),
            Value::from(0.1),
            Value::from(false),
            Value::Null,
        ],
    ]);
    assert_eq!(db.execute(sql).await.unwrap(), 2);
    let rows = db.fetch_all(Sql::new().push("SELECT * FROM scratch ORDER BY id")).await.unwrap();
    assert_eq!(rows.len(), 2);
    let (max, min) = (&rows[0], &rows[1]);
    assert_eq!(max.get::<i64>("n").unwrap(), i64::MAX);
    assert_eq!(max.get::<i32>("small").unwrap(), i32::MIN);
    assert_eq!(max.get::<f64>("f").unwrap(), -1.5e300);
    assert!(max.get::<bool>("b").unwrap());
    assert_eq!(max.get::<DateTime<Utc>>("created").unwrap(), created);
    assert_eq!(min.get::<i64>("n").unwrap(), i64::MIN);
    assert_eq!(min.get::<f64>("f").unwrap(), 0.1);
    assert!(!min.get::<bool>("b").unwrap());
    assert_eq!(min.get::<String>("owner").unwrap(), "", "column default");
    // Timestamps compare correctly in SQL on both dialects.
    let later = Sql::new().push("SELECT id FROM scratch WHERE created > ").bind(created - Duration::milliseconds(1));
    assert_eq!(db.fetch_all(later).await.unwrap().len(), 1);
    let sql = Sql::new().push("SELECT id FROM scratch WHERE created > ").bind(created);
    assert_eq!(db.fetch_all(sql).await.unwrap().len(), 0);
    // An integer that does not fit the column's parameter type is refused on PostgreSQL
    // (SQLite integers are 64-bit).
    let sql = Sql::new().push("UPDATE scratch SET small = ").bind(1_i64 << 40).push(" WHERE id = ").bind("min");
    match db.dialect() {
        Dialect::Postgres => {
            let err = db.execute(sql).await.unwrap_err();
            assert!(err.to_string().contains("int4"), "{err}");
        }
        Dialect::Sqlite => assert_eq!(db.execute(sql).await.unwrap(), 1),
    }
}

async fn transaction_rollback(s: Scratch) {
    let db = &s.db;
    let err = db
        .transaction(vec![insert("a", "o", 1_i64), insert("b", "o", 2_i64), insert("a", "o", 3_i64)])
        .await
        .unwrap_err();
    assert!(err.is_unique_violation(), "duplicate key: {err}");
    assert!(!err.is_transient(), "{err}");
    assert_eq!(count(db).await, 0, "nothing of the failed transaction was kept");
    let counts = db
        .transaction(vec![
            insert("a", "o", 1_i64),
            insert("b", "o", 2_i64),
            Sql::new().push("UPDATE scratch SET n = n + 10"),
        ])
        .await
        .unwrap();
    assert_eq!(counts, vec![1, 1, 2]);
    assert_eq!(count(db).await, 2);
    // A failing statement of another kind (bad SQL) also rolls back.
    let err =
        db.transaction(vec![insert("c", "o", 3_i64), Sql::new().push("UPDATE nope SET x = 1")]).await.unwrap_err();
    assert!(matches!(err, Error::Query { .. }), "{err:?}");
    assert_eq!(count(db).await, 2);
    assert_eq!(db.transaction(vec![]).await.unwrap(), Vec::<u64>::new());
    // The pool is still usable after the failures.
    assert_eq!(db.execute(insert("d", "o", 4_i64)).await.unwrap(), 1);
}

async fn multi_row_insert(s: Scratch) {
    let db = &s.db;
    let rows: Vec<Vec<Value>> = (0..250_i64)
        .map(|i| {
            vec![Value::from(format!("id-{i:04}")), Value::from("owner"), Value::from(i), Value::from(json!({"i": i}))]
        })
        .collect();
    let sql = Sql::new().push("INSERT INTO scratch (id, owner, n, doc) ").push_values(rows);
    assert_eq!(sql.bind_count(), 1000);
    assert_eq!(db.execute(sql).await.unwrap(), 250);
    assert_eq!(count(db).await, 250);
    let last = db
        .fetch_optional(Sql::new().push("SELECT id, n, doc FROM scratch ORDER BY id DESC LIMIT 1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(last.get::<String>("id").unwrap(), "id-0249");
    assert_eq!(last.get::<serde_json::Value>("doc").unwrap(), json!({"i": 249}));
    // RETURNING works on both.
    let sql = Sql::new()
        .push("INSERT INTO scratch (id, n) ")
        .push_values([vec![Value::from("r1"), Value::from(1_i64)], vec![Value::from("r2"), Value::from(2_i64)]])
        .push(" RETURNING id");
    let ids: Vec<String> = db.fetch_all(sql).await.unwrap().iter().map(|r| r.get("id").unwrap()).collect();
    assert_eq!(ids.len(), 2);
}

async fn typed_getter_errors(s: Scratch) {
    let db = &s.db;
    let sql =
        Sql::new().push("INSERT INTO scratch (id, n, doc) VALUES (").bind("x").push(", 5, ").bind(json!([1])).push(")");
    db.execute(sql).await.unwrap();
    let row = db.fetch_optional(Sql::new().push("SELECT id, n, doc FROM scratch")).await.unwrap().unwrap();
    let err = row.get::<i64>("id").unwrap_err();
    assert_eq!(err.to_string(), "column 'id': expected integer, found text");
    let err = row.get::<String>("missing").unwrap_err();
    assert!(err.to_string().contains("'missing'") && err.to_string().contains("id, n, doc"), "{err}");
    let err = row.get::<bool>("n").unwrap_err();
    assert!(err.to_string().starts_with("column 'n':"), "{err}");
    let err = row.get::<String>("n").unwrap_err();
    assert_eq!(err.to_string(), "column 'n': expected text, found integer");
    assert_eq!(row.get::<serde_json::Value>("doc").unwrap(), json!([1]));
    assert_eq!(row.get::<Value>("n").unwrap(), Value::Int(5));
    assert_eq!(row.columns(), ["id", "n", "doc"]);
}

async fn upsert(s: Scratch) {
    let db = &s.db;
    let upsert = |id: &str, owner: &str, n: i64| {
        Sql::new()
            .push("INSERT INTO scratch (id, owner, n) ")
            .push_values([vec![Value::from(id), Value::from(owner), Value::from(n)]])
            .push(" ")
            .push_sql(dialect::on_conflict_update(&["id"], &["n"]))
            .push(" WHERE scratch.owner = excluded.owner")
    };
    assert_eq!(db.execute(upsert("c1", "alice", 1)).await.unwrap(), 1);
    assert_eq!(db.execute(upsert("c1", "alice", 2)).await.unwrap(), 1, "same owner replaces");
    assert_eq!(db.execute(upsert("c1", "mallory", 3)).await.unwrap(), 0, "another owner touches nothing");
    let row = db
        .fetch_optional(Sql::new().push("SELECT owner, n FROM scratch WHERE id = ").bind("c1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.get::<String>("owner").unwrap(), "alice");
    assert_eq!(row.get::<i64>("n").unwrap(), 2);
    let nothing = Sql::new()
        .push("INSERT INTO scratch (id, owner, n) VALUES (")
        .bind("c1")
        .push(", 'x', 9) ")
        .push_sql(dialect::on_conflict_update(&["id"], &[]));
    assert_eq!(db.execute(nothing).await.unwrap(), 0);
}

async fn now_and_counts(s: Scratch) {
    let db = &s.db;
    let d = db.dialect();
    let before = Utc::now() - Duration::seconds(5);
    let sql = Sql::new()
        .push("INSERT INTO scratch (id, created) VALUES (")
        .bind("t")
        .push(", ")
        .push_sql(dialect::now(d))
        .push(")");
    db.execute(sql).await.unwrap();
    let row = db.fetch_optional(Sql::new().push("SELECT created FROM scratch")).await.unwrap().unwrap();
    let created: DateTime<Utc> = row.get("created").unwrap();
    assert!(created >= before && created <= Utc::now() + Duration::seconds(5), "now() is now: {created}");
    assert_eq!(
        db.fetch_optional(Sql::new().push("SELECT id FROM scratch WHERE id = ").bind("nope")).await.unwrap(),
        None
    );
    assert_eq!(db.execute(Sql::new().push("UPDATE scratch SET n = 1 WHERE id = ").bind("nope")).await.unwrap(), 0);
    assert_eq!(db.execute(Sql::new().push("DELETE FROM scratch")).await.unwrap(), 1);
}

async fn query_error(s: Scratch) {
    let db = &s.db;
    let err = db.fetch_all(Sql::new().push("SELECT * FROM no_such_table")).await.unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Query { .. }), "{err:?}");
    assert!(msg.contains("'sql'") && msg.contains(db.backend().type_name), "{msg}");
    assert!(msg.contains(&db.backend().location), "{msg}");
    assert!(msg.contains("no_such_table"), "the driver's reason: {msg}");
    assert!(!err.is_transient());
}
