//! Checks on a `POST /v1/chat/completions` body, before anything is sent upstream. Only the fields
//! ferrostack relies on or that have a fixed type in the OpenAI API are checked; every other field
//! is passed on untouched.

use serde_json::Value;
use serde_json::value::RawValue;

use crate::raw::{self, Kind, Members};

/// Roles a message may have.
const ROLES: [&str; 6] = ["system", "developer", "user", "assistant", "tool", "function"];

/// Why a request body is refused (400). `param` names the field (`messages[2].role`), as the
/// OpenAI error body's `param`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", if param.is_empty() { message.clone() } else { format!("{param}: {message}") })]
pub struct RequestError {
    /// The field at fault; empty for the body itself.
    pub param: String,
    /// What is wrong with it.
    pub message: String,
}

impl RequestError {
    fn new(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self { param: param.into(), message: message.into() }
    }
}

/// What the server needs to know of a valid request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequestInfo {
    /// The requested model id.
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// Whether the completion is stored (`store`, default true).
    pub store: bool,
    /// Number of choices asked for (`n`, default 1).
    pub n: u64,
}

/// Check a chat-completion request body; the first problem found is returned. The same checks
/// as [`parse_chat_request`] (which works on the body's text, without a tree).
pub fn validate_chat_request(body: &Value) -> Result<ChatRequestInfo, RequestError> {
    if !body.is_object() {
        return Err(RequestError::new("", "the request body must be a JSON object"));
    }
    let text = body.to_string();
    parse_chat_request(&text).map(|body| body.info)
}

/// A valid request body, as a borrowed view of its text: what the server needs to know, and the
/// top-level members to forward.
#[derive(Debug)]
pub struct ChatBody<'a> {
    /// What the server needs to know.
    pub info: ChatRequestInfo,
    members: Members<'a>,
}

/// Most metadata pairs a request may carry (OpenAI's limit).
pub const MAX_METADATA_PAIRS: usize = 16;
/// Longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// Longest metadata value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 512;

/// Parse and check a chat-completion request body from its text; the first problem found is
/// returned. No `serde_json::Value` tree is built: the top-level members are borrowed as raw
/// JSON text, and only the fields ferrostack checks are looked into.
pub fn parse_chat_request(text: &str) -> Result<ChatBody<'_>, RequestError> {
    let trimmed = text.trim_start();
    if !trimmed.starts_with('{') {
        // Valid JSON that is not an object, or not JSON at all.
        return Err(match serde_json::from_str::<serde::de::IgnoredAny>(text) {
            Ok(_) => RequestError::new("", "the request body must be a JSON object"),
            Err(e) => RequestError::new("", format!("invalid JSON body: {e}")),
        });
    }
    let members = Members::parse(text).map_err(|e| RequestError::new("", format!("invalid JSON body: {e}")))?;
    check_text(text)?;
    let model = match members.get("model") {
        None => return Err(RequestError::new("model", "is required")),
        Some(v) => match Kind::of(v) {
            Kind::Null => return Err(RequestError::new("model", "is required")),
            Kind::String => {
                let s = raw::as_str(v).unwrap_or_default();
                if s.trim().is_empty() {
                    return Err(RequestError::new("model", "must not be empty"));
                }
                s.into_owned()
            }
            other => return Err(type_error("model", "a string", other)),
        },
    };
    messages(members.get("messages"))?;
    let stream = optional_bool(&members, "stream")?.unwrap_or(false);
    let store = optional_bool(&members, "store")?.unwrap_or(true);
    let n = optional_integer(&members, "n", 1, 128)?.unwrap_or(1);
    optional_integer(&members, "max_tokens", 1, u64::from(u32::MAX))?;
    optional_integer(&members, "max_completion_tokens", 1, u64::from(u32::MAX))?;
    optional_number(&members, "temperature", 0.0, 2.0)?;
    optional_number(&members, "top_p", 0.0, 1.0)?;
    optional_number(&members, "presence_penalty", -2.0, 2.0)?;
    optional_number(&members, "frequency_penalty", -2.0, 2.0)?;
    if let Some(options) = members.get("stream_options").filter(|v| Kind::of(v) != Kind::Null) {
        if Kind::of(options) != Kind::Object {
            return Err(type_error("stream_options", "an object", Kind::of(options)));
        }
        if !stream {
            return Err(RequestError::new("stream_options", "is only allowed when stream is true"));
        }
    }
    metadata(members.get("metadata"))?;
    Ok(ChatBody { info: ChatRequestInfo { model, stream, store, n }, members })
}

