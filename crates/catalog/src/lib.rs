//! ferrostack's storage catalog: the named backends of the run config, each opened once with one
//! pool shared by every store that names it.
//!
//! - [`Catalog`]: open, look up ([`Catalog::kv`], [`Catalog::sql`]), ping
//!   ([`Catalog::readiness`]), migrate ([`Catalog::migrate`], [`Catalog::migration_status`]),
//!   close.
//! - [`KvStore`]: the key/value contract on `kv_sqlite` and `kv_postgres`.
//! - [`sql`]: the typed SQL layer for store crates ([`Db`], [`Sql`], [`Value`], [`Row`]).
//! - [`Error`]: one error type; messages name the backend and where it points, never a
//!   password.
//!
//! `docs/storage.md` describes the run-time behaviour of each setting.

mod catalog;
mod error;
mod ids;
pub mod json;
mod kv;
mod migrate;
mod pool;
pub mod sql;
mod sqlite;
mod tls;

pub use catalog::{BackendStatus, Catalog, READINESS_TIMEOUT};
pub use error::{BackendDescription, Cause, Error};
pub use ferrostack_config::{BackendFamily, Dialect};
pub use ids::random_id;
pub use kv::KvStore;
pub use migrate::{
    BackendMigrations, HISTORY_TABLE, MIGRATION_LOCK_KEY, MigrationInfo, SchemaState, embedded_migrations,
};
pub use pool::{APPLICATION_NAME, PoolStatus};
pub use sql::{Db, Executor, FromValue, JsonText, Row, Sql, Tx, Value};
