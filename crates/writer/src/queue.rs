//! The queue: producers ([`Writer::write`]) and the writer tasks ([`Writers`]).

use std::sync::Arc;
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
use crate::metrics::QueueMetrics;
use crate::{StartError, WriteError, WriteRow, WriterConfig};

/// How a queued row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Written,
    KeyTaken,
    Failed,
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
    _permit: OwnedSemaphorePermit,
}

impl<R: WriteRow> std::fmt::Debug for Item<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id only: never the content.
        f.debug_struct("Item").field("id", &self.row.id()).finish_non_exhaustive()
    }
}

impl<R> Item<R> {
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
    }
}

/// State shared by the producers and the writer tasks.
pub(crate) struct Shared<R> {
    pub(crate) db: Db,
    pub(crate) upsert: Upsert,
    tx: mpsc::UnboundedSender<Item<R>>,
    rx: Mutex<mpsc::UnboundedReceiver<Item<R>>>,
    permits: Arc<Semaphore>,
    durability: Durability,
    batch_size: usize,
    pub(crate) metrics: Arc<QueueMetrics>,
    /// Notified whenever a batch finishes (for `flush` and `shutdown`).
    progress: Notify,
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
    /// Ids of the rows still queued or in flight when the grace period ended; each was logged.
    /// A row whose batch was being written at that moment may or may not have been committed.
    pub unwritten: Vec<String>,
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
        let shared = Arc::new(Shared {
            db,
            upsert,
            tx,
            rx: Mutex::new(rx),
            permits: Arc::new(Semaphore::new(config.capacity.clamp(1, Semaphore::MAX_PERMITS))),
            durability: config.durability,
            batch_size: config.batch_size.max(1),
            metrics: Arc::new(QueueMetrics::default()),
            progress: Notify::new(),
        });
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
            batch_size = config.batch_size,
            durability = %config.durability,
            "batch writer started"
        );
        let writer = Writer { shared: Arc::clone(&shared) };
        Ok((writer, Writers { shared, cancel, tasks, handles, drain_timeout: config.drain_timeout }))
    }

    /// Write `row` owned by `caller` (anonymous: unowned). Waits while the queue is full.
    /// `durability: async` returns once the row is queued; `sync` once its batch committed.
    pub async fn write(&self, row: R, caller: Option<&User>) -> Result<(), WriteError> {
        let q = &self.shared;
        let shutting_down = || WriteError::ShuttingDown { table: R::TABLE };
        let permit = match Arc::clone(&q.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(shutting_down()),
            Err(TryAcquireError::NoPermits) => {
                QueueMetrics::add(&q.metrics.producer_waits, 1);
                tracing::debug!(table = R::TABLE, id = %row.id(), "write queue full; waiting for room");
                Arc::clone(&q.permits).acquire_owned().await.map_err(|_| shutting_down())?
            }
        };
        let owner = AuthorizedTable::owner_values(caller);
        let (done, wait) = match q.durability {
            Durability::Sync => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            Durability::Async => (None, None),
        };
        let id = wait.is_some().then(|| row.id());
        QueueMetrics::add(&q.metrics.depth, 1);
        let item =
            Item { row, owner, done, metrics: Arc::clone(&q.metrics), queued_at: Instant::now(), _permit: permit };
        q.tx.send(item).map_err(|_| shutting_down())?;
        let (Some(wait), Some(id)) = (wait, id) else {
            return Ok(());
        };
        match wait.await {
            Ok(Outcome::Written) => Ok(()),
            Ok(Outcome::KeyTaken) => Err(WriteError::KeyTaken { table: R::TABLE, id }),
            Ok(Outcome::Failed) | Err(_) => Err(WriteError::Failed { table: R::TABLE, id }),
        }
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
                left.push(item);
            }
        }
        let mut unwritten = Vec::with_capacity(left.len());
        for item in left {
            let id = item.row.id();
            tracing::error!(table = R::TABLE, id = %id, "row not written: the shutdown grace period ended");
            QueueMetrics::add(&shared.metrics.rows_failed, 1);
            unwritten.push(id);
            item.finish(Outcome::Failed);
        }
        if !unwritten.is_empty() {
            tracing::error!(table = R::TABLE, rows = unwritten.len(), "writer shut down with unwritten rows");
        }
        ShutdownReport { drained, unwritten }
    }
}

/// One writer: take what is queued (up to `batch_size`), write it, repeat. Returns the rows it
/// held when cancelled.
async fn run_writer<R: WriteRow>(n: usize, shared: &Shared<R>, cancel: &CancellationToken) -> Vec<Item<R>> {
    loop {
        let mut batch = Vec::with_capacity(shared.batch_size);
        {
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
            batch.waited_ms = i64::try_from(waited.as_millis()).unwrap_or(i64::MAX),
            batch.outcome = tracing::field::Empty,
            batch.retries = tracing::field::Empty,
            rows.written = tracing::field::Empty,
            rows.failed = tracing::field::Empty,
            writer = i64::try_from(n).unwrap_or(i64::MAX),
        );
        let tally = Tally::default();
        let result = write_batch(shared, batch, cancel, &tally).instrument(span.clone()).await;
        tally.record(&span, result.is_err());
        shared.progress.notify_waiters();
        if let Err(unfinished) = result {
            return unfinished;
        }
    }
}
