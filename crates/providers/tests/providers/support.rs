//! A fake OpenAI-compatible upstream on a loopback port. The first path segment picks the
//! behaviour (`http://addr/<scenario>/v1/chat/completions`); every request is recorded.

use std::sync::{Arc, Mutex};

use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use ferrostack_config::{InferenceProviderConfig, InferenceProviderKind};
use ferrostack_providers::{ChunkStream, ProviderError, StreamEvent, UpstreamClient};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// What the fake saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub authorization: Option<String>,
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
    pub request_id: Option<String>,
    pub accept: Option<String>,
    pub body: Value,
}

#[derive(Default)]
pub struct Fake {
    pub seen: Mutex<Vec<Seen>>,
    /// The `gated` scenario sends its first chunk, then waits for this before the rest.
    pub gate: Notify,
}

pub struct Upstream {
    pub fake: Arc<Fake>,
    pub base: String,
}

impl Upstream {
    /// The base URL of `scenario` (what a provider's `url` would be).
    pub fn url(&self, scenario: &str) -> String {
        format!("{}/{scenario}/v1", self.base)
    }

    /// A client of `scenario`, with `key` as API key.
    pub fn client(&self, scenario: &str, key: Option<&str>) -> UpstreamClient {
        let config =
            InferenceProviderConfig::new(InferenceProviderKind::Vllm, self.url(scenario), key.map(str::to_owned));
        UpstreamClient::new("fake", &config).unwrap()
    }

    /// A client of `scenario` whose read timeout is `ms`.
    pub fn client_with_timeout(&self, scenario: &str, ms: u64) -> UpstreamClient {
        let mut config = InferenceProviderConfig::new(InferenceProviderKind::Vllm, self.url(scenario), None);
        config.timeout_ms = ms;
        UpstreamClient::new("fake", &config).unwrap()
    }

    pub fn last_seen(&self) -> Seen {
        self.fake.seen.lock().unwrap().last().cloned().expect("the fake saw a request")
    }
}

/// Start the fake upstream.
pub async fn upstream() -> Upstream {
    let fake = Arc::new(Fake::default());
    let data = web::Data::from(fake.clone());
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).route("/{scenario}/v1/chat/completions", web::post().to(completions))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    ferrostack_testkit::spawn(server.run());
    Upstream { fake, base: format!("http://{addr}") }
}

/// The HTTP status the http crate's code table gives `e` (pinned there too, with the exact
/// body): the provider's own 4xx passed on, 404 unknown model, 502 unreachable / invalid /
/// broken / provider 5xx, 504 timeout, 500 start-up errors.
pub fn status(e: &ProviderError) -> u16 {
    match e {
        ProviderError::ModelNotFound { .. } => 404,
        ProviderError::Unreachable { .. } | ProviderError::InvalidResponse { .. } | ProviderError::Broken { .. } => 502,
        ProviderError::Timeout { .. } => 504,
        ProviderError::Upstream { status, .. } if (400..500).contains(status) => *status,
        ProviderError::Upstream { .. } => 502,
        ProviderError::Config { .. } | ProviderError::Client { .. } => 500,
    }
}

/// A loopback URL where nothing listens.
pub fn nothing_listens() -> String {
    format!("http://{}/v1", ferrostack_testkit::unused_loopback_addr())
}

/// Collect a stream: the events, and the error it ended with, if any.
pub async fn collect(mut stream: ChunkStream) -> (Vec<StreamEvent>, Option<ferrostack_providers::ProviderError>) {
    let mut events = Vec::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(e) => events.push(e),
            Err(e) => {
                assert!(stream.next().await.is_none(), "nothing follows an error");
                return (events, Some(e));
            }
        }
    }
    (events, None)
}

/// The chunks of collected events (without `Done`).
pub fn chunks(events: &[StreamEvent]) -> Vec<Value> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Chunk(v) => Some(v.clone()),
            StreamEvent::Done => None,
        })
        .collect()
}

pub fn chunk(id: &str, delta: Value, finish: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": "upstream-model",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

/// An SSE text of `chunks` and `[DONE]`, with a comment, CRLF line ends and a multi-byte text.
pub fn sse_text(chunks: &[Value]) -> String {
    let mut s = String::from(": keep-alive\r\n\r\n");
    for c in chunks {
        s.push_str(&format!("data: {c}\r\n\r\n"));
    }
    s.push_str("data: [DONE]\n\n");
    s
}

/// The standard streamed answer: "Héllo wörld 🌍" in four chunks.
pub fn hello_chunks() -> Vec<Value> {
    vec![
        chunk("chatcmpl-1", json!({"role": "assistant", "content": ""}), Value::Null),
        chunk("chatcmpl-1", json!({"content": "Héllo "}), Value::Null),
        chunk("chatcmpl-1", json!({"content": "wörld 🌍"}), Value::Null),
        chunk("chatcmpl-1", json!({}), json!("stop")),
    ]
}

/// Split `text` into pieces at awkward places: inside `data:`, inside JSON, inside a multi-byte
/// character, between CR and LF; some pieces hold several events.
pub fn awkward_pieces(text: &str) -> Vec<Bytes> {
    let bytes = text.as_bytes();
    let mut cuts = vec![1, 3, 15, 16, 17, 20];
    if let Some(i) = text.find('é') {
        cuts.push(i + 1); // between the two bytes of é
    }
    if let Some(i) = text.find('🌍') {
        cuts.push(i + 2);
    }
    for (i, w) in bytes.windows(2).enumerate() {
        if w == b"\r\n" {
            cuts.push(i + 1); // between CR and LF
            break;
        }
    }
    cuts.push(bytes.len() - 30);
    cuts.sort_unstable();
    cuts.dedup();
    let mut pieces = Vec::new();
    let mut start = 0;
    for c in cuts {
        if c > start && c < bytes.len() {
            pieces.push(Bytes::copy_from_slice(&bytes[start..c]));
            start = c;
        }
    }
    pieces.push(Bytes::copy_from_slice(&bytes[start..]));
    pieces
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

fn openai_error(status: u16, message: &str, kind: &str) -> HttpResponse {
    HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap())
        .json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}}))
}

