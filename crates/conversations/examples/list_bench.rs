//! List latency of a conversation of 10,000 items, through the store (the SQL the routes run,
//! with the default policy's predicate): the first page and a deep page (`after` the 9,000th
//! item), newest first and oldest first.
//!
//! ```text
//! cargo run --release -p ferrostack-conversations --example list_bench -- sqlite [ITEMS]
//! createdb -h 127.0.0.1 -U postgres conv_bench
//! cargo run --release -p ferrostack-conversations --example list_bench -- postgres conv_bench [ITEMS]
//! ```
#![expect(clippy::print_stdout, clippy::expect_used, reason = "a measuring tool: it prints, and fails loudly")]

use std::collections::BTreeMap;
use std::time::Instant;

use ferrostack_authz::User;
use ferrostack_authz::policy::Order;
use ferrostack_catalog::Catalog;
use ferrostack_config::{BackendConfig, StorageConfig};
use ferrostack_conversations::{ConversationStore, ItemsParams};
use serde_json::{Value, json};

const RUNS: usize = 50;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir().expect("tempdir");
    let (backend, rest) = match args.first().map(String::as_str) {
        Some("postgres") => {
            let name = args.get(1).expect("postgres DBNAME");
            (
                json!({"type": "sql_postgres", "host": "127.0.0.1", "port": 5432, "db": name, "user": "postgres", "pool_size": 4}),
                &args[2..],
            )
        }
        _ => {
            let path = dir.path().join("bench.db").display().to_string();
            (json!({"type": "sql_sqlite", "db_path": path}), args.get(1..).unwrap_or_default())
        }
    };
    let items: usize = rest.first().and_then(|n| n.parse().ok()).unwrap_or(10_000);
    let backend: BackendConfig = serde_json::from_value(backend).expect("backend");
    let storage = StorageConfig { backends: BTreeMap::from([("sql".to_owned(), backend)]), ..StorageConfig::default() };
    let catalog = Catalog::open(&storage).await.expect("open");
    catalog.migrate().await.expect("migrate");
    let store = ConversationStore::new(catalog.sql("sql").expect("sql"), Vec::new()).expect("store");
    let alice = User::new("alice", BTreeMap::new());
    // Other conversations of the same and of another owner around it, as in a shared database.
    for owner in ["alice", "bob"] {
        let other = User::new(owner, BTreeMap::new());
        for _ in 0..5 {
            let conv = store.create(Some(&other), None, &[]).await.expect("create");
            fill(&store, &other, &conv.id, 1_000).await;
        }
    }
    let conv = store.create(Some(&alice), None, &[]).await.expect("create");
    let started = Instant::now();
    let ids = fill(&store, &alice, &conv.id, items).await;
    println!("dialect {:?}: {items} items added in {:?} (20 per call)", store.db().dialect(), started.elapsed());

    let deep = ids.get(items * 9 / 10).cloned();
    for (what, after, order) in [
        ("first page, desc", None, Order::Desc),
        ("first page, asc", None, Order::Asc),
        ("deep page (after item 90%), desc", deep.clone(), Order::Desc),
        ("deep page (after item 90%), asc", deep, Order::Asc),
    ] {
        let mut times = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let params = ItemsParams { after: after.clone(), limit: Some(20), order };
            let t = Instant::now();
            let page = store.list_items(Some(&alice), &conv.id, params).await.expect("list");
            times.push(t.elapsed());
            assert_eq!(page.data.len(), 20);
        }
        times.sort();
        println!("{what:<36} limit 20: median {:?}, p90 {:?} ({RUNS} runs)", times[RUNS / 2], times[RUNS * 9 / 10]);
    }
    catalog.close().await;
}

/// Add `n` items, 20 a call (the API's limit); their ids in order.
async fn fill(store: &ConversationStore, user: &User, conv: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let mut tx = store.db().begin().await.expect("begin");
    let mut left = n;
    while left > 0 {
        let take = left.min(20);
        let items: Vec<Value> = (0..take)
            .map(|i| json!({"role": "user", "content": format!("item {} of the bench", n - left + i)}))
            .collect();
        let stored = store.append_in(&mut tx, Some(user), conv, &items).await.expect("append");
        ids.extend(stored.iter().map(|i| i["id"].as_str().unwrap_or_default().to_owned()));
        left -= take;
    }
    tx.commit().await.expect("commit");
    ids
}
