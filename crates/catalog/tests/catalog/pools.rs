//! Pool sharing and bounds, readiness, close.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use ferrostack_catalog::{Catalog, Db, Error, Sql, Value};
use ferrostack_config::KvStoreRef;
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::{self, TempDir};

fn kv_ref(backend: &str, namespace: &str) -> KvStoreRef {
    KvStoreRef { backend: backend.to_owned(), namespace: namespace.to_owned() }
}

/// Two namespaces on "kv" share one pool; "kv2" has its own.
async fn assert_shared(catalog: &Catalog) {
    let a = catalog.kv(&kv_ref("kv", "a")).unwrap();
    let b = catalog.kv(&kv_ref("kv", "b")).unwrap();
    let other = catalog.kv(&kv_ref("kv2", "a")).unwrap();
    assert!(a.shares_pool_with(&b));
    assert!(!a.shares_pool_with(&other));
    assert_eq!(catalog.pool_status("kv").unwrap().size, 0, "no connection before first use");
    a.set("k", "v", None).await.unwrap();
    let through_b = b.pool_status();
    assert!(through_b.size >= 1, "b sees the connection a opened: {through_b:?}");
    assert_eq!(through_b, catalog.pool_status("kv").unwrap());
    assert_eq!(other.pool_status().size, 0, "the other backend's pool is untouched");
    // A clone of the catalog is the same catalog.
    let clone = catalog.clone();
    assert!(clone.kv(&kv_ref("kv", "c")).unwrap().shares_pool_with(&a));
}

