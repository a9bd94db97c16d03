//! Durability under faults: the database down (503 with `Retry-After`, never 500; a create that
//! finds no place in the write queue is refused before the upstream is called; writing resumes
//! when the database is back), shutdown (new requests on open connections answered 503 with
//! `Connection: close`, in-flight ones finished, a handler still waiting at the end of the grace
//! answered 503 rather than reset) and the spill file (async rows the drain could not write are
//! stored by the next start).

use std::time::{Duration, Instant};

use ferrostack::ServeOptions;
use ferrostack_config::{Durability, RunConfig};
use ferrostack_testkit::upstream::FakeUpstream;
use ferrostack_testkit::{Postgres, Test, TestDatabase};
use ferrostack_tests::{Storage, TestApp, chat_config, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

pub fn tests() -> Vec<Test> {
    vec![
        Test::postgres("durability::database_down_answers_503_and_recovers", database_down),
        Test::plain("durability::shutdown_answers_new_requests_503_and_finishes_in_flight", shutdown_in_order),
        Test::plain("durability::shutdown_answers_a_waiting_request_503_at_the_grace_end", shutdown_cut),
        Test::plain("durability::shutdown_answers_a_request_on_an_idle_connection_503", shutdown_idle_connection),
        Test::postgres("durability::async_rows_outliving_the_drain_are_spilled_and_replayed", spill_and_replay),
        Test::postgres("durability::refusals_and_a_stalled_writer_reach_clients_and_readyz", writer_faults),
    ]
}

fn options() -> ServeOptions {
    ServeOptions { auto_migrate: true, ..ServeOptions::default() }
}

fn chat(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": "hi"}]})
}

/// Status, `Retry-After`, body.
async fn send(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Option<String>, Value) {
    let mut req = app.http.request(method, format!("{}{path}", app.base));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    (status, retry, res.json().await.unwrap_or(Value::Null))
}

fn assert_db_unavailable(what: &str, (status, retry, body): &(StatusCode, Option<String>, Value)) {
    assert_eq!(*status, StatusCode::SERVICE_UNAVAILABLE, "{what}: {body}");
    assert_eq!(retry.as_deref(), Some("1"), "{what}: Retry-After");
    assert_eq!(body["error"]["code"], "database_unavailable", "{what}: {body}");
    assert_eq!(body["error"]["type"], "service_unavailable", "{what}: {body}");
}

async fn set_connections(pg: &Postgres, db: &TestDatabase, allowed: bool) {
    let admin = pg.admin_client().await;
    let name = db.name();
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS {allowed}")).await.expect("alter");
    if !allowed {
        admin
            .execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", &[&name])
            .await
            .expect("terminate");
    }
}

fn tune(config: &mut RunConfig, f: impl FnOnce(&mut ferrostack_config::InferenceStoreConfig)) {
    f(config.storage.stores.inference.as_mut().expect("inference store"));
}

async fn database_down(pg: Postgres) {
    let db = pg.fresh_database().await;
    let upstream = FakeUpstream::start().await;
    let mut config = chat_config(Storage::Postgres(&db), &upstream.base_url, "");
    tune(&mut config, |s| {
        s.durability = Durability::Sync;
        s.max_write_queue_size = 1;
        s.queue_wait_timeout_ms = 300;
        s.commit_timeout_ms = 1000;
    });
    let app = TestApp::spawn(&config, options()).await;
    let (status, _, created) =
        send(&app, reqwest::Method::POST, "/v1/chat/completions", Some(chat("test-model"))).await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let id = created["id"].as_str().expect("id").to_owned();
    let (status, _, conversation) =
        send(&app, reqwest::Method::POST, "/v1/conversations", Some(json!({"metadata": {"k": "v"}}))).await;
    assert_eq!(status, StatusCode::OK, "{conversation}");
    let conversation = conversation["id"].as_str().expect("conversation id").to_owned();

    set_connections(&pg, &db, false).await;
    // Reads, updates and deletes: 503 with Retry-After, never 500.
    let get = reqwest::Method::GET;
    assert_db_unavailable("get", &send(&app, get.clone(), &format!("/v1/chat/completions/{id}"), None).await);
    assert_db_unavailable("list", &send(&app, get.clone(), "/v1/chat/completions", None).await);
    assert_db_unavailable(
        "messages",
        &send(&app, get.clone(), &format!("/v1/chat/completions/{id}/messages"), None).await,
    );
    let update = Some(json!({"metadata": {"a": "b"}}));
    assert_db_unavailable(
        "update",
        &send(&app, reqwest::Method::POST, &format!("/v1/chat/completions/{id}"), update).await,
    );
    assert_db_unavailable(
        "delete",
        &send(&app, reqwest::Method::DELETE, &format!("/v1/chat/completions/{id}"), None).await,
    );
    assert_db_unavailable(
        "conversation",
        &send(&app, get.clone(), &format!("/v1/conversations/{conversation}"), None).await,
    );
    assert_db_unavailable(
        "conversation items",
        &send(&app, get.clone(), &format!("/v1/conversations/{conversation}/items"), None).await,
    );
    let (status, _, body) = send(&app, get.clone(), "/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body["reasons"].as_array().is_some_and(|r| r.contains(&json!("database_unavailable"))), "{body}");

    // A sync create: the upstream answers, the commit does not come in time: 503, not a hang.
    let calls = upstream.requests();
    let first = send(&app, reqwest::Method::POST, "/v1/chat/completions", Some(chat("test-model"))).await;
    assert_db_unavailable("sync create", &first);
    assert_eq!(upstream.requests(), calls + 1);
    // Its row holds the only place in the queue: the next create is refused before the upstream.
    let second = send(&app, reqwest::Method::POST, "/v1/chat/completions", Some(chat("test-model"))).await;
    assert_db_unavailable("create with a full queue", &second);
    assert_eq!(upstream.requests(), calls + 1, "no upstream call for a create that cannot be stored");

    set_connections(&pg, &db, true).await;
    let back = Instant::now();
    let created = wait_for("creates to succeed again", Duration::from_secs(20), || async {
        let (status, _, body) =
            send(&app, reqwest::Method::POST, "/v1/chat/completions", Some(chat("test-model"))).await;
        (status == StatusCode::OK).then_some(body)
    })
    .await;
    eprintln!(
        "durability::database_down: creates succeed {} ms after the database is back",
        back.elapsed().as_millis()
    );
    let new_id = created["id"].as_str().expect("id");
    let (status, _, _) = send(&app, get.clone(), &format!("/v1/chat/completions/{new_id}"), None).await;
    assert_eq!(status, StatusCode::OK, "sync: stored when answered");
    wait_for("readyz to recover", Duration::from_secs(20), || async {
        (send(&app, get.clone(), "/readyz", None).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn stopped_listening(addr: std::net::SocketAddr) {
    wait_for("the listener to close", Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(addr).await.is_err().then_some(())
    })
    .await;
}

async fn shutdown_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = FakeUpstream::start().await;
    let config = chat_config(Storage::Sqlite(dir.path()), &upstream.base_url, "");
    let app = TestApp::spawn(&config, options()).await;
    let addr = app.addr;
    // One keep-alive connection with two requests: A, in flight (the upstream holds its answer)
    // when shutdown begins, and B, pipelined behind it, so it reaches the server after shutdown
    // began, on a connection that is still open.
    let body = chat("hold-model").to_string();
    let a = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let b = "GET /v1/models HTTP/1.1\r\nhost: x\r\n\r\n";
    let mut open = tokio::net::TcpStream::connect(addr).await.expect("connect");
    open.write_all(format!("{a}{b}").as_bytes()).await.expect("write requests");
    wait_for("the upstream to hold request A", Duration::from_secs(10), || async {
        (upstream.requests() > 0).then_some(())
    })
    .await;
    let stopping = ferrostack_testkit::spawn(app.stop());
    stopped_listening(addr).await;
    upstream.release();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), open.read_to_end(&mut raw))
        .await
        .expect("the server closes the connection")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
    let answers: Vec<&str> = text.split("http/1.1 ").filter(|s| !s.is_empty()).collect();
    // A finishes with its answer, and the connection is closed after it (no reset).
    assert!(answers.first().is_some_and(|a| a.starts_with("200")), "in-flight request: {text}");
    assert!(answers[0].contains("chat.completion"), "{}", answers[0]);
    assert!(answers[0].contains("connection: close"), "{}", answers[0]);
    // B reached the server after shutdown began: actix may drop it with the connection (the
    // client retries a request it got no answer to), or it is answered 503 in the error shape,
    // with Retry-After and Connection: close. Never a 2xx, never a 5xx other than 503.
    if let Some(b) = answers.get(1) {
        assert!(b.starts_with("503"), "request after shutdown began: {b}");
        assert!(b.contains("connection: close"), "{b}");
        assert!(b.contains("retry-after: 1"), "{b}");
        assert!(b.contains("\"code\":\"service_unavailable\""), "{b}");
    }
    assert!(answers.len() <= 2, "{text}");
    stopping.await.expect("stop task").expect("clean stop");
    upstream.stop().await;
}

/// Read one HTTP/1.1 response (head and a `content-length` body) from `conn`; lower-cased.
async fn read_response(conn: &mut tokio::net::TcpStream) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&raw).to_ascii_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if raw.len() >= end + 4 + length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(10), conn.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap_or_else(|e| panic!("reading the answer: {e} (after {:?})", String::from_utf8_lossy(&raw)));
        assert!(n > 0, "the connection closed without an answer (after {:?})", String::from_utf8_lossy(&raw));
        raw.extend_from_slice(&buf[..n]);
    }
}

