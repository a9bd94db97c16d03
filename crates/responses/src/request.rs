//! `POST /v1/responses` bodies: checked field by field (every error names its field, as OpenAI's
//! `param`), then translated to a chat-completions body for the model's provider.
//!
//! What a chat model can honour is translated; what needs a server-side executor (hosted tools,
//! background runs, stored prompts) is refused with a 400 naming the field, never ignored.

use ferrostack_catalog::random_id;
use serde_json::{Map, Value as Json, json};

use crate::Error;

/// Tool types that need a server-side executor ferrostack does not have.
const HOSTED_TOOLS: &[&str] = &[
    "web_search",
    "web_search_preview",
    "web_search_preview_2025_03_11",
    "web_search_2025_08_26",
    "file_search",
    "code_interpreter",
    "mcp",
    "computer_use",
    "computer_use_preview",
    "computer",
    "image_generation",
    "local_shell",
    "shell",
    "apply_patch",
    "custom",
];

/// Fields of the request that are accepted; anything else is a 400 naming it.
const FIELDS: &[&str] = &[
    "model",
    "input",
    "instructions",
    "previous_response_id",
    "conversation",
    "store",
    "stream",
    "stream_options",
    "metadata",
    "temperature",
    "top_p",
    "max_output_tokens",
    "max_tool_calls",
    "tools",
    "tool_choice",
    "parallel_tool_calls",
    "text",
    "user",
    "include",
    "truncation",
    "reasoning",
    "top_logprobs",
    "background",
    "service_tier",
    "safety_identifier",
    "prompt_cache_key",
    "prompt",
];

/// Id prefix the server gives an item of `kind` (the conversations store's, so items look the
/// same in both APIs).
pub fn item_id(kind: &str) -> String {
    random_id(ferrostack_conversations::validate::id_prefix(kind), 48)
}

/// A checked `POST /v1/responses` body.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateRequest {
    /// The model id as the client sent it (answered back unchanged).
    pub model: String,
    /// `stream: true`.
    pub stream: bool,
    /// `store` (default true).
    pub store: bool,
    /// This turn's input items, normalised (`type` set, ids given), in order.
    pub input: Vec<Json>,
    /// `instructions` of this request (never inherited).
    pub instructions: Option<String>,
    /// `previous_response_id`.
    pub previous_response_id: Option<String>,
    /// The conversation id (`conversation` as an id or `{id}`).
    pub conversation: Option<String>,
    /// `max_tool_calls`: function calls past it are left out of the output.
    pub max_tool_calls: Option<usize>,
    /// The request parameters the response object echoes.
    echo: Map<String, Json>,
    /// The chat-completions fields (besides `model`, `messages`, `stream`).
    chat: Map<String, Json>,
}

fn type_name(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "an array",
        Json::Object(_) => "an object",
    }
}

fn must_be(param: &str, what: &str, got: &Json) -> Error {
    Error::invalid(param, format!("{param} must be {what}, got {}", type_name(got)))
}

fn not_supported(param: &str, what: &str) -> Error {
    Error::invalid(param, format!("{param}: {what} is not supported by ferrostack"))
}

fn present<'a>(map: &'a Map<String, Json>, key: &str) -> Option<&'a Json> {
    map.get(key).filter(|v| !v.is_null())
}

fn opt_string(map: &Map<String, Json>, key: &str) -> Result<Option<String>, Error> {
    match present(map, key) {
        None => Ok(None),
        Some(Json::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(must_be(key, "a string", other)),
    }
}

fn opt_bool(map: &Map<String, Json>, key: &str) -> Result<Option<bool>, Error> {
    match present(map, key) {
        None => Ok(None),
        Some(Json::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(must_be(key, "a boolean", other)),
    }
}

fn opt_number(map: &Map<String, Json>, key: &str, min: f64, max: f64) -> Result<Option<Json>, Error> {
    match present(map, key) {
        None => Ok(None),
        Some(v @ Json::Number(n)) => match n.as_f64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(v.clone())),
            _ => Err(Error::invalid(key, format!("{key} must be between {min} and {max}, got {n}"))),
        },
        Some(other) => Err(must_be(key, "a number", other)),
    }
}