/// Run 8 slow statements at once on a pool of 2 and watch the pool never grow past 2.
async fn assert_bounded(catalog: &Catalog, backend: &str, slow: Sql) {
    let db = catalog.sql(backend).unwrap();
    assert_eq!(db.pool_status().max_size, 2);
    let done = Arc::new(AtomicBool::new(false));
    let max_seen = Arc::new(AtomicUsize::new(0));
    let watcher = {
        let (db, done, max_seen) = (db.clone(), Arc::clone(&done), Arc::clone(&max_seen));
        ferrostack_testkit::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                max_seen.fetch_max(db.pool_status().size, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let (db, slow) = (db.clone(), slow.clone());
        tasks.spawn(async move { db.fetch_all(slow).await.map(|_| ()) });
    }
    while let Some(result) = tasks.join_next().await {
        result.unwrap().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.await.unwrap();
    let seen = max_seen.load(Ordering::Relaxed);
    assert!((1..=2).contains(&seen), "pool size stayed within 2: saw {seen}");
    assert!(db.pool_status().size <= 2);
}

async fn backend_pid(db: &Db) -> i64 {
    let row = db.fetch_optional(Sql::new().push("SELECT pg_backend_pid() AS pid")).await.unwrap().unwrap();
    row.get("pid").unwrap()
}

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("pools::sqlite::namespaces_share_one_pool", || async {
            let dir = TempDir::new();
            let storage = support::storage([
                ("kv", support::sqlite("kv_sqlite", &dir.file("kv.db"))),
                ("kv2", support::sqlite("kv_sqlite", &dir.file("kv2.db"))),
            ]);
            let catalog = support::open_migrated(&storage).await;
            assert_shared(&catalog).await;
            catalog.close().await;
        }),
        Test::postgres("pools::postgres::namespaces_share_one_pool", |pg| async move {
            let (db1, db2) = (pg.fresh_database().await, pg.fresh_database().await);
            let storage = support::storage([
                ("kv", support::postgres("kv_postgres", &db1, json!({}))),
                ("kv2", support::postgres("kv_postgres", &db2, json!({}))),
            ]);
            let catalog = support::open_migrated(&storage).await;
            assert_shared(&catalog).await;
            catalog.close().await;
        }),
        Test::plain("pools::sqlite::pool_never_exceeds_pool_size", || async {
            let dir = TempDir::new();
            let config = support::backend(json!({"type": "sql_sqlite", "db_path": dir.file("s.db"), "pool_size": 2}));
            let catalog = support::open(&support::storage([("sql", config)])).await;
            // A query that keeps a connection busy for a moment.
            let slow = Sql::new().push(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000) SELECT MAX(x) AS m FROM c",
            );
            assert_bounded(&catalog, "sql", slow).await;
            catalog.close().await;
        }),
        Test::postgres("pools::postgres::pool_never_exceeds_pool_size", |pg| async move {
            let db = pg.fresh_database().await;
            let config = support::postgres("sql_postgres", &db, json!({"pool_size": 2}));
            let catalog = support::open(&support::storage([("sql", config)])).await;
            assert_bounded(&catalog, "sql", Sql::new().push("SELECT pg_sleep(0.05)::text AS s")).await;
            // The server agrees: at most two ferrostack sessions on this database.
            let sessions: i64 = db
                .client()
                .await
                .query_one(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND application_name = 'ferrostack'",
                    &[&db.name()],
                )
                .await
                .unwrap()
                .get(0);
            assert!((1..=2).contains(&sessions), "{sessions} sessions");
            catalog.close().await;
        }),
        Test::postgres("pools::postgres::pool_timeout_is_transient", |pg| async move {
            let db = pg.fresh_database().await;
            let config = support::postgres("sql_postgres", &db, json!({"pool_size": 1, "wait_timeout_ms": 100}));
            let catalog = support::open(&support::storage([("sql", config)])).await;
            let sql = catalog.sql("sql").unwrap();
            let holder = {
                let sql = sql.clone();
                ferrostack_testkit::spawn(async move {
                    sql.fetch_all(Sql::new().push("SELECT pg_sleep(1)::text AS s")).await
                })
            };
            // Wait until the holder has the pool's only connection (not for a guessed 200 ms).
            ferrostack_testkit::wait_for("the holder to take the only connection", Duration::from_secs(10), || async {
                let status = sql.pool_status();
                (status.size == 1 && status.available == 0).then_some(())
            })
            .await;
            let err = sql.fetch_all(Sql::new().push("SELECT 1 AS one")).await.unwrap_err();
            assert!(matches!(err, Error::PoolTimeout { pool_size: 1, .. }), "{err:?}");
            assert!(err.is_transient());
            let msg = err.to_string();
            assert!(msg.contains("'sql'") && msg.contains("100 ms") && msg.contains(db.name()), "{msg}");
            holder.await.unwrap().unwrap();
            catalog.close().await;
        }),
        Test::postgres("pools::postgres::pool_recycle_retires_old_connections", |pg| async move {
            let db = pg.fresh_database().await;
            let storage = support::storage([
                ("recycled", support::postgres("sql_postgres", &db, json!({"pool_size": 1, "pool_recycle": 0}))),
                ("kept", support::postgres("sql_postgres", &db, json!({"pool_size": 1, "pool_recycle": -1}))),
            ]);
            let catalog = support::open(&storage).await;
            let (recycled, kept) = (catalog.sql("recycled").unwrap(), catalog.sql("kept").unwrap());
            assert_ne!(backend_pid(&recycled).await, backend_pid(&recycled).await, "pool_recycle 0: never reused");
            assert_eq!(backend_pid(&kept).await, backend_pid(&kept).await, "pool_recycle -1: reused");
            catalog.close().await;
        }),
        Test::postgres("pools::postgres::dead_connections_are_replaced", |pg| async move {
            let db = pg.fresh_database().await;
            let config = support::postgres("sql_postgres", &db, json!({"pool_size": 1, "pool_pre_ping": true}));
            let catalog = support::open(&support::storage([("sql", config)])).await;
            let sql = catalog.sql("sql").unwrap();
            let pid = backend_pid(&sql).await;
            let admin = db.client().await;
            admin.execute("SELECT pg_terminate_backend($1)", &[&i32::try_from(pid).unwrap()]).await.unwrap();
            for _ in 0..200 {
                let alive: i64 = admin
                    .query_one("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = $1", &[&i32::try_from(pid).unwrap()])
                    .await
                    .unwrap()
                    .get(0);
                if alive == 0 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let next = backend_pid(&sql).await;
            assert_ne!(next, pid, "the killed connection was not handed out again");
            catalog.close().await;
        }),
        Test::plain("pools::sqlite::connection_settings", || async {
            let dir = TempDir::new();
            let config =
                support::backend(json!({"type": "sql_sqlite", "db_path": dir.file("s.db"), "busy_timeout_ms": 1234}));
            let catalog = support::open(&support::storage([("sql", config)])).await;
            let db = catalog.sql("sql").unwrap();
            for (pragma, expected) in [
                ("journal_mode", Value::Text("wal".into())),
                ("foreign_keys", Value::Int(1)),
                ("synchronous", Value::Int(1)),
                ("busy_timeout", Value::Int(1234)),
            ] {
                let row = db.fetch_optional(Sql::new().push("PRAGMA ").push(pragma)).await.unwrap().unwrap();
                assert_eq!(row.values()[0], expected, "PRAGMA {pragma}");
            }
            catalog.close().await;
        }),
        Test::postgres("pools::readiness_and_close", |pg| async move {
            let db = pg.fresh_database().await;
            let dir = TempDir::new();
            let kv = support::sqlite("kv_sqlite", &dir.file("kv.db"));
            support::open_migrated(&support::storage([("kv", kv.clone())])).await.close().await;
            let storage = support::storage([
                ("kv", kv),
                ("sql", support::postgres("sql_postgres", &db, json!({}))),
                (
                    "down",
                    support::backend(json!({"type": "sql_postgres", "host": "127.0.0.1", "port": 1, "user": "x"})),
                ),
            ]);
            let catalog = support::open(&storage).await;
            let statuses = catalog.readiness().await;
            let names: Vec<&str> = statuses.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, ["down", "kv", "sql"]);
            assert!(!statuses[0].ok && statuses[0].error.as_deref().is_some_and(|e| e.contains("'down'")));
            assert_eq!(statuses[0].type_name, "sql_postgres");
            assert!(statuses[1].ok && statuses[1].error.is_none(), "{:?}", statuses[1]);
            assert_eq!(statuses[1].type_name, "kv_sqlite");
            assert!(statuses[2].ok, "{:?}", statuses[2]);

            let kv = catalog.kv(&kv_ref("kv", "n")).unwrap();
            kv.set("k", "v", None).await.unwrap();
            catalog.close().await;
            catalog.close().await;
            let err = kv.get("k").await.unwrap_err();
            assert!(matches!(err, Error::Closed { .. }), "{err:?}");
            assert!(err.to_string().contains("'kv'"), "{err}");
            assert!(catalog.readiness().await.iter().all(|s| !s.ok));
        }),
    ]
}
