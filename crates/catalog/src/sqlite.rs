//! SQLite connections: how each one is set up, and the deadpool pool that hands them out.
//!
//! rusqlite is blocking, so every use of a connection runs on Tokio's blocking thread pool
//! ([`SqlitePool::run`]); the pooled connection moves to that thread and back.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use deadpool::managed::{self, Metrics, RecycleError, RecycleResult};
use rusqlite::{Connection, OpenFlags};

use crate::error::{BackendDescription, Cause, Error};
use crate::pool::PoolStatus;

/// Statements kept prepared per connection (rusqlite's default is 16); an LRU, so bounded
/// whatever shapes of statement callers send.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// SQLite virtual-machine steps between two checks of the deadline and of the caller's presence:
/// a few microseconds of work, so an interrupt lands within a millisecond.
pub(crate) const PROGRESS_CHECK_STEPS: std::ffi::c_int = 1_000;

/// How to open a connection to one SQLite file.
#[derive(Debug)]
pub(crate) struct SqliteSettings {
    /// The database file.
    pub(crate) path: PathBuf,
    /// How long a statement waits for a lock held by another connection.
    pub(crate) busy_timeout: Duration,
    /// Longest a use of a pooled connection may run before it is interrupted; `None`: no limit.
    pub(crate) statement_timeout: Option<Duration>,
}

impl SqliteSettings {
    /// Open a connection and set it up: WAL journal (readers never block the writer), the busy
    /// timeout, `synchronous=NORMAL` (durable across application crashes; with WAL, a power loss
    /// can lose the last transactions but never corrupts), foreign keys enforced, plans
    /// independent of bound values (so cached statements stay prepared).
    pub(crate) fn connect(&self) -> rusqlite::Result<Connection> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(self.busy_timeout)?;
        // journal_mode answers with the mode in force; anything but WAL (e.g. a read-only
        // medium) is worth failing loudly for, since concurrency depends on it.
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
                Some(format!("cannot switch to WAL journal mode (journal_mode is {mode})")),
            ));
        }
        conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        // The query planner stability guarantee: plans never depend on bound values. Without it
        // SQLite marks a statement to be prepared again when a parameter whose value the
        // planner looked at is rebound (a bound LIMIT, any `column = ?` it weighs), and since
        // rusqlite clears the bindings of a cached statement when it is put back, every such
        // statement was prepared anew on every use: the statement cache served almost nothing,
        // and preparing a large list statement costs several times running it.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
        register_regexp(&conn)?;
        Ok(conn)
    }
}

/// `regexp(pattern, text)`, which SQLite calls for `text REGEXP pattern` and which it does not
/// define itself: whether the Rust regex `pattern` matches anywhere in `text` (anchor it with
/// `\A` to match at the start). NULL when either is NULL. The access-policy compiler uses it for
/// `regex:` resource patterns, so SQL on SQLite matches exactly as the in-memory evaluator does
/// (the same regex engine). The compiled regex is kept for the statement when the pattern is a
/// constant or a bound parameter.
fn register_regexp(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;

    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC;
    conn.create_scalar_function("regexp", 2, flags, |ctx| {
        if matches!(ctx.get_raw(0), ValueRef::Null) {
            return Ok(None);
        }
        let text = match ctx.get_raw(1) {
            ValueRef::Null => return Ok(None),
            ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
            _ => ctx.get::<String>(1)?,
        };
        let re =
            ctx.get_or_create_aux(0, |pattern| -> Result<regex::Regex, Box<dyn std::error::Error + Send + Sync>> {
                Ok(regex::Regex::new(pattern.as_str()?)?)
            })?;
        Ok(Some(re.is_match(&text)))
    })
}

/// Creates connections for the pool; a connection is reused only if it is not inside a
/// transaction (one left open by a failed statement is dropped instead).
#[derive(Debug)]
pub(crate) struct SqliteManager {
    settings: Arc<SqliteSettings>,
}

impl managed::Manager for SqliteManager {
    type Type = Connection;
    type Error = Cause;

    async fn create(&self) -> Result<Connection, Cause> {
        let settings = Arc::clone(&self.settings);
        match tokio::task::spawn_blocking(move || settings.connect()).await {
            Ok(conn) => conn.map_err(Cause::Sqlite),
            Err(e) => Err(Cause::Message(format!("opening a connection failed: {e}"))),
        }
    }

    async fn recycle(&self, conn: &mut Connection, _: &Metrics) -> RecycleResult<Cause> {
        if conn.is_autocommit() {
            Ok(())
        } else {
            Err(RecycleError::message("connection was left inside a transaction"))
        }
    }
}

/// A pool of SQLite connections to one file.
///
/// SQLite runs one write transaction at a time. Writers that meet a held write lock poll (the
/// busy handler sleeps and retries), so under contention they are served in no order and the
/// slowest wait long. Writes therefore queue first on an in-process FIFO gate, and only the
/// writer at its head takes a connection; reads never wait for it (WAL lets them run beside
/// the writer). Writers in other processes still meet the busy timeout.
#[derive(Debug, Clone)]
pub(crate) struct SqlitePool {
    pool: managed::Pool<SqliteManager>,
    writer: Arc<tokio::sync::Mutex<()>>,
    backend: Arc<BackendDescription>,
    wait_timeout: Duration,
    statement_timeout: Option<Duration>,
}

