//! `type: upstream_header`: a trusted proxy in front of ferrostack names the caller.

use std::collections::BTreeMap;

use ferrostack_config::UpstreamHeaderConfig;
use serde_json::Value;

use super::claims::non_empty;
use super::error::AuthError;
use super::request::RequestInfo;
use crate::User;

pub(crate) struct UpstreamHeader {
    principal_header: String,
    attributes_header: Option<String>,
}

impl UpstreamHeader {
    pub(crate) fn new(config: &UpstreamHeaderConfig) -> Self {
        Self { principal_header: config.principal_header.clone(), attributes_header: config.attributes_header.clone() }
    }

    pub(crate) fn authenticate(&self, req: &RequestInfo) -> Result<User, AuthError> {
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
