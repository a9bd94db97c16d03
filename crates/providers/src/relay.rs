//! The proxy's byte-level relay: the upstream's answers forwarded as they came, with only the
//! server-owned `id` and the requested `model` spliced in, and what ferrostack needs (the
//! upstream's id, `created`, the choices to store, the chunks for the assembler) read from
//! borrowed views of the text. No `serde_json::Value` tree is built for a relayed chunk, nor for
//! a JSON answer whose choices have no tool calls to normalise: its stored `choices` are its own
//! text, compacted.

use std::borrow::Cow;

use serde_json::Value;
use serde_json::value::RawValue;

use crate::assemble::StreamAssembler;
use crate::chunk::{self, ChunkParts};
use crate::client::error_event;
use crate::error::ProviderError;
use crate::raw::{self, Kind, Members};

/// Whether the members are an error object rather than an answer or chunk (`{"error": ...}`
/// without `choices`, or vLLM's `{"object": "error", ...}`).
fn is_error(members: &Members<'_>) -> bool {
    (members.has("error") && !members.has("choices"))
        || members.get("object").and_then(raw::as_str).is_some_and(|o| o == "error")
}

/// The error an error object stands for.
fn error_of(provider: &str, text: &str) -> ProviderError {
    let value: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    error_event(provider, &value).unwrap_or_else(|| ProviderError::invalid(provider, "an error object without details"))
}

/// Append `members` as an object with `id` and `model` set: the values of every other member
/// copied as they came, in their order; `replace` (when given) in place of that member's value.
fn write_object(out: &mut Vec<u8>, members: &Members<'_>, id: &str, model: &str, replace: Option<(&str, &[u8])>) {
    out.push(b'{');
    let mut first = true;
    let (mut wrote_id, mut wrote_model) = (false, false);
    for (key, value) in &members.0 {
        match key.as_ref() {
            "id" => {
                if !std::mem::replace(&mut wrote_id, true) {
                    let mut v = Vec::with_capacity(id.len() + 2);
                    raw::write_str(&mut v, id);
                    raw::write_member(out, &mut first, "id", &v);
                }
            }
            "model" => {
                if !std::mem::replace(&mut wrote_model, true) {
                    let mut v = Vec::with_capacity(model.len() + 2);
                    raw::write_str(&mut v, model);
                    raw::write_member(out, &mut first, "model", &v);
                }
            }
            k => match replace {
                Some((name, bytes)) if name == k => raw::write_member(out, &mut first, k, bytes),
                _ => raw::write_member(out, &mut first, k, value.get().as_bytes()),
            },
        }
    }
    if !wrote_id {
        let mut v = Vec::new();
        raw::write_str(&mut v, id);
        raw::write_member(out, &mut first, "id", &v);
    }
    if !wrote_model {
        let mut v = Vec::new();
        raw::write_str(&mut v, model);
        raw::write_member(out, &mut first, "model", &v);
    }
    out.push(b'}');
}

/// Relay one stream event's `data` (a `chat.completion.chunk`): append the SSE frame the client
/// gets (`data: {...}\n\n`, with `id` and `model` set, everything else as the upstream sent it)
/// to `frame`, feed the chunk to `assembler`, and return the upstream's own id of the chunk (a
/// non-empty string), if any. An error object is returned as the error it reports.
///
/// A stream's relay keeps a [`ChunkRelay`] instead (its `id` and `model` members are encoded
/// once, and its buffers are reused); this is the same for one chunk.
pub fn relay_chunk(
    provider: &str,
    data: &str,
    id: &str,
    model: &str,
    assembler: &mut StreamAssembler,
    frame: &mut Vec<u8>,
) -> Result<Option<String>, ProviderError> {
    let mut relay = ChunkRelay::new(id, model);
    Ok(relay.relay(provider, data, assembler, frame)?.map(Cow::into_owned))
}