/// Sets its flag when dropped unless disarmed: the caller of [`SqlitePool::run`] went away (its
/// future was dropped, e.g. the client disconnected), so the statement should stop.
struct AbandonFlag {
    flag: Arc<AtomicBool>,
    armed: bool,
}

impl Drop for AbandonFlag {
    fn drop(&mut self) {
        if self.armed {
            self.flag.store(true, Ordering::Relaxed);
        }
    }
}

impl SqlitePool {
    /// A pool of at most `max_size` connections; waiting for one gives up after `wait_timeout`.
    pub(crate) fn new(
        settings: Arc<SqliteSettings>,
        max_size: usize,
        wait_timeout: Duration,
        backend: Arc<BackendDescription>,
    ) -> Result<Self, Error> {
        let statement_timeout = settings.statement_timeout;
        let pool = managed::Pool::builder(SqliteManager { settings })
            .max_size(max_size.max(1))
            .wait_timeout(Some(wait_timeout))
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .map_err(|e| Error::Open {
                backend: Arc::clone(&backend),
                cause: Cause::Message(format!("cannot build the connection pool: {e}")),
            })?;
        Ok(Self { pool, writer: Arc::new(tokio::sync::Mutex::new(())), backend, wait_timeout, statement_timeout })
    }

    /// Like [`SqlitePool::run`], for a statement that writes: waits its turn behind the other
    /// writers of this process (bounded by the wait timeout) first.
    pub(crate) async fn run_write<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let _turn =
            tokio::time::timeout(self.wait_timeout, self.writer.lock()).await.map_err(|_| Error::PoolTimeout {
                backend: Arc::clone(&self.backend),
                waited: self.wait_timeout,
                pool_size: self.pool.status().max_size,
            })?;
        self.run(f).await
    }

    /// A pooled connection for a transaction held across awaits, with this process's writer
    /// turn: the caller holds both until the transaction ends.
    /// The backend's statement timeout, if any.
    pub(crate) fn statement_timeout(&self) -> Option<Duration> {
        self.statement_timeout
    }

    pub(crate) async fn take_for_transaction(
        &self,
    ) -> Result<(tokio::sync::OwnedMutexGuard<()>, managed::Object<SqliteManager>), Error> {
        let turn =
            tokio::time::timeout(self.wait_timeout, Arc::clone(&self.writer).lock_owned()).await.map_err(|_| {
                Error::PoolTimeout {
                    backend: Arc::clone(&self.backend),
                    waited: self.wait_timeout,
                    pool_size: self.pool.status().max_size,
                }
            })?;
        let conn = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        Ok((turn, conn))
    }

    /// Run `f` with a pooled connection on the blocking thread pool, inside the caller's span.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let mut conn = self.pool.get().await.map_err(|e| self.pool_error(e))?;
        let span = tracing::Span::current();
        // The blocking work goes on when this future is dropped; the progress handler stops it
        // when the caller is gone or the statement timeout passes. The flag belongs to this call
        // alone, so stopping it can never interrupt another caller's statement on the same
        // connection later.
        let abandoned = Arc::new(AtomicBool::new(false));
        let mut guard = AbandonFlag { flag: Arc::clone(&abandoned), armed: true };
        let deadline = self.statement_timeout.map(|t| Instant::now() + t);
        let result = tokio::task::spawn_blocking(move || {
            span.in_scope(|| {
                let stop = move || abandoned.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d);
                conn.progress_handler(PROGRESS_CHECK_STEPS, Some(stop))?;
                let result = f(&mut conn);
                conn.progress_handler(0, None::<fn() -> bool>)?;
                result
            })
        })
        .await;
        guard.armed = false;
        match result {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(Error::Query { backend: Arc::clone(&self.backend), cause: Cause::Sqlite(e) }),
            Err(e) => Err(Error::Query {
                backend: Arc::clone(&self.backend),
                cause: Cause::Message(format!("the database thread failed: {e}")),
            }),
        }
    }

    fn pool_error(&self, e: managed::PoolError<Cause>) -> Error {
        let backend = Arc::clone(&self.backend);
        match e {
            managed::PoolError::Timeout(_) => {
                Error::PoolTimeout { backend, waited: self.wait_timeout, pool_size: self.pool.status().max_size }
            }
            managed::PoolError::Closed => Error::Closed { backend },
            managed::PoolError::Backend(cause) => Error::Connect { backend, cause },
            managed::PoolError::PostCreateHook(e) => Error::Connect { backend, cause: Cause::Message(e.to_string()) },
            managed::PoolError::NoRuntimeSpecified => {
                Error::Open { backend, cause: Cause::Message("the pool has no async runtime".to_owned()) }
            }
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus { max_size: s.max_size, size: s.size, available: s.available, waiting: s.waiting }
    }

    pub(crate) fn close(&self) {
        self.pool.close();
    }
}
