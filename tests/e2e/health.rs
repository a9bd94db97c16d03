//! Liveness, version, readiness, the error shape, schema checks and orderly shutdown.

use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_testkit::{Postgres, Test};
use ferrostack_tests::{TestApp, builtin_config, postgres_config, wait_for};
use serde_json::json;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("health::builtin_sqlite_serves_health_version_readyz", builtin_sqlite_serves),
        Test::plain("health::unknown_route_answers_in_the_error_shape", unknown_route_error_shape),
        Test::plain("health::shutdown_stops_listening_and_returns_ok", shutdown_is_orderly),
        Test::postgres("health::postgres_backends_are_ready", postgres_ready),
        Test::postgres("health::readyz_reports_a_stopped_database_and_recovers", readyz_database_stopped),
        Test::postgres("health::serve_refuses_a_schema_that_is_behind", refuses_schema_behind),
    ]
}

async fn builtin_sqlite_serves() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = builtin_config(home.path());
    assert!(config.storage.builtin, "no storage block means the built-in set-up");
    // The built-in set-up migrates itself: no --auto-migrate needed.
    let app = TestApp::spawn(&config, ServeOptions::default()).await;

    let (status, body) = app.get("/v1/health").await;
    assert_eq!((status, body), (200, json!({"status": "OK"})));

    let (status, body) = app.get("/v1/version").await;
    assert_eq!(status, 200);
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "version is the crate version");

    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, body), (200, json!({"status": "ready"})), "the public probe names nothing");
    // The details are at /v1/readiness (authenticated; authentication is off here).
    let (status, body) = app.get("/v1/readiness").await;
    assert_eq!(status, 200, "readiness: {body}");
    assert_eq!(body["status"], "ready");
    for (name, ty) in [("kv_default", "kv_sqlite"), ("sql_default", "sql_sqlite")] {
        assert_eq!(body["backends"][name]["status"], "ok", "{name}: {body}");
        assert_eq!(body["backends"][name]["type"], ty, "{name}: {body}");
    }
    assert!(home.path().join("kvstore.db").exists(), "KV file created under FERROSTACK_HOME");
    assert!(home.path().join("sql_store.db").exists(), "SQL file created under FERROSTACK_HOME");
    app.stop().await.expect("clean stop");
}

async fn unknown_route_error_shape() {
    let home = tempfile::tempdir().expect("tempdir");
    let app = TestApp::spawn(&builtin_config(home.path()), ServeOptions::default()).await;
    let (status, body) = app.get("/v1/no-such-thing").await;
    assert_eq!(status, 404);
    assert_eq!(
        body,
        json!({"error": {
            "message": "no route for GET /v1/no-such-thing",
            "type": "not_found_error",
            "code": "not_found",
            "param": null
        }})
    );
    let (status, body) = app.send(reqwest::Method::DELETE, "/v1/health", None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["type"], "not_found_error");
    // The server keeps serving after bad requests.
    assert_eq!(app.get("/v1/health").await.0, 200);
    app.stop().await.expect("clean stop");
}

async fn shutdown_is_orderly() {
    let home = tempfile::tempdir().expect("tempdir");
    let app = TestApp::spawn(&builtin_config(home.path()), ServeOptions::default()).await;
    let addr = app.addr;
    assert_eq!(app.get("/v1/health").await.0, 200);
    app.stop().await.expect("run_until returns Ok after cancellation");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "nothing listens on {addr} after shutdown");
}

async fn postgres_ready(pg: Postgres) {
    let db = pg.fresh_database().await;
    let config = postgres_config(&db);
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!((status, body), (200, json!({"status": "ready"})));
    let (status, body) = app.get("/v1/readiness").await;
    assert_eq!(status, 200, "readiness: {body}");
    assert_eq!(body["backends"]["kv_postgres"]["status"], "ok", "{body}");
    assert_eq!(body["backends"]["sql_postgres"]["status"], "ok", "{body}");
    assert_eq!(body["backends"]["sql_postgres"]["type"], "sql_postgres", "{body}");
    app.stop().await.expect("clean stop");
}

/// Stop the database from accepting connections and drop the ones it has: readyz must turn 503
/// and name the backend, liveness must stay 200, and readyz must recover when the database does.
async fn readyz_database_stopped(pg: Postgres) {
    let db = pg.fresh_database().await;
    let config = postgres_config(&db);
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    assert_eq!(app.get("/readyz").await.0, 200);

    let admin = pg.admin_client().await;
    let name = db.name();
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await.expect("disallow");
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name])
        .await
        .expect("terminate");

    let body = wait_for("readyz to report the database down", Duration::from_secs(20), || async {
        let (status, body) = app.get("/readyz").await;
        (status == 503).then_some(body)
    })
    .await;
    assert_eq!(
        body,
        json!({"status": "not_ready", "reasons": ["database_unavailable"]}),
        "the public probe names no backend, host or database"
    );
    let (status, body) = app.get("/v1/readiness").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "not_ready", "{body}");
    for backend in ["kv_postgres", "sql_postgres"] {
        assert_eq!(body["backends"][backend]["status"], "unavailable", "{backend}: {body}");
        let error = body["backends"][backend]["error"].as_str().unwrap_or_default();
        assert!(!error.is_empty(), "{backend} says why it is unavailable: {body}");
    }
    assert_eq!(app.get("/v1/health").await.0, 200, "liveness does not depend on the database");

    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await.expect("allow");
    wait_for("readyz to recover", Duration::from_secs(20), || async {
        (app.get("/readyz").await.0 == 200).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
}

async fn refuses_schema_behind(pg: Postgres) {
    let db = pg.fresh_database().await;
    let config = postgres_config(&db);
    let err =
        TestApp::try_spawn(&config, ServeOptions::default()).await.expect_err("must refuse an unmigrated database");
    assert!(err.contains("ferrostack migrate"), "the message names the command: {err}");
    assert!(err.contains("sql_postgres"), "the message names the backend: {err}");

    // --auto-migrate applies what is pending and serves.
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    assert_eq!(app.get("/readyz").await.0, 200);
    app.stop().await.expect("clean stop");

    // Now current: starts without --auto-migrate.
    let app = TestApp::spawn(&config, ServeOptions::default()).await;
    assert_eq!(app.get("/v1/health").await.0, 200);
    app.stop().await.expect("clean stop");
}
