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

/// Why the server is not ready, as stable codes that name no backend, host or database.
fn reasons(state: &AppState, statuses: &[BackendStatus]) -> Vec<&'static str> {
    let mut reasons = Vec::new();
    if state.lifecycle.shutting_down() {
        reasons.push("shutting_down");
    }
    if statuses.iter().any(|s| !s.ok) {
        reasons.push("database_unavailable");
    }
    if let Some(store) = &state.completions {
        let health = store.writer_health();
        if health.stalled {
            reasons.push("writer_stalled");
        }
        if health.full() {
            reasons.push("write_queue_full");
        }
    }
    reasons
}

/// `GET /readyz` (public): 200 `{"status": "ready"}` when every storage backend answers a ping,
/// the write queue has room and its writers make progress, and the server is not shutting down;
/// otherwise 503 `{"status": "not_ready", "reasons": [...]}` with codes from
/// `database_unavailable`, `writer_stalled`, `write_queue_full` and `shutting_down`. It names
/// nothing more: which backend failed, where it points and why are in the log and in the
/// authenticated `/v1/readiness`.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let statuses = state.readiness.statuses(&state.catalog).await;
    let reasons = reasons(&state, &statuses);
    if reasons.is_empty() {
        HttpResponse::Ok().json(json!({ "status": "ready" }))
    } else {
        HttpResponse::ServiceUnavailable().json(json!({ "status": "not_ready", "reasons": reasons }))
    }
}

/// `GET /v1/readiness` (authenticated, and under the route policy like every other route): the
/// same answer as `/readyz` with each backend's type, status, ping latency and error, and the
/// write queue's depth, capacity, oldest row's age and progress.
pub(crate) async fn readiness(state: web::Data<AppState>) -> HttpResponse {
    let statuses = state.readiness.statuses(&state.catalog).await;
    let reasons = reasons(&state, &statuses);
    let ready = reasons.is_empty();
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
    let mut body = json!({ "status": if ready { "ready" } else { "not_ready" }, "backends": backends });
    if !ready {
        body["reasons"] = json!(reasons);
    }
    if let Some(store) = &state.completions {
        let h = store.writer_health();
        let status = if h.stalled {
            "stalled"
        } else if h.full() {
            "full"
        } else {
            "ok"
        };
        body["writers"] = json!({ h.table: {
            "status": status,
            "queue_depth": h.depth,
            "queue_capacity": h.capacity,
            "queue_available": h.available,
            "queue_bytes": h.bytes,
            "queue_max_bytes": h.max_bytes,
            "oldest_row_age_ms": h.oldest_age.as_millis(),
            "since_progress_ms": h.since_progress.as_millis(),
        }});
    }
    if ready { HttpResponse::Ok().json(body) } else { HttpResponse::ServiceUnavailable().json(body) }
}
