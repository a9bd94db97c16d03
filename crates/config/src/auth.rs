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
    /// A GitHub token, checked against the GitHub API (`/user`, `/user/orgs`).
    GithubToken(GithubTokenConfig),
    /// A Kubernetes service-account (or any API-server) token, checked by the API server with a
    /// `SelfSubjectReview` or a `TokenReview`.
    Kubernetes(KubernetesAuthConfig),
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
    /// How long introspection answers are reused (JWTs are verified locally and need no cache).
    #[serde(default)]
    pub cache: AuthCacheConfig,
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
    /// The request headers sent to the endpoint (case-insensitive); no other header is sent, so
    /// cookies and credentials for other services stay with ferrostack.
    #[serde(default = "default_custom_forward_headers")]
    pub forward_headers: Vec<String>,
    /// How long the endpoint's answers are reused, per token and request summary.
    #[serde(default)]
    pub cache: AuthCacheConfig,
}

/// `type: github_token`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GithubTokenConfig {
    /// Base URL of the GitHub REST API; a GitHub Enterprise server's is `https://<host>/api/v3`.
    #[serde(default = "default_github_api_base_url")]
    pub github_api_base_url: String,
    /// Claim → attribute category, over `{login, id, organizations}`.
    #[serde(default = "default_github_claims_mapping")]
    pub claims_mapping: BTreeMap<String, String>,
    /// Timeout of one request to the GitHub API, in milliseconds.
    #[serde(default = "default_auth_timeout_ms")]
    pub timeout_ms: u64,
    /// How long GitHub's answers are reused.
    #[serde(default)]
    pub cache: AuthCacheConfig,
}

/// How `type: kubernetes` asks the API server about a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KubernetesReview {
    /// POST a `SelfSubjectReview` with the caller's token (the reference's way; needs no
    /// permission of ferrostack's own).
    #[default]
    SelfSubjectReview,
    /// POST a `TokenReview` of the caller's token with ferrostack's own service-account token
    /// (`token_file`), which needs the `system:auth-delegator` role.
    TokenReview,
}

/// `type: kubernetes`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KubernetesAuthConfig {
    /// Base URL of the API server.
    #[serde(default = "default_kubernetes_api_server_url")]
    pub api_server_url: String,
    /// Verify the API server's TLS certificate.
    #[serde(default = "default_true")]
    pub verify_tls: bool,
    /// PEM file of the CA that signed the API server's certificate (in a pod:
    /// `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cafile: Option<String>,
    /// Claim of the review's user info (`username`, `groups`, `uid`, `extra.<key>`) → attribute
    /// category.
    #[serde(default = "default_kubernetes_claims_mapping")]
    pub claims_mapping: BTreeMap<String, String>,
    /// Which review to ask for.
    #[serde(default)]
    pub review: KubernetesReview,
    /// ferrostack's own token for `review: token_review`, read at each review (the kubelet
    /// rotates it).
    #[serde(default = "default_kubernetes_token_file")]
    pub token_file: String,
    /// Timeout of one request to the API server, in milliseconds.
    #[serde(default = "default_auth_timeout_ms")]
    pub timeout_ms: u64,
    /// How long the API server's answers are reused.
    #[serde(default)]
    pub cache: AuthCacheConfig,
}

/// How long an identity provider's answer about a token is reused, so that not every request
/// (garbage tokens included) costs a call to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AuthCacheConfig {
    /// How long an accepted token's user is reused, in seconds; 0 turns the cache off. A revoked
    /// token keeps working for at most this long.
    #[serde(default = "default_auth_cache_ttl_seconds")]
    pub ttl_seconds: u64,
    /// How long a refusal is reused, in seconds; 0 asks again every time. Unreachable or failing
    /// providers (503) are never cached.
    #[serde(default = "default_auth_cache_negative_ttl_seconds")]
    pub negative_ttl_seconds: u64,
    /// Most answers kept; the oldest go first.
    #[serde(default = "default_auth_cache_max_entries")]
    pub max_entries: usize,
}

impl Default for AuthCacheConfig {
    fn default() -> Self {
        Self {
            ttl_seconds: default_auth_cache_ttl_seconds(),
            negative_ttl_seconds: default_auth_cache_negative_ttl_seconds(),
            max_entries: default_auth_cache_max_entries(),
        }
    }
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
    /// Addresses (`10.0.0.7`) or networks (`10.0.0.0/8`, `fd00::/8`) the trusted proxy connects
    /// from; a request from any other peer is refused. Empty: every peer is trusted (and a
    /// warning says so at start-up).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_proxies: Vec<String>,
}

/// An address or network of `upstream_header.trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNetwork {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl IpNetwork {
    /// `a.b.c.d`, `a.b.c.d/n`, an IPv6 address, or an IPv6 address with `/n`.
    pub fn parse(text: &str) -> Option<Self> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, n)) => (a.parse::<std::net::IpAddr>().ok()?, Some(n.parse::<u8>().ok()?)),
            None => (text.parse().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    /// Whether `ip` is inside (IPv4-mapped IPv6 peers are compared as IPv4).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        // Compare the leading `prefix` bits: shift the rest out (a shift by the full width, for
        // a /0 network, leaves nothing to compare).
        let same = |net: u128, ip: u128, width: u32| {
            let shift = width - u32::from(self.prefix);
            net.checked_shr(shift).unwrap_or(0) == ip.checked_shr(shift).unwrap_or(0)
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => same(u128::from(u32::from(net)), u128::from(u32::from(ip)), 32),
            (IpAddr::V6(net), IpAddr::V6(ip)) => same(u128::from(net), u128::from(ip), 128),
            _ => false,
        }
    }
}

