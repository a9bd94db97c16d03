//! `github_token`: a fake GitHub API on loopback (`github_api_base_url` points at it).

use ferrostack_authz::authn::Authenticator;
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::{Server, attrs, authenticator, bearer, err, hits, idp, nothing_listens, ok};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("github::login_and_organisations", login_and_organisations),
        Test::plain("github::organisations_over_pages", organisations_over_pages),
        Test::plain("github::organisations_failing_means_none", organisations_failing),
        Test::plain("github::refused_token_is_401", refused),
        Test::plain("github::server_error_is_503", server_error),
        Test::plain("github::unreachable_is_503", unreachable),
        Test::plain("github::missing_header_points_to_tokens", missing_header),
        Test::plain("github::custom_claims_mapping", custom_mapping),
    ]
}

fn config(s: &Server) -> Authenticator {
    authenticator(json!({"type": "github_token", "github_api_base_url": s.url("/github/"), "timeout_ms": 2000}))
}

async fn login_and_organisations() {
    let s = idp().await;
    let user = ok(config(&s).authenticate(&bearer("gh-alice")).await);
    assert_eq!(user.principal, "alice");
    // Default mapping: login → users (never roles: anyone picks their login), organizations →
    // teams (duplicates dropped).
    assert_eq!(user.attributes, Some(attrs(&[("teams", &["acme", "widgets"]), ("users", &["alice"])])));
}

async fn organisations_over_pages() {
    let s = idp().await;
    let user = ok(config(&s).authenticate(&bearer("gh-many")).await);
    assert_eq!(user.values("teams").len(), 150);
    assert_eq!(user.values("teams")[149], "org149");
    assert_eq!(hits(&s.idp.github_orgs_hits), 2, "a page of 100, then a short page");
}

async fn organisations_failing() {
    let s = idp().await;
    let user = ok(config(&s).authenticate(&bearer("gh-orgs-fail")).await);
    assert_eq!(user.principal, "lonely");
    assert_eq!(user.attributes, Some(attrs(&[("users", &["lonely"])])));
}

async fn refused() {
    let s = idp().await;
    let auth = config(&s);
    err(auth.authenticate(&bearer("nope")).await, 401, "GitHub token validation failed: 401");
    err(auth.authenticate(&bearer("gh-status-403")).await, 401, "GitHub token validation failed: 403");
}

async fn server_error() {
    let s = idp().await;
    err(config(&s).authenticate(&bearer("gh-status-502")).await, 503, "Authentication service unavailable");
}

async fn unreachable() {
    let auth = authenticator(json!({"type": "github_token", "github_api_base_url": nothing_listens()}));
    err(auth.authenticate(&bearer("gh-alice")).await, 503, "Authentication service unavailable");
}

async fn missing_header() {
    let s = idp().await;
    let req = ferrostack_authz::authn::RequestInfo::new("GET", "/v1/models");
    err(config(&s).authenticate(&req).await, 401, "GitHub token");
}

async fn custom_mapping() {
    let s = idp().await;
    let auth = authenticator(json!({
        "type": "github_token", "github_api_base_url": s.url("/github"),
        "claims_mapping": {"organizations": "namespaces", "id": "ids"},
    }));
    let user = ok(auth.authenticate(&bearer("gh-alice")).await);
    assert_eq!(user.attributes, Some(attrs(&[("ids", &["42"]), ("namespaces", &["acme", "widgets"])])));
}
