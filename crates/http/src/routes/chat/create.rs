//! `POST /v1/chat/completions`: validate, forward to the model's provider, answer (JSON, or SSE
//! relayed chunk by chunk), and store the completion for its owner unless `store: false`.
//!
//! The hot path works on bytes: the request is checked from a borrowed view of its text and
//! forwarded with only `model` (and `stream`) rewritten; the upstream's answer and every SSE
//! chunk are relayed as the upstream sent them, with the server-owned `id` and the requested
//! `model` spliced in (`ferrostack_providers::relay_completion` / `ChunkRelay`).
//!
//! The upstream call runs on the actix worker that got the request, not on another runtime:
//! a client that disconnects drops it, which closes the upstream connection (the engine stops
//! generating; the server does not treat half-closed connections as open, see
//! `crates/server/src/app.rs`). Only storing is handed to a task tracked by `AppState::tasks` on
//! the main runtime, so that what was produced is stored even when the client has left (a
//! stream cut short is stored with what it relayed, `finish_reason: null` where the upstream
//! gave none), and shutdown waits for it before it drains the write queue.

use std::future::Future;

use actix_web::mime;
use actix_web::{HttpMessage as _, HttpRequest, HttpResponse, web};
use bytes::{Bytes, BytesMut};
use ferrostack_catalog::json::{contains_nul, replace_nul};
use ferrostack_providers::{
    ChunkRelay, ModelRoute, RawEvent, RawEventStream, StreamAssembler, parse_chat_request, relay_completion,
};
use futures_util::{FutureExt as _, StreamExt};
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use super::store::{Answer, StoreRequest, store_completion};
use crate::telemetry::UpstreamCall;
use crate::{ApiError, AppState, Caller};

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
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let bytes = read_json_body(&req, payload, state.limits.config().max_body_bytes).await?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: not UTF-8: {e}"), None))?;
    let body = parse_chat_request(text).map_err(|e| ApiError::invalid_request(e.message.clone(), Some(&e.param)))?;
    let info = &body.info;
    let route = state.resolve_model(&info.model, &caller).await?;
    // The upstream call's span is a child of the request span; its context goes upstream.
    let call = UpstreamCall::start(&state.telemetry, &route, &info.model, info.stream);
    let headers = call.forward_headers(&state.telemetry, &req);
    // Where the answer will be stored, prepared before anything goes upstream.
    let store = match (&state.completions, info.store) {
        // Size check and a reserved place in the write queue, before the upstream is called.
        (Some(store), true) => {
            // Validated: present, a list.
            let Some(messages) = body.messages() else {
                return Err(ApiError::invalid_request("is required", Some("messages")));
            };
            let metadata = body.metadata().and_then(|m| serde_json::from_str(m.get()).ok());
            Some(StoreRequest::prepare(store, messages, metadata, caller.0).await?)
        }
        _ => None,
    };
    let stream = info.stream;
    let upstream = route.upstream_bytes(&body, stream);
    let proxied = Proxied { model: body.info.model.clone(), route, upstream, store, call };
    let span = proxied.call.span();
    if stream {
        relay_stream(&state, proxied, &headers).instrument(span).await
    } else {
        relay_json(&state, proxied, &headers).instrument(span).await
    }
}

/// One proxied call's inputs, captured from the request.
#[derive(Debug)]
struct Proxied {
    /// The model's provider.
    route: ModelRoute,
    /// The body for the upstream (`model` and `stream` rewritten, the rest as the client sent it).
    upstream: Vec<u8>,
    /// The model id the client asked for (the answer's `model` is rewritten to it).
    model: String,
    /// Where and for whom to store the answer; `None` with `store: false` or the store off.
    store: Option<StoreRequest>,
    /// The upstream call's span and metrics.
    call: UpstreamCall,
}

