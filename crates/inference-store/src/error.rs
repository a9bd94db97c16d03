//! The inference store's error type: what went wrong, typed. The HTTP status of each variant is
//! chosen by the http crate's code table, nowhere else.

use ferrostack_authz::StoreError;

/// What can go wrong in the inference store. Messages never contain message contents.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A list cursor (`after`) that is not a completion the caller can see.
    #[error("Record with id='{id}' not found in table '{table}'")]
    AfterNotFound {
        /// The `after` value given.
        id: String,
        /// The table searched.
        table: &'static str,
    },
    /// A messages cursor (`after`) that is not a message of the completion.
    #[error("Failed to list chat completion messages: cursor '{cursor}' not found in completion '{completion}'.")]
    CursorNotFound {
        /// The `after` value given.
        cursor: String,
        /// The completion listed.
        completion: String,
    },
    /// A query parameter out of range.
    #[error("invalid '{param}': {message}")]
    InvalidParam {
        /// The parameter.
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The completion does not exist or the caller may not read it.
    #[error("Chat completion with id {id} not found")]
    NotFound {
        /// The id asked for.
        id: String,
    },
    /// The caller may read the completion but not update or delete it.
    #[error("not allowed to {action} chat completion {id}")]
    Forbidden {
        /// The id.
        id: String,
        /// `update` or `delete`.
        action: &'static str,
    },
    /// A completion to store is malformed.
    #[error("invalid chat completion: {0}")]
    InvalidCompletion(String),
    /// The store no longer accepts writes (shutdown began).
    #[error("the inference store is shutting down and accepts no more writes")]
    ShuttingDown,
    /// `durability: sync`: the row could not be written (logged with its id).
    #[error("chat completion {id} could not be stored")]
    WriteFailed {
        /// The completion id.
        id: String,
    },
    /// `durability: sync`: the id is taken by another owner's row, which was left unchanged.
    #[error("chat completion id {id} is taken by another owner; the stored row was left unchanged")]
    IdTaken {
        /// The completion id.
        id: String,
    },
    /// No place in the write queue freed in time (the database is slow or down): retry later.
    #[error("the store's write queue stayed full for {} ms (the database is slow or unavailable); retry later", waited.as_millis())]
    QueueFull {
        /// How long the request waited.
        waited: std::time::Duration,
    },
    /// `durability: sync`: the completion was not committed in time (the database is slow or
    /// down); it is not stored unless its batch had already started.
    #[error("chat completion {id} was not stored within {} ms (the database is slow or unavailable); retry later", waited.as_millis())]
    CommitTimeout {
        /// The completion id.
        id: String,
        /// How long the request waited.
        waited: std::time::Duration,
    },
    /// The completion is larger than `max_row_bytes`.
    #[error("chat completion {id} is {size} bytes to store; the limit (max_row_bytes) is {limit} bytes")]
    TooLarge {
        /// The completion id.
        id: String,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The request is larger than `max_row_bytes` before the answer is even added.
    #[error("the messages and metadata to store are {size} bytes; the limit (max_row_bytes) is {limit} bytes")]
    RequestTooLarge {
        /// Their size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The database refused the completion for good (logged with its id).
    #[error("chat completion {id} could not be stored: the database refused it: {reason}")]
    Refused {
        /// The completion id.
        id: String,
        /// Why, as the database said it.
        reason: String,
        /// Whether its content is at fault.
        content: bool,
    },
    /// The batch writer cannot start on the table (at start-up).
    #[error("cannot start the inference store's writer: {0}")]
    Start(#[source] ferrostack_writer::StartError),
    /// The authorized store layer or the database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl Error {
    /// The request parameter at fault, for OpenAI's `param` field.
    pub fn param(&self) -> Option<&'static str> {
        match self {
            Error::AfterNotFound { .. } | Error::CursorNotFound { .. } => Some("after"),
            Error::InvalidParam { param, .. } => Some(param),
            _ => None,
        }
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Store(e)
    }
}

impl From<ferrostack_catalog::Error> for Error {
    fn from(e: ferrostack_catalog::Error) -> Self {
        Error::Store(StoreError::Db(e))
    }
}
