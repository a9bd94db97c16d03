//! [`Db`]: run [`Sql`] on a backend's pool.

use std::sync::Arc;

use ferrostack_config::Dialect;
use tracing::field::Empty;

use super::value::{Row, Value};
use super::{MAX_BINDS_POSTGRES, MAX_BINDS_SQLITE, Sql, postgres, sqlite};
use crate::error::{BackendDescription, Error};
use crate::pool::{Backend, Pool, PoolStatus};

/// Longest statement text recorded in a span, in bytes (multi-row inserts get long).
const SPAN_STATEMENT_LIMIT: usize = 1024;

/// A handle on one SQL backend's pool; cheap to clone. Every store on the backend shares the
/// pool.
///
/// Every method is traced: a client span named `{operation} {table}` (`SELECT inference_store`)
/// with `db.system`, `db.operation.name`, `db.collection.name`, `backend` and the statement text
/// with its placeholders; bind values are never recorded.
#[derive(Debug, Clone)]
pub struct Db {
    backend: Arc<Backend>,
}

impl Db {
    pub(crate) fn new(backend: Arc<Backend>) -> Self {
        Self { backend }
    }

    /// The backend's SQL dialect; build dialect-specific SQL with [`super::dialect`].
    pub fn dialect(&self) -> Dialect {
        self.backend.dialect
    }

    /// Which backend this is, for messages.
    pub fn backend(&self) -> &BackendDescription {
        &self.backend.desc
    }

    pub(super) fn description(&self) -> &Arc<BackendDescription> {
        &self.backend.desc
    }

    pub(super) fn pool(&self) -> &Pool {
        &self.backend.pool
    }

    /// The pool's state now.
    pub fn pool_status(&self) -> PoolStatus {
        self.backend.status()
    }

    /// Whether both handles use the same pool (they name the same backend).
    pub fn shares_pool_with(&self, other: &Db) -> bool {
        Arc::ptr_eq(&self.backend, &other.backend)
    }

