//! Model discovery: for each provider with `refresh_models: true`, one task asks the provider's
//! `GET /v1/models` at start and then every `refresh_interval_seconds`, and replaces that
//! provider's discovered models with what it serves (models that disappeared upstream go). A
//! provider that cannot be reached is logged and asked again at the next tick; the server does
//! not wait for it. The tasks run on the server's `TaskTracker` and end when its shutdown token
//! is cancelled.

use std::time::Duration;

use ferrostack_config::{InferenceProviderConfig, RunConfig};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ModelRegistry;

/// The providers of `config` with `refresh_models: true`, and their refresh interval.
pub fn refreshing_providers(config: &RunConfig) -> Vec<(String, Duration)> {
    let entries = config.providers.get("inference").into_iter().flatten().enumerate();
    entries
        .filter_map(|(i, entry)| {
            let parsed = InferenceProviderConfig::from_entry(entry, &format!("providers.inference[{i}]"))?.ok()?;
            parsed
                .refresh_models
                .then(|| (entry.provider_id.clone(), Duration::from_secs(parsed.refresh_interval_seconds)))
        })
        .collect()
}

/// Start one discovery task per refreshing provider of `config` on `tasks`; they stop when
/// `shutdown` is cancelled.
pub fn start(registry: &ModelRegistry, config: &RunConfig, tasks: &TaskTracker, shutdown: &CancellationToken) {
    for (provider_id, interval) in refreshing_providers(config) {
        let registry = registry.clone();
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            tokio::select! {
                () = refresh_loop(&registry, &provider_id, interval) => {}
                () = shutdown.cancelled() => {}
            }
        });
    }
}

async fn refresh_loop(registry: &ModelRegistry, provider_id: &str, interval: Duration) {
    let Some(client) = registry.providers().provider(provider_id).cloned() else { return };
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut was_down = false;
    loop {
        ticks.tick().await;
        match client.list_models().await {
            Ok(served) => {
                let (added, removed) = registry.set_discovered(provider_id, &served);
                if was_down || !added.is_empty() || !removed.is_empty() {
                    tracing::info!(
                        provider = provider_id,
                        models = served.len(),
                        ?added,
                        ?removed,
                        "models discovered from the provider"
                    );
                }
                was_down = false;
            }
            Err(e) => {
                // Its discovered models stay until the provider answers again: a blip does not
                // take models away from clients.
                if !was_down {
                    tracing::warn!(
                        provider = provider_id,
                        error = %e,
                        retry_in_seconds = interval.as_secs(),
                        "cannot list the provider's models; retrying"
                    );
                }
                was_down = true;
            }
        }
    }
}
