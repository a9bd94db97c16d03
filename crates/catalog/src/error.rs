//! The catalog's one error type, and the one place database errors are classified.
//!
//! Every message names the backend, its type and where it points (`host:port/db` or the file
//! path), and the driver's reason. None ever contains a password: connection settings are only
//! described through [`BackendDescription`], which has no field for one.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ferrostack_config::BackendFamily;

use crate::migrate::MigrationInfo;

/// How a backend is named in messages: `'sql_default' (sql_postgres at db.internal:5432/ferrostack)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendDescription {
    /// The backend's name in `storage.backends`.
    pub name: String,
    /// Its `type` (`kv_sqlite`, `sql_postgres`, ...).
    pub type_name: &'static str,
    /// Where it points: `host:port/db` for PostgreSQL, the file path for SQLite.
    pub location: String,
}

impl fmt::Display for BackendDescription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "'{}' ({} at {})", self.name, self.type_name, self.location)
    }
}

/// What a driver reported. Kept whole, so callers can classify it ([`Error::is_transient`],
/// [`Error::sql_state`]); its `Display` is the reason shown in [`Error`]'s message.
#[derive(Debug)]
pub enum Cause {
    /// From tokio-postgres (connecting, or a statement).
    Postgres(tokio_postgres::Error),
    /// From rusqlite.
    Sqlite(rusqlite::Error),
    /// From the file system (creating a SQLite file or its directory).
    Io(std::io::Error),
    /// From refinery, while reading or applying migrations.
    Migration(refinery::Error),
    /// Anything else, already worded.
    Message(String),
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Postgres(e) => match e.as_db_error() {
                Some(db) => write!(f, "{}: {} (SQLSTATE {})", db.severity(), db.message(), db.code().code()),
                None => write_chain(f, e),
            },
            Cause::Sqlite(e) => match e {
                rusqlite::Error::SqliteFailure(code, _) => {
                    write!(f, "{e} (SQLite error {}, {:?})", code.extended_code, code.code)
                }
                other => write_chain(f, other),
            },
            Cause::Io(e) => write!(f, "{e}"),
            Cause::Migration(e) => write_chain(f, e),
            Cause::Message(m) => f.write_str(m),
        }
    }
}

/// `outer: inner: innermost`, skipping a level whose text is already contained in the line.
fn write_chain(f: &mut fmt::Formatter<'_>, e: &dyn std::error::Error) -> fmt::Result {
    let mut line = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !line.contains(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = s.source();
    }
    f.write_str(&line)
}

impl std::error::Error for Cause {}

