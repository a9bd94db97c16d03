//! `/v1/chat/completions` end to end: the real server on port 0, a fake upstream on another
//! loopback port, and the completions stored in a real SQLite file or PostgreSQL database.

use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::upstream::FakeUpstream;
use ferrostack_tests::{Storage, TestApp, chat_config, wait_for};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    [
        on_both!("chat", "create_read_update_delete", create_read_update_delete),
        on_both!("chat", "stream_is_relayed_and_stored", stream_relayed_and_stored),
        on_both!("chat", "tool_call_fragments_are_assembled", tool_calls_assembled),
        on_both!("chat", "store_false_stores_nothing", store_false),
        on_both!("chat", "tenants_never_see_each_other", tenants_isolated),
        on_both!("chat", "client_disconnect_mid_stream_stores_what_was_relayed", client_disconnect),
        on_both!("chat", "upstream_failures_answer_with_the_right_status", upstream_failures),
        on_both!("chat", "shutdown_under_load_loses_nothing", shutdown_under_load),
        on_both!("chat", "openai_python_sdk_works_unchanged", openai_sdk).map(|t| t.skip_when(sdk_missing())),
    ]
    .into_iter()
    .flatten()
    .chain([
        Test::plain("chat::builtin::no_config_echo_model_streams_and_stores", echo_without_config),
        Test::plain("chat::builtin::openai_python_sdk_works_with_no_config", openai_sdk_no_config)
            .skip_when(sdk_missing()),
    ])
    .collect()
}

const TOKENS: &str = "server:\n  auth:\n    provider_config:\n      type: static\n      tokens:\n        - { token: alice-token, principal: alice, attributes: { teams: [red] } }\n        - { token: bob-token, principal: bob, attributes: { teams: [blue] } }\n";

struct Env {
    app: TestApp,
    upstream: FakeUpstream,
}

async fn start(storage: Storage<'_>, extra: &str) -> Env {
    let upstream = FakeUpstream::start().await;
    let config = chat_config(storage, &upstream.base_url, extra);
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    Env { app, upstream }
}

async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

async fn post(app: &TestApp, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    call(app, reqwest::Method::POST, "/v1/chat/completions", token, Some(body)).await
}

async fn get(app: &TestApp, token: Option<&str>, path: &str) -> (StatusCode, Value) {
    call(app, reqwest::Method::GET, path, token, None).await
}

/// The SSE `data:` payloads of a streamed answer.
async fn stream_events(app: &TestApp, token: Option<&str>, body: Value) -> (StatusCode, Vec<String>) {
    let mut req = app.http.post(format!("{}/v1/chat/completions", app.base)).json(&body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let text = res.text().await.expect("body");
    let events = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).map(str::to_owned).collect();
    (status, events)
}

