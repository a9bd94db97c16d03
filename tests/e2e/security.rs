//! Tenant isolation and abuse resistance, through the real server: the route policy decides on
//! the path the router matches, the access policy guards models, completion ids belong to the
//! server, list filters are bounded, and the public endpoints say little.

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::upstream::{FakeUpstream, REPEATED_ID};
use ferrostack_tests::{Storage, TestApp, chat_config, postgres_config, raw_request};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    let mut tests = vec![
        Test::plain("security::route_policy_deny_list_holds_for_every_spelling_of_a_path", route_deny_list),
        Test::plain("security::route_policy_allow_list_holds_for_every_spelling_of_a_path", route_allow_list),
        Test::plain("security::a_model_the_caller_may_not_read_is_not_found", model_policy),
        Test::plain("security::upstream_header_refuses_repeated_headers_and_untrusted_peers", upstream_header_guards),
    ];
    tests.extend(on_both!("security", "completion_ids_are_the_servers_even_when_the_upstream_repeats_ids", server_ids));
    tests
        .push(Test::postgres("security::postgres::readyz_pings_the_database_at_most_once_a_second", |pg| async move {
            readyz_cached(pg).await
        }));
    tests
}

const TOKENS: &str = "server:\n  auth:\n    provider_config:\n      type: static\n      tokens:\n        - { token: alice-token, principal: alice, attributes: { roles: [admin, premium], teams: [red] } }\n        - { token: bob-token, principal: bob, attributes: { roles: [user], teams: [blue] } }\n";