/// Everything that can go wrong in the catalog.
///
/// The driver's error is part of the message (and kept in the variant's `cause` for
/// classification) rather than exposed as `source()`, so that a chain printed with `{:#}` does not
/// repeat it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A store or caller named a backend that is not configured.
    #[error("unknown storage backend '{name}'; configured backends: [{}]", available.join(", "))]
    UnknownBackend {
        /// The name asked for.
        name: String,
        /// Every configured backend, sorted.
        available: Vec<String>,
    },
    /// A backend of the other family (kv vs sql) was named.
    #[error(
        "storage backend '{name}' is {type_name}, but a {wanted} backend is required; {wanted} backends: [{}]",
        candidates.join(", ")
    )]
    WrongFamily {
        /// The backend named.
        name: String,
        /// Its type.
        type_name: &'static str,
        /// The family required.
        wanted: BackendFamily,
        /// The configured backends of the required family, sorted.
        candidates: Vec<String>,
    },
    /// A backend could not be set up (SQLite file or directory, unsupported settings).
    #[error("cannot open storage backend {backend}: {cause}")]
    Open {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// Why.
        cause: Cause,
    },
    /// No connection could be made: refused, wrong password, unknown database, timed out.
    #[error("cannot connect to storage backend {backend}: {cause}")]
    Connect {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// The driver's reason.
        cause: Cause,
    },
    /// Every connection of the pool stayed busy for the whole wait timeout.
    #[error(
        "storage backend {backend}: no free connection within {} ms (all {pool_size} in use)",
        waited.as_millis()
    )]
    PoolTimeout {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// How long the request waited.
        waited: Duration,
        /// The pool's size.
        pool_size: usize,
    },
    /// The database did not answer a statement within the client-side bound (the backend's
    /// statement timeout plus its connect timeout): it is frozen or the network path is gone.
    /// The connection is abandoned (cancelled and closed).
    #[error("storage backend {backend} did not answer within {} ms", waited.as_millis())]
    NoAnswer {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// How long the statement waited.
        waited: Duration,
    },
    /// The catalog was closed (shutdown).
    #[error("storage backend {backend} is closed")]
    Closed {
        /// The backend.
        backend: Arc<BackendDescription>,
    },
    /// A statement failed.
    #[error("query failed on storage backend {backend}: {cause}")]
    Query {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// The driver's reason.
        cause: Cause,
    },
    /// A statement could not be built (too many bind values, a bad JSON path key, ...).
    #[error("invalid statement for storage backend {backend}: {reason}")]
    Statement {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// What is wrong.
        reason: String,
    },
    /// Reading or applying migrations failed.
    #[error("migrating storage backend {backend} failed: {cause}")]
    Migration {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// Why.
        cause: Cause,
    },
    /// The database has migrations this binary does not know: it was migrated by a newer
    /// ferrostack. Nothing is changed; upgrade ferrostack (migrations are forward-only).
    #[error(
        "the schema of storage backend {backend} is newer than this ferrostack: it has migrations this \
         binary does not know ({}); run a ferrostack version that has them",
        unknown.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    SchemaAhead {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// Applied migrations missing from this binary.
        unknown: Vec<MigrationInfo>,
    },
    /// An applied migration differs (name or checksum) from this binary's file of the same
    /// version: a migration file was edited after it was applied.
    #[error(
        "the schema of storage backend {backend} diverges from this ferrostack: applied migrations differ \
         from the files of the same version ({}); migration files must never be edited once applied",
        divergent.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    SchemaDiverged {
        /// The backend.
        backend: Arc<BackendDescription>,
        /// The applied migrations whose file differs.
        divergent: Vec<MigrationInfo>,
    },
    /// A typed getter could not read a column of a [`crate::Row`].
    #[error("column '{column}': {problem}")]
    Column {
        /// The column asked for.
        column: String,
        /// What went wrong (missing, NULL, wrong type, invalid JSON, ...).
        problem: String,
    },
}

impl Error {
    /// The backend this error is about, when it is about one.
    pub fn backend(&self) -> Option<&BackendDescription> {
        match self {
            Error::Open { backend, .. }
            | Error::Connect { backend, .. }
            | Error::PoolTimeout { backend, .. }
            | Error::NoAnswer { backend, .. }
            | Error::Closed { backend }
            | Error::Query { backend, .. }
            | Error::Statement { backend, .. }
            | Error::Migration { backend, .. }
            | Error::SchemaAhead { backend, .. }
            | Error::SchemaDiverged { backend, .. } => Some(backend),
            Error::UnknownBackend { .. } | Error::WrongFamily { .. } | Error::Column { .. } => None,
        }
    }

    /// The driver error behind this one, if any.
    pub fn cause(&self) -> Option<&Cause> {
        match self {
            Error::Open { cause, .. }
            | Error::Connect { cause, .. }
            | Error::Query { cause, .. }
            | Error::Migration { cause, .. } => Some(cause),
            _ => None,
        }
    }

    /// The PostgreSQL SQLSTATE code (`23505`, `40001`, ...), when PostgreSQL reported one.
    pub fn sql_state(&self) -> Option<&str> {
        match self.cause() {
            Some(Cause::Postgres(e)) => e.code().map(|c| c.code()),
            _ => None,
        }
    }

