//! `type: github_token`: a GitHub token (personal access token, OAuth or app user token),
//! checked against the GitHub REST API.
//!
//! `GET <base>/user` says whose token it is; `GET <base>/user/orgs` (paged, 100 per page) lists
//! the organisations it may see. The principal is the login; the claims mapped to attributes are
//! `login`, `id` (as text) and `organizations` (their logins).

use std::collections::BTreeMap;

use ferrostack_config::GithubTokenConfig;
use serde::Deserialize;
use serde_json::{Value, json};

use super::cache::{AuthCache, CacheKey};
use super::claims::{map_claims, non_empty};
use super::error::AuthError;
use crate::User;

/// Organisations asked for per page (GitHub's maximum).
const PER_PAGE: usize = 100;
/// Most pages of organisations read (10,000 organisations).
const MAX_PAGES: usize = 100;

pub(crate) struct GithubToken {
    base: String,
    host: String,
    claims_mapping: BTreeMap<String, String>,
    client: reqwest::Client,
    cache: AuthCache,
}

#[derive(Deserialize)]
struct GithubUser {
    login: String,
    id: Value,
}

#[derive(Deserialize)]
struct GithubOrg {
    login: String,
}

impl GithubToken {
    pub(crate) fn new(config: &GithubTokenConfig, client: reqwest::Client) -> Result<Self, String> {
        let url = reqwest::Url::parse(&config.github_api_base_url).map_err(|e| format!("github_api_base_url: {e}"))?;
        let host = url.host_str().unwrap_or("the GitHub API").to_owned();
        Ok(Self {
            base: config.github_api_base_url.trim_end_matches('/').to_owned(),
            host,
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

    #[tracing::instrument(name = "github token validation", skip_all, fields(otel.kind = "client", server.address = self.host()))]
    async fn ask(&self, token: &str) -> Result<User, AuthError> {
        let resp = self.get(token, &format!("{}/user", self.base)).await?;
        let status = resp.status();
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), "GitHub API failed");
            return Err(AuthError::Unavailable);
        }
        if status != reqwest::StatusCode::OK {
            tracing::info!(status = status.as_u16(), "GitHub refused the token");
            return Err(AuthError::rejected(format!(
                "GitHub token validation failed: {}. Please provide a valid GitHub personal access token",
                status.as_u16()
            )));
        }
        let bytes = resp.bytes().await.map_err(|e| AuthError::from_http("GitHub API", &e))?;
        let user: GithubUser = serde_json::from_slice(&bytes)
            .ok()
            .filter(|u: &GithubUser| !u.login.trim().is_empty())
            .ok_or_else(|| AuthError::rejected("GitHub token validation failed: unexpected answer from /user"))?;
        let organizations = self.organizations(token).await;
        let id = match &user.id {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut claims = json!({"login": user.login, "id": id});
        // No organisations is no `teams` at all, not an empty list of them.
        if !organizations.is_empty() {
            claims["organizations"] = json!(organizations);
        }
        Ok(User { principal: user.login, attributes: non_empty(map_claims(&claims, &self.claims_mapping)) })
    }

    /// The logins of the token's organisations, de-duplicated in order. A failure on the first
    /// page means none; on a later page, the ones read so far.
    async fn organizations(&self, token: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for page in 1..=MAX_PAGES {
            let url = format!("{}/user/orgs?per_page={PER_PAGE}&page={page}", self.base);
            let orgs: Option<Vec<GithubOrg>> = match self.get(token, &url).await {
                Ok(resp) if resp.status() == reqwest::StatusCode::OK => {
                    resp.bytes().await.ok().and_then(|b| serde_json::from_slice(&b).ok())
                }
                Ok(resp) => {
                    tracing::info!(status = resp.status().as_u16(), page, "GitHub organisations not readable");
                    None
                }
                Err(_) => None,
            };
            let Some(orgs) = orgs else { break };
            let n = orgs.len();
            for o in orgs {
                if !out.contains(&o.login) {
                    out.push(o.login);
                }
            }
            if n < PER_PAGE {
                break;
            }
        }
        out
    }

    async fn get(&self, token: &str, url: &str) -> Result<reqwest::Response, AuthError> {
        self.client
            .get(url)
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
            .send()
            .await
            .map_err(|e| AuthError::from_http("GitHub API", &e))
    }
}
