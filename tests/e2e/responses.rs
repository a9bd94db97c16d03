//! `/v1/responses` end to end: the real server on port 0, the fake upstream on another loopback
//! port, responses (and the conversations they append to) in a real SQLite file or PostgreSQL
//! database, three callers under the access policy.
//!
//! CI cost: 21 tests (10 per dialect and one SQLite-only), 6-8 s of wall time on 2 cores (measured with
//! `cargo test -p ferrostack-tests --test e2e -- responses::`), plus the Responses part of the
//! OpenAI SDK check (tests/sdk/openai_check.py, a second or two per run).

use std::time::Duration;

use ferrostack::ServeOptions;
use ferrostack_catalog::{Catalog, Sql};
use ferrostack_config::RunConfig;
use ferrostack_testkit::Test;
use ferrostack_tests::upstream::FakeUpstream;
use ferrostack_tests::{Storage, TestApp, config_from_yaml, test_server_settings, wait_for};
use futures_util::StreamExt;
use reqwest::Method;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    [
        on_both!("responses", "create_retrieve_list_delete", create_retrieve_list_delete),
        on_both!("responses", "stream_events_in_order_and_stored", streamed),
        on_both!("responses", "function_tools_round_trip", function_tools),
        on_both!("responses", "three_turn_chain_sends_the_whole_history", chain_of_three),
        on_both!("responses", "conversation_is_context_and_gets_the_items", conversation),
        on_both!("responses", "two_tenants_on_every_route_and_state_parameter", tenants),
        on_both!("responses", "malformed_requests_are_400_naming_the_field", malformed),
        on_both!("responses", "upstream_failure_mid_stream_and_disconnect", failures),
        on_both!("responses", "nul_in_the_model_answer_is_never_acknowledged_without_its_row", nul_answer),
        on_both!("responses", "turn_over_max_row_bytes_is_413_naming_the_limit", row_limit),
    ]
    .into_iter()
    .flatten()
    .chain([Test::plain("responses::sqlite::store_off_answers_without_storing", || async {
        let dir = tempfile::tempdir().expect("tempdir");
        store_off(Storage::Sqlite(dir.path())).await
    })])
    .collect()
}

/// alice and carol share a team; bob is alone. Owners do everything; a team mate may read; the
/// config's (unowned) models are readable by all.
const AUTH: &str = "server:\n  auth:\n    provider_config:\n      type: static\n      tokens:\n        - { token: alice-token, principal: alice, attributes: { teams: [red] } }\n        - { token: bob-token, principal: bob, attributes: { teams: [blue] } }\n        - { token: carol-token, principal: carol, attributes: { teams: [red] } }\n    access_policy:\n      - permit: { actions: [create, read, update, delete] }\n        when: user is owner\n      - permit: { actions: [read] }\n        when: user in owners teams\n      - permit: { actions: [read] }\n        when: resource is unowned\n";

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";
const CAROL: &str = "carol-token";

/// A model id with a `/`, answered back exactly as sent.
const MODEL: &str = "org/test-model";

struct Env {
    app: TestApp,
    upstream: FakeUpstream,
    config: RunConfig,
}

async fn start(storage: Storage<'_>) -> Env {
    start_with(storage, true).await
}

async fn start_with(storage: Storage<'_>, responses_store: bool) -> Env {
    start_tuned(storage, responses_store, |_| {}).await
}

/// [`start_with`], the config changed by `tune` before the server starts.
async fn start_tuned(storage: Storage<'_>, responses_store: bool, tune: impl FnOnce(&mut RunConfig)) -> Env {
    let upstream = FakeUpstream::start().await;
    let models = [
        (MODEL, "echo"),
        ("tools-model", "tool-call"),
        ("fail-model", "error-event"),
        ("hold-model", "hold"),
        ("bad-model", "bad-request"),
        ("nul-model", "nul"),
    ]
    .iter()
    .map(|(id, scenario)| format!("  - {{ model_id: \"{id}\", provider_id: fake, provider_model_id: {scenario} }}\n"))
    .collect::<String>();
    let yaml = format!(
        "version: 2\n{}providers:\n  inference:\n    - provider_id: fake\n      provider_type: remote::vllm\n      config: {{ url: \"{}\", timeout_ms: 10000 }}\nmodels:\n{models}{AUTH}",
        if responses_store {
            storage.yaml()
        } else {
            storage
                .yaml()
                .lines()
                .filter(|l| !l.trim_start().starts_with("responses:"))
                .map(|l| format!("{l}\n"))
                .collect()
        },
        upstream.base_url
    );
    let mut config = config_from_yaml(&yaml, &[]);
    test_server_settings(&mut config);
    tune(&mut config);
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    Env { app, upstream, config }
}

