//! Shared set-up: configs for SQLite temp files and fresh PostgreSQL databases.

use std::collections::BTreeMap;
use std::path::PathBuf;

use ferrostack_catalog::Catalog;
use ferrostack_config::{BackendConfig, StorageConfig};
use ferrostack_testkit::TestDatabase;
use serde_json::json;

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("ferrostack-catalog-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn file(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A backend config from JSON (as the YAML would say it), so tests do not depend on every field.
pub fn backend(value: serde_json::Value) -> BackendConfig {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("bad backend config {value}: {e}"))
}

/// A SQLite backend of `type_name` on `path`.
pub fn sqlite(type_name: &str, path: &str) -> BackendConfig {
    backend(json!({ "type": type_name, "db_path": path }))
}

/// The JSON of a PostgreSQL backend of `type_name` on the test database; merge extra fields in.
pub fn postgres_json(type_name: &str, db: &TestDatabase) -> serde_json::Value {
    let server = db.server();
    let mut v = json!({
        "type": type_name,
        "host": server.host(),
        "port": server.port(),
        "db": db.name(),
        "user": server.user(),
    });
    if let Some(password) = server.password() {
        v["password"] = json!(password);
    }
    v
}

/// A PostgreSQL backend of `type_name` on the test database, with `extra` fields merged in.
pub fn postgres(type_name: &str, db: &TestDatabase, extra: serde_json::Value) -> BackendConfig {
    let mut v = postgres_json(type_name, db);
    if let (Some(target), serde_json::Value::Object(extra)) = (v.as_object_mut(), extra) {
        target.extend(extra);
    }
    backend(v)
}

/// A storage config with these backends (stores left at their defaults; the catalog ignores them).
pub fn storage(backends: impl IntoIterator<Item = (&'static str, BackendConfig)>) -> StorageConfig {
    StorageConfig {
        backends: backends.into_iter().map(|(n, b)| (n.to_owned(), b)).collect::<BTreeMap<_, _>>(),
        ..StorageConfig::default()
    }
}

/// Open a catalog or fail the test with the error.
pub async fn open(storage: &StorageConfig) -> Catalog {
    Catalog::open(storage).await.unwrap_or_else(|e| panic!("Catalog::open failed: {e}"))
}

/// Open and migrate.
pub async fn open_migrated(storage: &StorageConfig) -> Catalog {
    let catalog = open(storage).await;
    catalog.migrate().await.unwrap_or_else(|e| panic!("migrate failed: {e}"));
    catalog
}
