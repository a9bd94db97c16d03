//! The fake OpenAI-compatible upstream of every test suite (provider client tests and the
//! end-to-end tests), on a loopback port. It records every request and answers by scenario:
//!
//! - `POST /{scenario}/v1/chat/completions`: the path names the scenario (a provider whose `url`
//!   is [`FakeUpstream::url`]);
//! - `POST /v1/chat/completions`: the request's `model` names it (a provider whose `url` is
//!   [`FakeUpstream::base_url`], one model per scenario).
//!
//! - `GET /v1/models`: the models it serves ([`FakeUpstream::set_models`]; `echo` and `json` at
//!   start), in OpenAI's list shape, or 503 when set to `None` (a provider that is down).
//!
//! Scenarios, each answered as JSON or, with `"stream": true` where it makes sense, as SSE:
//!
//! | scenario | answer |
//! |---|---|
//! | `echo` (and any unknown model; an unknown path is 404) | `hello world`; streamed as `hel`, `lo `, `world` |
//! | `repeat-id` | as `echo`, always with the id [`REPEATED_ID`] |
//! | `json` / `sse` | `hi there` / `Héllo wörld 🌍` in four chunks cut at awkward places |
//! | `tools` | tool-call fragments to assemble, with an orphan fragment, several events per write |
//! | `tool-call` | one tool call (`call_1`, `get_weather`, `{"city":"Paris"}`): streamed in fragments, or as JSON |
//! | `logprobs` | chunks with logprobs and a usage-only chunk |
//! | `hold` | streams `partial `, then waits for [`FakeUpstream::release`]; JSON waits first |
//! | `gated` / `break` | one chunk, then (after [`FakeUpstream::release_one`]) the rest / a broken connection |
//! | `stall` / `hang` | one chunk then nothing / no answer at all |
//! | `trickle` | JSON: the headers, then a space every 20 ms, never the answer; streamed: one chunk (`partial `), then a keep-alive comment every 20 ms. Each counts in [`FakeUpstream::closed`] once ferrostack closes its connection |
//! | `nul` | `a`, the NUL character, `b` (JSON, or streamed in two chunks) |
//! | `cut` | streamed: a role chunk and `partial `, then the stream ends: no finish chunk, no `[DONE]` |
//! | `error-event` | a chunk, an error event, then a chunk that must be ignored |
//! | `bad-sse` / `garbage` / `no-choices` / `no-created` | malformed SSE / not JSON / no `choices` / no `created` |
//! | `bad-request`, `vllm-400`, `status-400/401/429/500`, `text-500` | error answers |

use std::hash::BuildHasher as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::web::{self, Bytes};
use actix_web::{App, HttpRequest, HttpResponse, HttpServer};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::Notify;

/// What the fake saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    /// The request path.
    pub path: String,
    /// `Authorization`.
    pub authorization: Option<String>,
    /// `traceparent`.
    pub traceparent: Option<String>,
    /// `tracestate`.
    pub tracestate: Option<String>,
    /// `x-request-id`.
    pub request_id: Option<String>,
    /// `Accept`.
    pub accept: Option<String>,
    /// The JSON body (`null` when not JSON).
    pub body: Value,
}

#[derive(Debug, Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    gate: Notify,
    /// Completion ids: a random prefix per fake, then a counter, so ids never repeat.
    ids: AtomicU64,
    /// What `GET /v1/models` lists; `None`: 503.
    models: Mutex<Option<Vec<String>>>,
    /// `GET /v1/models` requests answered.
    model_lists: AtomicU64,
    /// `trickle` answers whose connection the client closed.
    closed: AtomicU64,
}

/// The running fake.
#[derive(Debug, Clone)]
pub struct FakeUpstream {
    /// Base URL of the model-selects-the-scenario route (`http://127.0.0.1:<port>/v1`).
    pub base_url: String,
    root: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
    /// The fault suite's scenarios (`/fault/v1`).
    faults: web::Data<FaultState>,
}

