//! The write path: the generic batch writer ([`ferrostack_writer`]) on the `inference_store`
//! table, with [`StoredCompletion`] as its row. Duplicate ids: the same owner's row is replaced;
//! another owner's row is left untouched (`durability: sync` callers get [`Error::IdTaken`]).

use std::sync::Arc;

use ferrostack_authz::{AuthorizedTable, StoreError, User};
use ferrostack_catalog::json::json_size;
use ferrostack_catalog::{Db, JsonText, Value};
use ferrostack_config::{AccessRule, InferenceStoreConfig};
use ferrostack_writer::{
    QueueMetrics, ReplayReport, SpillError, WriteError, WriteRow, Writer, WriterConfig, WriterHealth,
};

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

    fn size(&self) -> usize {
        self.id.len()
            + 8
            + self.model.len()
            + self.choices.get().len()
            + self.input_messages.get().len()
            + self.metadata.as_ref().map_or(0, map_size)
            + self.upstream_id.as_ref().map_or(0, String::len)
    }

    fn from_values(values: Vec<Value>) -> Option<Self> {
        let [id, created, model, choices, input_messages, metadata, upstream_id]: [Value; 7] =
            values.try_into().ok()?;
        let (Value::Text(id), Value::Int(created), Value::Text(model)) = (id, created, model) else {
            return None;
        };
        // Written as text; spilled (and so replayed) as documents.
        let document = |v: Value| match v {
            Value::JsonText(t) => Some(t),
            Value::Json(j) => Some(JsonText::from_value(&j)),
            _ => None,
        };
        let (choices, input_messages) = (document(choices)?, document(input_messages)?);
        let metadata = match metadata {
            Value::Null => None,
            Value::Json(serde_json::Value::Object(m)) => Some(m),
            _ => return None,
        };
        let upstream_id = match upstream_id {
            Value::Null => None,
            Value::Text(t) => Some(t),
            _ => return None,
        };
        Some(StoredCompletion { id, created, model, choices, input_messages, metadata, upstream_id })
    }
}

/// Bytes of a metadata map as the row counts them (about its JSON text).
fn map_size(map: &serde_json::Map<String, serde_json::Value>) -> usize {
    map.iter().map(|(k, v)| k.len() + 4 + json_size(v)).sum::<usize>() + 2
}

/// A place reserved in the inference store's write queue, held while the upstream is called:
/// [`StoreReservation::store`] writes the completion into it; dropped unused, the place frees.
#[derive(Debug)]
pub struct StoreReservation {
    reservation: ferrostack_writer::Reservation<StoredCompletion>,
}

impl StoreReservation {
    /// Whether [`StoreReservation::store`] waits for the commit (`durability: sync`); without it,
    /// the first poll of `store` queues the completion and completes.
    pub fn waits_for_commit(&self) -> bool {
        self.reservation.waits_for_commit()
    }

    /// Store a completion owned by `caller` in the reserved place: see [`InferenceStore::store`].
    pub async fn store(self, record: StoredCompletion, caller: Option<&User>) -> Result<(), Error> {
        record.check()?;
        self.reservation.write(record, caller).await.map_err(Error::from)
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        match e {
            WriteError::ShuttingDown { .. } => Error::ShuttingDown,
            WriteError::Failed { id, .. } => Error::WriteFailed { id },
            WriteError::KeyTaken { id, .. } => Error::IdTaken { id },
            WriteError::QueueFull { waited, .. } => Error::QueueFull { waited },
            WriteError::CommitTimeout { id, waited, .. } => Error::CommitTimeout { id, waited },
            WriteError::TooLarge { id, size, limit, .. } => Error::TooLarge { id, size, limit },
            WriteError::Refused { id, reason, content, .. } => Error::Refused { id, reason, content },
        }
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
        Self::start_with(db, &WriterConfig::from(config), policy)
    }

    /// [`InferenceStore::start`] with the writer's settings given whole (a spill path resolved
    /// by the caller, for one).
    pub fn start_with(
        db: Db,
        config: &WriterConfig,
        policy: impl Into<Arc<[AccessRule]>>,
    ) -> Result<(InferenceStore, Writers), Error> {
        let table = AuthorizedTable::new(db, TABLE, "id", "created", policy)
            .map_err(|e| Error::Store(StoreError::Compile(e)))?;
        let (writer, writers) = Writer::start(&table, config).map_err(Error::Start)?;
        Ok((InferenceStore { table, writer, max_row_bytes: config.max_row_bytes }, writers))
    }

    /// Store a completion owned by `caller` (anonymous: unowned). Waits while the queue is full.
    /// `durability: async` returns once the row is queued; `sync` once its batch committed, with
    /// [`Error::WriteFailed`] when the database rejected it and [`Error::IdTaken`] when its id
    /// belongs to another owner. [`Error::ShuttingDown`] once shutdown began.
    pub async fn store(&self, record: StoredCompletion, caller: Option<&User>) -> Result<(), Error> {
        record.check()?;
        self.writer.write(record, caller).await.map_err(Error::from)
    }

    /// Reserve a place in the write queue before calling the upstream: waits at most
    /// `queue_wait_timeout_ms` for a free place and for the queue's bytes to be under
    /// `max_queue_bytes` ([`Error::QueueFull`] then: answer 503 without calling it).
    pub async fn reserve(&self) -> Result<StoreReservation, Error> {
        Ok(StoreReservation { reservation: self.writer.reserve().await? })
    }

    /// [`InferenceStore::reserve`] charging `estimate` bytes (the request's messages and
    /// metadata, say) to the queue's byte bound (`max_queue_bytes`) now rather than when the row
    /// is stored, which keeps the queue closer to its bound: see
    /// [`ferrostack_writer::Writer::reserve_sized`].
    pub async fn reserve_sized(&self, estimate: usize) -> Result<StoreReservation, Error> {
        Ok(StoreReservation { reservation: self.writer.reserve_sized(estimate).await? })
    }

    /// Refuse, before the upstream is called, a request whose messages and metadata alone are
    /// over `max_row_bytes` ([`Error::RequestTooLarge`]): its completion could never be stored.
    /// `input_messages_bytes`: the length of the messages' compact JSON text, as the row counts
    /// it (known before the text is copied for the row).
    pub fn check_request_size(
        &self,
        input_messages_bytes: usize,
        metadata: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<(), Error> {
        let size = input_messages_bytes + metadata.map_or(0, json_size);
        if size > self.max_row_bytes {
            return Err(Error::RequestTooLarge { size, limit: self.max_row_bytes });
        }
        Ok(())
    }

    /// `max_row_bytes`: the largest completion (request messages, metadata and answer) stored.
    pub fn max_row_bytes(&self) -> usize {
        self.max_row_bytes
    }

    /// How the writer is doing (queue depth, oldest row, stall), for readiness.
    pub fn writer_health(&self) -> WriterHealth {
        self.writer.health()
    }

    /// Write back what earlier runs spilled at shutdown (call before serving); see
    /// [`ferrostack_writer::Writer::replay`].
    pub async fn replay_spilled(&self) -> Result<ReplayReport, SpillError> {
        self.writer.replay().await
    }

    /// The spill file, if any.
    pub fn spill_path(&self) -> Option<&std::path::Path> {
        self.writer.spill_path()
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