async fn create_read_update_delete(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage, "").await;
    let mut body = chat("test-model");
    body["metadata"] = json!({"suite": "e2e"});
    let (status, completion) = post(&app, None, body).await;
    assert_eq!(status, StatusCode::OK, "{completion}");
    assert_eq!(completion["model"], "test-model", "model is rewritten to the requested id");
    assert_eq!(completion["choices"][0]["message"]["content"], "hello world");
    assert_eq!(completion["choices"][0]["message"]["tool_calls"], Value::Null, "empty tool_calls normalised");
    let id = completion["id"].as_str().expect("id").to_owned();

    let (status, stored) = get(&app, None, &format!("/v1/chat/completions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["choices"], completion["choices"]);
    assert_eq!(stored["input_messages"], json!([{"role": "user", "content": "hi"}]));
    assert_eq!(stored["metadata"], json!({"suite": "e2e"}));

    let (status, page) = get(&app, None, "/v1/chat/completions?limit=5").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        (page["object"].clone(), page["first_id"].clone(), page["has_more"].clone()),
        (json!("list"), json!(id), json!(false))
    );

    let (status, messages) = get(&app, None, &format!("/v1/chat/completions/{id}/messages")).await;
    assert_eq!(status, StatusCode::OK, "{messages}");
    let roles: Vec<&str> =
        messages["data"].as_array().expect("data").iter().filter_map(|m| m["role"].as_str()).collect();
    assert_eq!(roles, ["user", "assistant"], "{messages}");
    assert_eq!(messages["first_id"], format!("{id}-0"));

    let (status, updated) = call(
        &app,
        reqwest::Method::POST,
        &format!("/v1/chat/completions/{id}"),
        None,
        Some(json!({"metadata": {"k": "v"}})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["metadata"], json!({"k": "v"}));
    let (_, filtered) = get(&app, None, "/v1/chat/completions?metadata[k]=v").await;
    assert_eq!(filtered["data"].as_array().map(Vec::len), Some(1), "{filtered}");
    let (_, filtered) = get(&app, None, "/v1/chat/completions?metadata[k]=w").await;
    assert_eq!(filtered["data"].as_array().map(Vec::len), Some(0), "{filtered}");

    let (status, bad) = get(&app, None, "/v1/chat/completions?limit=0").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert_eq!(bad["error"]["param"], "limit");
    let (status, bad) = get(&app, None, "/v1/chat/completions?after=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    assert!(bad["error"]["message"].as_str().unwrap_or_default().contains("nope"), "names the cursor: {bad}");

    let (status, deleted) =
        call(&app, reqwest::Method::DELETE, &format!("/v1/chat/completions/{id}"), None, None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted, json!({"id": id, "object": "chat.completion.deleted", "deleted": true}));
    assert_eq!(get(&app, None, &format!("/v1/chat/completions/{id}")).await.0, StatusCode::NOT_FOUND);
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn stream_relayed_and_stored(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage, "").await;
    let mut body = chat("test-model");
    body["stream"] = json!(true);
    let (status, events) = stream_events(&app, None, body).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).expect("chunk json")).collect();
    assert!(chunks.iter().all(|c| c["model"] == "test-model"), "every chunk's model is rewritten: {chunks:?}");
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "hello world");
    let id = chunks[0]["id"].as_str().expect("id");
    let (status, stored) = get(&app, None, &format!("/v1/chat/completions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["choices"][0]["message"]["content"], "hello world");
    assert_eq!(stored["choices"][0]["finish_reason"], "stop");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn tool_calls_assembled(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage, "").await;
    let mut body = chat("tools-model");
    body["stream"] = json!(true);
    let (status, events) = stream_events(&app, None, body).await;
    assert_eq!(status, StatusCode::OK);
    let first: Value = serde_json::from_str(&events[0]).expect("chunk");
    let id = first["id"].as_str().expect("id");
    let (_, stored) = get(&app, None, &format!("/v1/chat/completions/{id}")).await;
    let call = &stored["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["id"], "call_1", "{stored}");
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(call["function"]["arguments"], "{\"city\":\"Paris\"}", "fragments joined in order");
    assert_eq!(stored["choices"][0]["finish_reason"], "tool_calls");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn store_false(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage, "").await;
    let mut body = chat("test-model");
    body["store"] = json!(false);
    assert_eq!(post(&app, None, body.clone()).await.0, StatusCode::OK);
    body["stream"] = json!(true);
    assert_eq!(stream_events(&app, None, body).await.0, StatusCode::OK);
    assert_eq!(upstream.requests(), 2, "both reached the upstream");
    let (_, page) = get(&app, None, "/v1/chat/completions").await;
    assert_eq!(page["data"], json!([]), "nothing stored: {page}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn tenants_isolated(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage, TOKENS).await;
    let (status, completion) = post(&app, Some("alice-token"), chat("test-model")).await;
    assert_eq!(status, StatusCode::OK, "{completion}");
    let id = completion["id"].as_str().expect("id").to_owned();
    let (_, bobs) = post(&app, Some("bob-token"), chat("test-model")).await;
    let bob_id = bobs["id"].as_str().expect("id").to_owned();

    let (_, page) = get(&app, Some("bob-token"), "/v1/chat/completions").await;
    let ids: Vec<&str> = page["data"].as_array().expect("data").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, [bob_id.as_str()], "bob lists only his own: {page}");
    let (status, bad) = get(&app, Some("bob-token"), &format!("/v1/chat/completions?after={id}")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "alice's id is no cursor for bob: {bad}");
    for (method, path, body) in [
        (reqwest::Method::GET, format!("/v1/chat/completions/{id}"), None),
        (reqwest::Method::GET, format!("/v1/chat/completions/{id}/messages"), None),
        (reqwest::Method::POST, format!("/v1/chat/completions/{id}"), Some(json!({"metadata": {"x": "y"}}))),
        (reqwest::Method::DELETE, format!("/v1/chat/completions/{id}"), None),
    ] {
        let (status, body) = call(&app, method.clone(), &path, Some("bob-token"), body).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "bob {method} {path}: {body}");
    }
    let (status, stored) = get(&app, Some("alice-token"), &format!("/v1/chat/completions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "alice still has hers: {stored}");
    assert_eq!(stored["metadata"], json!({}), "bob's update did not land");
    assert_eq!(get(&app, None, "/v1/chat/completions").await.0, StatusCode::UNAUTHORIZED);
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn client_disconnect(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage, "").await;
    let mut body = chat("hold-model");
    body["stream"] = json!(true);
    let res = app.http.post(format!("{}/v1/chat/completions", app.base)).json(&body).send().await.expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = res.bytes_stream();
    let first = stream.next().await.expect("a first chunk").expect("bytes");
    let first = String::from_utf8_lossy(&first).into_owned();
    let chunk: Value = serde_json::from_str(first.trim().trim_start_matches("data: ")).expect("chunk json");
    let id = chunk["id"].as_str().expect("id").to_owned();
    drop(stream); // the client goes away mid-stream
    upstream.release();
    let stored = wait_for("the partial completion to be stored", Duration::from_secs(10), || async {
        let (status, body) = get(&app, None, &format!("/v1/chat/completions/{id}")).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    let content = stored["choices"][0]["message"]["content"].as_str().unwrap_or_default().to_owned();
    assert!(content.starts_with("partial"), "what was relayed is stored: {stored}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn upstream_failures(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage, "").await;
    let (status, body) = post(&app, None, chat("bad-model")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["message"], "max_tokens is too large", "the provider's message passes through");
    assert_eq!(body["error"]["param"], "max_tokens");

    let (status, body) = post(&app, None, chat("garbage-model")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");

    let (status, body) = post(&app, None, chat("no-such-model")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("no-such-model"), "{body}");

    let (status, body) = post(&app, None, json!({"model": "test-model"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["param"], "messages", "{body}");
    let (status, body) =
        post(&app, None, json!({"model": "test-model", "messages": [{"role": "robot", "content": "x"}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"]["param"].as_str().unwrap_or_default().starts_with("messages[0]"), "{body}");

    let (status, body) = post(&app, None, chat("slow-model")).await;
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT, "{body}");

    // A stream that stalls after its first chunk: the read timeout ends it with an SSE error
    // event (no [DONE]), and what was relayed is stored.
    let mut body = chat("slow-model");
    body["stream"] = json!(true);
    let (status, events) = stream_events(&app, None, body).await;
    assert_eq!(status, StatusCode::OK, "{events:?}");
    assert!(!events.iter().any(|e| e == "[DONE]"), "no [DONE] after a failure: {events:?}");
    let last: Value = serde_json::from_str(events.last().expect("events")).expect("error event json");
    assert_eq!(last["error"]["code"], "upstream_timeout", "{last}");
    let first: Value = serde_json::from_str(&events[0]).expect("chunk json");
    let partial_id = first["id"].as_str().expect("id").to_owned();
    let (status, stored) = get(&app, None, &format!("/v1/chat/completions/{partial_id}")).await;
    assert_eq!(status, StatusCode::OK, "the partial answer is stored: {stored}");
    upstream.release();

    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .header("traceparent", traceparent)
        .json(&chat("test-model"))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        upstream.traceparents().await.last().cloned().flatten().as_deref(),
        Some(traceparent),
        "traceparent passed on"
    );

    let (_, page) = get(&app, None, "/v1/chat/completions").await;
    let stored: Vec<&str> = page["data"].as_array().expect("data").iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(stored.len(), 2, "only the traced call and the partial stream are stored: {page}");
    assert!(stored.contains(&partial_id.as_str()), "{page}");

    upstream.stop().await;
    let (status, body) = post(&app, None, chat("test-model")).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "upstream down: {body}");
    assert_eq!(get(&app, None, "/v1/health").await.0, StatusCode::OK, "the server keeps serving");
    app.stop().await.expect("clean stop");
}

/// Stop the server while requests are in flight: every 2xx answer must be a stored row.
async fn shutdown_under_load(storage: Storage<'_>) {
    let upstream = FakeUpstream::start().await;
    let config = chat_config(storage, &upstream.base_url, "");
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    let url = format!("{}/v1/chat/completions", app.base);
    let client = app.http.clone();
    let requests: Vec<_> = (0..60)
        .map(|i| {
            let (client, url) = (client.clone(), url.clone());
            let mut body = chat("test-model");
            body["stream"] = json!(i % 2 == 0);
            ferrostack_testkit::spawn(async move {
                match client.post(&url).json(&body).send().await {
                    Ok(res) if res.status().is_success() => res.text().await.is_ok_and(|t| !t.contains("\"error\"")),
                    _ => false,
                }
            })
        })
        .collect();
    // Let some of them through, then stop while the rest are in flight or not yet accepted.
    wait_for("a few answers", Duration::from_secs(10), || async { (upstream.requests() >= 10).then_some(()) }).await;
    app.stop().await.expect("clean stop");
    let mut ok = 0;
    for r in requests {
        if r.await.unwrap_or(false) {
            ok += 1;
        }
    }
    // Count what was stored, through a fresh server on the same storage.
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    let mut stored = 0;
    let mut after = String::new();
    loop {
        let path = if after.is_empty() {
            "/v1/chat/completions?limit=100".to_owned()
        } else {
            format!("/v1/chat/completions?limit=100&after={after}")
        };
        let (_, page) = get(&app, None, &path).await;
        stored += page["data"].as_array().map_or(0, Vec::len);
        if page["has_more"] != json!(true) {
            break;
        }
        after = page["last_id"].as_str().unwrap_or_default().to_owned();
    }
    assert!(ok > 0, "some requests succeeded");
    assert_eq!(stored, ok, "stored rows == 2xx answers");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

/// Why the OpenAI SDK check cannot run here (`None` when it can, or when it must: in CI a missing
/// SDK is a failure, reported by the test itself).
fn sdk_missing() -> Option<String> {
    let available =
        std::process::Command::new("python3").args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    (!available && !ferrostack_testkit::postgres_required())
        .then(|| "python3 with the openai package is not installed (pip install openai)".to_owned())
}

async fn openai_sdk(storage: Storage<'_>) {
    let available =
        std::process::Command::new("python3").args(["-c", "import openai"]).output().is_ok_and(|o| o.status.success());
    if !available {
        assert!(!ferrostack_testkit::postgres_required(), "CI must run the OpenAI SDK check: pip install openai");
        eprintln!("*** SKIPPING the OpenAI SDK check: python3 with the openai package is not installed");
        return;
    }
    let Env { app, upstream } = start(storage, TOKENS).await;
    let llama = "meta-llama/Llama-3.2-3B-Instruct";
    let registration = json!({"model_id": llama, "provider_id": "fake", "provider_model_id": "echo"});
    let (status, body) = call(&app, reqwest::Method::POST, "/v1/models", Some("alice-token"), Some(registration)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    run_sdk_check(&app, "alice-token", "test-model", Some(llama)).await;
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

/// Run tests/sdk/openai_check.py against `app`.
async fn run_sdk_check(app: &TestApp, key: &str, model: &str, other_model: Option<&str>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/sdk/openai_check.py");
    let mut args = vec![script.to_owned(), app.base.clone(), key.to_owned(), model.to_owned()];
    args.extend(other_model.map(str::to_owned));
    let out = tokio::task::spawn_blocking(move || std::process::Command::new("python3").args(&args).output())
        .await
        .expect("join")
        .expect("run python3");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the OpenAI SDK check failed:\n{text}");
}

/// The server as `ferrostack serve` runs it with no config file and no engine variable (SQLite
/// under a temporary home, the echo provider), storing with `durability: sync`.
async fn no_config_app(home: &std::path::Path) -> TestApp {
    let env = ferrostack_config::Env::from_pairs([
        ("FERROSTACK_HOME", home.display().to_string()),
        ("FERROSTACK__STORAGE__STORES__INFERENCE__DURABILITY", "sync".to_owned()),
    ]);
    let mut config = ferrostack_config::load_default(&env).expect("the built-in config loads").config;
    ferrostack_tests::test_server_settings(&mut config);
    TestApp::spawn(&config, ServeOptions::default()).await
}

async fn echo_without_config() {
    let home = tempfile::tempdir().expect("tempdir");
    let app = no_config_app(home.path()).await;
    let body =
        json!({"model": "echo", "messages": [{"role": "user", "content": [{"type": "text", "text": "two words"}]}]});
    let (status, completion) = post(&app, None, body.clone()).await;
    assert_eq!(status, StatusCode::OK, "{completion}");
    assert_eq!(completion["choices"][0]["message"]["content"], "echo: two words");
    let mut streamed = body;
    streamed["stream"] = json!(true);
    let (status, events) = stream_events(&app, None, streamed).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events.last().map(String::as_str), Some("[DONE]"), "{events:?}");
    let chunks: Vec<Value> =
        events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).expect("chunk")).collect();
    let text: String = chunks.iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect();
    assert_eq!(text, "echo: two words", "the same answer, word by word");
    let usage = chunks.last().expect("a usage chunk")["usage"].clone();
    assert_eq!(usage, json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}));
    let id = chunks[0]["id"].as_str().expect("id");
    let (status, stored) = get(&app, None, &format!("/v1/chat/completions/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(stored["choices"][0]["message"]["content"], "echo: two words");
    let (_, page) = get(&app, None, "/v1/chat/completions").await;
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2), "{page}");
    app.stop().await.expect("clean stop");
}

async fn openai_sdk_no_config() {
    let home = tempfile::tempdir().expect("tempdir");
    let app = no_config_app(home.path()).await;
    run_sdk_check(&app, "no-key-needed", "echo", None).await;
    app.stop().await.expect("clean stop");
}
