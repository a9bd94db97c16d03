//! A model as the registry holds it, as the metadata store keeps it, and as a client registers it.

use std::collections::BTreeMap;

use ferrostack_authz::User;
use ferrostack_config::ModelType;
use ferrostack_providers::ModelRoute;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::Error;

/// Where a model comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The run config's `models` / `registered_resources.models`.
    Config,
    /// `POST /v1/models`, kept in the metadata store.
    Registered,
    /// A provider's `GET /v1/models` (`refresh_models: true`).
    Discovered,
}

/// One model.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The id clients send in `model`.
    pub model_id: String,
    /// The inference provider that serves it.
    pub provider_id: String,
    /// The name the provider knows it by.
    pub provider_model_id: String,
    /// `llm`, `embedding` or `rerank`.
    pub model_type: ModelType,
    /// Free-form metadata.
    pub metadata: Map<String, Value>,
    /// Where it comes from.
    pub source: Source,
    /// Who registered it; `None`: unowned (config, discovered, or registered with auth off).
    pub owner: Option<User>,
    /// Unix seconds: when it was registered (0 for config models).
    pub created: i64,
}

impl Model {
    pub(crate) fn from_config(route: &ModelRoute) -> Self {
        Self {
            model_id: route.model_id.clone(),
            provider_id: route.provider_id.clone(),
            provider_model_id: route.provider_model_id.clone(),
            model_type: route.model_type,
            metadata: route.metadata.clone(),
            source: Source::Config,
            owner: None,
            created: 0,
        }
    }

    /// The model as `/v1/models` shows it: OpenAI's `{id, object, created, owned_by}`, the
    /// registry's fields, and Llama Stack's `custom_metadata` (which its clients read).
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.model_id,
            "object": "model",
            "created": self.created,
            "owned_by": self.provider_id,
            "provider_id": self.provider_id,
            "provider_model_id": self.provider_model_id,
            "model_type": self.model_type,
            "metadata": self.metadata,
            "source": self.source,
            "custom_metadata": {
                "model_type": self.model_type,
                "provider_id": self.provider_id,
                "provider_resource_id": self.provider_model_id,
            },
        })
    }
}

/// Most characters of a model id.
pub const MAX_MODEL_ID_CHARS: usize = 256;

/// A `POST /v1/models` body, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Registration {
    /// The new model's id.
    pub model_id: String,
    /// Its provider; may be left out when exactly one provider is configured.
    pub provider_id: Option<String>,
    /// The provider's name for it; defaults to `model_id`.
    pub provider_model_id: Option<String>,
    /// Default `llm`.
    pub model_type: ModelType,
    /// Default `{}`.
    pub metadata: Map<String, Value>,
}

const FIELDS: [&str; 5] = ["model_id", "provider_id", "provider_model_id", "model_type", "metadata"];

impl Registration {
    /// Check a request body; the first problem names its field.
    pub fn from_json(body: &Value) -> Result<Self, Error> {
        let invalid = |param: &'static str, message: String| Error::Invalid { param, message };
        let Some(map) = body.as_object() else {
            return Err(invalid("", "the request body must be a JSON object".to_owned()));
        };
        if let Some(k) = map.keys().find(|k| !FIELDS.contains(&k.as_str())) {
            return Err(Error::Invalid {
                param: "body",
                message: format!("unknown field `{k}`, expected one of {}", FIELDS.join(", ")),
            });
        }
        let string = |field: &'static str| -> Result<Option<String>, Error> {
            match map.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if s.trim().is_empty() => {
                    Err(invalid(field, format!("{field} must not be empty")))
                }
                Some(Value::String(s)) if s.chars().count() > MAX_MODEL_ID_CHARS => {
                    Err(invalid(field, format!("{field} must be at most {MAX_MODEL_ID_CHARS} characters")))
                }
                Some(Value::String(s)) if s.chars().any(char::is_control) => {
                    Err(invalid(field, format!("{field} must not contain control characters")))
                }
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(invalid(field, format!("{field} must be a string"))),
            }
        };
        let model_id = string("model_id")?.ok_or_else(|| invalid("model_id", "model_id is required".to_owned()))?;
        let provider_id = string("provider_id")?;
        let provider_model_id = string("provider_model_id")?;
        let model_type = match map.get("model_type") {
            None | Some(Value::Null) => ModelType::Llm,
            Some(v) => serde_json::from_value(v.clone()).map_err(|_| {
                invalid("model_type", format!("model_type must be one of llm, embedding, rerank; got {v}"))
            })?,
        };
        let metadata = match map.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(invalid("metadata", "metadata must be an object".to_owned())),
        };
        Ok(Self { model_id, provider_id, provider_model_id, model_type, metadata })
    }
}

/// A registered model as the metadata store keeps it (JSON text).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct Stored {
    model_id: String,
    provider_id: String,
    provider_model_id: String,
    model_type: ModelType,
    #[serde(default)]
    metadata: Map<String, Value>,
    created: i64,
    /// `None`: unowned.
    owner: Option<StoredOwner>,
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredOwner {
    principal: String,
    attributes: Option<BTreeMap<String, Vec<String>>>,
}

impl Stored {
    pub(crate) fn from_model(m: &Model) -> Self {
        Self {
            model_id: m.model_id.clone(),
            provider_id: m.provider_id.clone(),
            provider_model_id: m.provider_model_id.clone(),
            model_type: m.model_type,
            metadata: m.metadata.clone(),
            created: m.created,
            owner: m
                .owner
                .as_ref()
                .map(|u| StoredOwner { principal: u.principal.clone(), attributes: u.attributes.clone() }),
        }
    }

    pub(crate) fn parse(text: &str) -> Result<Self, Error> {
        Ok(serde_json::from_str(text)?)
    }

    pub(crate) fn to_text(&self) -> Result<String, Error> {
        Ok(serde_json::to_string(self)?)
    }

    pub(crate) fn into_model(self) -> Model {
        Model {
            model_id: self.model_id,
            provider_id: self.provider_id,
            provider_model_id: self.provider_model_id,
            model_type: self.model_type,
            metadata: self.metadata,
            source: Source::Registered,
            // An empty principal is never a user: treat it as unowned.
            owner: self
                .owner
                .filter(|o| !o.principal.is_empty())
                .map(|o| User { principal: o.principal, attributes: o.attributes }),
            created: self.created,
        }
    }
}
