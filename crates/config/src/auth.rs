//! `server.auth`: how callers are authenticated (`provider_config`) and what they may do
//! (`access_policy`, `route_policy`). The provider types are described here; the policy rules in
//! [`crate::policy`].
//!
//! Secrets (static tokens, the JWKS bearer token, the introspection client secret) are
//! [`SecretString`]s: `Debug` prints them redacted and serialization (`config check`,
//! [`crate::RunConfig::redacted_json`]) writes [`crate::REDACTED`].

use std::collections::BTreeMap;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Problem;
use crate::model::REDACTED;
use crate::policy::{AccessRule, RouteRule};

/// `server.auth`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// How requests are authenticated; absent or null means no authentication (every request is
    /// anonymous, and the access policy allows everything).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_config: Option<AuthProviderConfig>,
    /// Ordered permit/forbid rules over stored resources; empty means the default policy.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub access_policy: Vec<AccessRule>,
    /// Ordered permit/forbid rules over request paths; empty means every route is allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub route_policy: Vec<RouteRule>,
}

/// `server.auth.provider_config`, discriminated by `type`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AuthProviderConfig {
    /// Fixed bearer tokens from the config, each naming a principal and its attributes. For
    /// development and tests.
    Static(StaticTokensConfig),
    /// OAuth2 bearer tokens: JWTs verified against a JWKS, or opaque tokens checked by RFC 7662
    /// introspection.
    #[serde(rename = "oauth2_token")]
    OAuth2Token(OAuth2TokenConfig),
    /// The bearer token is POSTed to an endpoint of the operator's, which answers with the
    /// principal and attributes.
    Custom(CustomAuthConfig),
    /// Requests carry a principal (and optional attributes) in headers set by a trusted proxy.
    UpstreamHeader(UpstreamHeaderConfig),
    /// The reference's GitHub token provider. Not served by ferrostack: accepted by the parser so
    /// that validation can say so.
    GithubToken(UnservedProvider),
    /// The reference's Kubernetes `SelfSubjectReview` provider. Not served by ferrostack.
    Kubernetes(UnservedProvider),
}

impl AuthProviderConfig {
    /// The `type` as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::Static(_) => "static",
            Self::OAuth2Token(_) => "oauth2_token",
            Self::Custom(_) => "custom",
            Self::UpstreamHeader(_) => "upstream_header",
            Self::GithubToken(_) => "github_token",
            Self::Kubernetes(_) => "kubernetes",
        }
    }
}

/// `type: static`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticTokensConfig {
    /// The accepted tokens.
    pub tokens: Vec<StaticToken>,
}

/// One entry of `type: static` `tokens`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StaticToken {
    /// The bearer token (a secret).
    #[serde(serialize_with = "serialize_secret")]
    pub token: SecretString,
    /// Who the token authenticates.
    pub principal: String,
    /// Category → values (`roles`, `teams`, `projects`, `namespaces`, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, Vec<String>>,
}

/// `type: oauth2_token`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2TokenConfig {
    /// The `aud` a JWT must carry.
    #[serde(default = "default_audience")]
    pub audience: String,
    /// The `iss` a JWT must carry; not checked when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer: Option<String>,
    /// Verify the TLS certificate of the JWKS / introspection endpoint.
    #[serde(default = "default_true")]
    pub verify_tls: bool,
    /// PEM file of extra CA certificates for the JWKS / introspection endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cafile: Option<String>,
    /// Claim path → attribute category.
    #[serde(default = "default_oauth2_claims_mapping")]
    pub claims_mapping: BTreeMap<String, String>,
    /// Verify JWTs locally against the keys of a JWKS. Exactly one of `jwks` and `introspection`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<JwksConfig>,
    /// Ask an RFC 7662 introspection endpoint about each token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub introspection: Option<IntrospectionConfig>,
    /// Timeout of one request to the JWKS or introspection endpoint, in milliseconds.
    #[serde(default = "default_auth_timeout_ms")]
    pub timeout_ms: u64,
}

