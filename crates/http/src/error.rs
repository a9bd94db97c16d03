//! The one error shape of every route: `{"error": {"message", "type", "code", "param"}}`, as
//! OpenAI's API has it. 5xx bodies carry an opaque message; the cause goes to the log, once, here.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    status: StatusCode,
    kind: &'static str,
    code: &'static str,
    message: String,
    param: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    code: &'a str,
    param: Option<&'a str>,
}

impl ApiError {
    /// 400: the request is malformed; `param` names the offending field when there is one.
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request_error", "invalid_request", message, param)
    }

    /// 401: the caller is not authenticated; `message` says what is expected.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "authentication_error", "unauthorized", message, None)
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission_error", "forbidden", message, None)
    }

    /// 404: no such resource, or not one the caller may see.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found_error", "not_found", message, None)
    }

    /// 405: the route exists but not with this method.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed", message, None)
    }

    /// 413: the body is larger than the server accepts.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "invalid_request_error", "payload_too_large", message, None)
    }

    /// 501: the feature is switched off in this server's config.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_IMPLEMENTED, "not_implemented", "not_implemented", message, None)
    }

    /// 503: a dependency (database, provider) is not available right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "service_unavailable", message, None)
    }

    /// 500 with an opaque message; `cause` is logged, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error.message = %cause, "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal_error", "internal server error", None)
    }

    /// The stable error code (`invalid_request`, `upstream_timeout`, ...), also the `error.type`
    /// of spans and metrics.
    pub fn code(&self) -> &'static str {
        self.code
    }

    /// The status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The error as the JSON value of an SSE error event: `{"error": {...}}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({"error": {
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "param": self.param,
        }})
    }

    fn new(
        status: StatusCode,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
        param: Option<&str>,
    ) -> Self {
        Self { status, kind, code, message: message.into(), param: param.map(str::to_owned) }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if self.status == StatusCode::UNAUTHORIZED {
            // RFC 6750: tell the client which scheme is expected.
            res.insert_header((actix_web::http::header::WWW_AUTHENTICATE, "Bearer"));
        }
        res.json(Body {
            error: Inner { message: &self.message, kind: self.kind, code: self.code, param: self.param.as_deref() },
        })
    }
}

impl From<ferrostack_authz::AuthError> for ApiError {
    fn from(e: ferrostack_authz::AuthError) -> Self {
        use ferrostack_authz::AuthError as E;
        // Exhaustive on purpose: a new kind of authentication failure must choose its status here.
        match &e {
            E::MissingCredentials(_) | E::InvalidHeaderFormat | E::Rejected(_) => Self::unauthorized(e.message()),
            E::Unavailable | E::Timeout => Self::unavailable(e.message()),
        }
    }
}

impl From<ferrostack_providers::ProviderError> for ApiError {
    fn from(e: ferrostack_providers::ProviderError) -> Self {
        use ferrostack_providers::ProviderError as E;
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
        // Exhaustive on purpose: a new kind of provider failure must choose its shape here.
        match &e {
            E::ModelNotFound { .. } => {
                Self::new(StatusCode::NOT_FOUND, "not_found_error", "model_not_found", e.to_string(), Some("model"))
            }
            E::Unreachable { .. } | E::InvalidResponse { .. } | E::Broken { .. } => {
                tracing::warn!(error = %e, provider = e.provider().unwrap_or_default(), "upstream failure");
                Self::new(status, "upstream_error", "upstream_unavailable", e.to_string(), None)
            }
            E::Timeout { .. } => {
                tracing::warn!(provider = e.provider().unwrap_or_default(), "upstream timeout");
                Self::new(status, "upstream_error", "upstream_timeout", e.to_string(), None)
            }
            E::Upstream { param, status: upstream, .. } => {
                // A 4xx is the client's problem, passed on as the provider worded it; anything else
                // is the provider's, reported as a bad gateway.
                let kind = if (400..500).contains(upstream) { "invalid_request_error" } else { "upstream_error" };
                Self::new(status, kind, "upstream_error", e.to_string(), param.as_deref())
            }
            E::Config { .. } | E::Client { .. } => Self::internal(&e),
        }
    }
}

impl From<ferrostack_inference_store::Error> for ApiError {
    fn from(e: ferrostack_inference_store::Error) -> Self {
        use ferrostack_inference_store::ErrorKind as K;
        // Exhaustive on purpose: a new kind of store failure must choose its status here.
        match e.kind() {
            K::BadRequest => Self::invalid_request(e.to_string(), e.param()),
            K::NotFound => Self::not_found(e.to_string()),
            K::Forbidden => Self::forbidden(e.to_string()),
            K::Unavailable => Self::unavailable(e.to_string()),
            K::Internal => Self::internal(&e),
        }
    }
}
