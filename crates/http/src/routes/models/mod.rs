//! `/v1/models`: list, retrieve, register and delete models. The registry applies the access
//! policy (`model::<id>`): a model the caller may not read is not listed and answers 404.

use actix_web::{HttpRequest, HttpResponse, web};
use ferrostack_models::Registration;
use serde_json::{Value, json};

use crate::{ApiError, AppState, Caller};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/v1/models").route(web::get().to(list)).route(web::post().to(register))).service(
        // Model ids may contain `/` (`meta-llama/Llama-3.2-3B-Instruct`, discovered
        // `<provider>/<model>`): the id is the whole tail of the path.
        web::resource("/v1/models/{model_id:.+}").route(web::get().to(get)).route(web::delete().to(delete)),
    );
}

/// The model id of the path, percent-decoded: actix leaves `%2F` (and the other reserved
/// characters) encoded in path segments, and clients that quote ids send `/` as `%2F`.
fn model_id(req: &HttpRequest) -> Result<String, ApiError> {
    let id = percent_decode(req.match_info().get("model_id").unwrap_or_default());
    crate::text::reject_nul_str(&id, "model_id")?;
    Ok(id)
}

/// `%XX` sequences decoded; invalid ones and non-UTF-8 results are kept as they are.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) =
                (bytes.get(i + 1).copied().and_then(hex), bytes.get(i + 2).copied().and_then(hex))
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// `GET /v1/models`: `{object: "list", data: [...]}`, every model the caller may read.
pub(crate) async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let models = state.models.list(caller.0.as_ref()).await?;
    let data: Vec<Value> = models.iter().map(|m| m.to_json()).collect();
    Ok(HttpResponse::Ok().json(json!({"object": "list", "data": data})))
}

/// `GET /v1/models/{model_id}`.
pub(crate) async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let model = state.models.get(&model_id(&req)?, caller.0.as_ref()).await?;
    Ok(HttpResponse::Ok().json(model.to_json()))
}

/// `POST /v1/models` with `{model_id, provider_id, provider_model_id, model_type, metadata}`.
pub(crate) async fn register(
    state: web::Data<AppState>,
    caller: Caller,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    crate::text::reject_nul(&body, "")?;
    let registration = Registration::from_json(&body)?;
    let model = state.models.register(registration, caller.0.as_ref()).await?;
    Ok(HttpResponse::Ok().json(model.to_json()))
}

/// `DELETE /v1/models/{model_id}`.
pub(crate) async fn delete(
    state: web::Data<AppState>,
    caller: Caller,
    req: HttpRequest,
) -> Result<HttpResponse, ApiError> {
    let id = model_id(&req)?;
    state.models.delete(&id, caller.0.as_ref()).await?;
    Ok(HttpResponse::Ok().json(json!({"id": id, "object": "model", "deleted": true})))
}
