//! Schema migrations: refinery files embedded at build time, one set per dialect
//! (`migrations/postgres`, `migrations/sqlite`), applied to every backend of that dialect.
//!
//! - Status never changes the database: a database that was never migrated has no history
//!   table, and shows every migration pending.
//! - PostgreSQL runs take a session advisory lock ([`MIGRATION_LOCK_KEY`]) on a dedicated
//!   connection, so two replicas never race: the second waits, then finds nothing pending.
//! - SQLite runs take an exclusive lock on a `<db file>.migrate-lock` file next to the database,
//!   for the same reason across processes.
//! - A database migrated by a newer ferrostack (history has versions this binary lacks) or whose
//!   history differs from the files is reported as such by status, and refused by migrate.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use ferrostack_config::Dialect;
use refinery::{Migration, Runner};
use tokio_postgres::NoTls;

use crate::catalog::Catalog;
use crate::error::{BackendDescription, Cause, Error};
use crate::pool::{Backend, PgPool, Pool};
use crate::sqlite::SqliteSettings;

mod embedded {
    pub(super) mod postgres {
        refinery::embed_migrations!("../../migrations/postgres");
    }
    pub(super) mod sqlite {
        refinery::embed_migrations!("../../migrations/sqlite");
    }
}

/// The key of the PostgreSQL advisory lock held while migrating: the ASCII bytes of `FERROSTK`
/// read as a big-endian integer (`0x4645_5252_4F53_544B`).
pub const MIGRATION_LOCK_KEY: i64 = 0x4645_5252_4F53_544B;

/// The table refinery records applied migrations in.
pub const HISTORY_TABLE: &str = "refinery_schema_history";

/// One migration: `V{version}__{name}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct MigrationInfo {
    /// The number in the file name.
    pub version: i64,
    /// The rest of the file name.
    pub name: String,
}

impl fmt::Display for MigrationInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V{}__{}", self.version, self.name)
    }
}

impl From<&Migration> for MigrationInfo {
    fn from(m: &Migration) -> Self {
        MigrationInfo { version: i64::from(m.version()), name: m.name().to_owned() }
    }
}

/// Where a backend's schema stands relative to this binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaState {
    /// Every migration of this binary is applied, nothing else is.
    Current,
    /// Some migrations of this binary are pending (`ferrostack migrate` applies them).
    Behind,
    /// The database has migrations this binary does not know: it was migrated by a newer
    /// ferrostack. Run that version (migrations are forward-only).
    Ahead,
    /// An applied migration differs from this binary's file of the same version (the file was
    /// edited after it was applied). Needs a person.
    Diverged,
}

/// The migration state of one backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendMigrations {
    /// The backend's name.
    pub backend: String,
    /// Its dialect (which migration set applies).
    pub dialect: Dialect,
    /// Migrations of this binary recorded as applied.
    pub applied: Vec<MigrationInfo>,
    /// Migrations of this binary not applied yet.
    pub pending: Vec<MigrationInfo>,
    /// Recorded as applied, but unknown to this binary (a newer ferrostack applied them).
    pub unknown: Vec<MigrationInfo>,
    /// Recorded as applied with a different name or checksum than this binary's file.
    pub divergent: Vec<MigrationInfo>,
}

impl BackendMigrations {
    /// Where the schema stands; divergence wins over ahead, ahead over behind.
    pub fn state(&self) -> SchemaState {
        if !self.divergent.is_empty() {
            SchemaState::Diverged
        } else if !self.unknown.is_empty() {
            SchemaState::Ahead
        } else if !self.pending.is_empty() {
            SchemaState::Behind
        } else {
            SchemaState::Current
        }
    }
}

/// The migrations this binary carries for `dialect`, by version.
pub fn embedded_migrations(dialect: Dialect) -> Vec<MigrationInfo> {
    let mut list: Vec<MigrationInfo> = runner(dialect).get_migrations().iter().map(MigrationInfo::from).collect();
    list.sort();
    list
}

fn runner(dialect: Dialect) -> Runner {
    match dialect {
        Dialect::Postgres => embedded::postgres::migrations::runner(),
        Dialect::Sqlite => embedded::sqlite::migrations::runner(),
    }
}

