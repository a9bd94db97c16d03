//! EXPLAIN ANALYZE of the statement `GET /v1/chat/completions` runs for one caller, on the
//! database and with the access policy of a ferrostack run config: the benchmark's evidence of
//! which indexes serve a tenant's first page and a deep page.
//!
//! ```sh
//! cargo run --release -p ferrostack-authz --example explain_list -- CONFIG PRINCIPAL [AFTER_ID]
//! ```
//!
//! The caller is `PRINCIPAL` with the attributes its `static` token has in the config (none when
//! the config has no such token). The statement is built as the inference store's list builds it
//! (the same predicate, from [`AuthorizedTable::predicate`], the same columns, cursor and order,
//! newest first, 20 + 1 rows).
#![expect(clippy::print_stdout, reason = "a diagnostic program: prints its findings")]

use std::collections::BTreeMap;
use std::path::Path;

use ferrostack_authz::{AuthorizedTable, User};
use ferrostack_catalog::{Catalog, Dialect, Sql};
use ferrostack_config::{Action, AuthProviderConfig};
use std::error::Error;

const COLUMNS: &str = "id, created, model, choices, input_messages, metadata";

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
        let predicate = || table.predicate(Action::Read, Some(&user), None);
        let mut filter = Sql::new().push("TRUE");
        if let Some(after) = &after {
            let cursor = Sql::new()
                .push("SELECT \"created\", \"id\" FROM \"inference_store\" WHERE \"id\" = ")
                .bind(after.as_str())
                .push(" AND ")
                .push_sql(predicate()?);
            filter = Sql::new()
                .push("(")
                .push_sql(filter)
                .push(") AND (\"created\", \"id\") < (")
                .push_sql(cursor)
                .push(")");
        }
        let query = Sql::new()
            .push(&format!("SELECT {COLUMNS} FROM \"inference_store\" WHERE ("))
            .push_sql(filter)
            .push(") AND ")
            .push_sql(predicate()?)
            .push(" ORDER BY \"created\" DESC, \"id\" DESC LIMIT 21");
        println!("query: {}", query.text(Dialect::Postgres));
        let binds: Vec<String> = query.binds().iter().map(|v| format!("{v:?}")).collect();
        println!("binds: {}\n", binds.join(", "));
        let explain = Sql::new().push("EXPLAIN (ANALYZE, BUFFERS) ").push_sql(query);
        for row in db.fetch_all(explain).await? {
            println!("{}", row.get::<String>("QUERY PLAN")?);
        }
        catalog.close().await;
        Ok::<(), Box<dyn Error>>(())
    })
}
