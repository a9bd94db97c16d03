//! Where a run config leaves a deployment open: said at start-up (and by `config check`), because
//! each of these is a legitimate choice on a laptop and a hole on a shared network.

use ferrostack_config::{
    AuthProviderConfig, BackendConfig, Condition, Conditions, IDENTITY_CATEGORY, InferenceProviderConfig, RunConfig,
    SslMode,
};

/// Passwords that ship in examples and images; a database reachable with one is everyone's.
const WELL_KNOWN_PASSWORDS: &[&str] = &["postgres", "password", "ferrostack", "changeme", "secret", "admin"];

/// Whether `host` names this machine only.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host of an `http://` or `https://` URL (without port or path).
fn url_host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if let Some(v6) = authority.strip_prefix('[') {
        return v6.split_once(']').map(|(h, _)| h);
    }
    Some(authority.split(':').next().unwrap_or(authority))
}

/// One sentence per way `config` leaves the deployment open; empty when none.
pub fn warnings(config: &RunConfig) -> Vec<String> {
    let mut out = Vec::new();
    let auth = &config.server.auth;
    let host = config.server.host.as_str();
    match &auth.provider_config {
        None if !is_loopback(host) => out.push(format!(
            "authentication is off and the server listens on {host}: anyone who can reach the port reads, changes \
             and deletes every stored row; set server.auth.provider_config, or listen on 127.0.0.1"
        )),
        Some(AuthProviderConfig::UpstreamHeader(c)) => {
            let who = if c.trusted_proxies.is_empty() {
                "from any peer (server.auth.provider_config.trusted_proxies is empty)".to_owned()
            } else {
                format!("from {}", c.trusted_proxies.join(", "))
            };
            out.push(format!(
                "authentication trusts the {} header {who}: the port must be reachable only through the proxy \
                 that sets it, and the proxy must strip any copy the client sent",
                c.principal_header
            ));
        }
        Some(AuthProviderConfig::OAuth2Token(c)) => {
            if !c.verify_tls {
                out.push(
                    "server.auth.provider_config.verify_tls is false: keys and introspection answers are fetched \
                     without checking the identity provider's certificate, so anyone on the path can forge identities"
                        .to_owned(),
                );
            }
            identity_claims(config, &c.claims_mapping, &["sub", "username"], &mut out);
        }
        Some(AuthProviderConfig::GithubToken(c)) => identity_claims(config, &c.claims_mapping, &["login"], &mut out),
        Some(AuthProviderConfig::Kubernetes(c)) => identity_claims(config, &c.claims_mapping, &["username"], &mut out),
        _ => {}
    }
    for entry in config.providers.get("inference").into_iter().flatten() {
        let Some(Ok(provider)) = InferenceProviderConfig::from_entry(entry, "") else { continue };
        if !provider.verify_tls {
            out.push(format!(
                "inference provider {} is called without checking its TLS certificate (verify_tls: false): its \
                 API key and every prompt can be read on the way",
                entry.provider_id
            ));
        }
        if provider.url.starts_with("http://") && !url_host(&provider.url).is_some_and(is_loopback) {
            out.push(format!(
                "inference provider {} is called over plain http at {}: prompts, answers and its API key cross the \
                 network unencrypted",
                entry.provider_id, provider.url
            ));
        }
    }
    for (name, backend) in &config.storage.backends {
        let (BackendConfig::KvPostgres(pg) | BackendConfig::SqlPostgres(pg)) = backend else { continue };
        if is_loopback(&pg.host) {
            continue;
        }
        let verified = matches!(pg.ssl_mode, SslMode::VerifyCa | SslMode::VerifyFull)
            || (pg.ssl_mode == SslMode::Require && pg.ca_cert_path.is_some());
        if !verified {
            out.push(format!(
                "storage backend {name} reaches PostgreSQL at {} without a verified TLS connection (ssl_mode: {}): \
                 use ssl_mode verify-full across any network you do not control",
                pg.host,
                match pg.ssl_mode {
                    SslMode::Disable => "disable",
                    SslMode::Prefer => "prefer",
                    SslMode::Require => "require",
                    SslMode::VerifyCa => "verify-ca",
                    SslMode::VerifyFull => "verify-full",
                }
            ));
        }
        if pg.password_secret().is_some_and(|p| WELL_KNOWN_PASSWORDS.contains(&p)) {
            out.push(format!(
                "storage backend {name} uses a well-known password for PostgreSQL at {}: set a generated one",
                pg.host
            ));
        }
    }
    out
}

/// A warning for each of `claims` (ones a user names themselves) that `mapping` files under a
/// category the policy tests.
fn identity_claims(
    config: &RunConfig,
    mapping: &std::collections::BTreeMap<String, String>,
    claims: &[&str],
    out: &mut Vec<String>,
) {
    for claim in claims {
        let Some(category) = mapping.get(*claim).filter(|cat| *cat != IDENTITY_CATEGORY) else { continue };
        if policy_tests_category(config, category) {
            out.push(format!(
                "claims_mapping files the '{claim}' claim under '{category}', which the access or route policy tests: \
                 a user whose name equals one of its values (e.g. 'admin') matches it; map {claim} to \
                 '{IDENTITY_CATEGORY}' instead"
            ));
        }
    }
}

/// Whether any access rule in force (the default policy when none is configured) or route rule
/// has a condition on `category`.
fn policy_tests_category(config: &RunConfig, category: &str) -> bool {
    let auth = &config.server.auth;
    let access = ferrostack_authz::policy::effective(&auth.access_policy);
    let conditions = access.iter().map(|r| &r.conditions).chain(auth.route_policy.iter().map(|r| &r.conditions));
    conditions
        .flat_map(|c| match c {
            Conditions::Always => [].iter(),
            Conditions::When(cs) | Conditions::Unless(cs) => cs.iter(),
        })
        .any(|c| match c {
            Condition::UserInOwners(cat) | Condition::UserNotInOwners(cat) => cat == category,
            Condition::UserWithValueIn { category: cat, .. } | Condition::UserWithValueNotIn { category: cat, .. } => {
                cat == category
            }
            _ => false,
        })
}
