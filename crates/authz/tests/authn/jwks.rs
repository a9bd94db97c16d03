//! `oauth2_token` with `jwks`.

use std::sync::atomic::Ordering;

use ferrostack_authz::authn::{AuthError, Authenticator, RequestInfo};
use ferrostack_testkit::Test;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{KEYS, Server, attrs, authenticator, bearer, claims, err, idp, nothing_listens, now, ok, sign};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("jwks::valid_token_for_each_algorithm", valid_token_for_each_algorithm),
        Test::plain("jwks::claims_mapping", claims_mapping),
        Test::plain("jwks::expired", expired),
        Test::plain("jwks::not_yet_valid", not_yet_valid),
        Test::plain("jwks::audience", audience),
        Test::plain("jwks::issuer", issuer),
        Test::plain("jwks::unknown_kid_is_refused_and_refetches_are_rate_limited", unknown_kid),
        Test::plain("jwks::key_rotation_is_picked_up", key_rotation),
        Test::plain("jwks::tampered_signature", tampered_signature),
        Test::plain("jwks::algorithm_mismatch_none_and_hmac", algorithm_mismatch),
        Test::plain("jwks::authorization_header", authorization_header),
        Test::plain("jwks::endpoint_down_is_503", endpoint_down),
        Test::plain("jwks::endpoint_timeout_is_503", endpoint_timeout),
        Test::plain("jwks::bearer_token_for_the_jwks", jwks_token),
        Test::current_thread("jwks::periodic_recheck", periodic_recheck),
    ]
}

/// An IdP serving the RSA, EC and Ed25519 keys as `rsa`, `ec`, `ed`.
async fn setup() -> Server {
    let s = idp().await;
    s.idp.set_jwks(vec![KEYS.rsa.jwk("rsa"), KEYS.ec.jwk("ec"), KEYS.ed.jwk("ed")]);
    s
}

fn config(s: &Server, extra: Value) -> Authenticator {
    let mut c = json!({"type": "oauth2_token", "jwks": {"uri": s.url("/jwks")}, "timeout_ms": 2000});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    authenticator(c)
}

async fn valid_token_for_each_algorithm() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    for (key, kid) in [(&KEYS.rsa, "rsa"), (&KEYS.ec, "ec"), (&KEYS.ed, "ed")] {
        let user = ok(auth.authenticate(&bearer(&sign(key, kid, &claims("alice")))).await);
        assert_eq!(user.principal, "alice", "{kid}");
        // Default mapping: sub → users (never roles: a user named "admin" is no admin).
        assert_eq!(user.attributes, Some(attrs(&[("users", &["alice"])])), "{kid}");
    }
    assert_eq!(s.idp.jwks_hits(), 1, "the key set is fetched once and cached");
    // A token without a kid, when the set has one key.
    s.idp.set_jwks(vec![KEYS.ec.jwk("only")]);
    let auth = config(&s, json!({}));
    let token = jsonwebtoken::encode(&Header::new(Algorithm::ES256), &claims("bob"), &KEYS.ec.encoding).unwrap();
    assert_eq!(ok(auth.authenticate(&bearer(&token)).await).principal, "bob");
}

async fn claims_mapping() {
    let s = setup().await;
    let auth = config(
        &s,
        json!({"claims_mapping": {
            "resource_access.app.roles": "roles",
            "scope": "scopes",
            "groups": "teams",
            "team": "teams",
            "tenant.id": "namespaces",
            "weird": "other",
        }}),
    );
    let mut c = claims("alice");
    c["resource_access"] = json!({"app": {"roles": ["admin", "dev"]}});
    c["scope"] = json!("read  write");
    c["groups"] = json!(["g1", "g2"]);
    c["team"] = json!("t1");
    c["tenant.id"] = json!("literal-dotted");
    c["weird"] = json!({"not": "a list"});
    let user = ok(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await);
    assert_eq!(
        user.attributes,
        Some(attrs(&[
            ("namespaces", &["literal-dotted"]),
            ("roles", &["admin", "dev"]),
            ("scopes", &["read", "write"]),
            ("teams", &["g1", "g2", "t1"]),
        ]))
    );
    // Nothing mapped: no attributes at all.
    let auth = config(&s, json!({"claims_mapping": {"absent": "roles"}}));
    let user = ok(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("alice")))).await);
    assert_eq!(user.attributes, None);
}

