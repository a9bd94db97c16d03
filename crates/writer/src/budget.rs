//! The queue's byte bound (`max_queue_bytes`): what the queued rows may hold in memory.
//!
//! A request is admitted to the queue ([`crate::Writer::reserve_sized`]) only while the bytes
//! charged are below the bound and its estimate fits; the estimate is charged then. When its row
//! is pushed, the charge is settled to the row's real size without waiting (the upstream was
//! already called and the row is the answer's only record: it is never refused for room), so
//! the bytes charged can pass the bound by what the rows of the requests admitted before it was
//! reached add beyond their estimates. A row's bytes are given back once it is written or given
//! up.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use tokio::time::Instant;

use crate::metrics::QueueMetrics;

/// The byte bound shared by the producers and the writer tasks.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    /// Where the bytes charged are counted ([`QueueMetrics::queue_bytes`]).
    metrics: Arc<QueueMetrics>,
    closed: AtomicBool,
    freed: Notify,
}

/// Why [`Budget::admit`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The deadline passed with no room.
    TimedOut,
    /// Shutdown began.
    Closed,
}

/// Bytes charged to a [`Budget`], given back when dropped.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    bytes: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize, metrics: Arc<QueueMetrics>) -> Self {
        metrics.max_bytes.store(limit as u64, Ordering::Relaxed);
        Self { limit: limit.max(1), metrics, closed: AtomicBool::new(false), freed: Notify::new() }
    }

    /// Charge `estimate` bytes once the bytes charged are below the bound and the estimate fits
    /// (an estimate larger than the whole bound is admitted into an empty queue), waiting until
    /// `deadline` (`None`: as long as it takes).
    pub(crate) async fn admit(self: &Arc<Self>, estimate: usize, deadline: Option<Instant>) -> Result<Charge, Refusal> {
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            if self.closed.load(Ordering::Acquire) {
                return Err(Refusal::Closed);
            }
            if self.try_charge(estimate) {
                return Ok(Charge { budget: Arc::clone(self), bytes: estimate });
            }
            match deadline {
                Some(at) => {
                    if tokio::time::timeout_at(at, freed).await.is_err() {
                        return Err(Refusal::TimedOut);
                    }
                }
                None => freed.await,
            }
        }
    }

    fn try_charge(&self, estimate: usize) -> bool {
        let used = &self.metrics.bytes;
        let mut now = used.load(Ordering::Acquire);
        loop {
            let fits = now == 0 || (now < self.limit && now.saturating_add(estimate) <= self.limit);
            if !fits {
                return false;
            }
            match used.compare_exchange_weak(now, now.saturating_add(estimate), Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return true,
                Err(current) => now = current,
            }
        }
    }

    /// Whether the bytes charged have reached the bound: new requests wait.
    pub(crate) fn full(&self) -> bool {
        self.metrics.bytes.load(Ordering::Acquire) >= self.limit
    }

    /// Refuse every waiting and later admission (shutdown).
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.freed.notify_waiters();
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.metrics.bytes.fetch_sub(bytes, Ordering::AcqRel);
            self.freed.notify_waiters();
        }
    }
}

impl Charge {
    /// Charge exactly `bytes` (the pushed row's size) instead of the estimate: never waits, and
    /// may take the bytes charged past the bound (by design, see the module's documentation).
    pub(crate) fn settle(&mut self, bytes: usize) {
        if bytes > self.bytes {
            self.budget.metrics.bytes.fetch_add(bytes - self.bytes, Ordering::AcqRel);
        } else {
            self.budget.release(self.bytes - bytes);
        }
        self.bytes = bytes;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}