async fn start(storage: Storage<'_>, extra: &str) -> (TestApp, FakeUpstream) {
    let upstream = FakeUpstream::start().await;
    let config = chat_config(storage, &upstream.base_url, extra);
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    (app, upstream)
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

const CHAT_BODY: &str = r#"{"model": "test-model", "messages": [{"role": "user", "content": "hi"}]}"#;

/// Each spelling of the stored-completions route a client could send, raw (no client-side
/// normalisation), with what a caller the policy refuses must get.
fn spellings() -> Vec<(&'static str, &'static str, u16)> {
    vec![
        ("GET", "/v1/chat/completions", 403),
        ("GET", "/v1/chat/%63ompletions", 403),
        ("POST", "/v1/%63hat/completions", 403),
        ("GET", "/v1/chat/completions/", 403),
        ("GET", "/v1/chat/completions?limit=1", 403),
        ("GET", "/v1/%43hat/completions", 404), // the router is case-sensitive: no such route
        ("GET", "/v1/chat/%2563ompletions", 404), // double-encoded: `%25` stays, no route
        ("GET", "/v1/chat/./completions", 400),
        ("GET", "/v1/x/../chat/completions", 400),
        ("GET", "/v1/x/%2e%2e/chat/completions", 400),
        ("GET", "/v1/chat/%2E/completions", 400),
    ]
}

/// `unrouted`: what a path no route matches gets (404, or 403 under a catch-all forbid).
async fn check_refused(app: &TestApp, token: &str, what: &str, unrouted: u16) {
    for (method, path, expected) in spellings() {
        let expected = if expected == 404 { unrouted } else { expected };
        let body = (method == "POST").then_some(CHAT_BODY);
        let (status, body) =
            raw_request(app.addr, method, path, &[("authorization", &format!("Bearer {token}"))], body).await;
        assert_eq!(status, expected, "{what}: {method} {path}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {method} {path}: the one error shape: {body}");
    }
}

async fn route_deny_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "{TOKENS}    route_policy:\n      - forbid: {{ paths: '/v1/chat/completions*' }}\n        unless: user with admin in roles\n      - permit: {{ paths: '*' }}\n"
    );
    let (app, upstream) = start(Storage::Sqlite(dir.path()), &policy).await;
    check_refused(&app, "bob-token", "deny-list, bob", 404).await;
    assert_eq!(upstream.requests(), 0, "nothing reached the upstream");
    // The admin reaches the route however it is spelled (the router decodes `%63`).
    for path in ["/v1/chat/completions", "/v1/chat/%63ompletions"] {
        let (status, body) = raw_request(app.addr, "GET", path, &[("authorization", "Bearer alice-token")], None).await;
        assert_eq!(status, 200, "alice GET {path}: {body}");
        assert_eq!(body["object"], "list", "{body}");
    }
    let (status, body) = raw_request(
        app.addr,
        "POST",
        "/v1/%63hat/completions",
        &[("authorization", "Bearer alice-token")],
        Some(CHAT_BODY),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn route_allow_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "{TOKENS}    route_policy:\n      - permit: {{ paths: [/v1/health, /v1/version, /readyz] }}\n      - permit: {{ paths: '/v1/chat/completions*' }}\n        when: user with admin in roles\n      - forbid: {{ paths: '*' }}\n"
    );
    let (app, upstream) = start(Storage::Sqlite(dir.path()), &policy).await;
    check_refused(&app, "bob-token", "allow-list, bob", 403).await;
    let (status, body) =
        raw_request(app.addr, "GET", "/v1/chat/%63ompletions", &[("authorization", "Bearer alice-token")], None).await;
    assert_eq!(status, 200, "the allow rule matches the decoded path: {body}");
    assert_eq!(upstream.requests(), 0, "nothing reached the upstream");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn model_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let policy = format!(
        "{TOKENS}    access_policy:\n      - forbid: {{ actions: [read], resource: 'model::premium-model' }}\n        unless: user with premium in roles\n        description: premium models are for premium users\n      - permit: {{ actions: [create, read, update, delete] }}\n        when: user is owner\n      - permit: {{ actions: [read] }}\n        when: resource is unowned\n"
    );
    let (app, upstream) = start(Storage::Sqlite(dir.path()), &policy).await;
    let post = |token: &'static str, body: Value| {
        let req = app.http.post(format!("{}/v1/chat/completions", app.base)).bearer_auth(token).json(&body);
        async move {
            let res = req.send().await.expect("request");
            (res.status(), res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = post("bob-token", chat("premium-model")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(body["error"]["param"], "model", "{body}");
    let (status, unknown) = post("bob-token", chat("no-such-model")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let shape = |v: &Value| v["error"]["message"].as_str().map(|m| m.replace("no-such-model", "premium-model"));
    assert_eq!(shape(&unknown), body["error"]["message"].as_str().map(str::to_owned), "same answer as a missing model");
    let mut streamed = chat("premium-model");
    streamed["stream"] = json!(true);
    let (status, body) = post("bob-token", streamed.clone()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "streaming too: {body}");
    assert_eq!(upstream.requests(), 0, "nothing went upstream for a hidden model");

    assert_eq!(post("bob-token", chat("test-model")).await.0, StatusCode::OK, "other models unaffected");
    let (status, body) = post("alice-token", chat("premium-model")).await;
    assert_eq!(status, StatusCode::OK, "premium users reach it: {body}");
    assert_eq!(body["model"], "premium-model");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

fn is_server_id(id: &str) -> bool {
    id.strip_prefix("chatcmpl-")
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
}

async fn stream_ids(app: &TestApp, token: &str, model: &str) -> Vec<String> {
    let mut body = chat(model);
    body["stream"] = json!(true);
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut text = String::new();
    let mut bytes = res.bytes_stream();
    while let Some(chunk) = bytes.next().await {
        text.push_str(&String::from_utf8_lossy(&chunk.expect("stream")));
    }
    text.split("\n\n")
        .filter_map(|frame| frame.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str::<Value>(data).expect("chunk json")["id"].as_str().expect("id").to_owned())
        .collect()
}

async fn server_ids(storage: Storage<'_>) {
    let (app, upstream) = start(storage, TOKENS).await;
    let mut ids = Vec::new();
    for token in ["alice-token", "bob-token", "alice-token"] {
        let res = app
            .http
            .post(format!("{}/v1/chat/completions", app.base))
            .bearer_auth(token)
            .json(&chat("repeat-model"))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::OK, "every tenant's completion is stored (durability: sync)");
        let body: Value = res.json().await.expect("json");
        let id = body["id"].as_str().expect("id").to_owned();
        assert!(is_server_id(&id), "{id}");
        ids.push((token, id));
        let streamed = stream_ids(&app, token, "repeat-model").await;
        assert!(streamed.len() >= 2, "{streamed:?}");
        assert!(streamed.iter().all(|i| *i == streamed[0]), "one id for the whole stream: {streamed:?}");
        assert!(is_server_id(&streamed[0]), "{streamed:?}");
        ids.push((token, streamed[0].clone()));
    }
    let distinct: std::collections::BTreeSet<&String> = ids.iter().map(|(_, id)| id).collect();
    assert_eq!(distinct.len(), ids.len(), "{ids:?}");
    assert!(ids.iter().all(|(_, id)| id != REPEATED_ID));

    for token in ["alice-token", "bob-token"] {
        let res = app.http.get(format!("{}/v1/chat/completions?limit=100", app.base)).bearer_auth(token).send().await;
        let page: Value = res.expect("list").json().await.expect("json");
        let mut listed: Vec<String> =
            page["data"].as_array().expect("data").iter().map(|c| c["id"].as_str().expect("id").to_owned()).collect();
        let mut own: Vec<String> = ids.iter().filter(|(t, _)| *t == token).map(|(_, id)| id.clone()).collect();
        listed.sort();
        own.sort();
        assert_eq!(listed, own, "{token} lists exactly its own completions, none replaced by another's");
    }
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

/// 300 anonymous `/readyz` calls cost the database a few pings, not 600 (two backends each): the
/// answer is shared for a second. Counted as the database's committed transactions, read once
/// every server connection has closed (a backend flushes its statistics when it exits).
async fn readyz_cached(pg: ferrostack_testkit::Postgres) {
    let db = pg.fresh_database().await;
    let app =
        TestApp::spawn(&postgres_config(&db), ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    let calls = (0..300).map(|_| app.get("/readyz"));
    for (status, body) in futures_util::future::join_all(calls).await {
        assert_eq!(status, 200, "{body}");
    }
    app.stop().await.expect("clean stop");
    let admin = pg.admin_client().await;
    let name = db.name().to_owned();
    ferrostack_tests::wait_for("the server's connections to close", std::time::Duration::from_secs(20), || async {
        let row = admin
            .query_one("SELECT count(*) FROM pg_stat_activity WHERE datname = $1", &[&name])
            .await
            .expect("pg_stat_activity");
        (row.get::<_, i64>(0) == 0).then_some(())
    })
    .await;
    let row = admin
        .query_one("SELECT xact_commit FROM pg_stat_database WHERE datname = $1", &[&name])
        .await
        .expect("pg_stat_database");
    let commits: i64 = row.get(0);
    // Start-up (migrations, their lock and history) commits a few dozen; uncached, the calls
    // alone would commit 600.
    assert!(commits < 200, "{commits} transactions for 300 readiness probes");
}

async fn upstream_header_guards() {
    let dir = tempfile::tempdir().expect("tempdir");
    let auth = |proxies: &str| {
        format!(
            "server:\n  auth:\n    provider_config:\n      type: upstream_header\n      principal_header: x-user\n      attributes_header: x-attrs\n      trusted_proxies: [{proxies}]\n"
        )
    };
    let (app, upstream) = start(Storage::Sqlite(dir.path()), &auth("127.0.0.0/8, '::1'")).await;
    let list = "/v1/chat/completions";
    let (status, body) = raw_request(app.addr, "GET", list, &[("x-user", "alice")], None).await;
    assert_eq!(status, 200, "a trusted peer names the caller: {body}");
    let (status, body) = raw_request(app.addr, "GET", list, &[("x-user", "mallory"), ("x-user", "alice")], None).await;
    assert_eq!(status, 401, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("more than once"), "{body}");
    let attrs = [("x-user", "alice"), ("x-attrs", r#"{"roles":["admin"]}"#), ("x-attrs", r#"{"roles":["user"]}"#)];
    let (status, body) = raw_request(app.addr, "GET", list, &attrs, None).await;
    assert_eq!(status, 401, "{body}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;

    let dir = tempfile::tempdir().expect("tempdir");
    let (app, upstream) = start(Storage::Sqlite(dir.path()), &auth("10.0.0.0/8")).await;
    let (status, body) = raw_request(app.addr, "GET", list, &[("x-user", "alice")], None).await;
    assert_eq!(status, 401, "loopback is not the trusted proxy here: {body}");
    assert_eq!(body["error"]["message"], "Request did not come through a trusted proxy", "{body}");
    assert_eq!(app.get("/v1/health").await.0, 200, "public paths stay public");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}
