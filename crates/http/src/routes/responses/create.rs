//! `POST /v1/responses`: check the request, read its context (the chain of
//! `previous_response_id`, or the `conversation`'s items) under the access policy, call the
//! model's provider with the equivalent chat completion, answer (JSON, or the Responses events
//! relayed as the upstream's chunks arrive), and store the turn.
//!
//! As for chat completions, the upstream call and storing run in a task on the server's main
//! runtime (`AppState::tasks`): a client that disconnects mid-stream does not cancel storing what
//! was produced (as `incomplete`). The turn is committed before the answer ends (before the JSON
//! answer, before `response.completed`), so its id can be used at once.
//!
//! What the store cannot hold is never acknowledged: a turn whose request alone is over
//! `max_row_bytes` is refused before the upstream is called (413), one that the answer takes over
//! it is a 413 (JSON) or an `error` event instead of the final one (stream). A model answer
//! holding a NUL character: a JSON answer is refused as the provider's fault (502
//! `upstream_invalid_response`); a stream's chunks have their NULs replaced with U+FFFD before they
//! are translated, so the events and the stored response agree.

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use ferrostack_authz::User;
use ferrostack_catalog::json::{contains_nul, replace_nul};
use ferrostack_providers::{ForwardHeaders, ModelRoute, StreamEvent, validate_chat_request};
use ferrostack_responses::{
    CreateRequest, End, ResponseStore, StoredResponse, Translator, chain_items, new_response_id,
};
use futures_util::StreamExt;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument as _;

use crate::telemetry::UpstreamCall;
use crate::{ApiError, AppState, Caller, Code};

/// Events buffered between the upstream reader and the client; small, so a slow client slows
/// the upstream read instead of growing memory.
const RELAY_BUFFER: usize = 16;

pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let body = body.into_inner();
    // PostgreSQL cannot hold a NUL in text or jsonb: refused here, naming the field, before the
    // upstream is called (and not only when the turn is stored).
    crate::text::reject_nul(&body, "")?;
    let request = ferrostack_responses::parse(&body)?;
    let route = resolve_model(&state, &request.model, &caller).await?;
    let context = context(&state, &request, caller.0.as_ref()).await?;
    let chat = request.chat_body(&context);
    // The translation is ours, but the provider's request checks are a net for what it produced.
    // (An input of reasoning items only, say, leaves no message to send.)
    validate_chat_request(&chat).map_err(|e| {
        ApiError::invalid_request(format!("input gives the model nothing to answer: {e}"), Some("input"))
    })?;
    let id = new_response_id();
    let created_at =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
    let skeleton = request.skeleton(&id, created_at);
    if let Some(store) = &state.responses
        && (request.store || request.conversation.is_some())
    {
        // A turn that could never be stored is refused before the upstream is called.
        store.check_request_size(&request.input, &skeleton)?;
    }
    let translator = Translator::new(skeleton, request.max_tool_calls);
    let call = UpstreamCall::start(&state.telemetry, &route, &request.model, request.stream);
    let headers = call.forward_headers(&state.telemetry, &req);
    // The id the client and the store know, on the upstream call's span.
    call.span().record("ferrostack.completion_id", id.as_str());
    let saver = Saver {
        store: state.responses.clone(),
        caller: caller.0,
        store_row: request.store,
        conversation: request.conversation.clone(),
        input: request.input.clone(),
    };
    let turn = Turn { route, chat, headers, call, translator, saver };
    if request.stream {
        stream(&state, turn).await
    } else {
        let span = turn.call.span();
        let task = state.tasks.spawn_on(json(turn).instrument(span), &state.runtime);
        let response = task.await.map_err(|e| ApiError::internal(&e))??;
        Ok(HttpResponse::Ok().json(response))
    }
}

/// The route of `model` under the access policy; an unknown (or unreadable) model is a 404 in the
/// words OpenAI clients match on.
async fn resolve_model(state: &AppState, model: &str, caller: &Caller) -> Result<ModelRoute, ApiError> {
    state.resolve_model(model, caller).await.map_err(|e| {
        if e.code() == Code::ModelNotFound {
            ApiError::new(
                Code::ModelNotFound,
                format!("Model '{model}' not found. Use 'client.models.list()' to list available models."),
            )
            .with_param("model")
        } else {
            e
        }
    })
}

/// The items this turn continues, oldest first: the chain of `previous_response_id` (each turn's
/// input, then output), or the conversation's items. Both read under the access policy: another
/// caller's response or conversation is a 404.
async fn context(state: &AppState, request: &CreateRequest, caller: Option<&User>) -> Result<Vec<Value>, ApiError> {
    if request.previous_response_id.is_none() && request.conversation.is_none() {
        return Ok(Vec::new());
    }
    let Some(store) = &state.responses else {
        return Err(ApiError::not_implemented(
            "previous_response_id and conversation need stored responses: storage.stores.responses is null",
        ));
    };
    if let Some(previous) = &request.previous_response_id {
        return Ok(chain_items(&store.chain(caller, previous).await?));
    }
    let (Some(conversation), Some(conversations)) = (&request.conversation, store.conversations()) else {
        return Err(ApiError::not_implemented("conversations are off: storage.stores.conversations is null"));
    };
    conversations
        .all_items(caller, conversation)
        .await
        .map_err(|e| ApiError::from(ferrostack_responses::Error::Conversation(e)))
}

/// Where and for whom a turn is stored.
#[derive(Debug)]
struct Saver {
    store: Option<ResponseStore>,
    caller: Option<User>,
    /// `store` of the request: the response row is written only when true.
    store_row: bool,
    conversation: Option<String>,
    input: Vec<Value>,
}

impl Saver {
    /// Whether anything of the turn is stored.
    fn stores(&self) -> bool {
        self.store.is_some() && (self.store_row || self.conversation.is_some())
    }

