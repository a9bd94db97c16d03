//! The queue: producers ([`Writer::write`]) and the writer tasks ([`Writers`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use ferrostack_authz::User;
use ferrostack_authz::policy::{AuthorizedTable, Upsert};
use ferrostack_catalog::{Db, Dialect, Value};
use ferrostack_config::Durability;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument as _;

use crate::batch::{Tally, write_batch};
use crate::budget::{Budget, Charge, Refusal};
use crate::metrics::QueueMetrics;
use crate::spill::{self, ReplayReport, SpillError, Spilled};
use crate::{StartError, WriteError, WriteRow, WriterConfig};

/// How a queued row ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Written,
    KeyTaken,
    Failed,
    /// Refused for good by the database: why, and whether the content is at fault.
    Refused(String, bool),
    /// Still queued when the shutdown drain ended.
    ShutDown,
}

/// A queued row: the row, its owner columns, the permit it holds in the queue and, for
/// `durability: sync`, whom to tell.
pub(crate) struct Item<R> {
    pub(crate) row: R,
    pub(crate) owner: (Value, Value),
    done: Option<oneshot::Sender<Outcome>>,
    metrics: Arc<QueueMetrics>,
    /// When it was queued: a batch's span reports how long its oldest row waited.
    pub(crate) queued_at: Instant,
    /// Its size in bytes ([`WriteRow::size`]), for the batch byte bound.
    pub(crate) size: usize,
    /// Its number in the metrics' age tracking.
    seq: u64,
    _permit: OwnedSemaphorePermit,
    /// Its bytes in the queue's byte bound, given back when it is done.
    _charge: Charge,
}

impl<R: WriteRow> std::fmt::Debug for Item<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id only: never the content.
        f.debug_struct("Item").field("id", &self.row.id()).finish_non_exhaustive()
    }
}

impl<R> Item<R> {
    /// `durability: sync` and its request stopped waiting (commit timeout): not worth writing.
    pub(crate) fn abandoned(&self) -> bool {
        self.done.as_ref().is_some_and(oneshot::Sender::is_closed)
    }

    /// Whether a request waits for this row's outcome (`durability: sync`).
    pub(crate) fn awaited(&self) -> bool {
        self.done.is_some()
    }

    pub(crate) fn finish(mut self, outcome: Outcome) {
        if let Some(done) = self.done.take() {
            // The producer may have gone away; nothing to tell then.
            let _ = done.send(outcome);
        }
    }
}

impl<R> Drop for Item<R> {
    fn drop(&mut self) {
        self.metrics.depth.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        self.metrics.untrack(self.seq);
    }
}

/// State shared by the producers and the writer tasks.
pub(crate) struct Shared<R> {
    pub(crate) db: Db,
    pub(crate) upsert: Upsert,
    tx: mpsc::UnboundedSender<Item<R>>,
    rx: Mutex<mpsc::UnboundedReceiver<Item<R>>>,
    permits: Arc<Semaphore>,
    /// The byte bound (`max_queue_bytes`).
    bytes: Arc<Budget>,
    durability: Durability,
    batch_size: usize,
    pub(crate) max_batch_bytes: usize,
    max_row_bytes: usize,
    queue_wait_timeout: Duration,
    commit_timeout: Duration,
    spill_path: Option<PathBuf>,
    pub(crate) metrics: Arc<QueueMetrics>,
    /// Notified whenever a batch finishes (for `flush` and `shutdown`, and for a writer holding
    /// a partial batch while another one writes).
    progress: Notify,
    /// Writers with a batch being written.
    writing: AtomicUsize,
    /// See [`fill_while_another_writes`].
    group_commit_wait: Duration,
    /// Rows sent to the channel and not yet taken by a writer (counted after the send, so it can
    /// be below zero for a moment).
    queued: AtomicIsize,
    /// Rows a writer gathering a partial batch still needs for a full one (`isize::MAX`: none
    /// is gathering); a producer that brings the channel to it wakes that writer (`backlog`).
    need: AtomicIsize,
    backlog: Notify,
}

