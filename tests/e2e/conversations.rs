//! `/v1/conversations` end to end: the real server on port 0 over real HTTP, conversations and
//! their items in a real SQLite file or PostgreSQL database, two (three) tenants under the
//! access policy.

use ferrostack::ServeOptions;
use ferrostack_catalog::{Catalog, Sql};
use ferrostack_config::RunConfig;
use ferrostack_testkit::Test;
use ferrostack_tests::{Storage, TestApp, config_from_yaml, test_server_settings};
use reqwest::Method;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    [
        on_both!("conversations", "acceptance_cases_of_the_reference", acceptance),
        on_both!("conversations", "pagination_with_ties_both_ways", pagination_with_ties),
        on_both!("conversations", "two_tenants_on_every_route", two_tenants),
        on_both!("conversations", "readable_but_not_changeable_is_403", read_only_team),
        on_both!("conversations", "delete_cascades_to_items", cascade_delete),
        on_both!("conversations", "item_ids_are_scoped_to_their_conversation", ids_scoped),
        on_both!("conversations", "validation_errors_name_the_field", validation),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// alice and carol share a team; bob is alone. Owners do everything; a team mate may read.
const AUTH: &str = "server:\n  auth:\n    provider_config:\n      type: static\n      tokens:\n        - { token: alice-token, principal: alice, attributes: { teams: [red] } }\n        - { token: bob-token, principal: bob, attributes: { teams: [blue] } }\n        - { token: carol-token, principal: carol, attributes: { teams: [red] } }\n    access_policy:\n      - permit: { actions: [create, read, update, delete] }\n        when: user is owner\n      - permit: { actions: [read] }\n        when: user in owners teams\n";

const ALICE: &str = "alice-token";
const BOB: &str = "bob-token";
const CAROL: &str = "carol-token";

fn config(storage: Storage<'_>) -> RunConfig {
    let mut config = config_from_yaml(&format!("version: 2\n{}{AUTH}", storage.yaml()), &[]);
    test_server_settings(&mut config);
    config
}

async fn start(storage: Storage<'_>) -> (TestApp, RunConfig) {
    let config = config(storage);
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    (app, config)
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

fn message(text: &str) -> Value {
    json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]})
}

async fn create(app: &TestApp, token: &str, body: Value) -> String {
    let conv = ok(app, Method::POST, "/v1/conversations", token, Some(body)).await;
    conv["id"].as_str().expect("id").to_owned()
}

fn ids(page: &Value) -> Vec<String> {
    page["data"].as_array().expect("data").iter().map(|i| i["id"].as_str().expect("item id").to_owned()).collect()
}

/// Rows left in a table, counted in the database itself.
async fn count(config: &RunConfig, table: &str) -> i64 {
    let catalog = Catalog::open(&config.storage).await.expect("open catalog");
    let backend = config.storage.stores.conversations.as_ref().expect("conversations store").backend.clone();
    let db = catalog.sql(&backend).expect("sql backend");
    let rows = db.fetch_all(Sql::new().push(&format!("SELECT COUNT(*) AS n FROM {table}"))).await.expect("count");
    let n = rows[0].get::<i64>("n").expect("n");
    catalog.close().await;
    n
}

