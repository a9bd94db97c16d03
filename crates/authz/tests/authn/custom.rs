//! `custom`: the operator's endpoint decides.

use ferrostack_authz::authn::{AuthError, Authenticator, RequestInfo};
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::{attrs, authenticator, bearer, err, idp, nothing_listens, ok};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("custom::ok_and_request_shape", ok_and_request_shape),
        Test::plain("custom::only_allowed_headers_are_sent", only_allowed_headers),
        Test::plain("custom::non_200", non_200),
        Test::plain("custom::bad_body", bad_body),
        Test::plain("custom::timeout_is_503", timeout),
        Test::plain("custom::unreachable_is_503", unreachable),
        Test::plain("custom::missing_header_names_the_host", missing_header),
    ]
}

fn config(endpoint: &str) -> Authenticator {
    authenticator(json!({"type": "custom", "endpoint": endpoint, "timeout_ms": 2000}))
}

async fn ok_and_request_shape() {
    let s = idp().await;
    // Only the listed headers go to the endpoint (issue 18): these two are listed here.
    let auth = authenticator(json!({
        "type": "custom", "endpoint": s.url("/custom"), "timeout_ms": 2000, "forward_headers": ["X-Tenant", "x-multi"],
    }));
    let req = RequestInfo::new("POST", "/v1/chat/completions")
        .with_header("Authorization", "Bearer good")
        .with_header("X-Tenant", "acme")
        .with_header("x-multi", "1")
        .with_header("X-Multi", "2")
        .with_query("a", "1")
        .with_query("a", "2")
        .with_query("b", "x");
    let user = ok(auth.authenticate(&req).await);
    assert_eq!(user.principal, "carol");
    assert_eq!(user.attributes, Some(attrs(&[("roles", &["admin"]), ("teams", &["t1", "t2"])])));
    let seen = s.idp.custom_seen.lock().unwrap().clone().unwrap();
    assert_eq!(
        seen,
        json!({
            "api_key": "good",
            "request": {
                "path": "/v1/chat/completions",
                "headers": {"x-tenant": "acme", "x-multi": "1, 2"},
                "params": {"a": ["1", "2"], "b": ["x"]},
            },
        })
    );
    let user = ok(auth.authenticate(&bearer("plain")).await);
    assert_eq!(user.principal, "dave");
    assert_eq!(user.attributes, None);
}

async fn only_allowed_headers() {
    let s = idp().await;
    let auth = config(&s.url("/custom"));
    let req = RequestInfo::new("GET", "/v1/models")
        .with_header("Authorization", "Bearer good")
        .with_header("Cookie", "session=secret")
        .with_header("X-Api-Key", "other-service-key")
        .with_header("User-Agent", "sdk/1")
        .with_header("X-Request-Id", "r-1");
    ok(auth.authenticate(&req).await);
    let seen = s.idp.custom_seen.lock().unwrap().clone().unwrap();
    assert_eq!(seen["request"]["headers"], json!({"user-agent": "sdk/1", "x-request-id": "r-1"}), "default allow-list");
}

async fn non_200() {
    let s = idp().await;
    let auth = config(&s.url("/custom"));
    err(auth.authenticate(&bearer("status-403")).await, 401, "Authentication failed: 403");
    err(auth.authenticate(&bearer("status-500")).await, 401, "Authentication failed: 500");
}

async fn bad_body() {
    let s = idp().await;
    let auth = config(&s.url("/custom"));
    for key in ["bad-body", "bad-attributes", "not-json"] {
        err(auth.authenticate(&bearer(key)).await, 401, "Invalid authentication response format");
    }
}

async fn timeout() {
    let s = idp().await;
    let auth = authenticator(json!({"type": "custom", "endpoint": s.url("/hang"), "timeout_ms": 300}));
    let e = err(auth.authenticate(&bearer("good")).await, 503, "timeout");
    assert_eq!(e, AuthError::Timeout);
}

async fn unreachable() {
    let auth = config(&format!("{}/custom", nothing_listens()));
    let e = err(auth.authenticate(&bearer("good")).await, 503, "unavailable");
    assert_eq!(e, AuthError::Unavailable);
}

async fn missing_header() {
    let auth = config("https://auth.example.org/check");
    let e = err(auth.authenticate(&RequestInfo::new("GET", "/v1/models")).await, 401, "validated by auth.example.org");
    assert!(matches!(e, AuthError::MissingCredentials(_)));
    err(
        auth.authenticate(&RequestInfo::new("GET", "/").with_header("authorization", "Basic x")).await,
        401,
        "Invalid Authorization header format",
    );
}
