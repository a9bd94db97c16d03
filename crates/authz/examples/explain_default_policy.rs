//! EXPLAIN ANALYZE of one tenant's first page of a 1M-row tenant table under the default policy,
//! on PostgreSQL: shows which indexes serve the compiled predicate.
//!
//! ```sh
//! cargo run --release -p ferrostack-authz --example explain_default_policy
//! ```
//!
//! Seeds a fresh `test_<uuid>` database on `TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) with 1,000,000 rows in bulk (`generate_series`):
//! 1,000 principals, each in one of 100 teams, 0.1% of rows unowned. The database is dropped at
//! the end.
#![expect(clippy::print_stdout, clippy::unwrap_used, reason = "a diagnostic program: prints its findings")]

use std::collections::BTreeMap;

use ferrostack_authz::User;
use ferrostack_authz::policy::{Target, compile};
use ferrostack_catalog::{Catalog, Dialect, Sql};
use ferrostack_config::{Action, BackendConfig, StorageConfig};
use serde_json::json;

const SETUP: [&str; 5] = [
    "CREATE TABLE items (id TEXT PRIMARY KEY, created BIGINT NOT NULL, data TEXT,
        owner_principal TEXT NOT NULL, access_attributes JSONB)",
    "INSERT INTO items (id, created, data, owner_principal, access_attributes)
     SELECT 'r' || g, g, 'row ' || g,
            CASE WHEN g % 1000 = 0 THEN '' ELSE 'user' || (g % 1000) END,
            CASE WHEN g % 1000 = 0 THEN 'null'::jsonb
                 ELSE jsonb_build_object('teams', jsonb_build_array('team' || (g % 1000) % 100)) END
     FROM generate_series(1, 1000000) AS g",
    "CREATE INDEX items_owner_created_id ON items (owner_principal, created, id)",
    "CREATE INDEX items_access_attributes ON items USING GIN (access_attributes jsonb_path_ops)",
    "ANALYZE items",
];

fn main() {
    // Discovery runs its own runtime, so it happens before ours starts.
    let pg = ferrostack_testkit::Postgres::discover().unwrap();
    tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap().block_on(run(pg));
}

async fn run(pg: ferrostack_testkit::Postgres) {
    let test_db = pg.fresh_database().await;
    let backend: BackendConfig = serde_json::from_value(json!({
        "type": "sql_postgres", "host": pg.host(), "port": pg.port(), "db": test_db.name(), "user": pg.user(),
        "password": pg.password(),
    }))
    .unwrap();
    let storage = StorageConfig { backends: BTreeMap::from([("sql".to_owned(), backend)]), ..StorageConfig::default() };
    let catalog = Catalog::open(&storage).await.unwrap();
    let db = catalog.sql("sql").unwrap();
    let started = std::time::Instant::now();
    for statement in SETUP {
        db.execute(Sql::new().push(statement)).await.unwrap();
    }
    println!("seeded 1,000,000 rows and built indexes in {:.1?}", started.elapsed());

    let user = User::new("user7", BTreeMap::from([("teams".to_owned(), vec!["team7".to_owned()])]));
    let predicate = compile(&[], Action::Read, &Target::new("items", "id"), Some(&user), Dialect::Postgres).unwrap();
    let query = Sql::new()
        .push("SELECT id, created, data FROM items WHERE ")
        .push_sql(predicate)
        .push(" ORDER BY created DESC, id DESC LIMIT 21");
    println!("query: {}\n", query.text(Dialect::Postgres));
    let explain = Sql::new().push("EXPLAIN (ANALYZE, BUFFERS) ").push_sql(query);
    for row in db.fetch_all(explain).await.unwrap() {
        println!("{}", row.get::<String>("QUERY PLAN").unwrap());
    }
    catalog.close().await;
}
