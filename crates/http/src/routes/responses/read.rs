//! The stored responses: list, retrieve, delete, and a response's input items.

use actix_web::{HttpRequest, HttpResponse, web};
use ferrostack_responses::{DEFAULT_ITEMS_LIMIT, DEFAULT_LIMIT, InputItemsParams, MAX_LIMIT};
use serde_json::json;

use super::store;
use crate::list::{ListQuery, ListSpec, Order};
use crate::text::reject_nul_str;
use crate::{ApiError, AppState, Caller};

/// `GET /v1/responses?after&limit&model&order`: newest first, `limit` 1..=100 (default 50).
#[derive(Debug)]
pub(crate) struct Responses;

impl ListSpec for Responses {
    const DEFAULT_LIMIT: u32 = DEFAULT_LIMIT;
    const MAX_LIMIT: u32 = MAX_LIMIT;
    const DEFAULT_ORDER: Order = Order::Desc;
    const FILTERS: &'static [&'static str] = &["model"];
    const STRICT_LIMIT: bool = true;
}

/// `GET /v1/responses/{id}/input_items?after&before&limit&order&include`: newest first, `limit`
/// 1..=100 (default 20).
#[derive(Debug)]
pub(crate) struct InputItems;

impl ListSpec for InputItems {
    const DEFAULT_LIMIT: u32 = DEFAULT_ITEMS_LIMIT;
    const MAX_LIMIT: u32 = MAX_LIMIT;
    const DEFAULT_ORDER: Order = Order::Desc;
    const BEFORE: bool = true;
    const FILTERS: &'static [&'static str] = &["include", "include[]"];
    const STRICT_LIMIT: bool = true;
}

/// `GET /v1/responses`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    query: ListQuery<Responses>,
) -> Result<HttpResponse, ApiError> {
    let page = store(&state)?
        .list(caller.0.as_ref(), query.after.as_deref(), query.limit, query.order, query.filter("model"))
        .await?;
    Ok(HttpResponse::Ok().json(page))
}

/// `GET /v1/responses/{id}`: the response as answered (`model` as the client sent it). `include`
/// is accepted; a `stream=true` replay is not served.
pub(crate) async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map_err(|e| ApiError::invalid_request(format!("invalid query string: {e}"), None))?;
    for (key, value) in pairs.iter() {
        match key.as_str() {
            "include" | "include[]" => {}
            "stream" if value == "false" => {}
            "stream" => {
                return Err(ApiError::invalid_request(
                    "replaying a stored response as a stream is not supported",
                    Some("stream"),
                ));
            }
            other => return Err(ApiError::invalid_request(format!("unknown query parameter {other:?}"), Some(other))),
        }
    }
    reject_nul_str(&id, "response_id")?;
    let stored = store(&state)?.get(caller.0.as_ref(), &id).await?;
    Ok(HttpResponse::Ok().json(stored.response))
}

/// `DELETE /v1/responses/{id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    reject_nul_str(&id, "response_id")?;
    store(&state)?.delete(caller.0.as_ref(), &id).await?;
    Ok(HttpResponse::Ok().json(json!({"id": id.as_str(), "object": "response", "deleted": true})))
}

/// `GET /v1/responses/{id}/input_items`.
pub(crate) async fn input_items(
    state: web::Data<AppState>,
    caller: Caller,
    id: web::Path<String>,
    query: ListQuery<InputItems>,
) -> Result<HttpResponse, ApiError> {
    reject_nul_str(&id, "response_id")?;
    let include =
        query.filters.iter().filter(|(name, _)| name.starts_with("include")).map(|(_, v)| v.clone()).collect();
    let params = InputItemsParams {
        after: query.after.clone(),
        before: query.before.clone(),
        limit: query.limit,
        order: query.order,
        include,
    };
    Ok(HttpResponse::Ok().json(store(&state)?.input_items(caller.0.as_ref(), &id, params).await?))
}
