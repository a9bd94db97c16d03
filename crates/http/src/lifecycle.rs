//! Shutdown as requests see it. When shutdown begins ([`Lifecycle::begin_shutdown`]), a request
//! arriving on a connection that is still open is answered 503 `service_unavailable` with
//! `Connection: close` and `Retry-After` (the client retries elsewhere; the connection closes so
//! the server can finish); requests already in progress go on. When the in-flight grace ends
//! ([`Lifecycle::cut`]), requests still waiting for their handler are answered the same 503 rather
//! than having their connection reset. A response whose body is already streaming cannot be
//! replaced; it is cut when the server stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError as _};

use tokio_util::sync::CancellationToken;

use crate::ApiError;

/// The server's shutdown state, shared by the middleware, readiness and the server's shutdown
/// sequence. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Lifecycle {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    draining: AtomicBool,
    cut: CancellationToken,
}

impl Lifecycle {
    /// Shutdown began: new requests get 503 with `Connection: close`; readiness answers 503.
    pub fn begin_shutdown(&self) {
        self.inner.draining.store(true, Ordering::SeqCst);
    }

    /// Whether shutdown began.
    pub fn shutting_down(&self) -> bool {
        self.inner.draining.load(Ordering::SeqCst)
    }

    /// The in-flight grace is over: requests still waiting for their handler are answered 503.
    pub fn cut(&self) {
        self.begin_shutdown();
        self.inner.cut.cancel();
    }
}

/// The 503 of a request refused at shutdown: the one error shape, `Retry-After`, and
/// `Connection: close`.
#[derive(Debug)]
struct Refusal(ApiError);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl actix_web::ResponseError for Refusal {
    fn status_code(&self) -> actix_web::http::StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = self.0.error_response();
        res.head_mut().set_connection_type(ConnectionType::Close);
        res
    }
}

fn refusal(message: &str) -> Refusal {
    Refusal(ApiError::unavailable(message))
}

/// The middleware ([`crate::app`] installs it outside authentication).
pub async fn refuse_when_shutting_down(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(lifecycle) = req.app_data::<actix_web::web::Data<crate::AppState>>().map(|s| s.lifecycle.clone()) else {
        return next.call(req).await;
    };
    if lifecycle.shutting_down() {
        tracing::debug!(path = %req.path(), "request refused: shutting down");
        let res = refusal("the server is shutting down; retry on another connection").error_response();
        return Ok(req.into_response(res));
    }
    let path = req.path().to_owned();
    tokio::select! {
        biased;
        res = next.call(req) => res,
        () = lifecycle.inner.cut.cancelled() => {
            // The request was moved into the handler's future, which is dropped here: the
            // answer goes out as an error response (same shape, same headers).
            tracing::info!(path = %path, "request still in progress when the shutdown grace ended; answered 503");
            Err(refusal("the server shut down before the request finished; retry").into())
        }
    }
}