/// The fault suite's case: a keep-alive connection idle when shutdown begins is not closed under
/// the client; its next request is answered 503 with `Connection: close`, then it closes. New
/// connections are refused meanwhile, and the server stops as soon as the connection closed.
async fn shutdown_idle_connection() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = FakeUpstream::start().await;
    let mut config = chat_config(Storage::Sqlite(dir.path()), &upstream.base_url, "");
    config.server.shutdown_timeout_seconds = 20;
    tune(&mut config, |s| s.drain_timeout_seconds = 1);
    let app = TestApp::spawn(&config, options()).await;
    let addr = app.addr;
    let mut idle = tokio::net::TcpStream::connect(addr).await.expect("connect");
    idle.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let first = read_response(&mut idle).await;
    assert!(first.starts_with("http/1.1 200"), "{first}");
    assert!(!first.contains("connection: close"), "{first}");
    let started = Instant::now();
    let mut stopping = ferrostack_testkit::spawn(app.stop());
    // New connections are refused while the idle one is still open (not queued until exit).
    stopped_listening(addr).await;
    let refused_after = started.elapsed();
    assert!(!stopping.is_finished(), "the server stopped with a connection still open");
    let body = chat("test-model").to_string();
    let post = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    idle.write_all(post.as_bytes()).await.expect("write on the idle connection");
    let answer = read_response(&mut idle).await;
    assert!(answer.starts_with("http/1.1 503"), "{answer}");
    assert!(answer.contains("connection: close"), "{answer}");
    assert!(answer.contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("\"code\":\"service_unavailable\""), "{answer}");
    let mut rest = Vec::new();
    let eof = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
    assert!(matches!(eof, Ok(Ok(_))) && rest.is_empty(), "the connection closes after the 503: {eof:?} {rest:?}");
    assert_eq!(upstream.requests(), 0, "a refused request never reaches the upstream");
    // With no connection left, the server stops at once, far inside its 20 s grace.
    let stopped = tokio::time::timeout(Duration::from_secs(10), &mut stopping).await;
    stopped.expect("the server stops once the connection closed").expect("stop task").expect("clean stop");
    eprintln!(
        "durability::shutdown_idle_connection: refused new connections after {} ms, stopped after {} ms",
        refused_after.as_millis(),
        started.elapsed().as_millis()
    );
    upstream.stop().await;
}

