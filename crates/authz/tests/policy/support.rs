//! Scratch tenant tables (test-only DDL) on a SQLite temp file or a fresh PostgreSQL database.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use ferrostack_authz::User;
use ferrostack_authz::policy::{AuthorizedTable, sqlite_access_values_ddl};
use ferrostack_catalog::{Catalog, Db, Dialect, Sql};
use ferrostack_config::{AccessRule, BackendConfig, StorageConfig};
use ferrostack_testkit::{Postgres, Test, TestDatabase};
use serde_json::json;

pub const TABLE: &str = "items";

const PG_DDL: [&str; 3] = [
    "CREATE TABLE items (id TEXT PRIMARY KEY, created BIGINT NOT NULL, data TEXT,
        owner_principal TEXT NOT NULL, access_attributes JSONB)",
    "CREATE INDEX items_owner_created_id ON items (owner_principal, created, id)",
    "CREATE INDEX items_access_attributes ON items USING GIN (access_attributes)",
];
const SQLITE_DDL: [&str; 2] = [
    "CREATE TABLE items (id TEXT PRIMARY KEY, created INTEGER NOT NULL, data TEXT,
        owner_principal TEXT NOT NULL, access_attributes TEXT)",
    "CREATE INDEX items_owner_created_id ON items (owner_principal, created, id)",
];

/// A database with the scratch table; keeps the temp dir / test database alive.
pub struct Scratch {
    pub db: Db,
    _catalog: Catalog,
    _dir: Option<tempfile::TempDir>,
    _pg: Option<TestDatabase>,
}

impl Scratch {
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// The table under `policy`.
    pub fn table(&self, policy: Vec<AccessRule>) -> AuthorizedTable {
        AuthorizedTable::new(self.db.clone(), TABLE, "id", "created", Arc::from(policy)).unwrap()
    }
}

fn storage(backend: serde_json::Value) -> StorageConfig {
    let backend: BackendConfig = serde_json::from_value(backend).unwrap();
    StorageConfig { backends: BTreeMap::from([("sql".to_owned(), backend)]), ..StorageConfig::default() }
}

async fn create(catalog: Catalog, dir: Option<tempfile::TempDir>, pg: Option<TestDatabase>) -> Scratch {
    let db = catalog.sql("sql").unwrap();
    let ddl: Vec<String> = match db.dialect() {
        Dialect::Postgres => PG_DDL.iter().map(|s| (*s).to_owned()).collect(),
        // The side table of attribute values and its triggers, as the migrations create them
        // for the real tenant tables.
        Dialect::Sqlite => SQLITE_DDL
            .iter()
            .map(|s| (*s).to_owned())
            .chain(sqlite_access_values_ddl(TABLE, "id", "TEXT", "created"))
            .collect(),
    };
    for statement in &ddl {
        db.execute(Sql::new().push(statement)).await.unwrap();
    }
    Scratch { db, _catalog: catalog, _dir: dir, _pg: pg }
}

pub async fn sqlite() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sql.db").display().to_string();
    let catalog = Catalog::open(&storage(json!({"type": "sql_sqlite", "db_path": path}))).await.unwrap();
    create(catalog, Some(dir), None).await
}

pub async fn postgres(pg: &Postgres) -> Scratch {
    let db = pg.fresh_database().await;
    let server = db.server();
    let mut backend = json!({
        "type": "sql_postgres", "host": server.host(), "port": server.port(), "db": db.name(), "user": server.user(),
    });
    if let Some(password) = server.password() {
        backend["password"] = json!(password);
    }
    let catalog = Catalog::open(&storage(backend)).await.unwrap();
    create(catalog, None, Some(db)).await
}

pub type Case = fn(Scratch) -> Pin<Box<dyn Future<Output = ()>>>;

/// Each case twice: `<name>::sqlite` and `<name>::postgres`.
pub fn both(cases: Vec<(&'static str, Case)>) -> Vec<Test> {
    let mut tests = Vec::new();
    for (name, case) in cases {
        tests.push(Test::plain(format!("{name}::sqlite"), move || async move { case(sqlite().await).await }));
        tests.push(Test::postgres(
            format!("{name}::postgres"),
            move |pg| async move { case(postgres(&pg).await).await },
        ));
    }
    tests
}

/// A user with attributes given as `[(category, [values])]`.
pub fn user(principal: &str, attributes: &[(&str, &[&str])]) -> User {
    User::new(
        principal,
        attributes.iter().map(|(k, vs)| ((*k).to_owned(), vs.iter().map(|v| (*v).to_owned()).collect())).collect(),
    )
}