/// Compare recorded history with this binary's migrations.
fn compare(backend: &BackendDescription, dialect: Dialect, history: &[Migration]) -> BackendMigrations {
    let runner = runner(dialect);
    let known = runner.get_migrations();
    let mut status = BackendMigrations {
        backend: backend.name.clone(),
        dialect,
        applied: Vec::new(),
        pending: Vec::new(),
        unknown: Vec::new(),
        divergent: Vec::new(),
    };
    for recorded in history {
        match known.iter().find(|m| m.version() == recorded.version()) {
            None => status.unknown.push(recorded.into()),
            // refinery's equality: same version, name and checksum.
            Some(file) if file != recorded => status.divergent.push(recorded.into()),
            Some(_) => status.applied.push(recorded.into()),
        }
    }
    for file in known {
        if !history.iter().any(|m| m.version() == file.version()) {
            status.pending.push(file.into());
        }
    }
    status.applied.sort();
    status.pending.sort();
    status.unknown.sort();
    status.divergent.sort();
    status
}

/// Refuse to touch a database that is ahead of this binary or has diverged.
fn check_runnable(backend: &Arc<BackendDescription>, status: BackendMigrations) -> Result<(), Error> {
    match status.state() {
        SchemaState::Diverged => {
            Err(Error::SchemaDiverged { backend: Arc::clone(backend), divergent: status.divergent })
        }
        SchemaState::Ahead => Err(Error::SchemaAhead { backend: Arc::clone(backend), unknown: status.unknown }),
        SchemaState::Current | SchemaState::Behind => Ok(()),
    }
}

fn migration_error(backend: &Arc<BackendDescription>, cause: Cause) -> Error {
    Error::Migration { backend: Arc::clone(backend), cause }
}

impl Catalog {
    /// Applied and pending migrations of every backend, sorted by backend name. Changes
    /// nothing, not even on a database that was never migrated.
    pub async fn migration_status(&self) -> Result<Vec<BackendMigrations>, Error> {
        let mut out = Vec::new();
        for backend in self.all() {
            out.push(backend_status(backend).await?);
        }
        Ok(out)
    }

    /// Apply pending migrations to every backend, one backend at a time, in name order; what
    /// was applied to each (empty when it was current). Stops at the first failure. Refuses a
    /// backend whose schema is ahead of this binary ([`Error::SchemaAhead`]) or diverged
    /// ([`Error::SchemaDiverged`]) without changing it.
    pub async fn migrate(&self) -> Result<Vec<(String, Vec<MigrationInfo>)>, Error> {
        let mut out = Vec::new();
        for backend in self.all() {
            let applied = match &backend.pool {
                Pool::Postgres(pg) => migrate_postgres(pg).await?,
                Pool::Sqlite(_, settings) => migrate_sqlite(Arc::clone(settings), Arc::clone(&backend.desc)).await?,
            };
            for m in &applied {
                tracing::info!(backend = %backend.desc, migration = %m, "applied migration");
            }
            out.push((backend.desc.name.clone(), applied));
        }
        Ok(out)
    }
}

async fn backend_status(backend: &Backend) -> Result<BackendMigrations, Error> {
    match &backend.pool {
        Pool::Postgres(pg) => {
            let mut client = pg.get().await?;
            let client: &mut tokio_postgres::Client = &mut client;
            let history = postgres_history(client, &pg.desc).await?;
            Ok(compare(&pg.desc, Dialect::Postgres, &history))
        }
        Pool::Sqlite(_, settings) => {
            let settings = Arc::clone(settings);
            let desc = Arc::clone(&backend.desc);
            blocking(&backend.desc, move || {
                let mut conn = settings
                    .connect()
                    .map_err(|e| Error::Connect { backend: Arc::clone(&desc), cause: Cause::Sqlite(e) })?;
                let history = sqlite_history(&mut conn, &desc)?;
                Ok(compare(&desc, Dialect::Sqlite, &history))
            })
            .await
        }
    }
}

/// The recorded history; empty, without creating anything, when there is no history table.
async fn postgres_history(
    client: &mut tokio_postgres::Client,
    backend: &Arc<BackendDescription>,
) -> Result<Vec<Migration>, Error> {
    let query_error = |e| Error::Query { backend: Arc::clone(backend), cause: Cause::Postgres(e) };
    let exists: bool = client
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&HISTORY_TABLE])
        .await
        .map_err(query_error)?
        .try_get(0)
        .map_err(query_error)?;
    if !exists {
        return Ok(Vec::new());
    }
    runner(Dialect::Postgres)
        .get_applied_migrations_async(client)
        .await
        .map_err(|e| migration_error(backend, Cause::Migration(e)))
}