impl ChatBody<'_> {
    /// The raw `messages` list (validated).
    pub fn messages(&self) -> Option<&RawValue> {
        self.members.get("messages")
    }

    /// The raw `metadata` object, when one was given (validated: string keys and values).
    pub fn metadata(&self) -> Option<&RawValue> {
        self.members.get("metadata").filter(|v| Kind::of(v) == Kind::Object)
    }

    /// The body to send upstream: `model` set to `provider_model`; for a stream `stream: true`,
    /// else `stream` and `stream_options` left out. Every other member is copied as the client
    /// sent it.
    pub fn upstream_body(&self, provider_model: &str, stream: bool) -> Vec<u8> {
        let len: usize = self.members.0.iter().map(|(k, v)| k.len() + v.get().len() + 4).sum();
        let mut out = Vec::with_capacity(len + provider_model.len() + 32);
        out.push(b'{');
        out.extend_from_slice(b"\"model\":");
        raw::write_str(&mut out, provider_model);
        let mut first = false;
        if stream {
            out.extend_from_slice(b",\"stream\":true");
        }
        for (key, value) in &self.members.0 {
            match key.as_ref() {
                "model" | "stream" => {}
                "stream_options" if !stream => {}
                _ => raw::write_member(&mut out, &mut first, key, value.get().as_bytes()),
            }
        }
        out.push(b'}');
        out
    }
}

/// A NUL character anywhere in a string of the body (a key or a value) is refused, naming the
/// field: engines and databases truncate or reject it. What a JSON parser refuses although the
/// syntax is valid (a lone surrogate escape, a number beyond a double's range) is refused as
/// invalid JSON, as a parser into a tree would. One pass over the bytes ([`raw::scan`]); only a
/// body where it found either is parsed into a tree (a raw NUL byte is not valid JSON).
fn check_text(text: &str) -> Result<(), RequestError> {
    let scan = raw::scan(text);
    if !scan.nul && !scan.doubtful {
        return Ok(());
    }
    let value =
        serde_json::from_str::<Value>(text).map_err(|e| RequestError::new("", format!("invalid JSON body: {e}")))?;
    match nul_path(&value, String::new()) {
        Some(path) => Err(RequestError::new(path, "must not contain the NUL character (\\u0000)")),
        None => Ok(()),
    }
}

fn nul_path(value: &Value, at: String) -> Option<String> {
    match value {
        Value::String(s) if s.contains('\0') => Some(at),
        Value::Array(list) => list.iter().enumerate().find_map(|(i, v)| nul_path(v, format!("{at}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            let key = k.escape_debug().to_string();
            let path = if at.is_empty() { key } else { format!("{at}.{key}") };
            if k.contains('\0') { Some(path) } else { nul_path(v, path) }
        }),
        _ => None,
    }
}

/// OpenAI's `metadata`: at most 16 pairs, string keys of at most 64 characters, string values
/// of at most 512.
fn metadata(v: Option<&RawValue>) -> Result<(), RequestError> {
    let Some(v) = v.filter(|v| Kind::of(v) != Kind::Null) else { return Ok(()) };
    let Some(map) = raw::as_object(v) else { return Err(type_error("metadata", "an object", Kind::of(v))) };
    if map.0.len() > MAX_METADATA_PAIRS {
        return Err(RequestError::new(
            "metadata",
            format!("must have at most {MAX_METADATA_PAIRS} pairs, got {}", map.0.len()),
        ));
    }
    for (key, value) in &map.0 {
        if key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(RequestError::new(
                "metadata",
                format!(
                    "keys must be at most {MAX_METADATA_KEY_CHARS} characters; '{}...' is longer",
                    key.chars().take(16).collect::<String>()
                ),
            ));
        }
        let param = format!("metadata.{key}");
        let Some(text) = raw::as_str(value) else { return Err(type_error(&param, "a string", Kind::of(value))) };
        let chars = text.chars().count();
        if chars > MAX_METADATA_VALUE_CHARS {
            return Err(RequestError::new(
                param,
                format!("must be at most {MAX_METADATA_VALUE_CHARS} characters, got {chars}"),
            ));
        }
    }
    Ok(())
}