impl<R> Shared<R> {
    /// Wait until nothing is queued or being written.
    async fn drained(&self) {
        loop {
            let notified = self.progress.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.metrics.queue_depth() == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// The producer side: cheap to clone, every clone shares the queue.
pub struct Writer<R> {
    shared: Arc<Shared<R>>,
}

impl<R> Clone for Writer<R> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<R: WriteRow> std::fmt::Debug for Writer<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("table", &R::TABLE)
            .field("durability", &self.shared.durability)
            .field("batch_size", &self.shared.batch_size)
            .field("metrics", &self.shared.metrics)
            .finish_non_exhaustive()
    }
}

/// The writer tasks; shut them down with [`Writers::shutdown`]. Dropped without it (a start-up
/// that failed later on), the tasks stop at once, leaving queued rows unwritten.
pub struct Writers<R> {
    shared: Arc<Shared<R>>,
    cancel: CancellationToken,
    tasks: TaskTracker,
    handles: Vec<JoinHandle<Vec<Item<R>>>>,
    drain_timeout: Duration,
}

impl<R: WriteRow> std::fmt::Debug for Writers<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writers").field("table", &R::TABLE).field("tasks", &self.tasks.len()).finish_non_exhaustive()
    }
}

impl<R> Drop for Writers<R> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What [`Writers::shutdown`] could not do.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShutdownReport {
    /// Whether everything queued was written (or given up as rejected) within the grace period.
    pub drained: bool,
    /// Ids of the rows still queued or in flight when the grace period ended and not spilled;
    /// each was logged. A row whose batch was being written at that moment may or may not have
    /// been committed.
    pub unwritten: Vec<String>,
    /// Rows saved to the spill file (`durability: async`), to be written at the next start.
    pub spilled: u64,
}

/// A place in the queue, held from before the upstream call until the row is written into it
/// ([`Reservation::write`]); dropped unused, the place frees.
pub struct Reservation<R> {
    shared: Arc<Shared<R>>,
    permit: OwnedSemaphorePermit,
    /// The estimate charged to the byte bound, settled to the row's size when it is written.
    charge: Charge,
}

impl<R: WriteRow> std::fmt::Debug for Reservation<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("table", &R::TABLE).finish_non_exhaustive()
    }
}

/// How a writer is doing, for readiness.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterHealth {
    /// The table.
    pub table: &'static str,
    /// Rows queued or being written.
    pub depth: u64,
    /// Places in the queue (`max_write_queue_size`).
    pub capacity: u64,
    /// Free places (neither queued nor reserved by a request in progress).
    pub available: u64,
    /// Age of the oldest row queued or being written.
    pub oldest_age: Duration,
    /// Time since a batch last finished.
    pub since_progress: Duration,
    /// Bytes held by the queue (rows queued or being written, estimates of places reserved).
    pub bytes: u64,
    /// The byte bound (`max_queue_bytes`).
    pub max_bytes: u64,
    /// No progress for `stall_timeout` with rows waiting longer than that.
    pub stalled: bool,
}

impl WriterHealth {
    /// Every place is taken, or the bytes held reached the byte bound: new requests wait, then
    /// get 503.
    pub fn full(&self) -> bool {
        self.available == 0 || self.bytes >= self.max_bytes
    }
}

