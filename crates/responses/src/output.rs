//! From the provider's chat completion (JSON, or chunks as they arrive) to the Responses API's
//! output items and streaming events.
//!
//! One [`Translator`] serves both paths: a stream feeds it chunk by chunk and relays the events
//! it returns, each with its `sequence_number`; a JSON answer is fed as one chunk and only the
//! finished response is kept.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use crate::request::item_id;

/// How a response ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The provider finished the answer (`status` from its finish reason: `completed`, or
    /// `incomplete` for `length` / `content_filter`).
    Finished,
    /// The provider failed mid-answer: `status: "failed"` with this error.
    Failed {
        /// The error code (`server_error`, ...).
        code: String,
        /// What went wrong.
        message: String,
    },
    /// The client left before the end: `status: "incomplete"`, reason `interrupted`.
    Interrupted,
}

#[derive(Debug, Clone)]
struct MessageSlot {
    id: String,
    output_index: usize,
    text: String,
    refusal: String,
    done: bool,
}

#[derive(Debug, Clone, Default)]
struct CallSlot {
    id: String,
    call_id: String,
    name: String,
    arguments: String,
    /// Set once `output_item.added` went out.
    output_index: Option<usize>,
    done: bool,
}

/// Turns chat-completion chunks into Responses events and the final response object.
#[derive(Debug, Clone)]
pub struct Translator {
    response: Json,
    sequence: u64,
    message: Option<MessageSlot>,
    calls: BTreeMap<u64, CallSlot>,
    /// Output items finished, by output index.
    items: BTreeMap<usize, Json>,
    next_index: usize,
    finish_reason: Option<String>,
    usage: Option<Json>,
    max_tool_calls: Option<usize>,
}

impl Translator {
    /// A translator for the response `skeleton` (see [`crate::CreateRequest::skeleton`]);
    /// function calls past `max_tool_calls` are left out.
    pub fn new(skeleton: Json, max_tool_calls: Option<usize>) -> Self {
        Self {
            response: skeleton,
            sequence: 0,
            message: None,
            calls: BTreeMap::new(),
            items: BTreeMap::new(),
            next_index: 0,
            finish_reason: None,
            usage: None,
            max_tool_calls,
        }
    }

    /// The response's id.
    pub fn id(&self) -> &str {
        self.response.get("id").and_then(Json::as_str).unwrap_or_default()
    }

    fn event(&mut self, kind: &str, mut fields: Map<String, Json>) -> Json {
        fields.insert("type".into(), json!(kind));
        fields.insert("sequence_number".into(), json!(self.sequence));
        self.sequence += 1;
        Json::Object(fields)
    }

    fn with(pairs: Vec<(&str, Json)>) -> Map<String, Json> {
        pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
    }

    /// `response.created` and `response.in_progress`: the first event carries the id.
    pub fn start(&mut self) -> Vec<Json> {
        let response = self.response.clone();
        vec![
            self.event("response.created", Self::with(vec![("response", response.clone())])),
            self.event("response.in_progress", Self::with(vec![("response", response)])),
        ]
    }

    /// Take in one `chat.completion.chunk`; the events it makes.
    pub fn push(&mut self, chunk: &Json) -> Vec<Json> {
        let mut events = Vec::new();
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.get("choices").and_then(Json::as_array).and_then(|c| c.first()) else {
            return events;
        };
        if let Some(reason) = choice.get("finish_reason").and_then(Json::as_str) {
            self.finish_reason = Some(reason.to_owned());
        }
        let Some(delta) = choice.get("delta").or_else(|| choice.get("message")) else { return events };
        if let Some(text) = delta.get("content").and_then(Json::as_str).filter(|t| !t.is_empty()) {
            self.text_delta(text, &mut events);
        }
        if let Some(text) = delta.get("refusal").and_then(Json::as_str).filter(|t| !t.is_empty()) {
            self.open_message(&mut events);
            if let Some(m) = &mut self.message {
                m.refusal.push_str(text);
            }
        }
        if let Some(calls) = delta.get("tool_calls").and_then(Json::as_array) {
            for (position, call) in calls.iter().enumerate() {
                let index = call.get("index").and_then(Json::as_u64).unwrap_or(position as u64);
                self.call_delta(index, call, &mut events);
            }
        }
        events
    }

