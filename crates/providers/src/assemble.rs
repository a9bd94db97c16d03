//! From the chunks of a stream to the `chat.completion` that is stored (REFERENCE.md 5.2), and the
//! rewrites applied to what the client sees.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::chunk::{CallView, ChoiceView, ChunkParts};
use crate::raw::{self, Kind, Members};

/// Accumulates `chat.completion.chunk`s, in order, into one `chat.completion`.
///
/// Per choice index: content and refusal fragments concatenated; tool-call fragments keyed by
/// their index (`id` and `type` take the last non-empty value, `name` and `arguments` are
/// concatenated); the last non-null `finish_reason` (`null` when no chunk gave one: the stream was
/// cut); logprob entries concatenated. `id` and
/// `created` come from the first chunk that has them, `usage` from the last chunk that carries it.
#[derive(Debug, Clone)]
pub struct StreamAssembler {
    model: String,
    id: Option<String>,
    created: Option<i64>,
    usage: Option<Value>,
    choices: BTreeMap<u64, ChoiceParts>,
}

#[derive(Debug, Clone, Default)]
struct ChoiceParts {
    content: String,
    refusal: String,
    tool_calls: BTreeMap<u64, ToolCallParts>,
    finish_reason: Option<String>,
    logprobs_content: Vec<Value>,
    logprobs_refusal: Vec<Value>,
    has_logprobs: bool,
}

#[derive(Debug, Clone, Default)]
struct ToolCallParts {
    id: String,
    kind: String,
    name: String,
    arguments: String,
}

impl StreamAssembler {
    /// An assembler for a stream requested with `model` (the registry's id, which the assembled
    /// completion carries instead of the provider's).
    pub fn new(model: impl Into<String>) -> Self {
        Self { model: model.into(), id: None, created: None, usage: None, choices: BTreeMap::new() }
    }

    /// The completion id, once a chunk carried one.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// Take in the next chunk. Anything that is not a chunk-shaped object is ignored.
    pub fn push(&mut self, chunk: &Value) {
        let Some(chunk) = chunk.as_object() else { return };
        if self.id.is_none()
            && let Some(id) = chunk.get("id").and_then(Value::as_str).filter(|s| !s.is_empty())
        {
            self.id = Some(id.to_owned());
        }
        if self.created.is_none() {
            self.created = chunk.get("created").and_then(as_i64);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choices) = chunk.get("choices").and_then(Value::as_array) else { return };
        for (position, choice) in choices.iter().enumerate() {
            let Some(choice) = choice.as_object() else { continue };
            let index = choice.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
            let parts = self.choices.entry(index).or_default();
            parts.push(choice);
        }
    }

    /// Take in the next chunk, as the top-level members of its JSON text (no tree is built; see
    /// [`crate::relay_chunk`]). `id` is the completion's id when the chunk does not count for one
    /// (the relay passes ferrostack's own, which every relayed chunk carries).
    pub fn push_members(&mut self, chunk: &Members<'_>, id: Option<&str>) {
        if self.id.is_none() {
            let theirs = chunk.get("id").and_then(raw::as_str).filter(|s| !s.is_empty());
            self.id = id.map(str::to_owned).or_else(|| theirs.map(std::borrow::Cow::into_owned));
        }
        if self.created.is_none() {
            self.created = chunk.get("created").and_then(raw::as_number).as_ref().and_then(number_i64);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| Kind::of(u) == Kind::Object)
            && let Ok(usage) = serde_json::from_str(usage.get())
        {
            self.usage = Some(usage);
        }
        let Some(choices) = chunk.get("choices").and_then(raw::as_array) else { return };
        for (position, choice) in choices.0.iter().enumerate() {
            let Some(choice) = raw::as_object(choice) else { continue };
            let index =
                choice.get("index").and_then(raw::as_number).and_then(|n| n.as_u64()).unwrap_or(position as u64);
            self.choices.entry(index).or_default().push_members(&choice);
        }
    }

    /// Take in the next chunk, as the relay's one pass over its text found it (see
    /// [`crate::chunk`]): the same as [`StreamAssembler::push_members`] of that text.
    pub(crate) fn push_parts(&mut self, text: &str, chunk: &ChunkParts, id: Option<&str>) {
        if self.id.is_none() {
            let theirs = chunk.id.and_then(|v| v.str(text)).filter(|s| !s.is_empty());
            self.id = id.map(str::to_owned).or_else(|| theirs.map(std::borrow::Cow::into_owned));
        }
        if self.created.is_none() {
            self.created = chunk.created.and_then(|v| v.number(text)).as_ref().and_then(number_i64);
        }
        if let Some(usage) = chunk.usage.filter(|u| u.is_object())
            && let Ok(usage) = serde_json::from_str(usage.raw(text))
        {
            self.usage = Some(usage);
        }
        for choice in chunk.choices() {
            let index = choice.index.and_then(|v| v.u64(text)).unwrap_or(choice.position);
            self.choices.entry(index).or_default().push_view(text, chunk, choice);
        }
    }