    /// Commit the turn: the response (unless `store: false`) and the conversation's new items,
    /// together.
    async fn save(&self, response: &Value) -> Result<(), ApiError> {
        let Some(store) = &self.store else { return Ok(()) };
        if !self.store_row && self.conversation.is_none() {
            return Ok(());
        }
        let stored = StoredResponse { response: response.clone(), input: self.input.clone() };
        store.save(self.caller.as_ref(), &stored, self.store_row, self.conversation.as_deref()).await?;
        Ok(())
    }
}

/// One turn's upstream call, moved into the task that makes it.
#[derive(Debug)]
struct Turn {
    route: ModelRoute,
    chat: Value,
    headers: ForwardHeaders,
    call: UpstreamCall,
    translator: Translator,
    saver: Saver,
}

async fn json(turn: Turn) -> Result<Value, ApiError> {
    let Turn { route, chat, headers, call, translator, saver } = turn;
    let completion = match route.chat_completion(chat, &headers).await {
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
    if !completion.get("choices").is_some_and(Value::is_array) {
        return Err(ApiError::new(Code::UpstreamInvalid, "upstream returned an answer without choices"));
    }
    let response = translator.from_completion(&completion);
    // The store cannot hold a NUL character (PostgreSQL refuses it in jsonb): an answer that
    // carries one is not acknowledged without its row; the client is told it was the provider's.
    if saver.stores() && contains_nul(&response) {
        let id = response.get("id").and_then(Value::as_str).unwrap_or_default();
        tracing::warn!(response_id = %id, "an upstream answer with a NUL character was refused: it cannot be stored");
        return Err(ApiError::from(ferrostack_providers::ProviderError::InvalidResponse {
            provider: route.provider_id.clone(),
            detail: "the answer contains the NUL character (\\u0000), which cannot be stored".to_owned(),
        }));
    }
    saver.save(&response).await?;
    Ok(response)
}

async fn stream(state: &AppState, turn: Turn) -> Result<HttpResponse, ApiError> {
    let (opened_tx, opened_rx) = oneshot::channel();
    let (frames_tx, mut frames_rx) = mpsc::channel::<Bytes>(RELAY_BUFFER);
    let span = turn.call.span();
    state.tasks.spawn_on(relay(turn, opened_tx, frames_tx).instrument(span), &state.runtime);
    // Failures before the first chunk (unknown upstream, refused, 4xx) get their own status.
    opened_rx.await.map_err(|e| ApiError::internal(&e))??;
    let body = futures_util::stream::poll_fn(move |cx| frames_rx.poll_recv(cx).map(|f| f.map(Ok::<_, ApiError>)));
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("cache-control", "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body))
}

/// Send `events` to the client; false once it is gone.
async fn send(frames: &mpsc::Sender<Bytes>, events: Vec<Value>) -> bool {
    for event in events {
        if frames.send(sse_frame(&event)).await.is_err() {
            return false;
        }
    }
    true
}

/// Read the upstream stream, relay the Responses events of each chunk, and store the turn when
/// the stream ends (before the final event), also when the client went away.
async fn relay(turn: Turn, opened: oneshot::Sender<Result<(), ApiError>>, frames: mpsc::Sender<Bytes>) {
    let Turn { route, chat, headers, mut call, mut translator, saver } = turn;
    let mut upstream = match route.chat_completion_stream(chat, &headers).await {
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
    let mut client_here = send(&frames, translator.start()).await;
    let mut failure = None;
    let mut nul_logged = false;
    let end = loop {
        if !client_here {
            // Stop reading (the provider stops generating when its connection drops) and store
            // what was produced.
            break End::Interrupted;
        }
        match upstream.next().await {
            Some(Ok(StreamEvent::Chunk(mut chunk))) => {
                call.first_chunk();
                if saver.stores() && contains_nul(&chunk) {
                    // The stored response cannot hold a NUL; the client gets what is stored.
                    replace_nul(&mut chunk);
                    if !nul_logged {
                        nul_logged = true;
                        tracing::warn!("a streamed answer's NUL characters are sent and stored as U+FFFD");
                    }
                }
                client_here = send(&frames, translator.push(&chunk)).await;
            }
            Some(Ok(StreamEvent::Done)) | None => break End::Finished,
            Some(Err(e)) => {
                let err = ApiError::from(e);
                failure = Some(err.code().as_str());
                break End::Failed { code: err.code().as_str().to_owned(), message: err.to_string() };
            }
        }
    };
    drop(upstream);
    call.finish(failure);
    let (events, response) = translator.finish(end);
    if let Err(e) = saver.save(&response).await {
        // Nothing was stored; the client hears why instead of the final event.
        if e.status().is_client_error() {
            tracing::warn!(error = %e, code = e.code().as_str(), "a streamed response could not be stored");
        } else {
            tracing::error!(error = %e, code = e.code().as_str(), "a streamed response could not be stored");
        }
        let event = translator.error_event(e.code().as_str(), &e.to_string());
        if client_here {
            let _ = send(&frames, vec![event]).await;
        }
        return;
    }
    if client_here {
        let _ = send(&frames, events).await;
    }
}

/// `event: <type>` and `data: <json>`, as OpenAI streams Responses events.
fn sse_frame(event: &Value) -> Bytes {
    let mut frame = Vec::with_capacity(256);
    frame.extend_from_slice(b"event: ");
    frame.extend_from_slice(event.get("type").and_then(Value::as_str).unwrap_or("message").as_bytes());
    frame.extend_from_slice(b"\ndata: ");
    // Serialising a Value cannot fail.
    let _ = serde_json::to_writer(&mut frame, event);
    frame.extend_from_slice(b"\n\n");
    Bytes::from(frame)
}
