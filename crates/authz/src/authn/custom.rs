//! `type: custom`: an endpoint of the operator's decides.

use std::collections::BTreeMap;

use ferrostack_config::CustomAuthConfig;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::cache::{AuthCache, CacheKey};
use super::claims::non_empty;
use super::error::AuthError;
use super::request::RequestInfo;
use crate::User;

pub(crate) struct CustomEndpoint {
    endpoint: reqwest::Url,
    /// Lower-case names of the request headers sent along.
    forward_headers: Vec<String>,
    client: reqwest::Client,
    cache: AuthCache,
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
    pub(crate) fn from_config(config: &CustomAuthConfig, client: reqwest::Client) -> Result<Self, String> {
        let endpoint = reqwest::Url::parse(&config.endpoint).map_err(|e| format!("custom.endpoint: {e}"))?;
        let forward_headers = config.forward_headers.iter().map(|h| h.to_ascii_lowercase()).collect();
        Ok(Self { endpoint, forward_headers, client, cache: AuthCache::new(&config.cache) })
    }

    pub(crate) fn host(&self) -> &str {
        self.endpoint.host_str().unwrap_or("the authentication endpoint")
    }

    /// The user of `token` for `req`: a recent answer of the endpoint about the same token and
    /// request summary (path, forwarded headers, query), else a new one.
    pub(crate) async fn authenticate(&self, token: &str, req: &RequestInfo) -> Result<User, AuthError> {
        let summary = self.summary(req);
        let key = CacheKey::of(&[token.as_bytes(), summary.to_string().as_bytes()]);
        self.cache.get_or_ask(key, self.ask(token, summary)).await
    }

    /// What the endpoint is told about the request: its path, the allowed headers (never
    /// `Authorization`, cookies only when an operator lists them) and the query parameters.
    fn summary(&self, req: &RequestInfo) -> Value {
        let mut headers = Map::new();
        for (name, value) in &req.headers {
            let name = name.to_ascii_lowercase();
            if name == "authorization" || !self.forward_headers.contains(&name) {
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
        json!({"path": req.path, "headers": headers, "params": params})
    }

    #[tracing::instrument(name = "custom authentication", skip_all, fields(otel.kind = "client", server.address = self.host()))]
    async fn ask(&self, token: &str, summary: Value) -> Result<User, AuthError> {
        let body = json!({"api_key": token, "request": summary});
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
