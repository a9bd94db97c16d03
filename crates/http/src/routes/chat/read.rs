//! The stored-completions API: list, get, messages, update (metadata) and delete. Every query
//! goes through the inference store's authorized table, so a completion the caller may not read
//! is simply not there (404).

use actix_web::{HttpResponse, web};
use ferrostack_inference_store::{DEFAULT_LIMIT, InferenceStore, ListParams, MAX_LIMIT, MessagesParams, Order};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::list::{ListQuery, ListSpec};
use crate::text::{object_body, reject_nul_map, reject_nul_str};
use crate::{ApiError, AppState, Caller};

fn store(state: &AppState) -> Result<&InferenceStore, ApiError> {
    state
        .completions
        .as_ref()
        .ok_or_else(|| ApiError::not_implemented("stored chat completions are off: storage.stores.inference is null"))
}

/// `GET /v1/chat/completions`: newest first, `model` and `metadata[key]=value` filters.
#[derive(Debug)]
pub(crate) struct Completions;

impl ListSpec for Completions {
    const DEFAULT_LIMIT: u32 = DEFAULT_LIMIT;
    const MAX_LIMIT: u32 = MAX_LIMIT;
    const DEFAULT_ORDER: Order = Order::Desc;
    const METADATA: bool = true;
    const FILTERS: &'static [&'static str] = &["model"];
}

/// `GET /v1/chat/completions/{id}/messages`: oldest first.
#[derive(Debug)]
pub(crate) struct Messages;

impl ListSpec for Messages {
    const DEFAULT_LIMIT: u32 = DEFAULT_LIMIT;
    const MAX_LIMIT: u32 = MAX_LIMIT;
    const DEFAULT_ORDER: Order = Order::Asc;
}

/// `GET /v1/chat/completions?after&limit&model&order&metadata[key]=value`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: ListQuery<Completions>,
) -> Result<HttpResponse, ApiError> {
    let store = store(&state)?;
    let params = ListParams {
        model: query.filter("model").map(str::to_owned),
        after: query.after,
        limit: Some(query.limit),
        order: query.order,
        metadata: query.metadata,
    };
    Ok(HttpResponse::Ok().json(store.list(caller.0.as_ref(), params).await?))
}

/// `GET /v1/chat/completions/{id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    reject_nul_str(&id, "completion_id")?;
    match store(&state)?.get(caller.0.as_ref(), &id).await? {
        Some(completion) => Ok(HttpResponse::Ok().json(completion)),
        None => Err(ApiError::not_found(format!("Chat completion with id {id} not found"))),
    }
}

/// `GET /v1/chat/completions/{id}/messages?after&limit&order`.
pub(crate) async fn messages(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: ListQuery<Messages>,
) -> Result<HttpResponse, ApiError> {
    reject_nul_str(&id, "completion_id")?;
    let params = MessagesParams { after: query.after, limit: Some(query.limit), order: Some(query.order) };
    Ok(HttpResponse::Ok().json(store(&state)?.messages(caller.0.as_ref(), &id, params).await?))
}

/// Body of `POST /v1/chat/completions/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    metadata: Option<Map<String, Value>>,
}

/// `POST /v1/chat/completions/{id}` with `{metadata}`: replaces the metadata (OpenAI's update).
pub(crate) async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    reject_nul_str(&id, "completion_id")?;
    let metadata = object_body::<UpdateBody>(body.into_inner())?.metadata.unwrap_or_default();
    reject_nul_map(&metadata, "metadata")?;
    if let Some((key, _)) = metadata.iter().find(|(_, v)| !v.is_string()) {
        return Err(ApiError::invalid_request(format!("metadata.{key} must be a string"), Some("metadata")));
    }
    // OpenAI's limits (16 pairs, keys up to 64 characters, values up to 512), as on conversations.
    let metadata = ferrostack_conversations::validate::metadata(&Value::Object(metadata))?;
    let updated = store(&state)?.update_metadata(caller.0.as_ref(), &id, metadata).await?;
    Ok(HttpResponse::Ok().json(updated))
}

/// `DELETE /v1/chat/completions/{id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    reject_nul_str(&id, "completion_id")?;
    store(&state)?.delete(caller.0.as_ref(), &id).await?;
    Ok(HttpResponse::Ok().json(json!({"id": id.as_str(), "object": "chat.completion.deleted", "deleted": true})))
}
