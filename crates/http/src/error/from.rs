//! From each domain error to its row of the code table. Every match is exhaustive, with no `_`
//! arm: a new kind of failure in a domain crate must choose its row here, or the build fails.

use actix_web::http::StatusCode;
use ferrostack_authz::{AuthError, StoreError};
use ferrostack_providers::ProviderError;

use super::{ApiError, Code};

/// The client's message for a database outage: the backend's name and address stay in the log.
const DATABASE_UNAVAILABLE: &str = "the database is unavailable right now; retry later";

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match &e {
            AuthError::MissingCredentials(_) | AuthError::InvalidHeaderFormat | AuthError::Rejected(_) => {
                Self::new(Code::Unauthorized, e.message())
            }
            AuthError::Unavailable | AuthError::Timeout => Self::new(Code::ServiceUnavailable, e.message()),
        }
    }
}

impl From<ProviderError> for ApiError {
    fn from(e: ProviderError) -> Self {
        use ProviderError as E;
        let message = e.to_string();
        match &e {
            E::ModelNotFound { .. } => Self::new(Code::ModelNotFound, message).with_param("model"),
            E::Unreachable { source, .. } | E::Broken { source, .. } => {
                Self::new(Code::UpstreamUnavailable, message).with_cause(format!("{e}: {source}"))
            }
            E::InvalidResponse { detail, .. } => {
                Self::new(Code::UpstreamInvalid, message).with_cause(format!("{e}: {detail}"))
            }
            E::Timeout { .. } => Self::new(Code::UpstreamTimeout, message),
            E::Upstream { status, param, .. } => {
                let err = match StatusCode::from_u16(*status) {
                    // A 4xx is the client's problem, passed on as the provider worded it.
                    Ok(s) if s.is_client_error() => Self::new(Code::UpstreamRejected, message).with_status(s),
                    // Anything else is the provider's, reported as a bad gateway.
                    _ => Self::new(Code::UpstreamFailed, message),
                };
                match param {
                    Some(p) => err.with_param(p.as_str()),
                    None => err,
                }
            }
            E::Busy { .. } => Self::new(Code::UpstreamBusy, message),
            E::Config { .. } | E::Client { .. } => Self::internal(&e),
        }
    }
}

impl From<ferrostack_inference_store::Error> for ApiError {
    fn from(e: ferrostack_inference_store::Error) -> Self {
        use ferrostack_inference_store::Error as E;
        let message = e.to_string();
        let param = e.param();
        match e {
            E::AfterNotFound { .. } | E::CursorNotFound { .. } | E::InvalidParam { .. } => {
                let err = Self::new(Code::InvalidRequest, message);
                match param {
                    Some(p) => err.with_param(p),
                    None => err,
                }
            }
            E::NotFound { .. } => Self::new(Code::NotFound, message),
            E::Forbidden { .. } => Self::new(Code::Forbidden, message),
            // The provider answered something that is not a completion we can store (no `id`,
            // no `created`): its fault, not the client's.
            E::InvalidCompletion(_) => Self::new(Code::UpstreamInvalid, format!("upstream returned {message}")),
            E::ShuttingDown => Self::new(Code::ServiceUnavailable, message),
            E::IdTaken { .. } => Self::new(Code::Conflict, message),
            E::WriteFailed { .. } | E::Start(_) => Self::internal(&message),
            // The database is slow or down: no place in the queue, or no commit in time.
            E::QueueFull { .. } | E::CommitTimeout { .. } => Self::new(Code::DatabaseUnavailable, message),
            E::TooLarge { .. } => Self::new(Code::PayloadTooLarge, message),
            E::RequestTooLarge { .. } => Self::new(Code::PayloadTooLarge, message).with_param("messages"),
            // The row's content is what the database refuses: the request's to change.
            E::Refused { content: true, .. } => Self::new(Code::InvalidRequest, message),
            E::Refused { content: false, .. } => Self::internal(&message),
            E::Store(e) => e.into(),
        }
    }
}

