//! The one error shape of every route: `{"error": {"message", "type", "code", "param"}}`, as
//! OpenAI's API has it, driven by one code table ([`Code`]). 5xx bodies carry an opaque message
//! where the cause could reveal internals; the cause goes to the log, once, when the error is
//! answered (`error_response`, or [`ApiError::to_sse_event`] mid-stream).

mod codes;
mod from;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

pub use codes::{Code, RETRY_AFTER_SECONDS};

/// An error answered to a client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    code: Code,
    /// Only [`Code::UpstreamRejected`] differs from `code.status()` (the provider's own 4xx).
    status: StatusCode,
    message: String,
    param: Option<String>,
    /// For the log only: what went wrong behind an opaque message.
    cause: Option<String>,
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
    /// An error with `code`'s status; `message` is sent to the client.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self { code, status: code.status(), message: message.into(), param: None, cause: None }
    }

    /// Name the request parameter at fault (OpenAI's `param`).
    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    /// Keep `cause` for the log (never sent).
    pub fn with_cause(mut self, cause: impl std::fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// 400: the request is malformed; `param` names the offending field when there is one.
    pub fn invalid_request(message: impl Into<String>, param: Option<&str>) -> Self {
        let err = Self::new(Code::InvalidRequest, message);
        match param {
            Some(p) => err.with_param(p),
            None => err,
        }
    }

    /// 401: the caller is not authenticated; `message` says what is expected.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(Code::Unauthorized, message)
    }

    /// 403: the caller is known but may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(Code::Forbidden, message)
    }

    /// 404: no such resource, or not one the caller may see.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, message)
    }

    /// 405: the route exists but not with this method.
    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(Code::MethodNotAllowed, message)
    }

    /// 413: the body is larger than the server accepts.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(Code::PayloadTooLarge, message)
    }

    /// 501: the feature is switched off in this server's config.
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Self::new(Code::NotImplemented, message)
    }

    /// 503: a dependency (identity provider) is not available right now.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(Code::ServiceUnavailable, message)
    }

    /// 500 with an opaque message; `cause` is logged when the error is answered, never sent.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        Self::new(Code::Internal, "internal server error").with_cause(cause)
    }

    /// The row of the code table.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The status of this error.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The JSON body of the answer, `{"error": {...}}`: the same bytes `error_response` sends.
    pub(crate) fn json_body(&self) -> Vec<u8> {
        // Serialising strings and options into a Vec cannot fail.
        serde_json::to_vec(&self.body()).unwrap_or_default()
    }

    fn body(&self) -> Body<'_> {
        Body {
            error: Inner {
                message: &self.message,
                kind: self.code.kind(),
                code: self.code.as_str(),
                param: self.param.as_deref(),
            },
        }
    }

    /// The error as the JSON value of an SSE error event: `{"error": {...}}`. Logs it: mid-stream,
    /// this is where the error is answered.
    pub fn to_sse_event(&self) -> serde_json::Value {
        self.log();
        serde_json::json!({"error": {
            "message": self.message,
            "type": self.code.kind(),
            "code": self.code.as_str(),
            "param": self.param,
        }})
    }

    /// The one log line of an answered error: server errors only (client errors are the
    /// client's; the request span records every status).
    fn log(&self) {
        let cause = self.cause.as_deref().unwrap_or(&self.message);
        match self.code {
            Code::Internal => {
                tracing::error!(error.code = self.code.as_str(), error.message = %cause, "internal error")
            }
            _ if self.status.is_server_error() => {
                tracing::warn!(error.code = self.code.as_str(), error.message = %cause, "dependency failure");
            }
            _ => {}
        }
    }

    /// `code` with a status other than its row's (the provider's own 4xx).
    fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let mut res = HttpResponse::build(self.status);
        if self.code == Code::Unauthorized {
            // RFC 6750: tell the client which scheme is expected.
            res.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
        }
        if let Some(seconds) = self.code.retry_after() {
            res.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        res.json(self.body())
    }
}
