//! ferrostack's batch writer, for every tenant table whose rows are written off the request
//! path (stored chat completions today; responses next).
//!
//! A store describes its row type once ([`WriteRow`]: its table, columns, key and the columns a
//! duplicate replaces) and starts a [`Writer`] on its [`AuthorizedTable`]. The writer:
//!
//! - bounds the queue (`capacity` rows, counting rows being written) and the bytes its rows hold
//!   (`max_queue_bytes`): a producer that finds it full waits (backpressure), nothing is dropped;
//! - runs `writers` tasks (one on SQLite), each taking up to `batch_size` queued rows and writing
//!   them as one multi-row statement in one transaction: the authorized layer's owner-stamped,
//!   same-owner-only upsert ([`ferrostack_authz::policy::Upsert`]), each row stamped with its own
//!   caller's owner columns;
//! - retries transient errors with capped, jittered exponential backoff for as long as it runs,
//!   and bisects a batch the database rejects for good until the rows at fault are isolated
//!   (refused: logged by key, never their content; see below);
//! - reports a row whose key belongs to another owner's row (that row is left untouched);
//! - `durability: sync`: [`Writer::write`] returns once the row's batch committed (group commit);
//! - drains on [`Writers::shutdown`] within a grace period; its tasks are tracked
//!   ([`Writers::tasks`]) and stop when the [`Writers`] is dropped (a start-up that fails after the
//!   store started leaves nothing running);
//! - counts what it does in [`QueueMetrics`].
//!
//! Faults (issues 14 and 15):
//!
//! - a request reserves its place in the queue ([`Writer::reserve`]) before it calls the
//!   upstream, waiting at most `queue_wait_timeout` for a row place and for the bytes held to be
//!   under `max_queue_bytes`; its row's bytes are charged when it is written, without waiting
//!   (so the bound can be passed by the rows of the requests already admitted: the margin); `durability: sync` waits at most
//!   `commit_timeout` for its commit (a waiter that gave up has its row skipped if its batch has
//!   not started);
//! - batches are bounded by bytes (`max_batch_bytes`) as well as rows; a row over `max_row_bytes`
//!   is refused before it is queued;
//! - an error no retry can fix is permanent: bisection isolates the row, which is refused
//!   ([`WriteError::Refused`] for `sync`; a log line with its id and the `rows_refused` counter
//!   for `async`); a row the database keeps failing on while it answers pings is refused too;
//! - retries wake as soon as the database answers a ping again, not only on the backoff timer;
//! - a writer with rows queued that commits nothing for `stall_timeout` is reported stalled
//!   ([`Writer::health`]);
//! - `durability: async` rows still queued when the drain ends are spilled to a JSON-lines file
//!   (`spill_path`) that [`Writer::replay`] writes back at the next start.

mod batch;
mod budget;
mod metrics;
mod queue;
mod spill;

use std::path::PathBuf;
use std::time::Duration;

use ferrostack_catalog::Value;
use ferrostack_config::Durability;

pub use metrics::QueueMetrics;
pub use queue::{Reservation, ShutdownReport, Writer, WriterHealth, Writers};
pub use spill::{ReplayReport, SpillError};

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
    /// The row's size in bytes, about as sent to the database (batches are bounded by it).
    fn size(&self) -> usize;
    /// The row back from [`WriteRow::values`] (a spilled row being replayed); `None` when they
    /// are not this row type's values.
    fn from_values(values: Vec<Value>) -> Option<Self>
    where
        Self: Sized;
}

/// How a writer runs (from a store's config: `max_write_queue_size`, `num_writers`, ...).
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Most rows queued or being written.
    pub capacity: usize,
    /// Bytes of rows queued or being written at which new reservations wait (`max_queue_bytes`;
    /// see [`Writer::reserve_sized`] for the margin).
    pub max_queue_bytes: usize,
    /// Writer tasks on PostgreSQL (SQLite always gets one: it runs one write at a time).
    pub writers: usize,
    /// Most rows per batch.
    pub batch_size: usize,
    /// Whether a write returns when queued (`async`) or committed (`sync`).
    pub durability: Durability,
    /// Grace period of the shutdown drain.
    pub drain_timeout: Duration,
    /// Longest wait for a place in the queue ([`Writer::reserve`]).
    pub queue_wait_timeout: Duration,
    /// `durability: sync`: longest wait for a row's commit.
    pub commit_timeout: Duration,
    /// Most bytes of rows per batch (a batch holds at least one row).
    pub max_batch_bytes: usize,
    /// Largest row accepted, in bytes.
    pub max_row_bytes: usize,
    /// Time without progress, with rows queued, after which the writer reports itself stalled.
    pub stall_timeout: Duration,
    /// Group commit: longest wait of a partial batch for another writer's batch to be written.
    pub group_commit_wait: Duration,
    /// Where `durability: async` rows left at shutdown are spilled; `None`: they are logged and
    /// lost.
    pub spill_path: Option<PathBuf>,
}

impl From<&ferrostack_config::InferenceStoreConfig> for WriterConfig {
    fn from(c: &ferrostack_config::InferenceStoreConfig) -> Self {
        Self {
            capacity: c.max_write_queue_size,
            max_queue_bytes: c.max_queue_bytes.max(1),
            writers: c.num_writers,
            batch_size: c.batch_size,
            durability: c.durability,
            drain_timeout: Duration::from_secs(c.drain_timeout_seconds),
            queue_wait_timeout: Duration::from_millis(c.queue_wait_timeout_ms),
            commit_timeout: Duration::from_millis(c.commit_timeout_ms),
            max_batch_bytes: c.max_batch_bytes.max(1),
            max_row_bytes: c.max_row_bytes.max(1),
            stall_timeout: Duration::from_secs(c.stall_timeout_seconds.max(1)),
            group_commit_wait: Duration::from_millis(c.group_commit_wait_ms),
            // The default path depends on where the database is; the store sets it.
            spill_path: c.spill_path.as_deref().map(PathBuf::from),
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
    /// No place in the queue freed within the wait timeout (the database is slow or down).
    #[error("the write queue of {table} stayed full for {} ms", waited.as_millis())]
    QueueFull {
        /// The table.
        table: &'static str,
        /// How long the caller waited.
        waited: Duration,
    },
    /// `durability: sync`: the row's batch did not commit within the commit timeout. The row is
    /// skipped unless its batch had already started (then it may still be written).
    #[error("row {id} of {table} was not committed within {} ms", waited.as_millis())]
    CommitTimeout {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The row is larger than `max_row_bytes`; it was not queued.
    #[error("row {id} of {table} is {size} bytes; the limit is {limit} bytes")]
    TooLarge {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// Its size.
        size: usize,
        /// `max_row_bytes`.
        limit: usize,
    },
    /// The database refused the row for good (bisection isolated it); logged with its id.
    #[error("row {id} of {table} was refused by the database: {reason}")]
    Refused {
        /// The table.
        table: &'static str,
        /// The row's id.
        id: String,
        /// Why, as the database said it (no host, no content).
        reason: String,
        /// Whether the row's content is at fault (an invalid character, a value out of range),
        /// rather than the row's size or an unexplained failure.
        content: bool,
    },
    /// `durability: sync`: the row could not be written (a statement error that is not the
    /// row's fault, logged with its id), or shutdown ended before it was written.
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
