//! ferrostack's model registry: every model a caller may use, from three sources, under the access
//! policy (resource `model::<id>`, decided by the in-memory evaluator).
//!
//! - **config**: `models:` and `registered_resources.models` of the run config; unowned, never
//!   deletable through the API.
//! - **registered**: `POST /v1/models`, kept in the metadata KV store
//!   (`storage.stores.metadata`), one key per model (`model:<id>`), owned by the caller who
//!   registered it. Every read goes to the store, so every replica on the same store sees a model
//!   as soon as another registered it, and a restart keeps it.
//! - **discovered**: providers with `refresh_models: true` are asked for their models at start and
//!   every `refresh_interval_seconds` ([`discovery`]); each is served as `<provider_id>/<model>`,
//!   unowned. Each replica discovers for itself and keeps the result in memory.
//!
//! When two sources name the same id, the first wins in this order: config, registered,
//! discovered ("explicit models win").

pub mod discovery;
mod error;
mod record;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use ferrostack_authz::{Resource, User, is_allowed};
use ferrostack_catalog::KvStore;
use ferrostack_config::{AccessRule, Action, ModelType};
use ferrostack_providers::{ModelRoute, Providers};
use serde_json::Map;

pub use error::Error;
use record::Stored;
pub use record::{Model, Registration, Source};

/// Key prefix of registered models in the metadata store; the range `[model:, model;)` holds
/// exactly them (`;` follows `:`).
const KEY_PREFIX: &str = "model:";
const KEY_END: &str = "model;";

/// The registry. Cheap to clone; clones share everything.
#[derive(Debug, Clone)]
pub struct ModelRegistry {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    providers: Arc<Providers>,
    kv: Option<KvStore>,
    policy: Arc<Vec<AccessRule>>,
    /// Provider id → its discovered models, sorted by id.
    discovered: RwLock<BTreeMap<String, Vec<Model>>>,
}

impl ModelRegistry {
    /// A registry over the config's providers and models, the metadata store (`None` when
    /// `storage.stores.metadata` is null: nothing can be registered) and the access policy.
    pub fn new(providers: Arc<Providers>, kv: Option<KvStore>, policy: Arc<Vec<AccessRule>>) -> Self {
        Self { inner: Arc::new(Inner { providers, kv, policy, discovered: RwLock::default() }) }
    }

    /// The providers models are served by.
    pub fn providers(&self) -> &Arc<Providers> {
        &self.inner.providers
    }

    fn allowed(&self, action: Action, model: &Model, user: Option<&User>) -> bool {
        let resource = Resource::new("model", &model.model_id, model.owner.clone());
        is_allowed(&self.inner.policy, action, &resource, user)
    }

    fn config_model(&self, id: &str) -> Option<Model> {
        self.inner.providers.resolve(id).ok().map(Model::from_config)
    }

    fn discovered_model(&self, id: &str) -> Option<Model> {
        let discovered = self.inner.discovered.read().unwrap_or_else(|e| e.into_inner());
        discovered.values().flatten().find(|m| m.model_id == id).cloned()
    }

    async fn registered_model(&self, id: &str) -> Result<Option<Model>, Error> {
        let Some(kv) = &self.inner.kv else { return Ok(None) };
        match kv.get(&format!("{KEY_PREFIX}{id}")).await? {
            Some(text) => Ok(Some(Stored::parse(&text)?.into_model())),
            None => Ok(None),
        }
    }

    /// The model `id`, whoever may see it: config first, then registered, then discovered.
    async fn find(&self, id: &str) -> Result<Option<Model>, Error> {
        if let Some(m) = self.config_model(id) {
            return Ok(Some(m));
        }
        if let Some(m) = self.registered_model(id).await? {
            return Ok(Some(m));
        }
        Ok(self.discovered_model(id))
    }

    /// Every model `user` may read: config models in config order, then registered ones by id,
    /// then discovered ones by provider and id.
    pub async fn list(&self, user: Option<&User>) -> Result<Vec<Model>, Error> {
        let mut all: Vec<Model> = self.inner.providers.models().iter().map(Model::from_config).collect();
        if let Some(kv) = &self.inner.kv {
            for text in kv.values_in_range(KEY_PREFIX, KEY_END).await? {
                match Stored::parse(&text) {
                    Ok(stored) => all.push(stored.into_model()),
                    // One bad entry must not hide every other model.
                    Err(e) => tracing::warn!(error = %e, "a registered model entry is unreadable; skipped"),
                }
            }
        }
        {
            let discovered = self.inner.discovered.read().unwrap_or_else(|e| e.into_inner());
            all.extend(discovered.values().flatten().cloned());
        }
        let mut seen = std::collections::HashSet::new();
        all.retain(|m| seen.insert(m.model_id.clone()));
        all.retain(|m| self.allowed(Action::Read, m, user));
        Ok(all)
    }

    /// The model `id`, when it exists and `user` may read it; else [`Error::NotFound`] (the two
    /// look the same).
    pub async fn get(&self, id: &str, user: Option<&User>) -> Result<Model, Error> {
        match self.find(id).await? {
            Some(m) if self.allowed(Action::Read, &m, user) => Ok(m),
            Some(_) => {
                tracing::info!(model = id, "model not readable by the caller; answered as not found");
                Err(Error::NotFound { model: id.to_owned() })
            }
            None => Err(Error::NotFound { model: id.to_owned() }),
        }
    }