async fn acceptance(storage: Storage<'_>) {
    let (app, _) = start(storage).await;
    // Create with metadata and first items: the answer is the conversation, without items.
    let conv = ok(
        &app,
        Method::POST,
        "/v1/conversations",
        ALICE,
        Some(json!({"metadata": {"topic": "demo"}, "items": [{"role": "user", "content": "hello"}]})),
    )
    .await;
    let id = conv["id"].as_str().expect("id").to_owned();
    assert!(id.starts_with("conv_") && id.len() == 53 && id[5..].bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(conv["object"], json!("conversation"));
    assert_eq!(conv["metadata"], json!({"topic": "demo"}));
    assert!(conv["created_at"].as_i64().is_some_and(|t| t > 1_700_000_000), "{conv}");
    assert_eq!(ok(&app, Method::GET, &format!("/v1/conversations/{id}"), ALICE, None).await, conv);

    // The first item: a message (role without type), with a generated msg_ id.
    let page = ok(&app, Method::GET, &format!("/v1/conversations/{id}/items"), ALICE, None).await;
    assert_eq!(page["object"], json!("list"));
    let first = &page["data"][0];
    assert_eq!(first["type"], json!("message"));
    let first_id = first["id"].as_str().expect("item id");
    assert!(first_id.starts_with("msg_") && first_id.len() == 52, "{first_id}");

    // A conversation with 5 items added in one call.
    let id = create(&app, ALICE, json!({})).await;
    let items: Vec<Value> = (0..5).map(|i| message(&format!("m{i}"))).collect();
    let added =
        ok(&app, Method::POST, &format!("/v1/conversations/{id}/items"), ALICE, Some(json!({"items": items}))).await;
    assert_eq!((added["object"].clone(), added["has_more"].clone()), (json!("list"), json!(false)));
    let added_ids = ids(&added);
    assert_eq!(added_ids.len(), 5);
    assert_eq!(added["first_id"], json!(added_ids[0]));
    for (limit, n, more) in [(3, 3, true), (5, 5, false), (10, 5, false)] {
        let page = ok(&app, Method::GET, &format!("/v1/conversations/{id}/items?limit={limit}"), ALICE, None).await;
        assert_eq!((ids(&page).len(), page["has_more"].as_bool()), (n, Some(more)), "limit {limit}");
    }
    // Default order is newest first.
    let page = ok(&app, Method::GET, &format!("/v1/conversations/{id}/items"), ALICE, None).await;
    let mut reversed = added_ids.clone();
    reversed.reverse();
    assert_eq!(ids(&page), reversed);
    // Ascending pages of 2 through `after`: 2 (more), 2 (more), 1 (no more), covering all 5.
    let mut seen = Vec::new();
    let mut after = String::new();
    for (n, more) in [(2, true), (2, true), (1, false)] {
        let q = if after.is_empty() { String::new() } else { format!("&after={after}") };
        let page =
            ok(&app, Method::GET, &format!("/v1/conversations/{id}/items?order=asc&limit=2{q}"), ALICE, None).await;
        assert_eq!((ids(&page).len(), page["has_more"].as_bool()), (n, Some(more)));
        assert_eq!(page["first_id"], json!(ids(&page)[0]));
        after = page["last_id"].as_str().expect("last_id").to_owned();
        seen.extend(ids(&page));
    }
    assert_eq!(seen, added_ids);

    // Retrieve one item; update replaces metadata; delete an item; delete the conversation.
    let item = ok(&app, Method::GET, &format!("/v1/conversations/{id}/items/{}", added_ids[1]), ALICE, None).await;
    assert_eq!(item, added["data"][1]);
    ok(&app, Method::POST, &format!("/v1/conversations/{id}"), ALICE, Some(json!({"metadata": {"a": "1", "b": "2"}})))
        .await;
    let updated =
        ok(&app, Method::POST, &format!("/v1/conversations/{id}"), ALICE, Some(json!({"metadata": {"c": "3"}}))).await;
    assert_eq!(updated["metadata"], json!({"c": "3"}), "replaced, not merged");
    let deleted =
        ok(&app, Method::DELETE, &format!("/v1/conversations/{id}/items/{}", added_ids[1]), ALICE, None).await;
    assert_eq!(deleted, json!({"id": added_ids[1], "object": "conversation.item.deleted", "deleted": true}));
    let (status, body) =
        call(&app, Method::GET, &format!("/v1/conversations/{id}/items/{}", added_ids[1]), ALICE, None).await;
    assert_eq!(status, 404, "{body}");
    let deleted = ok(&app, Method::DELETE, &format!("/v1/conversations/{id}"), ALICE, None).await;
    assert_eq!(deleted, json!({"id": id, "object": "conversation.deleted", "deleted": true}));
    let (status, body) = call(&app, Method::GET, &format!("/v1/conversations/{id}"), ALICE, None).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["message"], json!(format!("Conversation '{id}' not found.")));

    // A malformed conversation id is 400 naming `conversation_id` on every route.
    for (method, path) in [
        (Method::GET, "/v1/conversations/conv_nothex"),
        (Method::POST, "/v1/conversations/conv_nothex"),
        (Method::DELETE, "/v1/conversations/conv_nothex"),
        (Method::POST, "/v1/conversations/conv_nothex/items"),
        (Method::GET, "/v1/conversations/conv_nothex/items"),
        (Method::GET, "/v1/conversations/conv_nothex/items/msg_1"),
        (Method::DELETE, "/v1/conversations/conv_nothex/items/msg_1"),
    ] {
        let body = match method {
            Method::POST if path.ends_with("items") => Some(json!({"items": [message("x")]})),
            Method::POST => Some(json!({"metadata": {}})),
            _ => None,
        };
        let (status, err) = call(&app, method.clone(), path, ALICE, body).await;
        assert_eq!((status, err["error"]["param"].clone()), (400, json!("conversation_id")), "{method} {path}: {err}");
    }
    app.stop().await.expect("clean stop");
}

