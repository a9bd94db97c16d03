//! Migrations: status before and after, twice is a no-op, concurrent migrators, a schema newer
//! than the binary, a diverged history.

use ferrostack_catalog::{Dialect, Error, SchemaState, embedded_migrations};
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::{self, TempDir};

pub fn tests() -> Vec<Test> {
    vec![
        Test::postgres("migrations::postgres::status_then_migrate_twice", |pg| async move {
            let db = pg.fresh_database().await;
            let storage = support::storage([("kv", support::postgres("kv_postgres", &db, json!({})))]);
            let catalog = support::open(&storage).await;
            let all = embedded_migrations(Dialect::Postgres);
            assert!(!all.is_empty());

            let before = catalog.migration_status().await.unwrap();
            assert_eq!(before.len(), 1);
            assert_eq!(before[0].backend, "kv");
            assert_eq!(before[0].dialect, Dialect::Postgres);
            assert_eq!(before[0].pending, all, "a never-migrated database has everything pending");
            assert!(before[0].applied.is_empty());
            assert_eq!(before[0].state(), SchemaState::Behind);
            // Asking changed nothing: no history table, no kvstore table.
            let client = db.client().await;
            let tables: i64 = client
                .query_one("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public'", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(tables, 0, "status must not create tables");

            let applied = catalog.migrate().await.unwrap();
            assert_eq!(applied, vec![("kv".to_owned(), all.clone())]);
            let after = catalog.migration_status().await.unwrap();
            assert_eq!(after[0].applied, all);
            assert!(after[0].pending.is_empty());
            assert_eq!(after[0].state(), SchemaState::Current);

            let again = catalog.migrate().await.unwrap();
            assert_eq!(again, vec![("kv".to_owned(), vec![])], "a second run applies nothing");
            // The kvstore key column collates bytewise.
            let collation: Option<String> = client
                .query_one(
                    "SELECT collation_name::text FROM information_schema.columns \
                     WHERE table_name = 'kvstore' AND column_name = 'key'",
                    &[],
                )
                .await
                .unwrap()
                .get(0);
            assert_eq!(collation.as_deref(), Some("C"));
            catalog.close().await;
        }),
        Test::postgres("migrations::postgres::concurrent_migrators_one_applies", |pg| async move {
            let db = pg.fresh_database().await;
            let storage = support::storage([("sql", support::postgres("sql_postgres", &db, json!({})))]);
            // Two replicas: two catalogs, each with its own pool.
            let (one, two) = (support::open(&storage).await, support::open(&storage).await);
            let (r1, r2) = tokio::join!(one.migrate(), two.migrate());
            let (r1, r2) = (r1.unwrap(), r2.unwrap());
            let counts = [r1[0].1.len(), r2[0].1.len()];
            let all = embedded_migrations(Dialect::Postgres);
            assert!(counts.contains(&0) && counts.contains(&all.len()), "exactly one applied: {counts:?}");
            assert_eq!(one.migration_status().await.unwrap()[0].state(), SchemaState::Current);
            one.close().await;
            two.close().await;
        }),
        Test::postgres("migrations::postgres::two_backends_on_one_database", |pg| async move {
            let db = pg.fresh_database().await;
            let storage = support::storage([
                ("kv", support::postgres("kv_postgres", &db, json!({}))),
                ("sql", support::postgres("sql_postgres", &db, json!({}))),
            ]);
            let catalog = support::open(&storage).await;
            let applied = catalog.migrate().await.unwrap();
            assert_eq!(applied.len(), 2);
            assert_eq!(applied[0].1, embedded_migrations(Dialect::Postgres), "the first backend applies");
            assert!(applied[1].1.is_empty(), "the second finds the same database current");
            assert!(catalog.migration_status().await.unwrap().iter().all(|b| b.state() == SchemaState::Current));
            catalog.close().await;
        }),
        Test::postgres("migrations::postgres::newer_schema_and_divergence", |pg| async move {
            let db = pg.fresh_database().await;
            let storage = support::storage([("kv", support::postgres("kv_postgres", &db, json!({})))]);
            let catalog = support::open_migrated(&storage).await;
            let client = db.client().await;
            client
                .batch_execute(
                    "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
                     VALUES (9999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
                )
                .await
                .unwrap();
            let status = catalog.migration_status().await.unwrap();
            assert_eq!(status[0].state(), SchemaState::Ahead);
            assert_eq!(status[0].unknown[0].to_string(), "V9999__from_the_future");
            assert!(status[0].pending.is_empty());
            let err = catalog.migrate().await.unwrap_err();
            assert!(matches!(err, Error::SchemaAhead { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("'kv'") && msg.contains("V9999__from_the_future") && msg.contains("newer"), "{msg}");

            client.batch_execute("DELETE FROM refinery_schema_history WHERE version = 9999").await.unwrap();
            client.batch_execute("UPDATE refinery_schema_history SET checksum = '42' WHERE version = 1").await.unwrap();
            let status = catalog.migration_status().await.unwrap();
            assert_eq!(status[0].state(), SchemaState::Diverged);
            let err = catalog.migrate().await.unwrap_err();
            assert!(matches!(err, Error::SchemaDiverged { .. }), "{err:?}");
            assert!(err.to_string().contains("V1__kvstore"), "{err}");
            catalog.close().await;
        }),
        Test::plain("migrations::sqlite::status_then_migrate_twice", || async {
            let dir = TempDir::new();
            let path = dir.file("nested/dir/kv.db");
            let storage = support::storage([
                ("kv", support::sqlite("kv_sqlite", &path)),
                ("sql", support::sqlite("sql_sqlite", &dir.file("sql.db"))),
            ]);
            let catalog = support::open(&storage).await;
            let all = embedded_migrations(Dialect::Sqlite);
            let before = catalog.migration_status().await.unwrap();
            assert_eq!(before.len(), 2);
            for b in &before {
                assert_eq!(b.pending, all);
                assert!(b.applied.is_empty());
            }
            let conn = rusqlite::Connection::open(&path).unwrap();
            let tables: i64 = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0)).unwrap();
            assert_eq!(tables, 0, "status must not create tables");

            let applied = catalog.migrate().await.unwrap();
            assert_eq!(applied, vec![("kv".to_owned(), all.clone()), ("sql".to_owned(), all.clone())]);
            for b in catalog.migration_status().await.unwrap() {
                assert_eq!(b.applied, all);
                assert!(b.pending.is_empty());
                assert_eq!(b.state(), SchemaState::Current);
            }
            let again = catalog.migrate().await.unwrap();
            assert!(again.iter().all(|(_, applied)| applied.is_empty()), "{again:?}");

            // A newer schema is reported, and refused.
            conn.execute_batch(
                "INSERT INTO refinery_schema_history (version, name, applied_on, checksum) \
                 VALUES (9999, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
            )
            .unwrap();
            let status = catalog.migration_status().await.unwrap();
            assert_eq!(status[0].state(), SchemaState::Ahead);
            assert!(matches!(catalog.migrate().await.unwrap_err(), Error::SchemaAhead { .. }));
            catalog.close().await;
        }),
        Test::plain("migrations::sqlite::concurrent_migrators_one_applies", || async {
            let dir = TempDir::new();
            let storage = support::storage([("kv", support::sqlite("kv_sqlite", &dir.file("kv.db")))]);
            let (one, two) = (support::open(&storage).await, support::open(&storage).await);
            let (r1, r2) = tokio::join!(one.migrate(), two.migrate());
            let counts = [r1.unwrap()[0].1.len(), r2.unwrap()[0].1.len()];
            assert!(counts.contains(&0) && counts.contains(&embedded_migrations(Dialect::Sqlite).len()), "{counts:?}");
            one.close().await;
            two.close().await;
        }),
    ]
}
