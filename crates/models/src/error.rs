//! Every way a registry call can fail; the http crate's code table picks each one's status.

use crate::Source;

/// A failure of the model registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such model, or one the caller may not read (the two look the same).
    #[error("Model '{model}' not found")]
    NotFound {
        /// The id asked for.
        model: String,
    },
    /// `provider_id` names no configured inference provider.
    #[error("provider_id '{provider}' is not a configured inference provider; available: {}", available.join(", "))]
    UnknownProvider {
        /// The id given.
        provider: String,
        /// The configured ones.
        available: Vec<String>,
    },
    /// The model id is taken (config, registered or discovered).
    #[error("a model with id '{model}' already exists")]
    Taken {
        /// The id.
        model: String,
    },
    /// Config and discovered models are not deleted through the API.
    #[error("{}", not_deletable(model, *origin))]
    NotDeletable {
        /// The id.
        model: String,
        /// Where it comes from.
        origin: Source,
    },
    /// The caller may read the model but not do this.
    #[error("not allowed to {action} model '{model}'")]
    Forbidden {
        /// `create` or `delete`.
        action: &'static str,
        /// The id.
        model: String,
    },
    /// A field of a registration is invalid.
    #[error("{message}")]
    Invalid {
        /// The field.
        param: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// `storage.stores.metadata` is null: nothing can be registered.
    #[error("registering models is off: storage.stores.metadata is null")]
    Disabled,
    /// A stored entry cannot be read or written as JSON.
    #[error("a registered model entry is malformed: {0}")]
    Corrupt(#[from] serde_json::Error),
    /// The metadata store failed.
    #[error(transparent)]
    Store(#[from] ferrostack_catalog::Error),
}

fn not_deletable(model: &str, source: Source) -> String {
    match source {
        Source::Discovered => format!(
            "model '{model}' is discovered from its provider and cannot be deleted through the API; it goes when the provider stops serving it"
        ),
        _ => format!(
            "model '{model}' is defined in the run config and cannot be deleted through the API; remove it from the config file"
        ),
    }
}
