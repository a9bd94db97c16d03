//! Measures the inference store's write path: rows per second of the batched writer at a few
//! batch sizes and writer counts, against one row per statement, on PostgreSQL and SQLite.
//!
//! ```text
//! cargo run --release -p ferrostack-inference-store --example write_bench [-- ROWS PRODUCERS]
//! ```
//!
//! Prints one markdown table (backend, write path, batch size, writers, rows/s); `scripts/bench.sh`
//! puts it in its report. Each configuration gets an empty table; `PRODUCERS` tasks (default 8) store `ROWS` rows in
//! total (default 20,000; ~1 KB of JSON each) through `InferenceStore::store` (durability async,
//! queue 10,000), and the clock stops when the last row committed (`flush`). The baseline
//! ("direct") has the same producers each run one `INSERT` per row on the pool, with no queue.
//! PostgreSQL is the server of `TEST_DATABASE_URL` (default postgres@127.0.0.1:5432), on a fresh
//! database that is dropped afterwards; SQLite is a WAL file in a temp directory.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::error::Error;
use std::time::{Duration, Instant};

use ferrostack_authz::User;
use ferrostack_catalog::{Catalog, Db, Sql, Value};
use ferrostack_config::{BackendConfig, Durability, InferenceStoreConfig, StorageConfig};
use ferrostack_inference_store::{InferenceStore, StoredCompletion};
use serde_json::json;

/// (batch_size, writers) of the queued runs. SQLite runs the one-writer ones only.
const CONFIGS: [(usize, usize); 10] =
    [(1, 1), (16, 1), (64, 1), (256, 1), (1024, 1), (1, 4), (64, 4), (256, 2), (256, 4), (1024, 4)];

fn completion(i: usize) -> StoredCompletion {
    StoredCompletion {
        id: format!("chatcmpl-{i:08}"),
        created: 1_700_000_000 + i64::try_from(i / 10).unwrap_or(0),
        model: "llama-3.1-8b".to_owned(),
        choices: json!([{"index": 0, "finish_reason": "stop", "logprobs": null,
            "message": {"role": "assistant", "content": "x".repeat(500)}}])
        .into(),
        input_messages:
            json!([{"role": "system", "content": "y".repeat(200)}, {"role": "user", "content": "z".repeat(200)}]).into(),
        metadata: None,
        upstream_id: None,
    }
}

async fn clear(db: &Db) -> Result<(), Box<dyn Error>> {
    db.execute(Sql::new().push("DELETE FROM inference_store")).await?;
    Ok(())
}

async fn queued(db: &Db, rows: usize, producers: usize, batch: usize, writers: usize) -> Result<f64, Box<dyn Error>> {
    clear(db).await?;
    let config = InferenceStoreConfig {
        backend: "sql".into(),
        table_name: None,
        max_write_queue_size: 10_000,
        max_queue_bytes: ferrostack_config::default_max_queue_bytes(),
        num_writers: writers,
        durability: Durability::Async,
        batch_size: batch,
        drain_timeout_seconds: 30,
        queue_wait_timeout_ms: ferrostack_config::default_queue_wait_timeout_ms(),
        commit_timeout_ms: ferrostack_config::default_commit_timeout_ms(),
        max_batch_bytes: ferrostack_config::default_max_batch_bytes(),
        max_row_bytes: ferrostack_config::default_max_row_bytes(),
        stall_timeout_seconds: ferrostack_config::default_stall_timeout_seconds(),
        group_commit_wait_ms: ferrostack_config::default_group_commit_wait_ms(),
        spill_path: None,
    };
    let (store, w) = InferenceStore::start(db.clone(), &config, Vec::new())?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let store = store.clone();
        tasks.push(ferrostack_testkit::spawn(async move {
            let user = User::new(format!("user{p}"), BTreeMap::new());
            for i in (p..rows).step_by(producers) {
                store.store(completion(i), Some(&user)).await?;
            }
            Ok::<_, ferrostack_inference_store::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    store.flush().await;
    let elapsed = started.elapsed();
    w.shutdown(Duration::from_secs(5)).await;
    Ok(rate(rows, elapsed))
}

async fn direct(db: &Db, rows: usize, producers: usize) -> Result<f64, Box<dyn Error>> {
    clear(db).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let db = db.clone();
        tasks.push(ferrostack_testkit::spawn(async move {
            for i in (p..rows).step_by(producers) {
                let c = completion(i);
                let sql = Sql::new()
                    .push("INSERT INTO inference_store (id, created, model, choices, input_messages, metadata, owner_principal, access_attributes) ")
                    .push_values([vec![
                        Value::Text(c.id), Value::Int(c.created), Value::Text(c.model), Value::JsonText(c.choices),
                        Value::JsonText(c.input_messages), Value::Null, Value::Text(format!("user{p}")), Value::Json(json!({})),
                    ]]);
                db.execute(sql).await?;
            }
            Ok::<_, ferrostack_catalog::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(rate(rows, started.elapsed()))
}

fn rate(rows: usize, elapsed: Duration) -> f64 {
    rows as f64 / elapsed.as_secs_f64()
}

async fn run(name: &str, db: &Db, rows: usize, producers: usize) -> Result<(), Box<dyn Error>> {
    println!("| {name} | direct, one INSERT per row | 1 | {producers} | {:.0} |", direct(db, rows, producers).await?);
    for (batch, writers) in CONFIGS {
        if name == "sqlite" && writers > 1 {
            continue; // one writer on SQLite, whatever the config says
        }
        println!(
            "| {name} | queue | {batch} | {writers} | {:.0} |",
            queued(db, rows, producers, batch, writers).await?
        );
    }
    Ok(())
}

async fn open(backend: serde_json::Value) -> Result<(Catalog, Db), Box<dyn Error>> {
    let backend: BackendConfig = serde_json::from_value(backend)?;
    let storage = StorageConfig { backends: BTreeMap::from([("sql".to_owned(), backend)]), ..StorageConfig::default() };
    let catalog = Catalog::open(&storage).await?;
    catalog.migrate().await?;
    let db = catalog.sql("sql")?;
    Ok((catalog, db))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let rows = args.first().copied().unwrap_or(20_000);
    let producers = args.get(1).copied().unwrap_or(8);
    println!(
        "{rows} rows of ~1 KB per configuration, {producers} producer tasks; rows/s until the last row committed\n"
    );
    println!("| backend | write path | batch_size | writers | rows/s |");
    println!("|---|---|---:|---:|---:|");

    let dir = std::env::temp_dir().join(format!("ferrostack-write-bench-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("bench.db").display().to_string();
    let (catalog, db) = open(json!({"type": "sql_sqlite", "db_path": path})).await?;
    let result = run("sqlite", &db, rows, producers).await;
    catalog.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    result?;

    // discover() runs its own runtime: off the async threads.
    match tokio::task::spawn_blocking(ferrostack_testkit::Postgres::discover).await? {
        Ok(pg) => {
            let test_db = pg.fresh_database().await;
            let mut backend = json!({"type": "sql_postgres", "host": pg.host(), "port": pg.port(),
                "db": test_db.name(), "user": pg.user(), "pool_size": 16});
            if let Some(password) = pg.password() {
                backend["password"] = json!(password);
            }
            let (catalog, db) = open(backend).await?;
            let result = run("postgres", &db, rows, producers).await;
            catalog.close().await;
            result?;
        }
        Err(reason) => eprintln!("postgres: skipped ({reason})"),
    }
    Ok(())
}