impl From<ferrostack_conversations::Error> for ApiError {
    fn from(e: ferrostack_conversations::Error) -> Self {
        use ferrostack_conversations::Error as E;
        let message = e.to_string();
        let param = e.param().map(str::to_owned);
        let err = match e {
            E::Invalid { .. } | E::AfterNotFound { .. } => Self::new(Code::InvalidRequest, message),
            E::NotFound { .. } | E::ItemNotFound { .. } => Self::new(Code::NotFound, message),
            E::ItemExists { .. } => Self::new(Code::Conflict, message),
            E::Forbidden { .. } => Self::new(Code::Forbidden, message),
            E::Store(e) => return e.into(),
        };
        match param {
            Some(p) => err.with_param(p),
            None => err,
        }
    }
}

impl From<ferrostack_responses::Error> for ApiError {
    fn from(e: ferrostack_responses::Error) -> Self {
        use ferrostack_responses::Error as E;
        let message = e.to_string();
        let param = e.param().map(str::to_owned);
        let err = match e {
            E::Invalid { .. } | E::AfterNotFound { .. } => Self::new(Code::InvalidRequest, message),
            E::NotFound { .. } | E::InputItemNotFound { .. } => Self::new(Code::NotFound, message),
            E::Forbidden { .. } => Self::new(Code::Forbidden, message),
            E::RequestTooLarge { .. } | E::TooLarge { .. } => Self::new(Code::PayloadTooLarge, message),
            E::Conversation(c) => Self::from(c),
            E::SeparateBackends => Self::internal(&message),
            E::Store(e) => return e.into(),
        };
        match param {
            Some(p) => err.with_param(p),
            None => err,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::new(Code::NotFound, "not found"),
            StoreError::Forbidden { .. } => Self::new(Code::Forbidden, e.to_string()),
            StoreError::OwnerColumn(_)
            | StoreError::KeyArity { .. }
            | StoreError::NothingToSet
            | StoreError::Compile(_) => Self::internal(&e),
            StoreError::Db(e) => e.into(),
        }
    }
}

impl From<ferrostack_catalog::Error> for ApiError {
    /// The one classification of database errors for clients (STYLE.md 11): an outage or a busy
    /// pool is a 503 with `Retry-After`; a unique violation a 409; anything else a 500.
    fn from(e: ferrostack_catalog::Error) -> Self {
        use ferrostack_catalog::Error as E;
        let unavailable = match &e {
            E::Connect { .. } | E::PoolTimeout { .. } | E::NoAnswer { .. } | E::Closed { .. } => true,
            E::Query { .. } => e.is_unavailable(),
            E::UnknownBackend { .. }
            | E::WrongFamily { .. }
            | E::Open { .. }
            | E::Statement { .. }
            | E::Migration { .. }
            | E::SchemaAhead { .. }
            | E::SchemaDiverged { .. }
            | E::Column { .. } => false,
        };
        if unavailable {
            Self::new(Code::DatabaseUnavailable, DATABASE_UNAVAILABLE).with_cause(&e)
        } else if e.is_unique_violation() {
            Self::new(Code::Conflict, "a row with this id already exists").with_cause(&e)
        } else {
            Self::internal(&e)
        }
    }
}

impl From<ferrostack_models::Error> for ApiError {
    fn from(e: ferrostack_models::Error) -> Self {
        use ferrostack_models::Error as E;
        let message = e.to_string();
        match e {
            E::NotFound { .. } => Self::new(Code::NotFound, message),
            E::UnknownProvider { .. } => Self::new(Code::InvalidRequest, message).with_param("provider_id"),
            E::Invalid { param, .. } => {
                let err = Self::new(Code::InvalidRequest, message);
                if param.is_empty() { err } else { err.with_param(param) }
            }
            E::NotDeletable { .. } => Self::new(Code::InvalidRequest, message),
            E::Taken { .. } => Self::new(Code::Conflict, message).with_param("model_id"),
            E::Forbidden { .. } => Self::new(Code::Forbidden, message),
            E::Disabled => Self::new(Code::NotImplemented, message),
            E::Corrupt(_) => Self::internal(&message),
            E::Store(e) => e.into(),
        }
    }
}
