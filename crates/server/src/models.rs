//! Wiring of the model registry, and the start-up log of what is served.

use std::sync::Arc;

use anyhow::Context;
use ferrostack_catalog::Catalog;
use ferrostack_config::RunConfig;
use ferrostack_models::ModelRegistry;
use ferrostack_providers::Providers;

/// The registry over `providers`, the metadata store and the access policy; logs the active
/// providers and models (and, when only the echo provider is there, how to add a real engine).
pub(crate) fn registry(
    config: &RunConfig,
    catalog: &Catalog,
    providers: &Arc<Providers>,
) -> anyhow::Result<ModelRegistry> {
    let kv = match &config.storage.stores.metadata {
        Some(reference) => Some(catalog.kv(reference).context("storage.stores.metadata")?),
        None => None,
    };
    let registry = ModelRegistry::new(Arc::clone(providers), kv, Arc::new(config.server.auth.access_policy.clone()));
    let provider_ids = providers.all_provider_ids();
    let refreshing: Vec<String> =
        ferrostack_models::discovery::refreshing_providers(config).into_iter().map(|(id, _)| id).collect();
    let model_ids: Vec<&str> = providers.models().iter().map(|m| m.model_id.as_str()).collect();
    tracing::info!(
        providers = %provider_ids.join(", "),
        models = %model_ids.join(", "),
        discovering = %refreshing.join(", "),
        "inference providers and models"
    );
    if provider_ids.is_empty() {
        tracing::warn!("no inference provider is configured: chat completions answer 404 for every model");
    }
    let only_echo = provider_ids
        .iter()
        .all(|p| providers.backend(p).is_some_and(|b| matches!(b, ferrostack_providers::Backend::Echo)));
    if !provider_ids.is_empty() && only_echo {
        tracing::info!(
            "only the built-in `echo` development provider is active (it repeats the last user message); \
             to serve a real engine set OLLAMA_URL, VLLM_URL or OPENAI_API_KEY, or write a config file \
             (`ferrostack config show-default` prints the one in use)"
        );
    }
    Ok(registry)
}