impl FakeUpstream {
    /// Start it on 127.0.0.1, port 0, on the current runtime (it stops with [`FakeUpstream::stop`]
    /// or with the runtime).
    pub async fn start() -> FakeUpstream {
        Self::start_at(std::net::SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Start it on `addr` (a provider configured for an address where nothing listened yet,
    /// coming up later).
    pub async fn start_at(addr: std::net::SocketAddr) -> FakeUpstream {
        let shared = Arc::new(Shared {
            ids: AtomicU64::new(std::hash::RandomState::new().hash_one(0_u8) & !0xffff_ffff),
            models: Mutex::new(Some(vec!["echo".to_owned(), "json".to_owned()])),
            ..Shared::default()
        });
        let data = web::Data::from(Arc::clone(&shared));
        let faults = web::Data::new(FaultState::default());
        let fault_data = faults.clone();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(fault_data.clone())
                .route("/fault/v1/chat/completions", web::post().to(fault_by_model))
                .route("/v1/chat/completions", web::post().to(by_model))
                .route("/v1/models", web::get().to(list_models))
                .route("/{scenario}/v1/chat/completions", web::post().to(by_path))
        })
        .workers(1)
        .disable_signals()
        .bind(addr)
        .unwrap_or_else(|e| panic!("bind the fake upstream on {addr}: {e}"));
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        crate::spawn(server);
        FakeUpstream { base_url: format!("http://{addr}/v1"), root: format!("http://{addr}"), shared, handle, faults }
    }

    /// The base URL of `scenario` (what a provider's `url` would be).
    pub fn url(&self, scenario: &str) -> String {
        format!("{}/{scenario}/v1", self.root)
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.seen().len()
    }

    /// Every request received so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        self.shared.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The last request received.
    pub fn last_seen(&self) -> Option<Seen> {
        self.seen().pop()
    }

    /// The `traceparent` header of each request received, in order.
    pub async fn traceparents(&self) -> Vec<Option<String>> {
        self.seen().into_iter().map(|s| s.traceparent).collect()
    }

    /// What `GET /v1/models` answers from now on: these ids, or 503 with `None`.
    pub fn set_models(&self, models: Option<&[&str]>) {
        if let Ok(mut m) = self.shared.models.lock() {
            *m = models.map(|ids| ids.iter().map(|s| (*s).to_owned()).collect());
        }
    }

    /// `GET /v1/models` requests answered so far.
    pub fn model_list_requests(&self) -> u64 {
        self.shared.model_lists.load(Ordering::SeqCst)
    }

    /// `trickle` answers (JSON or streamed) whose client (ferrostack) closed the connection: the
    /// upstream side of a cancelled call.
    pub fn closed(&self) -> u64 {
        self.shared.closed.load(Ordering::SeqCst)
    }

    /// Let every `hold` answer waiting now finish.
    pub fn release(&self) {
        self.shared.gate.notify_waiters();
    }

    /// Let one `gated` / `break` answer go on (now, or the next one to wait).
    pub fn release_one(&self) {
        self.shared.gate.notify_one();
    }

    /// Stop serving.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn header(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned)
}

async fn list_models(shared: web::Data<Shared>) -> HttpResponse {
    let models = shared.models.lock().map(|m| m.clone()).unwrap_or_default();
    shared.model_lists.fetch_add(1, Ordering::SeqCst);
    match models {
        Some(ids) => {
            let data: Vec<Value> = ids
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": 1_234_567_890, "owned_by": "fake"}))
                .collect();
            HttpResponse::Ok().json(json!({"object": "list", "data": data}))
        }
        None => openai_error(503, "the engine is loading", "server_error"),
    }
}

async fn by_model(req: HttpRequest, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let scenario = body["model"].as_str().unwrap_or_default().to_owned();
    answer(&req, scenario, body, shared.into_inner(), true).await
}

async fn by_path(req: HttpRequest, path: web::Path<String>, body: Bytes, shared: web::Data<Shared>) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    answer(&req, path.into_inner(), body, shared.into_inner(), false).await
}

/// A streamed chunk of the `sse`, `tools`, ... scenarios.
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

/// The `sse` scenario's answer: "Héllo wörld 🌍" in four chunks.
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
    if let Some(i) = bytes.windows(2).position(|w| w == b"\r\n") {
        cuts.push(i + 1); // between CR and LF
    }
    cuts.push(bytes.len().saturating_sub(30));
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

fn openai_error(status: u16, message: &str, kind: &str) -> HttpResponse {
    HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .json(json!({"error": {"message": message, "type": kind, "param": null, "code": null}}))
}

fn sse(pieces: Vec<Bytes>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .streaming(futures_util::stream::iter(pieces.into_iter().map(Ok::<_, actix_web::Error>)))
}

fn completion(id: &str, model: &str, text: &str) -> Value {
    json!({
        "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                     "message": {"role": "assistant", "content": text, "tool_calls": []}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
}

/// A chunk of the model-selected scenarios, as an SSE frame.
fn frame(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    Bytes::from(format!("data: {c}\n\n"))
}

/// One chunk, then what `rest` yields once the gate opens.
fn first_then<F>(first: Bytes, rest: F) -> HttpResponse
where
    F: Future<Output = Result<Bytes, actix_web::Error>> + 'static,
{
    let stream = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) })
        .chain(futures_util::stream::once(rest));
    HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
}

