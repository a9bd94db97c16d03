//! ferrostack's inference providers: everything between a validated `POST /v1/chat/completions`
//! body and the upstream engine, with no HTTP-server code (the `http` crate owns the routes and
//! the SSE relay to clients).
//!
//! - [`Providers`]: the model registry and one [`UpstreamClient`] per configured inference
//!   provider, built once at start-up from the [`RunConfig`](ferrostack_config::RunConfig).
//! - [`UpstreamClient`]: an OpenAI-compatible client: hyper-util's pooled HTTP/1.1 client for a
//!   plain-HTTP provider ([`plain_http_allowed`]), a `reqwest::Client` for https or through a
//!   proxy; JSON answers and SSE streams parsed incrementally into [`StreamEvent`]s.
//! - [`ProviderError`]: every failure, classified for the HTTP layer by [`ProviderError::status`].
//! - [`StreamAssembler`]: turns the chunks of a stream into the `chat.completion` to store.
//! - [`validate_chat_request`] / [`parse_chat_request`]: the checks on a request body, naming the
//!   field at fault (the latter from the body's text, with no tree).
//! - [`ChunkRelay`] / [`relay_chunk`] / [`relay_completion`]: the proxy's byte-level relay of
//!   upstream answers (a stream's chunks in one pass each).
//!
//! ```no_run
//! # async fn demo(config: &ferrostack_config::RunConfig) -> Result<(), ferrostack_providers::ProviderError> {
//! use ferrostack_providers::{ForwardHeaders, Providers, validate_chat_request};
//! let providers = Providers::from_config(config)?;
//! let body = serde_json::json!({"model": "llama", "messages": [{"role": "user", "content": "hi"}]});
//! let request = validate_chat_request(&body).map_err(|e| e.to_string());
//! let route = providers.resolve("llama")?;
//! let completion = route.chat_completion(body, &ForwardHeaders::default()).await?;
//! # let _ = (request, completion); Ok(()) }
//! ```

mod assemble;
mod chunk;
mod client;
pub mod echo;
mod error;
mod plain;
pub mod raw;
mod registry;
mod relay;
mod request;
mod sse;

pub use assemble::{StreamAssembler, normalize_completion, rewrite_chunk_model};
pub use client::{ChunkStream, ForwardHeaders, RawEvent, RawEventStream, StreamEvent, UpstreamClient};
pub use error::{Cause, ProviderError, TimedOut};
pub use plain::plain_http_allowed;
pub use registry::{Backend, ModelRoute, Providers};
pub use relay::{ChunkRelay, RelayedCompletion, StoredAnswer, relay_chunk, relay_chunk_general, relay_completion};
pub use request::{
    ChatBody, ChatRequestInfo, MAX_METADATA_KEY_CHARS, MAX_METADATA_PAIRS, MAX_METADATA_VALUE_CHARS, RequestError,
    parse_chat_request, validate_chat_request,
};
pub use sse::{MAX_LINE_BYTES as MAX_SSE_LINE_BYTES, SseEvent, SseParser};
