//! ferrostack's inference store: stored chat completions.
//!
//! - The write path ([`InferenceStore::store`]): the generic batch writer ([`ferrostack_writer`])
//!   with [`StoredCompletion`] as its row: a bounded queue, batches as one multi-row
//!   owner-stamped upsert in one transaction, retries, poison-row bisection, `durability: sync`
//!   as group commit, a draining `Writers::shutdown`. Counters for telemetry in [`QueueMetrics`].
//! - The read API ([`InferenceStore::list`], [`InferenceStore::get`],
//!   [`InferenceStore::messages`], [`InferenceStore::update_metadata`],
//!   [`InferenceStore::delete`]): every statement goes through the authorized store layer
//!   ([`ferrostack_authz::AuthorizedTable`]), so the access policy is part of the SQL.
//!
//! The table (`inference_store`) is created by the migrations `V2__inference_store`.

mod error;
mod read;
mod record;
mod write;

pub use error::Error;
pub use ferrostack_writer::{QueueMetrics, ReplayReport, ShutdownReport, SpillError, WriterConfig, WriterHealth};
pub use read::{DEFAULT_LIMIT, ListPage, ListParams, MAX_LIMIT, MessagesPage, MessagesParams, Order};
pub use record::StoredCompletion;
pub use write::{StoreReservation, Writers};

use ferrostack_authz::AuthorizedTable;
use ferrostack_writer::Writer;

/// The table the migrations create.
pub const TABLE: &str = ferrostack_config::tables::INFERENCE;

/// The inference store: write queue and read API. Cheap to clone; every clone shares the queue.
///
/// Created with [`InferenceStore::start`], which also returns the [`Writers`] to shut down.
#[derive(Debug, Clone)]
pub struct InferenceStore {
    table: AuthorizedTable,
    writer: Writer<StoredCompletion>,
    max_row_bytes: usize,
}
