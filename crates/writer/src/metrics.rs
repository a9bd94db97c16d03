//! The writer's counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Counters of a writer, for telemetry. All are totals since start, except the queue depth and
/// the last batch's size and latency.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    pub(crate) depth: AtomicU64,
    pub(crate) rows_written: AtomicU64,
    pub(crate) rows_retried: AtomicU64,
    pub(crate) rows_failed: AtomicU64,
    pub(crate) rows_id_taken: AtomicU64,
    pub(crate) batches_written: AtomicU64,
    pub(crate) batch_retries: AtomicU64,
    pub(crate) last_batch_size: AtomicU64,
    pub(crate) last_batch_micros: AtomicU64,
    pub(crate) producer_waits: AtomicU64,
}

impl QueueMetrics {
    /// Rows accepted and not yet committed or given up (queued and being written).
    pub fn queue_depth(&self) -> u64 {
        self.depth.load(Ordering::Relaxed)
    }
    /// Rows committed (inserted, or replacing the same owner's row).
    pub fn rows_written(&self) -> u64 {
        self.rows_written.load(Ordering::Relaxed)
    }
    /// Rows of batches that met a transient error and were tried again (one count per row and
    /// retry).
    pub fn rows_retried(&self) -> u64 {
        self.rows_retried.load(Ordering::Relaxed)
    }
    /// Rows given up: rejected by the database, or still queued when the shutdown grace ended.
    pub fn rows_failed(&self) -> u64 {
        self.rows_failed.load(Ordering::Relaxed)
    }
    /// Rows not written because their key belongs to another owner's row.
    pub fn rows_id_taken(&self) -> u64 {
        self.rows_id_taken.load(Ordering::Relaxed)
    }
    /// Batches committed.
    pub fn batches_written(&self) -> u64 {
        self.batches_written.load(Ordering::Relaxed)
    }
    /// Retries after transient errors (one per batch attempt).
    pub fn batch_retries(&self) -> u64 {
        self.batch_retries.load(Ordering::Relaxed)
    }
    /// Rows in the last committed batch.
    pub fn last_batch_size(&self) -> u64 {
        self.last_batch_size.load(Ordering::Relaxed)
    }
    /// How long the last committed batch's transaction took.
    pub fn last_batch_latency(&self) -> Duration {
        Duration::from_micros(self.last_batch_micros.load(Ordering::Relaxed))
    }
    /// Times a producer found the queue full and waited for room.
    pub fn producer_waits(&self) -> u64 {
        self.producer_waits.load(Ordering::Relaxed)
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