async fn shutdown_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = FakeUpstream::start().await;
    let mut config = chat_config(Storage::Sqlite(dir.path()), &upstream.base_url, "");
    config.server.shutdown_timeout_seconds = 2;
    tune(&mut config, |s| s.drain_timeout_seconds = 1);
    let app = TestApp::spawn(&config, options()).await;
    let waiting = {
        let (http, url) = (app.http.clone(), format!("{}/v1/chat/completions", app.base));
        ferrostack_testkit::spawn(async move {
            let res = http.post(url).json(&chat("hold-model")).send().await.expect("a response, not a reset");
            let retry = res.headers().get("retry-after").is_some();
            (res.status(), retry, res.json::<Value>().await.unwrap_or(Value::Null))
        })
    };
    wait_for("the upstream to hold the request", Duration::from_secs(10), || async {
        (upstream.requests() > 0).then_some(())
    })
    .await;
    let started = Instant::now();
    app.stop().await.expect("clean stop");
    let took = started.elapsed();
    let (status, retry, body) = waiting.await.expect("request task");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(retry, "Retry-After on the 503");
    assert_eq!(body["error"]["code"], "service_unavailable", "{body}");
    // The documented bound: shutdown_timeout_seconds + drain_timeout_seconds (2 + 1), with
    // room for a loaded machine; before the fix the in-flight wait ran twice.
    eprintln!("durability::shutdown_cut: stopped in {} ms (bound 3000 ms)", took.as_millis());
    assert!(took < Duration::from_secs(4), "shutdown took {took:?}, over 2 s + 1 s");
    upstream.release();
    upstream.stop().await;
}