fn opt_integer(map: &Map<String, Json>, key: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
    match present(map, key) {
        None => Ok(None),
        Some(v @ Json::Number(n)) => match n.as_i64() {
            Some(x) if (min..=max).contains(&x) => Ok(Some(x)),
            Some(x) => Err(Error::invalid(key, format!("{key} must be between {min} and {max}, got {x}"))),
            None if n.is_u64() => Err(Error::invalid(key, format!("{key} must be between {min} and {max}, got {n}"))),
            None => Err(must_be(key, "an integer", v)),
        },
        Some(other) => Err(must_be(key, "an integer", other)),
    }
}

/// Check a `POST /v1/responses` body; the first problem found is returned.
pub fn parse(body: &Json) -> Result<CreateRequest, Error> {
    let Some(map) = body.as_object() else {
        return Err(Error::invalid("", "the request body must be a JSON object"));
    };
    if let Some(unknown) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(Error::invalid(unknown.clone(), format!("unknown parameter '{unknown}'")));
    }
    let model = match present(map, "model") {
        None => return Err(Error::invalid("model", "model is required")),
        Some(Json::String(s)) if s.trim().is_empty() => return Err(Error::invalid("model", "model must not be empty")),
        Some(Json::String(s)) => s.clone(),
        Some(other) => return Err(must_be("model", "a string", other)),
    };
    let input = input(present(map, "input"))?;
    let instructions = opt_string(map, "instructions")?;
    let previous_response_id = opt_string(map, "previous_response_id")?;
    if previous_response_id.as_deref().is_some_and(str::is_empty) {
        return Err(Error::invalid("previous_response_id", "previous_response_id must not be empty"));
    }
    let conversation = match present(map, "conversation") {
        None => None,
        Some(Json::String(id)) => Some(id.clone()),
        Some(Json::Object(c)) => match c.get("id") {
            Some(Json::String(id)) => Some(id.clone()),
            _ => return Err(Error::invalid("conversation", "conversation must be an id or an object {\"id\": ...}")),
        },
        Some(other) => return Err(must_be("conversation", "an id or an object {\"id\": ...}", other)),
    };
    if previous_response_id.is_some() && conversation.is_some() {
        return Err(Error::invalid(
            "conversation",
            "previous_response_id and conversation cannot be used together: give one of them",
        ));
    }
    let stream = opt_bool(map, "stream")?.unwrap_or(false);
    let store = opt_bool(map, "store")?.unwrap_or(true);
    if let Some(options) = present(map, "stream_options") {
        if !options.is_object() {
            return Err(must_be("stream_options", "an object", options));
        }
        if !stream {
            return Err(Error::invalid("stream_options", "stream_options is only allowed when stream is true"));
        }
    }
    if opt_bool(map, "background")? == Some(true) {
        return Err(not_supported("background", "running a response in the background"));
    }
    if present(map, "prompt").is_some() {
        return Err(not_supported("prompt", "a stored prompt template"));
    }
    let metadata = match present(map, "metadata") {
        None => Map::new(),
        Some(m) => {
            ferrostack_conversations::validate::metadata(m).map_err(|e| Error::invalid("metadata", e.to_string()))?
        }
    };

    let mut chat = Map::new();
    let mut echo = Map::new();
    let temperature = opt_number(map, "temperature", 0.0, 2.0)?;
    let top_p = opt_number(map, "top_p", 0.0, 1.0)?;
    let max_output_tokens = opt_integer(map, "max_output_tokens", 1, i64::from(u32::MAX))?;
    let max_tool_calls = opt_integer(map, "max_tool_calls", 1, i64::from(u32::MAX))?;
    let top_logprobs = opt_integer(map, "top_logprobs", 0, 20)?;
    let parallel_tool_calls = opt_bool(map, "parallel_tool_calls")?;
    let user = opt_string(map, "user")?;
    if let Some(t) = &temperature {
        chat.insert("temperature".into(), t.clone());
    }
    if let Some(t) = &top_p {
        chat.insert("top_p".into(), t.clone());
    }
    if let Some(n) = max_output_tokens {
        chat.insert("max_tokens".into(), json!(n));
    }
    if let Some(n) = top_logprobs {
        chat.insert("logprobs".into(), json!(true));
        chat.insert("top_logprobs".into(), json!(n));
    }
    if let Some(u) = &user {
        chat.insert("user".into(), json!(u));
    }
    let tools = tools(present(map, "tools"))?;
    let tool_choice = tool_choice(present(map, "tool_choice"), &tools)?;
    if !tools.is_empty() {
        chat.insert("tools".into(), Json::Array(tools.iter().map(|(_, chat)| chat.clone()).collect()));
        if let Some(p) = parallel_tool_calls {
            chat.insert("parallel_tool_calls".into(), json!(p));
        }
    }
    if let Some((_, chat_choice)) = &tool_choice {
        chat.insert("tool_choice".into(), chat_choice.clone());
    }
    let text = text(present(map, "text"))?;
    if let Some(format) = text.1 {
        chat.insert("response_format".into(), format);
    }
    if let Some(reasoning) = present(map, "reasoning") {
        let Some(r) = reasoning.as_object() else { return Err(must_be("reasoning", "an object", reasoning)) };
        match present(r, "effort") {
            None => {}
            Some(Json::String(effort)) => {
                chat.insert("reasoning_effort".into(), json!(effort));
            }
            Some(other) => return Err(must_be("reasoning.effort", "a string", other)),
        }
    }
    match present(map, "truncation") {
        None => {}
        Some(Json::String(t)) if t == "disabled" || t == "auto" => {}
        Some(other) => {
            return Err(Error::invalid("truncation", format!("truncation must be 'disabled' or 'auto', got {other}")));
        }
    }
    if let Some(include) = present(map, "include")
        && !include.as_array().is_some_and(|a| a.iter().all(Json::is_string))
    {
        return Err(must_be("include", "an array of strings", include));
    }
    for key in ["service_tier", "safety_identifier", "prompt_cache_key"] {
        opt_string(map, key)?;
    }

    echo.insert("instructions".into(), json!(instructions));
    echo.insert("max_output_tokens".into(), json!(max_output_tokens));
    echo.insert("max_tool_calls".into(), json!(max_tool_calls));
    echo.insert("metadata".into(), Json::Object(metadata));
    echo.insert("parallel_tool_calls".into(), json!(parallel_tool_calls.unwrap_or(true)));
    echo.insert("previous_response_id".into(), json!(previous_response_id));
    echo.insert("conversation".into(), conversation.as_ref().map_or(Json::Null, |id| json!({"id": id})));
    echo.insert(
        "reasoning".into(),
        present(map, "reasoning").cloned().unwrap_or_else(|| json!({"effort": null, "summary": null})),
    );
    echo.insert("store".into(), json!(store));
    echo.insert("temperature".into(), temperature.unwrap_or_else(|| json!(1.0)));
    echo.insert("text".into(), json!({"format": text.0}));
    echo.insert("tool_choice".into(), tool_choice.map_or_else(|| json!("auto"), |(echo, _)| echo));
    echo.insert("tools".into(), Json::Array(tools.into_iter().map(|(echo, _)| echo).collect()));
    echo.insert("top_logprobs".into(), json!(top_logprobs.unwrap_or(0)));
    echo.insert("top_p".into(), top_p.unwrap_or_else(|| json!(1.0)));
    echo.insert("truncation".into(), present(map, "truncation").cloned().unwrap_or_else(|| json!("disabled")));
    echo.insert("user".into(), json!(user));
    echo.insert("background".into(), json!(false));
    Ok(CreateRequest {
        model,
        stream,
        store,
        input,
        instructions,
        previous_response_id,
        conversation,
        max_tool_calls: max_tool_calls.and_then(|n| usize::try_from(n).ok()),
        echo,
        chat,
    })
}

