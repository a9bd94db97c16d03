//! Telemetry end to end: the real server exports OTLP/HTTP to a receiver on a loopback port, and
//! what arrives is checked: span names and attributes, parent/child links, the client's trace
//! continued into the upstream call, and the metrics. Also the request id.
//!
//! The `tracing` subscriber is process-wide; the first test installs it (with its OpenTelemetry
//! layer) and no other test of this binary installs one. Other tests running meanwhile also send
//! spans to the receiver, so every assertion picks its spans by request id or trace id. Metrics
//! are per application (the meter is passed to it), so they are this test's only.

use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_config::Env;
use ferrostack_testkit::Test;
use ferrostack_tests::otlp::{OtlpReceiver, ReceivedMetric, ReceivedSpan};
use ferrostack_tests::upstream::FakeUpstream;
use ferrostack_tests::{Storage, TestApp, builtin_config, chat_config};
use futures_util::StreamExt;
use reqwest::StatusCode;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("telemetry::spans_and_metrics_reach_an_otlp_receiver", spans_and_metrics),
        Test::plain("telemetry::request_id_is_echoed_or_generated", request_id),
    ]
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CLIENT_SPAN_ID: &str = "00f067aa0ba902b7";

async fn spans_and_metrics() {
    let receiver = OtlpReceiver::start().await;
    let upstream = FakeUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let log_level = if std::env::var_os("TEST_LOG").is_some() { "info" } else { "off" };
    let extra = format!(
        "server:\n  auth:\n    provider_config:\n      type: static\n      tokens:\n        - {{ token: alice-token, principal: alice }}\ntelemetry:\n  enabled: true\n  otlp_endpoint: {}\n  service_name: ferrostack-test\n  deployment_environment: test\n  log_level: \"{log_level}\"\n  trace_export_interval_ms: 200\n  metric_export_interval_ms: 600000\n",
        receiver.endpoint
    );
    let config = chat_config(Storage::Sqlite(dir.path()), &upstream.base_url, &extra);
    // The process environment is left out: an OTEL_* variable of the machine must not redirect
    // this test's export.
    let guard = ferrostack::telemetry::init(&config.telemetry, &Env::default()).expect("telemetry init");
    let options = ServeOptions { auto_migrate: true, telemetry: guard.telemetry() };
    let app = TestApp::spawn(&config, options).await;

    // 1. A chat completion carrying the client's trace context.
    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN_ID}-01");
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .bearer_auth("alice-token")
        .header("traceparent", &traceparent)
        .header("x-request-id", "telemetry-chat")
        .json(&json!({"model": "test-model", "messages": [{"role": "user", "content": "secret words"}]}))
        .send()
        .await
        .expect("chat request");
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(header(&res, "x-request-id").as_deref(), Some("telemetry-chat"), "the request id is echoed");
    let completion: Value = res.json().await.expect("completion json");
    let completion_id = completion["id"].as_str().expect("id").to_owned();

    // 2. A read, by route pattern, without trace context: a new trace.
    let res = app
        .http
        .get(format!("{}/v1/chat/completions/{completion_id}", app.base))
        .bearer_auth("alice-token")
        .header("x-request-id", "telemetry-get")
        .send()
        .await
        .expect("get request");
    assert_eq!(res.status(), StatusCode::OK);

    // 3. A stream, for the time to first chunk.
    let res = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .bearer_auth("alice-token")
        .header("x-request-id", "telemetry-stream")
        .json(&json!({"model": "test-model", "stream": true, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .expect("stream request");
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.bytes_stream();
    while let Some(chunk) = body.next().await {
        chunk.expect("stream chunk");
    }

    // 4. Unauthenticated: 401, no enduser.id.
    let res = app
        .http
        .get(format!("{}/v1/chat/completions", app.base))
        .header("x-request-id", "telemetry-401")
        .send()
        .await
        .expect("request");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);

    let upstream_traceparents = upstream.traceparents().await;
    app.stop().await.expect("clean stop");
    // The last step of the shutdown: flush spans and metrics.
    guard.shutdown().await;
    upstream.stop().await;

    let spans = receiver.spans();
    let metrics = receiver.metrics();
    receiver.stop().await;
    check_spans(&spans, &upstream_traceparents, &completion_id);
    check_metrics(&metrics);
}

fn header(res: &reqwest::Response, name: &str) -> Option<String> {
    res.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn by_request_id<'a>(spans: &'a [ReceivedSpan], id: &str) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.attr("request_id") == Some(id)).collect();
    assert_eq!(found.len(), 1, "one request span with request_id {id}: {spans:#?}");
    found[0]
}

fn children<'a>(spans: &'a [ReceivedSpan], parent: &ReceivedSpan) -> Vec<&'a ReceivedSpan> {
    spans.iter().filter(|s| s.trace_id == parent.trace_id && s.parent_span_id == parent.span_id).collect()
}

