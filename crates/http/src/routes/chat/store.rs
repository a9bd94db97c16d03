//! Handing a completion to the inference store, stamped with its caller.

use ferrostack_authz::User;
use ferrostack_inference_store::{InferenceStore, StoredCompletion};
use serde_json::Value;

use crate::ApiError;

/// What a completion is stored with, captured from the request before it is forwarded.
#[derive(Debug)]
pub(crate) struct StoreRequest {
    pub(crate) store: InferenceStore,
    pub(crate) input_messages: Value,
    pub(crate) metadata: Option<Value>,
    pub(crate) caller: Option<User>,
    /// The id the upstream gave the completion (the client sees ferrostack's own), for tracing.
    pub(crate) upstream_id: Option<String>,
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
