//! The read API: pagination, ties, filters, tenants, messages, update and delete.

use std::collections::BTreeSet;

use ferrostack_authz::User;
use ferrostack_config::{AccessRule, Action, Condition, Effect, Scope};
use ferrostack_inference_store::{Error, InferenceStore, ListParams, MessagesParams, Order};
use ferrostack_testkit::Test;
use serde_json::{Map, json};

use crate::both;
use crate::support::{Env, completion, sync_config, user, user_in};

pub fn tests() -> Vec<Test> {
    let mut t = Vec::new();
    t.extend(both("read::pagination_acceptance", |env| Box::pin(pagination_acceptance(env))));
    t.extend(both("read::ties_on_created_paged", |env| Box::pin(ties_on_created(env))));
    t.extend(both("read::metadata_filter", |env| Box::pin(metadata_filter(env))));
    t.extend(both("read::tenants_are_isolated", |env| Box::pin(tenants_isolated(env))));
    t.extend(both("read::read_but_not_write", |env| Box::pin(read_but_not_write(env))));
    t.extend(both("read::messages", |env| Box::pin(messages(env))));
    t.extend(both("read::limits", |env| Box::pin(limits(env))));
    t
}

fn ids(page: &ferrostack_inference_store::ListPage) -> Vec<&str> {
    page.data.iter().map(|c| c.id.as_str()).collect()
}

fn params(after: Option<&str>, limit: Option<u32>, order: Order, model: Option<&str>) -> ListParams {
    ListParams { after: after.map(str::to_owned), limit, model: model.map(str::to_owned), order, metadata: Vec::new() }
}

async fn seed(store: &InferenceStore, caller: Option<&User>, rows: &[(&str, i64, &str)]) {
    for (id, created, model) in rows {
        store.store(completion(id, *created, model), caller).await.unwrap();
    }
}

async fn pagination_acceptance(env: Env) {
    let (store, _writers) = env.start(&sync_config());
    let alice = user("alice");
    let a = Some(&alice);
    seed(
        &store,
        a,
        &[("zebra", 1, "m-a"), ("apple", 2, "m-b"), ("moon", 3, "m-a"), ("banana", 4, "m-b"), ("car", 5, "m-a")],
    )
    .await;

    // Descending pages of 2.
    let p = store.list(a, params(None, Some(2), Order::Desc, None)).await.unwrap();
    assert_eq!(
        (ids(&p), p.has_more, p.first_id.as_str(), p.last_id.as_str()),
        (vec!["car", "banana"], true, "car", "banana")
    );
    let p = store.list(a, params(Some("banana"), Some(2), Order::Desc, None)).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["moon", "apple"], true));
    let p = store.list(a, params(Some("apple"), Some(2), Order::Desc, None)).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["zebra"], false));
    let p = store.list(a, params(Some("zebra"), Some(2), Order::Desc, None)).await.unwrap();
    assert_eq!((ids(&p).len(), p.has_more, p.first_id.as_str(), p.last_id.as_str()), (0, false, "", ""));

    // Ascending, symmetrically.
    let p = store.list(a, params(None, Some(2), Order::Asc, None)).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["zebra", "apple"], true));
    let p = store.list(a, params(Some("apple"), Some(2), Order::Asc, None)).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["moon", "banana"], true));
    let p = store.list(a, params(Some("banana"), Some(2), Order::Asc, None)).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["car"], false));

    // Model filter with paging.
    let p = store.list(a, params(None, Some(2), Order::Desc, Some("m-a"))).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["car", "moon"], true));
    let p = store.list(a, params(Some("moon"), Some(2), Order::Desc, Some("m-a"))).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["zebra"], false));

    // No limit: the default page (20) holds all.
    let p = store.list(a, ListParams::default()).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["car", "banana", "moon", "apple", "zebra"], false));

    // Unknown after, and another tenant's id as after: the same error.
    let e = store.list(a, params(Some("nope"), None, Order::Desc, None)).await.unwrap_err();
    assert!(matches!(&e, Error::AfterNotFound { id, .. } if id == "nope"), "{e}");
    assert_eq!(e.to_string(), "Record with id='nope' not found in table 'inference_store'");
    assert_eq!(e.param(), Some("after"));
    let bob = user("bob");
    let e = store.list(Some(&bob), params(Some("car"), None, Order::Desc, None)).await.unwrap_err();
    assert!(matches!(e, Error::AfterNotFound { .. }), "{e}");

    // The completion object.
    let got = store.get(a, "car").await.unwrap().unwrap();
    let v = serde_json::to_value(&got).unwrap();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["created"], 5);
    assert_eq!(v["model"], "m-a");
    assert_eq!(v["input_messages"][0]["content"], "hello");
    assert_eq!(v["metadata"], json!({}));
    let page = serde_json::to_value(store.list(a, params(None, Some(1), Order::Desc, None)).await.unwrap()).unwrap();
    assert_eq!(page["object"], "list");
    assert_eq!(page["data"][0]["id"], "car");
}

