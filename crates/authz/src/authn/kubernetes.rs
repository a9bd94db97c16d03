//! `type: kubernetes`: a token the Kubernetes API server vouches for (a service account's, or
//! any token the cluster's authenticators accept).
//!
//! `review: self_subject_review` (the reference's way) POSTs a `SelfSubjectReview` with the
//! caller's token: the API server answers who the token belongs to. `review: token_review` POSTs
//! a `TokenReview` of the caller's token with ferrostack's own service-account token (it needs
//! the `system:auth-delegator` cluster role). The principal is the user name; the claims mapped
//! to attributes are those of the user info (`username`, `uid`, `groups`, `extra.<key>`).

use std::collections::BTreeMap;

use ferrostack_config::{KubernetesAuthConfig, KubernetesReview};
use serde_json::{Value, json};

use super::cache::{AuthCache, CacheKey};
use super::claims::{map_claims, non_empty};
use super::error::AuthError;
use crate::User;

const API_VERSION: &str = "authentication.k8s.io/v1";

pub(crate) struct Kubernetes {
    base: String,
    host: String,
    review: KubernetesReview,
    token_file: String,
    claims_mapping: BTreeMap<String, String>,
    client: reqwest::Client,
    cache: AuthCache,
}

impl Kubernetes {
    pub(crate) fn new(config: &KubernetesAuthConfig, client: reqwest::Client) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.api_server_url).map_err(|e| format!("api_server_url: {e}"))?;
        let host = url.host_str().unwrap_or("the Kubernetes API server").to_owned();
        Ok(Self {
            base: config.api_server_url.trim_end_matches('/').to_owned(),
            host,
            review: config.review,
            token_file: config.token_file.clone(),
            claims_mapping: config.claims_mapping.clone(),
            client,
            cache: AuthCache::new(&config.cache),
        })
    }

    pub(crate) fn host(&self) -> &str {
        &self.host
    }

    pub(crate) async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        self.cache.get_or_ask(CacheKey::of(&[token.as_bytes()]), self.ask(token)).await
    }

    #[tracing::instrument(name = "kubernetes token review", skip_all, fields(otel.kind = "client", server.address = self.host()))]
    async fn ask(&self, token: &str) -> Result<User, AuthError> {
        let (url, body, bearer) = match self.review {
            KubernetesReview::SelfSubjectReview => (
                format!("{}/apis/{API_VERSION}/selfsubjectreviews", self.base),
                json!({"apiVersion": API_VERSION, "kind": "SelfSubjectReview"}),
                token.to_owned(),
            ),
            KubernetesReview::TokenReview => {
                let own = std::fs::read_to_string(&self.token_file).map_err(|e| {
                    tracing::error!(file = %self.token_file, error = %e, "cannot read ferrostack's own token for TokenReview");
                    AuthError::Unavailable
                })?;
                (
                    format!("{}/apis/{API_VERSION}/tokenreviews", self.base),
                    json!({"apiVersion": API_VERSION, "kind": "TokenReview", "spec": {"token": token}}),
                    own.trim().to_owned(),
                )
            }
        };
        let resp = self
            .client
            .post(url)
            .bearer_auth(bearer)
            .json(&body)
            .send()
            .await
            .map_err(|e| AuthError::from_http("Kubernetes API server", &e))?;
        let status = resp.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "Kubernetes API server failed");
            return Err(AuthError::Unavailable);
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(AuthError::rejected("Invalid token"));
        }
        if status != reqwest::StatusCode::CREATED && status != reqwest::StatusCode::OK {
            tracing::info!(status = status.as_u16(), "Kubernetes token review refused");
            return Err(AuthError::rejected(format!("Token validation failed: {}", status.as_u16())));
        }
        let bytes = resp.bytes().await.map_err(|e| AuthError::from_http("Kubernetes API server", &e))?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| AuthError::rejected(format!("Token validation error: invalid answer: {e}")))?;
        let user_info = match self.review {
            KubernetesReview::SelfSubjectReview => answer.pointer("/status/userInfo"),
            KubernetesReview::TokenReview => {
                if answer.pointer("/status/authenticated") != Some(&Value::Bool(true)) {
                    return Err(AuthError::rejected("Invalid token"));
                }
                answer.pointer("/status/user")
            }
        };
        let user_info = user_info.ok_or_else(|| AuthError::rejected("Token validation error: no user info"))?;
        let principal = user_info
            .get("username")
            .and_then(Value::as_str)
            .filter(|u| !u.trim().is_empty())
            .ok_or_else(|| AuthError::rejected("Token validation error: no username"))?;
        Ok(User { principal: principal.to_owned(), attributes: non_empty(map_claims(user_info, &self.claims_mapping)) })
    }
}