async fn expired() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    let mut c = claims("alice");
    c["exp"] = json!(now() - 3600);
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await, 401, "expired");
    // Within the leeway: accepted.
    c["exp"] = json!(now() - 5);
    ok(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await);
    // No exp at all: refused.
    let mut c = claims("alice");
    c.as_object_mut().unwrap().remove("exp");
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await, 401, "exp");
}

async fn not_yet_valid() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    let mut c = claims("alice");
    c["nbf"] = json!(now() + 3600);
    err(auth.authenticate(&bearer(&sign(&KEYS.ec, "ec", &c))).await, 401, "not valid yet");
    c["nbf"] = json!(now() - 10);
    ok(auth.authenticate(&bearer(&sign(&KEYS.ec, "ec", &c))).await);
}

async fn audience() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    let mut c = claims("alice");
    c["aud"] = json!("someone-else");
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await, 401, "audience");
    c["aud"] = json!(["someone-else", "ferrostack"]);
    ok(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await);
    c.as_object_mut().unwrap().remove("aud");
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await, 401, "aud");
    // A configured audience.
    let auth = config(&s, json!({"audience": "api://mine"}));
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("alice")))).await, 401, "audience");
    let mut c = claims("alice");
    c["aud"] = json!("api://mine");
    ok(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &c))).await);
}

async fn issuer() {
    let s = setup().await;
    let auth = config(&s, json!({"issuer": "https://idp.test"}));
    ok(auth.authenticate(&bearer(&sign(&KEYS.ed, "ed", &claims("alice")))).await);
    let mut c = claims("alice");
    c["iss"] = json!("https://evil.test");
    err(auth.authenticate(&bearer(&sign(&KEYS.ed, "ed", &c))).await, 401, "issuer");
    c.as_object_mut().unwrap().remove("iss");
    err(auth.authenticate(&bearer(&sign(&KEYS.ed, "ed", &c))).await, 401, "iss");
    // No issuer configured: not checked.
    let auth = config(&s, json!({}));
    ok(auth.authenticate(&bearer(&sign(&KEYS.ed, "ed", &c))).await);
    // The missing-header message names the issuer.
    let auth = config(&s, json!({"issuer": "https://idp.test"}));
    err(auth.authenticate(&RequestInfo::new("GET", "/v1/models")).await, 401, "https://idp.test");
}

async fn unknown_kid() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    // First use fetches the set: the kid is not in it.
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "nope-1", &claims("a")))).await, 401, "unknown signing key");
    assert_eq!(s.idp.jwks_hits(), 1);
    // A second unknown kid triggers one refetch (it might be a rotation)...
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "nope-2", &claims("a")))).await, 401, "unknown signing key");
    assert_eq!(s.idp.jwks_hits(), 2);
    // ...and then a flood of made-up kids does not reach the identity provider.
    let mut tasks = Vec::new();
    for i in 0..50 {
        let auth = auth.clone();
        tasks.push(ferrostack_testkit::spawn(async move {
            auth.authenticate(&bearer(&sign(&KEYS.rsa, &format!("flood-{i}"), &claims("a")))).await
        }));
    }
    for t in tasks {
        err(t.await.unwrap(), 401, "unknown signing key");
    }
    assert_eq!(s.idp.jwks_hits(), 2, "unknown-kid refetches are rate-limited");
    // Known keys still work, from the cache.
    ok(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("a")))).await);
    assert_eq!(s.idp.jwks_hits(), 2);
}