impl CreateRequest {
    /// The response object before any output: `status: "in_progress"`, the request's
    /// parameters echoed, `model` as the client sent it.
    pub fn skeleton(&self, id: &str, created_at: i64) -> Json {
        let mut r = Map::new();
        r.insert("id".into(), json!(id));
        r.insert("object".into(), json!("response"));
        r.insert("created_at".into(), json!(created_at));
        r.insert("status".into(), json!("in_progress"));
        r.insert("error".into(), Json::Null);
        r.insert("incomplete_details".into(), Json::Null);
        r.insert("model".into(), json!(self.model));
        r.insert("output".into(), json!([]));
        r.insert("usage".into(), Json::Null);
        for (k, v) in &self.echo {
            r.insert(k.clone(), v.clone());
        }
        Json::Object(r)
    }

    /// The chat-completions body for the provider: this request's instructions as the system
    /// message, then `context` (earlier turns' input and output items, or a conversation's
    /// items, oldest first), then this turn's input.
    pub fn chat_body(&self, context: &[Json]) -> Json {
        let mut messages = Vec::new();
        if let Some(instructions) = &self.instructions {
            messages.push(json!({"role": "system", "content": instructions}));
        }
        to_messages(context.iter().chain(&self.input), &mut messages);
        let mut body = Map::new();
        body.insert("model".into(), json!(self.model));
        body.insert("messages".into(), Json::Array(messages));
        for (k, v) in &self.chat {
            body.insert(k.clone(), v.clone());
        }
        if self.stream {
            body.insert("stream".into(), json!(true));
            body.insert("stream_options".into(), json!({"include_usage": true}));
        }
        Json::Object(body)
    }
}