impl Env {
    async fn stop(self) {
        self.app.stop().await.expect("clean stop");
        self.upstream.stop().await;
    }

    /// The messages of the last chat completion the fake upstream received.
    fn last_messages(&self) -> Value {
        self.upstream.last_seen().expect("the upstream was called").body["messages"].clone()
    }
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app.http.request(method.clone(), format!("{}{path}", app.base)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn ok(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> Value {
    let (status, body) = call(app, method.clone(), path, token, body).await;
    assert_eq!(status, 200, "{method} {path}: {body}");
    body
}

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    ok(app, Method::POST, "/v1/responses", token, Some(body)).await
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

fn text_of(response: &Value) -> String {
    let mut text = String::new();
    for item in response["output"].as_array().expect("output") {
        for part in item["content"].as_array().into_iter().flatten() {
            text.push_str(part["text"].as_str().unwrap_or_default());
        }
    }
    text
}

/// The events of a streamed answer: (`event:` name, data).
async fn stream(app: &TestApp, token: &str, body: Value) -> (u16, Vec<(String, Value)>) {
    let res = app.http.post(format!("{}/v1/responses", app.base)).bearer_auth(token).json(&body).send().await;
    let res = res.expect("request");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    let events = text
        .split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: ")).unwrap_or_default().to_owned();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap_or("null");
            (name, serde_json::from_str(data).unwrap_or_else(|_| json!({"unparsed": data})))
        })
        .collect();
    (status, events)
}

fn kinds(events: &[(String, Value)]) -> Vec<String> {
    events
        .iter()
        .map(|(name, data)| {
            assert_eq!(data["type"].as_str(), Some(name.as_str()), "event name and type agree: {data}");
            name.clone()
        })
        .collect()
}

/// Rows in the responses table, counted in the database itself.
async fn rows(config: &RunConfig) -> i64 {
    let catalog = Catalog::open(&config.storage).await.expect("open catalog");
    let backend = config.storage.stores.responses.as_ref().expect("responses store").backend.clone();
    let db = catalog.sql(&backend).expect("sql backend");
    let rows = db.fetch_all(Sql::new().push("SELECT COUNT(*) AS n FROM openai_responses")).await.expect("count");
    let n = rows[0].get::<i64>("n").expect("n");
    catalog.close().await;
    n
}

async fn create_retrieve_list_delete(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let answer = create(
        app,
        ALICE,
        json!({"model": MODEL, "input": "say hello", "instructions": "be brief", "metadata": {"suite": "e2e"},
               "temperature": 0.5, "max_output_tokens": 64}),
    )
    .await;
    let rid = id(&answer);
    assert!(rid.starts_with("resp_") && rid.len() == 53, "{rid}");
    assert_eq!(answer["object"], "response");
    assert_eq!(answer["status"], "completed", "{answer}");
    assert_eq!(answer["model"], MODEL, "the model as the client sent it");
    assert_eq!(answer["instructions"], "be brief");
    assert_eq!(answer["metadata"], json!({"suite": "e2e"}));
    assert_eq!(answer["temperature"], json!(0.5));
    assert_eq!(answer["max_output_tokens"], json!(64));
    assert_eq!(answer["output"][0]["type"], "message");
    assert_eq!(answer["output"][0]["role"], "assistant");
    assert_eq!(answer["output"][0]["content"][0]["type"], "output_text");
    assert_eq!(text_of(&answer), "hello world");
    assert_eq!(answer["usage"]["input_tokens"], 3, "usage mapped from the upstream's");
    assert_eq!(answer["usage"]["output_tokens"], 2);
    assert_eq!(answer["usage"]["total_tokens"], 5);
    // What went upstream: the instructions as the system message, then the input.
    let seen = env.upstream.last_seen().expect("seen").body;
    assert_eq!(
        seen["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "say hello"}])
    );
    assert_eq!(
        (seen["model"].clone(), seen["temperature"].clone(), seen["max_tokens"].clone()),
        (json!("echo"), json!(0.5), json!(64))
    );

    // Read-your-writes: retrievable at once, exactly as answered.
    assert_eq!(ok(app, Method::GET, &format!("/v1/responses/{rid}"), ALICE, None).await, answer);
    let items = ok(app, Method::GET, &format!("/v1/responses/{rid}/input_items"), ALICE, None).await;
    assert_eq!(items["object"], "list");
    assert_eq!(items["data"].as_array().map(Vec::len), Some(1), "{items}");
    assert_eq!(items["data"][0]["type"], "message");
    assert_eq!(items["data"][0]["content"], json!([{"type": "input_text", "text": "say hello"}]));
    assert_eq!(items["first_id"], items["data"][0]["id"]);

    // The list: three more, pages through `after`, the model filter, ties never skipped.
    let mut ids = vec![rid.clone()];
    for i in 0..3 {
        ids.push(id(&create(app, ALICE, json!({"model": MODEL, "input": format!("n{i}")})).await));
    }
    let other = id(&create(app, ALICE, json!({"model": "tools-model", "input": "weather?"})).await);
    let mut seen_ids = Vec::new();
    let mut after = String::new();
    loop {
        let q = if after.is_empty() { String::new() } else { format!("&after={after}") };
        let page =
            ok(app, Method::GET, &format!("/v1/responses?order=asc&limit=2&model={MODEL}{q}"), ALICE, None).await;
        assert!(
            page["data"].as_array().expect("data").iter().all(|r| r["model"] == MODEL && r["input"].is_array()),
            "{page}"
        );
        seen_ids.extend(page["data"].as_array().expect("data").iter().map(id));
        after = page["last_id"].as_str().unwrap_or_default().to_owned();
        if page["has_more"] != json!(true) {
            break;
        }
    }
    assert_eq!(seen_ids, ids, "every response of the model once, oldest first");
    let newest = ok(app, Method::GET, "/v1/responses?limit=1", ALICE, None).await;
    assert_eq!((newest["data"][0]["id"].clone(), newest["has_more"].clone()), (json!(other), json!(true)));
    for bad in ["limit=0", "limit=101", "order=up", "after=resp_nothere", "colour=red"] {
        let (status, body) = call(app, Method::GET, &format!("/v1/responses?{bad}"), ALICE, None).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }

    // store: false stores nothing, and cannot be continued.
    let before = rows(&env.config).await;
    let unstored = create(app, ALICE, json!({"model": MODEL, "input": "x", "store": false})).await;
    assert_eq!(unstored["store"], json!(false));
    assert_eq!(rows(&env.config).await, before, "no row for store: false");
    let (status, body) = call(app, Method::GET, &format!("/v1/responses/{}", id(&unstored)), ALICE, None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        ALICE,
        Some(json!({"model": MODEL, "input": "y", "previous_response_id": id(&unstored)})),
    )
    .await;
    assert_eq!((status, body["error"]["param"].clone()), (404, json!("previous_response_id")), "{body}");

    // Delete; then every route says the response is gone, in the words clients match on.
    let deleted = ok(app, Method::DELETE, &format!("/v1/responses/{rid}"), ALICE, None).await;
    assert_eq!(deleted, json!({"id": rid, "object": "response", "deleted": true}));
    for (method, path) in [
        (Method::GET, format!("/v1/responses/{rid}")),
        (Method::DELETE, format!("/v1/responses/{rid}")),
        (Method::GET, format!("/v1/responses/{rid}/input_items")),
    ] {
        let (status, body) = call(app, method.clone(), &path, ALICE, None).await;
        assert_eq!(status, 404, "{method} {path}: {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.starts_with(&format!("Response '{rid}' not found")), "{message}");
    }
    // An unknown model: 404 naming it, saying how to list models; nothing went upstream.
    let calls = env.upstream.requests();
    let (status, body) =
        call(app, Method::POST, "/v1/responses", ALICE, Some(json!({"model": "nope", "input": "x"}))).await;
    assert_eq!(status, 404, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("Model 'nope' not found") && message.contains("models.list"), "{message}");
    assert_eq!(env.upstream.requests(), calls);
    env.stop().await;
}

async fn streamed(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let (status, events) = stream(app, ALICE, json!({"model": MODEL, "input": "hi", "stream": true})).await;
    assert_eq!(status, 200);
    let kinds = kinds(&events);
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.delta",
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ],
    );
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], json!(i), "sequence numbers count from 0: {data}");
    }
    let rid = id(&events[0].1["response"]);
    assert!(rid.starts_with("resp_"), "the first event carries the id");
    assert_eq!(events[0].1["response"]["status"], "in_progress");
    let deltas: Vec<&str> = events.iter().filter_map(|(_, d)| d["delta"].as_str()).collect();
    assert_eq!(deltas, ["hel", "lo ", "world"], "relayed as the upstream sent it");
    let item_id = events[2].1["item"]["id"].clone();
    assert!(events[4..10].iter().all(|(_, d)| d["item_id"] == item_id || d["item"]["id"] == item_id));
    assert_eq!(events[7].1["text"], "hello world");
    let done = &events[10].1["response"];
    assert_eq!((done["id"].as_str(), done["status"].as_str()), (Some(rid.as_str()), Some("completed")));
    assert_eq!(text_of(done), "hello world");
    // The upstream was asked for a stream with usage.
    let seen = env.upstream.last_seen().expect("seen").body;
    assert_eq!((seen["stream"].clone(), seen["stream_options"].clone()), (json!(true), json!({"include_usage": true})));
    // Stored before response.completed was sent: readable at once, as completed.
    let stored = ok(app, Method::GET, &format!("/v1/responses/{rid}"), ALICE, None).await;
    assert_eq!(&stored, done);
    env.stop().await;
}

