//! A fake OpenAI-compatible upstream, served by the test on a loopback port. What it does depends
//! on the `model` it is sent (the provider model id), so one fake serves every scenario:
//!
//! - `echo`: a completion whose text is `hello world`; streamed as `hel`, `lo `, `world`.
//! - `tools`: a streamed answer made of tool-call fragments.
//! - `bad-request`: 400 with an OpenAI error body naming `max_tokens`.
//! - `garbage`: 200 with a body that is not JSON.
//! - `no-created`: 200 with a completion that has no `created` (relayable JSON, not storable).
//! - `hold`: streams one chunk, then holds the stream open until [`FakeUpstream::release`];
//!   not streamed, answers only after the release.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};

/// The running fake.
#[derive(Debug, Clone)]
pub struct FakeUpstream {
    /// Base URL for a provider config (`http://127.0.0.1:<port>/v1`).
    pub base_url: String,
    shared: Arc<Shared>,
    handle: ServerHandle,
}

#[derive(Debug, Default)]
struct Shared {
    requests: AtomicUsize,
    gate: Notify,
    traceparents: Mutex<Vec<Option<String>>>,
}

impl FakeUpstream {
    /// Start it on 127.0.0.1, port 0.
    pub async fn start() -> FakeUpstream {
        let shared = Arc::new(Shared::default());
        let data = web::Data::from(Arc::clone(&shared));
        let server = HttpServer::new(move || {
            App::new().app_data(data.clone()).route("/v1/chat/completions", web::post().to(chat))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind the fake upstream");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        ferrostack_testkit::spawn(server);
        FakeUpstream { base_url: format!("http://{addr}/v1"), shared, handle }
    }

    /// Requests received so far.
    pub fn requests(&self) -> usize {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// The `traceparent` header of each request received, in order.
    pub async fn traceparents(&self) -> Vec<Option<String>> {
        self.shared.traceparents.lock().await.clone()
    }

    /// Let every held (`hold`) stream finish.
    pub fn release(&self) {
        self.shared.gate.notify_waiters();
    }

    /// Stop serving.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn completion(id: &str, model: &str, text: &str) -> Value {
    json!({
        "id": id, "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                     "message": {"role": "assistant", "content": text, "tool_calls": []}}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    })
}

fn chunk(id: &str, model: &str, delta: Value, finish: Option<&str>) -> Bytes {
    let c = json!({"id": id, "object": "chat.completion.chunk", "created": 1_700_000_000, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]});
    Bytes::from(format!("data: {c}\n\n"))
}

async fn chat(shared: web::Data<Shared>, req: HttpRequest, body: web::Json<Value>) -> HttpResponse {
    shared.requests.fetch_add(1, Ordering::SeqCst);
    let traceparent = req.headers().get("traceparent").and_then(|v| v.to_str().ok()).map(str::to_owned);
    shared.traceparents.lock().await.push(traceparent);
    let model = body["model"].as_str().unwrap_or_default().to_owned();
    let stream = body["stream"].as_bool().unwrap_or(false);
    let id = format!("chatcmpl-{}", uuid::Uuid::new_v4().simple());
    match model.as_str() {
        "bad-request" => HttpResponse::BadRequest().json(json!({"error": {
            "message": "max_tokens is too large", "type": "invalid_request_error", "param": "max_tokens", "code": null}})),
        "garbage" => HttpResponse::Ok().content_type("application/json").body("this is not json"),
        "no-created" if !stream => {
            let mut answer = completion(&id, &model, "hello world");
            answer.as_object_mut().map(|a| a.remove("created"));
            HttpResponse::Ok().json(answer)
        }
        "hold" if !stream => {
            shared.gate.notified().await;
            HttpResponse::Ok().json(completion(&id, &model, "late"))
        }
        _ if !stream => HttpResponse::Ok().json(completion(&id, &model, "hello world")),
        "tools" => {
            let frames = vec![
                chunk(&id, &model, json!({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}), None),
                chunk(&id, &model, json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\":"}}]}), None),
                chunk(&id, &model, json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), None),
                chunk(&id, &model, json!({}), Some("tool_calls")),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ];
            sse(futures_util::stream::iter(frames.into_iter().map(Ok::<_, actix_web::Error>)))
        }
        "hold" => {
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
            let shared = shared.into_inner();
            let first = chunk(&id, &model, json!({"role": "assistant", "content": "partial "}), None);
            let rest = vec![
                chunk(&id, &model, json!({"content": "answer"}), None),
                chunk(&id, &model, json!({}), Some("stop")),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ];
            ferrostack_testkit::spawn(async move {
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
            let mut rx = rx;
            sse(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx).map(|f| f.map(Ok::<_, actix_web::Error>))))
        }
        _ => {
            let frames = vec![
                chunk(&id, &model, json!({"role": "assistant", "content": "hel"}), None),
                chunk(&id, &model, json!({"content": "lo "}), None),
                chunk(&id, &model, json!({"content": "world"}), None),
                chunk(&id, &model, json!({}), Some("stop")),
                Bytes::from_static(b"data: [DONE]\n\n"),
            ];
            sse(futures_util::stream::iter(frames.into_iter().map(Ok::<_, actix_web::Error>)))
        }
    }
}

fn sse<S>(stream: S) -> HttpResponse
where
    S: futures_util::Stream<Item = Result<Bytes, actix_web::Error>> + 'static,
{
    HttpResponse::Ok().content_type("text/event-stream").streaming(stream)
}