fn check_spans(spans: &[ReceivedSpan], upstream_traceparents: &[Option<String>], completion_id: &str) {
    // The chat request: continues the client's trace, under the client's span.
    let chat = by_request_id(spans, "telemetry-chat");
    assert_eq!(chat.name, "POST /v1/chat/completions");
    assert_eq!(chat.kind, 2, "a server span");
    assert_eq!(chat.trace_id, TRACE_ID, "the incoming trace is continued");
    assert_eq!(chat.parent_span_id, CLIENT_SPAN_ID, "the client's span is the parent");
    assert_eq!(chat.attr("http.request.method"), Some("POST"));
    assert_eq!(chat.attr("http.route"), Some("/v1/chat/completions"));
    assert_eq!(chat.attr("url.path"), Some("/v1/chat/completions"));
    assert_eq!(chat.int("http.response.status_code"), Some(200), "{chat:#?}");
    assert_eq!(chat.attr("enduser.id"), Some("alice"));
    assert_eq!(chat.resource.get("service.name"), Some(&json!("ferrostack-test")));
    assert_eq!(chat.resource.get("deployment.environment"), Some(&json!("test")));
    assert!(chat.resource.contains_key("service.version"), "{:?}", chat.resource);

    let chat_children = children(spans, chat);
    let auth = chat_children.iter().find(|s| s.name == "authenticate static").expect("authenticate span");
    assert_eq!(auth.attr("auth.outcome"), Some("ok"));
    let call = chat_children.iter().find(|s| s.name == "chat test-model").expect("upstream span, child of the request");
    assert_eq!(call.kind, 3, "a client span");
    assert_eq!(call.attr("gen_ai.request.model"), Some("test-model"));
    assert_eq!(call.attr("ferrostack.provider"), Some("fake"));
    assert_eq!(call.attributes.get("ferrostack.stream"), Some(&json!(false)));
    // The upstream saw our upstream span as its parent, in the client's trace.
    let expected = format!("00-{TRACE_ID}-{}-01", call.span_id);
    assert_eq!(upstream_traceparents.first().cloned().flatten(), Some(expected), "traceparent sent upstream");

    // The read: the route pattern, never the id; a database span below it, without values.
    let get = by_request_id(spans, "telemetry-get");
    assert_eq!(get.name, "GET /v1/chat/completions/{completion_id}");
    assert_eq!(get.attr("http.route"), Some("/v1/chat/completions/{completion_id}"));
    assert_eq!(get.attr("enduser.id"), Some("alice"));
    assert_ne!(get.trace_id, TRACE_ID, "no traceparent: a new trace");
    assert_eq!(get.parent_span_id, "", "a root span");
    let db = children(spans, get)
        .into_iter()
        .find(|s| s.name == "SELECT inference_store")
        .unwrap_or_else(|| panic!("a database span under the read: {:#?}", children(spans, get)));
    assert_eq!(db.kind, 3);
    assert_eq!(db.attr("db.system"), Some("sqlite"));
    assert_eq!(db.attr("db.operation.name"), Some("SELECT"));
    assert_eq!(db.attr("db.collection.name"), Some("inference_store"));
    let statement = db.attr("db.statement").expect("statement");
    assert!(!statement.contains(completion_id) && !statement.contains("alice"), "no bound values: {statement}");

    // The stream: the time to first chunk is on the upstream span.
    let stream = by_request_id(spans, "telemetry-stream");
    let call = children(spans, stream).into_iter().find(|s| s.name == "chat test-model").expect("stream upstream");
    assert_eq!(call.attributes.get("ferrostack.stream"), Some(&json!(true)));
    assert!(call.int("ferrostack.time_to_first_chunk_ms").is_some(), "{call:#?}");

    // The 401: no principal.
    let refused = by_request_id(spans, "telemetry-401");
    assert_eq!(refused.int("http.response.status_code"), Some(401));
    assert_eq!(refused.attr("enduser.id"), None);

    // Write-queue batches: root spans with their size and outcome, a transaction below.
    let batch = spans
        .iter()
        .find(|s| {
            s.name == "inference_store write_batch" && s.resource.get("service.name") == Some(&json!("ferrostack-test"))
        })
        .expect("a write batch span");
    assert!(batch.int("batch.size").is_some_and(|n| n >= 1), "{batch:#?}");
    assert!(batch.int("batch.waited_ms").is_some(), "{batch:#?}");
    assert_eq!(batch.attr("batch.outcome"), Some("written"));
    assert!(
        children(spans, batch).iter().any(|s| s.name == "INSERT inference_store"),
        "the batch's transaction: {:#?}",
        children(spans, batch)
    );

    // No message content anywhere.
    for s in spans {
        for v in s.attributes.values() {
            assert!(!v.to_string().contains("secret words"), "message content in span {}: {v}", s.name);
        }
    }
}