async fn pagination_with_ties(storage: Storage<'_>) {
    let (app, _) = start(storage).await;
    let id = create(&app, ALICE, json!({})).await;
    // 50 items in three back-to-back calls (20 is the per-call limit): each call's items share
    // one created_at, so most neighbours tie on it; the order is the insertion order.
    let mut inserted = Vec::new();
    for chunk in [20, 20, 10] {
        let items: Vec<Value> = (0..chunk).map(|i| message(&format!("t{}", inserted.len() + i))).collect();
        let added =
            ok(&app, Method::POST, &format!("/v1/conversations/{id}/items"), ALICE, Some(json!({"items": items})))
                .await;
        inserted.extend(ids(&added));
    }
    assert_eq!(inserted.len(), 50);
    for (order, expected) in [("asc", inserted.clone()), ("desc", inserted.iter().rev().cloned().collect())] {
        let mut seen: Vec<String> = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let q = after.as_ref().map(|a| format!("&after={a}")).unwrap_or_default();
            let page =
                ok(&app, Method::GET, &format!("/v1/conversations/{id}/items?order={order}&limit=7{q}"), ALICE, None)
                    .await;
            let page_ids = ids(&page);
            assert_eq!(page["first_id"], json!(page_ids.first().cloned().unwrap_or_default()));
            assert_eq!(page["last_id"], json!(page_ids.last().cloned().unwrap_or_default()));
            seen.extend(page_ids.clone());
            let more = page["has_more"].as_bool().expect("has_more");
            assert_eq!(more, seen.len() < 50, "has_more is exact ({order}, after {} items)", seen.len());
            if !more {
                break;
            }
            assert_eq!(page_ids.len(), 7);
            after = page_ids.last().cloned();
        }
        assert_eq!(seen, expected, "{order}: every item exactly once, in insertion order");
    }
    app.stop().await.expect("clean stop");
}

async fn two_tenants(storage: Storage<'_>) {
    let (app, _) = start(storage).await;
    let id = create(&app, ALICE, json!({"metadata": {"owner": "alice"}, "items": [message("secret")]})).await;
    let page = ok(&app, Method::GET, &format!("/v1/conversations/{id}/items"), ALICE, None).await;
    let item = ids(&page)[0].clone();
    let bobs = create(&app, BOB, json!({"items": [message("bob's")]})).await;

    // bob, on every route, against alice's conversation: 404, with nothing changed.
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/conversations/{id}"), None),
        (Method::POST, format!("/v1/conversations/{id}"), Some(json!({"metadata": {"owner": "bob"}}))),
        (Method::DELETE, format!("/v1/conversations/{id}"), None),
        (Method::POST, format!("/v1/conversations/{id}/items"), Some(json!({"items": [message("intruder")]}))),
        (Method::GET, format!("/v1/conversations/{id}/items"), None),
        (Method::GET, format!("/v1/conversations/{id}/items/{item}"), None),
        (Method::DELETE, format!("/v1/conversations/{id}/items/{item}"), None),
    ];
    for (method, path, body) in routes {
        let (status, err) = call(&app, method.clone(), &path, BOB, body).await;
        assert_eq!((status, err["error"]["code"].clone()), (404, json!("not_found")), "bob {method} {path}: {err}");
    }
    // alice's item id as a cursor on bob's own conversation tells bob nothing.
    let (status, err) =
        call(&app, Method::GET, &format!("/v1/conversations/{bobs}/items?after={item}"), BOB, None).await;
    assert_eq!((status, err["error"]["param"].clone()), (400, json!("after")), "{err}");
    // alice's conversation is untouched.
    let conv = ok(&app, Method::GET, &format!("/v1/conversations/{id}"), ALICE, None).await;
    assert_eq!(conv["metadata"], json!({"owner": "alice"}));
    let page = ok(&app, Method::GET, &format!("/v1/conversations/{id}/items"), ALICE, None).await;
    assert_eq!(ids(&page), vec![item.clone()]);
    // And alice sees none of bob's.
    let (status, _) = call(&app, Method::GET, &format!("/v1/conversations/{bobs}/items"), ALICE, None).await;
    assert_eq!(status, 404);
    app.stop().await.expect("clean stop");
}