/// `input`: a string (one user message) or a non-empty list of items, normalised.
fn input(value: Option<&Json>) -> Result<Vec<Json>, Error> {
    match value {
        None => Err(Error::invalid("input", "input is required")),
        Some(Json::String(text)) => Ok(vec![json!({
            "type": "message", "id": item_id("message"), "role": "user", "status": "completed",
            "content": [{"type": "input_text", "text": text}],
        })]),
        Some(Json::Array(items)) if items.is_empty() => Err(Error::invalid("input", "input must not be empty")),
        Some(Json::Array(items)) => {
            items.iter().enumerate().map(|(i, item)| input_item(item, &format!("input[{i}]"))).collect()
        }
        Some(other) => Err(must_be("input", "a string or an array of items", other)),
    }
}

fn input_item(value: &Json, at: &str) -> Result<Json, Error> {
    let Some(map) = value.as_object() else { return Err(must_be(at, "an object", value)) };
    let mut map = map.clone();
    let kind = match map.get("type") {
        Some(Json::String(t)) => t.clone(),
        None if map.contains_key("role") => "message".to_owned(),
        None => return Err(Error::invalid(format!("{at}.type"), format!("{at}.type is required"))),
        Some(other) => return Err(must_be(&format!("{at}.type"), "a string", other)),
    };
    map.insert("type".into(), json!(kind));
    let field = |name: &str| format!("{at}.{name}");
    let string = |map: &Map<String, Json>, name: &str| -> Result<(), Error> {
        match map.get(name) {
            Some(Json::String(_)) => Ok(()),
            Some(other) => Err(must_be(&field(name), "a string", other)),
            None => Err(Error::invalid(field(name), format!("{} is required", field(name)))),
        }
    };
    match kind.as_str() {
        "message" => {
            let role = match map.get("role") {
                Some(Json::String(r)) if ["user", "assistant", "system", "developer"].contains(&r.as_str()) => {
                    r.clone()
                }
                Some(_) => {
                    return Err(Error::invalid(
                        field("role"),
                        format!("{} must be one of user, assistant, system, developer", field("role")),
                    ));
                }
                None => return Err(Error::invalid(field("role"), format!("{} is required", field("role")))),
            };
            let content = match map.get("content") {
                Some(Json::String(text)) => {
                    let kind = if role == "assistant" { "output_text" } else { "input_text" };
                    let mut part = json!({"type": kind, "text": text});
                    if role == "assistant" {
                        part["annotations"] = json!([]);
                    }
                    vec![part]
                }
                Some(Json::Array(parts)) => parts
                    .iter()
                    .enumerate()
                    .map(|(j, p)| content_part(p, &format!("{at}.content[{j}]")))
                    .collect::<Result<_, _>>()?,
                Some(other) => return Err(must_be(&field("content"), "a string or an array of content parts", other)),
                None => return Err(Error::invalid(field("content"), format!("{} is required", field("content")))),
            };
            map.insert("content".into(), Json::Array(content));
            map.entry("status").or_insert_with(|| json!("completed"));
        }
        "function_call" => {
            string(&map, "call_id")?;
            string(&map, "name")?;
            string(&map, "arguments")?;
            map.entry("status").or_insert_with(|| json!("completed"));
        }
        "function_call_output" => {
            string(&map, "call_id")?;
            match map.get("output") {
                Some(Json::String(_) | Json::Array(_)) => {}
                Some(other) => return Err(must_be(&field("output"), "a string or an array", other)),
                None => return Err(Error::invalid(field("output"), format!("{} is required", field("output")))),
            }
        }
        // Reasoning of an earlier answer: kept with the turn, not sent to the model.
        "reasoning" => {}
        "item_reference" => {
            return Err(not_supported(&field("type"), "'item_reference' (use previous_response_id or conversation)"));
        }
        other => {
            return Err(Error::invalid(
                field("type"),
                format!(
                    "{}: item type '{other}' is not supported; ferrostack takes message, function_call, function_call_output and reasoning items",
                    field("type")
                ),
            ));
        }
    }
    match map.get("id") {
        None | Some(Json::Null) => {
            map.insert("id".into(), json!(item_id(&kind)));
        }
        Some(Json::String(id)) if !id.is_empty() && id.len() <= 256 => {}
        Some(_) => {
            return Err(Error::invalid(
                field("id"),
                format!("{} must be a non-empty string of at most 256 characters", field("id")),
            ));
        }
    }
    Ok(Json::Object(map))
}

