//! `server.limits`: what one request, and all requests together, may cost the server. Every
//! limit has a default that is safe for a server facing the internet; docs/configuration.md
//! says what a client sees when one is hit.

use serde::{Deserialize, Serialize};

/// `server.limits:` resource limits of the HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body, in bytes. A larger one is refused with 413 `payload_too_large`
    /// (before it is read when it declares its length).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Budget of request-body bytes held by all in-flight requests together. A request whose
    /// body does not fit waits up to `budget_wait_ms`, then gets 503 `server_busy` with
    /// `Retry-After`. Must be at least `max_body_bytes`.
    #[serde(default = "default_max_inflight_body_bytes")]
    pub max_inflight_body_bytes: usize,
    /// How long a request waits for room in the body budget, in milliseconds.
    #[serde(default = "default_budget_wait_ms")]
    pub budget_wait_ms: u64,
    /// Time allowed to receive a whole request body, from the end of its headers, in seconds. A
    /// slower body gets 408 `request_timeout` and the connection is closed.
    #[serde(default = "default_body_read_timeout_seconds")]
    pub body_read_timeout_seconds: u64,
    /// Time allowed to receive a request's headers on a new connection, in seconds; a slower
    /// client gets actix's bodiless 408 and the connection is closed.
    #[serde(default = "default_header_timeout_seconds")]
    pub header_timeout_seconds: u64,
    /// Most open client connections, across all workers. Beyond it the server stops accepting:
    /// new connections wait in the kernel's backlog until one closes.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Longest request target (path and query), in bytes; longer is 414 `uri_too_long`.
    #[serde(default = "default_max_uri_bytes")]
    pub max_uri_bytes: usize,
    /// Most bytes of request headers (names and values); more is 431 `headers_too_large`.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_inflight_body_bytes: default_max_inflight_body_bytes(),
            budget_wait_ms: default_budget_wait_ms(),
            body_read_timeout_seconds: default_body_read_timeout_seconds(),
            header_timeout_seconds: default_header_timeout_seconds(),
            max_connections: default_max_connections(),
            max_uri_bytes: default_max_uri_bytes(),
            max_header_bytes: default_max_header_bytes(),
        }
    }
}

/// 16 MiB.
pub fn default_max_body_bytes() -> usize {
    16 * 1024 * 1024
}
/// 256 MiB: sixteen bodies of the largest size at once.
pub fn default_max_inflight_body_bytes() -> usize {
    256 * 1024 * 1024
}
/// 2 seconds.
pub fn default_budget_wait_ms() -> u64 {
    2_000
}
/// 30 seconds.
pub fn default_body_read_timeout_seconds() -> u64 {
    30
}
/// 5 seconds (actix's own default).
pub fn default_header_timeout_seconds() -> u64 {
    5
}
/// 10,000 connections.
pub fn default_max_connections() -> usize {
    10_000
}
/// 8 KiB, as common proxies allow.
pub fn default_max_uri_bytes() -> usize {
    8 * 1024
}
/// 32 KiB.
pub fn default_max_header_bytes() -> usize {
    32 * 1024
}
