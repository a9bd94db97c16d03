//! The write path: the generic batch writer ([`ferrostack_writer`]) on the `inference_store`
//! table, with [`StoredCompletion`] as its row. Duplicate ids: the same owner's row is replaced;
//! another owner's row is left untouched (`durability: sync` callers get [`Error::IdTaken`]).

use std::sync::Arc;

use ferrostack_authz::{AuthorizedTable, StoreError, User};
use ferrostack_catalog::{Db, Value};
use ferrostack_config::{AccessRule, InferenceStoreConfig};
use ferrostack_writer::{QueueMetrics, WriteError, WriteRow, Writer, WriterConfig};

use crate::record::{COLUMNS, StoredCompletion};
use crate::{Error, InferenceStore, TABLE};

/// The writer tasks of an [`InferenceStore`]; shut them down with `shutdown(grace)`.
pub type Writers = ferrostack_writer::Writers<StoredCompletion>;

impl WriteRow for StoredCompletion {
    const TABLE: &'static str = TABLE;
    const COLUMNS: &'static [&'static str] = &COLUMNS;
    const KEY: &'static [&'static str] = &["id"];
    const REPLACED: &'static [&'static str] =
        &["created", "model", "choices", "input_messages", "metadata", "upstream_id"];

    fn id(&self) -> String {
        self.id.clone()
    }

    fn values(&self) -> Vec<Value> {
        StoredCompletion::values(self)
    }

    fn key(&self) -> Vec<Value> {
        vec![Value::from(self.id.as_str())]
    }
}

impl InferenceStore {
    /// Start the store on `db` with the store reference's queue settings and the access policy
    /// (`server.auth.access_policy`; empty: the default policy). Spawns the writers on the
    /// current Tokio runtime (see [`ferrostack_writer`]). The table must exist (migrations).
    pub fn start(
        db: Db,
        config: &InferenceStoreConfig,
        policy: impl Into<Arc<[AccessRule]>>,
    ) -> Result<(InferenceStore, Writers), Error> {
        let table = AuthorizedTable::new(db, TABLE, "id", "created", policy)
            .map_err(|e| Error::Store(StoreError::Compile(e)))?;
        let (writer, writers) = Writer::start(&table, &WriterConfig::from(config)).map_err(Error::Start)?;
        Ok((InferenceStore { table, writer }, writers))
    }

    /// Store a completion owned by `caller` (anonymous: unowned). Waits while the queue is full.
    /// `durability: async` returns once the row is queued; `sync` once its batch committed, with
    /// [`Error::WriteFailed`] when the database rejected it and [`Error::IdTaken`] when its id
    /// belongs to another owner. [`Error::ShuttingDown`] once shutdown began.
    pub async fn store(&self, record: StoredCompletion, caller: Option<&User>) -> Result<(), Error> {
        record.check()?;
        self.writer.write(record, caller).await.map_err(|e| match e {
            WriteError::ShuttingDown { .. } => Error::ShuttingDown,
            WriteError::Failed { id, .. } => Error::WriteFailed { id },
            WriteError::KeyTaken { id, .. } => Error::IdTaken { id },
        })
    }

    /// Wait until every row queued so far is written or given up.
    pub async fn flush(&self) {
        self.writer.flush().await;
    }

    /// The write queue's counters.
    pub fn metrics(&self) -> &QueueMetrics {
        self.writer.metrics()
    }

    /// The write queue's counters, shared: for readers that outlive a borrow (metric callbacks).
    pub fn metrics_handle(&self) -> Arc<QueueMetrics> {
        self.writer.metrics_handle()
    }
}
