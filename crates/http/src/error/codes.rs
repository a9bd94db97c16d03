//! The one error-code table: every error the server answers has one of these codes, and the code
//! alone fixes its HTTP status, its `type` and whether it carries `Retry-After`. Domain crates
//! say what went wrong; `from.rs` picks the row; nothing else chooses a status.
//!
//! `docs/api.md` lists the same rows (a test keeps the two in step).

use actix_web::http::StatusCode;

/// Seconds a client is told to wait (`Retry-After`) before retrying a 503.
pub const RETRY_AFTER_SECONDS: u32 = 1;

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $variant:ident => $status:ident, $kind:literal, $code:literal, $when:literal; )*) => {
        /// A stable error code: one row of the table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Code {
            $( $(#[doc = $doc])* $variant, )*
        }

        impl Code {
            /// Every code, in table order.
            pub const ALL: &'static [Code] = &[$(Code::$variant),*];

            /// The HTTP status. [`Code::UpstreamRejected`] answers with the provider's own 4xx;
            /// its row holds 400, the status used when the provider's is not a 4xx.
            pub fn status(self) -> StatusCode {
                match self { $(Code::$variant => StatusCode::$status,)* }
            }

            /// OpenAI's `error.type`.
            pub fn kind(self) -> &'static str {
                match self { $(Code::$variant => $kind,)* }
            }

            /// `error.code`, also the `error.type` of spans.
            pub fn as_str(self) -> &'static str {
                match self { $(Code::$variant => $code,)* }
            }

            /// When the server answers with it (the `when` column of docs/api.md).
            pub fn when(self) -> &'static str {
                match self { $(Code::$variant => $when,)* }
            }
        }
    };
}

codes! {
    /// Malformed body, query or path.
    InvalidRequest => BAD_REQUEST, "invalid_request_error", "invalid_request",
        "malformed body, query or path, or a value out of range; `param` names the field when there is one; or a request that is not valid HTTP/1.1 (message `malformed HTTP request: ...`; the connection is closed)";
    /// The provider refused the request with a 4xx; its status and message are passed on.
    UpstreamRejected => BAD_REQUEST, "invalid_request_error", "upstream_error",
        "the provider refused the request with a 4xx: its status (400-499) and message are passed on";
    /// Not authenticated.
    Unauthorized => UNAUTHORIZED, "authentication_error", "unauthorized",
        "no credentials, a malformed `Authorization` header, or credentials the identity provider refuses; carries `WWW-Authenticate: Bearer`";
    /// Known caller, not allowed.
    Forbidden => FORBIDDEN, "permission_error", "forbidden",
        "the route policy refuses this path to this caller, or the caller may read a resource but not change it";
    /// No such route or resource (or one the caller may not see).
    NotFound => NOT_FOUND, "not_found_error", "not_found",
        "no such route, or a resource that does not exist or that the caller may not see";
    /// The requested model is not registered.
    ModelNotFound => NOT_FOUND, "not_found_error", "model_not_found",
        "the `model` of the request is not a registered model (`param: \"model\"`)";
    /// The route exists, not with this method.
    MethodNotAllowed => METHOD_NOT_ALLOWED, "invalid_request_error", "method_not_allowed",
        "the route exists, but not with this method";
    /// The id is taken by another owner's row.
    Conflict => CONFLICT, "conflict_error", "conflict",
        "the id is taken by another owner's row, which was left unchanged (`durability: sync`), a model id is already registered, or an item id is already used in that conversation";
    /// Body over the limit.
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "invalid_request_error", "payload_too_large",
        "body over the limit, or a completion to store over the store's `max_row_bytes` (the message names the limit)";
    /// The request body did not arrive in time.
    RequestTimeout => REQUEST_TIMEOUT, "invalid_request_error", "request_timeout",
        "the request headers did not arrive within `server.limits.header_timeout_seconds`, or the body within `server.limits.body_read_timeout_seconds`; the connection is closed";
    /// The request target is too long.
    UriTooLong => URI_TOO_LONG, "invalid_request_error", "uri_too_long",
        "the path and query are longer than `server.limits.max_uri_bytes`; the connection is closed";
    /// The request headers are too large.
    HeadersTooLarge => REQUEST_HEADER_FIELDS_TOO_LARGE, "invalid_request_error", "headers_too_large",
        "the request headers are larger than `server.limits.max_header_bytes`, there are more than 96 of them, or the request head is over 128 KiB; the connection is closed";
    /// A bug or an unexpected failure.
    Internal => INTERNAL_SERVER_ERROR, "internal_error", "internal_error",
        "a bug or an unexpected failure; the message is opaque, the cause is in the server log";
    /// A feature switched off in the config.
    NotImplemented => NOT_IMPLEMENTED, "not_implemented", "not_implemented",
        "the feature is switched off in this server's config (e.g. `storage.stores.inference: null`, or `storage.stores.metadata: null` for registering models)";
    /// The provider failed (5xx) or sent an error event.
    UpstreamFailed => BAD_GATEWAY, "upstream_error", "upstream_error",
        "the provider answered with a 5xx or ended a stream with an error event";
    /// The provider cannot be reached or broke the connection.
    UpstreamUnavailable => BAD_GATEWAY, "upstream_error", "upstream_unavailable",
        "the provider cannot be reached, or closed the connection before the answer was complete";
    /// The provider's answer is not a valid (storable) completion.
    UpstreamInvalid => BAD_GATEWAY, "upstream_error", "upstream_invalid_response",
        "the provider's answer is not what the OpenAI API promises (not JSON, no `id` or `created`, ...) and cannot be relayed or stored";
    /// A dependency other than the database is down, or the server is shutting down.
    ServiceUnavailable => SERVICE_UNAVAILABLE, "service_unavailable", "service_unavailable",
        "the identity provider is down or timed out, or the server is shutting down (with `Connection: close`); carries `Retry-After`";
    /// The database is down, or no connection was free in time.
    DatabaseUnavailable => SERVICE_UNAVAILABLE, "service_unavailable", "database_unavailable",
        "the database is unreachable, refused the connection, timed out, or no pooled connection was free in time; or the write queue stayed full (`queue_wait_timeout_ms`) or a `durability: sync` row did not commit in time (`commit_timeout_ms`); carries `Retry-After`";
    /// The provider did not answer in time.
    UpstreamTimeout => GATEWAY_TIMEOUT, "upstream_error", "upstream_timeout",
        "the provider did not answer (or stopped answering) in time";
    /// The in-flight request-body budget stayed full.
    ServerBusy => SERVICE_UNAVAILABLE, "service_unavailable", "server_busy",
        "the bodies of in-flight requests fill `server.limits.max_inflight_body_bytes` and no room was free within `budget_wait_ms`; carries `Retry-After`";
    /// The provider's cap on concurrent requests stayed full for its bounded wait.
    UpstreamBusy => SERVICE_UNAVAILABLE, "service_unavailable", "upstream_busy",
        "the provider's `max_concurrent_requests` were all in use for `queue_timeout_ms`; nothing was sent upstream; carries `Retry-After`";
}

impl Code {
    /// Whether the answer carries `Retry-After` (every 503: the condition is expected to pass).
    pub fn retry_after(self) -> Option<u32> {
        (self.status() == StatusCode::SERVICE_UNAVAILABLE).then_some(RETRY_AFTER_SECONDS)
    }

    /// The status column of docs/api.md (`400-499` for the provider's passed-on 4xx).
    pub fn documented_status(self) -> String {
        match self {
            Code::UpstreamRejected => "400-499".to_owned(),
            other => other.status().as_u16().to_string(),
        }
    }
}
