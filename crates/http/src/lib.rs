//! ferrostack's HTTP surface: the actix-web app. Handlers only map requests to domain calls and
//! results to responses; every error leaves in the one shape of [`ApiError`].

mod auth;
mod error;
mod front;
mod lifecycle;
mod limits;
mod list;
mod openapi;
mod routes;
mod telemetry;
mod text;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::{ErrorHandlerResponse, ErrorHandlers, from_fn};
use actix_web::{App, HttpRequest, HttpResponse, ResponseError, web};
use std::sync::Arc;

use ferrostack_authz::Authenticator;
use ferrostack_catalog::Catalog;
use ferrostack_config::{AccessRule, RouteRule};
use ferrostack_conversations::ConversationStore;
use ferrostack_inference_store::InferenceStore;
use ferrostack_models::ModelRegistry;
use ferrostack_providers::{ModelRoute, ProviderError, Providers};
use ferrostack_responses::ResponseStore;
use tokio_util::task::TaskTracker;

pub use auth::{Caller, PUBLIC_PATHS};
pub use error::{ApiError, Code, RETRY_AFTER_SECONDS};
pub use front::{Front, FrontLimits};
pub use lifecycle::{ConnectionGuard, Lifecycle};
pub use limits::Limits;
pub use list::{ListQuery, ListSpec, MAX_METADATA_FILTERS, Order, Page};
pub use openapi::document as openapi_document;
pub use routes::health::{READINESS_CACHE_TTL, ReadinessCache};
pub use telemetry::{HttpTelemetry, REQUEST_ID_HEADER, RequestId};

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Storage backends, opened once.
    pub catalog: Catalog,
    /// The version reported by `/v1/version`.
    pub version: &'static str,
    /// How callers are authenticated; `None` when authentication is off.
    pub authenticator: Option<Authenticator>,
    /// `server.auth.route_policy`, applied by the middleware (empty = every route allowed).
    pub route_policy: Arc<Vec<RouteRule>>,
    /// `server.auth.access_policy` (empty = the default policy), for resources that are not rows
    /// (models); the stores hold their own compiled copy.
    pub access_policy: Arc<Vec<AccessRule>>,
    /// Models and their upstream providers.
    pub providers: Arc<Providers>,
    /// The model registry (config, registered and discovered models) under the access policy.
    pub models: ModelRegistry,
    /// Stored chat completions; `None` when `storage.stores.inference` is null.
    pub completions: Option<InferenceStore>,
    /// Conversations and their items; `None` when `storage.stores.conversations` is null.
    pub conversations: Option<ConversationStore>,
    /// Stored responses (with the conversations store they append to); `None` when
    /// `storage.stores.responses` is null.
    pub responses: Option<ResponseStore>,
    /// Upstream calls and storing run here, on the server's main runtime, so that neither a client
    /// leaving nor an actix worker stopping cuts them short; shutdown waits for them.
    pub tasks: TaskTracker,
    /// The server's main runtime.
    pub runtime: tokio::runtime::Handle,
    /// Request spans and metrics ([`HttpTelemetry::off`] when export is off).
    pub telemetry: HttpTelemetry,
    /// The last readiness pings, shared by `/readyz` callers for a second.
    pub readiness: Arc<ReadinessCache>,
    /// Shutdown as requests see it (503 with `Connection: close` once it began).
    pub lifecycle: Lifecycle,
    /// `server.limits` and the budget of in-flight body bytes.
    pub limits: Limits,
}

