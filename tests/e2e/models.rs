//! `/v1/models` end to end: config models, models registered through the API (kept in the metadata
//! KV store of either dialect), the access policy on both, and a registered model served by chat
//! completions.

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::upstream::FakeUpstream;
use ferrostack_tests::{Storage, TestApp, chat_config, config_from_yaml, test_server_settings, wait_for};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    let mut tests: Vec<Test> = [
        on_both!("models", "register_retrieve_delete_under_the_default_policy", register_retrieve_delete),
        on_both!("models", "registered_models_survive_restarts_and_every_replica_sees_them", replicas_and_restarts),
    ]
    .into_iter()
    .flatten()
    .collect();
    tests.push(Test::plain("models::sqlite::a_custom_policy_hides_and_protects_models", custom_policy));
    tests.push(Test::plain("models::discovery::models_appear_and_disappear_with_the_provider", discovery));
    tests.push(Test::plain("models::starter::engine_variables_serve_the_engine_models", starter_engines));
    tests
}

const TOKENS: &str = "server:\n  auth:\n    provider_config:\n      type: static\n      tokens:\n        - { token: alice-token, principal: alice, attributes: { teams: [red] } }\n        - { token: bob-token, principal: bob, attributes: { teams: [blue] } }\n        - { token: carol-token, principal: carol, attributes: { teams: [red] } }\n";

const LLAMA: &str = "meta-llama/Llama-3.2-3B-Instruct";

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut req = app.http.request(method, format!("{}{path}", app.base)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.expect("request");
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn ids(app: &TestApp, token: &str) -> Vec<String> {
    let (status, page) = call(app, Method::GET, "/v1/models", token, None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["object"], "list", "{page}");
    page["data"].as_array().expect("data").iter().filter_map(|m| m["id"].as_str()).map(str::to_owned).collect()
}

async fn chat(app: &TestApp, token: &str, model: &str) -> (StatusCode, Value) {
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]});
    call(app, Method::POST, "/v1/chat/completions", token, Some(body)).await
}

async fn start(storage: Storage<'_>, upstream: &FakeUpstream, extra: &str) -> TestApp {
    let config = chat_config(storage, &upstream.base_url, extra);
    TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await
}

