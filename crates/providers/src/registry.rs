//! The model registry: which provider serves each model, under which name.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrostack_config::{InferenceProviderConfig, ModelType, RunConfig};
use serde_json::{Map, Value};

use crate::client::{ChunkStream, ForwardHeaders, UpstreamClient};
use crate::error::ProviderError;

/// A registered model and the client of the provider that serves it.
#[derive(Debug, Clone)]
pub struct ModelRoute {
    /// The id clients send in `model`.
    pub model_id: String,
    /// The provider's id.
    pub provider_id: String,
    /// The name the provider knows the model by (the `model_id` unless configured).
    pub provider_model_id: String,
    /// `llm` or `embedding`.
    pub model_type: ModelType,
    /// Free-form metadata from the config, for `/v1/models`.
    pub metadata: Map<String, Value>,
    client: Arc<UpstreamClient>,
}

impl ModelRoute {
    /// The client of the provider.
    pub fn client(&self) -> &Arc<UpstreamClient> {
        &self.client
    }

    /// `body` with `model` set to the provider's model id.
    pub fn upstream_body(&self, mut body: Value) -> Value {
        if let Some(map) = body.as_object_mut() {
            map.insert("model".to_owned(), Value::String(self.provider_model_id.clone()));
        }
        body
    }

    /// [`UpstreamClient::chat_completion`] with `model` rewritten to the provider's model id. The
    /// answer is the upstream's; see [`crate::normalize_completion`] for what the client sees.
    pub async fn chat_completion(&self, body: Value, headers: &ForwardHeaders) -> Result<Value, ProviderError> {
        self.client.chat_completion(self.upstream_body(body), headers).await
    }

    /// [`UpstreamClient::chat_completion_stream`] with `model` rewritten to the provider's model id.
    pub async fn chat_completion_stream(
        &self,
        body: Value,
        headers: &ForwardHeaders,
    ) -> Result<ChunkStream, ProviderError> {
        self.client.chat_completion_stream(self.upstream_body(body), headers).await
    }

    /// The model as `/v1/models` lists it (OpenAI's shape, plus the registry's fields).
    pub fn to_openai_json(&self) -> Value {
        serde_json::json!({
            "id": self.model_id,
            "object": "model",
            "created": 0,
            "owned_by": self.provider_id,
            "provider_id": self.provider_id,
            "provider_model_id": self.provider_model_id,
            "model_type": self.model_type,
            "metadata": self.metadata,
        })
    }
}

/// The inference providers and models of a run config, built once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    clients: BTreeMap<String, Arc<UpstreamClient>>,
    /// In config order.
    models: Vec<ModelRoute>,
    by_id: BTreeMap<String, usize>,
}

impl Providers {
    /// One client per `providers.inference` entry of a served type (every type that speaks
    /// OpenAI's chat-completions API, see [`ferrostack_config::InferenceProviderKind`]), and a
    /// route per model of `models` and `registered_resources.models`. Entries of other types are
    /// skipped, and so are the models that name them or a disabled provider: the config's
    /// coverage already lists them in its one start-up warning.
    pub fn from_config(config: &RunConfig) -> Result<Self, ProviderError> {
        let mut clients = BTreeMap::new();
        for (i, entry) in config.providers.get("inference").into_iter().flatten().enumerate() {
            let path = format!("providers.inference[{i}]");
            match InferenceProviderConfig::from_entry(entry, &path) {
                None => tracing::debug!(
                    provider = entry.provider_id.as_str(),
                    provider_type = entry.provider_type.as_str(),
                    "inference provider type not served; its models are not available"
                ),
                Some(Err(problems)) => {
                    return Err(ProviderError::Config { provider: entry.provider_id.clone(), problems });
                }
                Some(Ok(c)) => {
                    let client = UpstreamClient::new(&entry.provider_id, &c)?;
                    clients.insert(entry.provider_id.clone(), Arc::new(client));
                }
            }
        }
        let mut providers = Self { clients, models: Vec::new(), by_id: BTreeMap::new() };
        for (_, m) in config.model_entries() {
            let Some(client) = providers.clients.get(&m.provider_id).cloned() else {
                tracing::debug!(
                    model = m.model_id.as_str(),
                    provider = m.provider_id.as_str(),
                    "model skipped: its provider is disabled or not a served inference provider"
                );
                continue;
            };
            providers.insert(ModelRoute {
                model_id: m.model_id.clone(),
                provider_id: m.provider_id.clone(),
                provider_model_id: m.provider_model_id.clone().unwrap_or_else(|| m.model_id.clone()),
                model_type: m.model_type,
                metadata: m.metadata.clone(),
                client,
            });
        }
        Ok(providers)
    }

    fn insert(&mut self, route: ModelRoute) {
        match self.by_id.get(&route.model_id) {
            Some(&i) => self.models[i] = route,
            None => {
                self.by_id.insert(route.model_id.clone(), self.models.len());
                self.models.push(route);
            }
        }
    }

    /// The route of `model`, or [`ProviderError::ModelNotFound`] (404) naming it.
    pub fn resolve(&self, model: &str) -> Result<&ModelRoute, ProviderError> {
        self.by_id
            .get(model)
            .and_then(|&i| self.models.get(i))
            .ok_or_else(|| ProviderError::ModelNotFound { model: model.to_owned() })
    }

    /// Every model, in config order.
    pub fn models(&self) -> &[ModelRoute] {
        &self.models
    }

    /// The client of provider `id`.
    pub fn provider(&self, id: &str) -> Option<&Arc<UpstreamClient>> {
        self.clients.get(id)
    }

    /// The ids of the providers that have a client.
    pub fn provider_ids(&self) -> impl Iterator<Item = &str> {
        self.clients.keys().map(String::as_str)
    }
}