fn sse(pieces: Vec<Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(futures_util::stream::iter(pieces.into_iter().map(Ok::<_, actix_web::Error>)))
}

async fn completions(req: HttpRequest, path: web::Path<String>, body: Bytes, fake: web::Data<Fake>) -> HttpResponse {
    let scenario = path.into_inner();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    fake.seen.lock().unwrap().push(Seen {
        path: req.path().to_owned(),
        authorization: header(&req, "authorization"),
        traceparent: header(&req, "traceparent"),
        tracestate: header(&req, "tracestate"),
        request_id: header(&req, "x-request-id"),
        accept: header(&req, "accept"),
        body: body.clone(),
    });
    match scenario.as_str() {
        "json" => HttpResponse::Ok().json(json!({
            "id": "chatcmpl-json", "object": "chat.completion", "created": 1_700_000_001,
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                         "message": {"role": "assistant", "content": "hi there", "tool_calls": []}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        })),
        "sse" => sse(awkward_pieces(&sse_text(&hello_chunks()))),
        "tools" => {
            let call = |delta: Value| chunk("chatcmpl-t", json!({"tool_calls": [delta]}), Value::Null);
            let chunks = vec![
                chunk("chatcmpl-t", json!({"role": "assistant", "content": null}), Value::Null),
                call(json!({"index": 0, "id": "call_a", "type": "function", "function": {"name": "get_", "arguments": ""}})),
                call(json!({"index": 0, "function": {"name": "weather", "arguments": "{\"city\":"}})),
                call(json!({"index": 1, "function": {"name": "orphan", "arguments": "{}"}})),
                call(json!({"index": 0, "id": "", "function": {"arguments": "\"Paris\"}"}})),
                chunk("chatcmpl-t", json!({}), json!("tool_calls")),
            ];
            // Several events per write: everything in two pieces.
            let text = sse_text(&chunks);
            let mid = text.len() / 2;
            sse(vec![Bytes::copy_from_slice(&text.as_bytes()[..mid]), Bytes::copy_from_slice(&text.as_bytes()[mid..])])
        }
        "logprobs" => {
            let lp = |token: &str| json!({"content": [{"token": token, "logprob": -0.5, "bytes": null, "top_logprobs": []}]});
            let mut a = chunk("chatcmpl-l", json!({"content": "a"}), Value::Null);
            a["choices"][0]["logprobs"] = lp("a");
            let mut b = chunk("chatcmpl-l", json!({"content": "b"}), json!("length"));
            b["choices"][0]["logprobs"] = lp("b");
            let mut usage = chunk("chatcmpl-l", json!({}), Value::Null);
            usage["choices"] = json!([]);
            usage["usage"] = json!({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3});
            sse(vec![Bytes::from(sse_text(&[a, b, usage]))])
        }
        "gated" => {
            let first = Bytes::from(format!("data: {}\n\n", hello_chunks()[1]));
            let fake = fake.into_inner();
            let rest = async move {
                fake.gate.notified().await;
                Ok::<_, actix_web::Error>(Bytes::from(format!("data: {}\n\ndata: [DONE]\n\n", hello_chunks()[3])))
            };
            let stream = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) })
                .chain(futures_util::stream::once(rest));
            HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
        }
        "break" => {
            let first = Bytes::from(format!("data: {}\n\ndata: {{\"id\":\"chatcmpl-1\",\"cho", hello_chunks()[1]));
            // The break comes after the client got the first bytes (the test opens the gate).
            let fake = fake.into_inner();
            let die = async move {
                fake.gate.notified().await;
                Err::<Bytes, _>(actix_web::error::ErrorInternalServerError("the upstream dies"))
            };
            let stream = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) })
                .chain(futures_util::stream::once(die));
            HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
        }
        "stall" => {
            let first = Bytes::from(format!("data: {}\n\n", hello_chunks()[1]));
            let stream = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) })
                .chain(futures_util::stream::pending());
            HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
        }
        "error-event" => {
            let text = format!(
                "data: {}\n\ndata: {}\n\ndata: {}\n\n",
                hello_chunks()[1],
                json!({"error": {"message": "the engine ran out of memory", "type": "InternalServerError", "code": 500}}),
                hello_chunks()[2],
            );
            sse(vec![Bytes::from(text)])
        }
        "bad-sse" => sse(vec![Bytes::from(format!("data: {}\n\ndata: {{not json\n\n", hello_chunks()[1]))]),
        "garbage" => HttpResponse::Ok().content_type("application/json").body("<html>surprise</html>"),
        "no-choices" => HttpResponse::Ok().json(json!({"id": "x", "object": "chat.completion"})),
        "text-500" => HttpResponse::InternalServerError().body("engine crashed"),
        "vllm-400" => HttpResponse::BadRequest().json(json!({
            "object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "param": null, "code": 400,
        })),
        "status-400" => openai_error(400, "'messages' must not be empty", "invalid_request_error"),
        "status-401" => openai_error(401, "Incorrect API key provided", "invalid_request_error"),
        "status-429" => openai_error(429, "Rate limit reached", "rate_limit_exceeded"),
        "status-500" => openai_error(500, "The server had an error", "server_error"),
        "hang" => {
            std::future::pending::<()>().await;
            HttpResponse::Ok().finish()
        }
        other => HttpResponse::NotFound().body(format!("no scenario {other}")),
    }
}