    /// Whether retrying the same operation later may succeed: the connection was lost or could
    /// not be made for a passing reason, the pool stayed busy, PostgreSQL reported a
    /// serialization failure (`40001`) or deadlock (`40P01`), or SQLite was busy or locked.
    /// Wrong passwords, unknown databases and failing statements are not transient.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::PoolTimeout { .. } | Error::NoAnswer { .. } => true,
            Error::Connect { cause, .. } => cause_is_transient(cause, true),
            Error::Query { cause, .. } => cause_is_transient(cause, false),
            _ => false,
        }
    }

    /// Whether the database is unavailable rather than the statement wrong: no connection could
    /// be made or none was free in time, the pool is closed, the error is transient
    /// ([`Error::is_transient`]), or the statement was cancelled by a timeout (PostgreSQL
    /// `57014`, e.g. `statement_timeout`). Clients are told to retry later.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::PoolTimeout { .. } | Error::NoAnswer { .. } | Error::Closed { .. }
        ) || self.is_transient()
            || self.sql_state() == Some("57014")
    }

    /// Whether the database refused the statement for the data it carries, for good: PostgreSQL
    /// class `22` (data exception: `22P05` untranslatable character, `22021` invalid byte
    /// sequence, a value out of range), class `23` (integrity constraint) and class `54`
    /// (program limit exceeded: `54000`, a value or row too large); SQLite constraint, too-big,
    /// type-mismatch and range errors. Retrying the same rows can never succeed.
    pub fn is_content_refusal(&self) -> bool {
        if let Some(state) = self.sql_state() {
            return state.starts_with("22") || state.starts_with("23") || state.starts_with("54");
        }
        match self.cause() {
            Some(Cause::Sqlite(rusqlite::Error::SqliteFailure(code, _))) => matches!(
                code.code,
                rusqlite::ErrorCode::ConstraintViolation
                    | rusqlite::ErrorCode::TooBig
                    | rusqlite::ErrorCode::TypeMismatch
            ),
            Some(Cause::Sqlite(rusqlite::Error::ToSqlConversionFailure(_))) => true,
            _ => false,
        }
    }

    /// Why the database refused a statement, as the driver said it, without the backend's name or
    /// address: safe to tell a client (`ERROR: unsupported Unicode escape sequence (SQLSTATE
    /// 22P05)`). Never contains bound values (PostgreSQL's `DETAIL` is left out).
    pub fn refusal_reason(&self) -> String {
        match self {
            Error::Query { cause, .. } | Error::Connect { cause, .. } => cause.to_string(),
            Error::Statement { reason, .. } => reason.clone(),
            Error::PoolTimeout { waited, .. } => format!("no free connection within {} ms", waited.as_millis()),
            Error::NoAnswer { waited, .. } => format!("no answer within {} ms", waited.as_millis()),
            Error::Closed { .. } => "the storage backend is closed".to_owned(),
            other => other.to_string(),
        }
    }

    /// Whether a unique or primary-key constraint rejected the statement (PostgreSQL `23505`,
    /// SQLite `SQLITE_CONSTRAINT_UNIQUE` / `_PRIMARYKEY`).
    pub fn is_unique_violation(&self) -> bool {
        match self.cause() {
            Some(Cause::Postgres(e)) => e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION),
            Some(Cause::Sqlite(rusqlite::Error::SqliteFailure(code, _))) => matches!(
                code.extended_code,
                rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE | rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            ),
            _ => false,
        }
    }
}

/// `connecting`: the cause is a connection failure, where a worded message is a timeout.
fn cause_is_transient(cause: &Cause, connecting: bool) -> bool {
    match cause {
        Cause::Postgres(e) => {
            if e.is_closed() {
                return true;
            }
            match e.code() {
                Some(code) => {
                    let code = code.code();
                    // 40001 serialization_failure, 40P01 deadlock_detected, class 08 connection
                    // exceptions, 57P01..57P03 server shutting down or starting up, 53300 too many
                    // connections, 57014 query_canceled (the statement timeout, or a cancel).
                    matches!(code, "40001" | "40P01" | "57P01" | "57P02" | "57P03" | "53300" | "57014")
                        || code.starts_with("08")
                }
                // No SQLSTATE: an I/O error, a timeout or a refused connection.
                None => has_io_source(e) || e.to_string().contains("timeout"),
            }
        }
        Cause::Sqlite(rusqlite::Error::SqliteFailure(code, _)) => {
            // OperationInterrupted: the statement timeout (or the caller leaving) stopped it.
            matches!(
                code.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::OperationInterrupted
            )
        }
        Cause::Message(_) | Cause::Io(_) => connecting,
        Cause::Sqlite(_) | Cause::Migration(_) => false,
    }
}

fn has_io_source(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = e.source();
    while let Some(s) = source {
        if s.is::<std::io::Error>() {
            return true;
        }
        source = s.source();
    }
    false
}