    fn open_message(&mut self, events: &mut Vec<Json>) {
        if self.message.as_ref().is_some_and(|m| !m.done) {
            return;
        }
        let slot = MessageSlot {
            id: item_id("message"),
            output_index: self.next_index,
            text: String::new(),
            refusal: String::new(),
            done: false,
        };
        self.next_index += 1;
        let item =
            json!({"id": slot.id, "type": "message", "status": "in_progress", "role": "assistant", "content": []});
        let (id, index) = (slot.id.clone(), slot.output_index);
        self.message = Some(slot);
        events.push(
            self.event("response.output_item.added", Self::with(vec![("output_index", json!(index)), ("item", item)])),
        );
        events.push(self.event(
            "response.content_part.added",
            Self::with(vec![
                ("item_id", json!(id)),
                ("output_index", json!(index)),
                ("content_index", json!(0)),
                ("part", json!({"type": "output_text", "text": "", "annotations": []})),
            ]),
        ));
    }

    fn text_delta(&mut self, text: &str, events: &mut Vec<Json>) {
        self.open_message(events);
        let Some(m) = &mut self.message else { return };
        m.text.push_str(text);
        let (id, index) = (m.id.clone(), m.output_index);
        events.push(self.event(
            "response.output_text.delta",
            Self::with(vec![
                ("item_id", json!(id)),
                ("output_index", json!(index)),
                ("content_index", json!(0)),
                ("delta", json!(text)),
                ("logprobs", json!([])),
            ]),
        ));
    }

    fn close_message(&mut self, status: &str, events: &mut Vec<Json>) {
        let Some(m) = self.message.as_mut().filter(|m| !m.done) else { return };
        m.done = true;
        let m = m.clone();
        let part = json!({"type": "output_text", "text": m.text, "annotations": []});
        let common = |extra: Vec<(&str, Json)>| {
            let mut fields =
                vec![("item_id", json!(m.id)), ("output_index", json!(m.output_index)), ("content_index", json!(0))];
            fields.extend(extra);
            Self::with(fields)
        };
        events.push(
            self.event("response.output_text.done", common(vec![("text", json!(m.text)), ("logprobs", json!([]))])),
        );
        events.push(self.event("response.content_part.done", common(vec![("part", part.clone())])));
        let mut content = vec![part];
        if !m.refusal.is_empty() {
            if m.text.is_empty() {
                content.clear();
            }
            content.push(json!({"type": "refusal", "refusal": m.refusal}));
        }
        let item = json!({"id": m.id, "type": "message", "status": status, "role": "assistant", "content": content});
        self.items.insert(m.output_index, item.clone());
        events.push(self.event(
            "response.output_item.done",
            Self::with(vec![("output_index", json!(m.output_index)), ("item", item)]),
        ));
    }

    fn call_allowed(&self, index: u64) -> bool {
        match self.max_tool_calls {
            Some(max) => self.calls.contains_key(&index) || self.calls.len() < max,
            None => true,
        }
    }

    fn call_delta(&mut self, index: u64, call: &Json, events: &mut Vec<Json>) {
        if !self.call_allowed(index) {
            return;
        }
        // Text before a call is a finished message: OpenAI's output lists it first.
        self.close_message("completed", events);
        let slot =
            self.calls.entry(index).or_insert_with(|| CallSlot { id: item_id("function_call"), ..CallSlot::default() });
        if let Some(id) = call.get("id").and_then(Json::as_str).filter(|s| !s.is_empty()) {
            slot.call_id = id.to_owned();
        }
        let function = call.get("function");
        if let Some(name) = function.and_then(|f| f.get("name")).and_then(Json::as_str) {
            slot.name.push_str(name);
        }
        let arguments = function.and_then(|f| f.get("arguments")).and_then(Json::as_str).unwrap_or_default().to_owned();
        slot.arguments.push_str(&arguments);
        // The item is announced with its first arguments, by when its name is complete.
        if arguments.is_empty() {
            return;
        }
        let index_out = self.announce_call(index, events);
        let id = self.calls.get(&index).map(|s| s.id.clone()).unwrap_or_default();
        events.push(self.event(
            "response.function_call_arguments.delta",
            Self::with(vec![("item_id", json!(id)), ("output_index", json!(index_out)), ("delta", json!(arguments))]),
        ));
    }