async fn read_only_team(storage: Storage<'_>) {
    let (app, _) = start(storage).await;
    let id = create(&app, ALICE, json!({"items": [message("team")]})).await;
    let item = ids(&ok(&app, Method::GET, &format!("/v1/conversations/{id}/items"), ALICE, None).await)[0].clone();
    // carol shares alice's team: she reads, but changing is 403.
    ok(&app, Method::GET, &format!("/v1/conversations/{id}"), CAROL, None).await;
    ok(&app, Method::GET, &format!("/v1/conversations/{id}/items"), CAROL, None).await;
    ok(&app, Method::GET, &format!("/v1/conversations/{id}/items/{item}"), CAROL, None).await;
    let routes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::POST, format!("/v1/conversations/{id}"), Some(json!({"metadata": {}}))),
        (Method::DELETE, format!("/v1/conversations/{id}"), None),
        (Method::POST, format!("/v1/conversations/{id}/items"), Some(json!({"items": [message("x")]}))),
        (Method::DELETE, format!("/v1/conversations/{id}/items/{item}"), None),
    ];
    for (method, path, body) in routes {
        let (status, err) = call(&app, method.clone(), &path, CAROL, body).await;
        assert_eq!((status, err["error"]["code"].clone()), (403, json!("forbidden")), "carol {method} {path}: {err}");
    }
    let page = ok(&app, Method::GET, &format!("/v1/conversations/{id}/items"), ALICE, None).await;
    assert_eq!(ids(&page), vec![item]);
    app.stop().await.expect("clean stop");
}

async fn cascade_delete(storage: Storage<'_>) {
    let (app, config) = start(storage).await;
    let keep = create(&app, ALICE, json!({"items": [message("keep")]})).await;
    let gone = create(&app, ALICE, json!({"items": [message("a"), message("b"), message("c")]})).await;
    assert_eq!(count(&config, "conversation_items").await, 4);
    ok(&app, Method::DELETE, &format!("/v1/conversations/{gone}"), ALICE, None).await;
    assert_eq!(count(&config, "conversation_items").await, 1, "the deleted conversation's items are gone");
    assert_eq!(count(&config, "openai_conversations").await, 1);
    let page = ok(&app, Method::GET, &format!("/v1/conversations/{keep}/items"), ALICE, None).await;
    assert_eq!(ids(&page).len(), 1);
    let (status, _) = call(&app, Method::GET, &format!("/v1/conversations/{gone}/items"), ALICE, None).await;
    assert_eq!(status, 404);
    app.stop().await.expect("clean stop");
}

async fn ids_scoped(storage: Storage<'_>) {
    let (app, _) = start(storage).await;
    let with_id = |text: &str| json!({"id": "msg_shared", "type": "message", "role": "user", "content": text});
    let a = create(&app, ALICE, json!({"items": [with_id("in a")]})).await;
    let b = create(&app, ALICE, json!({})).await;
    ok(&app, Method::POST, &format!("/v1/conversations/{b}/items"), ALICE, Some(json!({"items": [with_id("in b")]})))
        .await;
    let c = create(&app, BOB, json!({"items": [with_id("bob's")]})).await;
    for (conv, token, text) in [(&a, ALICE, "in a"), (&b, ALICE, "in b"), (&c, BOB, "bob's")] {
        let item = ok(&app, Method::GET, &format!("/v1/conversations/{conv}/items/msg_shared"), token, None).await;
        assert_eq!(item["content"], json!(text), "each conversation keeps its own item");
    }
    // The same id twice in one conversation is a conflict; the stored item is unchanged.
    let (status, err) = call(
        &app,
        Method::POST,
        &format!("/v1/conversations/{a}/items"),
        ALICE,
        Some(json!({"items": [with_id("again")]})),
    )
    .await;
    assert_eq!((status, err["error"]["code"].clone()), (409, json!("conflict")), "{err}");
    // Deleting it in one conversation leaves the others.
    ok(&app, Method::DELETE, &format!("/v1/conversations/{a}/items/msg_shared"), ALICE, None).await;
    let item = ok(&app, Method::GET, &format!("/v1/conversations/{b}/items/msg_shared"), ALICE, None).await;
    assert_eq!(item["content"], json!("in b"));
    let item = ok(&app, Method::GET, &format!("/v1/conversations/{c}/items/msg_shared"), BOB, None).await;
    assert_eq!(item["content"], json!("bob's"));
    app.stop().await.expect("clean stop");
}