    fn system(&self) -> &'static str {
        match self.backend.dialect {
            Dialect::Postgres => "postgresql",
            Dialect::Sqlite => "sqlite",
        }
    }

    /// Text and values for this dialect, checked against the bind limit; records the text on
    /// the current span.
    pub(super) fn prepare_statement(&self, sql: Sql) -> Result<(String, Vec<Value>), Error> {
        let (text, values) = sql.into_parts(self.dialect());
        let max = match self.dialect() {
            Dialect::Postgres => MAX_BINDS_POSTGRES,
            Dialect::Sqlite => MAX_BINDS_SQLITE,
        };
        if values.len() > max {
            return Err(Error::Statement {
                backend: Arc::clone(&self.backend.desc),
                reason: format!("{} bind values, more than the {max} one statement may have", values.len()),
            });
        }
        tracing::Span::current().record("db.statement", truncate(&text, SPAN_STATEMENT_LIMIT));
        Ok((text, values))
    }

    /// Run a query; all its rows.
    #[tracing::instrument(name = "db.fetch_all", skip_all, fields(
        otel.name = %span_name(&sql), otel.kind = "client", db.system = self.system(),
        db.operation.name = %sql.summary().0, db.collection.name = sql.summary().1,
        backend = %self.backend.desc.name, db.statement = Empty, db.rows = Empty))]
    pub async fn fetch_all(&self, sql: Sql) -> Result<Vec<Row>, Error> {
        let (text, values) = self.prepare_statement(sql)?;
        let rows = match &self.backend.pool {
            Pool::Postgres(pg) => {
                let mut conn = pg.get_watched().await?;
                // Bounded client-side too (a frozen server cannot enforce its statement timeout).
                let (stmt, raw) = pg
                    .bounded(async move {
                        let result = async {
                            let stmt = conn.prepare(&text).await?;
                            let raw = conn.client().query(&stmt, &postgres::params(&values)).await?;
                            Ok((stmt, raw))
                        }
                        .await;
                        conn.finish();
                        result
                    })
                    .await?;
                postgres::rows(stmt.columns(), raw)?
            }
            Pool::Sqlite(pool, _) => pool.run(move |conn| sqlite::query(conn, &text, &values)).await?,
        };
        tracing::Span::current().record("db.rows", i64::try_from(rows.len()).unwrap_or(i64::MAX));
        Ok(rows)
    }

    /// Run a query; its first row, if any. Add `LIMIT 1` when more could match: the other rows
    /// are fetched and dropped.
    pub async fn fetch_optional(&self, sql: Sql) -> Result<Option<Row>, Error> {
        Ok(self.fetch_all(sql).await?.into_iter().next())
    }

    /// Run a statement; the number of rows it affected.
    #[tracing::instrument(name = "db.execute", skip_all, fields(
        otel.name = %span_name(&sql), otel.kind = "client", db.system = self.system(),
        db.operation.name = %sql.summary().0, db.collection.name = sql.summary().1,
        backend = %self.backend.desc.name, db.statement = Empty, db.rows = Empty))]
    pub async fn execute(&self, sql: Sql) -> Result<u64, Error> {
        let (text, values) = self.prepare_statement(sql)?;
        let count = match &self.backend.pool {
            Pool::Postgres(pg) => {
                let mut conn = pg.get_watched().await?;
                pg.bounded(async move {
                    let result = async {
                        let stmt = conn.prepare(&text).await?;
                        conn.client().execute(&stmt, &postgres::params(&values)).await
                    }
                    .await;
                    conn.finish();
                    result
                })
                .await?
            }
            Pool::Sqlite(pool, _) => pool.run_write(move |conn| sqlite::execute(conn, &text, &values)).await?,
        };
        tracing::Span::current().record("db.rows", i64::try_from(count).unwrap_or(i64::MAX));
        Ok(count)
    }

    /// Run statements atomically, in order: all commit or, on the first error, none does. The
    /// rows affected by each. On SQLite the transaction is `BEGIN IMMEDIATE` (it takes the write
    /// lock up front, so concurrent writers wait instead of deadlocking).
    #[tracing::instrument(name = "db.transaction", skip_all, fields(
        otel.name = %statements.first().map_or_else(|| "TRANSACTION".to_owned(), span_name), otel.kind = "client",
        db.system = self.system(),
        db.operation.name = %statements.first().map(|s| s.summary().0).unwrap_or_default(),
        db.collection.name = statements.first().and_then(|s| s.summary().1),
        backend = %self.backend.desc.name, db.statements = i64::try_from(statements.len()).unwrap_or(i64::MAX),
        db.statement = Empty))]
    pub async fn transaction(&self, statements: Vec<Sql>) -> Result<Vec<u64>, Error> {
        if statements.is_empty() {
            return Ok(Vec::new());
        }
        let prepared = statements.into_iter().map(|sql| self.prepare_statement(sql)).collect::<Result<Vec<_>, _>>()?;
        match &self.backend.pool {
            Pool::Postgres(pg) => {
                let mut conn = pg.get_watched().await?;
                pg.bounded(async move {
                    let result = async {
                        // Statements are prepared (through the bounded cache) before the transaction
                        // opens; dropping the transaction on an error rolls it back.
                        let mut statements = Vec::with_capacity(prepared.len());
                        for (text, _) in &prepared {
                            statements.push(conn.prepare(text).await?);
                        }
                        if let ([stmt], [(_, values)]) = (statements.as_slice(), prepared.as_slice()) {
                            // One statement is atomic on its own: no BEGIN and COMMIT round trips.
                            return Ok(vec![conn.client().execute(stmt, &postgres::params(values)).await?]);
                        }
                        let tx = conn.client().transaction().await?;
                        let mut counts = Vec::with_capacity(prepared.len());
                        for (stmt, (_, values)) in statements.iter().zip(&prepared) {
                            counts.push(tx.execute(stmt, &postgres::params(values)).await?);
                        }
                        tx.commit().await?;
                        Ok(counts)
                    }
                    .await;
                    conn.finish();
                    result
                })
                .await
            }
            Pool::Sqlite(pool, _) => pool.run_write(move |conn| sqlite::transaction(conn, &prepared)).await,
        }
    }
}

/// `{operation} {table}` (OpenTelemetry database span names), e.g. `INSERT inference_store`.
fn span_name(sql: &Sql) -> String {
    match sql.summary() {
        (op, Some(table)) => format!("{op} {table}"),
        (op, None) if !op.is_empty() => op,
        _ => "SQL".to_owned(),
    }
}

fn truncate(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
