//! ferrostack's inference store: stored chat completions.
//!
//! - The write path ([`InferenceStore::store`]): a bounded queue drained by batch writers, each
//!   batch one multi-row `INSERT ... ON CONFLICT` in one transaction, transient errors retried
//!   with backoff, poison rows isolated by bisection, `durability: sync` as group commit, and a
//!   draining [`Writers::shutdown`]. Counters for telemetry in [`QueueMetrics`].
//! - The read API ([`InferenceStore::list`], [`InferenceStore::get`],
//!   [`InferenceStore::messages`], [`InferenceStore::update_metadata`],
//!   [`InferenceStore::delete`]): every statement goes through the authorized store layer
//!   ([`ferrostack_authz::AuthorizedTable`]), so the access policy is part of the SQL.
//!
//! The table (`inference_store`) is created by the migrations `V2__inference_store`.

mod error;
mod queue;
mod read;
mod record;

pub use error::Error;
pub use queue::{QueueMetrics, ShutdownReport, Writers};
pub use read::{DEFAULT_LIMIT, ListPage, ListParams, MAX_LIMIT, MessagesPage, MessagesParams, Order};
pub use record::StoredCompletion;

use std::sync::Arc;

use ferrostack_authz::AuthorizedTable;

/// The table the migrations create.
pub const TABLE: &str = ferrostack_config::tables::INFERENCE;

/// The inference store: write queue and read API. Cheap to clone; every clone shares the queue.
///
/// Created with [`InferenceStore::start`], which also returns the [`Writers`] to shut down.
#[derive(Debug, Clone)]
pub struct InferenceStore {
    table: AuthorizedTable,
    queue: Arc<queue::Shared>,
}