/// `echo_unknown`: an unknown scenario is `echo` (a model name), else 404 (a path).
async fn answer(
    req: &HttpRequest,
    scenario: String,
    body: Value,
    shared: Arc<Shared>,
    echo_unknown: bool,
) -> HttpResponse {
    if let Ok(mut seen) = shared.seen.lock() {
        seen.push(Seen {
            path: req.path().to_owned(),
            authorization: header(req, "authorization"),
            traceparent: header(req, "traceparent"),
            tracestate: header(req, "tracestate"),
            request_id: header(req, "x-request-id"),
            accept: header(req, "accept"),
            body: body.clone(),
        });
    }
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    // `repeat-id` answers as `echo` does, always with the same id, as engines that draw ids from a
    // small range do: ferrostack must not key anything on it.
    let id = if scenario == "repeat-id" {
        REPEATED_ID.to_owned()
    } else {
        format!("chatcmpl-fake{:016x}", shared.ids.fetch_add(1, Ordering::Relaxed))
    };
    let known = SCENARIOS.contains(&scenario.as_str());
    let scenario = if known || !echo_unknown { scenario } else { "echo".to_owned() };
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
        "tool-call" if !stream => {
            let mut answer = completion(&id, &model, "");
            answer["choices"][0]["finish_reason"] = json!("tool_calls");
            answer["choices"][0]["message"] = json!({"role": "assistant", "content": null, "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]});
            HttpResponse::Ok().json(answer)
        }
        "tool-call" => sse(vec![
            frame(&id, &model, json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}), None),
            frame(&id, &model, json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), None),
            frame(&id, &model, json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), None),
            frame(&id, &model, json!({}), Some("tool_calls")),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ]),
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
        "hold" if !stream => {
            shared.gate.notified().await;
            HttpResponse::Ok().json(completion(&id, &model, "late"))
        }
        "hold" => {
            let (tx, mut rx) = tokio::sync::mpsc::channel::<Bytes>(8);
            let first = frame(&id, &model, json!({"role": "assistant", "content": "partial "}), None);
            let rest = vec![
                frame(&id, &model, json!({"content": "answer"}), None),
                frame(&id, &model, json!({}), Some("stop")),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ];
            // The feeder ends with its stream (its sends fail once the client is gone).
            crate::spawn(async move {
                // Registered before the first chunk leaves, so a release right after it is seen.
                let released = shared.gate.notified();
                tokio::pin!(released);
                released.as_mut().enable();
                if tx.send(first).await.is_err() {
                    return;
                }
                released.await;
                for frame in rest {
                    if tx.send(frame).await.is_err() {
                        return;
                    }
                }
            });
            let body = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok::<_, actix_web::Error>)));
            HttpResponse::Ok().content_type("text/event-stream").streaming(body)
        }
        "gated" => {
            let first = Bytes::from(format!("data: {}\n\n", hello_chunks()[1]));
            first_then(first, async move {
                shared.gate.notified().await;
                Ok(Bytes::from(format!("data: {}\n\ndata: [DONE]\n\n", hello_chunks()[3])))
            })
        }
        "break" => {
            let first = Bytes::from(format!("data: {}\n\ndata: {{\"id\":\"chatcmpl-1\",\"cho", hello_chunks()[1]));
            // The break comes after the client got the first bytes (the test opens the gate).
            first_then(first, async move {
                shared.gate.notified().await;
                Err(actix_web::error::ErrorInternalServerError("the upstream dies"))
            })
        }
        "trickle" => {
            // The body never ends; it is dropped when a write fails: the peer closed the
            // connection.
            struct Closed(Arc<Shared>);
            impl Drop for Closed {
                fn drop(&mut self) {
                    self.0.closed.fetch_add(1, Ordering::SeqCst);
                }
            }
            let guard = Closed(Arc::clone(&shared));
            let first = if stream {
                frame(&id, &model, json!({"role": "assistant", "content": "partial "}), None)
            } else {
                Bytes::from_static(b" ")
            };
            let tick: &'static [u8] = if stream { b": keep-alive\n\n" } else { b" " };
            let ticks = futures_util::stream::unfold(guard, move |guard| async move {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                Some((Ok::<_, actix_web::Error>(Bytes::from_static(tick)), guard))
            });
            let body = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) }).chain(ticks);
            let kind = if stream { "text/event-stream" } else { "application/json" };
            HttpResponse::Ok().content_type(kind).streaming(body)
        }
        "nul" if !stream => HttpResponse::Ok().json(completion(&id, &model, "a\u{0}b")),
        "nul" => sse(vec![
            frame(&id, &model, json!({"role": "assistant", "content": "a\u{0}"}), None),
            frame(&id, &model, json!({"content": "b"}), Some("stop")),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ]),
        "cut" => sse(vec![
            frame(&id, &model, json!({"role": "assistant", "content": ""}), None),
            frame(&id, &model, json!({"content": "partial "}), None),
        ]),
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
        "garbage" => HttpResponse::Ok().content_type("application/json").body("<html>this is not json</html>"),
        "no-choices" => HttpResponse::Ok().json(json!({"id": "x", "object": "chat.completion"})),
        "no-created" => {
            let mut answer = completion(&id, &model, "hello world");
            answer.as_object_mut().map(|a| a.remove("created"));
            HttpResponse::Ok().json(answer)
        }
        "text-500" => HttpResponse::InternalServerError().body("engine crashed"),
        "vllm-400" => HttpResponse::BadRequest().json(json!({
            "object": "error", "message": "max_tokens is too large", "type": "BadRequestError", "param": null, "code": 400,
        })),
        "bad-request" => HttpResponse::BadRequest().json(json!({"error": {
            "message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens", "code": null}})),
        "status-400" => openai_error(400, "'messages' must not be empty", "invalid_request_error"),
        "status-401" => openai_error(401, "Incorrect API key provided", "invalid_request_error"),
        "status-429" => openai_error(429, "Rate limit reached", "rate_limit_exceeded"),
        "status-500" => openai_error(500, "The server had an error", "server_error"),
        "hang" => {
            std::future::pending::<()>().await;
            HttpResponse::Ok().finish()
        }
        "echo" | "repeat-id" if !stream => HttpResponse::Ok().json(completion(&id, &model, "hello world")),
        "echo" | "repeat-id" => sse(vec![
            frame(&id, &model, json!({"role": "assistant", "content": "hel"}), None),
            frame(&id, &model, json!({"content": "lo "}), None),
            frame(&id, &model, json!({"content": "world"}), None),
            frame(&id, &model, json!({}), Some("stop")),
            Bytes::from_static(b"data: [DONE]\n\n"),
        ]),
        other => HttpResponse::NotFound().body(format!("no scenario {other}")),
    }
}

