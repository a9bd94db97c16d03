//! Request validation, before anything touches the database: conversation ids, metadata limits
//! and items. Every error names the field at fault (`items[3].content`, `metadata`), as OpenAI's
//! `param` does.

use serde_json::{Map, Value as Json};

use crate::Error;

/// Most metadata pairs on a conversation (OpenAI's documented limit).
pub const MAX_METADATA_PAIRS: usize = 16;
/// Longest metadata key, in characters.
pub const MAX_METADATA_KEY_CHARS: usize = 64;
/// Longest metadata value, in characters.
pub const MAX_METADATA_VALUE_CHARS: usize = 512;
/// Most items one create or add call may carry (OpenAI's published limit).
pub const MAX_ITEMS_PER_CALL: usize = 20;
/// Longest client-supplied item id, in characters.
pub const MAX_ITEM_ID_CHARS: usize = 256;

/// Item types, each with the prefix of the ids the server generates for it.
pub const ITEM_TYPES: &[(&str, &str)] = &[
    ("message", "msg_"),
    ("function_call", "fc_"),
    ("function_call_output", "fco_"),
    ("reasoning", "rs_"),
    ("web_search_call", "ws_"),
    ("file_search_call", "fs_"),
    ("mcp_call", "mcp_"),
    ("mcp_list_tools", "mcpl_"),
    ("mcp_approval_request", "mcpr_"),
    ("mcp_approval_response", "mcpa_"),
];

const ROLES: &[&str] = &["user", "assistant", "system", "developer"];
/// Content part types and the string field each must carry (`None`: no text field required).
const PART_TYPES: &[(&str, Option<&str>)] = &[
    ("input_text", Some("text")),
    ("output_text", Some("text")),
    ("text", Some("text")),
    ("summary_text", Some("text")),
    ("reasoning_text", Some("text")),
    ("refusal", Some("refusal")),
    ("input_image", None),
    ("input_file", None),
    ("input_audio", None),
];

/// `conv_` followed by 48 lowercase hex digits; anything else is a 400 naming `conversation_id`.
pub fn conversation_id(id: &str) -> Result<(), Error> {
    let ok = id
        .strip_prefix("conv_")
        .is_some_and(|hex| hex.len() == 48 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            "conversation_id",
            format!(
                "Invalid value for 'conversation_id': {id:?}. Conversation ID must match format 'conv_' followed by 48 lowercase hex characters."
            ),
        ))
    }
}

/// A metadata map: string values, at most 16 pairs, keys up to 64 characters, values up to 512.
pub fn metadata(value: &Json) -> Result<Map<String, Json>, Error> {
    let Json::Object(map) = value else {
        return Err(Error::invalid("metadata", "metadata must be an object of string keys to string values"));
    };
    if map.len() > MAX_METADATA_PAIRS {
        return Err(Error::invalid(
            "metadata",
            format!("metadata holds at most {MAX_METADATA_PAIRS} pairs, got {}", map.len()),
        ));
    }
    for (key, value) in map {
        if key.chars().count() > MAX_METADATA_KEY_CHARS {
            return Err(Error::invalid(
                "metadata",
                format!("metadata keys are at most {MAX_METADATA_KEY_CHARS} characters, got {}", key.chars().count()),
            ));
        }
        let Some(text) = value.as_str() else {
            return Err(Error::invalid("metadata", format!("metadata value of {key:?} must be a string")));
        };
        if text.chars().count() > MAX_METADATA_VALUE_CHARS {
            return Err(Error::invalid(
                "metadata",
                format!(
                    "metadata values are at most {MAX_METADATA_VALUE_CHARS} characters, got {} for {key:?}",
                    text.chars().count()
                ),
            ));
        }
    }
    Ok(map.clone())
}