async fn key_rotation() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    ok(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("a")))).await);
    assert_eq!(s.idp.jwks_hits(), 1);
    // The IdP rotates: a new key appears; tokens signed with it are accepted after one refetch.
    s.idp.set_jwks(vec![KEYS.rsa.jwk("rsa"), KEYS.rsa2.jwk("rsa-2026")]);
    let user = ok(auth.authenticate(&bearer(&sign(&KEYS.rsa2, "rsa-2026", &claims("rotated")))).await);
    assert_eq!(user.principal, "rotated");
    assert_eq!(s.idp.jwks_hits(), 2);
    ok(auth.authenticate(&bearer(&sign(&KEYS.rsa2, "rsa-2026", &claims("rotated")))).await);
    assert_eq!(s.idp.jwks_hits(), 2, "the new key is cached");
    // A token signed by the new key but naming the old kid: bad signature.
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa2, "rsa", &claims("x")))).await, 401, "signature");
}

async fn tampered_signature() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    for (key, kid) in [(&KEYS.rsa, "rsa"), (&KEYS.ec, "ec"), (&KEYS.ed, "ed")] {
        let token = sign(key, kid, &claims("alice"));
        // Another payload under the original signature.
        let other = sign(key, kid, &claims("mallory"));
        let parts: Vec<&str> = token.split('.').collect();
        let other_parts: Vec<&str> = other.split('.').collect();
        let forged = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
        err(auth.authenticate(&bearer(&forged)).await, 401, "Invalid JWT token");
        // A flipped character in the middle of the signature.
        let sig = parts[2];
        let mid = sig.len() / 2;
        let flipped = if &sig[mid..=mid] == "A" { "B" } else { "A" };
        let forged = format!("{}.{}.{}{flipped}{}", parts[0], parts[1], &sig[..mid], &sig[mid + 1..]);
        err(auth.authenticate(&bearer(&forged)).await, 401, "Invalid JWT token");
    }
}

async fn algorithm_mismatch() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    // Signed with the EC key but naming the RSA key's kid.
    let token = sign(&KEYS.ec, "rsa", &claims("a"));
    err(auth.authenticate(&bearer(&token)).await, 401, "does not match");
    // HS256 (with the RSA key's public JWK text as the secret: the classic confusion attack).
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa".to_owned());
    let secret = KEYS.rsa.jwk("rsa").to_string();
    let token = jsonwebtoken::encode(&header, &claims("a"), &EncodingKey::from_secret(secret.as_bytes())).unwrap();
    err(auth.authenticate(&bearer(&token)).await, 401, "not allowed");
    // RS384 with the right key: not allowed either.
    let mut header = Header::new(Algorithm::RS384);
    header.kid = Some("rsa".to_owned());
    let token = jsonwebtoken::encode(&header, &claims("a"), &KEYS.rsa.encoding).unwrap();
    err(auth.authenticate(&bearer(&token)).await, 401, "not allowed");
    // alg none, unsigned: {"alg":"none","typ":"JWT"}.
    let payload = sign(&KEYS.rsa, "rsa", &claims("a")).split('.').nth(1).unwrap().to_owned();
    let token = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    err(auth.authenticate(&bearer(&token)).await, 401, "Invalid JWT token");
    // A JWKS key whose declared alg disagrees with its type is not used.
    let mut jwk = KEYS.ec.jwk("ec-bad");
    jwk["alg"] = json!("RS256");
    s.idp.set_jwks(vec![jwk]);
    let auth = config(&s, json!({}));
    err(auth.authenticate(&bearer(&sign(&KEYS.ec, "ec-bad", &claims("a")))).await, 401, "unknown signing key");
    // An HMAC ("oct") key in the JWKS is never used.
    s.idp.set_jwks(vec![json!({"kty": "oct", "kid": "h", "k": "c2VjcmV0", "alg": "HS256"})]);
    let auth = config(&s, json!({}));
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("h".to_owned());
    let token = jsonwebtoken::encode(&header, &claims("a"), &EncodingKey::from_secret(b"secret")).unwrap();
    err(auth.authenticate(&bearer(&token)).await, 401, "not allowed");
}

