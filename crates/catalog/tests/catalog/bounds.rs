//! What one caller can hold of a shared database: the statement cache stays bounded, statements
//! time out, and a statement whose caller went away stops instead of holding its connection.

use std::time::Duration;

use ferrostack_catalog::{Catalog, Cause, Db, Error, Sql};
use ferrostack_testkit::{Test, TestDatabase};
use serde_json::json;

use crate::support::{self, TempDir};

pub fn tests() -> Vec<Test> {
    vec![
        Test::postgres("bounds::postgres::statement_cache_stays_bounded", |pg| async move {
            statement_cache_bounded(pg.fresh_database().await).await;
        }),
        Test::postgres("bounds::postgres::statement_timeout_cancels_a_long_statement", |pg| async move {
            postgres_statement_timeout(pg.fresh_database().await).await;
        }),
        Test::postgres("bounds::postgres::an_abandoned_statement_is_cancelled", |pg| async move {
            postgres_abandoned(pg.fresh_database().await).await;
        }),
        Test::postgres("bounds::postgres::a_frozen_server_answers_no_answer_in_bounded_time", |pg| async move {
            postgres_frozen(pg.fresh_database().await).await;
        }),
        Test::plain("bounds::sqlite::statement_timeout_interrupts_a_long_statement", sqlite_statement_timeout),
        Test::plain("bounds::sqlite::an_abandoned_statement_frees_its_connection", sqlite_abandoned),
    ]
}

/// Counts to a billion: minutes of work for SQLite, unless interrupted.
const SQLITE_LONG: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) \
                           SELECT count(*) AS n FROM c";

async fn postgres_db(db: &TestDatabase, extra: serde_json::Value) -> (Catalog, Db) {
    let storage = support::storage([("sql", support::postgres("sql_postgres", db, extra))]);
    let catalog = support::open(&storage).await;
    let sql = catalog.sql("sql").expect("sql backend");
    (catalog, sql)
}

fn sqlite_db(dir: &TempDir, extra: serde_json::Value) -> serde_json::Value {
    let mut v = json!({ "type": "sql_sqlite", "db_path": dir.file("sql.db"), "pool_size": 1, "busy_timeout_ms": 5000 });
    if let (Some(target), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        target.extend(extra);
    }
    v
}

async fn statement_cache_bounded(db: TestDatabase) {
    // One connection, so every statement lands in the same server session, whose prepared
    // statements pg_prepared_statements lists.
    let (catalog, sql) = postgres_db(&db, json!({ "pool_size": 1 })).await;
    for i in 0..1_000 {
        // A thousand distinct statement texts, as a thousand list shapes would be.
        let text = format!("SELECT CAST($1 AS BIGINT) + {i} AS n");
        sql.fetch_all(Sql::new().push(&text).bind(1_i64)).await.expect("query");
    }
    let rows = sql.fetch_all(Sql::new().push("SELECT count(*) AS n FROM pg_prepared_statements")).await.expect("count");
    let prepared: i64 = rows[0].get("n").expect("n");
    assert!(prepared <= 130, "the session holds {prepared} prepared statements after 1,000 shapes");
    catalog.close().await;
}

fn is_cancelled(e: &Error) -> bool {
    matches!(e, Error::Query { cause: Cause::Postgres(pg), .. } if pg.code().map(|c| c.code()) == Some("57014"))
}

async fn postgres_statement_timeout(db: TestDatabase) {
    let (catalog, sql) = postgres_db(&db, json!({ "statement_timeout_ms": 200 })).await;
    let err = sql.fetch_all(Sql::new().push("SELECT pg_sleep(30)")).await.expect_err("cancelled by the server");
    assert!(is_cancelled(&err), "{err}");
    assert!(err.is_transient(), "a timed-out statement may be retried: {err}");
    // The connection is fine afterwards.
    sql.fetch_all(Sql::new().push("SELECT 1 AS one")).await.expect("the pool still serves");
    catalog.close().await;
}

async fn postgres_abandoned(db: TestDatabase) {
    let (catalog, sql) = postgres_db(&db, json!({ "pool_size": 1, "statement_timeout_ms": 0 })).await;
    let abandoned =
        tokio::time::timeout(Duration::from_millis(300), sql.fetch_all(Sql::new().push("SELECT pg_sleep(60)"))).await;
    assert!(abandoned.is_err(), "the statement was still running when its caller left");
    // Watch from outside: the server stops running it.
    let admin = db.client().await;
    let name = db.name().to_owned();
    ferrostack_testkit::wait_for("the abandoned statement to stop", Duration::from_secs(10), || async {
        let rows = admin
            .query(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND query LIKE 'SELECT pg_sleep(60)%' \
                 AND state = 'active'",
                &[&name],
            )
            .await
            .expect("pg_stat_activity");
        (rows[0].get::<_, i64>(0) == 0).then_some(())
    })
    .await;
    // The pool of one still serves (the connection was replaced, not handed back mid-statement).
    sql.fetch_all(Sql::new().push("SELECT 1 AS one")).await.expect("the pool still serves");
    catalog.close().await;
}

