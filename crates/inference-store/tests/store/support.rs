//! Shared set-up: a migrated SQLite temp file or fresh PostgreSQL database, store configs,
//! completions, users, and polling with a deadline.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use ferrostack_authz::User;
use ferrostack_catalog::{Catalog, Db, Sql};
use ferrostack_config::{AccessRule, BackendConfig, Durability, InferenceStoreConfig, StorageConfig};
use ferrostack_inference_store::{InferenceStore, StoredCompletion, Writers};
use ferrostack_testkit::{Postgres, TestDatabase};
use serde_json::json;

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ferrostack-istore-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One test's database: a migrated catalog with one SQL backend named `sql`.
pub struct Env {
    _catalog: Catalog,
    pub db: Db,
    /// The PostgreSQL database, for sabotage (none on SQLite).
    pub pg: Option<TestDatabase>,
    _dir: Option<TempDir>,
}

impl Env {
    pub async fn sqlite() -> Env {
        let dir = TempDir::new();
        let path = dir.0.join("store.db").display().to_string();
        let backend: BackendConfig = serde_json::from_value(json!({"type": "sql_sqlite", "db_path": path})).unwrap();
        Self::open(backend, None, Some(dir)).await
    }

    pub async fn postgres(pg: &Postgres) -> Env {
        let db = pg.fresh_database().await;
        let server = db.server();
        let mut v = json!({
            "type": "sql_postgres", "host": server.host(), "port": server.port(), "db": db.name(),
            "user": server.user(), "pool_size": 8, "wait_timeout_ms": 2000, "create_timeout_ms": 2000,
        });
        if let Some(password) = server.password() {
            v["password"] = json!(password);
        }
        let backend: BackendConfig = serde_json::from_value(v).unwrap();
        Self::open(backend, Some(db), None).await
    }

    async fn open(backend: BackendConfig, pg: Option<TestDatabase>, dir: Option<TempDir>) -> Env {
        let storage =
            StorageConfig { backends: BTreeMap::from([("sql".to_owned(), backend)]), ..StorageConfig::default() };
        let catalog = Catalog::open(&storage).await.unwrap();
        catalog.migrate().await.unwrap();
        let db = catalog.sql("sql").unwrap();
        Env { _catalog: catalog, db, pg, _dir: dir }
    }

    pub fn start(&self, config: &InferenceStoreConfig) -> (InferenceStore, Writers) {
        InferenceStore::start(self.db.clone(), config, Vec::new()).unwrap()
    }

    pub fn start_with_policy(
        &self,
        config: &InferenceStoreConfig,
        policy: Vec<AccessRule>,
    ) -> (InferenceStore, Writers) {
        InferenceStore::start(self.db.clone(), config, policy).unwrap()
    }

    /// Rows in the table, whoever owns them.
    pub async fn count(&self) -> i64 {
        let row = self.db.fetch_optional(Sql::new().push("SELECT COUNT(*) AS n FROM inference_store")).await.unwrap();
        row.unwrap().get::<i64>("n").unwrap()
    }

    /// Ids in the table, sorted.
    pub async fn ids(&self) -> Vec<String> {
        let rows = self.db.fetch_all(Sql::new().push("SELECT id FROM inference_store ORDER BY id")).await.unwrap();
        rows.iter().map(|r| r.get::<String>("id").unwrap()).collect()
    }
}

/// A store config.
pub fn config(queue: usize, writers: usize, batch: usize, durability: Durability) -> InferenceStoreConfig {
    InferenceStoreConfig {
        backend: "sql".to_owned(),
        table_name: None,
        max_write_queue_size: queue,
        max_queue_bytes: 256 * 1024 * 1024,
        num_writers: writers,
        durability,
        batch_size: batch,
        drain_timeout_seconds: 30,
        queue_wait_timeout_ms: 5_000,
        commit_timeout_ms: 10_000,
        max_batch_bytes: 16 * 1024 * 1024,
        max_row_bytes: 16 * 1024 * 1024,
        stall_timeout_seconds: 30,
        group_commit_wait_ms: 20,
        spill_path: None,
    }
}

pub fn sync_config() -> InferenceStoreConfig {
    config(1000, 2, 64, Durability::Sync)
}

/// A one-choice completion.
pub fn completion(id: &str, created: i64, model: &str) -> StoredCompletion {
    StoredCompletion {
        id: id.to_owned(),
        created,
        model: model.to_owned(),
        choices: json!([{"index": 0, "finish_reason": "stop", "logprobs": null,
            "message": {"role": "assistant", "content": format!("answer to {id}")}}])
        .into(),
        input_messages: json!([{"role": "user", "content": "hello"}]).into(),
        metadata: None,
        upstream_id: None,
    }
}

pub fn user(name: &str) -> User {
    User::new(name, BTreeMap::new())
}

pub fn user_in(name: &str, category: &str, value: &str) -> User {
    User::new(name, BTreeMap::from([(category.to_owned(), vec![value.to_owned()])]))
}

/// Flush with a deadline.
pub async fn flush(store: &InferenceStore) {
    tokio::time::timeout(Duration::from_secs(60), store.flush()).await.expect("queue drained within 60 s");
}

pub type TestFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
