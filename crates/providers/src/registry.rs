//! The model registry: which provider serves each model, under which name.

use std::collections::BTreeMap;
use std::sync::Arc;

use ferrostack_config::{ECHO_PROVIDER_TYPE, InferenceProviderConfig, ModelType, RunConfig};
use serde_json::{Map, Value};

use bytes::Bytes;
use futures_util::StreamExt as _;

use crate::client::{ChunkStream, ForwardHeaders, RawEvent, RawEventStream, UpstreamClient};
use crate::error::ProviderError;
use crate::request::ChatBody;

/// What answers a model's requests.
#[derive(Debug, Clone)]
pub enum Backend {
    /// An OpenAI-compatible engine, over HTTP.
    Upstream(Arc<UpstreamClient>),
    /// The built-in `echo` development provider, in process (see [`crate::echo`]).
    Echo,
}

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
    backend: Backend,
}

impl ModelRoute {
    /// A route to `backend` (from [`Providers::backend`]).
    pub fn new(
        model_id: impl Into<String>,
        provider_id: impl Into<String>,
        provider_model_id: impl Into<String>,
        model_type: ModelType,
        metadata: Map<String, Value>,
        backend: Backend,
    ) -> Self {
        Self {
            model_id: model_id.into(),
            provider_id: provider_id.into(),
            provider_model_id: provider_model_id.into(),
            model_type,
            metadata,
            backend,
        }
    }

    /// The client of the provider; `None` for the in-process echo provider.
    pub fn client(&self) -> Option<&Arc<UpstreamClient>> {
        match &self.backend {
            Backend::Upstream(c) => Some(c),
            Backend::Echo => None,
        }
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
        match &self.backend {
            Backend::Upstream(client) => client.chat_completion(self.upstream_body(body), headers).await,
            Backend::Echo => Ok(crate::echo::completion(&self.upstream_body(body))),
        }
    }

    /// [`UpstreamClient::chat_completion_stream`] with `model` rewritten to the provider's model id.
    pub async fn chat_completion_stream(
        &self,
        body: Value,
        headers: &ForwardHeaders,
    ) -> Result<ChunkStream, ProviderError> {
        match &self.backend {
            Backend::Upstream(client) => client.chat_completion_stream(self.upstream_body(body), headers).await,
            Backend::Echo => Ok(crate::echo::chunk_stream(&self.upstream_body(body))),
        }
    }

    /// The body sent upstream for `body`: `model` set to the provider's model id; `stream: true`
    /// for a stream, else `stream` and `stream_options` left out; the rest as the client sent it.
    pub fn upstream_bytes(&self, body: &ChatBody<'_>, stream: bool) -> Vec<u8> {
        body.upstream_body(&self.provider_model_id, stream)
    }

    /// The byte-level [`ModelRoute::chat_completion`]: `upstream` (from
    /// [`ModelRoute::upstream_bytes`]) sent as it is, the answer's bytes as the provider sent them
    /// (see [`crate::relay_completion`]).
    pub async fn chat_completion_bytes(
        &self,
        upstream: Vec<u8>,
        headers: &ForwardHeaders,
    ) -> Result<Bytes, ProviderError> {
        match &self.backend {
            Backend::Upstream(client) => client.chat_completion_bytes(upstream, headers).await,
            Backend::Echo => {
                let body: Value = serde_json::from_slice(&upstream).unwrap_or(Value::Null);
                Ok(Bytes::from(crate::echo::completion(&body).to_string()))
            }
        }
    }

    /// The byte-level [`ModelRoute::chat_completion_stream`]: `upstream` (from
    /// [`ModelRoute::upstream_bytes`] with `stream: true`) sent as it is, the events' data
    /// unparsed (see [`crate::relay_chunk`]).
    pub async fn chat_completion_stream_raw(
        &self,
        upstream: Vec<u8>,
        headers: &ForwardHeaders,
    ) -> Result<RawEventStream, ProviderError> {
        match &self.backend {
            Backend::Upstream(client) => client.chat_completion_stream_raw(upstream, headers).await,
            Backend::Echo => {
                let body: Value = serde_json::from_slice(&upstream).unwrap_or(Value::Null);
                let mut events: Vec<Result<RawEvent, ProviderError>> =
                    crate::echo::chunks(&body).into_iter().map(|c| Ok(RawEvent::Data(c.to_string()))).collect();
                events.push(Ok(RawEvent::Done));
                Ok(futures_util::stream::iter(events).boxed())
            }
        }
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
            "custom_metadata": {
                "model_type": self.model_type,
                "provider_id": self.provider_id,
                "provider_resource_id": self.provider_model_id,
            },
        })
    }
}

/// The inference providers and models of a run config, built once at start-up.
#[derive(Debug, Clone, Default)]
pub struct Providers {
    clients: BTreeMap<String, Arc<UpstreamClient>>,
    /// Providers of the built-in `inline::echo` type.
    echo: Vec<String>,
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
        let mut echo = Vec::new();
        for (i, entry) in config.providers.get("inference").into_iter().flatten().enumerate() {
            let path = format!("providers.inference[{i}]");
            if entry.provider_type == ECHO_PROVIDER_TYPE {
                echo.push(entry.provider_id.clone());
                continue;
            }
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
        let mut providers = Self { clients, echo, models: Vec::new(), by_id: BTreeMap::new() };
        for (_, m) in config.model_entries() {
            let Some(backend) = providers.backend(&m.provider_id) else {
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
                backend,
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

    /// What serves provider `id`'s models: its client, or the in-process echo provider.
    pub fn backend(&self, id: &str) -> Option<Backend> {
        if self.echo.iter().any(|e| e == id) {
            return Some(Backend::Echo);
        }
        self.clients.get(id).cloned().map(Backend::Upstream)
    }

    /// The ids of every served provider (clients and echo), sorted.
    pub fn all_provider_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.clients.keys().cloned().chain(self.echo.iter().cloned()).collect();
        ids.sort();
        ids.dedup();
        ids
    }
}
