//! One opened backend: its description, its dialect and its one pool.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Hook, HookError, ManagerConfig, RecyclingMethod, Runtime};
use ferrostack_config::{BackendConfig, BackendFamily, Dialect, PostgresBackendConfig, SqliteBackendConfig};
use tokio_postgres::NoTls;

use crate::error::{BackendDescription, Cause, Error};
use crate::sqlite::{SqlitePool, SqliteSettings};

/// The `application_name` every ferrostack connection reports to PostgreSQL (visible in
/// `pg_stat_activity`).
pub const APPLICATION_NAME: &str = "ferrostack";

/// A snapshot of a backend's pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStatus {
    /// Most connections the pool will hold (`pool_size`).
    pub max_size: usize,
    /// Connections open now, idle or in use.
    pub size: usize,
    /// Idle connections ready to be handed out.
    pub available: usize,
    /// Requests waiting for a connection.
    pub waiting: usize,
}

/// One configured backend, opened.
#[derive(Debug)]
pub(crate) struct Backend {
    pub(crate) desc: Arc<BackendDescription>,
    pub(crate) family: BackendFamily,
    pub(crate) dialect: Dialect,
    pub(crate) pool: Pool,
}

/// The pool of a backend, by engine.
#[derive(Debug)]
pub(crate) enum Pool {
    Postgres(Box<PgPool>),
    Sqlite(SqlitePool, Arc<SqliteSettings>),
}

impl Backend {
    /// Set the backend up. PostgreSQL connects lazily (on first use); SQLite creates the file
    /// and its directory now, so a bad path fails at start-up.
    pub(crate) async fn open(name: &str, config: &BackendConfig) -> Result<Backend, Error> {
        let type_name = config.type_name();
        match config {
            BackendConfig::KvPostgres(pg) | BackendConfig::SqlPostgres(pg) => {
                let desc = Arc::new(BackendDescription {
                    name: name.to_owned(),
                    type_name,
                    location: format!("{}:{}/{}", pg.host, pg.port, pg.db),
                });
                let pool = PgPool::new(pg, Arc::clone(&desc))?;
                Ok(Backend {
                    desc,
                    family: config.family(),
                    dialect: Dialect::Postgres,
                    pool: Pool::Postgres(Box::new(pool)),
                })
            }
            BackendConfig::KvSqlite(sqlite) | BackendConfig::SqlSqlite(sqlite) => {
                let path = expand_home(&sqlite.db_path);
                let desc = Arc::new(BackendDescription {
                    name: name.to_owned(),
                    type_name,
                    location: path.display().to_string(),
                });
                let (pool, settings) = open_sqlite(sqlite, path, &desc).await?;
                Ok(Backend {
                    desc,
                    family: config.family(),
                    dialect: Dialect::Sqlite,
                    pool: Pool::Sqlite(pool, settings),
                })
            }
        }
    }

    pub(crate) fn status(&self) -> PoolStatus {
        match &self.pool {
            Pool::Postgres(p) => p.status(),
            Pool::Sqlite(p, _) => p.status(),
        }
    }

    pub(crate) async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::Sqlite(p, _) => p.close(),
        }
    }

    /// One round trip (`SELECT 1`) through the pool.
    pub(crate) async fn ping(&self) -> Result<(), Error> {
        match &self.pool {
            Pool::Postgres(p) => {
                let client = p.get().await?;
                client.simple_query("SELECT 1").await.map_err(|e| p.query_error(e))?;
                Ok(())
            }
            Pool::Sqlite(p, _) => p.run(|conn| conn.query_row("SELECT 1", [], |_| Ok(()))).await,
        }
    }
}

/// `~/x` → `$HOME/x` (the config loader normally did this already).
fn expand_home(path: &str) -> PathBuf {
    if let Some(rest) = path.strip_prefix("~/")
        && let Some(home) = std::env::var_os("HOME")
    {
        return PathBuf::from(home).join(rest);
    }
    PathBuf::from(path)
}