    /// The assembled `chat.completion`, or `None` when no chunk carried an id (nothing to store).
    /// `created` falls back to now.
    pub fn finish(&self) -> Option<Value> {
        let id = self.id.as_ref()?;
        let created = self.created.unwrap_or_else(|| chrono::Utc::now().timestamp());
        let choices: Vec<Value> = self.choices.iter().map(|(index, parts)| parts.finish(*index)).collect();
        let mut completion = json!({
            "id": id,
            "object": "chat.completion",
            "created": created,
            "model": self.model,
            "choices": choices,
        });
        if let (Some(usage), Some(map)) = (&self.usage, completion.as_object_mut()) {
            map.insert("usage".to_owned(), usage.clone());
        }
        Some(completion)
    }
}

impl ChoiceParts {
    fn push_members(&mut self, choice: &Members<'_>) {
        if let Some(delta) = choice.get("delta").and_then(raw::as_object) {
            if let Some(text) = delta.get("content").and_then(raw::as_str) {
                self.content.push_str(&text);
            }
            if let Some(text) = delta.get("refusal").and_then(raw::as_str) {
                self.refusal.push_str(&text);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(raw::as_array) {
                for (position, call) in calls.0.iter().enumerate() {
                    let Some(call) = raw::as_object(call) else { continue };
                    let index =
                        call.get("index").and_then(raw::as_number).and_then(|n| n.as_u64()).unwrap_or(position as u64);
                    self.tool_calls.entry(index).or_default().push_members(&call);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(raw::as_str) {
            self.finish_reason = Some(reason.into_owned());
        }
        if let Some(logprobs) = choice.get("logprobs").and_then(raw::as_object) {
            for (key, into) in [("content", &mut self.logprobs_content), ("refusal", &mut self.logprobs_refusal)] {
                if let Some(entries) = logprobs.get(key).and_then(raw::as_array) {
                    into.extend(entries.0.iter().filter_map(|e| serde_json::from_str::<Value>(e.get()).ok()));
                    self.has_logprobs = true;
                }
            }
        }
    }

    fn push_view(&mut self, text: &str, chunk: &ChunkParts, choice: &ChoiceView) {
        if let Some(delta) = &choice.delta {
            if let Some(content) = delta.content.and_then(|v| v.str(text)) {
                self.content.push_str(&content);
            }
            if let Some(refusal) = delta.refusal.and_then(|v| v.str(text)) {
                self.refusal.push_str(&refusal);
            }
            if let Some(calls) = &delta.tool_calls {
                for call in chunk.calls(calls) {
                    let index = call.index.and_then(|v| v.u64(text)).unwrap_or(call.position);
                    self.tool_calls.entry(index).or_default().push_view(text, call);
                }
            }
        }
        if let Some(reason) = choice.finish_reason.and_then(|v| v.str(text)) {
            self.finish_reason = Some(reason.into_owned());
        }
        if let Some(logprobs) = &choice.logprobs {
            for (list, into) in
                [(&logprobs.content, &mut self.logprobs_content), (&logprobs.refusal, &mut self.logprobs_refusal)]
            {
                if let Some(list) = list {
                    into.extend(
                        chunk.entries(list).iter().filter_map(|e| serde_json::from_str::<Value>(e.raw(text)).ok()),
                    );
                    self.has_logprobs = true;
                }
            }
        }
    }

    fn push(&mut self, choice: &Map<String, Value>) {
        if let Some(delta) = choice.get("delta").and_then(Value::as_object) {
            if let Some(text) = delta.get("content").and_then(Value::as_str) {
                self.content.push_str(text);
            }
            if let Some(text) = delta.get("refusal").and_then(Value::as_str) {
                self.refusal.push_str(text);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                for (position, call) in calls.iter().enumerate() {
                    let Some(call) = call.as_object() else { continue };
                    let index = call.get("index").and_then(Value::as_u64).unwrap_or(position as u64);
                    self.tool_calls.entry(index).or_default().push(call);
                }
            }
        }
        if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        if let Some(logprobs) = choice.get("logprobs").and_then(Value::as_object) {
            for (key, into) in [("content", &mut self.logprobs_content), ("refusal", &mut self.logprobs_refusal)] {
                if let Some(entries) = logprobs.get(key).and_then(Value::as_array) {
                    into.extend(entries.iter().cloned());
                    self.has_logprobs = true;
                }
            }
        }
    }

    fn finish(&self, index: u64) -> Value {
        let tool_calls: Vec<Value> = self
            .tool_calls
            .values()
            .filter(|c| !c.id.is_empty())
            .map(|c| {
                let kind = if c.kind.is_empty() { "function" } else { c.kind.as_str() };
                json!({"id": c.id, "type": kind, "function": {"name": c.name, "arguments": c.arguments}})
            })
            .collect();
        let text = |s: &str| if s.is_empty() { Value::Null } else { Value::String(s.to_owned()) };
        let logprobs = if self.has_logprobs {
            let refusal = if self.logprobs_refusal.is_empty() {
                Value::Null
            } else {
                Value::Array(self.logprobs_refusal.clone())
            };
            json!({"content": self.logprobs_content, "refusal": refusal})
        } else {
            Value::Null
        };
        json!({
            "index": index,
            // Only what the upstream said: a stream cut before its finish chunk (the client left,
            // the upstream broke or timed out) is stored with `null`, never a made-up `stop`.
            "finish_reason": self.finish_reason.as_deref(),
            "message": {
                "role": "assistant",
                "content": text(&self.content),
                "refusal": text(&self.refusal),
                "tool_calls": if tool_calls.is_empty() { Value::Null } else { Value::Array(tool_calls) },
            },
            "logprobs": logprobs,
        })
    }
}

impl ToolCallParts {
    fn push_members(&mut self, call: &Members<'_>) {
        if let Some(id) = call.get("id").and_then(raw::as_str).filter(|s| !s.is_empty()) {
            id.as_ref().clone_into(&mut self.id);
        }
        if let Some(kind) = call.get("type").and_then(raw::as_str).filter(|s| !s.is_empty()) {
            kind.as_ref().clone_into(&mut self.kind);
        }
        if let Some(function) = call.get("function").and_then(raw::as_object) {
            if let Some(name) = function.get("name").and_then(raw::as_str) {
                self.name.push_str(&name);
            }
            if let Some(arguments) = function.get("arguments").and_then(raw::as_str) {
                self.arguments.push_str(&arguments);
            }
        }
    }

    fn push_view(&mut self, text: &str, call: &CallView) {
        if let Some(id) = call.id.and_then(|v| v.str(text)).filter(|s| !s.is_empty()) {
            id.as_ref().clone_into(&mut self.id);
        }
        if let Some(kind) = call.kind.and_then(|v| v.str(text)).filter(|s| !s.is_empty()) {
            kind.as_ref().clone_into(&mut self.kind);
        }
        if let Some(function) = &call.function {
            if let Some(name) = function.name.and_then(|v| v.str(text)) {
                self.name.push_str(&name);
            }
            if let Some(arguments) = function.arguments.and_then(|v| v.str(text)) {
                self.arguments.push_str(&arguments);
            }
        }
    }

    fn push(&mut self, call: &Map<String, Value>) {
        if let Some(id) = call.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            id.clone_into(&mut self.id);
        }
        if let Some(kind) = call.get("type").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            kind.clone_into(&mut self.kind);
        }
        if let Some(function) = call.get("function").and_then(Value::as_object) {
            if let Some(name) = function.get("name").and_then(Value::as_str) {
                self.name.push_str(name);
            }
            if let Some(arguments) = function.get("arguments").and_then(Value::as_str) {
                self.arguments.push_str(arguments);
            }
        }
    }
}

/// A timestamp given as an integer, or as a float by lenient servers.
fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => number_i64(n),
        _ => None,
    }
}