/// The relay of one stream's chunks (see [`relay_chunk`]): ferrostack's `id` and the requested
/// `model` as members encoded once, and the buffers of the one pass over each chunk kept between
/// chunks. A chunk that the pass does not take (an escaped key where it is read, an error
/// object, nesting over 100, anything that is not JSON) goes through
/// [`relay_chunk_general`]; the outcome is the same either way.
#[derive(Debug)]
pub struct ChunkRelay {
    id: String,
    model: String,
    /// `"id":"..."`, as written into every chunk.
    id_member: Vec<u8>,
    /// `"model":"..."`.
    model_member: Vec<u8>,
    parts: ChunkParts,
    general: u64,
}

impl ChunkRelay {
    /// The relay of a stream whose chunks get `id` and `model`.
    pub fn new(id: &str, model: &str) -> Self {
        let member = |key: &str, value: &str| {
            let mut out = Vec::with_capacity(key.len() + value.len() + 8);
            raw::write_member(&mut out, &mut true, key, &[]);
            raw::write_str(&mut out, value);
            out
        };
        Self {
            id: id.to_owned(),
            model: model.to_owned(),
            id_member: member("id", id),
            model_member: member("model", model),
            parts: ChunkParts::default(),
            general: 0,
        }
    }

    /// ferrostack's id of the stream.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How many chunks went through [`relay_chunk_general`] (the one pass gave up on them).
    pub fn general_count(&self) -> u64 {
        self.general
    }

    /// Relay one event's `data`, as [`relay_chunk`] does; the upstream's id is borrowed from
    /// `data` when it can be.
    pub fn relay<'d>(
        &mut self,
        provider: &str,
        data: &'d str,
        assembler: &mut StreamAssembler,
        frame: &mut Vec<u8>,
    ) -> Result<Option<Cow<'d, str>>, ProviderError> {
        // A chunk starts with `{` and ends with `}`: nothing to trim (checked before the
        // Unicode-aware trim, which costs more).
        let text = if data.starts_with('{') && data.ends_with('}') { data } else { data.trim() };
        let mark = frame.len();
        frame.reserve(text.len() + self.id_member.len() + self.model_member.len() + 8);
        frame.extend_from_slice(b"data: ");
        let scanned = chunk::scan(text, &mut self.parts, frame, &self.id_member, &self.model_member);
        if scanned.is_ok() && !self.parts.is_error(text) {
            frame.extend_from_slice(b"\n\n");
            assembler.push_parts(text, &self.parts, Some(&self.id));
            return Ok(self.parts.id.and_then(|v| v.str(text)).filter(|s| !s.is_empty()));
        }
        frame.truncate(mark);
        self.general += 1;
        Ok(relay_chunk_general(provider, data, &self.id, &self.model, assembler, frame)?.map(Cow::Owned))
    }
}

/// [`relay_chunk`] for any text, from [`Members`] views of each level: what [`ChunkRelay`] falls
/// back to when its one pass gives up (the tests hold the two to the same outcome).
pub fn relay_chunk_general(
    provider: &str,
    data: &str,
    id: &str,
    model: &str,
    assembler: &mut StreamAssembler,
    frame: &mut Vec<u8>,
) -> Result<Option<String>, ProviderError> {
    let data = data.trim();
    let members = match Members::parse(data) {
        Ok(m) => m,
        Err(e) if data.starts_with('{') || serde_json::from_str::<serde::de::IgnoredAny>(data).is_err() => {
            return Err(ProviderError::invalid(provider, format!("an event's data is not JSON: {e}")));
        }
        Err(_) => return Err(ProviderError::invalid(provider, "an event's data is not a JSON object")),
    };
    if is_error(&members) {
        return Err(error_of(provider, data));
    }
    assembler.push_members(&members, Some(id));
    frame.reserve(data.len() + id.len() + model.len() + 16);
    frame.extend_from_slice(b"data: ");
    write_object(frame, &members, id, model, None);
    frame.extend_from_slice(b"\n\n");
    Ok(members.get("id").and_then(raw::as_str).filter(|s| !s.is_empty()).map(std::borrow::Cow::into_owned))
}