async fn open_sqlite(
    config: &SqliteBackendConfig,
    path: PathBuf,
    desc: &Arc<BackendDescription>,
) -> Result<(SqlitePool, Arc<SqliteSettings>), Error> {
    let open_error = |cause| Error::Open { backend: Arc::clone(desc), cause };
    let raw = config.db_path.trim();
    if raw.is_empty() || raw == ":memory:" || raw.starts_with("file:") {
        return Err(open_error(Cause::Message(
            "db_path must be a file path (in-memory and URI databases are not supported: each pooled \
             connection would see a different database)"
                .to_owned(),
        )));
    }
    let settings = Arc::new(SqliteSettings {
        path,
        busy_timeout: Duration::from_millis(config.busy_timeout_ms),
        statement_timeout: (config.statement_timeout_ms > 0)
            .then(|| Duration::from_millis(config.statement_timeout_ms)),
    });
    // Create the directory and the file, and switch the file to WAL (a persistent setting), once.
    let probe = Arc::clone(&settings);
    let created = tokio::task::spawn_blocking(move || -> Result<(), Cause> {
        if let Some(parent) = probe.path.parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(Cause::Io)?;
        }
        probe.connect().map(drop).map_err(Cause::Sqlite)
    })
    .await;
    match created {
        Ok(Ok(())) => {}
        Ok(Err(cause)) => return Err(open_error(cause)),
        Err(e) => {
            return Err(open_error(Cause::Message(format!("the database thread failed: {e}"))));
        }
    }
    // Waiting for a connection is bounded like waiting for a lock: by the busy timeout.
    let wait = settings.busy_timeout;
    let pool = SqlitePool::new(Arc::clone(&settings), config.pool_size as usize, wait, Arc::clone(desc))?;
    Ok((pool, settings))
}

/// Prepared statements kept per pooled connection. Past this many the connection's cache is
/// emptied: statements of many shapes (a batch INSERT per row count, a list per filter count)
/// must not grow a PostgreSQL backend's memory without bound.
pub(crate) const STATEMENT_CACHE_LIMIT: usize = 128;

/// A pooled PostgreSQL connection while statements run on it. Dropped before
/// [`InFlight::finish`] (its caller went away: a client disconnected, a timeout fired), it
/// cancels whatever the server is running for it and closes the connection instead of handing it
/// back: the cancel request is asynchronous, and a connection handed back could by then be
/// running another caller's statement, which the cancel would hit instead.
pub(crate) struct InFlight {
    client: Option<deadpool_postgres::Object>,
    canceller: Canceller,
    armed: bool,
}

/// What cancelling an abandoned statement needs: the pool's TLS set-up (a cancel request opens
/// its own connection) and the tracker its tasks run on, which [`crate::Catalog::close`] waits for.
#[derive(Clone)]
pub(crate) struct Canceller {
    tls: Option<tokio_postgres_rustls::MakeRustlsConnect>,
    tasks: tokio_util::task::TaskTracker,
}

impl InFlight {
    /// The connection.
    pub(crate) fn client(&mut self) -> &mut deadpool_postgres::Object {
        // Only `drop` takes the client out.
        self.client.as_mut().unwrap_or_else(|| unreachable!("InFlight used after drop"))
    }

    /// Prepare `text`, through the connection's statement cache, which stays bounded.
    pub(crate) async fn prepare(&mut self, text: &str) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
        prepare_bounded(self.client(), text).await
    }

    /// The statements are over (whatever their outcome): hand the connection back to the pool.
    pub(crate) fn finish(mut self) {
        self.armed = false;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let Some(client) = self.client.take() else { return };
        if !self.armed {
            return; // back to the pool
        }
        self.canceller.abandon(client);
    }
}

/// Prepare `text` on `client` through its statement cache, emptying the cache first when it holds
/// [`STATEMENT_CACHE_LIMIT`] statements.
pub(crate) async fn prepare_bounded(
    client: &deadpool_postgres::Object,
    text: &str,
) -> Result<tokio_postgres::Statement, tokio_postgres::Error> {
    if client.statement_cache.size() >= STATEMENT_CACHE_LIMIT {
        client.statement_cache.clear();
    }
    client.prepare_cached(text).await
}

