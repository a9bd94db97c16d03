//! The fake identity provider, keys and helpers.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use ferrostack_authz::User;
use ferrostack_authz::authn::{AuthError, Authenticator, RequestInfo};
use ferrostack_config::AuthProviderConfig;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A signing key with the JWK of its public half.
pub struct Key {
    pub alg: Algorithm,
    pub encoding: EncodingKey,
}

impl Key {
    /// The public JWK, with `kid`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(kid.to_owned());
        serde_json::to_value(&jwk).unwrap()
    }
}

pub struct Keys {
    pub rsa: Key,
    pub ec: Key,
    pub ed: Key,
    pub rsa2: Key,
}

/// Keys generated once per test binary.
pub static KEYS: LazyLock<Keys> = LazyLock::new(|| Keys {
    rsa: rsa_key(),
    ec: Key {
        alg: Algorithm::ES256,
        encoding: EncodingKey::from_ec_der(
            EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap().to_pkcs8v1().unwrap().as_ref(),
        ),
    },
    ed: Key {
        alg: Algorithm::EdDSA,
        encoding: EncodingKey::from_ed_der(Ed25519KeyPair::generate().unwrap().to_pkcs8v1().unwrap().as_ref()),
    },
    rsa2: rsa_key(),
});

fn rsa_key() -> Key {
    let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8: Pkcs8V1Der<'static> = kp.as_der().unwrap();
    Key { alg: Algorithm::RS256, encoding: EncodingKey::from_rsa_der(pkcs1_of_pkcs8(pkcs8.as_ref())) }
}

/// The RSAPrivateKey (PKCS#1) inside a PKCS#8 PrivateKeyInfo: SEQUENCE { INTEGER, SEQUENCE, OCTET
/// STRING <pkcs1> }.
fn pkcs1_of_pkcs8(der: &[u8]) -> &[u8] {
    // (tag, content start, content end) of the TLV at `at`.
    fn tlv(der: &[u8], at: usize) -> (u8, usize, usize) {
        let tag = der[at];
        let first = der[at + 1];
        if first < 0x80 {
            (tag, at + 2, at + 2 + first as usize)
        } else {
            let n = (first & 0x7f) as usize;
            let len = der[at + 2..at + 2 + n].iter().fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (tag, at + 2 + n, at + 2 + n + len)
        }
    }
    let (tag, start, _) = tlv(der, 0);
    assert_eq!(tag, 0x30);
    let (tag, _, version_end) = tlv(der, start);
    assert_eq!(tag, 0x02);
    let (tag, _, alg_end) = tlv(der, version_end);
    assert_eq!(tag, 0x30);
    let (tag, key_start, key_end) = tlv(der, alg_end);
    assert_eq!(tag, 0x04);
    &der[key_start..key_end]
}

pub fn now() -> u64 {
    jsonwebtoken::get_current_timestamp()
}

/// Standard claims for `sub`, valid for an hour, for audience `ferrostack` and issuer `idp`.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "aud": "ferrostack", "iss": "https://idp.test", "iat": now(), "exp": now() + 3600})
}