    fn call_item(slot: &CallSlot, status: &str) -> Json {
        let call_id = if slot.call_id.is_empty() { format!("call_{}", &slot.id[3..]) } else { slot.call_id.clone() };
        json!({"id": slot.id, "type": "function_call", "status": status, "call_id": call_id, "name": slot.name, "arguments": slot.arguments})
    }

    fn announce_call(&mut self, index: u64, events: &mut Vec<Json>) -> usize {
        let next = self.next_index;
        let Some(slot) = self.calls.get_mut(&index) else { return next };
        if let Some(i) = slot.output_index {
            return i;
        }
        slot.output_index = Some(next);
        self.next_index += 1;
        let mut item = Self::call_item(slot, "in_progress");
        item["arguments"] = json!("");
        events.push(
            self.event("response.output_item.added", Self::with(vec![("output_index", json!(next)), ("item", item)])),
        );
        next
    }

    /// Close every open item and end the response; returns the closing events (the last one is
    /// `response.completed`, `response.incomplete` or `response.failed`) and the final response.
    pub fn finish(&mut self, end: End) -> (Vec<Json>, Json) {
        let mut events = Vec::new();
        let item_status = match end {
            End::Finished => "completed",
            End::Failed { .. } | End::Interrupted => "incomplete",
        };
        self.close_message(item_status, &mut events);
        let indexes: Vec<u64> = self.calls.keys().copied().collect();
        for index in indexes {
            let out = self.announce_call(index, &mut events);
            let Some(slot) = self.calls.get_mut(&index).filter(|s| !s.done) else { continue };
            slot.done = true;
            let item = Self::call_item(slot, item_status);
            let (id, name, arguments) = (slot.id.clone(), slot.name.clone(), slot.arguments.clone());
            events.push(self.event(
                "response.function_call_arguments.done",
                Self::with(vec![
                    ("item_id", json!(id)),
                    ("output_index", json!(out)),
                    ("name", json!(name)),
                    ("arguments", json!(arguments)),
                ]),
            ));
            self.items.insert(out, item.clone());
            events.push(
                self.event("response.output_item.done", Self::with(vec![("output_index", json!(out)), ("item", item)])),
            );
        }
        let (status, kind) = match &end {
            End::Finished => match self.finish_reason.as_deref() {
                Some("length") => ("incomplete", "response.incomplete"),
                Some("content_filter") => ("incomplete", "response.incomplete"),
                _ => ("completed", "response.completed"),
            },
            End::Failed { .. } => ("failed", "response.failed"),
            End::Interrupted => ("incomplete", "response.incomplete"),
        };
        let incomplete = match (&end, self.finish_reason.as_deref()) {
            (End::Interrupted, _) => json!({"reason": "interrupted"}),
            (End::Finished, Some("length")) => json!({"reason": "max_output_tokens"}),
            (End::Finished, Some("content_filter")) => json!({"reason": "content_filter"}),
            _ => Json::Null,
        };
        let error = match &end {
            End::Failed { code, message } => json!({"code": code, "message": message}),
            _ => Json::Null,
        };
        let output: Vec<Json> = self.items.values().cloned().collect();
        if let Some(r) = self.response.as_object_mut() {
            r.insert("status".into(), json!(status));
            r.insert("output".into(), Json::Array(output));
            r.insert("incomplete_details".into(), incomplete);
            r.insert("error".into(), error);
            r.insert("usage".into(), self.usage.as_ref().map_or(Json::Null, usage));
        }
        let response = self.response.clone();
        events.push(self.event(kind, Self::with(vec![("response", response.clone())])));
        (events, response)
    }

    /// An `error` event (when the response could not be finished: storing it failed).
    pub fn error_event(&mut self, code: &str, message: &str) -> Json {
        self.event("error", Self::with(vec![("code", json!(code)), ("message", json!(message)), ("param", Json::Null)]))
    }

    /// A JSON `chat.completion` as the finished response.
    pub fn from_completion(mut self, completion: &Json) -> Json {
        self.push(completion);
        self.finish(End::Finished).1
    }
}

