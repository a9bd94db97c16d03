//! Errors name the backend, its type, where it points and the cause, and never the password.

use ferrostack_catalog::{Catalog, Error, Sql};
use ferrostack_config::KvStoreRef;
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::{self, TempDir};

fn secret() -> String {
    format!("s3cret-{}", uuid::Uuid::new_v4().simple())
}

/// Connect through every path (readiness, a KV read, migration status, migrate) and check each
/// error; returns one of them for specific checks.
async fn connect_errors(catalog: &Catalog, name: &str, location: &str, password: &str) -> Error {
    let status = &catalog.readiness().await[0];
    assert!(!status.ok);
    let ready_error = status.error.clone().unwrap_or_default();
    let kv = catalog.kv(&KvStoreRef { backend: name.to_owned(), namespace: "n".to_owned() }).unwrap();
    let get = kv.get("k").await.unwrap_err();
    let status = catalog.migration_status().await.unwrap_err();
    let migrate = catalog.migrate().await.unwrap_err();
    for (what, msg, debug) in [
        ("readiness", ready_error.clone(), ready_error),
        ("get", get.to_string(), format!("{get:?}")),
        ("migration_status", status.to_string(), format!("{status:?}")),
        ("migrate", migrate.to_string(), format!("{migrate:?}")),
    ] {
        assert!(msg.contains(&format!("'{name}'")), "{what} names the backend: {msg}");
        assert!(msg.contains("kv_postgres"), "{what} names the type: {msg}");
        assert!(msg.contains(location), "{what} says where it points: {msg}");
        assert!(!msg.contains(password) && !debug.contains(password), "{what} leaks the password: {msg} / {debug}");
    }
    assert!(matches!(get, Error::Connect { .. }), "{get:?}");
    get
}