fn content_part(value: &Json, at: &str) -> Result<Json, Error> {
    let Some(part) = value.as_object() else { return Err(must_be(at, "an object", value)) };
    let kind = match part.get("type") {
        Some(Json::String(t)) => t.as_str(),
        _ => return Err(Error::invalid(format!("{at}.type"), format!("{at}.type is required (a string)"))),
    };
    let text_field = |name: &str| -> Result<(), Error> {
        match part.get(name) {
            Some(Json::String(_)) => Ok(()),
            _ => Err(Error::invalid(format!("{at}.{name}"), format!("{at}.{name} is required (a string)"))),
        }
    };
    match kind {
        "input_text" | "output_text" | "text" => text_field("text")?,
        "refusal" => text_field("refusal")?,
        "input_image" => match (present(part, "image_url"), present(part, "file_id")) {
            (Some(Json::String(_)), _) => {}
            (Some(other), _) => return Err(must_be(&format!("{at}.image_url"), "a string", other)),
            (None, Some(_)) => {
                return Err(not_supported(
                    &format!("{at}.file_id"),
                    "an image by file_id (ferrostack has no Files API; give image_url)",
                ));
            }
            (None, None) => {
                return Err(Error::invalid(format!("{at}.image_url"), format!("{at}.image_url is required")));
            }
        },
        "input_file" => match present(part, "file_data") {
            Some(Json::String(_)) => {}
            Some(other) => return Err(must_be(&format!("{at}.file_data"), "a string", other)),
            None => {
                return Err(not_supported(
                    &format!("{at}.file_data"),
                    "a file by file_id or file_url (give file_data)",
                ));
            }
        },
        other => {
            return Err(Error::invalid(
                format!("{at}.type"),
                format!(
                    "{at}.type '{other}' is not supported; expected input_text, input_image, input_file, output_text or refusal"
                ),
            ));
        }
    }
    Ok(value.clone())
}

