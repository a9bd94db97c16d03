//! ferrostack's batch writer, for every tenant table whose rows are written off the request
//! path (stored chat completions today; responses next).
//!
//! A store describes its row type once ([`WriteRow`]: its table, columns, key and the columns a
//! duplicate replaces) and starts a [`Writer`] on its [`AuthorizedTable`]. The writer:
//!
//! - bounds the queue (`capacity` rows, counting rows being written): a producer that finds it
//!   full waits (backpressure), nothing is dropped;
//! - runs `writers` tasks (one on SQLite), each taking up to `batch_size` queued rows and writing
//!   them as one multi-row statement in one transaction: the authorized layer's owner-stamped,
//!   same-owner-only upsert ([`ferrostack_authz::policy::Upsert`]), each row stamped with its own
//!   caller's owner columns;
//! - retries transient errors with capped, jittered exponential backoff for as long as it runs,
//!   and bisects a batch the database rejects for good until the rows at fault are isolated
//!   (logged by key, never their content, and dropped);
//! - reports a row whose key belongs to another owner's row (that row is left untouched);
//! - `durability: sync`: [`Writer::write`] returns once the row's batch committed (group commit);
//! - drains on [`Writers::shutdown`] within a grace period; its tasks are tracked
//!   ([`Writers::tasks`]) and stop when the [`Writers`] is dropped (a start-up that fails after the
//!   store started leaves nothing running);
//! - counts what it does in [`QueueMetrics`].

mod batch;
mod metrics;
mod queue;

use std::time::Duration;

use ferrostack_catalog::Value;
use ferrostack_config::Durability;

pub use metrics::QueueMetrics;
pub use queue::{ShutdownReport, Writer, Writers};

/// A row type the writer can write.
pub trait WriteRow: Send + Sync + 'static {
    /// The table (as the migrations name it).
    const TABLE: &'static str;
    /// The columns written, in order (the owner columns are appended by the authorized layer).
    const COLUMNS: &'static [&'static str];
    /// The key columns (the conflict target), a prefix-free subset of [`WriteRow::COLUMNS`].
    const KEY: &'static [&'static str];
    /// The columns a duplicate key of the same owner replaces.
    const REPLACED: &'static [&'static str];
    /// What the row is called in logs and errors: its id, never its content.
    fn id(&self) -> String;
    /// The values of [`WriteRow::COLUMNS`], in order.
    fn values(&self) -> Vec<Value>;
    /// The values of [`WriteRow::KEY`], in order.
    fn key(&self) -> Vec<Value>;
}

/// How a writer runs (from a store's config: `max_write_queue_size`, `num_writers`, ...).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most rows queued or being written.
    pub capacity: usize,
    /// Writer tasks on PostgreSQL (SQLite always gets one: it runs one write at a time).
    pub writers: usize,
    /// Most rows per batch.
    pub batch_size: usize,
    /// Whether a write returns when queued (`async`) or committed (`sync`).
    pub durability: Durability,
    /// Grace period of the shutdown drain.
    pub drain_timeout: Duration,
}

impl From<&ferrostack_config::InferenceStoreConfig> for WriterConfig {
    fn from(c: &ferrostack_config::InferenceStoreConfig) -> Self {
        Self {
            capacity: c.max_write_queue_size,
            writers: c.num_writers,
            batch_size: c.batch_size,
            durability: c.durability,
            drain_timeout: Duration::from_secs(c.drain_timeout_seconds),
        }
    }
}

/// Why a row was not written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    /// Shutdown began; no more rows are accepted.
    #[error("the writer of {table} is shutting down and accepts no more rows")]
    ShuttingDown {
        /// The table.
        table: &'static str,
    },
    /// `durability: sync`: the database rejected the row (logged with its id), or shutdown
    /// ended before it was written.
    #[error("row {id} of {table} could not be written")]
    Failed {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
    },
    /// `durability: sync`: the key belongs to another owner's row, which was left unchanged.
    #[error("the key of row {id} of {table} belongs to another owner; the stored row was left unchanged")]
    KeyTaken {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
    },
}

/// Why a writer cannot start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The authorized table is not the row type's table.
    #[error("the writer of {row_table} was given the table {table}")]
    WrongTable {
        /// [`WriteRow::TABLE`].
        row_table: &'static str,
        /// The authorized table's.
        table: String,
    },
    /// The upsert cannot be built (an owner column among the row's columns).
    #[error(transparent)]
    Upsert(#[from] ferrostack_authz::StoreError),
}
