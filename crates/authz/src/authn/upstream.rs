//! `type: upstream_header`: a trusted proxy in front of ferrostack names the caller.

use std::collections::BTreeMap;

use ferrostack_config::{IpNetwork, UpstreamHeaderConfig};
use serde_json::Value;

use super::claims::non_empty;
use super::error::AuthError;
use super::request::RequestInfo;
use crate::User;

pub(crate) struct UpstreamHeader {
    principal_header: String,
    attributes_header: Option<String>,
    /// Empty: every peer is trusted.
    trusted_proxies: Vec<IpNetwork>,
}

impl UpstreamHeader {
    pub(crate) fn new(config: &UpstreamHeaderConfig) -> Self {
        Self {
            principal_header: config.principal_header.clone(),
            attributes_header: config.attributes_header.clone(),
            // Validation refused any entry that does not parse.
            trusted_proxies: config.trusted_proxies.iter().filter_map(|p| IpNetwork::parse(p)).collect(),
        }
    }

    pub(crate) fn authenticate(&self, req: &RequestInfo) -> Result<User, AuthError> {
        if !self.trusted_proxies.is_empty()
            && !req.peer.is_some_and(|peer| self.trusted_proxies.iter().any(|net| net.contains(peer)))
        {
            return Err(AuthError::rejected("Request did not come through a trusted proxy".to_owned()));
        }
        // A proxy sets each header once; a second copy is someone else's (a client whose own
        // header the proxy appended to instead of replacing). Which one would win is exactly
        // what must not be left to chance.
        for header in std::iter::once(&self.principal_header).chain(self.attributes_header.as_ref()) {
            if req.header_count(header) > 1 {
                return Err(AuthError::rejected(format!("Authentication header {header} appears more than once")));
            }
        }
        let principal =
            req.header(&self.principal_header).map(str::trim).filter(|p| !p.is_empty()).ok_or_else(|| {
                AuthError::MissingCredentials(format!(
                    "Missing required authentication header: {}",
                    self.principal_header
                ))
            })?;
        let attributes = match self.attributes_header.as_deref().and_then(|h| req.header(h)) {
            None => None,
            Some(raw) => non_empty(parse_attributes(raw)?),
        };
        Ok(User { principal: principal.to_owned(), attributes })
    }
}

/// A JSON object of category → list (each item stringified), string (one value) or other (its
/// JSON text).
fn parse_attributes(raw: &str) -> Result<BTreeMap<String, Vec<String>>, AuthError> {
    let fail = |why: String| AuthError::rejected(format!("Failed to parse authentication attributes header: {why}"));
    let value: Value = serde_json::from_str(raw).map_err(|e| fail(e.to_string()))?;
    let Value::Object(map) = value else {
        return Err(fail("expected a JSON object".to_owned()));
    };
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let values = match v {
                Value::Array(items) => items.into_iter().map(stringify).collect(),
                other => vec![stringify(other)],
            };
            (k, values)
        })
        .collect())
}

fn stringify(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}
