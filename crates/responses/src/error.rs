//! The responses crate's error type: what went wrong, typed. The HTTP status of each variant is
//! chosen by the http crate's code table, nowhere else.

use ferrostack_authz::StoreError;

/// What can go wrong translating, storing or reading responses. Messages never contain the
/// content of a request or an answer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid or not supported; `param` names it (`input[2].type`,
    /// `tools[0].type`, `temperature`, ...).
    #[error("{message}")]
    Invalid {
        /// The field at fault, as OpenAI's `param`.
        param: String,
        /// What is wrong with it.
        message: String,
    },
    /// The response does not exist, or the caller may not read it; `param` is set when the id
    /// came from a request field (`previous_response_id`).
    #[error("Response '{id}' not found. Use 'client.responses.list()' to list available responses.")]
    NotFound {
        /// The response id asked for.
        id: String,
        /// The request field that named it, if any.
        param: Option<&'static str>,
    },
    /// An `after` / `before` cursor that is not an input item of the response.
    #[error("Input item '{item}' not found in response '{response}'")]
    InputItemNotFound {
        /// The cursor given.
        item: String,
        /// The response.
        response: String,
        /// `after` or `before`.
        param: &'static str,
    },
    /// A list cursor (`after`) that is not a response the caller can see.
    #[error("Response '{id}' given as 'after' not found")]
    AfterNotFound {
        /// The `after` value given.
        id: String,
    },
    /// The caller may read the response but not delete it.
    #[error("not allowed to {action} response {id}")]
    Forbidden {
        /// The response id.
        id: String,
        /// What was attempted.
        action: &'static str,
    },
    /// The request alone (its input items and the response's echoed fields) is larger than
    /// `max_row_bytes`: its turn could never be stored. Refused before the upstream is called.
    #[error("the input items and request fields to store are {size} bytes; the limit (max_row_bytes) is {limit} bytes")]
    RequestTooLarge {
        /// Bytes the turn would hold before any output.
        size: usize,
        /// `max_row_bytes` of `storage.stores.responses`.
        limit: usize,
    },
    /// The turn (input items and response with its output) is larger than `max_row_bytes`;
    /// nothing was stored.
    #[error("response {id} is {size} bytes to store; the limit (max_row_bytes) is {limit} bytes")]
    TooLarge {
        /// The response id.
        id: String,
        /// Bytes the turn would hold.
        size: usize,
        /// `max_row_bytes` of `storage.stores.responses`.
        limit: usize,
    },
    /// The conversation named by `conversation` failed (not found, invalid id, not changeable).
    #[error(transparent)]
    Conversation(#[from] ferrostack_conversations::Error),
    /// The responses and conversations stores are on different backends, so a response and the
    /// items it appends cannot commit together (start-up).
    #[error(
        "storage.stores.responses and storage.stores.conversations must use the same backend: a response and the conversation items it appends are written in one transaction"
    )]
    SeparateBackends,
    /// The authorized store layer or the database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl Error {
    /// The request parameter at fault, for OpenAI's `param` field.
    pub fn param(&self) -> Option<&str> {
        match self {
            Error::Invalid { param, .. } => Some(param),
            Error::NotFound { param, .. } => *param,
            Error::InputItemNotFound { param, .. } => Some(param),
            Error::AfterNotFound { .. } => Some("after"),
            Error::RequestTooLarge { .. } => Some("input"),
            Error::Conversation(e) => match e {
                ferrostack_conversations::Error::NotFound { .. } => Some("conversation"),
                // The request field is `conversation`, whatever the conversations store calls it.
                ferrostack_conversations::Error::Invalid { param, .. } if param == "conversation_id" => {
                    Some("conversation")
                }
                ferrostack_conversations::Error::ItemExists { .. } => Some("input"),
                other => other.param(),
            },
            _ => None,
        }
    }

    pub(crate) fn invalid(param: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Invalid { param: param.into(), message: message.into() }
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
