//! Handing a completion to the inference store, stamped with its caller.

use ferrostack_authz::User;
use ferrostack_inference_store::{InferenceStore, StoreReservation, StoredCompletion};
use serde_json::Value;

use crate::ApiError;

/// What a completion is stored with, captured from the request before it is forwarded, with its
/// place in the write queue already reserved.
#[derive(Debug)]
pub(crate) struct StoreRequest {
    pub(crate) store: StoreReservation,
    pub(crate) input_messages: Value,
    pub(crate) metadata: Option<Value>,
    pub(crate) caller: Option<User>,
    /// The id the upstream gave the completion (the client sees ferrostack's own), for tracing.
    pub(crate) upstream_id: Option<String>,
}

impl StoreRequest {
    /// Before the upstream is called: refuse a request whose messages and metadata alone are
    /// over `max_row_bytes` (413), and reserve its place in the write queue (503 when none frees
    /// within `queue_wait_timeout_ms`), so that an answer is never produced, and billed, for a
    /// completion that cannot be stored.
    pub(crate) async fn prepare(
        store: &InferenceStore,
        input_messages: Value,
        metadata: Option<Value>,
        caller: Option<User>,
    ) -> Result<Self, ApiError> {
        store.check_request_size(&input_messages, metadata.as_ref())?;
        let store = store.reserve().await?;
        Ok(Self { store, input_messages, metadata, caller, upstream_id: None })
    }
}

/// Store `completion`: returns once it is queued, or committed with `durability: sync`.
pub(crate) async fn store_completion(req: StoreRequest, completion: &Value) -> Result<(), ApiError> {
    // An answer that is not a completion we can store is the provider's fault (502).
    let mut record = StoredCompletion::from_completion(completion, req.input_messages)?;
    // What is stored as metadata is what the client sent with the request, as OpenAI's API does.
    record.metadata = match req.metadata {
        Some(Value::Object(metadata)) => Some(metadata),
        _ => None,
    };
    record.upstream_id = req.upstream_id;
    req.store.store(record, req.caller.as_ref()).await.map_err(ApiError::from)
}
