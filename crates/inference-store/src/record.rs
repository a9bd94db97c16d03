//! A stored chat completion, as written and as read back.

use ferrostack_catalog::{Row, Value};
use serde::ser::{Serialize, Serializer};
use serde_json::{Map, Value as Json, json};

use crate::Error;

/// The columns the store writes and reads, in order (the owner columns are added by the
/// authorized store layer).
pub(crate) const COLUMNS: [&str; 6] = ["id", "created", "model", "choices", "input_messages", "metadata"];
/// [`COLUMNS`] as a select list.
pub(crate) const SELECT_COLUMNS: &str = "id, created, model, choices, input_messages, metadata";

/// One stored chat completion: OpenAI's `chat.completion` object without usage, plus the
/// request's messages and OpenAI's `metadata` map.
///
/// Serializes as the object the read routes return: `{id, object: "chat.completion", created,
/// model, choices, input_messages, metadata}` (metadata `{}` when none was stored).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredCompletion {
    /// The completion id as returned to the client; globally unique.
    pub id: String,
    /// Unix seconds from the completion.
    pub created: i64,
    /// The model id as the client requested it (the registry id).
    pub model: String,
    /// The `choices` array.
    pub choices: Json,
    /// The request's `messages` array.
    pub input_messages: Json,
    /// OpenAI's `metadata` (string keys to string values), if any.
    pub metadata: Option<Map<String, Json>>,
}

impl StoredCompletion {
    /// From a `chat.completion` object (its `id`, `created`, `model` and `choices`; the rest is
    /// not stored) and the request's messages.
    pub fn from_completion(completion: &Json, input_messages: Json) -> Result<Self, Error> {
        let field = |name: &str| completion.get(name).ok_or_else(|| missing(name));
        let id = field("id")?.as_str().ok_or_else(|| wrong("id", "a string"))?;
        let created = field("created")?.as_i64().ok_or_else(|| wrong("created", "an integer"))?;
        let model = field("model")?.as_str().ok_or_else(|| wrong("model", "a string"))?;
        let choices = field("choices")?;
        let metadata = match completion.get("metadata") {
            Some(Json::Object(m)) => Some(m.clone()),
            _ => None,
        };
        let record = Self {
            id: id.to_owned(),
            created,
            model: model.to_owned(),
            choices: choices.clone(),
            input_messages,
            metadata,
        };
        record.check()?;
        Ok(record)
    }

    /// Whether the record can be stored: a non-empty id, arrays for choices and messages.
    pub fn check(&self) -> Result<(), Error> {
        if self.id.is_empty() {
            return Err(Error::InvalidCompletion("id must not be empty".to_owned()));
        }
        if !self.choices.is_array() {
            return Err(wrong("choices", "an array"));
        }
        if !self.input_messages.is_array() {
            return Err(wrong("input_messages", "an array"));
        }
        Ok(())
    }

    /// The values of [`COLUMNS`], in order.
    pub(crate) fn values(&self) -> Vec<Value> {
        vec![
            Value::Text(self.id.clone()),
            Value::Int(self.created),
            Value::Text(self.model.clone()),
            Value::Json(self.choices.clone()),
            Value::Json(self.input_messages.clone()),
            self.metadata.as_ref().map_or(Value::Null, |m| Value::Json(Json::Object(m.clone()))),
        ]
    }

    /// From a row selected with [`SELECT_COLUMNS`].
    pub(crate) fn from_row(row: &Row) -> Result<Self, ferrostack_catalog::Error> {
        let metadata: Option<Json> = row.get("metadata")?;
        Ok(Self {
            id: row.get("id")?,
            created: row.get("created")?,
            model: row.get("model")?,
            choices: row.get("choices")?,
            input_messages: row.get("input_messages")?,
            metadata: match metadata {
                Some(Json::Object(m)) => Some(m),
                _ => None,
            },
        })
    }

    /// The object the read routes return.
    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": self.choices,
            "input_messages": self.input_messages,
            "metadata": self.metadata.clone().unwrap_or_default(),
        })
    }
}

impl Serialize for StoredCompletion {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

fn missing(field: &str) -> Error {
    Error::InvalidCompletion(format!("'{field}' is missing"))
}

fn wrong(field: &str, expected: &str) -> Error {
    Error::InvalidCompletion(format!("'{field}' must be {expected}"))
}
