//! Authentication and route policy through the real server: status codes, the error shape, public
//! routes, and an identity provider that is down.

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::{TestApp, config_from_yaml, test_server_settings};
use reqwest::StatusCode;
use serde_json::Value;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("auth::static_tokens_guard_every_route_but_the_public_ones", static_tokens),
        Test::plain("auth::route_policy_permits_and_forbids_by_path_and_attribute", route_policy),
        Test::plain("auth::identity_provider_down_is_503_and_the_server_keeps_serving", provider_down),
        Test::plain("auth::upstream_header_names_the_principal", upstream_header),
    ]
}

const STATIC_TOKENS: &str = "
    provider_config:
      type: static
      tokens:
        - { token: alice-token, principal: alice, attributes: { roles: [admin], teams: [ml] } }
        - { token: bob-token, principal: bob, attributes: { roles: [user] } }
";

/// A server on the built-in SQLite set-up under `home`, with `auth` as its `server.auth` block.
async fn spawn(home: &std::path::Path, auth: &str) -> TestApp {
    let yaml = format!("version: 2\nserver:\n  auth:\n{auth}");
    let mut config = config_from_yaml(&yaml, &[("FERROSTACK_HOME", &home.display().to_string())]);
    test_server_settings(&mut config);
    TestApp::spawn(&config, ServeOptions::default()).await
}

async fn get(app: &TestApp, path: &str, headers: &[(&str, &str)]) -> (StatusCode, reqwest::header::HeaderMap, Value) {
    let mut req = app.http.get(format!("{}{path}", app.base));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    let headers = res.headers().clone();
    (status, headers, res.json().await.unwrap_or(Value::Null))
}

async fn static_tokens() {
    let home = tempfile::tempdir().expect("tempdir");
    let app = spawn(home.path(), STATIC_TOKENS).await;

    for path in ["/v1/health", "/v1/version", "/readyz"] {
        assert_eq!(get(&app, path, &[]).await.0, StatusCode::OK, "{path} needs no credentials");
    }
    let (status, _, body) = get(&app, "/v1/readiness", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "readiness details need credentials: {body}");
    let (status, _, body) = get(&app, "/v1/readiness", &[("authorization", "Bearer alice-token")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["backends"].is_object(), "{body}");

    let (status, headers, body) = get(&app, "/v1/chat/completions", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(headers.get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    assert_eq!(body["error"]["type"], "authentication_error", "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("Authentication required"), "{body}");

    let (status, _, body) = get(&app, "/v1/chat/completions", &[("authorization", "Basic YWxpY2U6eA==")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["error"]["message"], "Invalid Authorization header format", "{body}");

    let (status, _, body) = get(&app, "/v1/chat/completions", &[("authorization", "Bearer not-a-token")]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(!body.to_string().contains("not-a-token"), "the token is never echoed: {body}");

    // A good token passes authentication (and then meets the router: no such route yet).
    let (status, _, body) = get(&app, "/v1/no-such-route", &[("authorization", "Bearer alice-token")]).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    app.stop().await.expect("clean stop");
}

async fn route_policy() {
    let home = tempfile::tempdir().expect("tempdir");
    let auth = format!(
        "{STATIC_TOKENS}
    route_policy:
      - permit: {{ paths: [/v1/health, /v1/version, /readyz] }}
      - permit: {{ paths: /v1/chat/* }}
        when: user with admin in roles
      - forbid: {{ paths: '*' }}
"
    );
    let app = spawn(home.path(), &auth).await;
    assert_eq!(get(&app, "/v1/health", &[]).await.0, StatusCode::OK, "public and permitted");

    let alice = [("authorization", "Bearer alice-token")];
    let bob = [("authorization", "Bearer bob-token")];
    let (status, _, body) = get(&app, "/v1/chat/completions", &alice).await;
    assert_eq!(status, StatusCode::OK, "admin passes the route policy: {body}");

    let (status, _, body) = get(&app, "/v1/chat/completions", &bob).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"]["type"], "permission_error", "{body}");
    assert_eq!(
        body["error"]["message"], "Access denied: insufficient permissions for route /v1/chat/completions",
        "{body}"
    );

    let (status, _, body) = get(&app, "/v1/models", &alice).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "the catch-all forbid applies to admins too: {body}");
    app.stop().await.expect("clean stop");
}

async fn provider_down() {
    let home = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1: the custom endpoint refuses connections.
    let auth = "
    provider_config:
      type: custom
      endpoint: http://127.0.0.1:1/authenticate
      timeout_ms: 2000
";
    let app = spawn(home.path(), auth).await;
    let (status, _, body) = get(&app, "/v1/chat/completions", &[("authorization", "Bearer some-token")]).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"]["type"], "service_unavailable", "{body}");
    assert_eq!(get(&app, "/v1/health", &[]).await.0, StatusCode::OK, "the server keeps serving");
    app.stop().await.expect("clean stop");
}

async fn upstream_header() {
    let home = tempfile::tempdir().expect("tempdir");
    let auth = "
    provider_config:
      type: upstream_header
      principal_header: x-authenticated-user
      attributes_header: x-authenticated-attributes
";
    let app = spawn(home.path(), auth).await;
    let (status, _, body) = get(&app, "/v1/chat/completions", &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("x-authenticated-user"), "{body}");

    let headers = [("x-authenticated-user", "carol"), ("x-authenticated-attributes", r#"{"teams": ["ml"]}"#)];
    assert_eq!(get(&app, "/v1/no-such-route", &headers).await.0, StatusCode::NOT_FOUND, "authenticated");

    let bad = [("x-authenticated-user", "carol"), ("x-authenticated-attributes", "not json")];
    let (status, _, body) = get(&app, "/v1/no-such-route", &bad).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "bad attributes header: {body}");
    app.stop().await.expect("clean stop");
}
