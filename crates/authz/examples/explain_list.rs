//! EXPLAIN ANALYZE of the statement `GET /v1/chat/completions` runs for one caller, on the
//! database and with the access policy of a ferrostack run config: the benchmark's evidence of
//! which indexes serve a tenant's first page and a deep page.
//!
//! ```sh
//! cargo run --release -p ferrostack-authz --example explain_list -- CONFIG PRINCIPAL [AFTER_ID]
//! ```
//!
//! The caller is `PRINCIPAL` with the attributes its `static` token has in the config (none when
//! the config has no such token). The statement is the one `GET /v1/chat/completions?limit=20`
//! runs: [`AuthorizedTable::list_sql`] with the inference store's columns, newest first, 20 + 1
//! rows (the per-owner `UNION ALL` included when the policy folds to a few owners). PostgreSQL:
//! `EXPLAIN (ANALYZE, BUFFERS)`; SQLite: `EXPLAIN QUERY PLAN` and the statement's time.
#![expect(clippy::print_stdout, reason = "a diagnostic program: prints its findings")]

use std::collections::BTreeMap;
use std::path::Path;

use ferrostack_authz::policy::Order;
use ferrostack_authz::{AuthorizedTable, Key, User};
use ferrostack_catalog::{Catalog, Dialect, Sql};
use ferrostack_config::AuthProviderConfig;
use std::error::Error;
use std::time::Instant;

const COLUMNS: &str = "id, created, model, choices, input_messages, metadata, upstream_id";

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, principal, rest @ ..] = args.as_slice() else {
        return Err("usage: explain_list CONFIG PRINCIPAL [AFTER_ID]".into());
    };
    let after = rest.first().cloned();
    let loaded = ferrostack_config::load_file(Path::new(config), &ferrostack_config::Env::process())?;
    let config = loaded.config;
    let attributes = match &config.server.auth.provider_config {
        Some(AuthProviderConfig::Static(s)) => {
            s.tokens.iter().find(|t| &t.principal == principal).map(|t| t.attributes.clone()).unwrap_or_default()
        }
        _ => BTreeMap::new(),
    };
    let user = User::new(principal.clone(), attributes);
    let backend = config.storage.stores.inference.as_ref().ok_or("the config has no inference store")?.backend.clone();
    let policy = config.server.auth.access_policy.clone();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(async move {
        let catalog = Catalog::open(&config.storage).await?;
        let db = catalog.sql(&backend)?;
        let table = AuthorizedTable::new(db.clone(), "inference_store", "id", "created", policy)?;
        let query =
            table.list_sql(Some(&user), COLUMNS, Sql::new(), after.as_deref().map(Key::from), 20, Order::Desc)?;
        let dialect = db.dialect();
        println!("query: {}", query.text(dialect));
        let binds: Vec<String> = query.binds().iter().map(|v| format!("{v:?}")).collect();
        println!("binds: {}\n", binds.join(", "));
        match dialect {
            Dialect::Postgres => {
                let explain = Sql::new().push("EXPLAIN (ANALYZE, BUFFERS) ").push_sql(query);
                for row in db.fetch_all(explain).await? {
                    println!("{}", row.get::<String>("QUERY PLAN")?);
                }
            }
            Dialect::Sqlite => {
                let explain = Sql::new().push("EXPLAIN QUERY PLAN ").push_sql(query.clone());
                for row in db.fetch_all(explain).await? {
                    println!("{}", row.get::<String>("detail")?);
                }
                // One warm-up run, then the best of 50 (every pooled connection has prepared the statement by then): SQLite has no EXPLAIN ANALYZE.
                let mut rows = db.fetch_all(query.clone()).await?.len();
                let mut best = f64::MAX;
                for _ in 0..50 {
                    let t = Instant::now();
                    rows = db.fetch_all(query.clone()).await?.len();
                    best = best.min(t.elapsed().as_secs_f64() * 1000.0);
                }
                println!("{rows} rows, best of 50 runs: {best:.3} ms");
            }
        }
        catalog.close().await;
        Ok::<(), Box<dyn Error>>(())
    })
}
