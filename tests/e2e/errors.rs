//! Statuses that depend on a real failure behind the server: a provider answer that cannot be
//! stored (502), and a database that goes away under a running server (503 + `Retry-After`, then
//! back to 200 when it returns).

use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::upstream::FakeUpstream;
use ferrostack_tests::{Storage, TestApp, chat_config, wait_for};
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("errors::sqlite::unstorable_answer_is_502", || async {
            let dir = tempfile::tempdir().expect("tempdir");
            unstorable_answer(Storage::Sqlite(dir.path())).await;
        }),
        Test::postgres("errors::postgres::unstorable_answer_is_502", |pg| async move {
            let db = pg.fresh_database().await;
            unstorable_answer(Storage::Postgres(&db)).await;
        }),
        Test::postgres("errors::postgres::database_outage_is_503_with_retry_after", |pg| async move {
            database_outage(pg).await;
        }),
    ]
}

async fn start(storage: Storage<'_>) -> (TestApp, FakeUpstream) {
    let upstream = FakeUpstream::start().await;
    let config = chat_config(storage, &upstream.base_url, "");
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    (app, upstream)
}

/// The provider's answer has no `created`: it is not relayed as if it were stored, and the client
/// learns it is the provider's fault (it was a 400 before).
async fn unstorable_answer(storage: Storage<'_>) {
    let (app, upstream) = start(storage).await;
    let body = json!({"model": "unstorable-model", "messages": [{"role": "user", "content": "hi"}]});
    let res = app.http.post(format!("{}/v1/chat/completions", app.base)).json(&body).send().await.expect("request");
    assert_eq!(res.status().as_u16(), 502);
    let got: Value = res.json().await.expect("json");
    assert_eq!(
        got,
        json!({"error": {
            "message": "upstream returned invalid chat completion: 'created' is missing",
            "type": "upstream_error", "code": "upstream_invalid_response", "param": null}})
    );
    let (status, page) = app.get("/v1/chat/completions").await;
    assert_eq!((status, page["data"].clone()), (200, json!([])), "nothing stored: {page}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

/// The database stops accepting connections and every open one is cut: reads answer 503 with
/// `Retry-After` and an opaque message (it was a 500); when the database returns, so do the 200s.
async fn database_outage(pg: ferrostack_testkit::Postgres) {
    let db = pg.fresh_database().await;
    let (app, upstream) = start(Storage::Postgres(&db)).await;
    assert_eq!(app.get("/v1/chat/completions").await.0, 200);
    let admin = pg.admin_client().await;
    let name = db.name().to_owned();
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await.expect("lock out");
    admin
        .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name])
        .await
        .expect("cut connections");
    for path in ["/v1/chat/completions", "/v1/chat/completions/chatcmpl-1"] {
        let res = app.http.get(format!("{}{path}", app.base)).send().await.expect("request");
        assert_eq!(res.status().as_u16(), 503, "{path}");
        assert_eq!(res.headers().get("retry-after").map(|v| v.to_str().unwrap_or_default()), Some("1"), "{path}");
        let got: Value = res.json().await.expect("json");
        assert_eq!(
            got,
            json!({"error": {
                "message": "the database is unavailable right now; retry later",
                "type": "service_unavailable", "code": "database_unavailable", "param": null}}),
            "{path}"
        );
    }
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await.expect("let in");
    wait_for("the database to serve again", Duration::from_secs(10), || async {
        (app.get("/v1/chat/completions").await.0 == 200).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}