/// Chat usage as Responses usage.
pub fn usage(u: &Json) -> Json {
    let n = |v: Option<&Json>| v.and_then(Json::as_u64).unwrap_or(0);
    json!({
        "input_tokens": n(u.get("prompt_tokens")),
        "input_tokens_details": {"cached_tokens": n(u.pointer("/prompt_tokens_details/cached_tokens"))},
        "output_tokens": n(u.get("completion_tokens")),
        "output_tokens_details": {"reasoning_tokens": n(u.pointer("/completion_tokens_details/reasoning_tokens"))},
        "total_tokens": n(u.get("total_tokens")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(delta: Json, finish: Json) -> Json {
        json!({"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
    }

    fn kinds(events: &[Json]) -> Vec<&str> {
        events.iter().map(|e| e["type"].as_str().unwrap_or_default()).collect()
    }

    #[test]
    fn text_then_fragmented_tool_calls_in_order() {
        let mut t = Translator::new(json!({"id": "resp_1", "output": []}), None);
        let mut events = t.start();
        events.extend(t.push(&chunk(json!({"role": "assistant", "content": "Let me look."}), Json::Null)));
        let call = |c: Json| chunk(json!({"tool_calls": [c]}), Json::Null);
        events
            .extend(t.push(&call(json!({"index": 0, "id": "call_a", "function": {"name": "get_", "arguments": ""}}))));
        events.extend(t.push(&call(json!({"index": 0, "function": {"name": "weather", "arguments": "{\"city\":"}}))));
        events.extend(t.push(&call(json!({"index": 0, "id": "", "function": {"arguments": "\"Paris\"}"}}))));
        events.extend(t.push(&chunk(json!({}), json!("tool_calls"))));
        let mut usage = chunk(json!({}), Json::Null);
        usage["choices"] = json!([]);
        usage["usage"] = json!({"prompt_tokens": 4, "completion_tokens": 6, "total_tokens": 10});
        events.extend(t.push(&usage));
        let (end, response) = t.finish(End::Finished);
        events.extend(end);
        assert_eq!(
            kinds(&events),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (i, e) in events.iter().enumerate() {
            assert_eq!(e["sequence_number"], json!(i));
        }
        assert_eq!(events[8]["item"]["name"], "get_weather", "announced once its name is whole");
        assert_eq!(events[8]["output_index"], 1);
        let output = response["output"].as_array().expect("output");
        assert_eq!(output[0]["content"][0]["text"], "Let me look.");
        assert_eq!(
            (output[1]["call_id"].as_str(), output[1]["arguments"].as_str()),
            (Some("call_a"), Some("{\"city\":\"Paris\"}"))
        );
        assert_eq!(response["usage"]["input_tokens"], 4);
        assert_eq!(response["usage"]["output_tokens"], 6);
        assert_eq!(response["status"], "completed");
    }

    #[test]
    fn max_tool_calls_and_endings() {
        let calls = json!({"role": "assistant", "tool_calls": [
            {"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
            {"index": 1, "id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}}]});
        let completion = json!({"choices": [{"index": 0, "message": calls, "finish_reason": "tool_calls"}]});
        let one = Translator::new(json!({"id": "r"}), Some(1)).from_completion(&completion);
        assert_eq!(one["output"].as_array().map(Vec::len), Some(1), "{one}");
        let two = Translator::new(json!({"id": "r"}), None).from_completion(&completion);
        assert_eq!(two["output"].as_array().map(Vec::len), Some(2));

        let long = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": "cut"}, "finish_reason": "length"}]});
        let r = Translator::new(json!({"id": "r"}), None).from_completion(&long);
        assert_eq!(
            (r["status"].clone(), r["incomplete_details"].clone()),
            (json!("incomplete"), json!({"reason": "max_output_tokens"}))
        );

        let mut t = Translator::new(json!({"id": "r"}), None);
        t.push(&chunk(json!({"content": "part"}), Json::Null));
        let (events, r) = t.finish(End::Failed { code: "upstream_error".into(), message: "boom".into() });
        assert_eq!(events.last().map(|e| e["type"].clone()), Some(json!("response.failed")));
        assert_eq!((r["status"].clone(), r["error"]["message"].clone()), (json!("failed"), json!("boom")));
        assert_eq!(r["output"][0]["status"], "incomplete");
        let mut t = Translator::new(json!({"id": "r"}), None);
        t.push(&chunk(json!({"content": "part"}), Json::Null));
        let (_, r) = t.finish(End::Interrupted);
        assert_eq!(
            (r["status"].clone(), r["incomplete_details"]["reason"].clone()),
            (json!("incomplete"), json!("interrupted"))
        );
    }
}
