//! Create, retrieve, update (metadata) and delete a conversation.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::store;
use crate::text::{object_body, reject_nul};
use crate::{ApiError, AppState, Caller};

/// Body of `POST /v1/conversations`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    #[serde(default)]
    items: Option<Value>,
    #[serde(default)]
    metadata: Option<Value>,
}

/// `items` as a list: absent or null is none; anything but an array is a 400 naming it.
pub(super) fn item_list(items: Option<Value>) -> Result<Vec<Value>, ApiError> {
    match items {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => Ok(items),
        Some(_) => Err(ApiError::invalid_request("items must be an array of items", Some("items"))),
    }
}

/// 400 naming the first item field (`items[2].content`) that holds a NUL.
pub(super) fn reject_items_nul(items: &[Value]) -> Result<(), ApiError> {
    items.iter().enumerate().try_for_each(|(i, item)| reject_nul(item, &format!("items[{i}]")))
}

/// `POST /v1/conversations` with `{items?, metadata?}`.
pub(crate) async fn create(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let CreateBody { items, metadata } = object_body(body.into_inner())?;
    if let Some(metadata) = &metadata {
        reject_nul(metadata, "metadata")?;
    }
    let items = item_list(items)?;
    reject_items_nul(&items)?;
    let conversation = store(&state)?.create(caller.0.as_ref(), metadata.as_ref(), &items).await?;
    Ok(HttpResponse::Ok().json(conversation))
}

/// `GET /v1/conversations/{conversation_id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(store(&state)?.get(caller.0.as_ref(), &id).await?))
}

/// Body of `POST /v1/conversations/{conversation_id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    metadata: Option<Value>,
}

/// `POST /v1/conversations/{conversation_id}` with `{metadata}`: replaces the metadata.
pub(crate) async fn update(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let Some(metadata) = object_body::<UpdateBody>(body.into_inner())?.metadata else {
        return Err(ApiError::invalid_request("metadata is required", Some("metadata")));
    };
    reject_nul(&metadata, "metadata")?;
    Ok(HttpResponse::Ok().json(store(&state)?.update_metadata(caller.0.as_ref(), &id, &metadata).await?))
}

/// `DELETE /v1/conversations/{conversation_id}`: the conversation and its items.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    store(&state)?.delete(caller.0.as_ref(), &id).await?;
    Ok(HttpResponse::Ok().json(json!({"id": id.as_str(), "object": "conversation.deleted", "deleted": true})))
}
