//! What one request, and all in-flight requests together, may cost: `server.limits`.
//!
//! Two middlewares:
//! - [`check_head`] (before authentication): the request target and the headers are within
//!   their limits (414, 431), so an oversized head is refused before anything else runs;
//! - [`bound_body`] (after authentication, so that an unauthenticated caller never holds room
//!   in the budget): the body is read under a deadline (408), within the largest body size
//!   (413), and only while the process-wide budget of in-flight body bytes has room for it (503
//!   `server_busy` with `Retry-After` after `budget_wait_ms`). A body that declares its length
//!   reserves it before a byte is read; a chunked body reserves each chunk as it arrives. The
//!   room is given back when the handler has answered (for a stream: when its head is sent), as
//!   the body, its parsed form and the upstream copy live until then.
//!
//! actix-http itself answers a few malformed requests before any middleware runs; see
//! docs/configuration.md (`server.limits`) for what a client sees then.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::{ConnectionType, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage as _, ResponseError, web};
use bytes::Bytes;
use ferrostack_config::LimitsConfig;
use futures_util::StreamExt as _;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{ApiError, AppState, Code};

/// The limits in force and the budget of in-flight body bytes, shared by every worker.
#[derive(Debug, Clone)]
pub struct Limits {
    config: LimitsConfig,
    budget: Arc<Semaphore>,
}

impl Default for Limits {
    fn default() -> Self {
        Self::new(&LimitsConfig::default())
    }
}

impl Limits {
    /// The limits of `config` with an empty budget.
    pub fn new(config: &LimitsConfig) -> Self {
        let permits = config.max_inflight_body_bytes.min(Semaphore::MAX_PERMITS);
        Self { config: config.clone(), budget: Arc::new(Semaphore::new(permits)) }
    }

    /// The configured limits.
    pub fn config(&self) -> &LimitsConfig {
        &self.config
    }

    /// Bytes of the budget not held by any request right now.
    pub fn budget_available(&self) -> usize {
        self.budget.available_permits()
    }

    /// Reserve `bytes` of the budget, waiting up to `budget_wait_ms`.
    async fn reserve(&self, bytes: usize) -> Result<Option<OwnedSemaphorePermit>, Hit> {
        if bytes == 0 {
            return Ok(None);
        }
        let n = u32::try_from(bytes).map_err(|_| Hit::TooLarge)?;
        let wait = Duration::from_millis(self.config.budget_wait_ms);
        match tokio::time::timeout(wait, self.budget.clone().acquire_many_owned(n)).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            // The semaphore is never closed; a timeout is the budget staying full.
            Ok(Err(_)) | Err(_) => Err(Hit::Busy),
        }
    }
}

/// A limit a request ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hit {
    TooLarge,
    Timeout,
    Busy,
}

impl Hit {
    fn error(self, limits: &LimitsConfig) -> ApiError {
        match self {
            Hit::TooLarge => ApiError::payload_too_large(format!(
                "request body is larger than the limit of {} bytes (server.limits.max_body_bytes)",
                limits.max_body_bytes
            )),
            Hit::Timeout => ApiError::new(
                Code::RequestTimeout,
                format!(
                    "the request body did not arrive within {} seconds (server.limits.body_read_timeout_seconds)",
                    limits.body_read_timeout_seconds
                ),
            ),
            Hit::Busy => ApiError::new(
                Code::ServerBusy,
                "the server is busy with other request bodies; retry after the time in Retry-After",
            ),
        }
    }
}

/// 414 when the request target is too long, 431 when the headers are too large.
pub(crate) async fn check_head(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let limits = req.app_data::<web::Data<AppState>>().map(|s| s.limits.config().clone()).unwrap_or_default();
    if let Some(err) = head_problem(&req, &limits) {
        tracing::info!(code = err.code().as_str(), reason = %err, "request refused");
        let mut res = err.error_response();
        res.head_mut().set_connection_type(ConnectionType::Close);
        return Ok(req.into_response(res));
    }
    next.call(req).await
}

fn head_problem(req: &ServiceRequest, limits: &LimitsConfig) -> Option<ApiError> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > limits.max_uri_bytes {
        return Some(ApiError::new(
            Code::UriTooLong,
            format!(
                "the request target is {target} bytes; the limit is {} (server.limits.max_uri_bytes)",
                limits.max_uri_bytes
            ),
        ));
    }
    let headers: usize = req.headers().iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers > limits.max_header_bytes {
        return Some(ApiError::new(
            Code::HeadersTooLarge,
            format!(
                "the request headers are {headers} bytes; the limit is {} (server.limits.max_header_bytes)",
                limits.max_header_bytes
            ),
        ));
    }
    None
}

/// What the body stream and the middleware share: the room held in the budget and the limit the
/// body ran into, if any. One request, one worker thread: `Rc` and `RefCell` suffice.
#[derive(Default)]
struct BodyState {
    held: Option<OwnedSemaphorePermit>,
    hit: Option<Hit>,
    /// The connection's payload, kept past a failed read: while it is alive when the answer is
    /// sent, actix closes the connection instead of draining the rest of a chunked body (which a
    /// trickling client would never finish).
    unread: Option<Payload>,
}

impl BodyState {
    fn hold(&mut self, permit: Option<OwnedSemaphorePermit>) {
        match (&mut self.held, permit) {
            (Some(held), Some(more)) => held.merge(more),
            (held @ None, more) => *held = more,
            (Some(_), None) => {}
        }
    }
}