/// Store the completion; the returned future resolves when it is queued (or committed, with
/// `durability: sync`).
///
/// With `durability: async` and `detached` false, the caller awaits the returned future at once:
/// its first poll queues the row and completes, on the worker, with no task and no hand-off to
/// another thread (that hand-off was two cross-thread wake-ups per request). Otherwise (waiting
/// for a commit, or `detached`: nothing will poll the future, as when the client left) storing
/// runs on a task tracked by `AppState::tasks` on the main runtime: it completes even when the
/// client leaves (the handler, or the stream relaying to it, is dropped), and shutdown waits for
/// it.
fn store_tracked(
    tasks: &TaskTracker,
    runtime: &tokio::runtime::Handle,
    mut store: StoreRequest,
    answer: Answer,
    upstream_id: Option<String>,
    detached: bool,
) -> impl Future<Output = Result<(), ApiError>> + use<> {
    use futures_util::future::Either;
    store.upstream_id = upstream_id;
    if !detached && !store.store.waits_for_commit() {
        return Either::Left(async move { store_completion(store, answer).await });
    }
    let task = tasks.spawn_on(async move { store_completion(store, answer).await }.in_current_span(), runtime);
    Either::Right(async move { task.await.map_err(|e| ApiError::internal(&e))? })
}

async fn relay_json(
    state: &AppState,
    proxied: Proxied,
    headers: &ferrostack_providers::ForwardHeaders,
) -> Result<HttpResponse, ApiError> {
    let Proxied { route, upstream, model, store, call } = proxied;
    // Dropped with the handler when the client leaves: the upstream connection closes.
    let answer = route.chat_completion_bytes(upstream, headers).await;
    let id = new_completion_id();
    let relayed = match answer {
        Ok(bytes) => relay_completion(&route.provider_id, &bytes, &id, &model, store.is_some()),
        Err(e) => Err(e),
    };
    let relayed = match relayed {
        Ok(relayed) => {
            call.finish(None);
            relayed
        }
        Err(e) => {
            let err = ApiError::from(e);
            call.finish(Some(err.code().as_str()));
            return Err(err);
        }
    };
    record_ids(&id, relayed.upstream_id.as_deref());
    // The store cannot hold a NUL character (PostgreSQL refuses it in jsonb): an answer that
    // carries one is not acknowledged without its row; the client is told it was the provider's.
    if store.is_some() && relayed.stored.as_ref().is_some_and(|stored| stored.nul) {
        let err = ApiError::from(ferrostack_providers::ProviderError::InvalidResponse {
            provider: route.provider_id.clone(),
            detail: "the answer contains the NUL character (\\u0000), which cannot be stored".to_owned(),
        });
        tracing::warn!(completion_id = %id, "an upstream answer with a NUL character was refused: it cannot be stored");
        return Err(err);
    }
    if let (Some(store), Some(answer)) = (store, relayed.stored) {
        // The answer is only sent once the completion is queued (or committed, with
        // `durability: sync`), so every 2xx answer is a stored row.
        let answer = Answer::Relayed { id, model, answer };
        store_tracked(&state.tasks, &state.runtime, store, answer, relayed.upstream_id, false).await?;
    }
    Ok(HttpResponse::Ok().content_type("application/json").body(relayed.body))
}