impl<R: WriteRow> Writer<R> {
    /// Start writing `R`s into `table` (whose policy and owner columns the upsert uses). Spawns
    /// the writer tasks on the current Tokio runtime: `config.writers` on PostgreSQL, one on
    /// SQLite.
    pub fn start(table: &AuthorizedTable, config: &WriterConfig) -> Result<(Writer<R>, Writers<R>), StartError> {
        if table.table() != R::TABLE {
            return Err(StartError::WrongTable { row_table: R::TABLE, table: table.table().to_owned() });
        }
        let upsert = table.upsert(R::COLUMNS, R::KEY, R::REPLACED)?;
        let db = table.db().clone();
        let writers = match db.dialect() {
            Dialect::Postgres => config.writers.max(1),
            Dialect::Sqlite => 1,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let metrics = Arc::new(QueueMetrics::default());
        let shared = Arc::new(Shared {
            db,
            upsert,
            tx,
            rx: Mutex::new(rx),
            permits: Arc::new(Semaphore::new(config.capacity.clamp(1, Semaphore::MAX_PERMITS))),
            bytes: Arc::new(Budget::new(config.max_queue_bytes, Arc::clone(&metrics))),
            durability: config.durability,
            batch_size: config.batch_size.max(1),
            max_batch_bytes: config.max_batch_bytes.max(1),
            max_row_bytes: config.max_row_bytes.max(1),
            queue_wait_timeout: config.queue_wait_timeout,
            commit_timeout: config.commit_timeout,
            spill_path: config.spill_path.clone(),
            metrics,
            progress: Notify::new(),
            writing: AtomicUsize::new(0),
            group_commit_wait: config.group_commit_wait,
            queued: AtomicIsize::new(0),
            need: AtomicIsize::new(isize::MAX),
            backlog: Notify::new(),
        });
        let capacity = config.capacity.clamp(1, Semaphore::MAX_PERMITS) as u64;
        shared.metrics.capacity.store(capacity, Ordering::Relaxed);
        let stall = u64::try_from(config.stall_timeout.as_micros()).unwrap_or(u64::MAX);
        shared.metrics.stall_timeout_micros.store(stall, Ordering::Relaxed);
        let cancel = CancellationToken::new();
        let tasks = TaskTracker::new();
        let handles = (0..writers)
            .map(|n| {
                let (shared, cancel) = (Arc::clone(&shared), cancel.clone());
                tasks.spawn(async move { run_writer(n, &shared, &cancel).await })
            })
            .collect();
        tasks.close();
        tracing::debug!(
            table = R::TABLE,
            writers,
            queue = config.capacity,
            queue_bytes = config.max_queue_bytes,
            batch_size = config.batch_size,
            durability = %config.durability,
            "batch writer started"
        );
        let writer = Writer { shared: Arc::clone(&shared) };
        Ok((writer, Writers { shared, cancel, tasks, handles, drain_timeout: config.drain_timeout }))
    }

    /// Reserve a place in the queue, waiting at most `queue_wait_timeout` for one to free:
    /// [`WriteError::QueueFull`] then, [`WriteError::ShuttingDown`] once shutdown began. The row's
    /// size is charged to the byte bound when it is written: [`Writer::reserve_sized`] with no
    /// estimate.
    pub async fn reserve(&self) -> Result<Reservation<R>, WriteError> {
        self.reserve_sized(0).await
    }

    /// [`Writer::reserve`] with an estimate of the row's size (its request's part, say), charged
    /// to the byte bound (`max_queue_bytes`) now and settled to the row's size when it is written.
    /// A place is given once a row place is free, the bytes held are below the bound and the
    /// estimate fits; the wait for both together is at most `queue_wait_timeout`.
    pub async fn reserve_sized(&self, estimate: usize) -> Result<Reservation<R>, WriteError> {
        let q = &self.shared;
        let deadline = tokio::time::Instant::now() + q.queue_wait_timeout;
        let shutting_down = || WriteError::ShuttingDown { table: R::TABLE };
        let mut waited = false;
        let permit = match Arc::clone(&q.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(shutting_down()),
            Err(TryAcquireError::NoPermits) => {
                waited = true;
                QueueMetrics::add(&q.metrics.producer_waits, 1);
                tracing::debug!(table = R::TABLE, "write queue full; waiting for room");
                match tokio::time::timeout_at(deadline, Arc::clone(&q.permits).acquire_owned()).await {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(shutting_down()),
                    Err(_) => return Err(self.refuse("rows")),
                }
            }
        };
        if !waited && q.bytes.full() {
            QueueMetrics::add(&q.metrics.producer_waits, 1);
            tracing::debug!(table = R::TABLE, "write queue at its byte bound; waiting for room");
        }
        let charge = match q.bytes.admit(estimate, Some(deadline)).await {
            Ok(charge) => charge,
            Err(Refusal::Closed) => return Err(shutting_down()),
            Err(Refusal::TimedOut) => return Err(self.refuse("bytes")),
        };
        Ok(Reservation { shared: Arc::clone(q), permit, charge })
    }

    /// No room within `queue_wait_timeout`: counted, logged, [`WriteError::QueueFull`].
    fn refuse(&self, bound: &'static str) -> WriteError {
        let q = &self.shared;
        QueueMetrics::add(&q.metrics.queue_full, 1);
        tracing::warn!(
            table = R::TABLE,
            waited_ms = q.queue_wait_timeout.as_millis(),
            depth = q.metrics.queue_depth(),
            bytes = q.metrics.queue_bytes(),
            bound,
            "write queue stayed full; request refused"
        );
        WriteError::QueueFull { table: R::TABLE, waited: q.queue_wait_timeout }
    }

    /// Write `row` owned by `caller` (anonymous: unowned): [`Writer::reserve`], then
    /// [`Reservation::write`].
    pub async fn write(&self, row: R, caller: Option<&User>) -> Result<(), WriteError> {
        self.reserve().await?.write(row, caller).await
    }

    /// How the writer is doing (queue depth and age, progress, stall).
    pub fn health(&self) -> WriterHealth {
        let m = &self.shared.metrics;
        WriterHealth {
            table: R::TABLE,
            depth: m.queue_depth(),
            capacity: m.capacity(),
            available: self.shared.permits.available_permits() as u64,
            oldest_age: m.oldest_age(),
            since_progress: m.since_progress(),
            bytes: m.queue_bytes(),
            max_bytes: m.max_queue_bytes(),
            stalled: m.stalled(),
        }
    }

    /// The spill file, if one is configured.
    pub fn spill_path(&self) -> Option<&Path> {
        self.shared.spill_path.as_deref()
    }

    /// Write back what earlier runs spilled (before serving): claim the spill file, queue its
    /// rows (waiting for room, as long as it takes), wait until every one is written or refused,
    /// then delete it. Lines that are not rows of this table are logged and kept aside in a
    /// `.rejected` file. Without a spill path, nothing to do.
    pub async fn replay(&self) -> Result<ReplayReport, SpillError> {
        let Some(path) = self.shared.spill_path.clone() else {
            return Ok(ReplayReport::default());
        };
        let mut report = ReplayReport::default();
        for file in spill::claim(&path)? {
            let lines = spill::read(&file, R::TABLE)?;
            tracing::info!(table = R::TABLE, file = %file.display(), rows = lines.len(), "replaying spilled rows");
            let mut bad = 0_u64;
            for line in lines {
                let spilled = match line {
                    Ok(s) => s,
                    Err((n, why)) => {
                        tracing::error!(table = R::TABLE, file = %file.display(), line = n, reason = %why, "spilled line cannot be replayed");
                        bad += 1;
                        continue;
                    }
                };
                let Some(row) = R::from_values(spilled.values) else {
                    tracing::error!(table = R::TABLE, id = %spilled.id, "spilled row does not match the table's columns; not replayed");
                    bad += 1;
                    continue;
                };
                let permit = Arc::clone(&self.shared.permits).acquire_owned().await.map_err(|_| spill_closed(&file))?;
                let charge = self.shared.bytes.admit(0, None).await.map_err(|_| spill_closed(&file))?;
                let size = row.size();
                self.shared.enqueue(row, size, spilled.owner, None, permit, charge).map_err(|_| spill_closed(&file))?;
                QueueMetrics::add(&self.shared.metrics.rows_replayed, 1);
                report.rows += 1;
            }
            self.flush().await;
            if bad > 0 {
                let kept = spill::reject(&file)?;
                tracing::error!(table = R::TABLE, lines = bad, file = %kept.display(), "spilled lines not replayed; kept aside");
            } else {
                spill::remove(&file)?;
            }
            report.bad_lines += bad;
            report.files += 1;
        }
        if report.files > 0 {
            tracing::info!(table = R::TABLE, rows = report.rows, files = report.files, "spilled rows replayed");
        }
        Ok(report)
    }

    /// Wait until every row queued so far is written or given up.
    pub async fn flush(&self) {
        self.shared.drained().await;
    }

    /// The counters.
    pub fn metrics(&self) -> &QueueMetrics {
        &self.shared.metrics
    }

    /// The counters, shared: for readers that outlive a borrow (metric callbacks).
    pub fn metrics_handle(&self) -> Arc<QueueMetrics> {
        Arc::clone(&self.shared.metrics)
    }
}

impl<R: WriteRow> Writers<R> {
    /// The grace period from the config.
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// The counters.
    pub fn metrics(&self) -> &QueueMetrics {
        &self.shared.metrics
    }