async fn register_retrieve_delete(storage: Storage<'_>) {
    let upstream = FakeUpstream::start().await;
    let app = start(storage, &upstream, TOKENS).await;

    // Config models: listed for everyone, in the OpenAI shape with ferrostack's fields.
    let (status, page) = call(&app, Method::GET, "/v1/models", "bob-token", None).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let test_model = page["data"].as_array().expect("data").iter().find(|m| m["id"] == "test-model").cloned();
    let test_model = test_model.expect("test-model listed");
    assert_eq!(test_model["object"], "model");
    assert_eq!(test_model["provider_id"], "fake");
    assert_eq!(test_model["provider_model_id"], "echo");
    assert_eq!(test_model["model_type"], "llm");
    assert_eq!(
        test_model["custom_metadata"],
        json!({"model_type": "llm", "provider_id": "fake", "provider_resource_id": "echo"})
    );
    assert!(test_model["created"].is_i64() && test_model["owned_by"].is_string(), "{test_model}");

    // Register an id with slashes; the owner is alice.
    let body = json!({"model_id": LLAMA, "provider_id": "fake", "provider_model_id": "echo",
                      "metadata": {"context_length": 8192}});
    let (status, model) = call(&app, Method::POST, "/v1/models", "alice-token", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{model}");
    assert_eq!((model["id"].as_str(), model["source"].as_str()), (Some(LLAMA), Some("registered")), "{model}");
    assert_eq!(model["metadata"], json!({"context_length": 8192}));
    let (status, got) = call(&app, Method::GET, &format!("/v1/models/{LLAMA}"), "alice-token", None).await;
    assert_eq!(status, StatusCode::OK, "a tail match takes the slash: {got}");
    assert_eq!(got["provider_model_id"], "echo");
    let (status, got) =
        call(&app, Method::GET, "/v1/models/meta-llama%2FLlama-3.2-3B-Instruct", "alice-token", None).await;
    assert_eq!(status, StatusCode::OK, "an encoded slash too: {got}");

    // Served by chat completions for those who may read it.
    let (status, answer) = chat(&app, "alice-token", LLAMA).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["model"], LLAMA);
    assert_eq!(
        upstream.last_seen().expect("a request").body["model"].clone(),
        "echo",
        "provider_model_id goes upstream"
    );
    let (status, _) = chat(&app, "carol-token", LLAMA).await;
    assert_eq!(status, StatusCode::OK, "carol shares alice's team");

    // Hidden from bob, everywhere, as if it did not exist.
    assert!(ids(&app, "alice-token").await.contains(&LLAMA.to_owned()));
    assert!(!ids(&app, "bob-token").await.contains(&LLAMA.to_owned()), "bob does not list it");
    let (status, body_404) = call(&app, Method::GET, &format!("/v1/models/{LLAMA}"), "bob-token", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body_404}");
    let (status, missing) = call(&app, Method::GET, "/v1/models/no/such-model", "bob-token", None).await;
    assert_eq!(
        (status, missing["error"]["message"].as_str().map(|m| m.replace("no/such-model", LLAMA))),
        (StatusCode::NOT_FOUND, body_404["error"]["message"].as_str().map(str::to_owned)),
        "hidden and missing look the same"
    );
    let requests = upstream.requests();
    let (status, refused) = chat(&app, "bob-token", LLAMA).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{refused}");
    assert_eq!(refused["error"]["code"], "model_not_found", "{refused}");
    assert_eq!(upstream.requests(), requests, "nothing went upstream");
    let (status, _) = call(&app, Method::DELETE, &format!("/v1/models/{LLAMA}"), "bob-token", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "bob cannot delete what he cannot see");

    // Taken ids, unknown provider, bad bodies.
    let (status, taken) = call(&app, Method::POST, "/v1/models", "bob-token", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{taken}");
    let (status, taken) = call(
        &app,
        Method::POST,
        "/v1/models",
        "bob-token",
        Some(json!({"model_id": "test-model", "provider_id": "fake"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "a config model's id is taken: {taken}");
    let (status, unknown) =
        call(&app, Method::POST, "/v1/models", "bob-token", Some(json!({"model_id": "m", "provider_id": "nope"})))
            .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{unknown}");
    assert_eq!(unknown["error"]["param"], "provider_id", "{unknown}");
    assert!(
        unknown["error"]["message"].as_str().unwrap_or_default().contains("fake"),
        "lists the providers: {unknown}"
    );
    for (bad, param) in [
        (json!({"provider_id": "fake"}), "model_id"),
        (json!({"model_id": "", "provider_id": "fake"}), "model_id"),
        (json!({"model_id": 7, "provider_id": "fake"}), "model_id"),
        (json!({"model_id": "m", "provider_id": "fake", "model_type": "robot"}), "model_type"),
        (json!({"model_id": "m", "provider_id": "fake", "metadata": [1]}), "metadata"),
        (json!({"model_id": "m", "provider_id": "fake", "colour": "red"}), "body"),
        (json!({"model_id": "m"}), "provider_id"),
    ] {
        let (status, err) = call(&app, Method::POST, "/v1/models", "bob-token", Some(bad.clone())).await;
        assert_eq!((status, err["error"]["param"].as_str()), (StatusCode::BAD_REQUEST, Some(param)), "{bad}: {err}");
    }

    // Config models cannot be deleted through the API.
    let (status, refused) = call(&app, Method::DELETE, "/v1/models/test-model", "alice-token", None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert!(refused["error"]["message"].as_str().unwrap_or_default().contains("run config"), "{refused}");

    // The owner deletes it; it is gone for everyone.
    let (status, deleted) = call(&app, Method::DELETE, &format!("/v1/models/{LLAMA}"), "alice-token", None).await;
    assert_eq!(status, StatusCode::OK, "{deleted}");
    assert_eq!(deleted, json!({"id": LLAMA, "object": "model", "deleted": true}));
    assert_eq!(
        call(&app, Method::GET, &format!("/v1/models/{LLAMA}"), "alice-token", None).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(chat(&app, "alice-token", LLAMA).await.0, StatusCode::NOT_FOUND);
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn replicas_and_restarts(storage: Storage<'_>) {
    let upstream = FakeUpstream::start().await;
    let a = start(storage, &upstream, TOKENS).await;
    let b = start(storage, &upstream, TOKENS).await;
    let body = json!({"model_id": "team-red/assistant", "provider_id": "fake", "provider_model_id": "echo"});
    let (status, model) = call(&a, Method::POST, "/v1/models", "alice-token", Some(body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{model}");
    // The other replica reads the store: no refresh to wait for.
    let (status, got) = call(&b, Method::GET, "/v1/models/team-red/assistant", "carol-token", None).await;
    assert_eq!(status, StatusCode::OK, "replica b sees it at once: {got}");
    assert_eq!(chat(&b, "alice-token", "team-red/assistant").await.0, StatusCode::OK, "and serves it");
    let (status, _) = call(&b, Method::POST, "/v1/models", "bob-token", Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "the id is taken on every replica");
    a.stop().await.expect("clean stop");
    b.stop().await.expect("clean stop");

    let c = start(storage, &upstream, TOKENS).await;
    assert!(ids(&c, "alice-token").await.contains(&"team-red/assistant".to_owned()), "kept across restarts");
    assert!(!ids(&c, "bob-token").await.contains(&"team-red/assistant".to_owned()), "still alice's team's only");
    let (status, _) = call(&c, Method::DELETE, "/v1/models/team-red/assistant", "carol-token", None).await;
    assert_eq!(status, StatusCode::OK, "the default policy lets a team-mate delete");
    c.stop().await.expect("clean stop");
    upstream.stop().await;
}

async fn custom_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = FakeUpstream::start().await;
    let policy = "    access_policy:\n      - forbid: { actions: [create, read, update, delete], resource: \"model::premium-model\" }\n        unless: user with red in teams\n      - permit: { actions: [create, read, update, delete] }\n        when: user is owner\n      - permit: { actions: [read] }\n        when: user in owners teams\n      - permit: { actions: [read] }\n        when: resource is unowned\n";
    let app = start(Storage::Sqlite(dir.path()), &upstream, &format!("{TOKENS}{policy}")).await;

    // A config model the policy hides from bob: not listed, not retrievable, not served.
    assert!(ids(&app, "alice-token").await.contains(&"premium-model".to_owned()));
    assert!(!ids(&app, "bob-token").await.contains(&"premium-model".to_owned()), "hidden from bob");
    assert_eq!(call(&app, Method::GET, "/v1/models/premium-model", "bob-token", None).await.0, StatusCode::NOT_FOUND);
    let (status, refused) = chat(&app, "bob-token", "premium-model").await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("model_not_found")),
        "{refused}"
    );
    assert_eq!(chat(&app, "alice-token", "premium-model").await.0, StatusCode::OK);
    assert_eq!(
        call(&app, Method::DELETE, "/v1/models/premium-model", "bob-token", None).await.0,
        StatusCode::NOT_FOUND,
        "unreadable: 404 before anything else"
    );

    // Readable but not deletable: 403.
    let body = json!({"model_id": "alice/model", "provider_id": "fake", "provider_model_id": "echo"});
    assert_eq!(call(&app, Method::POST, "/v1/models", "alice-token", Some(body)).await.0, StatusCode::OK);
    assert_eq!(call(&app, Method::GET, "/v1/models/alice/model", "carol-token", None).await.0, StatusCode::OK);
    let (status, forbidden) = call(&app, Method::DELETE, "/v1/models/alice/model", "carol-token", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{forbidden}");
    assert_eq!(call(&app, Method::DELETE, "/v1/models/alice/model", "alice-token", None).await.0, StatusCode::OK);
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}

/// A provider with `refresh_models: true` that is down when the server starts, comes up, then
/// stops serving a model; an explicit model of the same id wins over the discovered one.
async fn discovery() {
    let dir = tempfile::tempdir().expect("tempdir");
    let addr = ferrostack_testkit::unused_loopback_addr();
    let yaml = format!(
        "version: 2\n{}providers:\n  inference:\n    - provider_id: local\n      provider_type: remote::vllm\n      config: {{ url: \"http://{addr}/v1\", refresh_models: true, refresh_interval_seconds: 1 }}\nmodels:\n  - {{ model_id: local/echo, provider_id: local, provider_model_id: json }}\n",
        Storage::Sqlite(dir.path()).yaml()
    );
    let mut config = config_from_yaml(&yaml, &[]);
    test_server_settings(&mut config);
    // The provider is down: the server starts anyway, with its explicit model.
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    assert_eq!(list_ids(&app).await, ["local/echo"]);

    let upstream = FakeUpstream::start_at(addr).await;
    upstream.set_models(Some(&["echo", "json", "sse"]));
    let listed = wait_for("the provider's models to be discovered", std::time::Duration::from_secs(15), || async {
        let ids = list_ids(&app).await;
        (ids.len() == 3).then_some(ids)
    })
    .await;
    assert_eq!(listed, ["local/echo", "local/json", "local/sse"], "discovered as <provider_id>/<model>");
    let (_, page) = app.get("/v1/models").await;
    let explicit = page["data"].as_array().expect("data").iter().find(|m| m["id"] == "local/echo").cloned();
    let explicit = explicit.expect("local/echo");
    assert_eq!(
        (explicit["provider_model_id"].as_str(), explicit["source"].as_str()),
        (Some("json"), Some("config")),
        "the explicit model wins: {explicit}"
    );
    let (_, discovered) = app.get("/v1/models/local/sse").await;
    assert_eq!(
        (discovered["provider_model_id"].as_str(), discovered["source"].as_str()),
        (Some("sse"), Some("discovered")),
        "{discovered}"
    );

    // A discovered model is served.
    let body = json!({"model": "local/json", "messages": [{"role": "user", "content": "hi"}]});
    let (status, answer) = app.send(Method::POST, "/v1/chat/completions", Some(&body.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        (answer["model"].as_str(), answer["choices"][0]["message"]["content"].as_str()),
        (Some("local/json"), Some("hi there"))
    );
    let (status, refused) = app.send(Method::DELETE, "/v1/models/local/json", None).await;
    assert_eq!(status, 400, "discovered models go with their provider: {refused}");

    // Models that disappear upstream are dropped; a provider that fails keeps what it had.
    upstream.set_models(Some(&["json"]));
    wait_for("local/sse to be dropped", std::time::Duration::from_secs(15), || async {
        (list_ids(&app).await == ["local/echo", "local/json"]).then_some(())
    })
    .await;
    upstream.set_models(None);
    let asked = upstream.model_list_requests();
    wait_for("two failed refreshes", std::time::Duration::from_secs(15), || async {
        (upstream.model_list_requests() >= asked + 2).then_some(())
    })
    .await;
    assert_eq!(list_ids(&app).await, ["local/echo", "local/json"], "a failing provider keeps its models");

    // Shutdown stops the discovery task (the stop would otherwise wait for it).
    let stopped = tokio::time::timeout(std::time::Duration::from_secs(10), app.stop()).await;
    stopped.expect("the server stops promptly").expect("clean stop");
    upstream.stop().await;
}

async fn list_ids(app: &TestApp) -> Vec<String> {
    let (status, page) = app.get("/v1/models").await;
    assert_eq!(status, 200, "{page}");
    page["data"].as_array().expect("data").iter().filter_map(|m| m["id"].as_str()).map(str::to_owned).collect()
}

/// No config file: `VLLM_URL` (with its token) and `OLLAMA_URL` enable their providers with
/// discovery, and the echo provider is not there.
async fn starter_engines() {
    let home = tempfile::tempdir().expect("tempdir");
    let (vllm, ollama) = (FakeUpstream::start().await, FakeUpstream::start().await);
    ollama.set_models(Some(&["llama3.2:3b"]));
    let env = ferrostack_config::Env::from_pairs([
        ("FERROSTACK_HOME", home.path().display().to_string()),
        ("VLLM_URL", vllm.base_url.clone()),
        ("VLLM_API_TOKEN", "vllm-token".to_owned()),
        ("OLLAMA_URL", ollama.base_url.trim_end_matches("/v1").to_owned()),
    ]);
    let mut config = ferrostack_config::load_default(&env).expect("the starter config loads").config;
    test_server_settings(&mut config);
    let app = TestApp::spawn(&config, ServeOptions::default()).await;
    let ids = wait_for("both engines' models", std::time::Duration::from_secs(15), || async {
        let ids = list_ids(&app).await;
        (ids.len() == 3).then_some(ids)
    })
    .await;
    assert_eq!(ids, ["ollama/llama3.2:3b", "vllm/echo", "vllm/json"], "no echo provider once an engine is set");
    let body = json!({"model": "vllm/echo", "messages": [{"role": "user", "content": "hi"}]});
    let (status, answer) = app.send(Method::POST, "/v1/chat/completions", Some(&body.to_string())).await;
    assert_eq!(status, 200, "{answer}");
    let seen = vllm.last_seen().expect("the chat reached vllm");
    assert_eq!(seen.authorization.as_deref(), Some("Bearer vllm-token"), "VLLM_API_TOKEN is sent");
    assert_eq!(seen.body["model"], "echo", "the engine's own model name goes upstream");
    app.stop().await.expect("clean stop");
    vllm.stop().await;
    ollama.stop().await;
}
