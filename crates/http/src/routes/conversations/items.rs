//! A conversation's items: add, list, retrieve, delete.

use actix_web::{HttpResponse, web};
use ferrostack_conversations::{DEFAULT_LIMIT, ItemsParams, MAX_LIMIT};
use serde::Deserialize;
use serde_json::{Value, json};

use super::conversation::{item_list, reject_items_nul};
use super::store;
use crate::list::{ListQuery, ListSpec, Order, Page};
use crate::text::{object_body, reject_nul_str};
use crate::{ApiError, AppState, Caller};

/// `GET /v1/conversations/{id}/items`: newest first; `limit` outside 1..=100 is a 400, as the
/// issue and OpenAI's reference bound it; `include` is accepted and unused.
#[derive(Debug)]
pub(crate) struct Items;

impl ListSpec for Items {
    const DEFAULT_LIMIT: u32 = DEFAULT_LIMIT;
    const MAX_LIMIT: u32 = MAX_LIMIT;
    const DEFAULT_ORDER: Order = Order::Desc;
    const FILTERS: &'static [&'static str] = &["include", "include[]"];
    const STRICT_LIMIT: bool = true;
}

/// Body of `POST /v1/conversations/{id}/items`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AddBody {
    items: Option<Value>,
}

/// `POST /v1/conversations/{id}/items` with `{items}` (1 to 20): the items as stored.
pub(crate) async fn add(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    let Some(items) = object_body::<AddBody>(body.into_inner())?.items else {
        return Err(ApiError::invalid_request("items is required", Some("items")));
    };
    let items = item_list(Some(items))?;
    reject_items_nul(&items)?;
    let stored = store(&state)?.add_items(caller.0.as_ref(), &id, &items).await?;
    let page = Page::new(stored, false, |i| i.get("id").and_then(Value::as_str).unwrap_or_default());
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /v1/conversations/{id}/items?after&limit&order&include`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: ListQuery<Items>,
) -> Result<HttpResponse, ApiError> {
    let params = ItemsParams { after: query.after, limit: Some(query.limit), order: query.order };
    Ok(HttpResponse::Ok().json(store(&state)?.list_items(caller.0.as_ref(), &id, params).await?))
}

/// `GET /v1/conversations/{id}/items/{item_id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, item_id) = path.into_inner();
    reject_nul_str(&item_id, "item_id")?;
    Ok(HttpResponse::Ok().json(store(&state)?.get_item(caller.0.as_ref(), &id, &item_id).await?))
}

/// `DELETE /v1/conversations/{id}/items/{item_id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (id, item_id) = path.into_inner();
    reject_nul_str(&item_id, "item_id")?;
    store(&state)?.delete_item(caller.0.as_ref(), &id, &item_id).await?;
    Ok(HttpResponse::Ok().json(json!({"id": item_id, "object": "conversation.item.deleted", "deleted": true})))
}
