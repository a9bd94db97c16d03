//! `type: oauth2_token` with `introspection`: RFC 7662.

use std::collections::BTreeMap;

use ferrostack_config::IntrospectionConfig;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::cache::{AuthCache, CacheKey};
use super::claims::{map_claims, non_empty};
use super::error::AuthError;
use crate::User;

pub(crate) struct Introspector {
    url: reqwest::Url,
    client_id: String,
    client_secret: SecretString,
    send_secret_in_body: bool,
    claims_mapping: BTreeMap<String, String>,
    client: reqwest::Client,
    cache: AuthCache,
}

impl Introspector {
    pub(crate) fn new(
        config: &IntrospectionConfig,
        claims_mapping: BTreeMap<String, String>,
        client: reqwest::Client,
        cache: AuthCache,
    ) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.url).map_err(|e| format!("introspection.url: {e}"))?;
        Ok(Self {
            url,
            client_id: config.client_id.clone(),
            client_secret: config.client_secret.clone(),
            send_secret_in_body: config.send_secret_in_body,
            claims_mapping,
            client,
            cache,
        })
    }

    pub(crate) fn host(&self) -> &str {
        self.url.host_str().unwrap_or("the introspection endpoint")
    }

    /// The user of `token`: a recent answer of the endpoint, else a new one.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        self.cache.get_or_ask(CacheKey::of(&[token.as_bytes()]), self.ask(token)).await
    }

    #[tracing::instrument(name = "token introspection", skip_all, fields(otel.kind = "client", server.address = self.host()))]
    async fn ask(&self, token: &str) -> Result<User, AuthError> {
        let secret = self.client_secret.expose_secret();
        let mut form: Vec<(&str, &str)> = vec![("token", token)];
        let mut request = self.client.post(self.url.clone());
        if self.send_secret_in_body {
            form.push(("client_id", &self.client_id));
            form.push(("client_secret", secret));
        } else {
            request = request.basic_auth(&self.client_id, Some(secret));
        }
        let resp = request
            .header(reqwest::header::ACCEPT, "application/json")
            .form(&form)
            .send()
            .await
            .map_err(|e| AuthError::from_http("token introspection", &e))?;
        let status = resp.status();
        if status != reqwest::StatusCode::OK {
            tracing::info!(status = status.as_u16(), "token introspection failed");
            return Err(AuthError::rejected(format!("Token introspection failed: {}", status.as_u16())));
        }
        let bytes = resp.bytes().await.map_err(|e| AuthError::from_http("token introspection", &e))?;
        let body: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AuthError::rejected(format!("Invalid token introspection response: {e}")))?;
        if !body.is_object() {
            return Err(AuthError::rejected("Invalid token introspection response: expected a JSON object"));
        }
        if body.get("active") != Some(&Value::Bool(true)) {
            return Err(AuthError::rejected("Token not active"));
        }
        let principal = ["sub", "username"]
            .iter()
            .filter_map(|k| body.get(*k).and_then(Value::as_str))
            .find(|p| !p.trim().is_empty())
            .ok_or_else(|| AuthError::rejected("Token introspection response has neither sub nor username"))?;
        Ok(User { principal: principal.to_owned(), attributes: non_empty(map_claims(&body, &self.claims_mapping)) })
    }
}
