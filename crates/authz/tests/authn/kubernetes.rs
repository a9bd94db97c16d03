//! `kubernetes`: a fake API server on loopback answers `SelfSubjectReview` and `TokenReview`.

use ferrostack_authz::authn::{Authenticator, RequestInfo};
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::{Server, attrs, authenticator, bearer, err, hits, idp, nothing_listens, ok};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("kubernetes::self_subject_review", self_subject_review),
        Test::plain("kubernetes::token_review_with_own_token", token_review),
        Test::plain("kubernetes::token_review_without_own_token_is_503", token_review_no_token_file),
        Test::plain("kubernetes::refusals_are_401", refusals),
        Test::plain("kubernetes::server_error_is_503", server_error),
        Test::plain("kubernetes::unreachable_is_503", unreachable),
        Test::plain("kubernetes::missing_header", missing_header),
    ]
}

fn config(s: &Server) -> Authenticator {
    authenticator(json!({"type": "kubernetes", "api_server_url": s.url("/k8s"), "timeout_ms": 2000}))
}

async fn self_subject_review() {
    let s = idp().await;
    let user = ok(config(&s).authenticate(&bearer("k8s-sa")).await);
    assert_eq!(user.principal, "system:serviceaccount:ml:app");
    // Default mapping: groups → roles, username → users.
    assert_eq!(
        user.attributes,
        Some(attrs(&[("roles", &["system:serviceaccounts", "team-a"]), ("users", &["system:serviceaccount:ml:app"])]))
    );
    let auth = authenticator(json!({
        "type": "kubernetes", "api_server_url": s.url("/k8s/"), "claims_mapping": {"groups": "teams", "uid": "uids"},
    }));
    let user = ok(auth.authenticate(&bearer("k8s-sa")).await);
    assert_eq!(user.attributes, Some(attrs(&[("teams", &["system:serviceaccounts", "team-a"]), ("uids", &["u-1"])])));
}

async fn token_review() {
    let s = idp().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("token");
    std::fs::write(&file, "own-token\n").unwrap();
    let auth = authenticator(json!({
        "type": "kubernetes", "api_server_url": s.url("/k8s"), "review": "token_review",
        "token_file": file.display().to_string(),
    }));
    let user = ok(auth.authenticate(&bearer("k8s-sa")).await);
    assert_eq!(user.principal, "system:serviceaccount:ml:app");
    err(auth.authenticate(&bearer("forged")).await, 401, "Invalid token");

    // ferrostack's own token is read at each review: a rotated one is used.
    std::fs::write(&file, "stale-token").unwrap();
    err(auth.authenticate(&bearer("other")).await, 401, "Invalid token");
}

async fn token_review_no_token_file() {
    let s = idp().await;
    let auth = authenticator(json!({
        "type": "kubernetes", "api_server_url": s.url("/k8s"), "review": "token_review",
        "token_file": "/nonexistent/token",
    }));
    err(auth.authenticate(&bearer("k8s-sa")).await, 503, "Authentication service unavailable");
    assert_eq!(hits(&s.idp.kubernetes_hits), 0);
}

async fn refusals() {
    let s = idp().await;
    let auth = config(&s);
    err(auth.authenticate(&bearer("garbage")).await, 401, "Invalid token");
    err(auth.authenticate(&bearer("k8s-status-403")).await, 401, "Token validation failed: 403");
    err(auth.authenticate(&bearer("k8s-no-user")).await, 401, "Token validation error");
}

async fn server_error() {
    let s = idp().await;
    err(config(&s).authenticate(&bearer("k8s-status-500")).await, 503, "Authentication service unavailable");
}

async fn unreachable() {
    let auth = authenticator(json!({"type": "kubernetes", "api_server_url": nothing_listens()}));
    err(auth.authenticate(&bearer("k8s-sa")).await, 503, "Authentication service unavailable");
}

async fn missing_header() {
    let s = idp().await;
    err(config(&s).authenticate(&RequestInfo::new("GET", "/v1/models")).await, 401, "Authentication required");
}
