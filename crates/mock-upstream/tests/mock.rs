//! The mock upstream over HTTP on a loopback port: the shapes of its answers and its flags. No
//! timing assertions.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::time::Duration;

use ferrostack_mock_upstream::{Config, bind, latency_for, words_for};
use serde_json::{Value, json};

async fn start(config: Config) -> String {
    let (server, addrs) = bind(config).unwrap();
    ferrostack_testkit::spawn(server);
    format!("http://{}", addrs[0])
}

async fn post(base: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new().post(format!("{base}/v1/chat/completions")).json(&body).send().await.unwrap()
}

#[tokio::test]
async fn lists_models() {
    let base = start(Config { models: vec!["a".into(), "b".into()], ..Config::default() }).await;
    let body: Value = reqwest::get(format!("{base}/v1/models")).await.unwrap().json().await.unwrap();
    assert_eq!(body["object"], "list");
    let ids: Vec<_> = body["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert_eq!(body["data"][0]["object"], "model");
}

#[tokio::test]
async fn answers_a_chat_completion_as_json() {
    let base = start(Config { words: 7, ..Config::default() }).await;
    let response = post(&base, json!({"model": "m\"x", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "m\"x", "the model is echoed, escaped");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["choices"][0]["message"]["role"], "assistant");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(body["choices"][0]["message"]["content"].as_str().unwrap().split(' ').count(), 7);
    assert_eq!(body["usage"]["completion_tokens"], 7);
}

#[tokio::test]
async fn every_answer_has_its_own_id() {
    let base = start(Config::default()).await;
    let mut ids = std::collections::BTreeSet::new();
    for _ in 0..20 {
        let body: Value = post(&base, json!({"model": "m", "messages": []})).await.json().await.unwrap();
        ids.insert(body["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 20);
}

#[tokio::test]
async fn streams_sse_chunks_with_one_id_then_done() {
    let base = start(Config { words: 5, chunk_delay_ms: 1.0, ..Config::default() }).await;
    let response = post(&base, json!({"model": "m", "stream": true, "messages": []})).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let text = response.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 1 + 5 + 1 + 1, "role, 5 words, finish, [DONE]: {text}");
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e.strip_prefix("data: ").unwrap()).unwrap())
        .collect();
    assert!(chunks.iter().all(|c| c["id"] == chunks[0]["id"] && c["object"] == "chat.completion.chunk"));
    assert!(chunks.iter().all(|c| c["model"] == "m"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let content: String =
        chunks[1..6].iter().map(|c| c["choices"][0]["delta"]["content"].as_str().unwrap().to_owned()).collect();
    assert_eq!(content.split(' ').count(), 5);
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
    assert!(chunks[..6].iter().all(|c| c["choices"][0]["finish_reason"].is_null()));
}

#[tokio::test]
async fn streams_without_delay_too() {
    let base = start(Config { words: 3, ..Config::default() }).await;
    let text = post(&base, json!({"model": "m", "stream": true})).await.text().await.unwrap();
    assert_eq!(text.matches("data: ").count(), 1 + 3 + 1 + 1);
    assert!(text.ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn refuses_a_body_that_is_not_a_chat_request() {
    let base = start(Config::default()).await;
    let response =
        reqwest::Client::new().post(format!("{base}/v1/chat/completions")).body("{not json").send().await.unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn answers_with_latency_configured() {
    // Only that it answers: timing is not asserted.
    let base = start(Config { latency_ms: 1.0, latency_max_ms: Some(3.0), ..Config::default() }).await;
    assert_eq!(post(&base, json!({"model": "m"})).await.status(), 200);
}

#[test]
fn latency_is_fixed_or_within_its_range() {
    let fixed = Config { latency_ms: 5.0, ..Config::default() };
    assert_eq!(latency_for(&fixed, 12345), Duration::from_millis(5));
    let random = Config { latency_ms: 2.0, latency_max_ms: Some(4.0), ..Config::default() };
    let samples: Vec<Duration> =
        (0..1000u64).map(|i| latency_for(&random, i.wrapping_mul(0x9E37_79B9_7F4A_7C15))).collect();
    assert!(samples.iter().all(|d| *d >= Duration::from_millis(2) && *d <= Duration::from_millis(4)));
    assert!(
        samples.iter().any(|d| *d < Duration::from_millis(3)) && samples.iter().any(|d| *d > Duration::from_millis(3))
    );
    assert_eq!(latency_for(&Config::default(), 7), Duration::ZERO);
    // A max below the min is ignored.
    let inverted = Config { latency_ms: 3.0, latency_max_ms: Some(1.0), ..Config::default() };
    assert_eq!(latency_for(&inverted, 99), Duration::from_millis(3));
}

#[test]
fn words_are_fixed_or_within_their_range() {
    assert_eq!(words_for(&Config { words: 9, ..Config::default() }, 123), 9);
    let range = Config { words: 20, words_max: Some(80), ..Config::default() };
    let counts: Vec<usize> = (0..1000u64).map(|i| words_for(&range, i * 7919)).collect();
    assert!(counts.iter().all(|n| (20..=80).contains(n)));
    assert!(counts.contains(&20) && counts.contains(&80));
}