pub fn tests() -> Vec<Test> {
    vec![
        Test::postgres("errors::unknown_database", |pg| async move {
            let password = secret();
            let db_name = format!("no_such_db_{}", uuid::Uuid::new_v4().simple());
            let config = support::backend(json!({
                "type": "kv_postgres", "host": pg.host(), "port": pg.port(), "db": db_name,
                "user": pg.user(), "password": password,
            }));
            let catalog = support::open(&support::storage([("kvpg", config)])).await;
            let location = format!("{}:{}/{db_name}", pg.host(), pg.port());
            let err = connect_errors(&catalog, "kvpg", &location, &password).await;
            assert!(err.to_string().contains("does not exist"), "the driver's reason: {err}");
            assert!(!format!("{catalog:?}").contains(&password), "Debug of the catalog redacts the password");
            assert_eq!(err.sql_state(), Some("3D000"));
            assert!(!err.is_transient(), "an unknown database does not heal by retrying");
        }),
        Test::postgres("errors::authentication_rejected", |pg| async move {
            // pg_hba here may be `trust`, which accepts any password for an existing role, so a
            // wrong password cannot be provoked portably; an unknown role is refused under
            // every method (SQLSTATE class 28).
            let password = secret();
            let role = format!("no_such_role_{}", uuid::Uuid::new_v4().simple());
            let config = support::backend(json!({
                "type": "kv_postgres", "host": pg.host(), "port": pg.port(), "db": "postgres",
                "user": role, "password": password,
            }));
            let catalog = support::open(&support::storage([("kvpg", config)])).await;
            let location = format!("{}:{}/postgres", pg.host(), pg.port());
            let err = connect_errors(&catalog, "kvpg", &location, &password).await;
            assert!(err.sql_state().is_some_and(|s| s.starts_with("28")), "{err} / {:?}", err.sql_state());
            assert!(err.to_string().contains(&role), "the driver's reason names the role: {err}");
            assert!(!err.is_transient());
        }),
        Test::plain("errors::nothing_listening", || async {
            let password = secret();
            let config = support::backend(json!({
                "type": "kv_postgres", "host": "127.0.0.1", "port": 1, "db": "ferrostack",
                "user": "ferrostack", "password": password, "create_timeout_ms": 2000,
            }));
            // Opening succeeds: connections are made on first use.
            let catalog = support::open(&support::storage([("down", config)])).await;
            let err = connect_errors(&catalog, "down", "127.0.0.1:1/ferrostack", &password).await;
            assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
            assert!(err.is_transient(), "a server that is down may come back");
        }),
        Test::plain("errors::unknown_backend_and_wrong_family", || async {
            let dir = TempDir::new();
            let storage = support::storage([
                ("kv_a", support::sqlite("kv_sqlite", &dir.file("a.db"))),
                ("kv_b", support::sqlite("kv_sqlite", &dir.file("b.db"))),
                ("sql_a", support::sqlite("sql_sqlite", &dir.file("c.db"))),
            ]);
            let catalog = support::open(&storage).await;
            assert_eq!(catalog.backend_names(), ["kv_a", "kv_b", "sql_a"]);
            let err = catalog.kv(&KvStoreRef { backend: "nope".into(), namespace: "n".into() }).unwrap_err();
            assert_eq!(err.to_string(), "unknown storage backend 'nope'; configured backends: [kv_a, kv_b, sql_a]");
            let err = catalog.sql("nope").unwrap_err();
            assert!(matches!(err, Error::UnknownBackend { .. }), "{err:?}");
            let err = catalog.sql("kv_a").unwrap_err();
            assert_eq!(
                err.to_string(),
                "storage backend 'kv_a' is kv_sqlite, but a sql_* backend is required; sql_* backends: [sql_a]"
            );
            let err = catalog.kv(&KvStoreRef { backend: "sql_a".into(), namespace: "n".into() }).unwrap_err();
            assert!(err.to_string().contains("kv_* backends: [kv_a, kv_b]"), "{err}");
            catalog.close().await;
        }),
        Test::plain("errors::sqlite_open_failures", || async {
            let dir = TempDir::new();
            // The parent "directory" is a file.
            let blocker = dir.file("file");
            std::fs::write(&blocker, "x").unwrap();
            let path = format!("{blocker}/kv.db");
            let err =
                Catalog::open(&support::storage([("kv", support::sqlite("kv_sqlite", &path))])).await.unwrap_err();
            assert!(matches!(err, Error::Open { .. }), "{err:?}");
            let msg = err.to_string();
            assert!(msg.contains("'kv'") && msg.contains("kv_sqlite") && msg.contains(&path), "{msg}");
            // Not a database.
            let junk = dir.file("junk.db");
            std::fs::write(&junk, vec![b'j'; 4096]).unwrap();
            let err =
                Catalog::open(&support::storage([("kv", support::sqlite("kv_sqlite", &junk))])).await.unwrap_err();
            assert!(err.to_string().contains("not a database"), "{err}");
            // In-memory databases are refused with a reason.
            let err =
                Catalog::open(&support::storage([("kv", support::sqlite("kv_sqlite", ":memory:"))])).await.unwrap_err();
            assert!(err.to_string().contains("in-memory"), "{err}");
            // So is a CA file that cannot be read, naming it.
            let tls = support::backend(
                json!({"type": "sql_postgres", "user": "u", "ssl_mode": "verify-full", "ca_cert_path": "/nonexistent/ca.pem"}),
            );
            let err = Catalog::open(&support::storage([("pg", tls)])).await.unwrap_err();
            assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
            // The parent directory is created.
            let nested = dir.file("a/b/c/kv.db");
            let catalog = support::open(&support::storage([("kv", support::sqlite("kv_sqlite", &nested))])).await;
            assert!(std::path::Path::new(&nested).exists());
            catalog.close().await;
        }),
        Test::plain("errors::sqlite_busy_is_transient", || async {
            let dir = TempDir::new();
            let path = dir.file("busy.db");
            let config = support::backend(json!({"type": "sql_sqlite", "db_path": path, "busy_timeout_ms": 50}));
            let catalog = support::open(&support::storage([("sql", config)])).await;
            let db = catalog.sql("sql").unwrap();
            db.execute(Sql::new().push("CREATE TABLE t (x INTEGER)")).await.unwrap();
            // Another connection holds the write lock.
            let other = rusqlite::Connection::open(&path).unwrap();
            other.execute_batch("BEGIN IMMEDIATE; INSERT INTO t VALUES (1);").unwrap();
            let err = db.execute(Sql::new().push("INSERT INTO t VALUES (2)")).await.unwrap_err();
            assert!(err.is_transient(), "busy is transient: {err}");
            assert!(err.to_string().contains("locked") || err.to_string().contains("busy"), "{err}");
            let err = db.transaction(vec![Sql::new().push("INSERT INTO t VALUES (3)")]).await.unwrap_err();
            assert!(err.is_transient(), "{err}");
            other.execute_batch("COMMIT").unwrap();
            assert_eq!(db.execute(Sql::new().push("INSERT INTO t VALUES (2)")).await.unwrap(), 1);
            catalog.close().await;
        }),
    ]
}