fn is_interrupted(e: &Error) -> bool {
    matches!(e, Error::Query { cause: Cause::Sqlite(rusqlite::Error::SqliteFailure(code, _)), .. }
        if code.code == rusqlite::ErrorCode::OperationInterrupted)
}

async fn sqlite_statement_timeout() {
    let dir = TempDir::new();
    let storage =
        support::storage([("sql", support::backend(sqlite_db(&dir, json!({ "statement_timeout_ms": 200 }))))]);
    let catalog = support::open(&storage).await;
    let sql = catalog.sql("sql").expect("sql backend");
    let err = sql.fetch_all(Sql::new().push(SQLITE_LONG)).await.expect_err("interrupted");
    assert!(is_interrupted(&err), "{err}");
    assert!(err.is_transient(), "{err}");
    sql.fetch_all(Sql::new().push("SELECT 1 AS one")).await.expect("the pool still serves");
    catalog.close().await;
}

async fn sqlite_abandoned() {
    let dir = TempDir::new();
    // No statement timeout: only the caller leaving can stop the statement.
    let storage = support::storage([("sql", support::backend(sqlite_db(&dir, json!({ "statement_timeout_ms": 0 }))))]);
    let catalog = support::open(&storage).await;
    let sql = catalog.sql("sql").expect("sql backend");
    let abandoned = tokio::time::timeout(Duration::from_millis(200), sql.fetch_all(Sql::new().push(SQLITE_LONG))).await;
    assert!(abandoned.is_err(), "the statement was still running when its caller left");
    // The pool's one connection comes back: the next query gets it within the pool's wait
    // timeout (5 s) instead of failing behind a statement that would run for minutes.
    let rows = sql.fetch_all(Sql::new().push("SELECT 1 AS one")).await.expect("the connection was freed");
    assert_eq!(rows[0].get::<i64>("one").expect("one"), 1);
    catalog.close().await;
}

/// A TCP relay to the database that can stop relaying while keeping both connections open: a
/// server frozen (SIGSTOP) or a network path gone, as the client sees it.
struct Freezer {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Freezer {
    async fn start(host: &str, port: u16) -> Freezer {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let local = listener.local_addr().expect("relay address").port();
        let frozen = std::sync::Arc::new(AtomicBool::new(false));
        let target = format!("{host}:{port}");
        let flag = std::sync::Arc::clone(&frozen);
        ferrostack_testkit::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else { continue };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [(cr, sw), (sr, cw)] {
                    let flag = std::sync::Arc::clone(&flag);
                    ferrostack_testkit::spawn(async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut buf = vec![0_u8; 16 * 1024];
                        loop {
                            let Ok(n) = from.read(&mut buf).await else { return };
                            if n == 0 {
                                return;
                            }
                            while flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        Freezer { port: local, frozen }
    }

    fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    fn thaw(&self) {
        self.frozen.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Statements on a connection to a frozen server end with `NoAnswer` (a 503 for clients) within
/// the statement timeout plus the connect timeout, instead of waiting for TCP.
async fn postgres_frozen(db: TestDatabase) {
    let server = db.server();
    let relay = Freezer::start(&server.host(), server.port()).await;
    let extra = json!({ "host": "127.0.0.1", "port": relay.port, "pool_size": 1,
        "statement_timeout_ms": 300, "create_timeout_ms": 300, "wait_timeout_ms": 300 });
    let (catalog, sql) = postgres_db(&db, extra).await;
    sql.fetch_all(Sql::new().push("SELECT 1 AS n")).await.expect("through the relay");
    relay.freeze();
    for attempt in 0..2 {
        let err = sql.fetch_all(Sql::new().push("SELECT 1 AS n")).await.expect_err("frozen");
        assert!(err.is_unavailable(), "attempt {attempt}: {err}");
        assert!(err.is_transient(), "attempt {attempt}: {err}");
    }
    let err = sql.transaction(vec![Sql::new().push("SELECT 1")]).await.expect_err("frozen");
    assert!(err.is_unavailable(), "{err}");
    // A transaction whose server freezes half-way: its statements are bounded too.
    relay.thaw();
    ferrostack_testkit::wait_for("the relay to carry statements again", Duration::from_secs(20), || async {
        sql.fetch_all(Sql::new().push("SELECT 1 AS n")).await.ok()
    })
    .await;
    let mut tx = sql.begin().await.expect("begin");
    tx.fetch_all(Sql::new().push("SELECT 1 AS n")).await.expect("in the transaction");
    relay.freeze();
    let err = tx.fetch_all(Sql::new().push("SELECT 1 AS n")).await.expect_err("frozen");
    assert!(matches!(err, Error::NoAnswer { .. }), "{err}");
    assert!(err.is_unavailable(), "{err}");
    drop(tx);
    drop(catalog);
}