/// `tools`: each function tool as echoed and as sent upstream.
fn tools(value: Option<&Json>) -> Result<Vec<(Json, Json)>, Error> {
    let list = match value {
        None => return Ok(Vec::new()),
        Some(Json::Array(list)) => list,
        Some(other) => return Err(must_be("tools", "an array", other)),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Some(t) = tool.as_object() else { return Err(must_be(&at, "an object", tool)) };
        let kind = match t.get("type") {
            Some(Json::String(k)) => k.as_str(),
            _ => return Err(Error::invalid(format!("{at}.type"), format!("{at}.type is required (a string)"))),
        };
        if HOSTED_TOOLS.contains(&kind) {
            return Err(Error::invalid(
                format!("{at}.type"),
                format!(
                    "{at}.type '{kind}' is not supported: ferrostack runs no server-side tools; only 'function' tools are"
                ),
            ));
        }
        if kind != "function" {
            return Err(Error::invalid(
                format!("{at}.type"),
                format!("{at}.type '{kind}' is not a tool type; expected 'function'"),
            ));
        }
        let name = match t.get("name") {
            Some(Json::String(n)) if !n.is_empty() => n.clone(),
            _ => {
                return Err(Error::invalid(
                    format!("{at}.name"),
                    format!("{at}.name is required (a non-empty string)"),
                ));
            }
        };
        let mut function = Map::new();
        function.insert("name".into(), json!(name));
        for key in ["description", "parameters", "strict"] {
            if let Some(v) = present(t, key) {
                let ok = match key {
                    "description" => v.is_string(),
                    "parameters" => v.is_object(),
                    _ => v.is_boolean(),
                };
                if !ok {
                    return Err(Error::invalid(format!("{at}.{key}"), format!("{at}.{key} has the wrong type")));
                }
                function.insert(key.into(), v.clone());
            }
        }
        let mut echo = function.clone();
        echo.insert("type".into(), json!("function"));
        echo.entry("strict").or_insert(Json::Null);
        echo.entry("parameters").or_insert(Json::Null);
        out.push((Json::Object(echo), json!({"type": "function", "function": function})));
    }
    Ok(out)
}

/// `tool_choice`: as echoed and as sent upstream.
fn tool_choice(value: Option<&Json>, tools: &[(Json, Json)]) -> Result<Option<(Json, Json)>, Error> {
    let invalid = |what: String| Error::invalid("tool_choice", what);
    match value {
        None => Ok(None),
        Some(Json::String(s)) if ["none", "auto", "required"].contains(&s.as_str()) => {
            if s == "required" && tools.is_empty() {
                return Err(invalid("tool_choice 'required' needs at least one tool in tools".to_owned()));
            }
            Ok(Some((json!(s), json!(s))))
        }
        Some(Json::String(s)) => Err(invalid(format!(
            "tool_choice must be 'none', 'auto', 'required' or {{\"type\": \"function\", \"name\": ...}}, got '{s}'"
        ))),
        Some(Json::Object(c)) => match (c.get("type").and_then(Json::as_str), c.get("name").and_then(Json::as_str)) {
            (Some("function"), Some(name)) => {
                if !tools.iter().any(|(echo, _)| echo["name"] == json!(name)) {
                    return Err(invalid(format!("tool_choice names function '{name}', which is not in tools")));
                }
                Ok(Some((
                    json!({"type": "function", "name": name}),
                    json!({"type": "function", "function": {"name": name}}),
                )))
            }
            (Some("function"), None) => Err(invalid("tool_choice.name is required for a function".to_owned())),
            (Some(kind), _) if HOSTED_TOOLS.contains(&kind) => Err(invalid(format!(
                "tool_choice type '{kind}' is not supported: ferrostack runs no server-side tools"
            ))),
            (Some(kind), _) => Err(invalid(format!("tool_choice type '{kind}' is not supported; expected 'function'"))),
            (None, _) => Err(invalid("tool_choice.type is required".to_owned())),
        },
        Some(other) => Err(must_be("tool_choice", "a string or an object", other)),
    }
}