    /// The writer tasks, tracked: `tasks().wait()` returns once all have ended.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// Stop accepting rows ([`Writer::write`] fails with [`WriteError::ShuttingDown`]; waiting
    /// producers too), write what is queued within `grace`, stop the writers. Rows left when
    /// the grace period ends are logged by id and reported.
    pub async fn shutdown(mut self, grace: Duration) -> ShutdownReport {
        let shared = Arc::clone(&self.shared);
        shared.permits.close();
        shared.bytes.close();
        let queued = shared.metrics.queue_depth();
        if queued > 0 {
            tracing::info!(table = R::TABLE, rows = queued, grace_ms = grace.as_millis(), "draining the write queue");
        }
        let drained = tokio::time::timeout(grace, shared.drained()).await.is_ok();
        self.cancel.cancel();
        let mut left = Vec::new();
        for handle in std::mem::take(&mut self.handles) {
            match handle.await {
                Ok(items) => left.extend(items),
                Err(e) => tracing::error!(table = R::TABLE, error = %e, "a writer task ended abnormally"),
            }
        }
        {
            let mut rx = shared.rx.lock().await;
            rx.close();
            while let Ok(item) = rx.try_recv() {
                shared.queued.fetch_sub(1, Ordering::AcqRel);
                left.push(item);
            }
        }
        // `durability: async` rows were acknowledged: save them for the next start. `sync` ones
        // were not (their requests are told), so they are not kept.
        let (keep, lose): (Vec<Item<R>>, Vec<Item<R>>) =
            left.into_iter().partition(|item| !item.awaited() && shared.spill_path.is_some());
        let mut spilled = 0_u64;
        let mut unwritten = Vec::with_capacity(lose.len());
        if let Some(path) = shared.spill_path.as_deref()
            && !keep.is_empty()
        {
            let rows: Vec<Spilled> = keep
                .iter()
                .map(|i| Spilled { id: i.row.id(), owner: i.owner.clone(), values: i.row.values() })
                .collect();
            match spill::append(path, R::TABLE, &rows) {
                Ok(()) => {
                    spilled = rows.len() as u64;
                    QueueMetrics::add(&shared.metrics.rows_spilled, spilled);
                    tracing::warn!(
                        table = R::TABLE,
                        rows = spilled,
                        file = %path.display(),
                        "rows not written within the drain were spilled; the next start writes them"
                    );
                    for item in keep {
                        tracing::info!(table = R::TABLE, id = %item.row.id(), "row spilled");
                        item.finish(Outcome::Failed);
                    }
                }
                Err(e) => {
                    tracing::error!(table = R::TABLE, error = %e, rows = rows.len(), "cannot spill the rows left at shutdown");
                    for item in keep {
                        let id = item.row.id();
                        tracing::error!(table = R::TABLE, id = %id, "row not written: the shutdown grace period ended and it could not be spilled");
                        QueueMetrics::add(&shared.metrics.rows_failed, 1);
                        unwritten.push(id);
                        item.finish(Outcome::Failed);
                    }
                }
            }
        }
        for item in lose {
            let id = item.row.id();
            tracing::error!(table = R::TABLE, id = %id, "row not written: the shutdown grace period ended");
            QueueMetrics::add(&shared.metrics.rows_failed, 1);
            unwritten.push(id);
            item.finish(Outcome::ShutDown);
        }
        if !unwritten.is_empty() {
            tracing::error!(table = R::TABLE, rows = unwritten.len(), "writer shut down with unwritten rows");
        }
        ShutdownReport { drained, unwritten, spilled }
    }
}

fn spill_closed(file: &Path) -> SpillError {
    SpillError::Io {
        path: file.to_path_buf(),
        source: std::io::Error::other("the writer shut down during the replay; the file is replayed at the next start"),
    }
}

impl<R: WriteRow> Reservation<R> {
    /// Whether [`Reservation::write`] waits for the commit (`durability: sync`). When it does not,
    /// the row is queued by the first poll of `write`, which then completes: no task is needed
    /// to make sure it is stored.
    pub fn waits_for_commit(&self) -> bool {
        matches!(self.shared.durability, Durability::Sync)
    }

