//! Liveness, version and readiness.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use ferrostack_catalog::{BackendStatus, Catalog};
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

/// How long one round of backend pings answers `/readyz`: probes and anonymous callers never cost
/// more than one ping of each backend a second, however many of them there are.
pub const READINESS_CACHE_TTL: Duration = Duration::from_secs(1);

/// The last readiness pings, shared by every caller for [`READINESS_CACHE_TTL`]. Callers that
/// arrive while a round is running wait for it instead of starting their own.
#[derive(Debug, Default)]
pub struct ReadinessCache {
    last: tokio::sync::Mutex<Option<(Instant, Arc<Vec<BackendStatus>>)>>,
}

impl ReadinessCache {
    async fn statuses(&self, catalog: &Catalog) -> Arc<Vec<BackendStatus>> {
        let mut last = self.last.lock().await;
        if let Some((at, statuses)) = last.as_ref()
            && at.elapsed() < READINESS_CACHE_TTL
        {
            return Arc::clone(statuses);
        }
        let statuses = Arc::new(catalog.readiness().await);
        // The details (which backend, where it points, why) go to the log, once per round.
        for s in statuses.iter().filter(|s| !s.ok) {
            tracing::warn!(backend = %s.name, r#type = s.type_name, error = s.error.as_deref().unwrap_or_default(), "storage backend not ready");
        }
        *last = Some((Instant::now(), Arc::clone(&statuses)));
        statuses
    }
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

/// `GET /readyz` (public): 200 `{"status": "ready"}` when every storage backend answers a ping, 503
/// `{"status": "not_ready"}` when one does not. It names nothing: which backend failed, where it
/// points and why are in the log and in the authenticated `/v1/readiness`.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let statuses = state.readiness.statuses(&state.catalog).await;
    if statuses.iter().all(|s| s.ok) {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready" }))
    }
}

/// `GET /v1/readiness` (authenticated, and under the route policy like every other route): the
/// same answer as `/readyz` with each backend's type, status, ping latency and error.
pub(crate) async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    let statuses = state.readiness.statuses(&state.catalog).await;
    let ready = statuses.iter().all(|s| s.ok);
    let backends: serde_json::Map<String, serde_json::Value> = statuses
        .iter()
        .map(|s| {
            let report = BackendReport {
                kind: s.type_name,
                status: if s.ok { "ok" } else { "unavailable" },
                latency_ms: s.latency.as_millis(),
                error: s.error.clone(),
            };
            (s.name.clone(), serde_json::to_value(report).unwrap_or_default())
        })
        .collect();
    let body = json!({ "status": if ready { "ready" } else { "not_ready" }, "backends": backends });
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