/// `oauth2_token.jwks`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// URL of the JSON Web Key Set.
    pub uri: String,
    /// Bearer token sent with the JWKS request (a secret).
    #[serde(default, serialize_with = "serialize_secret_opt", skip_serializing_if = "Option::is_none")]
    pub token: Option<SecretString>,
    /// How often the key set is fetched again, in seconds.
    #[serde(default = "default_key_recheck_period")]
    pub key_recheck_period: u64,
}

/// `oauth2_token.introspection`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IntrospectionConfig {
    /// URL of the introspection endpoint.
    pub url: String,
    /// Client id ferrostack authenticates as.
    pub client_id: String,
    /// Client secret (a secret).
    #[serde(serialize_with = "serialize_secret")]
    pub client_secret: SecretString,
    /// Send `client_id`/`client_secret` in the form body instead of HTTP basic auth.
    #[serde(default)]
    pub send_secret_in_body: bool,
}

/// `type: custom`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CustomAuthConfig {
    /// URL the token and request summary are POSTed to.
    pub endpoint: String,
    /// Timeout of one request to `endpoint`, in milliseconds.
    #[serde(default = "default_auth_timeout_ms")]
    pub timeout_ms: u64,
}

/// `type: upstream_header`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamHeaderConfig {
    /// Header holding the principal (matched case-insensitively).
    pub principal_header: String,
    /// Header holding the attributes as a JSON object; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attributes_header: Option<String>,
}

/// The body of a provider type ferrostack parses but does not serve; its fields are ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct UnservedProvider {}

// ---- defaults (docs/configuration.md lists each one) ----

/// Default `oauth2_token.audience`.
pub fn default_audience() -> String {
    "ferrostack".to_owned()
}

