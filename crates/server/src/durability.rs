//! Durability at start-up and shutdown: where the write queue spills what the drain could not
//! write, replaying it before serving, and how much of the in-flight grace is kept to answer 503s.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use ferrostack_config::{BackendConfig, Env, InferenceStoreConfig, RunConfig, tables};
use ferrostack_inference_store::InferenceStore;

/// The spill file of the inference store: `spill_path` when configured; else, for a SQLite
/// backend, beside its database file (`<file>.inference_store.spill.jsonl`); for PostgreSQL,
/// `<ferrostack home>/spill/<backend>-<host>-<port>-<db>.inference_store.jsonl`. One file per
/// database and table, so a start only replays rows meant for the database it writes to.
pub(crate) fn spill_path(config: &RunConfig, store: &InferenceStoreConfig) -> PathBuf {
    if let Some(path) = store.spill_path.as_deref() {
        return PathBuf::from(path);
    }
    let table = tables::INFERENCE;
    match config.storage.backends.get(&store.backend) {
        Some(BackendConfig::SqlSqlite(sqlite) | BackendConfig::KvSqlite(sqlite)) => {
            PathBuf::from(format!("{}.{table}.spill.jsonl", sqlite.db_path))
        }
        Some(BackendConfig::SqlPostgres(pg) | BackendConfig::KvPostgres(pg)) => {
            let name = format!("{}-{}-{}-{}.{table}.jsonl", store.backend, pg.host, pg.port, pg.db);
            let safe: String =
                name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
            ferrostack_config::home_dir(&Env::process()).join("spill").join(safe)
        }
        None => ferrostack_config::home_dir(&Env::process()).join("spill").join(format!("{table}.jsonl")),
    }
}

/// Write back what an earlier run spilled, before serving. A spill file that cannot be read is
/// a start-up error: serving without those rows would lose them silently.
pub(crate) async fn replay(store: &InferenceStore) -> anyhow::Result<()> {
    let report = store.replay_spilled().await.context("cannot replay the inference store's spill file")?;
    if report.files > 0 {
        tracing::info!(
            rows = report.rows,
            files = report.files,
            bad_lines = report.bad_lines,
            "replayed rows spilled at an earlier shutdown"
        );
    }
    Ok(())
}

/// How long before the end of the in-flight grace the requests still waiting for their handler
/// are answered 503 (so the answer is written before actix closes the connections): a quarter of
/// the grace, at most one second.
pub(crate) fn cut_margin(grace: Duration) -> Duration {
    (grace / 4).min(Duration::from_secs(1))
}