async fn authorization_header() {
    let s = setup().await;
    let auth = config(&s, json!({}));
    let e = err(auth.authenticate(&RequestInfo::new("GET", "/v1/models")).await, 401, "Authentication required");
    assert!(matches!(e, AuthError::MissingCredentials(_)));
    for value in ["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "Token abc", "Bearer a b", "bearer"] {
        let req = RequestInfo::new("GET", "/").with_header("authorization", value);
        let e = err(auth.authenticate(&req).await, 401, "Invalid Authorization header format");
        assert_eq!(e, AuthError::InvalidHeaderFormat, "{value:?}");
    }
    for garbled in ["abc", "a.b.c", "....", "eyJhbGciOiJSUzI1NiJ9.e30.sig"] {
        err(auth.authenticate(&bearer(garbled)).await, 401, "Invalid JWT token");
    }
    // The scheme is case-insensitive.
    let token = sign(&KEYS.rsa, "rsa", &claims("alice"));
    let req = RequestInfo::new("GET", "/").with_header("AUTHORIZATION", format!("bearer {token}"));
    assert_eq!(ok(auth.authenticate(&req).await).principal, "alice");
}

async fn endpoint_down() {
    let auth = authenticator(json!({"type": "oauth2_token", "jwks": {"uri": format!("{}/jwks", nothing_listens())}}));
    let e = err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("a")))).await, 503, "unavailable");
    assert_eq!(e, AuthError::Unavailable);
    // The JWKS answers 500: unavailable too.
    let s = setup().await;
    *s.idp.jwks_status.lock().unwrap() = Some(500);
    let auth = config(&s, json!({}));
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("a")))).await, 503, "unavailable");
    // Right after a failure, requests do not hit the IdP again (back-off).
    err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("a")))).await, 503, "unavailable");
    assert_eq!(s.idp.jwks_hits(), 1);
}

async fn endpoint_timeout() {
    let s = setup().await;
    let auth = authenticator(json!({"type": "oauth2_token", "jwks": {"uri": s.url("/hang")}, "timeout_ms": 300}));
    let e = err(auth.authenticate(&bearer(&sign(&KEYS.rsa, "rsa", &claims("a")))).await, 503, "timeout");
    assert_eq!(e, AuthError::Timeout);
}

async fn jwks_token() {
    let s = setup().await;
    let token = sign(&KEYS.rsa, "rsa", &claims("a"));
    let without = authenticator(json!({"type": "oauth2_token", "jwks": {"uri": s.url("/jwks-with-token")}}));
    err(without.authenticate(&bearer(&token)).await, 503, "unavailable");
    let with = authenticator(
        json!({"type": "oauth2_token", "jwks": {"uri": s.url("/jwks-with-token"), "token": "jwks-secret"}}),
    );
    ok(with.authenticate(&bearer(&token)).await);
}

async fn periodic_recheck() {
    let s = setup().await;
    // key_recheck_period 1 s: a token after the period refetches the set. The clock is Tokio's,
    // paused and moved past the period (no real wait), then resumed for the HTTP calls.
    let auth = authenticator(json!({"type": "oauth2_token", "jwks": {"uri": s.url("/jwks"), "key_recheck_period": 1}}));
    let token = sign(&KEYS.rsa, "rsa", &claims("a"));
    ok(auth.authenticate(&bearer(&token)).await);
    assert_eq!(s.idp.jwks_hits.load(Ordering::SeqCst), 1);
    tokio::time::pause();
    tokio::time::advance(std::time::Duration::from_millis(1100)).await;
    tokio::time::resume();
    // The key was removed at the IdP: after the recheck the token is refused.
    s.idp.set_jwks(vec![KEYS.ec.jwk("ec")]);
    err(auth.authenticate(&bearer(&token)).await, 401, "unknown signing key");
    assert_eq!(s.idp.jwks_hits(), 2);
}