async fn ties_on_created(env: Env) {
    let (store, _writers) = env.start(&sync_config());
    let alice = user("alice");
    let a = Some(&alice);
    // 50 rows, all with the same `created`, stored concurrently in a shuffled id order.
    let mut handles = Vec::new();
    for i in 0..50 {
        let (store, alice) = (store.clone(), alice.clone());
        handles.push(ferrostack_testkit::spawn(async move {
            let id = format!("tie-{:02}", (i * 37) % 50);
            store.store(completion(&id, 1_700_000_000, "m"), Some(&alice)).await.unwrap();
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    for order in [Order::Asc, Order::Desc] {
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let p = store.list(a, params(after.as_deref(), Some(7), order, None)).await.unwrap();
            seen.extend(p.data.iter().map(|c| c.id.clone()));
            if !p.has_more {
                break;
            }
            after = Some(p.last_id.clone());
        }
        let mut expected: Vec<String> = (0..50).map(|i| format!("tie-{i:02}")).collect();
        if order == Order::Desc {
            expected.reverse();
        }
        assert_eq!(seen, expected, "{order:?}: every row exactly once, in id order");
    }
}

async fn metadata_filter(env: Env) {
    let (store, _writers) = env.start(&sync_config());
    let alice = user("alice");
    let a = Some(&alice);
    let rows = [("m1", "prod", "a"), ("m2", "prod", "b"), ("m3", "dev", "a"), ("m4", "it's", "%_\\")];
    for (i, (id, env_value, team)) in rows.iter().enumerate() {
        let mut c = completion(id, i as i64, "m");
        let mut metadata = Map::new();
        metadata.insert("env".into(), json!(env_value));
        metadata.insert("team".into(), json!(team));
        c.metadata = Some(metadata);
        store.store(c, a).await.unwrap();
    }
    store.store(completion("m5", 9, "m"), a).await.unwrap(); // no metadata
    let filtered = |pairs: &[(&str, &str)]| ListParams {
        order: Order::Asc,
        metadata: pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        ..ListParams::default()
    };
    let p = store.list(a, filtered(&[("env", "prod")])).await.unwrap();
    assert_eq!(ids(&p), vec!["m1", "m2"]);
    let p = store.list(a, filtered(&[("env", "prod"), ("team", "a")])).await.unwrap();
    assert_eq!(ids(&p), vec!["m1"]);
    let p = store.list(a, filtered(&[("env", "it's"), ("team", "%_\\")])).await.unwrap();
    assert_eq!(ids(&p), vec!["m4"], "values are data, not patterns");
    let p = store.list(a, filtered(&[("nokey", "x")])).await.unwrap();
    assert!(p.data.is_empty());
    let p = store.list(a, ListParams { limit: Some(1), ..filtered(&[("env", "prod")]) }).await.unwrap();
    assert_eq!((ids(&p), p.has_more), (vec!["m1"], true));
    let got = store.get(a, "m1").await.unwrap().unwrap();
    assert_eq!(got.metadata.unwrap()["env"], "prod");
}

async fn tenants_isolated(env: Env) {
    let (store, _writers) = env.start(&sync_config());
    let (alice, bob) = (user("alice"), user("bob"));
    let (a, b) = (Some(&alice), Some(&bob));
    seed(&store, a, &[("a1", 1, "m"), ("a2", 2, "m"), ("a3", 3, "m")]).await;
    seed(&store, b, &[("b1", 1, "m"), ("b2", 2, "m")]).await;
    let p = store.list(a, ListParams::default()).await.unwrap();
    assert_eq!(ids(&p), vec!["a3", "a2", "a1"]);
    let p = store.list(b, ListParams { model: Some("m".into()), ..ListParams::default() }).await.unwrap();
    assert_eq!(ids(&p), vec!["b2", "b1"]);
    assert!(store.get(a, "b1").await.unwrap().is_none());
    assert!(store.get(b, "a1").await.unwrap().is_none());
    let e = store.messages(a, "b1", MessagesParams::default()).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert_eq!(e.to_string(), "Chat completion with id b1 not found");
    let e = store.update_metadata(a, "b1", Map::new()).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    let e = store.delete(a, "b1").await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    assert!(store.get(b, "b1").await.unwrap().is_some(), "bob's row untouched");
    // Auth off (no caller) sees everything, as the policy says.
    assert_eq!(store.list(None, ListParams::default()).await.unwrap().data.len(), 5);
    assert_eq!(env.count().await, 5);
}

async fn read_but_not_write(env: Env) {
    // Owners may do anything; team-mates may only read.
    let policy = vec![
        AccessRule::new(Effect::Permit, Scope::actions(Action::ALL)).when(vec![Condition::UserIsOwner]),
        AccessRule::new(Effect::Permit, Scope::actions([Action::Read]))
            .when(vec![Condition::UserInOwners("teams".into())]),
    ];
    let (store, _writers) = env.start_with_policy(&sync_config(), policy);
    let alice = user_in("alice", "teams", "x");
    let bob = user_in("bob", "teams", "x");
    let carol = user_in("carol", "teams", "y");
    let (a, b, c) = (Some(&alice), Some(&bob), Some(&carol));
    seed(&store, a, &[("r1", 1, "m")]).await;
    assert!(store.get(b, "r1").await.unwrap().is_some(), "team-mate reads");
    assert!(store.get(c, "r1").await.unwrap().is_none(), "other team does not");
    let mut md = Map::new();
    md.insert("k".into(), json!("v"));
    let e = store.update_metadata(b, "r1", md.clone()).await.unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e}");
    let e = store.delete(b, "r1").await.unwrap_err();
    assert!(matches!(e, Error::Forbidden { .. }), "{e}");
    let e = store.update_metadata(c, "r1", md.clone()).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
    // The owner updates (replacing the metadata) and deletes.
    let updated = store.update_metadata(a, "r1", md).await.unwrap();
    assert_eq!(serde_json::to_value(&updated).unwrap()["metadata"], json!({"k": "v"}));
    let mut md2 = Map::new();
    md2.insert("other".into(), json!("w"));
    let updated = store.update_metadata(a, "r1", md2).await.unwrap();
    assert_eq!(serde_json::to_value(&updated).unwrap()["metadata"], json!({"other": "w"}), "replaced, not merged");
    assert!(store.get(b, "r1").await.unwrap().is_some(), "owner unchanged: bob still reads through the team");
    store.delete(a, "r1").await.unwrap();
    assert!(store.get(a, "r1").await.unwrap().is_none());
    let e = store.delete(a, "r1").await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

async fn messages(env: Env) {
    let (store, _writers) = env.start(&sync_config());
    let alice = user("alice");
    let a = Some(&alice);
    let mut c = completion("cmpl", 1, "m");
    c.input_messages = json!([
        {"role": "system", "content": "be brief"},
        {"role": "user", "name": "al", "content": [
            {"type": "text", "text": "what is this"},
            {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            {"type": "file", "file": {"file_id": "f1"}}
        ]},
        {"role": "user", "content": [{"type": "file", "file": {"file_id": "f2"}}]},
        {"role": "tool", "tool_call_id": "call-0", "content": "42"}
    ])
    .into();
    c.choices = json!([
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "a cat"}},
        {"index": 1, "finish_reason": "tool_calls", "message": {"role": "assistant", "content": null, "tool_calls": [
            {"id": "call-1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}
        ]}}
    ])
    .into();
    store.store(c, a).await.unwrap();

    let all = store.messages(a, "cmpl", MessagesParams::default()).await.unwrap();
    let got: Vec<&str> = all.data.iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(got, vec!["cmpl-0", "cmpl-1", "cmpl-2", "cmpl-3", "cmpl-4", "cmpl-5"]);
    assert!(!all.has_more);
    let m = &all.data;
    assert_eq!(
        (m[0]["role"].as_str(), m[0]["content"].as_str(), &m[0]["content_parts"]),
        (Some("system"), Some("be brief"), &json!(null))
    );
    assert_eq!(m[1]["content"], json!(null));
    assert_eq!(m[1]["name"], "al");
    assert_eq!(
        m[1]["content_parts"],
        json!([{"type": "text", "text": "what is this"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]),
        "file parts dropped"
    );
    assert_eq!(m[2]["content_parts"], json!(null), "no supported part: null");
    assert_eq!(m[3]["tool_call_id"], "call-0");
    assert_eq!((m[4]["role"].as_str(), m[4]["content"].as_str()), (Some("assistant"), Some("a cat")));
    assert_eq!(m[5]["tool_calls"][0]["function"]["name"], "look", "tool calls preserved");
    assert_eq!(m[5]["content"], json!(null));
    for key in
        ["name", "tool_calls", "tool_call_id", "refusal", "function_call", "annotations", "audio", "content_parts"]
    {
        assert!(m[4].get(key).is_some(), "every field present: {key}");
    }

    let page = |after: Option<&str>, limit: Option<u32>, order: Option<Order>| MessagesParams {
        after: after.map(str::to_owned),
        limit,
        order,
    };
    let p = store.messages(a, "cmpl", page(None, Some(4), None)).await.unwrap();
    assert_eq!((p.data.len(), p.has_more, p.first_id.as_str(), p.last_id.as_str()), (4, true, "cmpl-0", "cmpl-3"));
    let p = store.messages(a, "cmpl", page(Some("cmpl-3"), Some(4), None)).await.unwrap();
    assert_eq!((p.data.len(), p.has_more, p.first_id.as_str(), p.last_id.as_str()), (2, false, "cmpl-4", "cmpl-5"));
    let p = store.messages(a, "cmpl", page(Some("cmpl-5"), None, None)).await.unwrap();
    assert_eq!((p.data.len(), p.has_more, p.first_id.as_str(), p.last_id.as_str()), (0, false, "", ""));
    let p = store.messages(a, "cmpl", page(None, Some(2), Some(Order::Desc))).await.unwrap();
    assert_eq!((p.first_id.as_str(), p.last_id.as_str(), p.has_more), ("cmpl-5", "cmpl-4", true));
    let e = store.messages(a, "cmpl", page(Some("cmpl-9"), None, None)).await.unwrap_err();
    assert!(matches!(e, Error::CursorNotFound { .. }), "{e}");
    assert!(e.to_string().contains("cursor 'cmpl-9' not found in completion 'cmpl'"), "{e}");
    let e = store.messages(a, "missing", MessagesParams::default()).await.unwrap_err();
    assert!(matches!(e, Error::NotFound { .. }), "{e}");
}

async fn limits(env: Env) {
    let (store, _writers) = env.start(&sync_config());
    let alice = user("alice");
    let a = Some(&alice);
    for limit in [0, 101] {
        let e = store.list(a, ListParams { limit: Some(limit), ..ListParams::default() }).await.unwrap_err();
        assert!(matches!(e, Error::InvalidParam { param: "limit", .. }), "{e}");
    }
    let ids_stored: BTreeSet<String> = (0..105).map(|i| format!("l{i:03}")).collect();
    for (i, id) in ids_stored.iter().enumerate() {
        store.store(completion(id, i as i64, "m"), a).await.unwrap();
    }
    let p = store.list(a, ListParams { limit: Some(100), ..ListParams::default() }).await.unwrap();
    assert_eq!((p.data.len(), p.has_more), (100, true));
    let p = store.list(a, ListParams::default()).await.unwrap();
    assert_eq!((p.data.len(), p.has_more), (20, true));
}
