//! Checks on a `POST /v1/chat/completions` body, before anything is sent upstream. Only the fields
//! ferrostack relies on or that have a fixed type in the OpenAI API are checked; every other field
//! is passed on untouched.

use serde_json::{Map, Value};

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

/// Check a chat-completion request body; the first problem found is returned.
pub fn validate_chat_request(body: &Value) -> Result<ChatRequestInfo, RequestError> {
    let Some(map) = body.as_object() else {
        return Err(RequestError::new("", "the request body must be a JSON object"));
    };
    let model = match map.get("model") {
        None | Some(Value::Null) => return Err(RequestError::new("model", "is required")),
        Some(Value::String(s)) if s.trim().is_empty() => return Err(RequestError::new("model", "must not be empty")),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(type_error("model", "a string", other)),
    };
    messages(map.get("messages"))?;
    let stream = optional_bool(map, "stream")?.unwrap_or(false);
    let store = optional_bool(map, "store")?.unwrap_or(true);
    let n = optional_integer(map, "n", 1, 128)?.unwrap_or(1);
    optional_integer(map, "max_tokens", 1, u64::from(u32::MAX))?;
    optional_integer(map, "max_completion_tokens", 1, u64::from(u32::MAX))?;
    optional_number(map, "temperature", 0.0, 2.0)?;
    optional_number(map, "top_p", 0.0, 1.0)?;
    optional_number(map, "presence_penalty", -2.0, 2.0)?;
    optional_number(map, "frequency_penalty", -2.0, 2.0)?;
    if let Some(options) = map.get("stream_options").filter(|v| !v.is_null()) {
        if !options.is_object() {
            return Err(type_error("stream_options", "an object", options));
        }
        if !stream {
            return Err(RequestError::new("stream_options", "is only allowed when stream is true"));
        }
    }
    Ok(ChatRequestInfo { model, stream, store, n })
}

fn messages(v: Option<&Value>) -> Result<(), RequestError> {
    let list = match v {
        None | Some(Value::Null) => return Err(RequestError::new("messages", "is required")),
        Some(Value::Array(list)) => list,
        Some(other) => return Err(type_error("messages", "a list of messages", other)),
    };
    if list.is_empty() {
        return Err(RequestError::new("messages", "must contain at least one message"));
    }
    for (i, m) in list.iter().enumerate() {
        let at = format!("messages[{i}]");
        let Some(m) = m.as_object() else { return Err(type_error(&at, "an object", m)) };
        let role = match m.get("role") {
            None | Some(Value::Null) => return Err(RequestError::new(format!("{at}.role"), "is required")),
            Some(Value::String(r)) => r.as_str(),
            Some(other) => return Err(type_error(&format!("{at}.role"), "a string", other)),
        };
        if !ROLES.contains(&role) {
            return Err(RequestError::new(
                format!("{at}.role"),
                format!("'{role}' is not a valid role; expected one of {}", ROLES.join(", ")),
            ));
        }
        content(&at, role, m)?;
        if role == "tool" && !m.get("tool_call_id").is_some_and(Value::is_string) {
            return Err(RequestError::new(format!("{at}.tool_call_id"), "is required (a string) for tool messages"));
        }
        if let Some(calls) = m.get("tool_calls").filter(|v| !v.is_null())
            && !calls.is_array()
        {
            return Err(type_error(&format!("{at}.tool_calls"), "a list", calls));
        }
    }
    Ok(())
}

/// `content`: a string or a list of typed parts. An assistant message may leave it out or null
/// (when it carries tool calls, say); the other roles must give it.
fn content(at: &str, role: &str, m: &Map<String, Value>) -> Result<(), RequestError> {
    let param = format!("{at}.content");
    match m.get("content") {
        None | Some(Value::Null) if role == "assistant" => Ok(()),
        None | Some(Value::Null) => Err(RequestError::new(param, format!("is required for {role} messages"))),
        Some(Value::String(_)) => Ok(()),
        Some(Value::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let part_at = format!("{param}[{j}]");
                let Some(part) = part.as_object() else { return Err(type_error(&part_at, "an object", part)) };
                if !part.get("type").is_some_and(Value::is_string) {
                    return Err(RequestError::new(format!("{part_at}.type"), "is required (a string)"));
                }
            }
            Ok(())
        }
        Some(other) => Err(type_error(&param, "a string or a list of content parts", other)),
    }
}

fn optional_bool(map: &Map<String, Value>, field: &str) -> Result<Option<bool>, RequestError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(type_error(field, "a boolean", other)),
    }
}

fn optional_integer(map: &Map<String, Value>, field: &str, min: u64, max: u64) -> Result<Option<u64>, RequestError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Number(n)) => match n.as_u64() {
            Some(n) if (min..=max).contains(&n) => Ok(Some(n)),
            Some(n) => Err(RequestError::new(field, format!("must be between {min} and {max}, got {n}"))),
            None if n.is_i64() => Err(RequestError::new(field, format!("must be between {min} and {max}, got {n}"))),
            None => Err(type_error(field, "an integer", v)),
        },
        Some(other) => Err(type_error(field, "an integer", other)),
    }
}

fn optional_number(map: &Map<String, Value>, field: &str, min: f64, max: f64) -> Result<Option<f64>, RequestError> {
    match map.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            _ => Err(RequestError::new(field, format!("must be between {min} and {max}, got {n}"))),
        },
        Some(other) => Err(type_error(field, "a number", other)),
    }
}

fn type_error(param: &str, expected: &str, got: &Value) -> RequestError {
    let got = match got {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    };
    RequestError::new(param, format!("must be {expected}, got {got}"))
}
