//! Authentication: who is calling.
//!
//! An [`Authenticator`] is built once at start-up from `server.auth.provider_config` and cloned
//! into every worker (clones share one HTTP client and one key cache). For each request the HTTP
//! layer builds a [`RequestInfo`] and calls [`Authenticator::authenticate`]; on `Err(e)` its code table
//! answers 401 (or 503 when the identity provider is down) with `e.message()`.
//!
//! Providers: `static` (tokens from the config), `oauth2_token` (JWT against a JWKS, or RFC 7662
//! introspection), `custom` (POST to the operator's endpoint), `github_token` (the GitHub API),
//! `kubernetes` (the API server reviews the token) and `upstream_header` (a trusted proxy names
//! the caller). The answers of remote identity providers are reused for a short time (see
//! [`cache`](self) and `cache` in each provider's config). Tokens are never logged.

mod cache;
mod claims;
mod custom;
mod error;
mod github;
mod introspection;
mod jwks;
mod kubernetes;
mod request;
mod static_tokens;
mod upstream;

use std::sync::Arc;
use std::time::Duration;

use ferrostack_config::{AuthProviderConfig, OAuth2TokenConfig};

pub use claims::map_claims;
pub use error::{AuthError, AuthSetupError};
pub use jwks::{ALLOWED_ALGORITHMS, FAILED_FETCH_BACKOFF, LEEWAY_SECONDS, UNKNOWN_KID_REFETCH_INTERVAL};
pub use request::RequestInfo;

use crate::User;

/// Longest time to connect to an identity provider (the whole request has the configured timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Authenticates requests with the configured provider. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Provider>,
}

enum Provider {
    Static(static_tokens::StaticTokens),
    Jwks(jwks::JwksVerifier),
    Introspection(introspection::Introspector),
    Custom(custom::CustomEndpoint),
    Github(github::GithubToken),
    Kubernetes(kubernetes::Kubernetes),
    UpstreamHeader(upstream::UpstreamHeader),
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator").field("provider", &self.provider_type()).finish_non_exhaustive()
    }
}

impl Authenticator {
    /// The authenticator of a validated provider config. Fails for an unreadable `tls_cafile`, or
    /// an HTTP client that cannot be built. Does no network I/O (the JWKS is fetched on first use).
    pub fn new(config: &AuthProviderConfig) -> Result<Self, AuthSetupError> {
        let provider = match config {
            AuthProviderConfig::Static(c) => Provider::Static(static_tokens::StaticTokens::new(c)),
            AuthProviderConfig::UpstreamHeader(c) => Provider::UpstreamHeader(upstream::UpstreamHeader::new(c)),
            AuthProviderConfig::Custom(c) => {
                let client = http_client(c.timeout_ms, true, None)?;
                Provider::Custom(custom::CustomEndpoint::from_config(c, client).map_err(AuthSetupError::Invalid)?)
            }
            AuthProviderConfig::OAuth2Token(c) => oauth2(c)?,
            AuthProviderConfig::GithubToken(c) => {
                let client = http_client(c.timeout_ms, true, None)?;
                Provider::Github(github::GithubToken::new(c, client).map_err(AuthSetupError::Invalid)?)
            }
            AuthProviderConfig::Kubernetes(c) => {
                let client = http_client(c.timeout_ms, c.verify_tls, c.tls_cafile.as_deref())?;
                Provider::Kubernetes(kubernetes::Kubernetes::new(c, client).map_err(AuthSetupError::Invalid)?)
            }
        };
        Ok(Self { inner: Arc::new(provider) })
    }

