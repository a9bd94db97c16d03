//! Hostile input, as a client that means harm would send it: NUL characters and lone surrogates
//! in every string a client may send, deep nesting, huge numbers, wrong types, bodies at and just
//! over the limit, slow bodies, oversized heads, many connections. Every case asserts the status
//! and the one error shape, that the server keeps serving, and that every 2xx has its row. Raw
//! TCP where an HTTP client would normalise (or refuse to send) what is tested.

use std::net::SocketAddr;
use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::{Storage, TestApp, raw_request, test_server_settings, wait_for};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub fn tests() -> Vec<Test> {
    let mut tests = Vec::new();
    tests.extend(on_both!("hostile", "nul_in_every_parameter_and_field_is_a_400_naming_it", nul_everywhere));
    tests.extend(on_both!("hostile", "malformed_json_is_a_400_in_the_error_shape", malformed_json));
    tests.extend(on_both!("hostile", "bodies_at_and_over_the_limit", body_limits));
    tests.push(Test::plain("hostile::oversized_heads_and_duplicate_authorization", oversized_heads));
    tests.push(Test::plain("hostile::what_the_http_parser_refuses_is_answered_in_the_error_shape", parser_refusals));
    tests.push(Test::plain("hostile::headers_too_slow_get_408_in_the_error_shape", slow_headers));
    tests.push(Test::plain("hostile::a_slow_body_gets_408_and_its_connection_closed", slow_body));
    tests.push(Test::plain("hostile::a_full_body_budget_answers_503_with_retry_after", body_budget));
    tests.push(Test::plain("hostile::connections_beyond_the_cap_wait_for_a_free_one", connection_cap));
    tests.push(Test::plain("hostile::many_concurrent_connections_are_all_served", many_connections));
    tests
}

/// A server on `storage` with the conversations and inference stores, and `limits` (YAML lines
/// under `server.limits:`).
async fn start(storage: Storage<'_>, limits: &str) -> TestApp {
    let limits = if limits.is_empty() { String::new() } else { format!("server:\n  limits:\n{limits}") };
    let yaml = format!("version: 2\n{}{limits}", storage.yaml());
    let mut config = ferrostack_tests::config_from_yaml(&yaml, &[]);
    test_server_settings(&mut config);
    TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await
}

async fn start_sqlite(limits: &str) -> (TestApp, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = start(Storage::Sqlite(dir.path()), limits).await;
    (app, dir)
}

