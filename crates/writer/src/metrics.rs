//! The writer's counters.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
    pub(crate) rows_refused: AtomicU64,
    pub(crate) rows_too_large: AtomicU64,
    pub(crate) rows_abandoned: AtomicU64,
    pub(crate) rows_spilled: AtomicU64,
    pub(crate) rows_replayed: AtomicU64,
    pub(crate) queue_full: AtomicU64,
    pub(crate) commit_timeouts: AtomicU64,
    /// When each row queued or being written was queued, by sequence number: the first is the
    /// oldest.
    pub(crate) ages: Mutex<BTreeMap<u64, Instant>>,
    pub(crate) seq: AtomicU64,
    /// Microseconds after `epoch` when a batch last finished (committed or refused).
    pub(crate) last_progress_micros: AtomicU64,
    pub(crate) stall_timeout_micros: AtomicU64,
    pub(crate) capacity: AtomicU64,
    /// Bytes charged to the queue's byte bound: rows queued or being written, and the estimates
    /// of places reserved.
    pub(crate) bytes: AtomicUsize,
    pub(crate) max_bytes: AtomicU64,
    pub(crate) epoch: Epoch,
}

/// The instant the counters were created (a `Default` wrapper).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Epoch(pub(crate) Instant);

impl Default for Epoch {
    fn default() -> Self {
        Epoch(Instant::now())
    }
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

    /// Rows the database refused for good (isolated by bisection), logged with their ids.
    pub fn rows_refused(&self) -> u64 {
        self.rows_refused.load(Ordering::Relaxed)
    }
    /// Rows refused before queueing because they are larger than `max_row_bytes`.
    pub fn rows_too_large(&self) -> u64 {
        self.rows_too_large.load(Ordering::Relaxed)
    }
    /// `durability: sync` rows skipped because their request stopped waiting (commit timeout)
    /// before their batch started.
    pub fn rows_abandoned(&self) -> u64 {
        self.rows_abandoned.load(Ordering::Relaxed)
    }
    /// `durability: async` rows saved to the spill file at shutdown (not written in the drain).
    pub fn rows_spilled(&self) -> u64 {
        self.rows_spilled.load(Ordering::Relaxed)
    }
    /// Spilled rows queued again from the spill file at start-up.
    pub fn rows_replayed(&self) -> u64 {
        self.rows_replayed.load(Ordering::Relaxed)
    }
    /// Requests refused (503) because no place in the queue freed within the wait timeout.
    pub fn queue_full(&self) -> u64 {
        self.queue_full.load(Ordering::Relaxed)
    }
    /// `durability: sync` requests answered 503 because their row did not commit in time.
    pub fn commit_timeouts(&self) -> u64 {
        self.commit_timeouts.load(Ordering::Relaxed)
    }
    /// Age of the oldest row queued or being written (zero when none).
    pub fn oldest_age(&self) -> Duration {
        let ages = self.ages.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        ages.first_key_value().map(|(_, at)| at.elapsed()).unwrap_or_default()
    }
    /// How long since a batch last finished (committed, or refused for good); since start when
    /// none has.
    pub fn since_progress(&self) -> Duration {
        let last = Duration::from_micros(self.last_progress_micros.load(Ordering::Relaxed));
        self.epoch.0.elapsed().saturating_sub(last)
    }
    /// Stalled: rows are queued, the oldest has waited longer than `stall_timeout`, and no batch
    /// finished for that long. The writer cannot make progress (the database is down, or a
    /// batch keeps failing).
    pub fn stalled(&self) -> bool {
        let limit = Duration::from_micros(self.stall_timeout_micros.load(Ordering::Relaxed));
        self.queue_depth() > 0 && self.oldest_age() > limit && self.since_progress() > limit
    }
    /// Most rows queued or reserved (`max_write_queue_size`).
    pub fn capacity(&self) -> u64 {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Bytes held by the queue: the rows queued or being written ([`crate::WriteRow::size`]) and
    /// the estimates of places reserved and not yet used.
    pub fn queue_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed) as u64
    }
    /// The queue's byte bound (`max_queue_bytes`).
    pub fn max_queue_bytes(&self) -> u64 {
        self.max_bytes.load(Ordering::Relaxed)
    }

    /// A batch finished: the writer made progress.
    pub(crate) fn progressed(&self) {
        let now = u64::try_from(self.epoch.0.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.last_progress_micros.store(now, Ordering::Relaxed);
    }

    /// Track a newly queued row; returns its sequence number.
    pub(crate) fn track(&self, at: Instant) -> u64 {
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        self.ages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).insert(seq, at);
        seq
    }

    pub(crate) fn untrack(&self, seq: u64) {
        self.ages.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(&seq);
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}