/// `text.format`: as echoed, and the chat `response_format` (none for plain text).
fn text(value: Option<&Json>) -> Result<(Json, Option<Json>), Error> {
    let plain = json!({"type": "text"});
    let Some(text) = value else { return Ok((plain, None)) };
    let Some(text) = text.as_object() else { return Err(must_be("text", "an object", text)) };
    let Some(format) = present(text, "format") else { return Ok((plain, None)) };
    let Some(f) = format.as_object() else { return Err(must_be("text.format", "an object", format)) };
    match f.get("type").and_then(Json::as_str) {
        Some("text") => Ok((plain, None)),
        Some("json_object") => Ok((json!({"type": "json_object"}), Some(json!({"type": "json_object"})))),
        Some("json_schema") => {
            let name = match f.get("name") {
                Some(Json::String(n)) if !n.is_empty() => n.clone(),
                _ => return Err(Error::invalid("text.format.name", "text.format.name is required for json_schema")),
            };
            let Some(schema @ Json::Object(_)) = f.get("schema") else {
                return Err(Error::invalid(
                    "text.format.schema",
                    "text.format.schema is required (an object) for json_schema",
                ));
            };
            let mut json_schema = Map::new();
            json_schema.insert("name".into(), json!(name));
            json_schema.insert("schema".into(), schema.clone());
            for key in ["description", "strict"] {
                if let Some(v) = present(f, key) {
                    json_schema.insert(key.into(), v.clone());
                }
            }
            let mut echo = json_schema.clone();
            echo.insert("type".into(), json!("json_schema"));
            Ok((Json::Object(echo), Some(json!({"type": "json_schema", "json_schema": json_schema}))))
        }
        Some(other) => Err(Error::invalid(
            "text.format.type",
            format!("text.format.type must be 'text', 'json_object' or 'json_schema', got '{other}'"),
        )),
        None => Err(Error::invalid("text.format.type", "text.format.type is required")),
    }
}

/// Items (stored or given) to chat messages, appended to `messages`. Reasoning items are not
/// sent; consecutive function calls join the assistant message before them.
pub fn to_messages<'a>(items: impl IntoIterator<Item = &'a Json>, messages: &mut Vec<Json>) {
    for item in items {
        match item.get("type").and_then(Json::as_str).unwrap_or("message") {
            "message" => {
                let role = item.get("role").and_then(Json::as_str).unwrap_or("user");
                // A conversation's items keep a string content as it was given.
                if let Some(text) = item.get("content").and_then(Json::as_str) {
                    messages.push(json!({"role": role, "content": text}));
                    continue;
                }
                let parts = item.get("content").and_then(Json::as_array).map_or(&[][..], Vec::as_slice);
                if role == "assistant" {
                    let text: String = parts
                        .iter()
                        .filter_map(|p| p.get("text").or_else(|| p.get("refusal")).and_then(Json::as_str))
                        .collect();
                    messages.push(json!({"role": "assistant", "content": text}));
                } else {
                    let content: Vec<Json> = parts.iter().filter_map(chat_part).collect();
                    let all_text = content.iter().all(|p| p["type"] == json!("text"));
                    if all_text {
                        let text: String =
                            content.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().join("");
                        messages.push(json!({"role": role, "content": text}));
                    } else {
                        messages.push(json!({"role": role, "content": content}));
                    }
                }
            }
            "function_call" => {
                let call = json!({
                    "id": item.get("call_id").cloned().unwrap_or_default(),
                    "type": "function",
                    "function": {"name": item.get("name").cloned().unwrap_or_default(),
                                 "arguments": item.get("arguments").cloned().unwrap_or_default()},
                });
                match messages.last_mut() {
                    Some(last) if last["role"] == json!("assistant") => {
                        if !last["tool_calls"].is_array() {
                            last["tool_calls"] = json!([]);
                        }
                        if let Some(calls) = last["tool_calls"].as_array_mut() {
                            calls.push(call);
                        }
                    }
                    _ => messages.push(json!({"role": "assistant", "content": null, "tool_calls": [call]})),
                }
            }
            "function_call_output" => {
                let output = match item.get("output") {
                    Some(Json::String(s)) => s.clone(),
                    Some(Json::Array(parts)) => {
                        parts.iter().filter_map(|p| p.get("text").and_then(Json::as_str)).collect()
                    }
                    _ => String::new(),
                };
                messages.push(json!({"role": "tool", "tool_call_id": item.get("call_id").cloned().unwrap_or_default(), "content": output}));
            }
            _ => {}
        }
    }
}

