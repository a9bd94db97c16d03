//! Measures the SQLite pool size under a mixed KV workload, to choose between one connection
//! (the equivalent of a dedicated writer thread: every operation queues on it) and a pool.
//!
//! ```text
//! cargo run --release -p ferrostack-catalog --example sqlite_pool_bench [-- OPS TASKS ROUNDS WRITE_PCT]
//! ```
//!
//! For each pool size: a fresh WAL database in a temp directory, 10,000 keys preloaded, then
//! `TASKS` concurrent tasks (default 8) run `OPS` operations in total (default 20,000): point
//! reads of existing keys and, `WRITE_PCT`% of the time (default 20), inserts of new keys, through
//! [`KvStore`] exactly as the server does. Each size runs `ROUNDS` times (default 3), interleaved; the median round is reported.
#![expect(clippy::print_stdout, reason = "a benchmark reports on stdout")]

use std::collections::BTreeMap;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferrostack_catalog::{Catalog, KvStore};
use ferrostack_config::{BackendConfig, KvStoreRef, SqliteBackendConfig, StorageConfig};

const PRELOAD: u64 = 10_000;
const POOL_SIZES: [u32; 4] = [1, 2, 4, 8];

#[derive(Debug, Clone)]
struct Round {
    elapsed: Duration,
    reads: Vec<Duration>,
    writes: Vec<Duration>,
}

/// xorshift64*: enough randomness for choosing keys, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

async fn open(dir: &std::path::Path, pool_size: u32) -> Result<(Catalog, KvStore), Box<dyn Error>> {
    let backend = BackendConfig::KvSqlite(SqliteBackendConfig {
        db_path: dir.join(format!("bench-{pool_size}.db")).display().to_string(),
        pool_size,
        busy_timeout_ms: ferrostack_config::default_sqlite_busy_timeout_ms(),
        namespace: None,
        pool_pre_ping: None,
        statement_timeout_ms: ferrostack_config::default_statement_timeout_ms(),
    });
    let storage = StorageConfig { backends: BTreeMap::from([("kv".to_owned(), backend)]), ..StorageConfig::default() };
    let catalog = Catalog::open(&storage).await?;
    catalog.migrate().await?;
    let kv = catalog.kv(&KvStoreRef { backend: "kv".into(), namespace: "bench".into() })?;
    Ok((catalog, kv))
}

async fn round(
    dir: &std::path::Path,
    pool_size: u32,
    ops: u64,
    tasks: u64,
    write_pct: u64,
    seed: u64,
) -> Result<Round, Box<dyn Error>> {
    let _ = std::fs::remove_file(dir.join(format!("bench-{pool_size}.db")));
    let (catalog, kv) = open(dir, pool_size).await?;
    let value = "x".repeat(200);
    for i in 0..PRELOAD {
        kv.set(&format!("key-{i:08}"), &value, None).await?;
    }
    let kv = Arc::new(kv);
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let kv = Arc::clone(&kv);
        let value = value.clone();
        set.spawn(async move {
            let mut rng = Rng(seed ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (mut reads, mut writes) = (Vec::new(), Vec::new());
            for i in 0..ops / tasks {
                let op = Instant::now();
                if rng.next() % 100 >= write_pct {
                    let key = format!("key-{:08}", rng.next() % PRELOAD);
                    kv.get(&key).await?;
                    reads.push(op.elapsed());
                } else {
                    kv.set(&format!("new-{t}-{i}"), &value, None).await?;
                    writes.push(op.elapsed());
                }
            }
            Ok::<_, ferrostack_catalog::Error>((reads, writes))
        });
    }
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    while let Some(joined) = set.join_next().await {
        let (r, w) = joined??;
        reads.extend(r);
        writes.extend(w);
    }
    let elapsed = started.elapsed();
    catalog.close().await;
    Ok(Round { elapsed, reads, writes })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn us(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e6)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let ops = args.first().copied().unwrap_or(20_000);
    let tasks = args.get(1).copied().unwrap_or(8).max(1);
    let rounds = args.get(2).copied().unwrap_or(3).max(1);
    let write_pct = args.get(3).copied().unwrap_or(20).min(100);
    let dir = std::env::temp_dir().join(format!("ferrostack-sqlite-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;

    let mut results: BTreeMap<u32, Vec<Round>> = BTreeMap::new();
    for r in 0..rounds {
        for size in POOL_SIZES {
            let result = round(&dir, size, ops, tasks, write_pct, 0x5EED + r).await?;
            results.entry(size).or_default().push(result);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!(
        "{ops} ops, {tasks} tasks, {}% get / {write_pct}% set, {PRELOAD} keys preloaded, WAL, synchronous=NORMAL, \
         median of {rounds} rounds, {} CPUs",
        100 - write_pct,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)
    );
    println!("| pool_size | ops/s | get p50 µs | get p99 µs | set p50 µs | set p99 µs |");
    println!("|---:|---:|---:|---:|---:|---:|");
    for (size, mut rounds) in results {
        rounds.sort_by_key(|r| r.elapsed);
        let Some(median) = rounds.get(rounds.len() / 2).cloned() else {
            continue;
        };
        let (mut reads, mut writes) = (median.reads, median.writes);
        reads.sort_unstable();
        writes.sort_unstable();
        let total = (reads.len() + writes.len()) as f64;
        println!(
            "| {size} | {:.0} | {} | {} | {} | {} |",
            total / median.elapsed.as_secs_f64(),
            us(percentile(&reads, 0.5)),
            us(percentile(&reads, 0.99)),
            us(percentile(&writes, 0.5)),
            us(percentile(&writes, 0.99)),
        );
    }
    Ok(())
}
