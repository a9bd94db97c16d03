//! Handing a completion to the inference store, stamped with its caller.

use ferrostack_authz::User;
use ferrostack_catalog::JsonText;
use ferrostack_inference_store::{InferenceStore, StoreReservation, StoredCompletion};
use ferrostack_providers::{StoredAnswer, raw};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::ApiError;

/// What a completion is stored with, captured from the request before it is forwarded, with its
/// place in the write queue already reserved.
#[derive(Debug)]
pub(crate) struct StoreRequest {
    pub(crate) store: StoreReservation,
    /// The request's `messages`, as their (compact) text.
    pub(crate) input_messages: JsonText,
    pub(crate) metadata: Option<Map<String, Value>>,
    pub(crate) caller: Option<User>,
    /// The id the upstream gave the completion (the client sees ferrostack's own), for tracing.
    pub(crate) upstream_id: Option<String>,
}

impl StoreRequest {
    /// Before the upstream is called: refuse a request whose messages and metadata alone are
    /// over `max_row_bytes` (413), take the messages' text for the row, and reserve its place in
    /// the write queue (503 when none frees within `queue_wait_timeout_ms`), so that an answer is
    /// never produced, and billed, for a completion that cannot be stored.
    ///
    /// The messages are stored as their own text, compact, without a tree. A list that a JSON
    /// parser refuses although its syntax is valid (a lone surrogate escape, a number out of
    /// range; the body's check refuses them first) is 400: it could not be stored or read back.
    pub(crate) async fn prepare(
        store: &InferenceStore,
        messages: &RawValue,
        metadata: Option<Map<String, Value>>,
        caller: Option<User>,
    ) -> Result<Self, ApiError> {
        let invalid = |e: serde_json::Error| {
            ApiError::invalid_request(format!("invalid JSON in messages: {e}"), Some("messages"))
        };
        let scan = raw::scan(messages.get());
        // Sized before the text is copied (a doubtful text is sized as the tree writes it).
        let input_messages = if scan.doubtful {
            let text = JsonText::from_raw(raw::compact(messages, scan).map_err(invalid)?);
            store.check_request_size(text.get().len(), metadata.as_ref())?;
            text
        } else {
            store.check_request_size(messages.get().len() - scan.blank, metadata.as_ref())?;
            JsonText::from_raw(raw::compact(messages, scan).map_err(invalid)?)
        };
        // The messages are part of the row: charged to the queue's byte bound now, so that a
        // burst of large requests waits here, before the upstream is called, rather than
        // overshooting the bound when their answers are queued.
        let store = store.reserve_sized(input_messages.get().len()).await?;
        Ok(Self { store, input_messages, metadata, caller, upstream_id: None })
    }
}

/// The answer to store.
#[derive(Debug)]
pub(crate) enum Answer {
    /// A JSON answer's pieces, as relayed (its choices are the upstream's text).
    Relayed {
        /// ferrostack's id of the completion.
        id: String,
        /// The requested model id.
        model: String,
        answer: StoredAnswer,
    },
    /// A stream's chunks, assembled into a `chat.completion`.
    Assembled(Value),
}

/// Store the answer: returns once it is queued, or committed with `durability: sync`.
pub(crate) async fn store_completion(req: StoreRequest, answer: Answer) -> Result<(), ApiError> {
    // An answer that is not a completion we can store is the provider's fault (502).
    let mut record = match answer {
        Answer::Relayed { id, model, answer } => StoredCompletion::from_parts(
            &id,
            answer.created.as_ref(),
            &model,
            JsonText::from_raw(answer.choices),
            req.input_messages,
        )?,
        Answer::Assembled(completion) => StoredCompletion::from_completion(&completion, req.input_messages)?,
    };
    // What is stored as metadata is what the client sent with the request, as OpenAI's API does.
    record.metadata = req.metadata;
    record.upstream_id = req.upstream_id;
    req.store.store(record, req.caller.as_ref()).await.map_err(ApiError::from)
}