/// A JWT signed by `key` with `kid`.
pub fn sign(key: &Key, kid: &str, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// (Authorization header, form) of an introspection request.
pub type Seen = (Option<String>, HashMap<String, String>);

/// The fake identity provider's state.
#[derive(Default)]
pub struct Idp {
    pub jwks: Mutex<Value>,
    pub jwks_status: Mutex<Option<u16>>,
    pub jwks_hits: AtomicUsize,
    /// (Authorization header, form) of the last introspection request.
    pub introspection_seen: Mutex<Option<Seen>>,
    /// Body of the last custom-endpoint request.
    pub custom_seen: Mutex<Option<Value>>,
    /// Requests to the introspection endpoint.
    pub introspection_hits: AtomicUsize,
    /// Requests to the custom endpoint.
    pub custom_hits: AtomicUsize,
    /// Requests to the fake GitHub API's `/user`, and to `/user/orgs`.
    pub github_user_hits: AtomicUsize,
    pub github_orgs_hits: AtomicUsize,
    /// Reviews asked of the fake Kubernetes API server.
    pub kubernetes_hits: AtomicUsize,
}

/// How many times `counter` was hit.
pub fn hits(counter: &AtomicUsize) -> usize {
    counter.load(Ordering::SeqCst)
}

impl Idp {
    pub fn set_jwks(&self, keys: Vec<Value>) {
        *self.jwks.lock().unwrap() = json!({"keys": keys});
    }

    pub fn jwks_hits(&self) -> usize {
        self.jwks_hits.load(Ordering::SeqCst)
    }
}

/// A running fake identity provider.
pub struct Server {
    pub idp: Arc<Idp>,
    pub base: String,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Start the fake identity provider on a loopback port.
pub async fn idp() -> Server {
    let idp = Arc::new(Idp::default());
    let data = web::Data::from(idp.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/jwks", web::get().to(jwks))
            .route("/jwks-with-token", web::get().to(jwks_with_token))
            .route("/introspect", web::post().to(introspect))
            .route("/custom", web::post().to(custom))
            .route("/github/user", web::get().to(github_user))
            .route("/github/user/orgs", web::get().to(github_orgs))
            .route("/k8s/apis/authentication.k8s.io/v1/selfsubjectreviews", web::post().to(self_subject_review))
            .route("/k8s/apis/authentication.k8s.io/v1/tokenreviews", web::post().to(token_review))
            .route("/hang", web::to(hang))
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .unwrap();
    let addr = server.addrs()[0];
    ferrostack_testkit::spawn(server.run());
    Server { idp, base: format!("http://{addr}") }
}

/// A loopback URL where nothing listens.
pub fn nothing_listens() -> String {
    format!("http://{}", ferrostack_testkit::unused_loopback_addr())
}

async fn jwks(idp: web::Data<Idp>) -> HttpResponse {
    idp.jwks_hits.fetch_add(1, Ordering::SeqCst);
    if let Some(status) = *idp.jwks_status.lock().unwrap() {
        return HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap()).body("no");
    }
    HttpResponse::Ok().json(idp.jwks.lock().unwrap().clone())
}

async fn jwks_with_token(req: HttpRequest, idp: web::Data<Idp>) -> HttpResponse {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    if auth != Some("Bearer jwks-secret") {
        return HttpResponse::Unauthorized().finish();
    }
    jwks(idp).await
}

/// Answers by token: `active-*` active (sub = the rest), `user-*` active with only a username,
/// `inactive` inactive, `status-<n>` that status, `garbage` a non-JSON body, `array` a JSON array.
async fn introspect(req: HttpRequest, form: web::Form<HashMap<String, String>>, idp: web::Data<Idp>) -> HttpResponse {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let form = form.into_inner();
    let token = form.get("token").cloned().unwrap_or_default();
    idp.introspection_hits.fetch_add(1, Ordering::SeqCst);
    *idp.introspection_seen.lock().unwrap() = Some((auth, form));
    if let Some(sub) = token.strip_prefix("active-") {
        return HttpResponse::Ok().json(json!({
            "active": true, "sub": sub, "scope": "read write", "groups": ["g1", "g2"],
            "realm_access": {"roles": ["admin"]},
        }));
    }
    if let Some(user) = token.strip_prefix("user-") {
        return HttpResponse::Ok().json(json!({"active": true, "username": user}));
    }
    if let Some(status) = token.strip_prefix("status-") {
        let status = actix_web::http::StatusCode::from_u16(status.parse().unwrap()).unwrap();
        return HttpResponse::build(status).json(json!({"error": "x"}));
    }
    match token.as_str() {
        "garbage" => HttpResponse::Ok().content_type("application/json").body("{not json"),
        "array" => HttpResponse::Ok().json(json!([1])),
        "activestr" => HttpResponse::Ok().json(json!({"active": "true", "sub": "x"})),
        _ => HttpResponse::Ok().json(json!({"active": false})),
    }
}

/// Answers by api_key: `good` a principal with attributes, `plain` a principal only, `status-<n>`,
/// `bad-body` a body without principal, `not-json`.
async fn custom(body: web::Json<Value>, idp: web::Data<Idp>) -> HttpResponse {
    let body = body.into_inner();
    idp.custom_hits.fetch_add(1, Ordering::SeqCst);
    *idp.custom_seen.lock().unwrap() = Some(body.clone());
    let key = body["api_key"].as_str().unwrap_or_default().to_owned();
    if let Some(status) = key.strip_prefix("status-") {
        let status = actix_web::http::StatusCode::from_u16(status.parse().unwrap()).unwrap();
        return HttpResponse::build(status).json(json!({"principal": "should-not-be-used"}));
    }
    match key.as_str() {
        "good" => HttpResponse::Ok().json(
            json!({"principal": "carol", "attributes": {"roles": ["admin"], "teams": ["t1", "t2"]}, "message": "ok"}),
        ),
        "plain" => HttpResponse::Ok().json(json!({"principal": "dave"})),
        "bad-body" => HttpResponse::Ok().json(json!({"user": "eve"})),
        "bad-attributes" => HttpResponse::Ok().json(json!({"principal": "eve", "attributes": {"roles": "admin"}})),
        _ => HttpResponse::Ok().content_type("application/json").body("nope"),
    }
}

fn bearer_of(req: &HttpRequest) -> String {
    let auth = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    auth.strip_prefix("Bearer ").unwrap_or_default().to_owned()
}

/// The fake GitHub `/user`, by token: `gh-alice` (id 42), `gh-many` (150 organisations),
/// `gh-orgs-fail` (organisations fail), `gh-status-<n>` that status, anything else 401.
async fn github_user(req: HttpRequest, idp: web::Data<Idp>) -> HttpResponse {
    idp.github_user_hits.fetch_add(1, Ordering::SeqCst);
    let token = bearer_of(&req);
    if let Some(status) = token.strip_prefix("gh-status-") {
        let status = actix_web::http::StatusCode::from_u16(status.parse().unwrap()).unwrap();
        return HttpResponse::build(status).json(json!({"message": "x"}));
    }
    match token.as_str() {
        "gh-alice" => HttpResponse::Ok().json(json!({"login": "alice", "id": 42, "name": "Alice"})),
        "gh-many" => HttpResponse::Ok().json(json!({"login": "many", "id": 7})),
        "gh-orgs-fail" => HttpResponse::Ok().json(json!({"login": "lonely", "id": 8})),
        _ => HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"})),
    }
}

/// The fake GitHub `/user/orgs`, paged by `per_page` and `page`.
async fn github_orgs(req: HttpRequest, q: web::Query<HashMap<String, String>>, idp: web::Data<Idp>) -> HttpResponse {
    idp.github_orgs_hits.fetch_add(1, Ordering::SeqCst);
    let per_page: usize = q.get("per_page").and_then(|v| v.parse().ok()).unwrap_or(30);
    let page: usize = q.get("page").and_then(|v| v.parse().ok()).unwrap_or(1);
    let all: Vec<String> = match bearer_of(&req).as_str() {
        "gh-alice" => vec!["acme".into(), "widgets".into(), "acme".into()],
        "gh-many" => (0..150).map(|i| format!("org{i}")).collect(),
        _ => return HttpResponse::InternalServerError().finish(),
    };
    let start = (page - 1) * per_page;
    let items: Vec<Value> = all.iter().skip(start).take(per_page).map(|o| json!({"login": o, "id": 1})).collect();
    HttpResponse::Ok().json(items)
}

fn service_account_user() -> Value {
    json!({"username": "system:serviceaccount:ml:app", "uid": "u-1", "groups": ["system:serviceaccounts", "team-a"]})
}

/// The fake API server's `SelfSubjectReview`, by the caller's token: `k8s-sa` a service account,
/// `k8s-no-user` no user info, `k8s-status-<n>` that status, anything else 401.
async fn self_subject_review(req: HttpRequest, body: web::Json<Value>, idp: web::Data<Idp>) -> HttpResponse {
    idp.kubernetes_hits.fetch_add(1, Ordering::SeqCst);
    assert_eq!(body["kind"], json!("SelfSubjectReview"));
    assert_eq!(body["apiVersion"], json!("authentication.k8s.io/v1"));
    let token = bearer_of(&req);
    if let Some(status) = token.strip_prefix("k8s-status-") {
        let status = actix_web::http::StatusCode::from_u16(status.parse().unwrap()).unwrap();
        return HttpResponse::build(status).json(json!({"kind": "Status"}));
    }
    match token.as_str() {
        "k8s-sa" => HttpResponse::Created()
            .json(json!({"kind": "SelfSubjectReview", "status": {"userInfo": service_account_user()}})),
        "k8s-no-user" => HttpResponse::Created().json(json!({"kind": "SelfSubjectReview", "status": {}})),
        _ => HttpResponse::Unauthorized().json(json!({"kind": "Status", "code": 401})),
    }
}

/// The fake API server's `TokenReview`: only ferrostack's own token (`own-token`) may ask; the
/// reviewed token `k8s-sa` is a service account, any other is not authenticated.
async fn token_review(req: HttpRequest, body: web::Json<Value>, idp: web::Data<Idp>) -> HttpResponse {
    idp.kubernetes_hits.fetch_add(1, Ordering::SeqCst);
    if bearer_of(&req) != "own-token" {
        return HttpResponse::Unauthorized().finish();
    }
    assert_eq!(body["kind"], json!("TokenReview"));
    match body["spec"]["token"].as_str() {
        Some("k8s-sa") => HttpResponse::Created()
            .json(json!({"kind": "TokenReview", "status": {"authenticated": true, "user": service_account_user()}})),
        _ => HttpResponse::Created()
            .json(json!({"kind": "TokenReview", "status": {"authenticated": false, "error": "invalid"}})),
    }
}

/// Never answers.
async fn hang() -> HttpResponse {
    std::future::pending::<()>().await;
    HttpResponse::Ok().finish()
}

/// An authenticator from a provider config written as JSON.
pub fn authenticator(config: Value) -> Authenticator {
    let config: AuthProviderConfig = serde_json::from_value(config).unwrap();
    Authenticator::new(&config).unwrap()
}

/// A GET of `/v1/models` with `Authorization: Bearer <token>`.
pub fn bearer(token: &str) -> RequestInfo {
    RequestInfo::new("GET", "/v1/models").with_header("Authorization", format!("Bearer {token}"))
}

/// The HTTP status the http crate's code table gives `e` (pinned there too, with the exact
/// body): 503 when the identity provider is down, else 401.
pub fn status(e: &AuthError) -> u16 {
    match e {
        AuthError::Unavailable | AuthError::Timeout => 503,
        AuthError::MissingCredentials(_) | AuthError::InvalidHeaderFormat | AuthError::Rejected(_) => 401,
    }
}

/// The user, or a panic naming the error.
#[track_caller]
pub fn ok(r: Result<User, AuthError>) -> User {
    match r {
        Ok(u) => u,
        Err(e) => panic!("expected a user, got {} {}", status(&e), e.message()),
    }
}

/// The error, checked for `status` and a message containing `words`.
#[track_caller]
pub fn err(r: Result<User, AuthError>, status: u16, words: &str) -> AuthError {
    match r {
        Ok(u) => panic!("expected {status} {words:?}, got user {u:?}"),
        Err(e) => {
            assert_eq!(self::status(&e), status, "{e:?}");
            assert!(e.message().contains(words), "message {:?} should contain {words:?}", e.message());
            e
        }
    }
}

/// Attributes as a map, for comparisons.
pub fn attrs(pairs: &[(&str, &[&str])]) -> std::collections::BTreeMap<String, Vec<String>> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect())).collect()
}
