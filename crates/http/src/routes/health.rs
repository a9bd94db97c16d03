//! Liveness, version and readiness.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::json;

use crate::AppState;

/// `GET /v1/health`: the process is up and serving. Touches nothing else, so an orchestrator never
/// restarts a healthy server because its database blinked.
pub(crate) async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "OK" }))
}

/// `GET /v1/version`.
pub(crate) async fn version(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({ "version": state.version }))
}

#[derive(Serialize)]
struct BackendReport {
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    latency_ms: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// `GET /readyz`: pings every storage backend (concurrently, each with a short timeout); 200 when all
/// answer, 503 with the status of each backend when one does not.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let statuses = state.catalog.readiness().await;
    let ready = statuses.iter().all(|s| s.ok);
    let backends: serde_json::Map<String, serde_json::Value> = statuses
        .into_iter()
        .map(|s| {
            let report = BackendReport {
                kind: s.type_name,
                status: if s.ok { "ok" } else { "unavailable" },
                latency_ms: s.latency.as_millis(),
                error: s.error,
            };
            (s.name, serde_json::to_value(report).unwrap_or_default())
        })
        .collect();
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "backends": backends });
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
