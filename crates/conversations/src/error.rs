//! The conversations store's error type: what went wrong, typed. The HTTP status of each variant
//! is chosen by the http crate's code table, nowhere else.

use ferrostack_authz::StoreError;

/// What can go wrong in the conversations store. Messages never contain item contents.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A request field is invalid; `param` names it (`items[3].content`, `metadata`, ...).
    #[error("{message}")]
    Invalid {
        /// The field at fault, as OpenAI's `param`.
        param: String,
        /// What is wrong with it.
        message: String,
    },
    /// The conversation does not exist or the caller may not read it.
    #[error("Conversation '{id}' not found.")]
    NotFound {
        /// The conversation id asked for.
        id: String,
    },
    /// The item does not exist in that conversation (or the conversation is not readable).
    #[error(
        "Conversation item '{item}' not found in conversation '{conversation}'. Use 'client.conversations.items.list(\"{conversation}\")' to list available conversation items."
    )]
    ItemNotFound {
        /// The conversation id.
        conversation: String,
        /// The item id asked for.
        item: String,
    },
    /// A list cursor (`after`) that is not an item of the conversation.
    #[error("Record with id='{id}' not found in conversation '{conversation}'")]
    AfterNotFound {
        /// The `after` value given.
        id: String,
        /// The conversation listed.
        conversation: String,
    },
    /// An item id already used in this conversation.
    #[error("an item with id '{item}' already exists in conversation '{conversation}'")]
    ItemExists {
        /// The conversation id.
        conversation: String,
        /// The item id.
        item: String,
    },
    /// The caller may read the conversation but not change or delete it.
    #[error("not allowed to {action} conversation {id}")]
    Forbidden {
        /// The conversation id.
        id: String,
        /// `update` or `delete`.
        action: &'static str,
    },
    /// The authorized store layer or the database failed.
    #[error(transparent)]
    Store(StoreError),
}

impl Error {
    /// The request parameter at fault, for OpenAI's `param` field.
    pub fn param(&self) -> Option<&str> {
        match self {
            Error::Invalid { param, .. } => Some(param),
            Error::AfterNotFound { .. } => Some("after"),
            Error::ItemExists { .. } => Some("items"),
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