fn sqlite_history(conn: &mut rusqlite::Connection, backend: &Arc<BackendDescription>) -> Result<Vec<Migration>, Error> {
    let exists: bool = conn
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1)",
            [HISTORY_TABLE],
            |row| row.get(0),
        )
        .map_err(|e| Error::Query { backend: Arc::clone(backend), cause: Cause::Sqlite(e) })?;
    if !exists {
        return Ok(Vec::new());
    }
    runner(Dialect::Sqlite).get_applied_migrations(conn).map_err(|e| migration_error(backend, Cause::Migration(e)))
}

/// Migrate one PostgreSQL backend on a dedicated connection, under the advisory lock.
async fn migrate_postgres(pg: &PgPool) -> Result<Vec<MigrationInfo>, Error> {
    let backend = &pg.desc;
    let connect_error = |e| Error::Connect { backend: Arc::clone(backend), cause: Cause::Postgres(e) };
    // The connection task ends when the client is dropped (at the end of this function); the
    // set aborts it if this function is left early.
    let mut connection = tokio::task::JoinSet::new();
    let mut client = match pg.tls.connector.clone() {
        Some(tls) => {
            let (client, conn) = pg.config.connect(tls).await.map_err(connect_error)?;
            connection.spawn(conn);
            client
        }
        None => {
            let (client, conn) = pg.config.connect(NoTls).await.map_err(connect_error)?;
            connection.spawn(conn);
            client
        }
    };
    let query_error = |e| Error::Query { backend: Arc::clone(backend), cause: Cause::Postgres(e) };

    // refinery's `CREATE TABLE IF NOT EXISTS` draws a NOTICE on every run after the first; the
    // driver would log each one. They say nothing useful here.
    client.batch_execute("SET client_min_messages TO warning").await.map_err(query_error)?;
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY]).await.map_err(query_error)?;
    let result = async {
        let history = postgres_history(&mut client, backend).await?;
        check_runnable(backend, compare(backend, Dialect::Postgres, &history))?;
        let report = runner(Dialect::Postgres)
            .run_async(&mut client)
            .await
            .map_err(|e| migration_error(backend, Cause::Migration(e)))?;
        Ok(report.applied_migrations().iter().map(MigrationInfo::from).collect())
    }
    .await;
    // Ending the session would release the lock too; unlock explicitly all the same.
    if let Err(e) = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY]).await {
        tracing::warn!(backend = %backend, error = %e, "releasing the migration lock failed; it ends with the session");
    }
    drop(client);
    let _ = connection.join_next().await;
    result
}

/// Migrate one SQLite backend on a dedicated connection, holding the lock file.
async fn migrate_sqlite(
    settings: Arc<SqliteSettings>,
    backend: Arc<BackendDescription>,
) -> Result<Vec<MigrationInfo>, Error> {
    let desc = Arc::clone(&backend);
    blocking(&desc, move || {
        let lock_path = lock_file_path(&settings.path);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .and_then(|file| file.lock().map(|()| file))
            .map_err(|e| {
                migration_error(
                    &backend,
                    Cause::Message(format!("cannot lock {} for migrating: {e}", lock_path.display())),
                )
            })?;
        let mut conn = settings
            .connect()
            .map_err(|e| Error::Connect { backend: Arc::clone(&backend), cause: Cause::Sqlite(e) })?;
        let history = sqlite_history(&mut conn, &backend)?;
        check_runnable(&backend, compare(&backend, Dialect::Sqlite, &history))?;
        let report =
            runner(Dialect::Sqlite).run(&mut conn).map_err(|e| migration_error(&backend, Cause::Migration(e)))?;
        drop(conn);
        drop(lock);
        Ok(report.applied_migrations().iter().map(MigrationInfo::from).collect())
    })
    .await
}

/// `<db file>.migrate-lock`, next to the database.
fn lock_file_path(db: &std::path::Path) -> PathBuf {
    let mut name = db.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".migrate-lock");
    db.with_file_name(name)
}

/// Run blocking work (SQLite, file locks) on the blocking pool.
async fn blocking<T: Send + 'static>(
    backend: &Arc<BackendDescription>,
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(migration_error(backend, Cause::Message(format!("the migration thread failed: {e}")))))
}