/// The items of one call, checked and completed: `type: "message"` added where only `role` is
/// given; `min` is 0 on create, 1 on add. Returns each item's id when the client gave one.
pub fn items(items: &[Json], min: usize) -> Result<Vec<Json>, Error> {
    if items.len() < min || items.len() > MAX_ITEMS_PER_CALL {
        return Err(Error::invalid(
            "items",
            format!("items must hold {min} to {MAX_ITEMS_PER_CALL} items per call, got {}", items.len()),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    let mut seen = std::collections::HashSet::new();
    for (i, item) in items.iter().enumerate() {
        let item = self::item(item, &format!("items[{i}]"))?;
        if let Some(id) = item.get("id").and_then(Json::as_str)
            && !seen.insert(id.to_owned())
        {
            return Err(Error::invalid(
                format!("items[{i}].id"),
                format!("item id {id:?} is given twice in this call"),
            ));
        }
        out.push(item);
    }
    Ok(out)
}

/// The id prefix the server uses for items of `kind`.
pub fn id_prefix(kind: &str) -> &'static str {
    ITEM_TYPES.iter().find(|(t, _)| *t == kind).map_or("item_", |(_, p)| p)
}

fn item(value: &Json, at: &str) -> Result<Json, Error> {
    let Json::Object(map) = value else {
        return Err(Error::invalid(at, format!("{at} must be an object")));
    };
    let mut map = map.clone();
    let kind = match map.get("type") {
        Some(Json::String(t)) => t.clone(),
        None if map.contains_key("role") => {
            map.insert("type".to_owned(), Json::from("message"));
            "message".to_owned()
        }
        None => return Err(Error::invalid(format!("{at}.type"), format!("{at}.type is required"))),
        Some(_) => return Err(Error::invalid(format!("{at}.type"), format!("{at}.type must be a string"))),
    };
    if !ITEM_TYPES.iter().any(|(t, _)| *t == kind) {
        let known: Vec<&str> = ITEM_TYPES.iter().map(|(t, _)| *t).collect();
        return Err(Error::invalid(
            format!("{at}.type"),
            format!("{at}.type {kind:?} is not an item type; expected one of {}", known.join(", ")),
        ));
    }
    match map.get("id") {
        None | Some(Json::Null) => {
            map.remove("id");
        }
        Some(Json::String(id)) if !id.is_empty() && id.chars().count() <= MAX_ITEM_ID_CHARS => {}
        Some(_) => {
            return Err(Error::invalid(
                format!("{at}.id"),
                format!("{at}.id must be a non-empty string of at most {MAX_ITEM_ID_CHARS} characters"),
            ));
        }
    }
    let field = |name: &str| format!("{at}.{name}");
    let string = |name: &str| -> Result<(), Error> {
        match map.get(name) {
            Some(Json::String(_)) => Ok(()),
            Some(_) => Err(Error::invalid(field(name), format!("{} must be a string", field(name)))),
            None => Err(Error::invalid(field(name), format!("{} is required", field(name)))),
        }
    };
    let array = |name: &str| -> Result<(), Error> {
        match map.get(name) {
            Some(Json::Array(_)) => Ok(()),
            Some(_) => Err(Error::invalid(field(name), format!("{} must be an array", field(name)))),
            None => Err(Error::invalid(field(name), format!("{} is required", field(name)))),
        }
    };
    match kind.as_str() {
        "message" => {
            match map.get("role") {
                Some(Json::String(r)) if ROLES.contains(&r.as_str()) => {}
                Some(_) => {
                    return Err(Error::invalid(
                        field("role"),
                        format!("{} must be one of {}", field("role"), ROLES.join(", ")),
                    ));
                }
                None => return Err(Error::invalid(field("role"), format!("{} is required", field("role")))),
            }
            content(map.get("content"), &field("content"))?;
        }
        "function_call" => {
            string("call_id")?;
            string("name")?;
            string("arguments")?;
        }
        "function_call_output" => {
            string("call_id")?;
            match map.get("output") {
                Some(Json::String(_) | Json::Array(_)) => {}
                Some(_) => {
                    return Err(Error::invalid(
                        field("output"),
                        format!("{} must be a string or an array", field("output")),
                    ));
                }
                None => return Err(Error::invalid(field("output"), format!("{} is required", field("output")))),
            }
        }
        "reasoning" => array("summary")?,
        "mcp_call" | "mcp_approval_request" => {
            string("server_label")?;
            string("name")?;
            string("arguments")?;
        }
        "mcp_list_tools" => {
            string("server_label")?;
            array("tools")?;
        }
        "mcp_approval_response" => {
            string("approval_request_id")?;
            if !map.get("approve").is_some_and(Json::is_boolean) {
                return Err(Error::invalid(field("approve"), format!("{} must be a boolean", field("approve"))));
            }
        }
        // web_search_call, file_search_call: records of a tool call, kept as given.
        _ => {}
    }
    Ok(Json::Object(map))
}

/// A message's content: a string, or a list of typed parts.
fn content(value: Option<&Json>, at: &str) -> Result<(), Error> {
    match value {
        Some(Json::String(_)) => Ok(()),
        Some(Json::Array(parts)) => {
            for (j, part) in parts.iter().enumerate() {
                let here = format!("{at}[{j}]");
                let Some(kind) = part.get("type").and_then(Json::as_str) else {
                    return Err(Error::invalid(
                        format!("{here}.type"),
                        format!("{here} must be an object with a string type"),
                    ));
                };
                let Some((_, text)) = PART_TYPES.iter().find(|(t, _)| *t == kind) else {
                    let known: Vec<&str> = PART_TYPES.iter().map(|(t, _)| *t).collect();
                    return Err(Error::invalid(
                        format!("{here}.type"),
                        format!(
                            "{here}.type {kind:?} is not a content part type; expected one of {}",
                            known.join(", ")
                        ),
                    ));
                };
                if let Some(name) = text
                    && !part.get(*name).is_some_and(Json::is_string)
                {
                    return Err(Error::invalid(format!("{here}.{name}"), format!("{here}.{name} must be a string")));
                }
            }
            Ok(())
        }
        Some(_) => Err(Error::invalid(at, format!("{at} must be a string or an array of content parts"))),
        None => Err(Error::invalid(at, format!("{at} is required"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn param(r: Result<Vec<Json>, Error>) -> String {
        match r {
            Err(e) => e.param().unwrap_or_default().to_owned(),
            Ok(_) => "ok".to_owned(),
        }
    }

    #[test]
    fn bad_items_name_the_field() {
        let ok = json!({"type": "message", "role": "user", "content": "hi"});
        let cases = [
            (json!("text"), "items[3]"),
            (json!({"content": "hi"}), "items[3].type"),
            (json!({"type": "nope"}), "items[3].type"),
            (json!({"type": "message", "role": "user"}), "items[3].content"),
            (json!({"type": "message", "role": "user", "content": 5}), "items[3].content"),
            (json!({"type": "message", "role": "robot", "content": "x"}), "items[3].role"),
            (json!({"role": "user", "content": [{"type": "input_text"}]}), "items[3].content[0].text"),
            (json!({"role": "user", "content": [{"type": "video"}]}), "items[3].content[0].type"),
            (json!({"role": "user", "content": "x", "id": 7}), "items[3].id"),
            (json!({"type": "function_call", "call_id": "c", "name": "f"}), "items[3].arguments"),
            (json!({"type": "function_call_output", "call_id": "c"}), "items[3].output"),
            (json!({"type": "mcp_approval_response", "approval_request_id": "r"}), "items[3].approve"),
        ];
        for (bad, want) in cases {
            let items = vec![ok.clone(), ok.clone(), ok.clone(), bad.clone()];
            assert_eq!(param(super::items(&items, 1)), want, "for {bad}");
        }
    }

    #[test]
    fn role_without_type_is_a_message_and_limits_hold() {
        let items = super::items(&[json!({"role": "user", "content": "hi"})], 1).expect("valid");
        assert_eq!(items[0]["type"], json!("message"));
        let many = vec![json!({"role": "user", "content": "hi"}); 21];
        assert_eq!(param(super::items(&many, 1)), "items");
        assert_eq!(param(super::items(&[], 1)), "items");
        let twice =
            [json!({"role": "user", "content": "a", "id": "x"}), json!({"role": "user", "content": "b", "id": "x"})];
        assert_eq!(param(super::items(&twice, 1)), "items[1].id");
    }

    #[test]
    fn metadata_limits() {
        let pairs: Map<String, Json> = (0..17).map(|i| (format!("k{i}"), json!("v"))).collect();
        assert!(metadata(&Json::Object(pairs)).is_err());
        assert!(metadata(&json!({"k".repeat(65): "v"})).is_err());
        assert!(metadata(&json!({"k": "v".repeat(513)})).is_err());
        assert!(metadata(&json!({"k": 1})).is_err());
        assert!(metadata(&json!({"k".repeat(64): "v".repeat(512)})).is_ok());
    }

    /// Any JSON value, biased towards the shapes the validators look at (objects with `type`,
    /// `role`, `content`, `id` keys and strings that are item and part types).
    fn any_json() -> impl proptest::strategy::Strategy<Value = Json> {
        use proptest::prelude::*;
        let words: Vec<&'static str> = ITEM_TYPES
            .iter()
            .map(|(t, _)| *t)
            .chain(PART_TYPES.iter().map(|(t, _)| *t))
            .chain(ROLES.iter().copied())
            .chain(["", "x", "\u{0}", "\u{10FFFF}"])
            .collect();
        let leaf = prop_oneof![
            Just(Json::Null),
            any::<bool>().prop_map(Json::from),
            any::<i64>().prop_map(Json::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
            proptest::sample::select(words).prop_map(Json::from),
            proptest::collection::vec(any::<char>(), 0..8).prop_map(|c| Json::from(String::from_iter(c))),
            (500usize..700).prop_map(|n| Json::from("é".repeat(n))),
        ];
        leaf.prop_recursive(3, 48, 8, |inner| {
            let keys = proptest::sample::select(vec![
                "type",
                "role",
                "content",
                "id",
                "text",
                "call_id",
                "name",
                "arguments",
                "output",
                "summary",
                "server_label",
                "tools",
                "approval_request_id",
                "approve",
                "refusal",
                "k",
            ]);
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..24).prop_map(Json::Array),
                proptest::collection::vec((keys, inner.clone()), 0..8)
                    .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())),
                proptest::collection::vec((proptest::collection::vec(any::<char>(), 0..70), inner), 0..20)
                    .prop_map(|kv| Json::Object(kv.into_iter().map(|(k, v)| (String::from_iter(k), v)).collect())),
            ]
        })
    }

    /// Arbitrary JSON in: either a valid answer (every item an object with a known string `type`)
    /// or an invalid-request error naming a field under `items` / `metadata`; never a panic.
    #[test]
    fn validators_take_any_json() {
        use proptest::test_runner::{Config, TestRunner};
        let mut runner = TestRunner::new(Config { cases: 256, failure_persistence: None, ..Config::default() });
        let strategy = (proptest::collection::vec(any_json(), 0..6), any_json(), 0usize..2);
        runner
            .run(&strategy, |(items, meta, min)| {
                match super::items(&items, min) {
                    Ok(out) => {
                        assert_eq!(out.len(), items.len());
                        for item in &out {
                            let kind = item.get("type").and_then(Json::as_str).unwrap_or_default();
                            assert!(ITEM_TYPES.iter().any(|(t, _)| *t == kind), "{item}");
                        }
                    }
                    Err(e) => {
                        let param = e.param().unwrap_or_default();
                        assert!(param.starts_with("items"), "param {param:?} for {e}");
                        assert!(matches!(e, Error::Invalid { .. }), "{e}");
                    }
                }
                match metadata(&meta) {
                    Ok(map) => {
                        assert!(map.len() <= MAX_METADATA_PAIRS);
                        assert!(map.values().all(Json::is_string));
                    }
                    Err(e) => assert_eq!(e.param(), Some("metadata"), "{e}"),
                }
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn conversation_ids() {
        assert!(conversation_id(&format!("conv_{}", "a".repeat(48))).is_ok());
        for bad in ["conv_", "conv_ABC", &format!("conv_{}", "A".repeat(48)), &format!("conv_{}", "a".repeat(49)), "x"]
        {
            assert!(conversation_id(bad).is_err(), "{bad}");
        }
    }
}