impl Canceller {
    /// A connection whose caller went away mid-use: detach it from the pool, cancel what the
    /// server runs for it, then close it (an open transaction is rolled back by the server).
    /// Never handed back: a late cancel would hit the next caller's statement.
    pub(crate) fn abandon(&self, client: deadpool_postgres::Object) {
        let client = deadpool_postgres::Object::take(client);
        let token = client.cancel_token();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        tracing::info!("statement abandoned by its caller: cancelling it and closing its connection");
        let tls = self.tls.clone();
        // One short round trip, bounded by the connect timeout; tracked, so closing the catalog
        // waits for it.
        self.tasks.spawn_on(
            async move {
                let cancelled = match tls {
                    Some(tls) => token.cancel_query(tls).await,
                    None => token.cancel_query(NoTls).await,
                };
                if let Err(e) = cancelled {
                    tracing::warn!(error = %e, "cannot cancel an abandoned statement; closing its connection");
                }
                drop(client);
            },
            &runtime,
        );
    }
}

/// A deadpool-postgres pool with the settings it was built from.
#[derive(Debug)]
pub(crate) struct PgPool {
    pub(crate) pool: deadpool_postgres::Pool,
    /// The same settings, for dedicated connections (migrations).
    pub(crate) config: tokio_postgres::Config,
    /// The TLS set-up those connections use.
    pub(crate) tls: crate::tls::Tls,
    pub(crate) desc: Arc<BackendDescription>,
    wait_timeout: Duration,
    /// Client-side bound of one use of a connection (statements, or a transaction): the
    /// server-side statement timeout plus the connect timeout; `None` without a statement
    /// timeout. It only fires when the server cannot enforce its own (frozen, or the network
    /// path gone): then the caller gets [`Error::NoAnswer`] (503) instead of waiting for TCP.
    answer_timeout: Option<Duration>,
    /// Cancel requests for abandoned statements.
    cancels: tokio_util::task::TaskTracker,
}

impl PgPool {
    fn new(pg: &PostgresBackendConfig, desc: Arc<BackendDescription>) -> Result<Self, Error> {
        let tls = crate::tls::for_backend(pg)
            .map_err(|reason| Error::Open { backend: Arc::clone(&desc), cause: Cause::Message(reason) })?;
        let wait_timeout = Duration::from_millis(pg.wait_timeout_ms);
        let create_timeout = Duration::from_millis(pg.create_timeout_ms);
        // Structured settings, never a formatted URL: nothing to escape, and the password never
        // exists inside a string that could be logged.
        let mut config = tokio_postgres::Config::new();
        config
            .host(&pg.host)
            .port(pg.port)
            .dbname(&pg.db)
            .user(&pg.user)
            .application_name(APPLICATION_NAME)
            .connect_timeout(create_timeout)
            .ssl_mode(tls.mode);
        if let Some(password) = pg.password_secret() {
            config.password(password);
        }
        let recycling_method = if pg.pool_pre_ping { RecyclingMethod::Verified } else { RecyclingMethod::Fast };
        let manager_config = ManagerConfig { recycling_method };
        // Pooled connections run requests' statements: bound each one. `config` itself stays
        // without it, for migrations (an index build may rightly take long).
        let mut pool_config = config.clone();
        if pg.statement_timeout_ms > 0 {
            pool_config.options(format!("-c statement_timeout={}", pg.statement_timeout_ms));
        }
        let manager = match tls.connector.clone() {
            Some(connector) => deadpool_postgres::Manager::from_config(pool_config, connector, manager_config),
            None => deadpool_postgres::Manager::from_config(pool_config, NoTls, manager_config),
        };
        let mut builder = deadpool_postgres::Pool::builder(manager)
            .max_size((pg.pool_size as usize).max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(wait_timeout))
            .create_timeout(Some(create_timeout))
            // A recycle check is one round trip, bounded like opening a connection.
            .recycle_timeout(Some(create_timeout));
        if let Ok(max_age) = u64::try_from(pg.pool_recycle) {
            let max_age = Duration::from_secs(max_age);
            // Refusing to recycle drops the connection; the pool then opens a fresh one.
            builder = builder.pre_recycle(Hook::sync_fn(move |_, metrics| {
                if metrics.age() >= max_age {
                    Err(HookError::message("connection is older than pool_recycle"))
                } else {
                    Ok(())
                }
            }));
        }
        let pool = builder.build().map_err(|e| Error::Open {
            backend: Arc::clone(&desc),
            cause: Cause::Message(format!("cannot build the connection pool: {e}")),
        })?;
        let answer_timeout = (pg.statement_timeout_ms > 0)
            .then(|| Duration::from_millis(pg.statement_timeout_ms).saturating_add(create_timeout));
        Ok(Self {
            pool,
            config,
            tls,
            desc,
            wait_timeout,
            answer_timeout,
            cancels: tokio_util::task::TaskTracker::new(),
        })
    }

