//! Writing one batch: one transaction, retried while the error is transient, bisected while the
//! database rejects it for good, until the rows at fault are isolated.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{BuildHasher, RandomState};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferrostack_catalog::sql::{MAX_BINDS_POSTGRES, MAX_BINDS_SQLITE};
use ferrostack_catalog::{Dialect, Sql, Value};
use tokio_util::sync::CancellationToken;

use crate::WriteRow;
use crate::metrics::QueueMetrics;
use crate::queue::{Item, Outcome, Shared};

/// First retry delay; doubles per attempt.
const BACKOFF_BASE: Duration = Duration::from_millis(50);
/// Longest retry delay.
const BACKOFF_CAP: Duration = Duration::from_secs(5);

type BatchFuture<'a, R> = Pin<Box<dyn Future<Output = Result<(), Vec<Item<R>>>> + Send + 'a>>;

/// What became of one batch's rows, for its span.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    written: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
}

impl Tally {
    pub(crate) fn record(&self, span: &tracing::Span, cancelled: bool) {
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
pub(crate) fn write_batch<'a, R: WriteRow>(
    shared: &'a Shared<R>,
    items: Vec<Item<R>>,
    cancel: &'a CancellationToken,
    tally: &'a Tally,
) -> BatchFuture<'a, R> {
    Box::pin(async move {
        let mut attempt: u32 = 0;
        // Transient-looking failures of this batch while the database answered a ping right after:
        // the batch itself may be what breaks the connection.
        let mut suspect: u32 = 0;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                result = upsert(shared, &items) => Some(result),
            };
            let Some(result) = result else {
                return Err(items);
            };
            let m = &shared.metrics;
            let e = match result {
                Ok(taken) => {
                    m.last_batch_micros
                        .store(u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX), Ordering::Relaxed);
                    m.last_batch_size.store(items.len() as u64, Ordering::Relaxed);
                    QueueMetrics::add(&m.batches_written, 1);
                    m.progressed();
                    for (i, item) in items.into_iter().enumerate() {
                        if taken.get(i).copied().unwrap_or(false) {
                            tracing::warn!(
                                table = R::TABLE,
                                id = %item.row.id(),
                                "key belongs to another owner; the stored row was left unchanged"
                            );
                            QueueMetrics::add(&m.rows_id_taken, 1);
                            tally.failed.fetch_add(1, Ordering::Relaxed);
                            item.finish(Outcome::KeyTaken);
                        } else {
                            QueueMetrics::add(&m.rows_written, 1);
                            tally.written.fetch_add(1, Ordering::Relaxed);
                            item.finish(Outcome::Written);
                        }
                    }
                    return Ok(());
                }
                Err(e) => e,
            };
            if retryable(&e) {
                // A statement that failed as if the connection were lost, while the database
                // answers pings: after a few of those, the rows are suspected (a row too large
                // for the server, a row that crashes its backend).
                if matches!(e, ferrostack_catalog::Error::Query { .. })
                    && e.sql_state().is_none()
                    && ping(shared, cancel).await
                {
                    suspect += 1;
                }
                if suspect < SUSPECT_LIMIT {
                    QueueMetrics::add(&m.batch_retries, 1);
                    tally.retries.fetch_add(1, Ordering::Relaxed);
                    QueueMetrics::add(&m.rows_retried, items.len() as u64);
                    let delay = backoff(attempt);
                    tracing::warn!(
                        table = R::TABLE,
                        rows = items.len(),
                        attempt = attempt + 1,
                        retry_in_ms = delay.as_millis(),
                        error = %e,
                        "writing a batch failed; retrying"
                    );
                    attempt = attempt.saturating_add(1);
                    if !wait_to_retry(shared, delay, cancel).await {
                        return Err(items);
                    }
                    continue;
                }
                if items.len() == 1 {
                    let reason = format!(
                        "the database failed on this row {SUSPECT_LIMIT} times while answering pings ({})",
                        e.refusal_reason()
                    );
                    refuse(m, tally, items, &reason, false);
                    return Ok(());
                }
                tracing::warn!(table = R::TABLE, rows = items.len(), error = %e, "batch keeps failing while the database answers; splitting it");
            } else if not_row_specific(&e) {
                for item in items {
                    tracing::error!(table = R::TABLE, id = %item.row.id(), error = %e, "row not written: the statement failed for a reason that is not the row's");
                    QueueMetrics::add(&m.rows_failed, 1);
                    tally.failed.fetch_add(1, Ordering::Relaxed);
                    item.finish(Outcome::Failed);
                }
                m.progressed();
                return Ok(());
            } else if items.len() == 1 {
                refuse(m, tally, items, &e.refusal_reason(), e.is_content_refusal());
                return Ok(());
            } else {
                tracing::debug!(table = R::TABLE, rows = items.len(), error = %e, "batch rejected; splitting it to find the rows at fault");
            }
            let mut left = items;
            let right = left.split_off(left.len() / 2);
            if let Err(mut unfinished) = write_batch(shared, left, cancel, tally).await {
                unfinished.extend(right);
                return Err(unfinished);
            }
            return write_batch(shared, right, cancel, tally).await;
        }
    })
}