    /// The provider's `type`, for logs.
    pub fn provider_type(&self) -> &'static str {
        match &*self.inner {
            Provider::Static(_) => "static",
            Provider::Jwks(_) | Provider::Introspection(_) => "oauth2_token",
            Provider::Custom(_) => "custom",
            Provider::Github(_) => "github_token",
            Provider::Kubernetes(_) => "kubernetes",
            Provider::UpstreamHeader(_) => "upstream_header",
        }
    }

    /// Whether the provider reads a bearer token from `Authorization` (all but `upstream_header`).
    pub fn needs_bearer_token(&self) -> bool {
        !matches!(&*self.inner, Provider::UpstreamHeader(_))
    }

    /// Who sent `req`, or why it is refused. Public routes (`/v1/health`, `/v1/version`) should not
    /// be passed here at all.
    ///
    /// Traced as an `authenticate` span (`auth.provider`, `auth.outcome`: `ok`, `rejected` or
    /// `unavailable`); the identity provider's HTTP calls happen inside it. Never the token.
    #[tracing::instrument(name = "authenticate", skip_all, fields(
        otel.name = %format!("authenticate {}", self.provider_type()), auth.provider = self.provider_type(),
        auth.outcome = tracing::field::Empty, otel.status_code = tracing::field::Empty))]
    pub async fn authenticate(&self, req: &RequestInfo) -> Result<User, AuthError> {
        let result = self.authenticate_with_provider(req).await;
        let span = tracing::Span::current();
        match &result {
            Ok(_) => span.record("auth.outcome", "ok"),
            Err(AuthError::Unavailable | AuthError::Timeout) => {
                span.record("otel.status_code", "ERROR");
                span.record("auth.outcome", "unavailable")
            }
            Err(_) => span.record("auth.outcome", "rejected"),
        };
        result
    }

    async fn authenticate_with_provider(&self, req: &RequestInfo) -> Result<User, AuthError> {
        match &*self.inner {
            Provider::UpstreamHeader(p) => p.authenticate(req),
            Provider::Static(p) => {
                let token = req.bearer_token("Authentication required. Please provide a valid Bearer token")?;
                p.authenticate(token)
            }
            Provider::Jwks(p) => {
                let missing = match p.issuer() {
                    Some(iss) => {
                        format!("Authentication required. Please provide a valid OAuth2 Bearer token from {iss}")
                    }
                    None => "Authentication required. Please provide a valid OAuth2 Bearer token".to_owned(),
                };
                let token = req.bearer_token(&missing)?;
                p.authenticate(token).await
            }
            Provider::Introspection(p) => {
                let missing = format!(
                    "Authentication required. Please provide a valid OAuth2 Bearer token validated by {}",
                    p.host()
                );
                let token = req.bearer_token(&missing)?;
                p.authenticate(token).await
            }
            Provider::Custom(p) => {
                let missing =
                    format!("Authentication required. Please provide a valid Bearer token validated by {}", p.host());
                let token = req.bearer_token(&missing)?;
                p.authenticate(token, req).await
            }
            Provider::Github(p) => {
                let missing = format!(
                    "Authentication required. Please provide a valid GitHub token (a personal access token: \
                     https://docs.github.com/en/authentication/keeping-your-account-and-data-secure/managing-your-personal-access-tokens) \
                     validated by {}",
                    p.host()
                );
                let token = req.bearer_token(&missing)?;
                p.authenticate(token).await
            }
            Provider::Kubernetes(p) => {
                let token = req.bearer_token("Authentication required")?;
                p.authenticate(token).await
            }
        }
    }
}

fn oauth2(c: &OAuth2TokenConfig) -> Result<Provider, AuthSetupError> {
    let client = http_client(c.timeout_ms, c.verify_tls, c.tls_cafile.as_deref())?;
    match (&c.jwks, &c.introspection) {
        (Some(j), None) => Ok(Provider::Jwks(
            jwks::JwksVerifier::new(j, c.audience.clone(), c.issuer.clone(), c.claims_mapping.clone(), client)
                .map_err(AuthSetupError::Invalid)?,
        )),
        (None, Some(i)) => Ok(Provider::Introspection(
            introspection::Introspector::new(i, c.claims_mapping.clone(), client, cache::AuthCache::new(&c.cache))
                .map_err(AuthSetupError::Invalid)?,
        )),
        _ => Err(AuthSetupError::Invalid("oauth2_token needs exactly one of 'jwks' and 'introspection'".to_owned())),
    }
}

/// The one HTTP client of a provider: the configured timeout per request, no redirects (the
/// introspection request carries client credentials), TLS per `verify_tls` / `tls_cafile`.
fn http_client(timeout_ms: u64, verify_tls: bool, cafile: Option<&str>) -> Result<reqwest::Client, AuthSetupError> {
    let timeout = Duration::from_millis(timeout_ms.max(1));
    let mut builder = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(CONNECT_TIMEOUT.min(timeout))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("ferrostack/", env!("CARGO_PKG_VERSION")));
    if !verify_tls {
        tracing::warn!("authentication provider: TLS certificates are not verified (verify_tls: false)");
        builder = builder.tls_danger_accept_invalid_certs(true);
    }
    if let Some(path) = cafile {
        let ca = |message: String| AuthSetupError::CaFile { path: path.to_owned(), message };
        let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| ca(e.to_string()))?;
        if certs.is_empty() {
            return Err(ca("no PEM certificate in the file".to_owned()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    Ok(builder.build()?)
}