/// The id every answer of the `repeat-id` scenario carries.
pub const REPEATED_ID: &str = "chatcmpl-repeated";

/// Every scenario `answer` serves.
const SCENARIOS: &[&str] = &[
    "echo",
    "repeat-id",
    "json",
    "sse",
    "tools",
    "tool-call",
    "logprobs",
    "hold",
    "gated",
    "break",
    "stall",
    "trickle",
    "cut",
    "nul",
    "error-event",
    "bad-sse",
    "garbage",
    "no-choices",
    "no-created",
    "text-500",
    "vllm-400",
    "bad-request",
    "status-400",
    "status-401",
    "status-429",
    "status-500",
    "hang",
];

// ---- The fault suite's scenarios (crates/server/tests/faults) --------------------------------
//
// `POST /fault/v1/chat/completions` ([`FakeUpstream::fault_url`]): the request's `model` names the
// scenario, as on `/v1`; models other than these are answered as on `/v1` (`echo`, ...).
//
// | scenario | answer |
// |---|---|
// | `fault-slow` | as `echo`, after [`FakeUpstream::set_fault_delay`] (150 ms at start) |
// | `fault-trickle` | streams `partial`, then an SSE comment every 50 ms, never ending (a generation that hangs with its connection open); JSON: as `fault-hang` |
// | `fault-hang` | a 200 whose JSON body never comes (a space every 50 ms, never a value) |
//
// `fault-trickle` and `fault-hang` calls are counted while open, and counted again as dropped when
// the caller closes the connection (or the fake is stopped): how a test sees that ferrostack
// cancelled an upstream call. (actix drops a pending answer only when a write to a closed
// connection fails, hence the ticks.)

/// The scenarios of the fault suite.
pub const FAULT_SCENARIOS: &[&str] = &["fault-slow", "fault-trickle", "fault-hang"];

