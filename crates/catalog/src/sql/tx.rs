//! [`Tx`]: one transaction on a backend, held across awaits, so a store can run several
//! statements (reads between writes included) atomically; and [`Executor`], what both a [`Db`]
//! and a [`Tx`] are, so one query function serves either (STYLE.md 12).
//!
//! - PostgreSQL: a pooled connection with `BEGIN` sent. Dropped without [`Tx::commit`], the
//!   connection is detached from the pool and closed, and the server rolls the transaction back:
//!   an early return (`?`) never leaves an open transaction in the pool.
//! - SQLite: a pooled connection on a blocking thread of its own, inside `BEGIN IMMEDIATE` (the
//!   write lock is taken up front, and the in-process writer gate is held until the end, as
//!   for [`Db::transaction`]). Statements are sent to that thread; dropped without commit, the
//!   thread rolls back.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use ferrostack_config::Dialect;
use tokio::sync::oneshot;

use super::value::{Row, Value};
use super::{Db, Sql, postgres, sqlite};
use crate::error::{Cause, Error};
use crate::pool::Pool;

/// Runs statements: a [`Db`] (each statement on its own pooled connection) or a [`Tx`] (all in one
/// transaction). Write store queries against `&mut impl Executor` to accept either.
pub trait Executor: Send {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;
    /// Run a query; all its rows.
    fn fetch_all(&mut self, sql: Sql) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;
    /// Run a statement; the rows it affected.
    fn execute(&mut self, sql: Sql) -> impl Future<Output = Result<u64, Error>> + Send;
}

impl Executor for Db {
    fn dialect(&self) -> Dialect {
        Db::dialect(self)
    }

    fn fetch_all(&mut self, sql: Sql) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
        Db::fetch_all(self, sql)
    }

    fn execute(&mut self, sql: Sql) -> impl Future<Output = Result<u64, Error>> + Send {
        Db::execute(self, sql)
    }
}

type Reply<T> = oneshot::Sender<rusqlite::Result<T>>;

/// A statement for the SQLite transaction's thread.
enum Command {
    Fetch(String, Vec<Value>, Reply<Vec<Row>>),
    Execute(String, Vec<Value>, Reply<u64>),
    Commit(Reply<()>),
}

enum Inner {
    Postgres {
        client: Option<Box<deadpool_postgres::Object>>,
        canceller: crate::pool::Canceller,
        /// Client-side bound of each statement (see `PgPool::bounded`).
        limit: Option<std::time::Duration>,
    },
    /// `abandoned` stops the thread's running statement when the transaction is dropped.
    Sqlite { commands: std::sync::mpsc::Sender<Command>, abandoned: Arc<AtomicBool> },
}

/// One open transaction; see the module docs. Commit with [`Tx::commit`]; dropping it rolls back.
pub struct Tx {
    db: Db,
    inner: Inner,
}

impl std::fmt::Debug for Tx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx").field("backend", &self.db.backend().name).finish_non_exhaustive()
    }
}