/// [`as_i64`] of a number.
fn number_i64(v: &serde_json::Number) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64().filter(|f| f.is_finite() && *f >= 0.0 && *f < 1e15).map(|f| {
            #[expect(clippy::cast_possible_truncation, reason = "range checked above; fractions are dropped")]
            let secs = f as i64;
            secs
        })
    })
}

/// Set a relayed chunk's `model` to the id the client requested (the registry's, not the
/// provider's).
pub fn rewrite_chunk_model(chunk: &mut Value, model: &str) {
    if let Some(map) = chunk.as_object_mut() {
        map.insert("model".to_owned(), Value::String(model.to_owned()));
    }
}

/// Normalise a non-streaming completion before it is returned and stored: `model` becomes the
/// requested id, and empty `tool_calls` lists become null.
pub fn normalize_completion(completion: &mut Value, model: &str) {
    let Some(map) = completion.as_object_mut() else { return };
    map.insert("model".to_owned(), Value::String(model.to_owned()));
    let Some(choices) = map.get_mut("choices").and_then(Value::as_array_mut) else { return };
    for choice in choices {
        if let Some(message) = choice.get_mut("message").and_then(Value::as_object_mut)
            && message.get("tool_calls").and_then(Value::as_array).is_some_and(Vec::is_empty)
        {
            message.insert("tool_calls".to_owned(), Value::Null);
        }
    }
}