/// A content part as a chat content part (`None`: nothing to send).
fn chat_part(part: &Json) -> Option<Json> {
    match part.get("type").and_then(Json::as_str)? {
        "input_text" | "output_text" | "text" => Some(json!({"type": "text", "text": part.get("text")?})),
        "refusal" => Some(json!({"type": "text", "text": part.get("refusal")?})),
        "input_image" => {
            let mut image = json!({"url": part.get("image_url")?});
            if let Some(detail) = part.get("detail").filter(|d| d.is_string()) {
                image["detail"] = detail.clone();
            }
            Some(json!({"type": "image_url", "image_url": image}))
        }
        "input_file" => {
            let mut file = json!({"file_data": part.get("file_data")?});
            if let Some(name) = part.get("filename").filter(|d| d.is_string()) {
                file["filename"] = name.clone();
            }
            Some(json!({"type": "file", "file": file}))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translation_to_chat() {
        let body = json!({
            "model": "m", "instructions": "rules", "temperature": 0.2, "max_output_tokens": 9, "user": "u",
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "look"}, {"type": "input_image", "image_url": "https://x/y.png", "detail": "low"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
                {"type": "reasoning", "summary": []},
            ],
            "tools": [{"type": "function", "name": "f", "parameters": {"type": "object"}}],
            "tool_choice": {"type": "function", "name": "f"},
            "text": {"format": {"type": "json_object"}},
        });
        let req = parse(&body).expect("valid");
        assert!(req.input.iter().all(|i| i["id"].as_str().is_some_and(|id| !id.is_empty())), "ids given");
        let chat = req.chat_body(&[]);
        assert_eq!(
            chat["messages"],
            json!([
                {"role": "system", "content": "rules"},
                {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}}]},
                {"role": "assistant", "content": null, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "42"},
            ])
        );
        assert_eq!(
            chat["tools"],
            json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}])
        );
        assert_eq!(chat["tool_choice"], json!({"type": "function", "function": {"name": "f"}}));
        assert_eq!(chat["response_format"], json!({"type": "json_object"}));
        assert_eq!(
            (chat["temperature"].clone(), chat["max_tokens"].clone(), chat["user"].clone()),
            (json!(0.2), json!(9), json!("u"))
        );
        assert!(chat.get("stream").is_none());
        let skeleton = req.skeleton("resp_1", 7);
        assert_eq!(skeleton["tools"][0]["name"], "f");
        assert_eq!(skeleton["tool_choice"], json!({"type": "function", "name": "f"}));
        assert_eq!(skeleton["instructions"], "rules");
        assert_eq!(skeleton["text"], json!({"format": {"type": "json_object"}}));
    }
}