impl Db {
    /// Open a transaction (see [`Tx`]).
    #[tracing::instrument(name = "db.begin", skip_all, fields(otel.kind = "client", backend = %self.backend().name))]
    pub async fn begin(&self) -> Result<Tx, Error> {
        let inner = match self.pool() {
            Pool::Postgres(pg) => {
                let client = pg.get().await?;
                let limit = pg.answer_timeout();
                match bounded(self, limit, client.batch_execute("BEGIN")).await {
                    Ok(()) => {}
                    Err(e @ Error::NoAnswer { .. }) => {
                        pg.canceller().abandon(client);
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
                Inner::Postgres { client: Some(Box::new(client)), canceller: pg.canceller(), limit }
            }
            Pool::Sqlite(pool, _) => {
                let (turn, conn) = pool.take_for_transaction().await?;
                let (commands, rx) = std::sync::mpsc::channel();
                let (ready_tx, ready_rx) = oneshot::channel();
                let span = tracing::Span::current();
                let abandoned = Arc::new(AtomicBool::new(false));
                let limits = Limits { abandoned: Arc::clone(&abandoned), statement_timeout: pool.statement_timeout() };
                // The thread holds the writer turn until its transaction is committed or rolled
                // back, so the next writer never meets this one's lock.
                tokio::task::spawn_blocking(move || {
                    span.in_scope(|| sqlite_thread(conn, &rx, ready_tx, &limits));
                    drop(turn);
                });
                ready_rx.await.map_err(|_| self.tx_gone()).and_then(|r| r.map_err(|e| self.sqlite(e)))?;
                Inner::Sqlite { commands, abandoned }
            }
        };
        Ok(Tx { db: self.clone(), inner })
    }

    fn sqlite(&self, e: rusqlite::Error) -> Error {
        Error::Query { backend: Arc::clone(self.description()), cause: Cause::Sqlite(e) }
    }

    fn pg_error(&self, e: tokio_postgres::Error) -> Error {
        match self.pool() {
            Pool::Postgres(pg) => pg.query_error(e),
            Pool::Sqlite(..) => Error::Query { backend: Arc::clone(self.description()), cause: Cause::Postgres(e) },
        }
    }

    fn tx_gone(&self) -> Error {
        Error::Query {
            backend: Arc::clone(self.description()),
            cause: Cause::Message("the transaction has ended (its connection is gone)".to_owned()),
        }
    }
}

/// `work` on the transaction's connection, bounded client-side by `limit` ([`Error::NoAnswer`]
/// past it: a frozen server cannot enforce its own statement timeout).
async fn bounded<T>(
    db: &Db,
    limit: Option<std::time::Duration>,
    work: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, Error> {
    let Some(limit) = limit else {
        return work.await.map_err(|e| db.pg_error(e));
    };
    match tokio::time::timeout(limit, work).await {
        Ok(result) => result.map_err(|e| db.pg_error(e)),
        Err(_) => Err(Error::NoAnswer { backend: Arc::clone(db.description()), waited: limit }),
    }
}

/// What stops a statement of the SQLite transaction's thread: the [`Tx`] dropped, or the
/// backend's statement timeout passed (counted per statement).
struct Limits {
    abandoned: Arc<AtomicBool>,
    statement_timeout: Option<Duration>,
}

/// The SQLite transaction's thread: `BEGIN IMMEDIATE`, then each command in turn, until commit
/// or until the [`Tx`] is dropped (rollback: the transaction is dropped uncommitted).
fn sqlite_thread(
    mut conn: deadpool::managed::Object<crate::sqlite::SqliteManager>,
    commands: &std::sync::mpsc::Receiver<Command>,
    ready: Reply<()>,
    limits: &Limits,
) {
    // One deadline per statement, read by the progress handler.
    let deadline = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (abandoned, watched) = (Arc::clone(&limits.abandoned), Arc::clone(&deadline));
    let stop = move || {
        abandoned.load(Ordering::Relaxed)
            || watched.lock().ok().and_then(|d| *d).is_some_and(|d: Instant| Instant::now() >= d)
    };
    if let Err(e) = conn.progress_handler(crate::sqlite::PROGRESS_CHECK_STEPS, Some(stop)) {
        let _ = ready.send(Err(e));
        return;
    }
    let start_statement = || {
        if let Ok(mut d) = deadline.lock() {
            *d = limits.statement_timeout.map(|t| Instant::now() + t);
        }
    };
    run_sqlite_commands(&mut conn, commands, ready, start_statement);
    // The connection goes back to the pool: without this transaction's handler.
    let _ = conn.progress_handler(0, None::<fn() -> bool>);
}

fn run_sqlite_commands(
    conn: &mut rusqlite::Connection,
    commands: &std::sync::mpsc::Receiver<Command>,
    ready: Reply<()>,
    start_statement: impl Fn(),
) {
    let tx = match conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    if ready.send(Ok(())).is_err() {
        return;
    }
    while let Ok(command) = commands.recv() {
        start_statement();
        match command {
            Command::Fetch(text, values, reply) => {
                let _ = reply.send(sqlite::query(&tx, &text, &values));
            }
            Command::Execute(text, values, reply) => {
                let _ = reply.send(sqlite::execute(&tx, &text, &values));
            }
            Command::Commit(reply) => {
                let _ = reply.send(tx.commit());
                return;
            }
        }
    }
}

impl Tx {
    /// The backend's dialect.
    pub fn dialect(&self) -> Dialect {
        self.db.dialect()
    }

    /// Make every statement of the transaction durable. On error nothing is.
    pub async fn commit(mut self) -> Result<(), Error> {
        match &mut self.inner {
            Inner::Postgres { client, canceller, limit } => {
                let Some(c) = client.take() else { return Err(self.db.tx_gone()) };
                let committed = bounded(&self.db, *limit, c.batch_execute("COMMIT")).await;
                if matches!(committed, Err(Error::NoAnswer { .. })) {
                    // Never back to the pool in an unknown state.
                    canceller.abandon(*c);
                }
                committed
            }
            Inner::Sqlite { commands, .. } => {
                let (reply, answer) = oneshot::channel();
                commands.send(Command::Commit(reply)).map_err(|_| self.db.tx_gone())?;
                answer.await.map_err(|_| self.db.tx_gone())?.map_err(|e| self.db.sqlite(e))
            }
        }
    }

    /// Run a query inside the transaction; all its rows.
    #[tracing::instrument(name = "db.tx.fetch_all", skip_all, fields(otel.kind = "client", backend = %self.db.backend().name, db.statement = tracing::field::Empty))]
    pub async fn fetch_all(&mut self, sql: Sql) -> Result<Vec<Row>, Error> {
        let (text, values) = self.db.prepare_statement(sql)?;
        match &mut self.inner {
            Inner::Postgres { client: Some(c), limit, .. } => {
                let db = &self.db;
                let (stmt, raw) = bounded(db, *limit, async {
                    let stmt = crate::pool::prepare_bounded(c, &text).await?;
                    let raw = c.query(&stmt, &postgres::params(&values)).await?;
                    Ok((stmt, raw))
                })
                .await?;
                postgres::rows(stmt.columns(), raw)
            }
            Inner::Postgres { client: None, .. } => Err(self.db.tx_gone()),
            Inner::Sqlite { commands, .. } => {
                let (reply, answer) = oneshot::channel();
                commands.send(Command::Fetch(text, values, reply)).map_err(|_| self.db.tx_gone())?;
                answer.await.map_err(|_| self.db.tx_gone())?.map_err(|e| self.db.sqlite(e))
            }
        }
    }

    /// Run a statement inside the transaction; the rows it affected.
    #[tracing::instrument(name = "db.tx.execute", skip_all, fields(otel.kind = "client", backend = %self.db.backend().name, db.statement = tracing::field::Empty))]
    pub async fn execute(&mut self, sql: Sql) -> Result<u64, Error> {
        let (text, values) = self.db.prepare_statement(sql)?;
        match &mut self.inner {
            Inner::Postgres { client: Some(c), limit, .. } => {
                let db = &self.db;
                bounded(db, *limit, async {
                    let stmt = crate::pool::prepare_bounded(c, &text).await?;
                    c.execute(&stmt, &postgres::params(&values)).await
                })
                .await
            }
            Inner::Postgres { client: None, .. } => Err(self.db.tx_gone()),
            Inner::Sqlite { commands, .. } => {
                let (reply, answer) = oneshot::channel();
                commands.send(Command::Execute(text, values, reply)).map_err(|_| self.db.tx_gone())?;
                answer.await.map_err(|_| self.db.tx_gone())?.map_err(|e| self.db.sqlite(e))
            }
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Postgres { client, canceller, .. } => {
                if let Some(c) = client.take() {
                    // Not committed: never hand a connection inside a transaction back to the
                    // pool. A statement may still run for it (its caller went away): cancel it,
                    // then close the connection; the server rolls the transaction back.
                    canceller.abandon(*c);
                }
            }
            // The thread rolls back once the command channel closes; a statement it is running
            // stops at the next progress check.
            Inner::Sqlite { abandoned, .. } => abandoned.store(true, Ordering::Relaxed),
        }
    }
}

impl Executor for Tx {
    fn dialect(&self) -> Dialect {
        Tx::dialect(self)
    }

    fn fetch_all(&mut self, sql: Sql) -> impl Future<Output = Result<Vec<Row>, Error>> + Send {
        Tx::fetch_all(self, sql)
    }

    fn execute(&mut self, sql: Sql) -> impl Future<Output = Result<u64, Error>> + Send {
        Tx::execute(self, sql)
    }
}
