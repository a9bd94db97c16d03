//! The Rust API the Responses store calls, on a migrated SQLite temp file and a fresh PostgreSQL
//! database: items appended in one transaction with other work commit or roll back together, and
//! a conversation's items read back in order for their caller only.
#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;

use ferrostack_authz::User;
use ferrostack_catalog::{Catalog, Db};
use ferrostack_config::{BackendConfig, StorageConfig};
use ferrostack_conversations::{ConversationStore, Error};
use ferrostack_testkit::{Postgres, Test, run};
use serde_json::{Value, json};

type TestFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

fn both(name: &str, body: fn(Db) -> TestFuture) -> Vec<Test> {
    vec![
        Test::plain(format!("sqlite::{name}"), move || async move {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("store.db").display().to_string();
            let backend = serde_json::from_value(json!({"type": "sql_sqlite", "db_path": path})).unwrap();
            let (catalog, db) = open(backend).await;
            body(db).await;
            catalog.close().await;
        }),
        Test::postgres(format!("postgres::{name}"), move |pg: Postgres| async move {
            let test_db = pg.fresh_database().await;
            let server = test_db.server();
            let mut v = json!({"type": "sql_postgres", "host": server.host(), "port": server.port(),
                "db": test_db.name(), "user": server.user(), "pool_size": 4});
            if let Some(password) = server.password() {
                v["password"] = json!(password);
            }
            let (catalog, db) = open(serde_json::from_value(v).unwrap()).await;
            body(db).await;
            catalog.close().await;
        }),
    ]
}

async fn open(backend: BackendConfig) -> (Catalog, Db) {
    let storage = StorageConfig { backends: BTreeMap::from([("sql".to_owned(), backend)]), ..StorageConfig::default() };
    let catalog = Catalog::open(&storage).await.unwrap();
    catalog.migrate().await.unwrap();
    let db = catalog.sql("sql").unwrap();
    (catalog, db)
}

fn user(name: &str) -> User {
    User::new(name, BTreeMap::new())
}

fn message(text: &str) -> Value {
    json!({"role": "assistant", "content": [{"type": "output_text", "text": text}]})
}

fn texts(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["content"][0]["text"].as_str().unwrap().to_owned()).collect()
}

fn responses_api(db: Db) -> TestFuture {
    Box::pin(async move {
        let store = ConversationStore::new(db, Vec::new()).unwrap();
        let (alice, bob) = (user("alice"), user("bob"));
        let conv = store.create(Some(&alice), None, &[message("t0")]).await.unwrap();

        // Several appends in one transaction commit together, in order.
        let mut tx = store.db().begin().await.unwrap();
        store.append_in(&mut tx, Some(&alice), &conv.id, &[message("t1"), message("t2")]).await.unwrap();
        store.append_in(&mut tx, Some(&alice), &conv.id, &[message("t3")]).await.unwrap();
        tx.commit().await.unwrap();
        let expected: Vec<String> = (0..4).map(|i| format!("t{i}")).collect();
        assert_eq!(texts(&store.all_items(Some(&alice), &conv.id).await.unwrap()), expected);

        // A transaction that is not committed leaves nothing behind.
        let mut tx = store.db().begin().await.unwrap();
        store.append_in(&mut tx, Some(&alice), &conv.id, &[message("lost")]).await.unwrap();
        drop(tx);
        assert_eq!(texts(&store.all_items(Some(&alice), &conv.id).await.unwrap()), expected);

        // More than one page (all_items pages by 100 internally), still in order.
        let mut expected = expected;
        let mut tx = store.db().begin().await.unwrap();
        for batch in 0..13 {
            let items: Vec<Value> = (0..20).map(|i| message(&format!("b{}", batch * 20 + i))).collect();
            store.append_in(&mut tx, Some(&alice), &conv.id, &items).await.unwrap();
            expected.extend((0..20).map(|i| format!("b{}", batch * 20 + i)));
        }
        tx.commit().await.unwrap();
        assert_eq!(texts(&store.all_items(Some(&alice), &conv.id).await.unwrap()), expected);

        // Another caller neither reads nor appends.
        assert!(matches!(store.all_items(Some(&bob), &conv.id).await, Err(Error::NotFound { .. })));
        let mut tx = store.db().begin().await.unwrap();
        let refused = store.append_in(&mut tx, Some(&bob), &conv.id, &[message("x")]).await;
        assert!(matches!(refused, Err(Error::NotFound { .. })), "{refused:?}");
        drop(tx);
        assert_eq!(store.all_items(Some(&alice), &conv.id).await.unwrap().len(), expected.len());
    })
}

fn main() -> ExitCode {
    run(both("append_in_a_transaction_and_read_in_order", responses_api))
}
