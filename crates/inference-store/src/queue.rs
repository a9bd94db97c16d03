//! The write path: a bounded queue drained by batch writers.
//!
//! - `store` takes a permit of a semaphore sized `max_write_queue_size` (waiting when none is
//!   free: backpressure, never a drop), stamps the caller's owner columns and queues the row.
//! - Each writer takes what is queued, up to `batch_size` rows, and writes it as one multi-row
//!   `INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE owner = excluded.owner` in one transaction.
//!   A row keeps its permit until its batch committed (or it was given up), so queued and
//!   in-flight rows both count against the bound.
//! - Transient errors are retried with capped, jittered exponential backoff for as long as the
//!   store runs. A batch the database rejects for good is bisected until the rows at fault are
//!   isolated; they are logged by id (never their content) and dropped, their batch-mates are
//!   written.
//! - Duplicate ids: the same owner's row is replaced; another owner's row is left untouched and
//!   the row is logged by id. Repeated ids inside one batch go to successive statements of the
//!   same transaction, in queue order.
//! - `durability: sync`: `store` returns when the row's batch committed (group commit).

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use ferrostack_authz::{AuthorizedTable, StoreError, User};
use ferrostack_catalog::sql::dialect::{self, quote_ident};
use ferrostack_catalog::sql::{MAX_BINDS_POSTGRES, MAX_BINDS_SQLITE};
use ferrostack_catalog::{Db, Dialect, Sql, Value};
use ferrostack_config::{AccessRule, Durability, InferenceStoreConfig};
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore, TryAcquireError, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::record::{COLUMNS, StoredCompletion};
use crate::{Error, InferenceStore, TABLE};

/// First retry delay; doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Longest retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(5);
/// Columns written per row: the store's and the two owner columns.
const COLUMNS_PER_ROW: usize = COLUMNS.len() + 2;
/// Columns a duplicate id of the same owner replaces.
const REPLACED: [&str; 6] = ["created", "model", "choices", "input_messages", "metadata", "upstream_id"];

/// Counters of the write queue, for telemetry. All are totals since start, except the queue
/// depth and the last batch's size and latency.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    depth: AtomicU64,
    rows_written: AtomicU64,
    rows_retried: AtomicU64,
    rows_failed: AtomicU64,
    rows_id_taken: AtomicU64,
    batches_written: AtomicU64,
    batch_retries: AtomicU64,
    last_batch_size: AtomicU64,
    last_batch_micros: AtomicU64,
    producer_waits: AtomicU64,
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
    /// Rows not written because their id belongs to another owner's row.
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
}

/// How a queued row ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Written,
    IdTaken,
    Failed,
}

/// A queued row: the record, its owner columns, the permit it holds in the queue and, for
/// `durability: sync`, whom to tell.
struct Item {
    record: StoredCompletion,
    principal: Value,
    attributes: Value,
    done: Option<oneshot::Sender<Outcome>>,
    metrics: Arc<QueueMetrics>,
    /// When it was queued: a batch's span reports how long its oldest row waited.
    queued_at: Instant,
    _permit: OwnedSemaphorePermit,
}

impl std::fmt::Debug for Item {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The id only: never the content.
        f.debug_struct("Item").field("id", &self.record.id).finish_non_exhaustive()
    }
}

impl Item {
    fn finish(mut self, outcome: Outcome) {
        if let Some(done) = self.done.take() {
            // The producer may have gone away; nothing to tell then.
            let _ = done.send(outcome);
        }
    }
}

impl Drop for Item {
    fn drop(&mut self) {
        self.metrics.depth.fetch_sub(1, Ordering::Relaxed);
    }
}