/// Default `oauth2_token.claims_mapping`: the reference's.
pub fn default_oauth2_claims_mapping() -> BTreeMap<String, String> {
    [
        ("sub", "roles"),
        ("username", "roles"),
        ("groups", "teams"),
        ("team", "teams"),
        ("project", "projects"),
        ("tenant", "namespaces"),
        ("namespace", "namespaces"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Default `jwks.key_recheck_period`, in seconds.
pub fn default_key_recheck_period() -> u64 {
    3600
}

/// Default timeout of a request to an identity provider (`oauth2_token.timeout_ms`,
/// `custom.timeout_ms`), in milliseconds.
pub fn default_auth_timeout_ms() -> u64 {
    10_000
}

fn default_true() -> bool {
    true
}

fn serialize_secret<S: Serializer>(_: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(REDACTED)
}

fn serialize_secret_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

// ---- validation ----

const PATH: &str = "server.auth.provider_config";

/// Problems of `server.auth.provider_config` (path prefix `server.auth.provider_config`).
pub(crate) fn validate_provider(config: &AuthProviderConfig, problems: &mut Vec<Problem>) {
    let mut p = |field: &str, message: String| {
        let path = if field.is_empty() { PATH.to_owned() } else { format!("{PATH}.{field}") };
        problems.push(Problem::new(path, message));
    };
    match config {
        AuthProviderConfig::Static(c) => validate_static(c, &mut p),
        AuthProviderConfig::OAuth2Token(c) => validate_oauth2(c, &mut p),
        AuthProviderConfig::Custom(c) => {
            url("endpoint", &c.endpoint, &mut p);
            range("timeout_ms", c.timeout_ms, 1, 600_000, "ms", &mut p);
        }
        AuthProviderConfig::UpstreamHeader(c) => {
            header_name("principal_header", &c.principal_header, &mut p);
            if let Some(h) = &c.attributes_header {
                header_name("attributes_header", h, &mut p);
            }
        }
        AuthProviderConfig::GithubToken(_) | AuthProviderConfig::Kubernetes(_) => p(
            "type",
            format!(
                "authentication provider type '{}' is not served by ferrostack; use one of static, oauth2_token, \
                 custom, upstream_header",
                config.type_name()
            ),
        ),
    }
}

fn validate_static(c: &StaticTokensConfig, p: &mut impl FnMut(&str, String)) {
    if c.tokens.is_empty() {
        p("tokens", "must list at least one token".to_owned());
    }
    let mut seen: Vec<&str> = Vec::new();
    for (i, t) in c.tokens.iter().enumerate() {
        let token = t.token.expose_secret();
        if token.trim().is_empty() {
            p(&format!("tokens[{i}].token"), "must not be empty".to_owned());
        } else if token.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
            p(&format!("tokens[{i}].token"), "must not contain whitespace or control characters".to_owned());
        } else if let Some(j) = seen.iter().position(|s| *s == token) {
            p(&format!("tokens[{i}].token"), format!("is the same token as tokens[{j}]"));
        }
        seen.push(token);
        if t.principal.trim().is_empty() {
            p(&format!("tokens[{i}].principal"), "must not be empty".to_owned());
        }
        for k in t.attributes.keys() {
            if k.trim().is_empty() {
                p(&format!("tokens[{i}].attributes"), "attribute categories must not be empty".to_owned());
            }
        }
    }
}

fn validate_oauth2(c: &OAuth2TokenConfig, p: &mut impl FnMut(&str, String)) {
    non_empty("audience", &c.audience, p);
    if let Some(i) = &c.issuer {
        non_empty("issuer", i, p);
    }
    if let Some(f) = &c.tls_cafile {
        non_empty("tls_cafile", f, p);
    }
    claims_mapping(&c.claims_mapping, p);
    range("timeout_ms", c.timeout_ms, 1, 600_000, "ms", p);
    match (&c.jwks, &c.introspection) {
        (None, None) => p("", "oauth2_token needs one of 'jwks' or 'introspection', got neither".to_owned()),
        (Some(_), Some(_)) => p("", "oauth2_token takes one of 'jwks' or 'introspection', got both".to_owned()),
        _ => {}
    }
    if let Some(j) = &c.jwks {
        url("jwks.uri", &j.uri, p);
        if j.token.as_ref().is_some_and(|t| t.expose_secret().trim().is_empty()) {
            p("jwks.token", "must not be empty (leave it out for no token)".to_owned());
        }
        range("jwks.key_recheck_period", j.key_recheck_period, 1, 7 * 86_400, "seconds", p);
    }
    if let Some(i) = &c.introspection {
        url("introspection.url", &i.url, p);
        non_empty("introspection.client_id", &i.client_id, p);
        if i.client_secret.expose_secret().is_empty() {
            p("introspection.client_secret", "must not be empty".to_owned());
        }
    }
}

fn claims_mapping(m: &BTreeMap<String, String>, p: &mut impl FnMut(&str, String)) {
    for (claim, attribute) in m {
        if claim.trim().is_empty() {
            p("claims_mapping", "claim paths must not be empty".to_owned());
        }
        if attribute.trim().is_empty() {
            p(&format!("claims_mapping.{claim}"), "attribute category must not be empty".to_owned());
        }
    }
}

fn non_empty(field: &str, value: &str, p: &mut impl FnMut(&str, String)) {
    if value.trim().is_empty() {
        p(field, "must not be empty".to_owned());
    }
}

fn range(field: &str, value: u64, min: u64, max: u64, unit: &str, p: &mut impl FnMut(&str, String)) {
    if !(min..=max).contains(&value) {
        p(field, format!("must be between {min} and {max} {unit}, got {value}"));
    }
}

fn header_name(field: &str, value: &str, p: &mut impl FnMut(&str, String)) {
    const SEPARATORS: &str = "()<>@,;:\\\"/[]?={} \t";
    if value.is_empty() {
        p(field, "must not be empty".to_owned());
    } else if !value.chars().all(|c| c.is_ascii_graphic() && !SEPARATORS.contains(c)) {
        p(field, format!("'{value}' is not a valid HTTP header name"));
    } else if value.eq_ignore_ascii_case("authorization") {
        p(field, "must not be the Authorization header".to_owned());
    }
}

/// Whether `value` is an `http`/`https` URL with a host; the problem otherwise.
fn url(field: &str, value: &str, p: &mut impl FnMut(&str, String)) {
    if let Err(why) = crate::url::check_http_url(value, crate::url::UrlUse::Endpoint) {
        p(field, format!("'{value}' is not a valid URL: {why}"));
    }
}
