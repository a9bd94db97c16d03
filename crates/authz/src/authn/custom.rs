//! `type: custom`: an endpoint of the operator's decides.

use std::collections::BTreeMap;

use ferrostack_config::CustomAuthConfig;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::claims::non_empty;
use super::error::AuthError;
use super::request::RequestInfo;
use crate::User;

pub(crate) struct CustomEndpoint {
    endpoint: reqwest::Url,
    client: reqwest::Client,
}

/// What the endpoint answers with on success.
#[derive(Deserialize)]
struct Answer {
    principal: String,
    #[serde(default)]
    attributes: Option<BTreeMap<String, Vec<String>>>,
    #[serde(default)]
    #[expect(dead_code, reason = "part of the answer's shape; accepted and ignored")]
    message: Option<String>,
}

impl CustomEndpoint {
    pub(crate) fn new(endpoint: reqwest::Url, client: reqwest::Client) -> Self {
        Self { endpoint, client }
    }

    pub(crate) fn from_config(config: &CustomAuthConfig, client: reqwest::Client) -> Result<Self, String> {
        let endpoint = reqwest::Url::parse(&config.endpoint).map_err(|e| format!("custom.endpoint: {e}"))?;
        Ok(Self::new(endpoint, client))
    }

    pub(crate) fn host(&self) -> &str {
        self.endpoint.host_str().unwrap_or("the authentication endpoint")
    }

    #[tracing::instrument(name = "custom authentication", skip_all, fields(otel.kind = "client", server.address = self.host()))]
    pub(crate) async fn authenticate(&self, token: &str, req: &RequestInfo) -> Result<User, AuthError> {
        let mut headers = Map::new();
        for (name, value) in &req.headers {
            let name = name.to_ascii_lowercase();
            if name == "authorization" {
                continue;
            }
            match headers.get_mut(&name) {
                Some(Value::String(prev)) => {
                    prev.push_str(", ");
                    prev.push_str(value);
                }
                _ => {
                    headers.insert(name, Value::String(value.clone()));
                }
            }
        }
        let mut params: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (k, v) in &req.query {
            params.entry(k.as_str()).or_default().push(v.as_str());
        }
        let body = json!({
            "api_key": token,
            "request": {"path": req.path, "headers": headers, "params": params},
        });
        let resp = self
            .client
            .post(self.endpoint.clone())
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthError::from_http("custom authentication endpoint", &e))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            tracing::info!(status = status.as_u16(), "custom authentication endpoint refused the token");
            return Err(AuthError::rejected(format!("Authentication failed: {}", status.as_u16())));
        }
        let bytes = resp.bytes().await.map_err(|e| AuthError::from_http("custom authentication endpoint", &e))?;
        let answer: Answer = serde_json::from_slice(&bytes)
            .ok()
            .filter(|a: &Answer| !a.principal.trim().is_empty())
            .ok_or_else(|| AuthError::rejected("Invalid authentication response format"))?;
        Ok(User { principal: answer.principal, attributes: answer.attributes.and_then(non_empty) })
    }
}
