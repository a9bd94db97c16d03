//! A fake identity provider for the end-to-end tests, served on a loopback port: the two calls of
//! the GitHub API that `github_token` makes, and the Kubernetes API server's `SelfSubjectReview`.
//!
//! Tokens: `gh-<login>` is GitHub user `<login>` in organisation `acme`; `k8s-<name>` is the
//! service account `system:serviceaccount:team:<name>` in group `team-a`. Anything else is
//! refused (401).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::json;

/// The running fake.
#[derive(Debug, Clone)]
pub struct FakeIdentity {
    /// `http://127.0.0.1:<port>`: `<base>/github` is a GitHub API base URL, `<base>/k8s` an API
    /// server URL.
    pub base: String,
    calls: Arc<AtomicUsize>,
    handle: ServerHandle,
}

impl FakeIdentity {
    /// Start it on 127.0.0.1, port 0.
    pub async fn start() -> FakeIdentity {
        let calls = Arc::new(AtomicUsize::new(0));
        let data = web::Data::from(Arc::clone(&calls));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/github/user", web::get().to(github_user))
                .route("/github/user/orgs", web::get().to(github_orgs))
                .route("/k8s/apis/authentication.k8s.io/v1/selfsubjectreviews", web::post().to(review))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .expect("bind the fake identity provider");
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        ferrostack_testkit::spawn(server);
        FakeIdentity { base: format!("http://{addr}"), calls, handle }
    }

    /// Requests answered so far (`/user/orgs` included).
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Stop serving.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn bearer(req: &HttpRequest) -> String {
    let value = req.headers().get("authorization").and_then(|v| v.to_str().ok()).unwrap_or_default();
    value.strip_prefix("Bearer ").unwrap_or_default().to_owned()
}

async fn github_user(req: HttpRequest, calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    match bearer(&req).strip_prefix("gh-") {
        Some(login) if !login.is_empty() => HttpResponse::Ok().json(json!({"login": login, "id": 1})),
        _ => HttpResponse::Unauthorized().json(json!({"message": "Bad credentials"})),
    }
}

async fn github_orgs(req: HttpRequest, calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    if bearer(&req).starts_with("gh-") {
        HttpResponse::Ok().json(json!([{"login": "acme", "id": 2}]))
    } else {
        HttpResponse::Unauthorized().finish()
    }
}

async fn review(req: HttpRequest, calls: web::Data<AtomicUsize>) -> HttpResponse {
    calls.fetch_add(1, Ordering::SeqCst);
    match bearer(&req).strip_prefix("k8s-") {
        Some(name) if !name.is_empty() => HttpResponse::Created().json(json!({
            "apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview",
            "status": {"userInfo": {"username": format!("system:serviceaccount:team:{name}"), "groups": ["team-a"]}},
        })),
        _ => HttpResponse::Unauthorized().json(json!({"kind": "Status", "code": 401})),
    }
}