/// Read the body under the limits and the budget; see the module documentation.
pub(crate) async fn bound_body(
    mut req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(limits) = req.app_data::<web::Data<AppState>>().map(|s| s.limits.clone()) else {
        return next.call(req).await;
    };
    let cfg = limits.config();
    let declared = match req.headers().get(header::CONTENT_LENGTH) {
        Some(v) => match v.to_str().ok().and_then(|s| s.trim().parse::<u64>().ok()) {
            Some(n) => Some(n),
            None => {
                let err = ApiError::invalid_request("content-length must be a number of bytes", None);
                return Ok(refuse(req, &err));
            }
        },
        None => None,
    };
    let chunked = req
        .headers()
        .get(header::TRANSFER_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if declared.is_none_or(|n| n == 0) && !chunked {
        // No body (actix reads none without a length or chunked framing).
        return next.call(req).await;
    }
    let state = Rc::new(RefCell::new(BodyState::default()));
    if let Some(n) = declared.filter(|_| !chunked) {
        let n = usize::try_from(n).unwrap_or(usize::MAX);
        if n > cfg.max_body_bytes {
            return Ok(refuse(req, &Hit::TooLarge.error(cfg)));
        }
        match limits.reserve(n).await {
            Ok(permit) => state.borrow_mut().hold(permit),
            Err(hit) => {
                tracing::info!(bytes = n, code = "server_busy", "request refused: the body budget is full");
                return Ok(refuse(req, &hit.error(cfg)));
            }
        }
    }
    let payload = req.take_payload();
    req.set_payload(bounded(payload, limits.clone(), Rc::clone(&state), chunked));
    let res = next.call(req).await?;
    let hit = state.borrow_mut().hit.take();
    match hit {
        // The handler saw a failed body read and answered its own error: answer the limit's.
        Some(hit) => {
            tracing::info!(code = ?hit, "request body refused");
            let (req, _) = res.into_parts();
            let unread = state.borrow_mut().unread.take();
            Ok(refuse_parts(req, &hit.error(cfg), unread))
        }
        None => Ok(res),
    }
    // `state` (and the room it holds) is dropped here, once the response is built.
}

fn refuse(req: ServiceRequest, err: &ApiError) -> ServiceResponse<BoxBody> {
    let mut res = err.error_response();
    // The body was not (fully) read: the connection cannot carry another request.
    res.head_mut().set_connection_type(ConnectionType::Close);
    req.into_response(res)
}

fn refuse_parts(req: actix_web::HttpRequest, err: &ApiError, unread: Option<Payload>) -> ServiceResponse<BoxBody> {
    let mut res = err.error_response();
    res.head_mut().set_connection_type(ConnectionType::Close);
    let res = match unread {
        Some(payload) => res.map_body(|_, body| BoxBody::new(Holding { body, _payload: payload })),
        None => res,
    };
    ServiceResponse::new(req, res)
}

/// An answer's body that keeps the request's unread payload alive until it is sent.
struct Holding {
    body: BoxBody,
    _payload: Payload,
}

impl actix_web::body::MessageBody for Holding {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> actix_web::body::BodySize {
        self.body.size()
    }

    fn poll_next(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Bytes, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_next(cx)
    }
}

/// The payload, read under the deadline, counted against `max_body_bytes`, and (for chunked
/// bodies) reserved in the budget chunk by chunk.
fn bounded(payload: Payload, limits: Limits, state: Rc<RefCell<BodyState>>, reserve_chunks: bool) -> Payload {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(limits.config().body_read_timeout_seconds);
    let max = limits.config().max_body_bytes;
    struct Read {
        payload: Payload,
        seen: usize,
        done: bool,
    }
    let read = Read { payload, seen: 0, done: false };
    let stream = futures_util::stream::unfold(read, move |mut read| {
        let limits = limits.clone();
        let state = Rc::clone(&state);
        async move {
            if read.done {
                return None;
            }
            let fail = |read: Read, hit: Hit, err: PayloadError| {
                let mut st = state.borrow_mut();
                st.hit = Some(hit);
                st.unread = Some(read.payload);
                Some((Err(err), Read { payload: Payload::None, seen: read.seen, done: true }))
            };
            let chunk: Bytes = match tokio::time::timeout_at(deadline, read.payload.next()).await {
                Err(_) => {
                    let err = PayloadError::Io(io::Error::new(io::ErrorKind::TimedOut, "request body read timed out"));
                    return fail(read, Hit::Timeout, err);
                }
                Ok(None) => return None,
                Ok(Some(Err(e))) => return Some((Err(e), Read { done: true, ..read })),
                Ok(Some(Ok(chunk))) => chunk,
            };
            read.seen = read.seen.saturating_add(chunk.len());
            if read.seen > max {
                return fail(read, Hit::TooLarge, PayloadError::Overflow);
            }
            if reserve_chunks {
                match limits.reserve(chunk.len()).await {
                    Ok(permit) => state.borrow_mut().hold(permit),
                    Err(hit) => {
                        let err = PayloadError::Io(io::Error::other("the request body budget is full"));
                        return fail(read, hit, err);
                    }
                }
            }
            Some((Ok(chunk), read))
        }
    });
    let boxed: std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<Bytes, PayloadError>>>> = Box::pin(stream);
    Payload::from(boxed)
}
