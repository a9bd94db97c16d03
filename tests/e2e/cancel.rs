//! Upstream calls bounded and cancelled (issue 15, item 3), over real HTTP with the fake
//! upstream: a client that leaves cancels its upstream call (the fake sees its connection
//! closed), what a cut stream relayed is stored with `finish_reason: null`, and a provider at its
//! concurrency cap answers 503 with `Retry-After` without calling the upstream.

use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::upstream::FakeUpstream;
use ferrostack_tests::{Storage, TestApp, config_from_yaml, test_server_settings, wait_for};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("cancel::json_client_leaving_closes_the_upstream_call", || async {
            let dir = tempfile::tempdir().expect("tempdir");
            json_client_leaves(Storage::Sqlite(dir.path())).await;
        }),
        Test::plain("cancel::stream_client_leaving_closes_the_upstream_and_stores_null_finish", || async {
            let dir = tempfile::tempdir().expect("tempdir");
            stream_client_leaves(Storage::Sqlite(dir.path())).await;
        }),
        Test::plain("cancel::stream_cut_by_the_upstream_is_stored_with_null_finish", || async {
            let dir = tempfile::tempdir().expect("tempdir");
            stream_cut(Storage::Sqlite(dir.path())).await;
        }),
        Test::plain("cancel::provider_at_its_cap_answers_503", || async {
            let dir = tempfile::tempdir().expect("tempdir");
            cap_full(Storage::Sqlite(dir.path())).await;
        }),
    ]
}

struct Env {
    app: TestApp,
    upstream: FakeUpstream,
}

/// Provider `fake` (default cap) and `capped` (one call at a time, 100 ms wait).
async fn start(storage: Storage<'_>) -> Env {
    let upstream = FakeUpstream::start().await;
    let url = &upstream.base_url;
    let yaml = format!(
        "version: 2\n{}providers:\n  inference:\n    - provider_id: fake\n      provider_type: remote::vllm\n      config: {{ url: \"{url}\" }}\n    - provider_id: capped\n      provider_type: remote::vllm\n      config: {{ url: \"{url}\", max_concurrent_requests: 1, queue_timeout_ms: 100 }}\nmodels:\n  - {{ model_id: trickle-model, provider_id: fake, provider_model_id: trickle }}\n  - {{ model_id: cut-model, provider_id: fake, provider_model_id: cut }}\n  - {{ model_id: capped-trickle, provider_id: capped, provider_model_id: trickle }}\n  - {{ model_id: capped-echo, provider_id: capped, provider_model_id: echo }}\n",
        storage.yaml()
    );
    let mut config = config_from_yaml(&yaml, &[]);
    test_server_settings(&mut config);
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    Env { app, upstream }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream})
}

async fn stored_ids(app: &TestApp) -> Vec<String> {
    let res = app.http.get(format!("{}/v1/chat/completions", app.base)).send().await.expect("list");
    let page: Value = res.json().await.expect("json");
    page["data"].as_array().expect("data").iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect()
}

async fn json_client_leaves(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage).await;
    // The client gives up after 300 ms; the upstream never answers.
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .timeout(Duration::from_millis(300))
        .json(&chat("trickle-model", false))
        .send()
        .await;
    assert!(res.is_err(), "the upstream never answers: {res:?}");
    wait_for("the upstream to see its connection closed", Duration::from_secs(10), || async {
        (upstream.closed() == 1).then_some(())
    })
    .await;
    assert_eq!(upstream.requests(), 1);
    assert!(stored_ids(&app).await.is_empty(), "nothing was produced, nothing is stored");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn stream_client_leaves(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage).await;
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .json(&chat("trickle-model", true))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    let first = body.next().await.expect("a first chunk").expect("bytes");
    let first = String::from_utf8_lossy(&first).into_owned();
    let chunk: Value = serde_json::from_str(first.trim().trim_start_matches("data: ")).expect("chunk json");
    let id = chunk["id"].as_str().expect("id").to_owned();
    assert_eq!(chunk["model"], "trickle-model", "model rewritten");
    drop(body); // the client goes away; the upstream still has more to say
    wait_for("the upstream to see its connection closed", Duration::from_secs(10), || async {
        (upstream.closed() == 1).then_some(())
    })
    .await;
    let stored = wait_for("the partial completion to be stored", Duration::from_secs(10), || async {
        let res = app.http.get(format!("{}/v1/chat/completions/{id}", app.base)).send().await.ok()?;
        if res.status() != StatusCode::OK {
            return None;
        }
        res.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(stored["choices"][0]["message"]["content"], "partial ", "{stored}");
    assert_eq!(stored["choices"][0]["finish_reason"], Value::Null, "the stream was cut: no made-up stop: {stored}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn stream_cut(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage).await;
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .json(&chat("cut-model", true))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("body");
    let events: Vec<&str> = text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect();
    assert!(!events.contains(&"[DONE]"), "the upstream sent no [DONE]; neither does ferrostack: {events:?}");
    let first: Value = serde_json::from_str(events[0]).expect("chunk json");
    let id = first["id"].as_str().expect("id").to_owned();
    let stored = wait_for("the cut completion to be stored", Duration::from_secs(10), || async {
        let res = app.http.get(format!("{}/v1/chat/completions/{id}", app.base)).send().await.ok()?;
        if res.status() != StatusCode::OK {
            return None;
        }
        res.json::<Value>().await.ok()
    })
    .await;
    assert_eq!(stored["choices"][0]["message"]["content"], "partial ", "{stored}");
    assert_eq!(stored["choices"][0]["finish_reason"], Value::Null, "{stored}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn cap_full(storage: Storage<'_>) {
    let Env { app, upstream } = start(storage).await;
    // One stream holds the provider's only place.
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .json(&chat("capped-trickle", true))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    body.next().await.expect("a first chunk").expect("bytes");
    for stream in [false, true] {
        let res = app
            .http
            .post(format!("{}/v1/chat/completions", app.base))
            .json(&chat("capped-echo", stream))
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "stream: {stream}");
        assert_eq!(res.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
        let err: Value = res.json().await.expect("error json");
        assert_eq!(err["error"]["code"], "upstream_busy", "{err}");
        assert_eq!(err["error"]["type"], "service_unavailable", "{err}");
    }
    assert_eq!(upstream.requests(), 1, "nothing was sent upstream while the provider was full");
    // Another provider is not affected.
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .json(&chat("cut-model", true))
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::OK);
    // The place frees when the stream's client leaves.
    drop(body);
    wait_for("the capped provider to take a call again", Duration::from_secs(10), || async {
        let res = app
            .http
            .post(format!("{}/v1/chat/completions", app.base))
            .json(&chat("capped-echo", false))
            .send()
            .await
            .ok()?;
        (res.status() == StatusCode::OK).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}