impl AppState {
    /// The route of `model`, when it exists and the caller may read it (config, registered or
    /// discovered). A model the caller may not read is reported exactly as a missing one (404
    /// `model_not_found`), before anything goes upstream: its existence does not leak.
    pub(crate) async fn resolve_model(&self, model: &str, caller: &Caller) -> Result<ModelRoute, ApiError> {
        match self.models.resolve(model, caller.0.as_ref()).await {
            Ok(route) => Ok(route),
            Err(ferrostack_models::Error::NotFound { .. }) => {
                Err(ApiError::from(ProviderError::ModelNotFound { model: model.to_owned() }))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Largest JSON body accepted by default, in bytes (`server.limits.max_body_bytes`); larger
/// bodies get 413.
pub const MAX_JSON_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The whole app: ferrostack's routes with its middlewares, in the order they must run. Build one
/// per actix worker: `HttpServer::new(move || ferrostack_http::app(state.clone()))`.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        // Outermost last: errors from authentication come out in the one error shape too, and
        // the request span wraps both (authentication is part of the request's time, and the
        // span records the status the client actually got).
        // The body budget is taken after authentication: an unauthenticated caller never holds
        // room in it. The head limits come first: an oversized head is refused before anything.
        .wrap(from_fn(limits::bound_body))
        .wrap(from_fn(auth::authenticate))
        // Outside authentication: once shutdown began, nothing is authenticated or routed.
        .wrap(from_fn(lifecycle::refuse_when_shutting_down))
        .wrap(from_fn(limits::check_head))
        .wrap(error_shape())
        .wrap(from_fn(telemetry::trace_request))
        .configure(configure(state))
}

/// Register ferrostack's routes and error handling on an actix `App`.
fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        let max_body = state.limits.config().max_body_bytes;
        cfg.app_data(web::Data::new(state))
            .app_data(web::JsonConfig::default().limit(max_body).error_handler(json_error))
            .app_data(web::PayloadConfig::default().limit(max_body))
            .app_data(web::QueryConfig::default().error_handler(query_error))
            .app_data(web::PathConfig::default().error_handler(path_error))
            .route("/v1/health", web::get().to(routes::health::health))
            .route("/v1/version", web::get().to(routes::health::version))
            .route("/readyz", web::get().to(routes::health::readyz))
            .route("/v1/readiness", web::get().to(routes::health::readiness))
            .route("/openapi.json", web::get().to(openapi::serve))
            .configure(routes::chat::routes)
            .configure(routes::models::routes)
            .configure(routes::conversations::routes)
            .configure(routes::responses::routes)
            .default_service(web::to(not_found));
    }
}

/// Middleware that rewrites actix's own bodiless error responses (e.g. 405 from a route guard)
/// into the one error shape.
fn error_shape() -> ErrorHandlers<actix_web::body::BoxBody> {
    ErrorHandlers::new().default_handler(|res: ServiceResponse| {
        let has_json = res
            .response()
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
        if has_json {
            return Ok(ErrorHandlerResponse::Response(res.map_into_left_body()));
        }
        let status = res.status();
        let message = status.canonical_reason().unwrap_or("error").to_owned();
        let err = match status.as_u16() {
            404 => ApiError::not_found(message),
            405 => ApiError::method_not_allowed(message),
            408 => ApiError::new(Code::RequestTimeout, message),
            413 => ApiError::payload_too_large(message),
            414 => ApiError::new(Code::UriTooLong, message),
            431 => ApiError::new(Code::HeadersTooLarge, message),
            s if s >= 500 => ApiError::internal(&format!("actix answered {status} without a body")),
            _ => ApiError::invalid_request(message, None),
        };
        let (req, _) = res.into_parts();
        let res = ServiceResponse::new(req, err.error_response());
        Ok(ErrorHandlerResponse::Response(res.map_into_right_body()))
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::not_found(format!("no route for {} {}", req.method(), req.path())))
}

fn json_error(err: actix_web::error::JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as E;
    match err {
        E::OverflowKnownLength { length, limit } => {
            ApiError::payload_too_large(format!("request body is {length} bytes; the limit is {limit}")).into()
        }
        E::Overflow { limit } => {
            ApiError::payload_too_large(format!("request body is larger than the limit of {limit} bytes")).into()
        }
        E::ContentType => {
            ApiError::invalid_request("request body must be JSON (content-type: application/json)", None).into()
        }
        E::Payload(e) => payload_error(&e).into(),
        other => ApiError::invalid_request(format!("invalid JSON body: {other}"), None).into(),
    }
}

/// A request body that could not be read: named by what broke, not as a JSON error.
pub(crate) fn payload_error(err: &actix_web::error::PayloadError) -> ApiError {
    use actix_web::error::PayloadError as P;
    let message = match err {
        P::Incomplete(_) => {
            "the request body could not be read: it ended before its declared length, or its chunked encoding is broken"
                .to_owned()
        }
        P::EncodingCorrupted => "the request body could not be read: its content encoding is corrupted".to_owned(),
        P::Overflow => "the request body is larger than allowed".to_owned(),
        other => format!("the request body could not be read: {other}"),
    };
    ApiError::invalid_request(message, None)
}

fn query_error(err: actix_web::error::QueryPayloadError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid_request(format!("invalid query string: {err}"), None).into()
}

fn path_error(err: actix_web::error::PathError, _req: &HttpRequest) -> actix_web::Error {
    ApiError::invalid_request(format!("invalid path: {err}"), None).into()
}