/// State shared by the store handles and the writers.
pub(crate) struct Shared {
    db: Db,
    tx: mpsc::UnboundedSender<Item>,
    rx: Mutex<mpsc::UnboundedReceiver<Item>>,
    permits: Arc<Semaphore>,
    durability: Durability,
    batch_size: usize,
    metrics: Arc<QueueMetrics>,
    /// Notified whenever a batch finishes (for `flush` and `shutdown`).
    progress: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("durability", &self.durability)
            .field("batch_size", &self.batch_size)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl Shared {
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

/// The writer tasks of an [`InferenceStore`]; shut them down with [`Writers::shutdown`].
#[derive(Debug)]
pub struct Writers {
    shared: Arc<Shared>,
    cancel: CancellationToken,
    handles: Vec<JoinHandle<Vec<Item>>>,
    drain_timeout: Duration,
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

impl InferenceStore {
    /// Start the store on `db` with the store reference's queue settings and the access policy
    /// (`server.auth.access_policy`; empty: the default policy). Spawns the writers on the
    /// current Tokio runtime: `num_writers` on PostgreSQL, one on SQLite (which runs one write
    /// transaction at a time anyway). The table must exist (migrations).
    pub fn start(
        db: Db,
        config: &InferenceStoreConfig,
        policy: impl Into<Arc<[AccessRule]>>,
    ) -> Result<(InferenceStore, Writers), Error> {
        let table = AuthorizedTable::new(db.clone(), TABLE, "id", "created", policy)
            .map_err(|e| Error::Store(StoreError::Compile(e)))?;
        let writers = match db.dialect() {
            Dialect::Postgres => config.num_writers.max(1),
            Dialect::Sqlite => 1,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            db,
            tx,
            rx: Mutex::new(rx),
            permits: Arc::new(Semaphore::new(config.max_write_queue_size.clamp(1, Semaphore::MAX_PERMITS))),
            durability: config.durability,
            batch_size: config.batch_size.max(1),
            metrics: Arc::new(QueueMetrics::default()),
            progress: Notify::new(),
        });
        let cancel = CancellationToken::new();
        let handles = (0..writers)
            .map(|n| {
                let (shared, cancel) = (Arc::clone(&shared), cancel.clone());
                tokio::spawn(async move { run_writer(n, &shared, &cancel).await })
            })
            .collect();
        tracing::debug!(
            writers,
            queue = config.max_write_queue_size,
            batch_size = config.batch_size,
            durability = %config.durability,
            "inference store write queue started"
        );
        let store = InferenceStore { table, queue: Arc::clone(&shared) };
        let writers =
            Writers { shared, cancel, handles, drain_timeout: Duration::from_secs(config.drain_timeout_seconds) };
        Ok((store, writers))
    }

    /// Store a completion owned by `caller` (anonymous: unowned). Waits while the queue is full.
    /// `durability: async` returns once the row is queued; `sync` once its batch committed, with
    /// [`Error::WriteFailed`] when the database rejected it and [`Error::IdTaken`] when its id
    /// belongs to another owner. [`Error::ShuttingDown`] once shutdown began.
    pub async fn store(&self, record: StoredCompletion, caller: Option<&User>) -> Result<(), Error> {
        record.check()?;
        let q = &self.queue;
        let permit = match Arc::clone(&q.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(TryAcquireError::Closed) => return Err(Error::ShuttingDown),
            Err(TryAcquireError::NoPermits) => {
                q.metrics.producer_waits.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(id = %record.id, "inference store write queue full; waiting for room");
                Arc::clone(&q.permits).acquire_owned().await.map_err(|_| Error::ShuttingDown)?
            }
        };
        let (principal, attributes) = AuthorizedTable::owner_values(caller);
        let (done, wait) = match q.durability {
            Durability::Sync => {
                let (tx, rx) = oneshot::channel();
                (Some(tx), Some(rx))
            }
            Durability::Async => (None, None),
        };
        let id = wait.is_some().then(|| record.id.clone());
        q.metrics.depth.fetch_add(1, Ordering::Relaxed);
        let item = Item {
            record,
            principal,
            attributes,
            done,
            metrics: Arc::clone(&q.metrics),
            queued_at: Instant::now(),
            _permit: permit,
        };
        q.tx.send(item).map_err(|_| Error::ShuttingDown)?;
        let (Some(wait), Some(id)) = (wait, id) else {
            return Ok(());
        };
        match wait.await {
            Ok(Outcome::Written) => Ok(()),
            Ok(Outcome::IdTaken) => Err(Error::IdTaken { id }),
            Ok(Outcome::Failed) | Err(_) => Err(Error::WriteFailed { id }),
        }
    }

    /// Wait until every row queued so far is written or given up.
    pub async fn flush(&self) {
        self.queue.drained().await;
    }

    /// The write queue's counters.
    pub fn metrics(&self) -> &QueueMetrics {
        &self.queue.metrics
    }

    /// The write queue's counters, shared: for readers that outlive a borrow (metric callbacks).
    pub fn metrics_handle(&self) -> Arc<QueueMetrics> {
        Arc::clone(&self.queue.metrics)
    }
}

impl Writers {
    /// The grace period from the config (`drain_timeout_seconds`).
    pub fn drain_timeout(&self) -> Duration {
        self.drain_timeout
    }

    /// The write queue's counters.
    pub fn metrics(&self) -> &QueueMetrics {
        &self.shared.metrics
    }

    /// Stop accepting rows ([`InferenceStore::store`] fails with [`Error::ShuttingDown`]; waiting
    /// producers too), write what is queued within `grace`, stop the writers. Rows left when
    /// the grace period ends are logged by id and reported.
    pub async fn shutdown(self, grace: Duration) -> ShutdownReport {
        let shared = self.shared;
        shared.permits.close();
        let queued = shared.metrics.queue_depth();
        if queued > 0 {
            tracing::info!(rows = queued, grace_ms = grace.as_millis(), "draining the inference store write queue");
        }
        let drained = tokio::time::timeout(grace, shared.drained()).await.is_ok();
        self.cancel.cancel();
        let mut left = Vec::new();
        for handle in self.handles {
            match handle.await {
                Ok(items) => left.extend(items),
                Err(e) => tracing::error!(error = %e, "an inference store writer ended abnormally"),
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
            tracing::error!(id = %item.record.id, "chat completion not written: the shutdown grace period ended");
            shared.metrics.rows_failed.fetch_add(1, Ordering::Relaxed);
            unwritten.push(item.record.id.clone());
            item.finish(Outcome::Failed);
        }
        if !unwritten.is_empty() {
            tracing::error!(rows = unwritten.len(), "inference store shut down with unwritten chat completions");
        }
        ShutdownReport { drained, unwritten }
    }
}

/// One writer: take what is queued (up to `batch_size`), write it, repeat. Returns the rows it
/// held when cancelled.
async fn run_writer(n: usize, shared: &Shared, cancel: &CancellationToken) -> Vec<Item> {
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
        tracing::trace!(writer = n, rows = batch.len(), "inference store batch taken");
        let waited = batch.iter().map(|i| i.queued_at.elapsed()).max().unwrap_or_default();
        // A root span per batch (rows of many requests): size, wait, and how it ended.
        let span = tracing::info_span!(
            "inference_store.write_batch",
            otel.name = "inference_store write_batch",
            otel.status_code = tracing::field::Empty,
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

type BatchFuture<'a> = Pin<Box<dyn Future<Output = Result<(), Vec<Item>>> + Send + 'a>>;

/// What became of one batch's rows, for its span.
#[derive(Debug, Default)]
struct Tally {
    written: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

impl Tally {
    fn record(&self, span: &tracing::Span, cancelled: bool) {
        // Signed: OpenTelemetry integers are i64 (unsigned ones would be exported as text).
        let count = |n: &AtomicU64| i64::try_from(n.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        let (written, failed) = (count(&self.written), count(&self.failed));
        let outcome = match (cancelled, written, failed) {
            (true, _, _) => "cancelled",
            (false, _, 0) => "written",
            (false, 0, _) => "failed",
            _ => "partial",
        };
        span.record("batch.outcome", outcome);
        span.record("batch.retries", count(&self.retries));
        span.record("rows.written", written);
        span.record("rows.failed", failed);
        if outcome != "written" {
            span.record("otel.status_code", "ERROR");
        }
    }
}

/// Write `items` as one transaction: retry transient errors, bisect permanent ones. `Err` holds
/// the rows not finished when cancelled.
fn write_batch<'a>(
    shared: &'a Shared,
    items: Vec<Item>,
    cancel: &'a CancellationToken,
    tally: &'a Tally,
) -> BatchFuture<'a> {
    Box::pin(async move {
        let mut attempt: u32 = 0;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                result = insert(shared, &items) => Some(result),
            };
            let Some(result) = result else {
                return Err(items);
            };
            let m = &shared.metrics;
            match result {
                Ok(taken) => {
                    let rows = items.len() as u64;
                    m.last_batch_micros
                        .store(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
                    m.last_batch_size.store(rows, Ordering::Relaxed);
                    m.batches_written.fetch_add(1, Ordering::Relaxed);
                    for (i, item) in items.into_iter().enumerate() {
                        if taken.get(i).copied().unwrap_or(false) {
                            tracing::warn!(
                                id = %item.record.id,
                                "chat completion id belongs to another owner; the stored row was left unchanged"
                            );
                            m.rows_id_taken.fetch_add(1, Ordering::Relaxed);
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            item.finish(Outcome::IdTaken);
                        } else {
                            m.rows_written.fetch_add(1, Ordering::Relaxed);
                            tally.written.fetch_add(1, Ordering::Relaxed);
                            item.finish(Outcome::Written);
                        }
                    }
                    return Ok(());
                }
                Err(e) if retryable(&e) => {
                    m.batch_retries.fetch_add(1, Ordering::Relaxed);
                    tally.retries.fetch_add(1, Ordering::Relaxed);
                    m.rows_retried.fetch_add(items.len() as u64, Ordering::Relaxed);
                    let delay = backoff(attempt);
                    tracing::warn!(
                        rows = items.len(),
                        attempt = attempt + 1,
                        retry_in_ms = delay.as_millis(),
                        error = %e,
                        "writing chat completions failed; retrying"
                    );
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        biased;
                        () = cancel.cancelled() => return Err(items),
                        () = tokio::time::sleep(delay) => {}
                    }
                }
                Err(e) if items.len() == 1 || not_row_specific(&e) => {
                    for item in items {
                        tracing::error!(id = %item.record.id, error = %e, "chat completion rejected by the database; dropped");
                        m.rows_failed.fetch_add(1, Ordering::Relaxed);
                        tally.failed.fetch_add(1, Ordering::Relaxed);
                        item.finish(Outcome::Failed);
                    }
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(rows = items.len(), error = %e, "batch rejected; splitting it to find the rows at fault");
                    let mut left = items;
                    let right = left.split_off(left.len() / 2);
                    if let Err(mut unfinished) = write_batch(shared, left, cancel, tally).await {
                        unfinished.extend(right);
                        return Err(unfinished);
                    }
                    return write_batch(shared, right, cancel, tally).await;
                }
            }
        }
    })
}

/// Worth trying again later: the database is unreachable, busy or asked for a retry. Any failure
/// to connect counts (a database refusing connections for a while is not the rows' fault).
fn retryable(e: &ferrostack_catalog::Error) -> bool {
    use ferrostack_catalog::Error as E;
    e.is_transient() || matches!(e, E::Connect { .. } | E::PoolTimeout { .. })
}

/// Errors that no row causes on its own: bisecting would only repeat them.
fn not_row_specific(e: &ferrostack_catalog::Error) -> bool {
    use ferrostack_catalog::Error as E;
    matches!(e, E::Closed { .. } | E::Statement { .. } | E::UnknownBackend { .. } | E::WrongFamily { .. })
        // Syntax errors, undefined tables or columns, missing privileges (class 42).
        || e.sql_state().is_some_and(|s| s.starts_with("42"))
}

/// Delay before retry `attempt` (0-based): exponential from [`BACKOFF_BASE`], capped at
/// [`BACKOFF_CAP`], with the upper half jittered so writers do not retry in lockstep.
fn backoff(attempt: u32) -> Duration {
    let exp = BACKOFF_BASE.saturating_mul(1_u32.checked_shl(attempt.min(16)).unwrap_or(u32::MAX));
    let ceiling = exp.min(BACKOFF_CAP);
    let half = ceiling / 2;
    let random = RandomState::new().hash_one(attempt);
    let jitter_micros = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
    half + Duration::from_micros(random % jitter_micros)
}

/// Insert `items` in one transaction. Returns, per item, whether it was not written because its
/// id belongs to another owner's row.
async fn insert(shared: &Shared, items: &[Item]) -> Result<Vec<bool>, ferrostack_catalog::Error> {
    // Successive occurrences of an id go to successive statements: one statement may not
    // upsert the same row twice (PostgreSQL refuses it).
    let mut occurrences: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    let mut rounds: Vec<Vec<&Item>> = Vec::new();
    for item in items {
        let n = occurrences.entry(item.record.id.as_str()).and_modify(|n| *n += 1).or_insert(0);
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        if let Some(round) = rounds.get_mut(*n) {
            round.push(item);
        }
    }
    let max_rows = match shared.db.dialect() {
        Dialect::Postgres => MAX_BINDS_POSTGRES,
        Dialect::Sqlite => MAX_BINDS_SQLITE,
    } / COLUMNS_PER_ROW;
    let statements: Vec<Sql> = rounds.iter().flat_map(|round| round.chunks(max_rows)).map(insert_sql).collect();
    let counts = shared.db.transaction(statements).await?;
    let affected: u64 = counts.iter().sum();
    if affected >= items.len() as u64 {
        return Ok(Vec::new());
    }
    // Some rows met another owner's row. Which ones: compare the stored owners.
    let ids: Vec<&str> = occurrences.keys().copied().collect();
    let mut owners: HashMap<String, String> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(max_rows) {
        let sql = Sql::new()
            .push("SELECT id, owner_principal FROM ")
            .push_ident(TABLE)
            .push(" WHERE id IN (")
            .push_bind_list(chunk.iter().map(|id| Value::Text((*id).to_owned())))
            .push(")");
        match shared.db.fetch_all(sql).await {
            Ok(rows) => {
                for row in rows {
                    if let (Ok(id), Ok(owner)) = (row.get::<String>("id"), row.get::<String>("owner_principal")) {
                        owners.insert(id, owner);
                    }
                }
            }
            Err(e) => {
                // The batch committed; only the warning about taken ids is lost.
                tracing::warn!(error = %e, "cannot tell which chat completion ids belong to another owner");
                return Ok(Vec::new());
            }
        }
    }
    Ok(items
        .iter()
        .map(|item| {
            let Value::Text(principal) = &item.principal else {
                return false;
            };
            owners.get(&item.record.id).is_some_and(|owner| owner != principal)
        })
        .collect())
}

/// `INSERT INTO inference_store (...) VALUES (...), ... ON CONFLICT (id) DO UPDATE SET ...
/// WHERE <same owner>`: each row stamped with its own caller's owner columns.
/// The fixed text around a batch's `VALUES` list, built once: rebuilding the quoted column list and
/// the `ON CONFLICT` tail for every batch was a measurable share of the write path.
static INSERT_HEAD: LazyLock<String> = LazyLock::new(|| {
    let mut names: Vec<String> = COLUMNS.iter().map(|c| quote_ident(c)).collect();
    names.push(quote_ident(ferrostack_authz::policy::OWNER_PRINCIPAL));
    names.push(quote_ident(ferrostack_authz::policy::ACCESS_ATTRIBUTES));
    format!("INSERT INTO {} ({}) ", quote_ident(TABLE), names.join(", "))
});

/// Replace the row only when the stored one has the same owner (another owner's row is untouched).
static INSERT_TAIL: LazyLock<Sql> = LazyLock::new(|| {
    let owner_column = quote_ident(ferrostack_authz::policy::OWNER_PRINCIPAL);
    let owner = format!("{}.{owner_column}", quote_ident(TABLE));
    Sql::new()
        .push(" ")
        .push_sql(dialect::on_conflict_update(&["id"], &REPLACED))
        .push(&format!(" WHERE {owner} = excluded.{owner_column}"))
});

fn insert_sql(rows: &[&Item]) -> Sql {
    Sql::new()
        .push(&INSERT_HEAD)
        .push_values(rows.iter().map(|item| {
            let mut values = item.record.values();
            values.push(item.principal.clone());
            values.push(item.attributes.clone());
            values
        }))
        .push_sql(INSERT_TAIL.clone())
}
