//! `type: oauth2_token` with `jwks`: JWTs verified locally against the identity provider's keys.
//!
//! The key set is fetched on first use and kept. It is fetched again when it is older than
//! `key_recheck_period`, and when a token names a key id the set does not have (a key rotation) —
//! but such unknown-kid refetches happen at most once per [`UNKNOWN_KID_REFETCH_INTERVAL`] (or per
//! `key_recheck_period` when shorter), so a flood of tokens with made-up key ids cannot hammer the
//! identity provider. After a failed fetch, no new fetch is tried for [`FAILED_FETCH_BACKOFF`]; the
//! keys from the last good fetch stay in use meanwhile. One fetch runs at a time.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

// Tokio's clock (the same as std's at run time): tests move it with a paused runtime instead of
// waiting out the recheck period.
use tokio::time::Instant;

use ferrostack_config::JwksConfig;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::claims::{map_claims, non_empty};
use super::error::AuthError;
use crate::User;

/// The signature algorithms accepted. Never HMAC (a public key must not become a shared secret)
/// and never `none`.
pub const ALLOWED_ALGORITHMS: [Algorithm; 3] = [Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// At most one refetch of the key set per this interval because of an unknown key id.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// After a failed fetch, the next fetch waits this long.
pub const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(2);

/// Leeway on `exp` and `nbf`, in seconds, for clock skew.
pub const LEEWAY_SECONDS: u64 = 30;

pub(crate) struct JwksVerifier {
    uri: reqwest::Url,
    token: Option<SecretString>,
    recheck: Duration,
    unknown_kid_interval: Duration,
    audience: String,
    issuer: Option<String>,
    claims_mapping: BTreeMap<String, String>,
    client: reqwest::Client,
    state: RwLock<KeyState>,
    refresh: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct KeyState {
    keys: Vec<CachedKey>,
    /// Last successful fetch.
    fetched_at: Option<Instant>,
    /// Last failed fetch.
    failed_at: Option<Instant>,
    /// Last fetch made because of an unknown key id.
    unknown_kid_at: Option<Instant>,
}

#[derive(Clone)]
struct CachedKey {
    kid: Option<String>,
    alg: Algorithm,
    key: Arc<DecodingKey>,
}

impl JwksVerifier {
    pub(crate) fn new(
        config: &JwksConfig,
        audience: String,
        issuer: Option<String>,
        claims_mapping: BTreeMap<String, String>,
        client: reqwest::Client,
    ) -> Result<Self, String> {
        let uri = reqwest::Url::parse(&config.uri).map_err(|e| format!("jwks.uri: {e}"))?;
        let recheck = Duration::from_secs(config.key_recheck_period.max(1));
        Ok(Self {
            uri,
            token: config.token.clone(),
            recheck,
            unknown_kid_interval: UNKNOWN_KID_REFETCH_INTERVAL.min(recheck),
            audience,
            issuer,
            claims_mapping,
            client,
            state: RwLock::new(KeyState::default()),
            refresh: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    pub(crate) async fn authenticate(&self, token: &str) -> Result<User, AuthError> {
        let header = decode_header(token).map_err(|_| invalid("malformed token"))?;
        if !ALLOWED_ALGORITHMS.contains(&header.alg) {
            return Err(invalid("signature algorithm not allowed"));
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        if key.alg != header.alg {
            return Err(invalid("token algorithm does not match its key"));
        }
        let mut validation = Validation::new(key.alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[&self.audience]);
        let mut required = vec!["exp", "aud", "sub"];
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let data = decode::<Value>(token, &key.key, &validation).map_err(|e| invalid(&reason(e.kind())))?;
        let claims = data.claims;
        let principal = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| invalid("token has no sub"))?;
        Ok(User { principal: principal.to_owned(), attributes: non_empty(map_claims(&claims, &self.claims_mapping)) })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, KeyState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, KeyState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    fn is_fresh(&self, st: &KeyState, now: Instant) -> bool {
        st.fetched_at.is_some_and(|t| now.duration_since(t) < self.recheck)
    }

    /// The key for `kid`, fetching the key set when needed.
    async fn key_for(&self, kid: Option<&str>) -> Result<CachedKey, AuthError> {
        {
            let st = self.read();
            if self.is_fresh(&st, Instant::now())
                && let Some(k) = find(&st.keys, kid)
            {
                return Ok(k);
            }
        }
        let _single_flight = self.refresh.lock().await;
        let now = Instant::now();
        let unknown_kid;
        {
            let st = self.read();
            let found = find(&st.keys, kid);
            if self.is_fresh(&st, now) {
                if let Some(k) = found {
                    return Ok(k); // fetched by another request meanwhile
                }
                if st.unknown_kid_at.is_some_and(|t| now.duration_since(t) < self.unknown_kid_interval) {
                    return Err(invalid("unknown signing key"));
                }
                unknown_kid = true;
            } else {
                if st.failed_at.is_some_and(|t| now.duration_since(t) < FAILED_FETCH_BACKOFF) {
                    return match (found, st.fetched_at) {
                        (Some(k), _) => Ok(k),
                        (None, None) => Err(AuthError::Unavailable),
                        (None, Some(_)) => Err(invalid("unknown signing key")),
                    };
                }
                unknown_kid = false;
            }
        }
        let fetched = self.fetch().await;
        let mut st = self.write();
        if unknown_kid {
            st.unknown_kid_at = Some(now);
        }
        match fetched {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), uri = %self.uri, "JWKS fetched");
                st.keys = keys;
                st.fetched_at = Some(Instant::now());
                st.failed_at = None;
                find(&st.keys, kid).ok_or_else(|| invalid("unknown signing key"))
            }
            Err(e) => {
                st.failed_at = Some(Instant::now());
                match find(&st.keys, kid) {
                    Some(k) => {
                        tracing::warn!(uri = %self.uri, "JWKS refresh failed; using the keys fetched before");
                        Ok(k)
                    }
                    None => Err(e),
                }
            }
        }
    }

    #[tracing::instrument(name = "jwks fetch", skip_all, fields(otel.kind = "client", server.address = self.uri.host_str().unwrap_or_default()))]
    async fn fetch(&self) -> Result<Vec<CachedKey>, AuthError> {
        let mut request = self.client.get(self.uri.clone()).header(reqwest::header::ACCEPT, "application/json");
        if let Some(t) = &self.token {
            request = request.bearer_auth(t.expose_secret());
        }
        let resp = request.send().await.map_err(|e| AuthError::from_http("JWKS fetch", &e))?;
        let status = resp.status();
        if !status.is_success() {
            tracing::warn!(status = status.as_u16(), uri = %self.uri, "JWKS fetch failed");
            return Err(AuthError::Unavailable);
        }
        let bytes = resp.bytes().await.map_err(|e| AuthError::from_http("JWKS fetch", &e))?;
        let body: Value = serde_json::from_slice(&bytes).map_err(|e| {
            tracing::warn!(error = %e, uri = %self.uri, "JWKS is not JSON");
            AuthError::Unavailable
        })?;
        let Some(keys) = body.get("keys").and_then(Value::as_array) else {
            tracing::warn!(uri = %self.uri, "JWKS has no 'keys' list");
            return Err(AuthError::Unavailable);
        };
        Ok(keys.iter().filter_map(usable_key).collect())
    }
}

/// The key for `kid`; a token without a kid may use the set's only key.
fn find(keys: &[CachedKey], kid: Option<&str>) -> Option<CachedKey> {
    match kid {
        Some(kid) => keys.iter().find(|k| k.kid.as_deref() == Some(kid)).cloned(),
        None if keys.len() == 1 => keys.first().cloned(),
        None => None,
    }
}

/// A JWK as a verification key, when it is a signature key of an allowed kind: RSA (RS256),
/// EC P-256 (ES256) or OKP Ed25519 (EdDSA), and its `alg`, when given, agrees.
fn usable_key(value: &Value) -> Option<CachedKey> {
    let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))) {
        return None;
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => Algorithm::ES256,
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Algorithm::EdDSA,
        _ => return None,
    };
    let declared = match alg {
        Algorithm::RS256 => KeyAlgorithm::RS256,
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::EdDSA,
    };
    if jwk.common.key_algorithm.is_some_and(|a| a != declared) {
        return None;
    }
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(CachedKey { kid: jwk.common.key_id.clone(), alg, key: Arc::new(key) })
}

fn invalid(why: &str) -> AuthError {
    AuthError::rejected(format!("Invalid JWT token: {why}"))
}

fn reason(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::ExpiredSignature => "token has expired".to_owned(),
        ErrorKind::ImmatureSignature => "token is not valid yet".to_owned(),
        ErrorKind::InvalidAudience => "wrong audience".to_owned(),
        ErrorKind::InvalidIssuer => "wrong issuer".to_owned(),
        ErrorKind::InvalidSignature => "bad signature".to_owned(),
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => "signature algorithm not allowed".to_owned(),
        ErrorKind::MissingRequiredClaim(c) => format!("missing claim '{c}'"),
        ErrorKind::InvalidClaimFormat(c) => format!("malformed claim '{c}'"),
        _ => "malformed token".to_owned(),
    }
}