/// A relayed JSON answer.
#[derive(Debug)]
pub struct RelayedCompletion {
    /// The body the client gets: the upstream's answer with `id` and `model` set, and empty
    /// `tool_calls` lists made null; every other member as the upstream sent it.
    pub body: Vec<u8>,
    /// The upstream's own id (a non-empty string), if any.
    pub upstream_id: Option<String>,
    /// What is stored of the answer, when asked for.
    pub stored: Option<StoredAnswer>,
}

/// What is stored of a JSON answer: its `created` and its `choices` as JSON text, taken from the
/// upstream's bytes without a tree (only normalised as the client's copy is).
#[derive(Debug)]
pub struct StoredAnswer {
    /// The answer's `created`, as it came (`None` when missing); a scalar, parsed on its own.
    pub created: Option<Value>,
    /// The `choices` list, compact (see [`raw::for_store`]).
    pub choices: Box<RawValue>,
    /// Whether a string of the choices holds the NUL character.
    pub nul: bool,
}

/// Relay a JSON answer (`bytes`, as the upstream sent it with a 2xx): the body for the client with
/// `id` and `model` set, and (with `for_store`) what is stored of it. An error object is
/// returned as the error it reports; an answer without a `choices` list is invalid, and so is
/// one whose choices a JSON parser refuses (a lone surrogate, a number out of range).
pub fn relay_completion(
    provider: &str,
    bytes: &[u8],
    id: &str,
    model: &str,
    for_store: bool,
) -> Result<RelayedCompletion, ProviderError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| ProviderError::invalid(provider, format!("the body is not JSON: not UTF-8: {e}")))?;
    let members = Members::parse(text).map_err(|e| {
        if serde_json::from_str::<serde::de::IgnoredAny>(text).is_ok() {
            ProviderError::invalid(provider, "the answer has no `choices` list")
        } else {
            ProviderError::invalid(provider, format!("the body is not JSON: {e}"))
        }
    })?;
    if is_error(&members) {
        return Err(error_of(provider, text));
    }
    let Some(choices_raw) = members.get("choices").filter(|c| Kind::of(c) == Kind::Array) else {
        return Err(ProviderError::invalid(provider, "the answer has no `choices` list"));
    };
    let not_json = |e: serde_json::Error| ProviderError::invalid(provider, format!("the body is not JSON: {e}"));
    // Choices with tool calls are parsed, as they may need normalising; the others are not.
    let mut rewritten = None;
    if choices_raw.get().contains("\"tool_calls\"") {
        let mut value: Value = serde_json::from_str(choices_raw.get()).map_err(not_json)?;
        if null_empty_tool_calls(&mut value) {
            rewritten = Some(serde_json::value::to_raw_value(&value).map_err(not_json)?);
        }
    }
    let stored = if for_store {
        let (choices, scan) = match &rewritten {
            Some(choices) => (choices.clone(), raw::scan(choices.get())),
            None => raw::for_store(choices_raw).map_err(not_json)?,
        };
        let created = members.get("created").and_then(|c| serde_json::from_str::<Value>(c.get()).ok());
        Some(StoredAnswer { created, choices, nul: scan.nul })
    } else {
        None
    };
    let mut body = Vec::with_capacity(text.len() + id.len() + model.len() + 16);
    let replace = rewritten.as_deref().map(|r| ("choices", r.get().as_bytes()));
    write_object(&mut body, &members, id, model, replace);
    let upstream_id = members.get("id").and_then(raw::as_str).filter(|s| !s.is_empty()).map(|s| s.into_owned());
    Ok(RelayedCompletion { body, upstream_id, stored })
}

/// Empty `tool_calls` lists of the choices' messages become null (as
/// [`crate::normalize_completion`] does); whether anything changed.
fn null_empty_tool_calls(choices: &mut Value) -> bool {
    let mut changed = false;
    for choice in choices.as_array_mut().into_iter().flatten() {
        if let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut)
            && message.get("tool_calls").and_then(Value::as_array).is_some_and(Vec::is_empty)
        {
            message.insert("tool_calls".to_owned(), Value::Null);
            changed = true;
        }
    }
    changed
}