async fn relay_stream(
    state: &AppState,
    proxied: Proxied,
    headers: &ferrostack_providers::ForwardHeaders,
) -> Result<HttpResponse, ApiError> {
    let Proxied { route, upstream, model, store, call } = proxied;
    // Failures before the first chunk (unknown upstream, refused, 4xx, busy) get their own status.
    let events = match route.chat_completion_stream_raw(upstream, headers).await {
        Ok(events) => events,
        Err(e) => {
            let err = ApiError::from(e);
            call.finish(Some(err.code().as_str()));
            return Err(err);
        }
    };
    let id = new_completion_id();
    let relay = Relay {
        events,
        provider: route.provider_id,
        chunks: ChunkRelay::new(&id, &model),
        id,
        upstream_id: None,
        assembler: StreamAssembler::new(&model),
        store,
        call: Some(call),
        tasks: state.tasks.clone(),
        runtime: state.runtime.clone(),
        lifecycle: state.lifecycle.clone(),
        over: false,
        stashed: None,
        started: false,
    };
    let body = futures_util::stream::unfold(relay, |mut relay| async move {
        let frame = relay.next_frame().await?;
        Some((Ok::<_, ApiError>(frame), relay))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

/// A stream being relayed: the response body. Polled by the worker that writes the response;
/// dropped when the client leaves, which drops the upstream stream (closing its connection) and
/// stores what was assembled (see `Drop`).
struct Relay {
    events: RawEventStream,
    provider: String,
    /// ferrostack's id, on every chunk the client gets.
    id: String,
    /// The relay of each chunk (with `id` and `model`).
    chunks: ChunkRelay,
    /// The upstream's first id, for tracing.
    upstream_id: Option<String>,
    assembler: StreamAssembler,
    /// Taken when the completion is handed to storing.
    store: Option<StoreRequest>,
    /// Taken when the call is over.
    call: Option<UpstreamCall>,
    tasks: TaskTracker,
    runtime: tokio::runtime::Handle,
    /// Shutdown: at the end of the in-flight grace the stream ends itself and stores what it has.
    lifecycle: crate::Lifecycle,
    /// Nothing more goes to the client.
    over: bool,
    /// What the look-ahead of the last frame found after its events (see [`Relay::next_frame`]).
    stashed: Option<Stashed>,
    /// The first event went out (it goes alone, see [`Relay::next_frame`]).
    started: bool,
}

/// Found by the look-ahead, handled by the next call of [`Relay::next_frame`].
enum Stashed {
    /// An item of the upstream stream that ends it (or `None`: it ended).
    Item(Option<Result<RawEvent, ferrostack_providers::ProviderError>>),
    /// An event the relay refused (an error object, or not JSON).
    Refused(Box<ferrostack_providers::ProviderError>),
}

/// A frame grows by the events already received up to this size, then goes out.
const MAX_FRAME_BYTES: usize = 64 * 1024;

impl Relay {
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.over {
            return None;
        }
        let event = match self.stashed.take() {
            Some(Stashed::Item(item)) => item,
            Some(Stashed::Refused(e)) => return Some(self.fail((*e).into()).await),
            None => tokio::select! {
                biased;
                event = self.events.next() => event,
                () = self.lifecycle.cut_reached() => {
                    // The shutdown grace is over: end the stream with an error event and store
                    // what was relayed (`finish_reason: null`) before the server closes the
                    // connection.
                    let err = ApiError::unavailable("the server shut down before the stream finished; retry");
                    return Some(self.fail(err).await);
                }
            },
        };
        match event {
            Some(Ok(RawEvent::Data(data))) => {
                if let Some(call) = &mut self.call {
                    call.first_chunk();
                }
                let mut frame = Vec::with_capacity(data.len() + 96);
                if let Err(e) = self.relay(&data, &mut frame) {
                    return Some(self.fail((*e).into()).await);
                }
                // Events the upstream has already sent go out in the same write. Each upstream
                // event comes through the HTTP client's body channel one at a time, from the
                // connection's task; without this look-ahead every event was its own frame and
                // its own send to the client (51 sends per 52-event stream, `strace -c -f`).
                // Yielding once lets the connection's task hand over the next event if it has
                // it; when it does not, the frame goes out at once (no waiting for more). The
                // first event goes alone: the time to the first token is what a streaming
                // client waits on.
                if !std::mem::replace(&mut self.started, true) {
                    return Some(Bytes::from(frame));
                }
                while frame.len() < MAX_FRAME_BYTES {
                    tokio::task::yield_now().await;
                    match self.events.next().now_or_never() {
                        None => break,
                        Some(Some(Ok(RawEvent::Data(data)))) => {
                            if let Err(e) = self.relay(&data, &mut frame) {
                                self.stashed = Some(Stashed::Refused(e));
                                break;
                            }
                        }
                        Some(item) => {
                            self.stashed = Some(Stashed::Item(item));
                            break;
                        }
                    }
                }
                Some(Bytes::from(frame))
            }
            Some(Ok(RawEvent::Done)) => {
                self.over = true;
                self.end(None);
                if let Some(storing) = self.take_store(false) {
                    let _ = storing.await;
                }
                Some(Bytes::from_static(b"data: [DONE]\n\n"))
            }
            // An upstream that closes without `[DONE]`: the client's stream ends the same way,
            // and what was relayed is stored as it is (without a finish chunk, with
            // `finish_reason: null`).
            None => {
                self.over = true;
                self.end(None);
                if let Some(storing) = self.take_store(false) {
                    let _ = storing.await;
                }
                None
            }
            Some(Err(e)) => Some(self.fail(e.into()).await),
        }
    }

    /// Relay one event's data: its frame appended to `frame`, its chunk to the assembler.
    fn relay(&mut self, data: &str, frame: &mut Vec<u8>) -> Result<(), Box<ferrostack_providers::ProviderError>> {
        let theirs = self.chunks.relay(&self.provider, data, &mut self.assembler, frame)?;
        if self.upstream_id.is_none() {
            self.upstream_id = theirs.map(std::borrow::Cow::into_owned);
        }
        Ok(())
    }

    /// A failure mid-stream: the stream ends with an SSE error event (no `[DONE]`), and what was
    /// relayed is stored.
    async fn fail(&mut self, err: ApiError) -> Bytes {
        self.over = true;
        self.end(Some(err.code().as_str()));
        if let Some(storing) = self.take_store(false) {
            let _ = storing.await;
        }
        let mut frame = b"data: ".to_vec();
        let _ = serde_json::to_writer(&mut frame, &err.to_sse_event());
        frame.extend_from_slice(b"\n\n");
        Bytes::from(frame)
    }

    /// The upstream call is over (closes its span, records its metrics).
    fn end(&mut self, error: Option<&'static str>) {
        if let Some(call) = self.call.take() {
            let span = call.span();
            span.record("ferrostack.completion_id", self.id.as_str());
            if let Some(theirs) = &self.upstream_id {
                span.record("gen_ai.response.id", theirs.as_str());
            }
            call.finish(error);
        }
    }

    /// Hand what was assembled to storing (once); `None` when there is nothing to store.
    /// `detached`: the returned future will not be polled (see [`store_tracked`]).
    fn take_store(&mut self, detached: bool) -> Option<impl Future<Output = Result<(), ApiError>> + use<>> {
        let store = self.store.take()?;
        let mut completion = self.assembler.finish()?;
        // The client already has the stream as the upstream sent it; the stored copy cannot hold
        // a NUL character (PostgreSQL refuses it in jsonb), so it holds U+FFFD in its place rather
        // than be refused (docs/api.md).
        if contains_nul(&completion) {
            replace_nul(&mut completion);
            tracing::warn!(completion_id = %self.id, "a streamed answer's NUL characters are stored as U+FFFD");
        }
        let answer = Answer::Assembled(completion);
        let storing = store_tracked(&self.tasks, &self.runtime, store, answer, self.upstream_id.clone(), detached);
        Some(async move {
            let result = storing.await;
            if let Err(e) = &result {
                tracing::error!(error = %e, "a streamed completion could not be stored");
            }
            result
        })
    }
}

impl Drop for Relay {
    /// The client left mid-stream (or the response was dropped): the upstream stream is dropped
    /// with `self` (its connection closes, the engine stops generating), and what was assembled
    /// is stored on its tracked task; nothing waits for it here.
    fn drop(&mut self) {
        if self.over {
            return;
        }
        self.end(None);
        // The storing task runs on its own; its result is logged there.
        drop(self.take_store(true));
    }
}

/// Record both ids on the upstream call's span (the current one here): ours is what the
/// client and the store know, the upstream's is what the engine's logs know.
fn record_ids(id: &str, upstream_id: Option<&str>) {
    let span = tracing::Span::current();
    span.record("ferrostack.completion_id", id);
    if let Some(theirs) = upstream_id {
        span.record("gen_ai.response.id", theirs);
    }
}

/// The body, read as `web::Json` would (same limit, `server.limits.max_body_bytes`, content type
/// and messages), without parsing it into a tree. The limits middleware bounds the read too.
async fn read_json_body(req: &HttpRequest, mut payload: web::Payload, limit: usize) -> Result<Bytes, ApiError> {
    let json_type = match req.mime_type() {
        Ok(Some(mime)) => mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON),
        _ => false,
    };
    if !json_type {
        return Err(ApiError::invalid_request("request body must be JSON (content-type: application/json)", None));
    }
    let length = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(length) = length
        && length > limit
    {
        return Err(ApiError::payload_too_large(format!("request body is {length} bytes; the limit is {limit}")));
    }
    let mut body = BytesMut::with_capacity(length.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| crate::payload_error(&e))?;
        if body.len() + chunk.len() > limit {
            return Err(ApiError::payload_too_large(format!("request body is larger than the limit of {limit} bytes")));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}