    /// A pooled connection, or an error that says why there is none.
    pub(crate) async fn get(&self) -> Result<deadpool_postgres::Object, Error> {
        use deadpool_postgres::PoolError;
        let backend = Arc::clone(&self.desc);
        self.pool.get().await.map_err(|e| match e {
            PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => {
                Error::PoolTimeout { backend, waited: self.wait_timeout, pool_size: self.pool.status().max_size }
            }
            PoolError::Timeout(_) => Error::Connect {
                backend,
                cause: Cause::Message(format!(
                    "timed out after {} ms opening a connection",
                    self.pool.timeouts().create.unwrap_or_default().as_millis()
                )),
            },
            PoolError::Backend(e) => Error::Connect { backend, cause: Cause::Postgres(e) },
            PoolError::Closed => Error::Closed { backend },
            PoolError::PostCreateHook(e) => Error::Connect { backend, cause: Cause::Message(e.to_string()) },
            PoolError::NoRuntimeSpecified => {
                Error::Open { backend, cause: Cause::Message("the pool has no async runtime".to_owned()) }
            }
        })
    }

    /// A pooled connection for one use, watched: see [`InFlight`].
    /// How this pool's abandoned statements are cancelled.
    pub(crate) fn canceller(&self) -> Canceller {
        Canceller { tls: self.tls.connector.clone(), tasks: self.cancels.clone() }
    }

    pub(crate) async fn get_watched(&self) -> Result<InFlight, Error> {
        let client = self.get().await?;
        Ok(InFlight { client: Some(client), canceller: self.canceller(), armed: true })
    }

    /// The client-side bound of one use of a connection, if any.
    pub(crate) fn answer_timeout(&self) -> Option<Duration> {
        self.answer_timeout
    }

    /// Run one use of a watched connection (`work`), bounded by the answer timeout: past it
    /// `work` (and with it the [`InFlight`] it holds, which cancels and closes its connection)
    /// is dropped and [`Error::NoAnswer`] returned. Driver errors become [`Error::Query`].
    pub(crate) async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, tokio_postgres::Error>>,
    ) -> Result<T, Error> {
        match self.answer_timeout {
            None => work.await.map_err(|e| self.query_error(e)),
            Some(limit) => match tokio::time::timeout(limit, work).await {
                Ok(result) => result.map_err(|e| self.query_error(e)),
                Err(_) => {
                    tracing::warn!(backend = %self.desc, waited_ms = limit.as_millis(), "no answer from the database; connection abandoned");
                    Err(Error::NoAnswer { backend: Arc::clone(&self.desc), waited: limit })
                }
            },
        }
    }

    /// Close the pool, then wait for cancel requests still on their way.
    pub(crate) async fn close(&self) {
        self.pool.close();
        self.cancels.close();
        self.cancels.wait().await;
    }

    pub(crate) fn query_error(&self, e: tokio_postgres::Error) -> Error {
        Error::Query { backend: Arc::clone(&self.desc), cause: Cause::Postgres(e) }
    }

    fn status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus { max_size: s.max_size, size: s.size, available: s.available, waiting: s.waiting }
    }
}