/// Retries of one batch failing like a lost connection while the database answers pings, before
/// its rows are suspected (split; a single row refused).
const SUSPECT_LIMIT: u32 = 5;
/// How often a waiting retry pings the database (a success wakes it at once).
const PING_EVERY: Duration = Duration::from_millis(200);
/// Longest wait for one ping.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// A row refused for good: finished with the reason, logged with its id, counted.
fn refuse<R: WriteRow>(m: &QueueMetrics, tally: &Tally, items: Vec<Item<R>>, reason: &str, content: bool) {
    for item in items {
        tracing::error!(table = R::TABLE, id = %item.row.id(), reason, "row refused by the database for good; not written");
        QueueMetrics::add(&m.rows_refused, 1);
        QueueMetrics::add(&m.rows_failed, 1);
        tally.failed.fetch_add(1, Ordering::Relaxed);
        item.finish(Outcome::Refused(reason.to_owned(), content));
    }
    m.progressed();
}

/// Whether the database answers `SELECT 1` (through the pool) within [`PING_TIMEOUT`].
async fn ping<R>(shared: &Shared<R>, cancel: &CancellationToken) -> bool {
    let probe = shared.db.fetch_optional(Sql::new().push("SELECT 1"));
    tokio::select! {
        biased;
        () = cancel.cancelled() => false,
        answered = tokio::time::timeout(PING_TIMEOUT, probe) => matches!(answered, Ok(Ok(_))),
    }
}

/// Wait `delay` before a retry, or less: as soon as the database answers a ping (checked every
/// [`PING_EVERY`]), so a writer resumes within a moment of the database coming back. `false`
/// when cancelled.
async fn wait_to_retry<R>(shared: &Shared<R>, delay: Duration, cancel: &CancellationToken) -> bool {
    let until = Instant::now() + delay;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        tokio::select! {
            biased;
            () = cancel.cancelled() => return false,
            () = tokio::time::sleep(left.min(PING_EVERY)) => {}
        }
        if left > PING_EVERY && ping(shared, cancel).await {
            return !cancel.is_cancelled();
        }
    }
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

/// Upsert `items` in one transaction. Returns, per item, whether it was not written because its
/// key belongs to another owner's row.
async fn upsert<R: WriteRow>(shared: &Shared<R>, items: &[Item<R>]) -> Result<Vec<bool>, ferrostack_catalog::Error> {
    // Successive occurrences of a key go to successive statements: one statement may not upsert
    // the same row twice (PostgreSQL refuses it).
    let keys: Vec<Vec<Value>> = items.iter().map(|i| i.row.key()).collect();
    let texts: Vec<String> = keys.iter().map(|k| key_text(k)).collect();
    let mut occurrences: HashMap<&str, (usize, &[Value])> = HashMap::with_capacity(items.len());
    let mut rounds: Vec<Vec<&Item<R>>> = Vec::new();
    for ((item, key), text) in items.iter().zip(&keys).zip(&texts) {
        let (n, _) = occurrences.entry(text.as_str()).and_modify(|(n, _)| *n += 1).or_insert((0, key.as_slice()));
        if rounds.len() <= *n {
            rounds.push(Vec::new());
        }
        if let Some(round) = rounds.get_mut(*n) {
            round.push(item);
        }
    }
    let max_binds = match shared.db.dialect() {
        Dialect::Postgres => MAX_BINDS_POSTGRES,
        Dialect::Sqlite => MAX_BINDS_SQLITE,
    };
    let max_rows = (max_binds / shared.upsert.width()).max(1);
    let statements: Vec<Sql> = rounds
        .iter()
        .flat_map(|round| round.chunks(max_rows))
        .map(|rows| shared.upsert.rows(rows.iter().map(|item| (item.row.values(), &item.owner))))
        .collect();
    let counts = shared.db.transaction(statements).await?;
    let affected: u64 = counts.iter().sum();
    if affected >= items.len() as u64 {
        return Ok(Vec::new());
    }
    // Some rows met another owner's row. Which ones: compare the stored owners.
    let distinct: Vec<Vec<Value>> = occurrences.values().map(|(_, k)| k.to_vec()).collect();
    let per_statement = (max_binds / shared.upsert.key_columns().len().max(1)).max(1);
    let mut owners: HashMap<String, String> = HashMap::with_capacity(distinct.len());
    for chunk in distinct.chunks(per_statement) {
        match shared.db.fetch_all(shared.upsert.owners_sql(chunk)).await {
            Ok(rows) => {
                for row in rows {
                    let key: Result<Vec<Value>, _> =
                        shared.upsert.key_columns().iter().map(|c| row.get::<Value>(c)).collect();
                    if let (Ok(key), Ok(owner)) = (key, row.get::<String>("owner_principal")) {
                        owners.insert(key_text(&key), owner);
                    }
                }
            }
            Err(e) => {
                // The batch committed; only the warning about taken keys is lost.
                tracing::warn!(table = R::TABLE, error = %e, "cannot tell which keys belong to another owner");
                return Ok(Vec::new());
            }
        }
    }
    Ok(items
        .iter()
        .zip(&texts)
        .map(|(item, key)| {
            let Value::Text(principal) = &item.owner.0 else {
                return false;
            };
            owners.get(key).is_some_and(|owner| owner != principal)
        })
        .collect())
}

/// A key as a map key (values are not hashable: floats and JSON): its values' debug text, the
/// same for a key as queued and as read back.
fn key_text(key: &[Value]) -> String {
    format!("{key:?}")
}