fn messages(v: Option<&RawValue>) -> Result<(), RequestError> {
    let list = match v.map(|v| (Kind::of(v), v)) {
        None | Some((Kind::Null, _)) => return Err(RequestError::new("messages", "is required")),
        Some((Kind::Array, v)) => raw::as_array(v).unwrap_or_default(),
        Some((other, _)) => return Err(type_error("messages", "a list of messages", other)),
    };
    if list.0.is_empty() {
        return Err(RequestError::new("messages", "must contain at least one message"));
    }
    for (i, m) in list.0.iter().enumerate() {
        let Some(m) = raw::as_object(m) else {
            return Err(type_error(&format!("messages[{i}]"), "an object", Kind::of(m)));
        };
        let role = match m.get("role") {
            None => return Err(RequestError::new(format!("messages[{i}].role"), "is required")),
            Some(r) => match Kind::of(r) {
                Kind::Null => return Err(RequestError::new(format!("messages[{i}].role"), "is required")),
                Kind::String => raw::as_str(r).unwrap_or_default(),
                other => return Err(type_error(&format!("messages[{i}].role"), "a string", other)),
            },
        };
        let role = role.as_ref();
        if !ROLES.contains(&role) {
            return Err(RequestError::new(
                format!("messages[{i}].role"),
                format!("'{role}' is not a valid role; expected one of {}", ROLES.join(", ")),
            ));
        }
        content(i, role, &m)?;
        if role == "tool" && !m.get("tool_call_id").is_some_and(|v| Kind::of(v) == Kind::String) {
            return Err(RequestError::new(
                format!("messages[{i}].tool_call_id"),
                "is required (a string) for tool messages",
            ));
        }
        if let Some(calls) = m.get("tool_calls").filter(|v| Kind::of(v) != Kind::Null)
            && Kind::of(calls) != Kind::Array
        {
            return Err(type_error(&format!("messages[{i}].tool_calls"), "a list", Kind::of(calls)));
        }
    }
    Ok(())
}

/// `content`: a string or a list of typed parts. An assistant message may leave it out or null
/// (when it carries tool calls, say); the other roles must give it.
fn content(i: usize, role: &str, m: &Members<'_>) -> Result<(), RequestError> {
    let kind = m.get("content").map(Kind::of);
    match kind {
        None | Some(Kind::Null) if role == "assistant" => Ok(()),
        None | Some(Kind::Null) => {
            Err(RequestError::new(format!("messages[{i}].content"), format!("is required for {role} messages")))
        }
        Some(Kind::String) => Ok(()),
        Some(Kind::Array) => {
            let parts = m.get("content").and_then(raw::as_array).unwrap_or_default();
            for (j, part) in parts.0.iter().enumerate() {
                let Some(part) = raw::as_object(part) else {
                    return Err(type_error(&format!("messages[{i}].content[{j}]"), "an object", Kind::of(part)));
                };
                if !part.get("type").is_some_and(|t| Kind::of(t) == Kind::String) {
                    return Err(RequestError::new(
                        format!("messages[{i}].content[{j}].type"),
                        "is required (a string)",
                    ));
                }
            }
            Ok(())
        }
        Some(other) => Err(type_error(&format!("messages[{i}].content"), "a string or a list of content parts", other)),
    }
}

fn optional_bool(map: &Members<'_>, field: &str) -> Result<Option<bool>, RequestError> {
    match map.get(field) {
        None => Ok(None),
        Some(v) => match Kind::of(v) {
            Kind::Null => Ok(None),
            Kind::Bool => Ok(Some(v.get() == "true")),
            other => Err(type_error(field, "a boolean", other)),
        },
    }
}

fn optional_integer(map: &Members<'_>, field: &str, min: u64, max: u64) -> Result<Option<u64>, RequestError> {
    let Some(v) = map.get(field) else { return Ok(None) };
    match Kind::of(v) {
        Kind::Null => Ok(None),
        Kind::Number => {
            let Some(n) = raw::as_number(v) else { return Err(type_error(field, "an integer", Kind::Number)) };
            match n.as_u64() {
                Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
                Some(_) => Err(RequestError::new(field, format!("must be between {min} and {max}, got {n}"))),
                None if n.is_i64() => {
                    Err(RequestError::new(field, format!("must be between {min} and {max}, got {n}")))
                }
                None => Err(type_error(field, "an integer", Kind::Number)),
            }
        }
        other => Err(type_error(field, "an integer", other)),
    }
}

fn optional_number(map: &Members<'_>, field: &str, min: f64, max: f64) -> Result<Option<f64>, RequestError> {
    let Some(v) = map.get(field) else { return Ok(None) };
    match Kind::of(v) {
        Kind::Null => Ok(None),
        Kind::Number => {
            let n = raw::as_number(v);
            match n.as_ref().and_then(serde_json::Number::as_f64) {
                Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
                _ => Err(RequestError::new(
                    field,
                    format!(
                        "must be between {min} and {max}, got {}",
                        n.map_or_else(|| v.get().to_owned(), |n| n.to_string())
                    ),
                )),
            }
        }
        other => Err(type_error(field, "a number", other)),
    }
}

fn type_error(param: &str, expected: &str, got: Kind) -> RequestError {
    RequestError::new(param, format!("must be {expected}, got {}", got.article()))
}
