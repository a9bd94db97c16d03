//! `oauth2_token` with `introspection` (RFC 7662).

use ferrostack_authz::authn::{AuthError, Authenticator, RequestInfo};
use ferrostack_testkit::Test;
use serde_json::json;

use crate::support::{Server, attrs, authenticator, bearer, err, idp, nothing_listens, ok};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("introspection::active_with_basic_auth", active_with_basic_auth),
        Test::plain("introspection::secret_in_body", secret_in_body),
        Test::plain("introspection::username_when_no_sub", username_when_no_sub),
        Test::plain("introspection::inactive", inactive),
        Test::plain("introspection::non_200", non_200),
        Test::plain("introspection::garbage_body", garbage_body),
        Test::plain("introspection::timeout_is_503", timeout),
        Test::plain("introspection::unreachable_is_503", unreachable),
        Test::plain("introspection::missing_header_names_the_host", missing_header),
    ]
}

fn config(url: &str, in_body: bool) -> Authenticator {
    authenticator(json!({
        "type": "oauth2_token",
        "introspection": {"url": url, "client_id": "ferro", "client_secret": "s3cret", "send_secret_in_body": in_body},
        "claims_mapping": {"groups": "teams", "scope": "scopes", "realm_access.roles": "roles"},
        "timeout_ms": 2000,
    }))
}

async fn active_with_basic_auth() {
    let s: Server = idp().await;
    let auth = config(&s.url("/introspect"), false);
    let user = ok(auth.authenticate(&bearer("active-alice")).await);
    assert_eq!(user.principal, "alice");
    assert_eq!(
        user.attributes,
        Some(attrs(&[("roles", &["admin"]), ("scopes", &["read", "write"]), ("teams", &["g1", "g2"])]))
    );
    let (authz, form) = s.idp.introspection_seen.lock().unwrap().clone().unwrap();
    // base64("ferro:s3cret")
    assert_eq!(authz.as_deref(), Some("Basic ZmVycm86czNjcmV0"));
    assert_eq!(form.get("token").map(String::as_str), Some("active-alice"));
    assert!(!form.contains_key("client_secret"));
}

async fn secret_in_body() {
    let s = idp().await;
    let auth = config(&s.url("/introspect"), true);
    ok(auth.authenticate(&bearer("active-alice")).await);
    let (authz, form) = s.idp.introspection_seen.lock().unwrap().clone().unwrap();
    assert_eq!(authz, None);
    assert_eq!(form.get("client_id").map(String::as_str), Some("ferro"));
    assert_eq!(form.get("client_secret").map(String::as_str), Some("s3cret"));
}

async fn username_when_no_sub() {
    let s = idp().await;
    let auth = config(&s.url("/introspect"), false);
    let user = ok(auth.authenticate(&bearer("user-bob")).await);
    assert_eq!(user.principal, "bob");
    assert_eq!(user.attributes, None);
}

async fn inactive() {
    let s = idp().await;
    let auth = config(&s.url("/introspect"), false);
    err(auth.authenticate(&bearer("revoked")).await, 401, "Token not active");
    // "active" must be the boolean true.
    err(auth.authenticate(&bearer("activestr")).await, 401, "Token not active");
}

async fn non_200() {
    let s = idp().await;
    let auth = config(&s.url("/introspect"), false);
    err(auth.authenticate(&bearer("status-500")).await, 401, "Token introspection failed: 500");
    err(auth.authenticate(&bearer("status-401")).await, 401, "Token introspection failed: 401");
}

async fn garbage_body() {
    let s = idp().await;
    let auth = config(&s.url("/introspect"), false);
    err(auth.authenticate(&bearer("garbage")).await, 401, "Invalid token introspection response");
    err(auth.authenticate(&bearer("array")).await, 401, "Invalid token introspection response");
}

async fn timeout() {
    let s = idp().await;
    let auth = authenticator(json!({
        "type": "oauth2_token",
        "introspection": {"url": s.url("/hang"), "client_id": "ferro", "client_secret": "s3cret"},
        "timeout_ms": 300,
    }));
    let e = err(auth.authenticate(&bearer("active-alice")).await, 503, "timeout");
    assert_eq!(e, AuthError::Timeout);
}

async fn unreachable() {
    let auth = config(&format!("{}/introspect", nothing_listens()), false);
    let e = err(auth.authenticate(&bearer("active-alice")).await, 503, "unavailable");
    assert_eq!(e, AuthError::Unavailable);
}

async fn missing_header() {
    let auth = config("http://idp.example.com/introspect", false);
    let e = err(auth.authenticate(&RequestInfo::new("GET", "/v1/models")).await, 401, "idp.example.com");
    assert!(e.message().starts_with("Authentication required"), "{e}");
}
