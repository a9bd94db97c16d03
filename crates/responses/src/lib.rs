//! ferrostack's Responses API: `POST /v1/responses` translated to the chat completions of the
//! model's provider, and the responses store under the access policy, on PostgreSQL and SQLite.
//!
//! - [`request`]: the request checked field by field and translated to a chat-completions body
//!   ([`CreateRequest::chat_body`]); earlier turns' items become chat messages.
//! - [`output`]: the provider's answer (JSON or chunks) to output items, streaming events with
//!   their `sequence_number`, and the final response object ([`Translator`]).
//! - [`ResponseStore`]: one row per turn in `openai_responses` (its own input items and its
//!   response, pointing at its predecessor: storage grows linearly with a chain); a chain is read
//!   in one recursive query under the access policy; a turn in a conversation is stored with the
//!   conversation's new items in one transaction; a turn over `max_row_bytes` is refused
//!   ([`Error::RequestTooLarge`] before the upstream call, [`Error::TooLarge`] after it).
//! - [`text`]: a turn's size as stored, and the NUL character the store cannot hold.
//!
//! The http crate owns the routes and the upstream call; nothing here depends on actix.

mod error;
pub mod output;
pub mod request;
mod store;

pub use error::Error;
pub use output::{End, Translator};
pub use request::{CreateRequest, parse};
pub use store::{
    DEFAULT_ITEMS_LIMIT, DEFAULT_LIMIT, INCLUDE_VALUES, InputItemsParams, MAX_CHAIN_TURNS, MAX_LIMIT, ResponseStore,
    StoredResponse, TABLE,
};

/// A fresh response id: `resp_` and 48 lowercase hex digits.
pub fn new_response_id() -> String {
    ferrostack_catalog::random_id("resp_", 48)
}

/// The context of a turn continuing `chain` (oldest first): each turn's input items, then its
/// output items.
pub fn chain_items(chain: &[StoredResponse]) -> Vec<serde_json::Value> {
    chain.iter().flat_map(|turn| turn.input.iter().chain(turn.output()).cloned()).collect()
}
