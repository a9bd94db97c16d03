//! What the authenticator needs to know about a request.

use std::fmt;

use super::error::AuthError;

/// The parts of an HTTP request authentication looks at. Built by the HTTP layer from the actix
/// request; header names are matched case-insensitively.
#[derive(Clone, Default)]
pub struct RequestInfo {
    /// HTTP method (`GET`, `POST`, ...).
    pub method: String,
    /// Request path, without the query string.
    pub path: String,
    /// Headers as (name, value), in request order; a repeated header appears once per value.
    pub headers: Vec<(String, String)>,
    /// Query parameters as (key, value), in request order; a repeated key appears once per value.
    pub query: Vec<(String, String)>,
    /// The address of the peer that opened the connection (the proxy, behind one), if known.
    pub peer: Option<std::net::IpAddr>,
}

impl RequestInfo {
    /// A request with no headers and no query parameters.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Self { method: method.into(), path: path.into(), headers: Vec::new(), query: Vec::new(), peer: None }
    }

    /// From this peer address.
    #[must_use]
    pub fn with_peer(mut self, peer: std::net::IpAddr) -> Self {
        self.peer = Some(peer);
        self
    }

    /// How many times header `name` (case-insensitive) appears.
    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }

    /// With one more header.
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// With one more query parameter.
    #[must_use]
    pub fn with_query(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((key.into(), value.into()));
        self
    }

    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// The bearer token of the `Authorization` header. `missing` is the message when there is no
    /// such header.
    pub(crate) fn bearer_token(&self, missing: &str) -> Result<&str, AuthError> {
        let Some(value) = self.header("authorization") else {
            return Err(AuthError::MissingCredentials(missing.to_owned()));
        };
        let token = match value.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            _ => return Err(AuthError::InvalidHeaderFormat),
        };
        if token.is_empty() || token.contains(char::is_whitespace) {
            return Err(AuthError::InvalidHeaderFormat);
        }
        Ok(token)
    }
}

/// Header values are not shown: they hold credentials.
impl fmt::Debug for RequestInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("RequestInfo")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("peer", &self.peer)
            .field("header_names", &names)
            .field("query_keys", &self.query.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>())
            .finish()
    }
}