// ---- defaults (docs/configuration.md lists each one) ----

/// Default `oauth2_token.audience`.
pub fn default_audience() -> String {
    "ferrostack".to_owned()
}

/// Category the default claims mapping files `sub` and `username` under.
pub const IDENTITY_CATEGORY: &str = "users";

/// Default `oauth2_token.claims_mapping`: the reference's, except that `sub` and `username` go to
/// their own category ([`IDENTITY_CATEGORY`]) instead of `roles`: a user who picks the name
/// `admin` must not match `user with admin in roles`, and a user whose name is another's role
/// must not share that role's rows under the default policy.
pub fn default_oauth2_claims_mapping() -> BTreeMap<String, String> {
    [
        ("sub", IDENTITY_CATEGORY),
        ("username", IDENTITY_CATEGORY),
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

/// Default `custom.forward_headers`.
pub fn default_custom_forward_headers() -> Vec<String> {
    ["content-type", "user-agent", "x-request-id"].into_iter().map(str::to_owned).collect()
}

/// Default `github_token.github_api_base_url`.
pub fn default_github_api_base_url() -> String {
    "https://api.github.com".to_owned()
}

/// Default `github_token.claims_mapping`: the reference's, except that the login (which anyone
/// picks for themselves) goes to [`IDENTITY_CATEGORY`], not `roles`.
pub fn default_github_claims_mapping() -> BTreeMap<String, String> {
    [("login", IDENTITY_CATEGORY), ("organizations", "teams")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Default `kubernetes.api_server_url`: the in-cluster service.
pub fn default_kubernetes_api_server_url() -> String {
    "https://kubernetes.default.svc".to_owned()
}

/// Default `kubernetes.claims_mapping`: the reference's, except that the user name goes to
/// [`IDENTITY_CATEGORY`]; groups (set by the cluster's administrators) stay in `roles`.
pub fn default_kubernetes_claims_mapping() -> BTreeMap<String, String> {
    [("username", IDENTITY_CATEGORY), ("groups", "roles")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Default `kubernetes.token_file`: the pod's service-account token.
pub fn default_kubernetes_token_file() -> String {
    "/var/run/secrets/kubernetes.io/serviceaccount/token".to_owned()
}

/// Default `cache.ttl_seconds`.
pub fn default_auth_cache_ttl_seconds() -> u64 {
    30
}

/// Default `cache.negative_ttl_seconds`.
pub fn default_auth_cache_negative_ttl_seconds() -> u64 {
    5
}

/// Default `cache.max_entries`.
pub fn default_auth_cache_max_entries() -> usize {
    10_000
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
            for (i, h) in c.forward_headers.iter().enumerate() {
                header_name(&format!("forward_headers[{i}]"), h, &mut p);
            }
            cache(&c.cache, &mut p);
        }
        AuthProviderConfig::UpstreamHeader(c) => {
            header_name("principal_header", &c.principal_header, &mut p);
            if let Some(h) = &c.attributes_header {
                header_name("attributes_header", h, &mut p);
            }
            for (i, proxy) in c.trusted_proxies.iter().enumerate() {
                if IpNetwork::parse(proxy).is_none() {
                    p(
                        &format!("trusted_proxies[{i}]"),
                        format!("'{proxy}' is not an IP address or a network like 10.0.0.0/8"),
                    );
                }
            }
        }
        AuthProviderConfig::GithubToken(c) => {
            url("github_api_base_url", &c.github_api_base_url, &mut p);
            claims_mapping(&c.claims_mapping, &mut p);
            range("timeout_ms", c.timeout_ms, 1, 600_000, "ms", &mut p);
            cache(&c.cache, &mut p);
        }
        AuthProviderConfig::Kubernetes(c) => {
            url("api_server_url", &c.api_server_url, &mut p);
            if let Some(f) = &c.tls_cafile {
                non_empty("tls_cafile", f, &mut p);
            }
            claims_mapping(&c.claims_mapping, &mut p);
            if c.review == KubernetesReview::TokenReview {
                non_empty("token_file", &c.token_file, &mut p);
            }
            range("timeout_ms", c.timeout_ms, 1, 600_000, "ms", &mut p);
            cache(&c.cache, &mut p);
        }
    }
}

fn cache(c: &AuthCacheConfig, p: &mut impl FnMut(&str, String)) {
    range("cache.ttl_seconds", c.ttl_seconds, 0, 86_400, "seconds", p);
    range("cache.negative_ttl_seconds", c.negative_ttl_seconds, 0, 3_600, "seconds", p);
    let max = u64::try_from(c.max_entries).unwrap_or(u64::MAX);
    range("cache.max_entries", max, 1, 10_000_000, "", p);
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
    cache(&c.cache, p);
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
