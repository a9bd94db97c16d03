//! Shutdown as requests see it. When shutdown begins ([`Lifecycle::begin_shutdown`]), a request
//! arriving on a connection that is still open is answered 503 `service_unavailable` with
//! `Connection: close` and `Retry-After` (the client retries elsewhere; the connection closes so
//! the server can finish); requests already in progress go on, and their answers carry
//! `Connection: close` too. The server keeps open connections open (it only stops accepting new
//! ones) until they have all closed ([`Lifecycle::connections_closed`], counted through
//! [`Lifecycle::connection_opened`]) or the grace ends: closing an idle keep-alive connection
//! from the server side races with a request the client is sending on it, which would then get
//! a reset instead of an answer. When the in-flight grace ends
//! ([`Lifecycle::cut`]), requests still waiting for their handler are answered the same 503 rather
//! than having their connection reset. A response whose body is already streaming cannot be
//! replaced; it is cut when the server stops.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::{HttpResponse, ResponseError as _};

use tokio::sync::Notify;
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
    /// Open client connections (see [`ConnectionGuard`]).
    connections: AtomicUsize,
    /// Woken when `connections` drops to zero.
    all_closed: Notify,
}

/// Held by a client connection for as long as it is open (the server puts it in the
/// connection's data when the connection is accepted; dropping the connection drops it).
#[derive(Debug)]
pub struct ConnectionGuard(Lifecycle);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        if self.0.inner.connections.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.inner.all_closed.notify_waiters();
        }
    }
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

    /// A client connection was accepted; it counts as open until the guard is dropped.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.inner.connections.fetch_add(1, Ordering::SeqCst);
        ConnectionGuard(self.clone())
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.inner.connections.load(Ordering::SeqCst)
    }

    /// Resolves once no client connection is open.
    pub async fn connections_closed(&self) {
        loop {
            let notified = self.inner.all_closed.notified();
            tokio::pin!(notified);
            // Registered before the check, so a close between the check and the wait is seen.
            notified.as_mut().enable();
            if self.open_connections() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// Resolves when the in-flight grace is over ([`Lifecycle::cut`]): a stream still being
    /// relayed then ends itself (an error event) and stores what it produced, before the server
    /// closes its connection.
    pub(crate) async fn cut_reached(&self) {
        self.inner.cut.cancelled().await;
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
        res = next.call(req) => {
            // Shutdown began while the request was in progress: its answer closes the
            // connection, so the server need not wait for the client's keep-alive to end.
            let mut res = res?;
            if lifecycle.shutting_down() {
                res.response_mut().head_mut().set_connection_type(ConnectionType::Close);
            }
            Ok(res)
        }
        () = lifecycle.inner.cut.cancelled() => {
            // The request was moved into the handler's future, which is dropped here: the
            // answer goes out as an error response (same shape, same headers).
            tracing::info!(path = %path, "request still in progress when the shutdown grace ended; answered 503");
            Err(refusal("the server shut down before the request finished; retry").into())
        }
    }
}