async fn function_tools(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "weather of a city",
                        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let first = create(
        app,
        ALICE,
        json!({"model": "tools-model", "input": "weather in Paris?", "tools": tools, "tool_choice": "auto"}),
    )
    .await;
    let seen = env.upstream.last_seen().expect("seen").body;
    assert_eq!(seen["tools"][0]["function"]["name"], "get_weather", "tools translated: {seen}");
    assert_eq!(seen["tool_choice"], "auto");
    assert_eq!(first["output"].as_array().map(Vec::len), Some(1), "{first}");
    let call = &first["output"][0];
    assert_eq!(
        (call["type"].as_str(), call["call_id"].as_str(), call["name"].as_str()),
        (Some("function_call"), Some("call_1"), Some("get_weather"))
    );
    assert_eq!(call["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(first["tools"][0]["name"], "get_weather");

    // The tool's answer goes back with previous_response_id.
    let output = json!([{"type": "function_call_output", "call_id": "call_1", "output": "{\"temp\": 21}"}]);
    let second = create(app, ALICE, json!({"model": MODEL, "previous_response_id": id(&first), "input": output})).await;
    assert_eq!(text_of(&second), "hello world");
    assert_eq!(
        env.last_messages(),
        json!([
            {"role": "user", "content": "weather in Paris?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\": 21}"},
        ])
    );

    // Streamed: the arguments arrive as deltas, then done, inside the function_call item.
    let (status, events) =
        stream(app, ALICE, json!({"model": "tools-model", "input": "again", "tools": tools, "stream": true})).await;
    assert_eq!(status, 200);
    let kinds = kinds(&events);
    assert_eq!(
        kinds,
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    assert_eq!(events[2].1["item"]["type"], "function_call");
    assert_eq!(events[5].1["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(events[5].1["name"], "get_weather");
    let done = &events[7].1["response"];
    assert_eq!(done["output"][0]["call_id"], "call_1");
    env.stop().await;
}

async fn chain_of_three(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let one = create(app, ALICE, json!({"model": MODEL, "input": "one", "instructions": "first rules"})).await;
    let two = create(app, ALICE, json!({"model": MODEL, "input": "two", "previous_response_id": id(&one)})).await;
    let three = create(
        app,
        ALICE,
        json!({"model": MODEL, "input": [{"role": "user", "content": "three"}], "previous_response_id": id(&two), "instructions": "third rules"}),
    )
    .await;
    assert_eq!(three["previous_response_id"], json!(id(&two)));
    assert_eq!(three["instructions"], "third rules");
    assert_eq!(
        env.last_messages(),
        json!([
            {"role": "system", "content": "third rules"},
            {"role": "user", "content": "one"},
            {"role": "assistant", "content": "hello world"},
            {"role": "user", "content": "two"},
            {"role": "assistant", "content": "hello world"},
            {"role": "user", "content": "three"},
        ]),
        "the full history, and instructions are not inherited"
    );
    // Linear storage: each turn stores its own input only.
    for turn in [&one, &two, &three] {
        let items = ok(app, Method::GET, &format!("/v1/responses/{}/input_items", id(turn)), ALICE, None).await;
        assert_eq!(items["data"].as_array().map(Vec::len), Some(1), "{items}");
    }
    // Input items pages: both ways, after and before, and not both.
    let many = create(app, ALICE, json!({"model": MODEL, "input": (0..5).map(|i| json!({"role": "user", "content": format!("m{i}")})).collect::<Vec<_>>()})).await;
    let path = format!("/v1/responses/{}/input_items", id(&many));
    let asc = ok(app, Method::GET, &format!("{path}?order=asc&limit=2"), ALICE, None).await;
    assert_eq!((asc["data"][0]["content"][0]["text"].clone(), asc["has_more"].clone()), (json!("m0"), json!(true)));
    let rest = ok(
        app,
        Method::GET,
        &format!("{path}?order=asc&after={}", asc["last_id"].as_str().unwrap_or_default()),
        ALICE,
        None,
    )
    .await;
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(3));
    let desc =
        ok(app, Method::GET, &format!("{path}?before={}", asc["first_id"].as_str().unwrap_or_default()), ALICE, None)
            .await;
    assert_eq!(desc["data"].as_array().map(Vec::len), Some(4), "newest first, all before m0: {desc}");
    assert_eq!(desc["data"][0]["content"][0]["text"], "m4");
    let (status, body) = call(app, Method::GET, &format!("{path}?after=a&before=b"), ALICE, None).await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = call(app, Method::GET, &format!("{path}?after=msg_nothere"), ALICE, None).await;
    assert_eq!(status, 404, "{body}");
    // A deleted middle turn ends the chain there.
    ok(app, Method::DELETE, &format!("/v1/responses/{}", id(&two)), ALICE, None).await;
    create(app, ALICE, json!({"model": MODEL, "input": "four", "previous_response_id": id(&three)})).await;
    assert_eq!(
        env.last_messages(),
        json!([{"role": "user", "content": "three"}, {"role": "assistant", "content": "hello world"}, {"role": "user", "content": "four"}])
    );
    env.stop().await;
}

async fn conversation(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let conv = ok(
        app,
        Method::POST,
        "/v1/conversations",
        ALICE,
        Some(json!({"items": [{"role": "user", "content": "context"}]})),
    )
    .await;
    let cid = id(&conv);
    let first = create(app, ALICE, json!({"model": MODEL, "input": "question", "conversation": cid})).await;
    assert_eq!(first["conversation"], json!({"id": cid}));
    assert_eq!(
        env.last_messages(),
        json!([{"role": "user", "content": "context"}, {"role": "user", "content": "question"}])
    );
    let second = create(app, ALICE, json!({"model": MODEL, "input": "follow-up", "conversation": {"id": cid}})).await;
    assert_eq!(
        env.last_messages(),
        json!([
            {"role": "user", "content": "context"},
            {"role": "user", "content": "question"},
            {"role": "assistant", "content": "hello world"},
            {"role": "user", "content": "follow-up"},
        ])
    );
    // The conversation holds every turn's input then output, in order, with the response's ids.
    let items = ok(app, Method::GET, &format!("/v1/conversations/{cid}/items?order=asc"), ALICE, None).await;
    let items = items["data"].as_array().expect("data").clone();
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(items[1]["content"][0]["text"], "question");
    assert_eq!(items[2]["id"], first["output"][0]["id"]);
    assert_eq!(items[2]["role"], "assistant");
    assert_eq!(items[4]["id"], second["output"][0]["id"]);
    // Streamed turns append too, before response.completed.
    let (_, events) =
        stream(app, ALICE, json!({"model": MODEL, "input": "streamed", "conversation": cid, "stream": true})).await;
    assert_eq!(events.last().map(|(k, _)| k.as_str()), Some("response.completed"));
    let items = ok(app, Method::GET, &format!("/v1/conversations/{cid}/items?limit=1"), ALICE, None).await;
    assert_eq!(items["data"][0]["content"][0]["text"], "hello world");

    // Both state parameters at once: 400. A missing conversation: 404 in the words clients match.
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        ALICE,
        Some(json!({"model": MODEL, "input": "x", "conversation": cid, "previous_response_id": id(&first)})),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let missing = format!("conv_{}", "0".repeat(48));
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        ALICE,
        Some(json!({"model": MODEL, "input": "x", "conversation": missing})),
    )
    .await;
    assert_eq!((status, body["error"]["param"].clone()), (404, json!("conversation")), "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with(&format!("Conversation '{missing}' not found")),
        "{body}"
    );
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        ALICE,
        Some(json!({"model": MODEL, "input": "x", "conversation": "conv_bad"})),
    )
    .await;
    assert_eq!((status, body["error"]["param"].clone()), (400, json!("conversation")), "{body}");
    env.stop().await;
}

async fn tenants(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let mine = create(app, ALICE, json!({"model": MODEL, "input": "secret"})).await;
    let rid = id(&mine);
    let conv = ok(
        app,
        Method::POST,
        "/v1/conversations",
        ALICE,
        Some(json!({"items": [{"role": "user", "content": "secret"}]})),
    )
    .await;
    let calls = env.upstream.requests();
    // bob sees nothing of alice's, on every route and through both state parameters.
    for (method, path) in [
        (Method::GET, format!("/v1/responses/{rid}")),
        (Method::DELETE, format!("/v1/responses/{rid}")),
        (Method::GET, format!("/v1/responses/{rid}/input_items")),
    ] {
        let (status, body) = call(app, method.clone(), &path, BOB, None).await;
        assert_eq!(status, 404, "bob {method} {path}: {body}");
    }
    let page = ok(app, Method::GET, "/v1/responses", BOB, None).await;
    assert_eq!(page["data"], json!([]), "{page}");
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        BOB,
        Some(json!({"model": MODEL, "input": "x", "previous_response_id": rid})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]["message"].as_str().unwrap_or_default().starts_with(&format!("Response '{rid}' not found")));
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        BOB,
        Some(json!({"model": MODEL, "input": "x", "conversation": id(&conv)})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(env.upstream.requests(), calls, "nothing of alice's went upstream for bob");
    // carol (alice's team) may read and continue alice's response, not delete it.
    assert_eq!(ok(app, Method::GET, &format!("/v1/responses/{rid}"), CAROL, None).await, mine);
    let (status, body) = call(app, Method::DELETE, &format!("/v1/responses/{rid}"), CAROL, None).await;
    assert_eq!(status, 403, "{body}");
    let hers = create(app, CAROL, json!({"model": MODEL, "input": "more", "previous_response_id": rid})).await;
    assert_eq!(env.last_messages()[0], json!({"role": "user", "content": "secret"}));
    // ... but alice may not read carol's turn back (carol's own row), nor delete it.
    let (status, _) = call(app, Method::GET, &format!("/v1/responses/{}", id(&hers)), BOB, None).await;
    assert_eq!(status, 404);
    let listed = ok(app, Method::GET, "/v1/responses", ALICE, None).await;
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(2), "alice sees hers and her team mate's: {listed}");
    // carol may read alice's conversation but not append to it: 403, and nothing is stored.
    let before = rows(&env.config).await;
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        CAROL,
        Some(json!({"model": MODEL, "input": "x", "conversation": id(&conv)})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(rows(&env.config).await, before, "the response and the items commit together, or neither");
    env.stop().await;
}

async fn malformed(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let cases = [
        (json!({}), "model"),
        (json!({"model": MODEL}), "input"),
        (json!({"model": MODEL, "input": 5}), "input"),
        (json!({"model": MODEL, "input": []}), "input"),
        (json!({"model": MODEL, "input": "x", "temperature": 3}), "temperature"),
        (json!({"model": MODEL, "input": "x", "top_p": -1}), "top_p"),
        (json!({"model": MODEL, "input": "x", "max_tool_calls": 0}), "max_tool_calls"),
        (json!({"model": MODEL, "input": "x", "max_output_tokens": 0}), "max_output_tokens"),
        (json!({"model": MODEL, "input": "x", "tool_choice": "sometimes"}), "tool_choice"),
        (json!({"model": MODEL, "input": "x", "tool_choice": {"type": "function", "name": "nope"}}), "tool_choice"),
        (json!({"model": MODEL, "input": "x", "tools": [{"type": "web_search"}]}), "tools[0].type"),
        (
            json!({"model": MODEL, "input": "x", "tools": [{"type": "function", "name": "f"}, {"type": "code_interpreter"}]}),
            "tools[1].type",
        ),
        (json!({"model": MODEL, "input": "x", "tools": [{"type": "function"}]}), "tools[0].name"),
        (json!({"model": MODEL, "input": [{"role": "robot", "content": "x"}]}), "input[0].role"),
        (json!({"model": MODEL, "input": [{"type": "message", "role": "user"}]}), "input[0].content"),
        (json!({"model": MODEL, "input": ["text"]}), "input[0]"),
        (json!({"model": MODEL, "input": [{"type": "web_search_call", "id": "ws_1"}]}), "input[0].type"),
        (json!({"model": MODEL, "input": [{"type": "function_call_output", "call_id": "c"}]}), "input[0].output"),
        (
            json!({"model": MODEL, "input": [{"type": "function_call", "call_id": "c", "name": "f"}]}),
            "input[0].arguments",
        ),
        (
            json!({"model": MODEL, "input": [{"role": "user", "content": [{"type": "video"}]}]}),
            "input[0].content[0].type",
        ),
        (
            json!({"model": MODEL, "input": [{"role": "user", "content": [{"type": "input_image", "file_id": "file_1"}]}]}),
            "input[0].content[0].file_id",
        ),
        (json!({"model": MODEL, "input": "x", "text": {"format": {"type": "json_schema"}}}), "text.format.name"),
        (json!({"model": MODEL, "input": "x", "background": true}), "background"),
        (json!({"model": MODEL, "input": "x", "colour": "red"}), "colour"),
        (json!({"model": MODEL, "input": "x", "metadata": {"k": 1}}), "metadata"),
    ];
    for (body, param) in cases {
        let (status, err) = call(app, Method::POST, "/v1/responses", ALICE, Some(body.clone())).await;
        assert_eq!((status, err["error"]["param"].clone()), (400, json!(param)), "{body}: {err}");
        assert_eq!(err["error"]["code"], "invalid_request", "{err}");
    }
    let (status, err) = call(
        app,
        Method::POST,
        "/v1/responses",
        ALICE,
        Some(json!({"model": MODEL, "input": "x", "tools": [{"type": "file_search"}]})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"].as_str().unwrap_or_default().contains("not supported"), "{err}");
    // An empty body and a body that is not JSON: 400, not 422.
    for raw in ["", "{not json"] {
        let res = app
            .http
            .post(format!("{}/v1/responses", app.base))
            .bearer_auth(ALICE)
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .expect("send");
        assert_eq!(res.status().as_u16(), 400, "{raw:?}");
    }
    assert_eq!(env.upstream.requests(), 0, "nothing malformed went upstream");
    // Text formats are translated.
    let answer = create(app, ALICE, json!({"model": MODEL, "input": "x", "text": {"format": {"type": "json_schema", "name": "s", "schema": {"type": "object"}}}})).await;
    assert_eq!(answer["text"]["format"]["type"], "json_schema");
    assert_eq!(env.upstream.last_seen().expect("seen").body["response_format"]["json_schema"]["name"], "s");
    env.stop().await;
}

async fn failures(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    // The provider's 4xx passes through with its message, before any event.
    let (status, body) =
        call(app, Method::POST, "/v1/responses", ALICE, Some(json!({"model": "bad-model", "input": "x"}))).await;
    assert_eq!((status, body["error"]["message"].clone()), (400, json!("max_tokens is too large")), "{body}");
    // An error event mid-stream: response.failed, and what was produced is stored as failed.
    let (status, events) = stream(app, ALICE, json!({"model": "fail-model", "input": "x", "stream": true})).await;
    assert_eq!(status, 200);
    let (last_kind, last) = events.last().expect("events");
    assert_eq!(last_kind, "response.failed", "{events:?}");
    let failed = &last["response"];
    assert_eq!(failed["status"], "failed");
    assert!(failed["error"]["message"].as_str().unwrap_or_default().contains("out of memory"), "{failed}");
    assert_eq!(text_of(failed), "Héllo ", "the text before the failure");
    assert_eq!(&ok(app, Method::GET, &format!("/v1/responses/{}", id(failed)), ALICE, None).await, failed);
    // A client that leaves mid-stream: what was produced is stored.
    let res = app
        .http
        .post(format!("{}/v1/responses", app.base))
        .bearer_auth(ALICE)
        .json(&json!({"model": "hold-model", "input": "x", "stream": true}))
        .send()
        .await
        .expect("request");
    let mut body = res.bytes_stream();
    let mut text = String::new();
    while !text.contains("output_text.delta") {
        text.push_str(&String::from_utf8_lossy(&body.next().await.expect("more events").expect("bytes")));
    }
    let created =
        text.split("\n\n").next().and_then(|e| e.lines().find_map(|l| l.strip_prefix("data: "))).expect("first event");
    let rid = id(&serde_json::from_str::<Value>(created).expect("json")["response"]);
    drop(body); // the client goes away
    env.upstream.release();
    let stored = wait_for("the interrupted response to be stored", Duration::from_secs(10), || async {
        let (status, body) = call(app, Method::GET, &format!("/v1/responses/{rid}"), ALICE, None).await;
        (status == 200).then_some(body)
    })
    .await;
    assert!(text_of(&stored).starts_with("partial"), "{stored}");
    env.stop().await;
}

/// `storage.stores.responses` left out: answers still come, nothing is stored, state is 501.
async fn store_off(storage: Storage<'_>) {
    let env = start_with(storage, false).await;
    let app = &env.app;
    assert!(env.config.storage.stores.responses.is_none());
    let answer = create(app, ALICE, json!({"model": MODEL, "input": "hi"})).await;
    assert_eq!(text_of(&answer), "hello world");
    let (_, events) = stream(app, ALICE, json!({"model": MODEL, "input": "hi", "stream": true})).await;
    assert_eq!(events.last().map(|(k, _)| k.as_str()), Some("response.completed"));
    for (method, path, body) in [
        (Method::GET, format!("/v1/responses/{}", id(&answer)), None),
        (Method::GET, "/v1/responses".to_owned(), None),
        (
            Method::POST,
            "/v1/responses".to_owned(),
            Some(json!({"model": MODEL, "input": "x", "previous_response_id": id(&answer)})),
        ),
    ] {
        let (status, body) = call(app, method.clone(), &path, ALICE, body).await;
        assert_eq!(status, 501, "{method} {path}: {body}");
    }
    env.stop().await;
}

/// A model answer holding a NUL character, which the store cannot hold: a JSON answer is a 502
/// naming the provider's fault and nothing is stored (nor appended to a conversation); a stream's
/// NULs become U+FFFD in the events and in the stored response, which is stored.
async fn nul_answer(storage: Storage<'_>) {
    let env = start(storage).await;
    let app = &env.app;
    let (status, body) =
        call(app, Method::POST, "/v1/responses", ALICE, Some(json!({"model": "nul-model", "input": "x"}))).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"]["code"], "upstream_invalid_response", "{body}");
    let conversation = id(&ok(app, Method::POST, "/v1/conversations", ALICE, Some(json!({}))).await);
    let (status, body) = call(
        app,
        Method::POST,
        "/v1/responses",
        ALICE,
        Some(json!({"model": "nul-model", "input": "x", "conversation": conversation})),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    let items = ok(app, Method::GET, &format!("/v1/conversations/{conversation}/items"), ALICE, None).await;
    assert_eq!(items["data"], json!([]), "nothing appended: {items}");
    assert_eq!(rows(&env.config).await, 0, "no row for a refused answer");

    let (status, events) = stream(app, ALICE, json!({"model": "nul-model", "input": "x", "stream": true})).await;
    assert_eq!(status, 200);
    let (last_kind, last) = events.last().expect("events");
    assert_eq!(last_kind, "response.completed", "{events:?}");
    let completed = &last["response"];
    assert_eq!(text_of(completed), "a\u{FFFD}b", "{completed}");
    let deltas: String = events
        .iter()
        .filter(|(k, _)| k == "response.output_text.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(deltas, "a\u{FFFD}b", "the client gets what is stored");
    let stored = ok(app, Method::GET, &format!("/v1/responses/{}", id(completed)), ALICE, None).await;
    assert_eq!(&stored, completed);
    assert_eq!(rows(&env.config).await, 1);
    // Nothing stored, nothing changed: with `store: false` the answer passes as it came.
    let answer = create(app, ALICE, json!({"model": "nul-model", "input": "x", "store": false})).await;
    assert_eq!(text_of(&answer), "a\u{0}b");
    assert_eq!(rows(&env.config).await, 1);
    env.stop().await;
}

/// `max_row_bytes` of the responses store: a request whose input alone is over it is a 413
/// naming the limit and the `input` field, before the upstream is called (JSON and stream); one
/// that the answer takes over it is a 413 (JSON) or an `error` event instead of the final one
/// (stream), and nothing is stored either way; what fits is stored.
async fn row_limit(storage: Storage<'_>) {
    const LIMIT: usize = 4096;
    let env = start_tuned(storage, true, |c| {
        c.storage.stores.responses.as_mut().expect("responses store").max_row_bytes = LIMIT;
    })
    .await;
    let app = &env.app;
    for streamed in [false, true] {
        let before = env.upstream.requests();
        let big = json!({"model": MODEL, "input": "x".repeat(5000), "stream": streamed});
        let (status, body) = call(app, Method::POST, "/v1/responses", ALICE, Some(big)).await;
        assert_eq!(status, 413, "{body}");
        assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
        assert_eq!(body["error"]["param"], "input", "{body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("max_row_bytes") && message.contains(&LIMIT.to_string()), "{message}");
        assert_eq!(env.upstream.requests(), before, "refused before the upstream is called");
        // The request's size grows with the input text byte for byte: an input that brings it
        // exactly to the limit passes the check, and the answer takes the turn over it.
        let size: usize = message
            .split(" are ")
            .nth(1)
            .and_then(|rest| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("a size in {message}"));
        let at_limit = json!({"model": MODEL, "input": "x".repeat(5000 - (size - LIMIT)), "stream": streamed});
        if streamed {
            let (status, events) = stream(app, ALICE, at_limit).await;
            assert_eq!(status, 200);
            let (kind, last) = events.last().expect("events");
            assert_eq!(kind, "error", "no final event without its row: {events:?}");
            assert_eq!(last["code"], "payload_too_large", "{last}");
            assert!(last["message"].as_str().unwrap_or_default().contains("max_row_bytes"), "{last}");
        } else {
            let (status, body) = call(app, Method::POST, "/v1/responses", ALICE, Some(at_limit)).await;
            assert_eq!(status, 413, "{body}");
            assert_eq!(body["error"]["code"], "payload_too_large", "{body}");
            assert!(body["error"]["message"].as_str().unwrap_or_default().contains("max_row_bytes"), "{body}");
        }
        assert_eq!(env.upstream.requests(), before + 1, "the upstream was called once");
    }
    assert_eq!(rows(&env.config).await, 0);
    // Nothing to store, no limit; what fits is stored.
    create(app, ALICE, json!({"model": MODEL, "input": "x".repeat(5000), "store": false})).await;
    let small = create(app, ALICE, json!({"model": MODEL, "input": "hi"})).await;
    assert_eq!(text_of(&small), "hello world");
    assert_eq!(rows(&env.config).await, 1);
    env.stop().await;
}
