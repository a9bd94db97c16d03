//! Authentication and route authorization, as one middleware, and the [`Caller`] extractor that
//! hands its result to handlers.

use std::future::{Ready, ready};

use actix_web::body::BoxBody;
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::http::header;
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest, ResponseError, web};
use ferrostack_authz::{RequestInfo, User, is_route_allowed};

use crate::{ApiError, AppState};

/// Paths served without authentication: probes and version checks carry no credentials, and the
/// API description says nothing about any tenant.
pub const PUBLIC_PATHS: &[&str] = &["/v1/health", "/v1/version", "/readyz", "/openapi.json"];

/// Who is calling: `Some(user)` when authenticated, `None` when authentication is off (or the
/// path is public). Handlers take it as an argument and pass it to the authorized store layer.
#[derive(Debug, Clone)]
pub struct Caller(pub Option<User>);

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Fail closed: without the middleware's verdict nobody is treated as anonymous (which
        // would mean "authentication off" and allow everything).
        ready(
            req.extensions()
                .get::<Caller>()
                .cloned()
                .ok_or_else(|| ApiError::internal(&"the authentication middleware is not installed on this route")),
        )
    }
}

/// The middleware: authenticate (unless the path is public or authentication is off), then apply
/// the route policy (to every path, public ones included, as the reference does), then record the
/// [`Caller`] for handlers. [`crate::app`] installs it.
pub async fn authenticate(
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        let err = ApiError::internal(&"application state missing in the authentication middleware");
        return Ok(req.into_response(err.error_response()));
    };
    // Decide on the path the router matches: actix routes on the percent-decoded path (unreserved
    // characters decoded, `%2F`, `%25` and `%2B` kept), so a policy that looked at the raw path
    // could be walked around with `/v1/%63hat/completions`.
    let path = req.match_info().get_ref().path().to_owned();
    // Two credentials are ambiguous: which one a proxy in front and ferrostack each honour could
    // differ. Refused, whether or not authentication is on.
    if req.headers().get_all(header::AUTHORIZATION).nth(1).is_some() {
        tracing::info!(path = %path, "request refused: more than one Authorization header");
        let err = ApiError::invalid_request("send one Authorization header, not several", None);
        return Ok(req.into_response(err.error_response()));
    }
    if let Some(problem) = path_problem(&path) {
        tracing::info!(path = %path, problem, "request refused: ambiguous path");
        return Ok(
            req.into_response(ApiError::invalid_request(format!("invalid path: {problem}"), None).error_response())
        );
    }
    let public = PUBLIC_PATHS.contains(&path.as_str());
    let user = match (&state.authenticator, public) {
        (Some(authenticator), false) => match authenticator.authenticate(&request_info(&req)).await {
            Ok(user) => Some(user),
            Err(e) => {
                let err = ApiError::from(e);
                // A refusal is worth a line here; an identity provider that is down (5xx) is
                // logged once, by `error_response`.
                if !err.status().is_server_error() {
                    tracing::info!(path = %path, status = err.status().as_u16(), reason = %err, "request not authenticated");
                }
                return Ok(req.into_response(err.error_response()));
            }
        },
        _ => None,
    };
    if !state.route_policy.is_empty() && !is_route_allowed(&state.route_policy, &path, user.as_ref()) {
        let err = ApiError::forbidden(format!("Access denied: insufficient permissions for route {path}"));
        return Ok(req.into_response(err.error_response()));
    }
    if let Some(u) = &user {
        // The request span (the current one: `trace_request` wraps this middleware).
        tracing::Span::current().record("enduser.id", u.principal.as_str());
    }
    req.extensions_mut().insert(Caller(user));
    next.call(req).await
}

/// Why a (decoded) path is refused outright: dot segments, which a proxy in front of ferrostack
/// may resolve differently from the router (and from the route policy), and NUL characters.
fn path_problem(path: &str) -> Option<&'static str> {
    if path.split('/').any(|segment| segment == "." || segment == "..") {
        return Some("'.' and '..' path segments are not allowed");
    }
    if path.contains('\0') {
        return Some("the path contains a NUL character");
    }
    None
}

fn request_info(req: &ServiceRequest) -> RequestInfo {
    let headers = req
        .headers()
        .iter()
        .filter_map(|(name, value)| value.to_str().ok().map(|v| (name.as_str().to_owned(), v.to_owned())))
        .collect();
    let query =
        web::Query::<Vec<(String, String)>>::from_query(req.query_string()).map(|q| q.into_inner()).unwrap_or_default();
    let path = req.match_info().get_ref().path().to_owned();
    let peer = req.peer_addr().map(|a| a.ip());
    RequestInfo { method: req.method().as_str().to_owned(), path, headers, query, peer }
}