async fn validation(storage: Storage<'_>) {
    let (app, _) = start(storage).await;
    let id = create(&app, ALICE, json!({"items": [message("x")]})).await;
    let ok_item = message("fine");
    let many_pairs: serde_json::Map<String, Value> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
    let items_path = format!("/v1/conversations/{id}/items");
    let conv_path = format!("/v1/conversations/{id}");
    let cases: Vec<(&str, Method, String, Option<Value>, &str)> = vec![
        (
            "bad content",
            Method::POST,
            items_path.clone(),
            Some(json!({"items": [ok_item, ok_item, ok_item, {"type": "message", "role": "user", "content": 7}]})),
            "items[3].content",
        ),
        (
            "unknown type",
            Method::POST,
            items_path.clone(),
            Some(json!({"items": [{"type": "video"}]})),
            "items[0].type",
        ),
        (
            "no type, no role",
            Method::POST,
            items_path.clone(),
            Some(json!({"items": [{"content": "x"}]})),
            "items[0].type",
        ),
        (
            "bad part",
            Method::POST,
            items_path.clone(),
            Some(json!({"items": [{"role": "user", "content": [{"type": "input_text"}]}]})),
            "items[0].content[0].text",
        ),
        (
            "function call without name",
            Method::POST,
            items_path.clone(),
            Some(json!({"items": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]})),
            "items[0].name",
        ),
        ("21 items", Method::POST, items_path.clone(), Some(json!({"items": vec![ok_item.clone(); 21]})), "items"),
        ("no items", Method::POST, items_path.clone(), Some(json!({"items": []})), "items"),
        ("items missing", Method::POST, items_path.clone(), Some(json!({})), "items"),
        ("items not a list", Method::POST, items_path.clone(), Some(json!({"items": {}})), "items"),
        (
            "21 items on create",
            Method::POST,
            "/v1/conversations".to_owned(),
            Some(json!({"items": vec![ok_item.clone(); 21]})),
            "items",
        ),
        ("17 pairs", Method::POST, "/v1/conversations".to_owned(), Some(json!({"metadata": many_pairs})), "metadata"),
        ("long key", Method::POST, conv_path.clone(), Some(json!({"metadata": {"k".repeat(65): "v"}})), "metadata"),
        ("long value", Method::POST, conv_path.clone(), Some(json!({"metadata": {"k": "v".repeat(513)}})), "metadata"),
        ("non-string value", Method::POST, conv_path.clone(), Some(json!({"metadata": {"k": 1}})), "metadata"),
        ("update without metadata", Method::POST, conv_path.clone(), Some(json!({})), "metadata"),
        ("limit 0", Method::GET, format!("{items_path}?limit=0"), None, "limit"),
        ("limit 101", Method::GET, format!("{items_path}?limit=101"), None, "limit"),
        ("bad order", Method::GET, format!("{items_path}?order=up"), None, "order"),
        ("unknown after", Method::GET, format!("{items_path}?after=msg_nope"), None, "after"),
        ("unknown parameter", Method::GET, format!("{items_path}?colour=red"), None, "colour"),
    ];
    for (what, method, path, body, param) in cases {
        let (status, err) = call(&app, method, &path, ALICE, body).await;
        assert_eq!(status, 400, "{what}: {err}");
        assert_eq!(err["error"]["param"], json!(param), "{what}: {err}");
        assert_eq!(err["error"]["code"], json!("invalid_request"), "{what}: {err}");
    }
    // The limits themselves are accepted.
    let pairs: serde_json::Map<String, Value> =
        (0..16).map(|i| (format!("{i:0>64}"), json!("v".repeat(512)))).collect();
    ok(&app, Method::POST, &conv_path, ALICE, Some(json!({"metadata": pairs}))).await;
    ok(&app, Method::POST, &items_path, ALICE, Some(json!({"items": vec![ok_item.clone(); 20]}))).await;
    ok(&app, Method::GET, &format!("{items_path}?limit=100&include=message.output_text.logprobs"), ALICE, None).await;
    // Nothing was stored by the refused calls: 1 + 20 items.
    let page = ok(&app, Method::GET, &format!("{items_path}?limit=100"), ALICE, None).await;
    assert_eq!(ids(&page).len(), 21);
    app.stop().await.expect("clean stop");
}
