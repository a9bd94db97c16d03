//! The stored-completions API: list, get, messages, update (metadata) and delete. Every query
//! goes through the inference store's authorized table, so a completion the caller may not read
//! is simply not there (404).

use actix_web::{HttpRequest, HttpResponse, web};
use ferrostack_inference_store::{InferenceStore, ListParams, MessagesParams, Order};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::{ApiError, AppState, Caller};

fn store(state: &AppState) -> Result<&InferenceStore, ApiError> {
    state
        .completions
        .as_ref()
        .ok_or_else(|| ApiError::not_implemented("stored chat completions are off: storage.stores.inference is null"))
}

fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, ApiError> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| ApiError::invalid_request(format!("invalid query string: {e}"), None))
}

fn parse_limit(value: &str) -> Result<u32, ApiError> {
    value
        .parse()
        .map_err(|_| ApiError::invalid_request(format!("limit must be an integer, got {value:?}"), Some("limit")))
}

fn parse_order(value: &str) -> Result<Order, ApiError> {
    match value {
        "asc" => Ok(Order::Asc),
        "desc" => Ok(Order::Desc),
        other => Err(ApiError::invalid_request(format!("order must be 'asc' or 'desc', got {other:?}"), Some("order"))),
    }
}

/// `GET /v1/chat/completions?after&limit&model&order&metadata[key]=value`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let store = store(&state)?;
    let mut params = ListParams::default();
    for (key, value) in query_pairs(&req)? {
        match key.as_str() {
            "after" => params.after = Some(value),
            "limit" => params.limit = Some(parse_limit(&value)?),
            "model" => params.model = Some(value),
            "order" => params.order = parse_order(&value)?,
            k => match k.strip_prefix("metadata[").and_then(|rest| rest.strip_suffix(']')) {
                Some(meta) if !meta.is_empty() => params.metadata.push((meta.to_owned(), value)),
                _ => return Err(ApiError::invalid_request(format!("unknown query parameter {k:?}"), Some(k))),
            },
        }
    }
    Ok(HttpResponse::Ok().json(store.list(caller.0.as_ref(), params).await?))
}

/// `GET /v1/chat/completions/{id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
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
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let store = store(&state)?;
    let mut params = MessagesParams::default();
    for (key, value) in query_pairs(&req)? {
        match key.as_str() {
            "after" => params.after = Some(value),
            "limit" => params.limit = Some(parse_limit(&value)?),
            "order" => params.order = Some(parse_order(&value)?),
            k => return Err(ApiError::invalid_request(format!("unknown query parameter {k:?}"), Some(k))),
        }
    }
    Ok(HttpResponse::Ok().json(store.messages(caller.0.as_ref(), &id, params).await?))
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
    body: web::Json<UpdateBody>,
) -> Result<HttpResponse, ApiError> {
    let metadata = body.into_inner().metadata.unwrap_or_default();
    if let Some((key, _)) = metadata.iter().find(|(_, v)| !v.is_string()) {
        return Err(ApiError::invalid_request(format!("metadata.{key} must be a string"), Some("metadata")));
    }
    let updated = store(&state)?.update_metadata(caller.0.as_ref(), &id, metadata).await?;
    Ok(HttpResponse::Ok().json(updated))
}

/// `DELETE /v1/chat/completions/{id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    store(&state)?.delete(caller.0.as_ref(), &id).await?;
    Ok(HttpResponse::Ok().json(json!({"id": id.as_str(), "object": "chat.completion.deleted", "deleted": true})))
}