fn metric<'a>(metrics: &'a [ReceivedMetric], name: &str) -> &'a ReceivedMetric {
    metrics.iter().rev().find(|m| m.name == name).unwrap_or_else(|| {
        panic!("metric {name} not received; got {:?}", metrics.iter().map(|m| &m.name).collect::<Vec<_>>())
    })
}

fn check_metrics(metrics: &[ReceivedMetric]) {
    let duration = metric(metrics, "http.server.request.duration");
    assert_eq!(duration.unit, "s");
    assert_eq!(duration.resource.get("service.name"), Some(&json!("ferrostack-test")));
    let chat = duration
        .points
        .iter()
        .find(|p| {
            p.attributes.get("http.route") == Some(&json!("/v1/chat/completions"))
                && p.attributes.get("http.request.method") == Some(&json!("POST"))
                && p.attributes.get("http.response.status_code") == Some(&json!(200))
        })
        .unwrap_or_else(|| panic!("chat requests in the duration histogram: {duration:#?}"));
    assert!(chat.value >= 2.0, "two chat requests: {chat:?}");
    assert!(
        duration
            .points
            .iter()
            .any(|p| p.attributes.get("http.route") == Some(&json!("/v1/chat/completions/{completion_id}"))),
        "{duration:#?}"
    );

    let upstream = metric(metrics, "gen_ai.client.operation.duration");
    assert!(
        upstream.points.iter().any(|p| p.attributes.get("gen_ai.request.model") == Some(&json!("test-model"))),
        "{upstream:#?}"
    );
    let ttfc = metric(metrics, "ferrostack.upstream.time_to_first_chunk");
    assert!(ttfc.points.iter().any(|p| p.value >= 1.0), "{ttfc:#?}");

    let rows = metric(metrics, "ferrostack.inference_store.rows");
    let written = rows.points.iter().find(|p| p.attributes.get("outcome") == Some(&json!("written"))).expect("written");
    assert!(written.value >= 2.0, "both completions written: {rows:#?}");
    for outcome in ["retried", "failed"] {
        assert!(rows.points.iter().any(|p| p.attributes.get("outcome") == Some(&json!(outcome))), "{rows:#?}");
    }
    let depth = metric(metrics, "ferrostack.inference_store.queue.depth");
    assert_eq!(depth.points.first().map(|p| p.value), Some(0.0), "drained at shutdown: {depth:#?}");
    let bytes = metric(metrics, "ferrostack.inference_store.queue.bytes");
    assert_eq!(bytes.points.first().map(|p| p.value), Some(0.0), "no bytes held once drained: {bytes:#?}");
    let limit = metric(metrics, "ferrostack.inference_store.queue.bytes.limit");
    assert_eq!(limit.points.first().map(|p| p.value), Some(268_435_456.0), "{limit:#?}");
    assert!(metric(metrics, "ferrostack.inference_store.batch.size").points.iter().any(|p| p.value >= 1.0));
    metric(metrics, "ferrostack.inference_store.batches");

    let connections = metric(metrics, "db.client.connection.count");
    for pool in ["sql_sqlite", "kv_sqlite"] {
        for state in ["idle", "used"] {
            assert!(
                connections
                    .points
                    .iter()
                    .any(|p| p.attributes.get("db.client.connection.pool.name") == Some(&json!(pool))
                        && p.attributes.get("db.client.connection.state") == Some(&json!(state))),
                "{pool}/{state}: {connections:#?}"
            );
        }
    }
    metric(metrics, "db.client.connection.max");
    metric(metrics, "db.client.connection.pending_requests");
}

async fn request_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = builtin_config(dir.path());
    let app = TestApp::spawn(&config, ServeOptions::default()).await;
    let get = |id: Option<String>| {
        let mut req = app.http.get(format!("{}/v1/health", app.base));
        if let Some(id) = id {
            req = req.header("x-request-id", id);
        }
        req.send()
    };
    let echoed = get(Some("req-42.a_b:c".to_owned())).await.expect("request");
    assert_eq!(header(&echoed, "x-request-id").as_deref(), Some("req-42.a_b:c"), "a sane id is echoed");

    let is_uuid = |v: Option<String>| v.is_some_and(|v| uuid::Uuid::parse_str(&v).is_ok());
    let generated = get(None).await.expect("request");
    assert!(is_uuid(header(&generated, "x-request-id")), "an id is generated when none is sent");
    for odd in ["has spaces in it".to_owned(), "x".repeat(129), "quote\"s".to_owned()] {
        let res = get(Some(odd.clone())).await.expect("request");
        let got = header(&res, "x-request-id");
        assert!(is_uuid(got.clone()), "{odd:?} is replaced by a generated id, got {got:?}");
    }
    // Error answers carry it too.
    let res = app.http.get(format!("{}/nope", app.base)).header("x-request-id", "missing-1").send().await;
    let res = res.expect("request");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&res, "x-request-id").as_deref(), Some("missing-1"));
    tokio::time::timeout(Duration::from_secs(30), app.stop()).await.expect("stops in time").expect("clean stop");
}