/// The error shape, with `code` and `param`.
#[track_caller]
fn assert_error(body: &Value, code: &str, param: Option<&str>, case: &str) {
    let err = &body["error"];
    assert!(err["message"].as_str().is_some_and(|m| !m.is_empty()), "{case}: no message in {body}");
    assert!(err["type"].is_string(), "{case}: no type in {body}");
    assert_eq!(err["code"], json!(code), "{case}: {body}");
    assert_eq!(err["param"], json!(param), "{case}: {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(1), "{case}: only `error` at the top: {body}");
}

/// The server still answers, and still reads its database.
async fn still_serving(app: &TestApp) {
    assert_eq!(app.get("/v1/health").await.0, 200, "liveness after hostile input");
    let (status, page) = app.get("/v1/chat/completions").await;
    assert_eq!(status, 200, "a database read after hostile input: {page}");
}

async fn nul_everywhere(storage: Storage<'_>) {
    let app = start(storage, "").await;
    let (status, conv) =
        app.send(reqwest::Method::POST, "/v1/conversations", Some(r#"{"metadata": {"k": "v"}}"#)).await;
    assert_eq!(status, 200, "{conv}");
    let id = conv["id"].as_str().expect("conversation id").to_owned();
    let nul = r"\u0000";
    let cases: Vec<(&str, String, Option<String>, &str)> = vec![
        // query parameters
        ("GET", "/v1/chat/completions?after=a%00b".into(), None, "after"),
        ("GET", "/v1/chat/completions?model=m%00".into(), None, "model"),
        ("GET", "/v1/chat/completions?metadata[k]=v%00".into(), None, "metadata[k]"),
        ("GET", "/v1/chat/completions?metadata[k%00]=v".into(), None, "query"),
        ("GET", format!("/v1/conversations/{id}/items?after=%00"), None, "after"),
        ("GET", "/v1/chat/completions/x/messages?after=%00".into(), None, "after"),
        // bodies
        ("POST", "/v1/conversations".into(), Some(format!(r#"{{"metadata": {{"k": "a{nul}"}}}}"#)), "metadata.k"),
        ("POST", "/v1/conversations".into(), Some(format!(r#"{{"metadata": {{"k{nul}": "a"}}}}"#)), "metadata"),
        (
            "POST",
            "/v1/conversations".into(),
            Some(format!(r#"{{"items": [{{"role": "user", "content": "x{nul}"}}]}}"#)),
            "items[0].content",
        ),
        ("POST", format!("/v1/conversations/{id}"), Some(format!(r#"{{"metadata": {{"k": "{nul}"}}}}"#)), "metadata.k"),
        (
            "POST",
            format!("/v1/conversations/{id}/items"),
            Some(format!(
                r#"{{"items": [{{"role": "user", "content": [{{"type": "input_text", "text": "{nul}"}}]}}]}}"#
            )),
            "items[0].content[0].text",
        ),
        (
            "POST",
            "/v1/chat/completions/chatcmpl-1".into(),
            Some(format!(r#"{{"metadata": {{"k": "{nul}"}}}}"#)),
            "metadata.k",
        ),
        (
            "POST",
            "/v1/models".into(),
            Some(format!(r#"{{"model_id": "m", "provider_id": "p", "metadata": {{"x": "{nul}"}}}}"#)),
            "metadata.x",
        ),
        // path ids
        ("GET", format!("/v1/conversations/{id}/items/it%00"), None, "item_id"),
        ("DELETE", format!("/v1/conversations/{id}/items/it%00"), None, "item_id"),
        ("GET", "/v1/chat/completions/chatcmpl%00".into(), None, "completion_id"),
        ("GET", "/v1/chat/completions/chatcmpl%00/messages".into(), None, "completion_id"),
        ("DELETE", "/v1/chat/completions/chatcmpl%00".into(), None, "completion_id"),
        ("GET", "/v1/models/m%2500x".into(), None, "none"),
    ];
    for (method, path, body, param) in &cases {
        let (status, got) = raw_request(app.addr, method, path, &[], body.as_deref()).await;
        let case = format!("{method} {path} {}", body.as_deref().unwrap_or_default());
        if *param == "none" {
            // `%2500` is a literal `%00`, no NUL: an ordinary unknown model.
            assert_eq!(status, 404, "{case}: {got}");
            continue;
        }
        assert_eq!(status, 400, "{case}: {got}");
        // A NUL in the path itself is refused before routing (no parameter to name yet).
        let param = if got["error"]["param"].is_null() { None } else { Some(*param) };
        assert_error(&got, "invalid_request", param, &case);
    }
    // The conversation's metadata is unchanged, and it has no items.
    let (status, got) = app.get(&format!("/v1/conversations/{id}")).await;
    assert_eq!((status, got["metadata"].clone()), (200, json!({"k": "v"})));
    let (status, items) = app.get(&format!("/v1/conversations/{id}/items")).await;
    assert_eq!((status, items["data"].clone()), (200, json!([])), "{items}");
    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}

async fn malformed_json(storage: Storage<'_>) {
    let app = start(storage, "").await;
    let (_, conv) = app.send(reqwest::Method::POST, "/v1/conversations", Some("{}")).await;
    let id = conv["id"].as_str().expect("conversation id").to_owned();
    let deep = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let surrogate = r#""\ud800""#;
    let cases: Vec<(String, String, &str, Option<&str>)> = vec![
        // lone surrogates
        ("/v1/conversations".into(), format!(r#"{{"metadata": {{"k": {surrogate}}}}}"#), "invalid_request", None),
        (
            format!("/v1/conversations/{id}/items"),
            format!(r#"{{"items": [{{"role": "user", "content": {surrogate}}}]}}"#),
            "invalid_request",
            None,
        ),
        ("/v1/chat/completions/c".into(), format!(r#"{{"metadata": {{"k": {surrogate}}}}}"#), "invalid_request", None),
        // deep nesting beyond the parser's limit
        ("/v1/conversations".into(), format!(r#"{{"items": {}}}"#, deep(5000)), "invalid_request", None),
        // huge numbers
        ("/v1/conversations".into(), r#"{"metadata": {"k": 1e400}}"#.into(), "invalid_request", None),
        (
            "/v1/conversations".into(),
            r#"{"metadata": {"k": 123456789012345678901234567890}}"#.into(),
            "invalid_request",
            Some("metadata"),
        ),
        // wrong types
        ("/v1/conversations".into(), r#"{"metadata": []}"#.into(), "invalid_request", Some("metadata")),
        ("/v1/conversations".into(), r#"{"metadata": "x"}"#.into(), "invalid_request", Some("metadata")),
        ("/v1/conversations".into(), r#"{"metadata": {"k": 1}}"#.into(), "invalid_request", Some("metadata")),
        ("/v1/conversations".into(), r#"{"items": "x"}"#.into(), "invalid_request", Some("items")),
        ("/v1/conversations".into(), r#"{"items": [7]}"#.into(), "invalid_request", Some("items[0]")),
        ("/v1/conversations".into(), r#"[]"#.into(), "invalid_request", None),
        (format!("/v1/conversations/{id}"), r#"[{"k": "v"}]"#.into(), "invalid_request", None),
        (format!("/v1/conversations/{id}/items"), r#"[[]]"#.into(), "invalid_request", None),
        ("/v1/chat/completions/c".into(), r#"[null]"#.into(), "invalid_request", None),
        ("/v1/conversations".into(), r#"{"nope": 1}"#.into(), "invalid_request", None),
        ("/v1/conversations".into(), r#"{"#.into(), "invalid_request", None),
        (format!("/v1/conversations/{id}"), r#"{"metadata": 5}"#.into(), "invalid_request", Some("metadata")),
        (format!("/v1/conversations/{id}/items"), r#"{"items": {}}"#.into(), "invalid_request", Some("items")),
        ("/v1/chat/completions/c".into(), r#"{"metadata": {"k": []}}"#.into(), "invalid_request", Some("metadata")),
        (
            "/v1/chat/completions/c".into(),
            format!(r#"{{"metadata": {{"{}": "v"}}}}"#, "k".repeat(65)),
            "invalid_request",
            Some("metadata"),
        ),
        (
            "/v1/chat/completions/c".into(),
            format!(r#"{{"metadata": {{"k": "{}"}}}}"#, "v".repeat(513)),
            "invalid_request",
            Some("metadata"),
        ),
        (
            "/v1/chat/completions/c".into(),
            serde_json::to_string(
                &json!({"metadata": (0..17).map(|i| (format!("k{i}"), json!("v"))).collect::<serde_json::Map<_, _>>()}),
            )
            .expect("json"),
            "invalid_request",
            Some("metadata"),
        ),
        ("/v1/models".into(), r#"{"model_id": 5}"#.into(), "invalid_request", Some("model_id")),
    ];
    for (path, body, code, param) in &cases {
        let (status, got) = raw_request(app.addr, "POST", path, &[], Some(body)).await;
        let shown: String = body.chars().take(80).collect();
        let case = format!("POST {path} {shown}");
        assert_eq!(status, 400, "{case}: {got}");
        assert_error(&got, code, *param, &case);
    }
    // Nesting within the parser's limit is stored and read back as sent.
    let nested =
        format!(r#"{{"items": [{{"type": "function_call_output", "call_id": "c", "output": [{}]}}]}}"#, deep(100));
    let (status, added) =
        raw_request(app.addr, "POST", &format!("/v1/conversations/{id}/items"), &[], Some(&nested)).await;
    assert_eq!(status, 200, "{added}");
    let item_id = added["data"][0]["id"].as_str().expect("item id");
    let (status, item) = app.get(&format!("/v1/conversations/{id}/items/{item_id}")).await;
    assert_eq!(status, 200, "{item}");
    let sent: Value = serde_json::from_str(&nested).expect("json");
    assert_eq!(item["output"], sent["items"][0]["output"], "the nested item is stored as sent");
    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}

/// With a 64 KiB limit: a body of exactly 64 KiB is read (and its row stored), one byte more is
/// 413 whether it declares its length or comes chunked.
async fn body_limits(storage: Storage<'_>) {
    const LIMIT: usize = 65_536;
    let app = start(storage, &format!("    max_body_bytes: {LIMIT}\n")).await;
    let body_of = |len: usize| {
        let frame = r#"{"items": [{"role": "user", "content": ""}]}"#;
        let pad = len - frame.len();
        format!(r#"{{"items": [{{"role": "user", "content": "{}"}}]}}"#, "x".repeat(pad))
    };
    let at = body_of(LIMIT);
    assert_eq!(at.len(), LIMIT);
    let (status, conv) = raw_request(app.addr, "POST", "/v1/conversations", &[], Some(&at)).await;
    assert_eq!(status, 200, "a body at the limit: {conv}");
    let id = conv["id"].as_str().expect("id");
    let (status, items) = app.get(&format!("/v1/conversations/{id}/items")).await;
    assert_eq!((status, items["data"].as_array().map(Vec::len)), (200, Some(1)), "the 2xx has its row");

    let over = body_of(LIMIT + 1);
    let (status, got) = raw_request(app.addr, "POST", "/v1/conversations", &[], Some(&over)).await;
    assert_eq!(status, 413, "{got}");
    assert_error(&got, "payload_too_large", None, "declared length over the limit");

    let (status, got) = chunked(app.addr, "/v1/conversations", over.as_bytes()).await;
    assert_eq!(status, 413, "{got}");
    assert_error(&got, "payload_too_large", None, "chunked body over the limit");
    let (status, got) = chunked(app.addr, "/v1/conversations", at.as_bytes()).await;
    assert_eq!(status, 200, "a chunked body at the limit: {got}");
    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}

/// POST `body` with chunked transfer encoding, in 4 KiB chunks.
async fn chunked(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, Value) {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.chunks(4096) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer (413) and close before the whole body is written.
    let _ = stream.write_all(&req).await;
    read_response(&mut stream).await
}

/// Read one answer to the end of the connection: status and JSON body (Null when none).
async fn read_response(stream: &mut TcpStream) -> (u16, Value) {
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    let text = String::from_utf8_lossy(&response);
    let status = text.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

async fn oversized_heads() {
    let (app, _dir) = start_sqlite("").await;
    let long = format!("/v1/chat/completions?after={}", "a".repeat(20_000));
    let (status, got) = raw_request(app.addr, "GET", &long, &[], None).await;
    assert_eq!(status, 414, "{got}");
    assert_error(&got, "uri_too_long", None, "20 KB URI");

    let big = "b".repeat(40_000);
    let (status, got) = raw_request(app.addr, "GET", "/v1/chat/completions", &[("x-big", &big)], None).await;
    assert_eq!(status, 431, "{got}");
    assert_error(&got, "headers_too_large", None, "40 KB header");

    let (status, got) = raw_request(
        app.addr,
        "GET",
        "/v1/chat/completions",
        &[("authorization", "Bearer a"), ("authorization", "Bearer b")],
        None,
    )
    .await;
    assert_eq!(status, 400, "{got}");
    assert_error(&got, "invalid_request", None, "two Authorization headers");

    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}

/// Write `request` as it is on a new connection, then read to the end of the connection: exactly
/// one answer, in the error shape (`content-type: application/json`, a `content-length` that is
/// the body's), and the connection closed after it; its status, `connection` header and body.
async fn refused(addr: SocketAddr, request: &[u8], case: &str) -> (u16, Option<String>, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.unwrap_or_else(|e| panic!("{case}: the request is read to its end: {e}"));
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .unwrap_or_else(|_| panic!("{case}: the server closes the connection after its answer"))
        .unwrap_or_else(|e| panic!("{case}: the answer arrives, not a reset: {e}"));
    let text = String::from_utf8_lossy(&raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or_else(|| panic!("{case}: no answer head in {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines.next().and_then(|l| l.split(' ').nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let header = |name: &str| headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    assert_eq!(header("content-type"), Some("application/json"), "{case}: {head}");
    let connection = header("connection").map(str::to_owned);
    let length: usize = header("content-length").and_then(|v| v.parse().ok()).expect("content-length");
    assert_eq!(rest.len(), length, "{case}: one answer, then the connection closes: {text:?}");
    (status, connection, serde_json::from_str(rest).unwrap_or_else(|e| panic!("{case}: a JSON body: {e}: {rest}")))
}

/// What actix's HTTP/1 parser refuses before any of ferrostack's code runs is answered in the
/// error shape, with the status ferrostack itself would give, and the server goes on serving.
async fn parser_refusals() {
    let (app, _dir) = start_sqlite("").await;
    let addr = app.addr;
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "100 KB URI (over the URI parser's 64 KiB)",
            format!("GET /v1/chat/completions?after={} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(100_000)).into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            "200 KB URI (a request line over the 128 KiB head buffer)",
            format!("GET /v1/chat/completions?after={} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(200_000)).into_bytes(),
            414,
            "uri_too_long",
        ),
        (
            "200 headers",
            format!(
                "GET /v1/health HTTP/1.1\r\nhost: x\r\n{}\r\n",
                (0..200).map(|i| format!("x-h{i}: v\r\n")).collect::<String>()
            )
            .into_bytes(),
            431,
            "headers_too_large",
        ),
        (
            "200 KB header (a head over the 128 KiB head buffer)",
            format!("GET /v1/health HTTP/1.1\r\nhost: x\r\nx-huge: {}\r\n\r\n", "c".repeat(200_000)).into_bytes(),
            431,
            "headers_too_large",
        ),
        ("garbage request line", b"GARBAGE\r\n\r\n".to_vec(), 400, "invalid_request"),
        ("request line without a version", b"GET /v1/health\r\nhost: x\r\n\r\n".to_vec(), 400, "invalid_request"),
        ("header without a colon", b"GET /v1/health HTTP/1.1\r\nhost: x\r\nno colon here\r\n\r\n".to_vec(), 400, "invalid_request"),
        (
            "two content-length headers",
            b"POST /v1/conversations HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\ncontent-length: 3\r\n\r\n{}".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "chunked body with a chunk size that is not hexadecimal",
            b"POST /v1/conversations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
        (
            "chunked body broken after a good chunk",
            b"POST /v1/conversations HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n1\r\n{\r\nQQ\r\n}\r\n0\r\n\r\n".to_vec(),
            400,
            "invalid_request",
        ),
    ];
    for (case, request, status, code) in cases {
        let (got, connection, body) = refused(addr, &request, case).await;
        assert_eq!(got, status, "{case}: {body}");
        // The handler answers a chunked body it cannot read; the connection is closed after it
        // all the same (checked by `refused`).
        if !case.starts_with("chunked") {
            assert_eq!(connection.as_deref(), Some("close"), "{case}");
        }
        assert_error(&body, code, None, case);
        if code == "invalid_request" {
            let message = body["error"]["message"].as_str().unwrap_or_default();
            assert!(
                message.contains("HTTP") || message.contains("body"),
                "{case}: the message names the problem: {message}"
            );
            if case.starts_with("chunked") {
                assert!(message.contains("chunked encoding is broken"), "{case}: names the framing: {message}");
            }
        }
        still_serving(&app).await;
    }
    // The same on a connection that has already been served (keep-alive): the refusal of its
    // second request is in the shape too.
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n\r\n").await.expect("write");
    let mut first = vec![0u8; 4096];
    let n = stream.read(&mut first).await.expect("read the first answer");
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"), "first request served");
    let long = format!("GET /v1/health?x={} HTTP/1.1\r\nhost: x\r\n\r\n", "a".repeat(100_000));
    stream.write_all(long.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "second request on the connection: {text}");
    assert!(text.contains("\"code\":\"uri_too_long\""), "{text}");
    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}

/// Headers not complete within `header_timeout_seconds`: 408 in the error shape, the connection
/// closed.
async fn slow_headers() {
    let (app, _dir) = start_sqlite("    header_timeout_seconds: 1\n").await;
    let (status, connection, body) =
        refused(app.addr, b"GET /v1/health HTTP/1.1\r\nhost: x\r\n", "headers cut short").await;
    assert_eq!(connection.as_deref(), Some("close"));
    assert_eq!(status, 408, "{body}");
    assert_error(&body, "request_timeout", None, "headers cut short");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("header_timeout_seconds"), "{message}");
    // Nothing at all sent: the same.
    let (status, _, body) = refused(app.addr, b"", "nothing sent").await;
    assert_eq!(status, 408, "{body}");
    assert_error(&body, "request_timeout", None, "nothing sent");
    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}

/// Headers, then 10 bytes of a 100-byte body, then nothing: 408 in the error shape after the body
/// read timeout, and the connection is closed (the server does not wait for the rest).
async fn slow_body() {
    let (app, _dir) = start_sqlite("    body_read_timeout_seconds: 1\n").await;
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /v1/conversations HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"metadata",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    // read_to_end returns only once the server closes the connection.
    let (status, got) = tokio::time::timeout(Duration::from_secs(20), read_response(&mut stream))
        .await
        .expect("the server closes a slow body's connection");
    assert_eq!(status, 408, "{got}");
    assert_error(&got, "request_timeout", None, "slow body");
    // The same with a chunked body that stops after its first chunk: actix would otherwise keep
    // the connection to drain the rest.
    let mut stream = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /v1/conversations HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{{\"ite\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let (status, got) = tokio::time::timeout(Duration::from_secs(20), read_response(&mut stream))
        .await
        .expect("the server closes a slow chunked body's connection");
    assert_eq!(status, 408, "{got}");
    assert_error(&got, "request_timeout", None, "slow chunked body");
    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}

/// A budget of one 64 KiB body: while one request holds it (its body still arriving), another
/// request with a body waits, then gets 503 `server_busy` with `Retry-After`; bodiless requests
/// are served meanwhile; once the first is done, bodies are read again.
async fn body_budget() {
    let limits = "    max_body_bytes: 65536\n    max_inflight_body_bytes: 65536\n    budget_wait_ms: 200\n";
    let (app, _dir) = start_sqlite(limits).await;
    let mut holder = TcpStream::connect(app.addr).await.expect("connect");
    let head = format!(
        "POST /v1/conversations HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\ncontent-length: 65536\r\n\r\n",
        app.addr
    );
    holder.write_all(head.as_bytes()).await.expect("write");
    let addr = app.addr;
    let body = r#"{"metadata": {"k": "v"}}"#;
    let busy = wait_for("the budget to be taken", Duration::from_secs(10), || async move {
        let (status, got) = raw_request(addr, "POST", "/v1/conversations", &[], Some(body)).await;
        (status == 503).then_some(got)
    })
    .await;
    assert_error(&busy, "server_busy", None, "budget full");
    let raw = raw_text(app.addr, "POST", "/v1/conversations", Some(body)).await;
    assert!(raw.to_ascii_lowercase().contains("\r\nretry-after: 1\r\n"), "503 carries Retry-After: {raw}");
    assert_eq!(app.get("/v1/health").await.0, 200, "bodiless requests are served meanwhile");
    drop(holder);
    let (status, conv) = wait_for("the budget to be free again", Duration::from_secs(10), || async move {
        let (status, got) = raw_request(addr, "POST", "/v1/conversations", &[], Some(body)).await;
        (status == 200).then_some((status, got))
    })
    .await;
    assert_eq!(status, 200);
    let id = conv["id"].as_str().expect("id");
    assert_eq!(app.get(&format!("/v1/conversations/{id}")).await.0, 200, "the 2xx has its row");
    app.stop().await.expect("clean stop");
}

/// The whole answer to one request, as text.
async fn raw_text(addr: SocketAddr, method: &str, path: &str, body: Option<&str>) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    if let Some(b) = body {
        req.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or_default());
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `max_connections: 2` over two workers (one each): with two idle connections open, a third
/// connection is not served until one of them closes; then it is.
async fn connection_cap() {
    let (app, _dir) = start_sqlite("    max_connections: 2\n    header_timeout_seconds: 30\n").await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(app.addr).await.expect("connect");
        // Start a request so the connection is accepted and held by a worker.
        s.write_all(b"GET /v1/health HTTP/1.1\r\nhost: x\r\n").await.expect("write");
        idle.push(s);
    }
    let addr = app.addr;
    let third = ferrostack_testkit::spawn(async move { raw_request(addr, "GET", "/v1/health", &[], None).await });
    // Held: no answer while both slots are taken.
    let mut third = third;
    let early = tokio::time::timeout(Duration::from_millis(500), &mut third).await;
    assert!(early.is_err(), "a connection beyond the cap was served: {early:?}");
    drop(idle);
    let (status, _) =
        tokio::time::timeout(Duration::from_secs(10), third).await.expect("served once a slot is free").expect("task");
    assert_eq!(status, 200);
    app.stop().await.expect("clean stop");
}

/// 300 connections at once, each one request: every one is answered, and the server serves after.
async fn many_connections() {
    let (app, _dir) = start_sqlite("").await;
    let addr = app.addr;
    let tasks: Vec<_> = (0..300)
        .map(|_| ferrostack_testkit::spawn(async move { raw_request(addr, "GET", "/v1/health", &[], None).await.0 }))
        .collect();
    for t in tasks {
        assert_eq!(t.await.expect("task"), 200);
    }
    still_serving(&app).await;
    app.stop().await.expect("clean stop");
}
