//! `POST /v1/chat/completions`: validate, forward to the model's provider, answer (JSON, or SSE
//! relayed chunk by chunk), and store the completion for its owner unless `store: false`.
//!
//! All upstream I/O and storing runs in a task on the server's main runtime, tracked by
//! `AppState::tasks`: a client that disconnects mid-stream does not cancel storing what was
//! assembled, and shutdown waits for these tasks before it drains the write queue.

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use ferrostack_providers::{
    ForwardHeaders, ModelRoute, StreamAssembler, StreamEvent, normalize_completion, rewrite_chunk_model,
    validate_chat_request,
};
use futures_util::StreamExt;
use serde_json::Map;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use super::store::{StoreRequest, store_completion};
use crate::telemetry::UpstreamCall;
use crate::{ApiError, AppState, Caller};

/// SSE frames buffered between the upstream reader and the client; small, so a slow client slows
/// the upstream read instead of growing memory.
const RELAY_BUFFER: usize = 16;

/// Prefix of the completion ids ferrostack generates (followed by 32 random hex digits, 128 bits).
pub(crate) const COMPLETION_ID_PREFIX: &str = "chatcmpl-";

/// A fresh completion id. The upstream's id is never the key: an upstream that repeats ids would
/// let one tenant's completions collide with (and reveal, or block) another's.
fn new_completion_id() -> String {
    ferrostack_catalog::random_id(COMPLETION_ID_PREFIX, 32)
}

pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    let info =
        validate_chat_request(&body).map_err(|e| ApiError::invalid_request(e.message.clone(), Some(&e.param)))?;
    let route = state.resolve_model(&info.model, &caller).await?;
    // The upstream call's span is a child of the request span; its context goes upstream.
    let call = UpstreamCall::start(&state.telemetry, &route, &info.model, info.stream);
    let headers = call.forward_headers(&state.telemetry, &req);
    let store = match (&state.completions, info.store) {
        // Size check and a reserved place in the write queue, before the upstream is called.
        (Some(store), true) => Some(StoreRequest::prepare(store, &body, caller.0).await?),
        _ => None,
    };
    let proxied = Proxied { route, body, headers, model: info.model, store, call };
    if info.stream {
        stream(&state, proxied).await
    } else {
        let span = proxied.call.span();
        let task = state.tasks.spawn_on(json(proxied).instrument(span), &state.runtime);
        let completion = task.await.map_err(|e| ApiError::internal(&e))??;
        Ok(HttpResponse::Ok().json(completion))
    }
}

/// One proxied call's inputs, captured from the request and moved into the task that makes it.
#[derive(Debug)]
struct Proxied {
    /// The model's provider.
    route: ModelRoute,
    /// The request body, forwarded as the client sent it.
    body: Value,
    /// Trace context and request id for the upstream.
    headers: ForwardHeaders,
    /// The model id the client asked for (the answer's `model` is rewritten to it).
    model: String,
    /// Where and for whom to store the answer; `None` with `store: false` or the store off.
    store: Option<StoreRequest>,
    /// The upstream call's span and metrics.
    call: UpstreamCall,
}

async fn json(proxied: Proxied) -> Result<Value, ApiError> {
    let Proxied { route, body, headers, model, store, call } = proxied;
    let mut completion = match route.chat_completion(body, &headers).await {
        Ok(completion) => {
            call.finish(None);
            completion
        }
        Err(e) => {
            let err = ApiError::from(e);
            call.finish(Some(err.code().as_str()));
            return Err(err);
        }
    };
    normalize_completion(&mut completion, &model);
    let id = new_completion_id();
    let upstream_id = set_id(&mut completion, id.clone());
    record_ids(&id, upstream_id.as_deref());
    if let Some(mut store) = store {
        store.upstream_id = upstream_id;
        // The answer is only sent once the completion is queued (or committed, with
        // `durability: sync`), so every 2xx answer is a stored row.
        store_completion(store, &completion).await?;
    }
    Ok(completion)
}

