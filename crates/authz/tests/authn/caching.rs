//! The providers that ask a remote identity provider reuse its answers for a short time: the fake
//! endpoints count the calls.

use std::sync::atomic::AtomicUsize;

use ferrostack_authz::authn::{Authenticator, RequestInfo};
use ferrostack_testkit::Test;
use serde_json::{Value, json};

use crate::support::{Server, authenticator, bearer, hits, idp, status};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("cache::introspection", introspection),
        Test::plain("cache::custom", custom),
        Test::plain("cache::github_token", github),
        Test::plain("cache::kubernetes", kubernetes),
        Test::plain("cache::custom_answers_are_per_request_summary", custom_per_request),
        Test::plain("cache::failures_are_not_cached", failures_not_cached),
    ]
}

/// The provider config for `kind` against `s`, with `cache`.
fn provider(kind: &str, s: &Server, cache: Value) -> Authenticator {
    let config = match kind {
        "introspection" => json!({"type": "oauth2_token",
            "introspection": {"url": s.url("/introspect"), "client_id": "c", "client_secret": "s"}}),
        "custom" => json!({"type": "custom", "endpoint": s.url("/custom")}),
        "github" => json!({"type": "github_token", "github_api_base_url": s.url("/github")}),
        _ => json!({"type": "kubernetes", "api_server_url": s.url("/k8s")}),
    };
    let mut config = config;
    if !cache.is_null() {
        config["cache"] = cache;
    }
    authenticator(config)
}

/// Twice the same good token, twice the same bad one: with the default cache, one call each;
/// with the cache off, every time.
async fn counts(kind: &str, good: &str, bad: &str, counter: fn(&Server) -> &AtomicUsize) {
    let s = idp().await;
    let auth = provider(kind, &s, Value::Null);
    for _ in 0..3 {
        assert!(auth.authenticate(&bearer(good)).await.is_ok(), "{kind}: {good}");
    }
    assert_eq!(hits(counter(&s)), 1, "{kind}: accepted token asked once");
    for _ in 0..3 {
        assert_eq!(auth.authenticate(&bearer(bad)).await.map_err(|e| status(&e)), Err(401), "{kind}: {bad}");
    }
    assert_eq!(hits(counter(&s)), 2, "{kind}: refusal cached too (briefly)");

    let s = idp().await;
    let off = provider(kind, &s, json!({"ttl_seconds": 0, "negative_ttl_seconds": 0}));
    for _ in 0..2 {
        let _ = off.authenticate(&bearer(good)).await;
        let _ = off.authenticate(&bearer(bad)).await;
    }
    assert_eq!(hits(counter(&s)), 4, "{kind}: cache off, every request asks");

    let s = idp().await;
    let positive_only = provider(kind, &s, json!({"negative_ttl_seconds": 0}));
    for _ in 0..2 {
        let _ = positive_only.authenticate(&bearer(good)).await;
        let _ = positive_only.authenticate(&bearer(bad)).await;
    }
    assert_eq!(hits(counter(&s)), 3, "{kind}: refusals not cached with negative_ttl_seconds 0");
}

async fn introspection() {
    counts("introspection", "active-alice", "inactive", |s| &s.idp.introspection_hits).await;
}

async fn custom() {
    counts("custom", "good", "status-403", |s| &s.idp.custom_hits).await;
}

async fn github() {
    counts("github", "gh-alice", "garbage", |s| &s.idp.github_user_hits).await;
}

async fn kubernetes() {
    counts("kubernetes", "k8s-sa", "garbage", |s| &s.idp.kubernetes_hits).await;
}

/// The custom endpoint decides per request summary: another path or query asks again.
async fn custom_per_request() {
    let s = idp().await;
    let auth = provider("custom", &s, Value::Null);
    let req = |path: &str| RequestInfo::new("GET", path).with_header("Authorization", "Bearer good");
    assert!(auth.authenticate(&req("/v1/models")).await.is_ok());
    assert!(auth.authenticate(&req("/v1/models")).await.is_ok());
    assert!(auth.authenticate(&req("/v1/chat/completions")).await.is_ok());
    assert!(auth.authenticate(&req("/v1/models").with_query("a", "1")).await.is_ok());
    assert_eq!(hits(&s.idp.custom_hits), 3);
    // A header that is not forwarded does not change the answer.
    assert!(auth.authenticate(&req("/v1/models").with_header("Cookie", "session=1")).await.is_ok());
    assert_eq!(hits(&s.idp.custom_hits), 3);
}

/// An identity provider that fails (503) is asked again next time.
async fn failures_not_cached() {
    let s = idp().await;
    let auth = provider("github", &s, Value::Null);
    for _ in 0..2 {
        assert_eq!(auth.authenticate(&bearer("gh-status-500")).await.map_err(|e| status(&e)), Err(503));
    }
    assert_eq!(hits(&s.idp.github_user_hits), 2);
}