    /// Write `row` owned by `caller` (anonymous: unowned) into the reserved place. A row over
    /// `max_row_bytes` is refused here ([`WriteError::TooLarge`]). `durability: async` returns
    /// once it is queued; `sync` once its batch committed, at most `commit_timeout` later.
    pub async fn write(self, row: R, caller: Option<&User>) -> Result<(), WriteError> {
        let Reservation { shared: q, permit, charge } = self;
        let size = row.size();
        if size > q.max_row_bytes {
            QueueMetrics::add(&q.metrics.rows_too_large, 1);
            tracing::warn!(table = R::TABLE, id = %row.id(), size, limit = q.max_row_bytes, "row over max_row_bytes refused");
            return Err(WriteError::TooLarge { table: R::TABLE, id: row.id(), size, limit: q.max_row_bytes });
        }
        let owner = AuthorizedTable::owner_values(caller);
        let (done, wait) = match q.durability {
            Durability::Sync => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            Durability::Async => (None, None),
        };
        let id = wait.is_some().then(|| row.id());
        q.enqueue(row, size, owner, done, permit, charge).map_err(|()| WriteError::ShuttingDown { table: R::TABLE })?;
        let (Some(wait), Some(id)) = (wait, id) else {
            return Ok(());
        };
        match tokio::time::timeout(q.commit_timeout, wait).await {
            Ok(Ok(Outcome::Written)) => Ok(()),
            Ok(Ok(Outcome::KeyTaken)) => Err(WriteError::KeyTaken { table: R::TABLE, id }),
            Ok(Ok(Outcome::Refused(reason, content))) => {
                Err(WriteError::Refused { table: R::TABLE, id, reason, content })
            }
            Ok(Ok(Outcome::ShutDown)) => Err(WriteError::ShuttingDown { table: R::TABLE }),
            Ok(Ok(Outcome::Failed) | Err(_)) => Err(WriteError::Failed { table: R::TABLE, id }),
            Err(_) => {
                // Dropping the receiver marks the row abandoned: skipped unless its batch started.
                QueueMetrics::add(&q.metrics.commit_timeouts, 1);
                tracing::warn!(table = R::TABLE, id = %id, waited_ms = q.commit_timeout.as_millis(), "row not committed in time; request answered 503");
                Err(WriteError::CommitTimeout { table: R::TABLE, id, waited: q.commit_timeout })
            }
        }
    }
}

impl<R: WriteRow> Shared<R> {
    /// Queue `row` in the place `permit` holds, its size charged to the byte bound through
    /// `charge` (settled, never waiting). `Err` once the queue is closed (shutdown).
    fn enqueue(
        &self,
        row: R,
        size: usize,
        owner: (Value, Value),
        done: Option<oneshot::Sender<Outcome>>,
        permit: OwnedSemaphorePermit,
        mut charge: Charge,
    ) -> Result<(), ()> {
        charge.settle(size);
        let queued_at = Instant::now();
        QueueMetrics::add(&self.metrics.depth, 1);
        let seq = self.metrics.track(queued_at);
        let item = Item {
            row,
            owner,
            done,
            metrics: Arc::clone(&self.metrics),
            queued_at,
            size,
            seq,
            _permit: permit,
            _charge: charge,
        };
        self.tx.send(item).map_err(drop)?;
        // Counted once it can be received: a writer that sees the count reach what it needs
        // finds the rows in the channel.
        let queued = self.queued.fetch_add(1, Ordering::AcqRel) + 1;
        if queued >= self.need.load(Ordering::Acquire) {
            self.backlog.notify_one();
        }
        Ok(())
    }
}

/// One writer: take what is queued (up to `batch_size`), write it, repeat. Returns the rows it
/// held when cancelled.
async fn run_writer<R: WriteRow>(n: usize, shared: &Shared<R>, cancel: &CancellationToken) -> Vec<Item<R>> {
    // Rows taken from the queue that did not fit the last batch's byte bound: next batch's first.
    let mut carried: std::collections::VecDeque<Item<R>> = std::collections::VecDeque::new();
    loop {
        let mut batch = Vec::with_capacity(shared.batch_size);
        if carried.is_empty() {
            let mut rx = tokio::select! {
                biased;
                () = cancel.cancelled() => return batch,
                rx = shared.rx.lock() => rx,
            };
            let received = tokio::select! {
                biased;
                () = cancel.cancelled() => return batch,
                received = rx.recv_many(&mut batch, shared.batch_size) => received,
            };
            if received == 0 {
                return batch;
            }
            shared.queued.fetch_sub(isize::try_from(received).unwrap_or(isize::MAX), Ordering::AcqRel);
            if !fill_while_another_writes(shared, &mut *rx, &mut batch, cancel).await {
                return batch;
            }
            carried.extend(batch.drain(..));
        }
        // Up to `batch_size` rows and `max_batch_bytes` bytes, at least one row.
        let mut bytes = 0_usize;
        while let Some(item) = carried.front() {
            if batch.len() >= shared.batch_size
                || (!batch.is_empty() && bytes.saturating_add(item.size) > shared.max_batch_bytes)
            {
                break;
            }
            let Some(item) = carried.pop_front() else { break };
            if item.abandoned() {
                // Its request stopped waiting and was answered 503: not written.
                tracing::debug!(table = R::TABLE, id = %item.row.id(), "row abandoned by its request; skipped");
                QueueMetrics::add(&shared.metrics.rows_abandoned, 1);
                item.finish(Outcome::Failed);
                continue;
            }
            bytes = bytes.saturating_add(item.size);
            batch.push(item);
        }
        if batch.is_empty() {
            shared.progress.notify_waiters();
            continue;
        }
        tracing::trace!(table = R::TABLE, writer = n, rows = batch.len(), "batch taken");
        let waited = batch.iter().map(|i| i.queued_at.elapsed()).max().unwrap_or_default();
        // A root span per batch (rows of many requests): size, wait, and how it ended.
        let span = tracing::info_span!(
            "writer.write_batch",
            otel.name = %format!("{} write_batch", R::TABLE),
            otel.status_code = tracing::field::Empty,
            db.collection.name = R::TABLE,
            batch.size = i64::try_from(batch.len()).unwrap_or(i64::MAX),
            batch.bytes = tracing::field::Empty,
            batch.waited_ms = i64::try_from(waited.as_millis()).unwrap_or(i64::MAX),
            batch.outcome = tracing::field::Empty,
            batch.retries = tracing::field::Empty,
            rows.written = tracing::field::Empty,
            rows.failed = tracing::field::Empty,
            writer = i64::try_from(n).unwrap_or(i64::MAX),
        );
        let tally = Tally::default();
        span.record("batch.bytes", i64::try_from(bytes).unwrap_or(i64::MAX));
        shared.writing.fetch_add(1, Ordering::AcqRel);
        let result = write_batch(shared, batch, cancel, &tally).instrument(span.clone()).await;
        shared.writing.fetch_sub(1, Ordering::AcqRel);
        tally.record(&span, result.is_err());
        shared.progress.notify_waiters();
        if let Err(mut unfinished) = result {
            unfinished.extend(carried);
            return unfinished;
        }
    }
}

/// Group commit: while another writer has a batch in flight, a partial batch keeps taking rows
/// until it is full or that write ends, instead of going to the database beside it. Each batch
/// is a round trip and a commit (a WAL flush) on the database, whose cost per batch is far
/// above its cost per row: with four writers each taking whatever was queued, batches of ~5
/// rows cost PostgreSQL twice the CPU per stored row of batches of ~100 (docs/benchmarks.md).
/// A row that finds no write in flight goes at once, so one request at a time waits no longer
/// than before; a second writer joins in parallel when a full batch is waiting, or after
/// `group_commit_wait_ms` (a write held up, by a row lock say, does not hold the others). `false`
/// when cancelled (the rows taken stay in `batch`); a closed queue writes what was taken.
async fn fill_while_another_writes<R>(
    shared: &Shared<R>,
    rx: &mut mpsc::UnboundedReceiver<Item<R>>,
    batch: &mut Vec<Item<R>>,
    cancel: &CancellationToken,
) -> bool {
    if shared.group_commit_wait.is_zero() {
        return true;
    }
    let deadline = tokio::time::sleep(shared.group_commit_wait);
    tokio::pin!(deadline);
    let filled = loop {
        // Enabled before the check, so a write that ends in between is not missed.
        let finished = shared.progress.notified();
        tokio::pin!(finished);
        finished.as_mut().enable();
        if batch.len() >= shared.batch_size || shared.writing.load(Ordering::Acquire) == 0 {
            break true;
        }
        // What is already in the channel, without waiting (and without a wake-up per row).
        let mut closed = false;
        while batch.len() < shared.batch_size {
            match rx.try_recv() {
                Ok(item) => {
                    shared.queued.fetch_sub(1, Ordering::AcqRel);
                    batch.push(item);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed || batch.len() >= shared.batch_size {
            break true;
        }
        // Woken by a producer once a full batch waits, not by every row.
        let backlog = shared.backlog.notified();
        tokio::pin!(backlog);
        backlog.as_mut().enable();
        let need = isize::try_from(shared.batch_size - batch.len()).unwrap_or(isize::MAX);
        shared.need.store(need, Ordering::Release);
        if shared.queued.load(Ordering::Acquire) >= need {
            continue;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => break false,
            () = &mut finished => break true,
            () = &mut deadline => break true,
            () = &mut backlog => {}
        }
    };
    shared.need.store(isize::MAX, Ordering::Release);
    // Whatever else came in meanwhile goes too (up to a full batch).
    while filled && batch.len() < shared.batch_size {
        let Ok(item) = rx.try_recv() else { break };
        shared.queued.fetch_sub(1, Ordering::AcqRel);
        batch.push(item);
    }
    filled
}