async fn stream(state: &AppState, proxied: Proxied) -> Result<HttpResponse, ApiError> {
    let (opened_tx, opened_rx) = oneshot::channel();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Bytes>(RELAY_BUFFER);
    let span = proxied.call.span();
    state.tasks.spawn_on(relay(proxied, opened_tx, frames_tx).instrument(span), &state.runtime);
    // Failures before the first chunk (unknown upstream, refused, 4xx) get their own status.
    opened_rx.await.map_err(|e| ApiError::internal(&e))??;
    let body = futures_util::stream::poll_fn(move |cx| frames_rx.poll_recv(cx).map(|f| f.map(Ok::<_, ApiError>)));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

/// Read the upstream stream, relay each chunk as an SSE frame, assemble the completion, and store
/// it when the stream ends, also when the client went away. A failure mid-stream ends the stream
/// with an SSE error event.
async fn relay(proxied: Proxied, opened: oneshot::Sender<Result<(), ApiError>>, frames: mpsc::Sender<Bytes>) {
    let Proxied { route, body, headers, model, store, mut call } = proxied;
    let mut upstream = match route.chat_completion_stream(body, &headers).await {
        Ok(s) => s,
        Err(e) => {
            let err = ApiError::from(e);
            call.finish(Some(err.code().as_str()));
            let _ = opened.send(Err(err));
            return;
        }
    };
    if opened.send(Ok(())).is_err() {
        return; // the client left before the stream opened; nothing was generated for it
    }
    let id = new_completion_id();
    let mut upstream_id = None;
    let mut assembler = StreamAssembler::new(&model);
    let mut client_here = true;
    // True unless the client left or the upstream failed; an upstream that closes without
    // `[DONE]` still ends the stream normally.
    let mut finished = true;
    let mut failure = None;
    while let Some(event) = upstream.next().await {
        match event {
            Ok(StreamEvent::Chunk(mut chunk)) => {
                call.first_chunk();
                // Every chunk carries ferrostack's id (the client sees one id for the stream, as
                // from OpenAI); the upstream's first id is kept for tracing.
                let theirs = set_id(&mut chunk, id.clone());
                if upstream_id.is_none() {
                    upstream_id = theirs;
                }
                assembler.push(&chunk);
                rewrite_chunk_model(&mut chunk, &model);
                if frames.send(sse_frame(&chunk)).await.is_err() {
                    // The client disconnected: stop reading (the provider stops generating when
                    // its connection drops) and store what was assembled so far.
                    client_here = false;
                    finished = false;
                    break;
                }
            }
            Ok(StreamEvent::Done) => break,
            Err(e) => {
                let err = ApiError::from(e);
                failure = Some(err.code().as_str());
                let _ = frames.send(sse_frame(&err.to_sse_event())).await;
                finished = false; // the stream is over for the client; no [DONE] after an error
                break;
            }
        }
    }
    drop(upstream);
    call.finish(failure);
    record_ids(&id, upstream_id.as_deref());
    if let (Some(mut store), Some(completion)) = (store, assembler.finish())
        && let Err(e) = {
            store.upstream_id = upstream_id;
            store_completion(store, &completion).await
        }
    {
        tracing::error!(error = %e, "a streamed completion could not be stored");
    }
    if client_here && finished {
        let _ = frames.send(Bytes::from_static(b"data: [DONE]\n\n")).await;
    }
}

/// Record both ids on the upstream call's span (the current one in these tasks): ours is what the
/// client and the store know, the upstream's is what the engine's logs know.
fn record_ids(id: &str, upstream_id: Option<&str>) {
    let span = tracing::Span::current();
    span.record("ferrostack.completion_id", id);
    if let Some(theirs) = upstream_id {
        span.record("gen_ai.response.id", theirs);
    }
}

/// Set `object.id` to `id`; the id that was there (a non-empty string), if any.
fn set_id(object: &mut Value, id: String) -> Option<String> {
    let map: &mut Map<String, Value> = object.as_object_mut()?;
    match map.insert("id".to_owned(), Value::String(id)) {
        Some(Value::String(theirs)) if !theirs.is_empty() => Some(theirs),
        _ => None,
    }
}

fn sse_frame(value: &Value) -> Bytes {
    let mut frame = Vec::with_capacity(256);
    frame.extend_from_slice(b"data: ");
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut frame, value);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}
