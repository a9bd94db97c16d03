//! The built-in `echo` development provider (`provider_type: inline::echo`): it answers every chat
//! completion in process, deterministically, from the request alone, so that a server with no
//! engine configured still proxies, stores and lists completions. Not a model: the answer is
//! `echo: ` and the text of the last user message.
//!
//! JSON answers carry `usage`; streams send the answer word by word, a chunk with the
//! `finish_reason`, then a usage-only chunk (`choices: []`), as OpenAI does with
//! `stream_options.include_usage`, and `[DONE]`.

use futures_util::stream::{self, StreamExt};
use serde_json::{Value, json};

use crate::client::{ChunkStream, StreamEvent};

/// `provider_id` of the built-in echo provider in the starter config.
pub const ECHO_PROVIDER_ID: &str = "echo";
/// The model the starter config serves from it.
pub const ECHO_MODEL_ID: &str = "echo";
/// A fixed `created` so that answers are reproducible.
const CREATED: i64 = 1_700_000_000;

/// The text of the last user message: a string `content`, or its `text` parts joined.
fn last_user_text(body: &Value) -> String {
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    let Some(message) = messages.iter().rev().find(|m| m.get("role").and_then(Value::as_str) == Some("user")) else {
        return String::new();
    };
    match message.get("content") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => {
            parts.iter().filter_map(|p| p.get("text").and_then(Value::as_str)).collect::<Vec<_>>().join(" ")
        }
        _ => String::new(),
    }
}

/// Whitespace-separated words of every message's text: the echo provider's token count.
fn prompt_tokens(body: &Value) -> usize {
    let messages = body.get("messages").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    messages
        .iter()
        .map(|m| match m.get("content") {
            Some(Value::String(s)) => s.split_whitespace().count(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .map(|t| t.split_whitespace().count())
                .sum(),
            _ => 0,
        })
        .sum()
}

/// The answer's text.
pub fn answer_text(body: &Value) -> String {
    format!("echo: {}", last_user_text(body))
}

fn usage(body: &Value, answer: &str) -> Value {
    let prompt = prompt_tokens(body);
    let completion = answer.split_whitespace().count();
    json!({"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion})
}

/// The `chat.completion` for `body` (whose `model` is already the provider's model id).
pub fn completion(body: &Value) -> Value {
    let text = answer_text(body);
    json!({
        "id": "chatcmpl-echo",
        "object": "chat.completion",
        "created": CREATED,
        "model": body.get("model").cloned().unwrap_or(Value::Null),
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": null,
                     "message": {"role": "assistant", "content": text}}],
        "usage": usage(body, &text),
    })
}

/// The chunks of the streamed answer for `body`.
pub fn chunks(body: &Value) -> Vec<Value> {
    let text = answer_text(body);
    let model = body.get("model").cloned().unwrap_or(Value::Null);
    let chunk = |delta: Value, finish: Value| {
        json!({"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": CREATED, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    };
    let mut out = Vec::new();
    // Words with the space that follows each, so the pieces join back into the answer.
    let mut rest = text.as_str();
    let mut first = true;
    while !rest.is_empty() {
        let end = rest.find(' ').map_or(rest.len(), |i| i + 1);
        let (piece, tail) = rest.split_at(end);
        let delta = if first { json!({"role": "assistant", "content": piece}) } else { json!({"content": piece}) };
        out.push(chunk(delta, Value::Null));
        first = false;
        rest = tail;
    }
    out.push(chunk(json!({}), json!("stop")));
    let mut last = json!({"id": "chatcmpl-echo", "object": "chat.completion.chunk", "created": CREATED,
                          "model": model, "choices": []});
    last["usage"] = usage(body, &text);
    out.push(last);
    out
}

/// The streamed answer, as the chunk stream of an upstream.
pub fn chunk_stream(body: &Value) -> ChunkStream {
    let events: Vec<_> = chunks(body).into_iter().map(StreamEvent::Chunk).chain([StreamEvent::Done]).map(Ok).collect();
    stream::iter(events).boxed()
}