/// Counters and settings of the `fault-*` scenarios.
#[derive(Debug)]
struct FaultState {
    /// Delay of `fault-slow`, in milliseconds.
    delay_ms: AtomicU64,
    /// `fault-trickle` / `fault-hang` calls received.
    started: AtomicU64,
    /// Of those, the ones whose connection was closed by the caller (or by stopping the fake).
    dropped: AtomicU64,
}

impl Default for FaultState {
    fn default() -> Self {
        Self { delay_ms: AtomicU64::new(150), started: AtomicU64::new(0), dropped: AtomicU64::new(0) }
    }
}

/// Counts a tracked call as dropped when the answer (future or body stream) holding it is dropped.
struct Tracked(web::Data<FaultState>);

impl Tracked {
    fn new(faults: &web::Data<FaultState>) -> Tracked {
        faults.started.fetch_add(1, Ordering::SeqCst);
        Tracked(faults.clone())
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.dropped.fetch_add(1, Ordering::SeqCst);
    }
}

impl FakeUpstream {
    /// The base URL of the fault suite's route (`http://127.0.0.1:<port>/fault/v1`).
    pub fn fault_url(&self) -> String {
        format!("{}/fault/v1", self.root)
    }

    /// How long `fault-slow` waits before answering, from now on.
    pub fn set_fault_delay(&self, delay: std::time::Duration) {
        let ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.faults.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// `fault-trickle` and `fault-hang` calls received so far.
    pub fn fault_calls_started(&self) -> u64 {
        self.faults.started.load(Ordering::SeqCst)
    }

    /// Of those, the ones that ended because the caller closed the connection (or the fake stopped).
    pub fn fault_calls_dropped(&self) -> u64 {
        self.faults.dropped.load(Ordering::SeqCst)
    }

    /// Tracked calls still open (started and not dropped).
    pub fn fault_calls_open(&self) -> u64 {
        self.fault_calls_started().saturating_sub(self.fault_calls_dropped())
    }
}

async fn fault_by_model(
    req: HttpRequest,
    body: Bytes,
    shared: web::Data<Shared>,
    faults: web::Data<FaultState>,
) -> HttpResponse {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    if !FAULT_SCENARIOS.contains(&model.as_str()) {
        return answer(&req, model, body, shared.into_inner(), true).await;
    }
    if let Ok(mut seen) = shared.seen.lock() {
        seen.push(Seen {
            path: req.path().to_owned(),
            authorization: header(&req, "authorization"),
            traceparent: header(&req, "traceparent"),
            tracestate: header(&req, "tracestate"),
            request_id: header(&req, "x-request-id"),
            accept: header(&req, "accept"),
            body: body.clone(),
        });
    }
    let id = format!("chatcmpl-fake{:016x}", shared.ids.fetch_add(1, Ordering::Relaxed));
    let stream = body["stream"].as_bool().unwrap_or(false);
    match model.as_str() {
        "fault-slow" => {
            let delay = faults.delay_ms.load(Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(delay)).await;
            if stream {
                sse(vec![
                    frame(&id, &model, json!({"role": "assistant", "content": "hel"}), None),
                    frame(&id, &model, json!({"content": "lo "}), None),
                    frame(&id, &model, json!({"content": "world"}), None),
                    frame(&id, &model, json!({}), Some("stop")),
                    Bytes::from_static(b"data: [DONE]\n\n"),
                ])
            } else {
                HttpResponse::Ok().json(completion(&id, &model, "hello world"))
            }
        }
        "fault-trickle" if stream => {
            let guard = Tracked::new(&faults);
            let first = frame(&id, &model, json!({"role": "assistant", "content": "partial"}), None);
            // The guard lives in the body stream: dropped when actix drops the body, which it does
            // when a write fails (the caller is gone) or the server stops.
            let ticks = futures_util::stream::unfold(guard, |guard| async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Some((Ok::<_, actix_web::Error>(Bytes::from_static(b": still thinking\n\n")), guard))
            });
            let body = futures_util::stream::once(async move { Ok::<_, actix_web::Error>(first) }).chain(ticks);
            HttpResponse::Ok().content_type("text/event-stream").streaming(body)
        }
        _ => {
            // `fault-hang`, and `fault-trickle` without `stream`: the head, then a JSON body that
            // never comes (a space every 50 ms, which JSON allows before a value).
            let guard = Tracked::new(&faults);
            let body = futures_util::stream::unfold(guard, |guard| async move {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                Some((Ok::<_, actix_web::Error>(Bytes::from_static(b" ")), guard))
            });
            HttpResponse::Ok().content_type("application/json").streaming(body)
        }
    }
}