    /// The route of model `id` for `user`: [`Error::NotFound`] when it does not exist, the caller
    /// may not read it, or its provider is no longer configured.
    pub async fn resolve(&self, id: &str, user: Option<&User>) -> Result<ModelRoute, Error> {
        // The hot path: a config model needs no store round trip.
        let model = self.get(id, user).await?;
        self.route(&model).ok_or_else(|| {
            tracing::warn!(model = id, provider = %model.provider_id, "the model's provider is not configured; answered as not found");
            Error::NotFound { model: id.to_owned() }
        })
    }

    /// The route of a model: `None` when its provider is not configured (any more).
    pub fn route(&self, model: &Model) -> Option<ModelRoute> {
        let backend = self.inner.providers.backend(&model.provider_id)?;
        Some(ModelRoute::new(
            model.model_id.clone(),
            model.provider_id.clone(),
            model.provider_model_id.clone(),
            model.model_type,
            model.metadata.clone(),
            backend,
        ))
    }

    /// Register a model for `user` (its owner; unowned when authentication is off).
    pub async fn register(&self, reg: Registration, user: Option<&User>) -> Result<Model, Error> {
        let Some(kv) = &self.inner.kv else { return Err(Error::Disabled) };
        let provider_ids = self.inner.providers.all_provider_ids();
        let provider_id = match reg.provider_id {
            Some(p) if provider_ids.contains(&p) => p,
            Some(p) => return Err(Error::UnknownProvider { provider: p, available: provider_ids }),
            None if provider_ids.len() == 1 => provider_ids[0].clone(),
            None => {
                return Err(Error::Invalid {
                    param: "provider_id",
                    message: format!(
                        "provider_id is required when more than one provider is configured ({})",
                        provider_ids.join(", ")
                    ),
                });
            }
        };
        let model = Model {
            provider_model_id: reg.provider_model_id.unwrap_or_else(|| reg.model_id.clone()),
            model_id: reg.model_id,
            provider_id,
            model_type: reg.model_type,
            metadata: reg.metadata,
            source: Source::Registered,
            owner: user.cloned(),
            created: chrono::Utc::now().timestamp(),
        };
        if !self.allowed(Action::Create, &model, user) {
            return Err(Error::Forbidden { action: "create", model: model.model_id });
        }
        if self.config_model(&model.model_id).is_some() || self.discovered_model(&model.model_id).is_some() {
            return Err(Error::Taken { model: model.model_id });
        }
        let text = Stored::from_model(&model).to_text()?;
        if !kv.insert_new(&format!("{KEY_PREFIX}{}", model.model_id), &text, None).await? {
            return Err(Error::Taken { model: model.model_id });
        }
        tracing::info!(model = %model.model_id, provider = %model.provider_id, "model registered");
        Ok(model)
    }

    /// Delete the registered model `id`: [`Error::NotFound`] when it does not exist or `user` may
    /// not read it, [`Error::NotDeletable`] for config and discovered models,
    /// [`Error::Forbidden`] when `user` may read it but not delete it.
    pub async fn delete(&self, id: &str, user: Option<&User>) -> Result<(), Error> {
        let model = self.get(id, user).await?;
        match model.source {
            Source::Config | Source::Discovered => {
                return Err(Error::NotDeletable { model: model.model_id, origin: model.source });
            }
            Source::Registered => {}
        }
        if !self.allowed(Action::Delete, &model, user) {
            return Err(Error::Forbidden { action: "delete", model: model.model_id });
        }
        let Some(kv) = &self.inner.kv else { return Err(Error::Disabled) };
        kv.delete(&format!("{KEY_PREFIX}{id}")).await?;
        tracing::info!(model = id, "model deleted");
        Ok(())
    }

    /// Replace the discovered models of `provider_id` with `served` (the provider's own model
    /// names): each becomes `<provider_id>/<name>`, unowned, unless a config model has that id.
    /// Returns the ids added and removed.
    pub fn set_discovered(&self, provider_id: &str, served: &[String]) -> (Vec<String>, Vec<String>) {
        let Some(_) = self.inner.providers.backend(provider_id) else { return (Vec::new(), Vec::new()) };
        let mut models: Vec<Model> = served
            .iter()
            .map(|name| Model {
                model_id: format!("{provider_id}/{name}"),
                provider_id: provider_id.to_owned(),
                provider_model_id: name.clone(),
                model_type: ModelType::Llm,
                metadata: Map::new(),
                source: Source::Discovered,
                owner: None,
                created: chrono::Utc::now().timestamp(),
            })
            .filter(|m| self.config_model(&m.model_id).is_none())
            .collect();
        models.sort_by(|a, b| a.model_id.cmp(&b.model_id));
        models.dedup_by(|a, b| a.model_id == b.model_id);
        let mut discovered = self.inner.discovered.write().unwrap_or_else(|e| e.into_inner());
        let before: Vec<String> =
            discovered.get(provider_id).map(|v| v.iter().map(|m| m.model_id.clone()).collect()).unwrap_or_default();
        let after: Vec<String> = models.iter().map(|m| m.model_id.clone()).collect();
        // Keep the first-seen `created` of models that stay.
        if let Some(old) = discovered.get(provider_id) {
            for m in &mut models {
                if let Some(o) = old.iter().find(|o| o.model_id == m.model_id) {
                    m.created = o.created;
                }
            }
        }
        let added = after.iter().filter(|id| !before.contains(id)).cloned().collect();
        let removed = before.iter().filter(|id| !after.contains(id)).cloned().collect();
        discovered.insert(provider_id.to_owned(), models);
        (added, removed)
    }

    /// The ids of the discovered models of every provider.
    pub fn discovered_ids(&self) -> Vec<String> {
        let discovered = self.inner.discovered.read().unwrap_or_else(|e| e.into_inner());
        discovered.values().flatten().map(|m| m.model_id.clone()).collect()
    }
}
