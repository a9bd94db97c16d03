//! Run configs in the shape of Llama Stack's distributions (`tests/llama-stack/`), loaded as they
//! are and served by the real server against the benchmarks' mock upstream: the starter (SQLite,
//! providers switched on by the environment), the Postgres demo with Kubernetes authentication,
//! and the Kubernetes benchmark with GitHub authentication.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_testkit::{Test, TestDatabase};
use ferrostack_tests::identity::FakeIdentity;
use ferrostack_tests::{TestApp, config_from_yaml, test_server_settings, wait_for};
use reqwest::StatusCode;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("llama_stack::starter_is_served_on_sqlite", starter),
        Test::postgres("llama_stack::postgres_demo_is_served_with_kubernetes_auth", |pg| async move {
            let db = pg.fresh_database().await;
            postgres_demo(&db).await
        }),
        Test::postgres("llama_stack::k8s_benchmark_is_served_with_github_auth", |pg| async move {
            let db = pg.fresh_database().await;
            k8s_benchmark(&db).await
        }),
    ]
}

fn fixture(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("llama-stack").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The benchmarks' mock upstream on a loopback port; its base URL (`http://ADDR/v1`).
fn mock_upstream() -> String {
    let config = ferrostack_mock_upstream::Config {
        host: "127.0.0.1".to_owned(),
        port: 0,
        workers: 1,
        words: 5,
        words_max: None,
        chunk_delay_ms: 0.0,
        latency_ms: 0.0,
        latency_max_ms: None,
        models: vec!["mock-model".to_owned()],
    };
    let (server, addrs) = ferrostack_mock_upstream::bind(config).expect("bind the mock upstream");
    let addr: SocketAddr = addrs[0];
    ferrostack_testkit::spawn(server);
    format!("http://{addr}/v1")
}

/// The environment pointing a Postgres-backed fixture at `db`.
fn postgres_env(db: &TestDatabase) -> Vec<(String, String)> {
    let s = db.server();
    let mut env = vec![
        ("POSTGRES_HOST".to_owned(), s.host()),
        ("POSTGRES_PORT".to_owned(), s.port().to_string()),
        ("POSTGRES_DB".to_owned(), db.name().to_owned()),
        ("POSTGRES_USER".to_owned(), s.user()),
    ];
    // The fixtures default the password to `llamastack`; an empty one means none.
    env.push(("POSTGRES_PASSWORD".to_owned(), s.password().unwrap_or_default()));
    env
}

async fn spawn(yaml: &str, env: &[(String, String)]) -> TestApp {
    let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let mut config = config_from_yaml(yaml, &pairs);
    test_server_settings(&mut config);
    TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await
}

async fn chat(app: &TestApp, model: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut req = app
        .http
        .post(format!("{}/v1/chat/completions", app.base))
        .json(&json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await.expect("chat request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The ids of the stored completions `token` may list, once there are `n`.
async fn stored(app: &TestApp, token: Option<&str>, n: usize) -> Vec<String> {
    wait_for("stored completions", Duration::from_secs(10), || async {
        let mut req = app.http.get(format!("{}/v1/chat/completions", app.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let body: Value = req.send().await.ok()?.json().await.ok()?;
        let ids: Vec<String> =
            body["data"].as_array()?.iter().filter_map(|c| c["id"].as_str().map(str::to_owned)).collect();
        (ids.len() == n).then_some(ids)
    })
    .await
}

async fn starter() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = mock_upstream();
    let env = [
        ("VLLM_URL".to_owned(), upstream),
        ("SQLITE_STORE_DIR".to_owned(), dir.path().display().to_string()),
        ("HOME".to_owned(), dir.path().display().to_string()),
    ];
    let app = spawn(&fixture("starter.yaml"), &env).await;
    let (status, body) = chat(&app, "llama-3.2-3b", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["model"], "llama-3.2-3b", "{body}");
    assert!(body["choices"][0]["message"]["content"].as_str().is_some_and(|t| !t.is_empty()), "{body}");
    let ids = stored(&app, None, 1).await;
    assert_eq!(ids, [body["id"].as_str().expect("id").to_owned()]);
    // A model of a provider that is not served is not registered.
    let (status, body) = chat(&app, "titan", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(dir.path().join("sql_store.db").exists(), "the fixture's SQLite file is used");
    app.stop().await.expect("clean stop");
}

async fn postgres_demo(db: &TestDatabase) {
    let idp = FakeIdentity::start().await;
    let mut env = postgres_env(db);
    env.extend([
        ("VLLM_URL".to_owned(), mock_upstream()),
        ("INFERENCE_MODEL".to_owned(), "llama-3b".to_owned()),
        ("KUBERNETES_API_SERVER_URL".to_owned(), format!("{}/k8s", idp.base)),
    ]);
    let app = spawn(&fixture("postgres-demo.yaml"), &env).await;

    let (status, body) = chat(&app, "llama-3b", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = chat(&app, "llama-3b", Some("not-a-service-account")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, alice) = chat(&app, "llama-3b", Some("k8s-alice")).await;
    assert_eq!(status, StatusCode::OK, "{alice}");
    let (status, bob) = chat(&app, "llama-3b", Some("k8s-bob")).await;
    assert_eq!(status, StatusCode::OK, "{bob}");
    // Both are in group team-a (mapped to roles, as the reference does): the policy lets callers
    // read the completions of those who share a role with them.
    let ids = stored(&app, Some("k8s-alice"), 2).await;
    assert!(ids.contains(&alice["id"].as_str().expect("id").to_owned()), "{ids:?}");
    let calls = idp.calls();
    let _ = stored(&app, Some("k8s-alice"), 2).await;
    assert_eq!(idp.calls(), calls, "alice's token was reviewed once, then cached");
    app.stop().await.expect("clean stop");
    idp.stop().await;
}

async fn k8s_benchmark(db: &TestDatabase) {
    let idp = FakeIdentity::start().await;
    let mut env = postgres_env(db);
    env.extend([
        ("VLLM_URL".to_owned(), mock_upstream()),
        ("INFERENCE_MODEL".to_owned(), "meta-llama/Llama-3.2-3B-Instruct".to_owned()),
        ("GITHUB_API_BASE_URL".to_owned(), format!("{}/github", idp.base)),
        ("TELEMETRY_ENABLED".to_owned(), "false".to_owned()),
    ]);
    let app = spawn(&fixture("k8s-benchmark.yaml"), &env).await;
    let model = "meta-llama/Llama-3.2-3B-Instruct";

    let (status, body) = chat(&app, model, Some("ghp_not_a_token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().contains("GitHub"), "{body}");

    let (status, body) = chat(&app, model, Some("gh-octocat")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let ids = stored(&app, Some("gh-octocat"), 1).await;
    assert_eq!(ids, [body["id"].as_str().expect("id").to_owned()]);
    // Another GitHub user shares no role (login) but the organisation (a team): the default
    // policy lets teammates read each other's rows.
    let _ = stored(&app, Some("gh-hubot"), 1).await;
    app.stop().await.expect("clean stop");
    idp.stop().await;
}