async fn spill_and_replay(pg: Postgres) {
    let db = pg.fresh_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let spill = dir.path().join("spill.jsonl");
    let upstream = FakeUpstream::start().await;
    let mut config = chat_config(Storage::Postgres(&db), &upstream.base_url, "");
    config.server.shutdown_timeout_seconds = 1;
    tune(&mut config, |s| {
        s.durability = Durability::Async;
        s.drain_timeout_seconds = 1;
        s.spill_path = Some(spill.display().to_string());
    });
    let app = TestApp::spawn(&config, options()).await;
    set_connections(&pg, &db, false).await;
    let mut ids = Vec::new();
    for _ in 0..20 {
        let (status, _, body) =
            send(&app, reqwest::Method::POST, "/v1/chat/completions", Some(chat("test-model"))).await;
        assert_eq!(status, StatusCode::OK, "async: acknowledged once queued: {body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    // The database stays down for longer than the drain: the rows go to the spill file.
    app.stop().await.expect("clean stop");
    let spilled = std::fs::read_to_string(&spill).expect("spill file written");
    assert_eq!(spilled.lines().count(), 20, "every acknowledged row is spilled");
    for id in &ids {
        assert!(spilled.contains(id.as_str()), "{id} spilled");
    }
    set_connections(&pg, &db, true).await;
    // The next start replays them before it serves.
    let app = TestApp::spawn(&config, options()).await;
    assert!(!spill.exists(), "the spill file is consumed");
    for id in &ids {
        let (status, _, body) = send(&app, reqwest::Method::GET, &format!("/v1/chat/completions/{id}"), None).await;
        assert_eq!(status, StatusCode::OK, "{id}: {body}");
    }
    let (status, _, list) = send(&app, reqwest::Method::GET, "/v1/chat/completions?limit=100", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"].as_array().map(Vec::len), Some(20), "each row once");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

/// What the writer meets reaches the client (sync) and the probe: a completion over
/// `max_row_bytes` is 413 before the upstream; a row the database refuses for its content is
/// 400 naming the reason, and the writer goes on; a writer that cannot commit makes `/readyz`
/// answer 503 `writer_stalled`, and ready again once it can.
async fn writer_faults(pg: Postgres) {
    let db = pg.fresh_database().await;
    let upstream = FakeUpstream::start().await;
    let mut config = chat_config(Storage::Postgres(&db), &upstream.base_url, "");
    tune(&mut config, |s| {
        s.durability = Durability::Sync;
        s.max_row_bytes = 4096;
        s.stall_timeout_seconds = 1;
        s.commit_timeout_ms = 60_000;
    });
    let app = TestApp::spawn(&config, options()).await;
    let post = reqwest::Method::POST;

    let big = json!({"model": "test-model", "messages": [{"role": "user", "content": "x".repeat(5000)}]});
    let (status, _, body) = send(&app, post.clone(), "/v1/chat/completions", Some(big)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
    assert_eq!(body["error"]["param"], "messages", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("4096")), "names the limit: {body}");
    assert_eq!(upstream.requests(), 0, "refused before the upstream");

    // PostgreSQL refuses \u0000 in jsonb. In the request: 400 naming the field, before the
    // upstream.
    let nul = json!({"model": "test-model", "messages": [{"role": "user", "content": "a\u{0}b"}]});
    let (status, _, body) = send(&app, post.clone(), "/v1/chat/completions", Some(nul)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "invalid_request", "{body}");
    assert_eq!(body["error"]["param"], "messages[0].content", "{body}");
    assert_eq!(upstream.requests(), 0, "refused before the upstream");
    // In a JSON answer: 502 naming the provider's answer; never a 2xx without its row.
    let (status, _, body) = send(&app, post.clone(), "/v1/chat/completions", Some(chat("nul-model"))).await;
    assert_eq!(status, StatusCode::BAD_GATEWAY, "{body}");
    assert_eq!(body["error"]["code"], "upstream_invalid_response", "{body}");
    // In a streamed answer (already sent as it came): stored, with U+FFFD in the NUL's place.
    let mut streamed = chat("nul-model");
    streamed["stream"] = json!(true);
    let res = app.http.post(format!("{}/v1/chat/completions", app.base)).json(&streamed).send().await.expect("stream");
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.expect("stream body");
    let id = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find_map(|d| serde_json::from_str::<Value>(d).ok()?["id"].as_str().map(str::to_owned))
        .expect("a chunk with an id");
    let (status, _, stored) = send(&app, reqwest::Method::GET, &format!("/v1/chat/completions/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "the streamed answer is stored: {stored}");
    assert_eq!(stored["choices"][0]["message"]["content"], "a\u{FFFD}b", "{stored}");
    let (status, _, body) = send(&app, post.clone(), "/v1/chat/completions", Some(chat("test-model"))).await;
    assert_eq!(status, StatusCode::OK, "the writer goes on: {body}");

    // A writer that cannot commit: readyz says so, then recovers.
    let locker = db.client().await;
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.expect("lock");
    let blocked = {
        let (http, url) = (app.http.clone(), format!("{}/v1/chat/completions", app.base));
        ferrostack_testkit::spawn(
            async move { http.post(url).json(&chat("test-model")).send().await.map(|r| r.status()) },
        )
    };
    let body = wait_for("readyz to report the stalled writer", Duration::from_secs(20), || async {
        let (status, _, body) = send(&app, reqwest::Method::GET, "/readyz", None).await;
        (status == StatusCode::SERVICE_UNAVAILABLE).then_some(body)
    })
    .await;
    assert_eq!(body, json!({"status": "not_ready", "reasons": ["writer_stalled"]}));
    let (_, _, details) = send(&app, reqwest::Method::GET, "/v1/readiness", None).await;
    assert_eq!(details["writers"]["inference_store"]["status"], "stalled", "{details}");
    assert_eq!(details["writers"]["inference_store"]["queue_depth"], 1, "{details}");
    // The stuck row's bytes are held against the byte bound until it is written.
    let held = details["writers"]["inference_store"]["queue_bytes"].as_u64().unwrap_or_default();
    assert!(held > 0, "{details}");
    assert_eq!(details["writers"]["inference_store"]["queue_max_bytes"], 268_435_456, "{details}");
    locker.batch_execute("COMMIT").await.expect("unlock");
    assert_eq!(blocked.await.expect("task").expect("answer"), StatusCode::OK);
    wait_for("readyz to recover", Duration::from_secs(20), || async {
        (send(&app, reqwest::Method::GET, "/readyz", None).await.0 == StatusCode::OK).then_some(())
    })
    .await;
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}
