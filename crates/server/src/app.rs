//! The server as a library: build it from a config, run it until a cancellation token fires, shut
//! it down in order. Tests embed it exactly as `ferrostack serve` runs it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use actix_web::HttpServer;
use anyhow::Context;
use ferrostack_authz::Authenticator;
use ferrostack_catalog::Catalog;
use ferrostack_config::RunConfig;
use ferrostack_conversations::ConversationStore;
use ferrostack_http::AppState;
use ferrostack_inference_store::{InferenceStore, Writers};
use ferrostack_providers::Providers;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry::Telemetry;
use crate::{metrics, migrate};

/// Start-up choices that do not belong in the run config.
#[derive(Debug, Clone, Default)]
pub struct ServeOptions {
    /// Apply pending migrations instead of refusing to start. Always on for the built-in SQLite
    /// set-up.
    pub auto_migrate: bool,
    /// What telemetry export gives the application (from [`crate::TelemetryGuard::telemetry`]);
    /// off by default.
    pub telemetry: Telemetry,
}

/// A built server, bound and ready to run.
pub struct Application {
    server: actix_web::dev::Server,
    addr: SocketAddr,
    catalog: Catalog,
    tasks: TaskTracker,
    writers: Option<Writers>,
    grace: Duration,
    /// Cancels the background tasks (model discovery) at shutdown.
    background: CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Application {
    /// Open every backend, check (or apply) the schema, and bind the listener.
    pub async fn build(config: &RunConfig, options: &ServeOptions) -> anyhow::Result<Self> {
        let catalog = Catalog::open(&config.storage).await.context("cannot open storage backends")?;
        let auto_migrate = options.auto_migrate || config.storage.builtin;
        migrate::ensure_current(&catalog, auto_migrate).await?;

        let auth = &config.server.auth;
        let authenticator = match &auth.provider_config {
            Some(provider) => {
                let authenticator = Authenticator::new(provider).context("cannot set up authentication")?;
                tracing::info!(provider = authenticator.provider_type(), "authentication on");
                Some(authenticator)
            }
            None => {
                tracing::warn!("authentication is off: every request is anonymous and may read every row");
                None
            }
        };
        for warning in crate::exposure::warnings(config) {
            tracing::warn!("{warning}");
        }
        let providers = Arc::new(Providers::from_config(config).context("cannot set up inference providers")?);
        let models = crate::models::registry(config, &catalog, &providers)?;
        let (completions, writers) = match &config.storage.stores.inference {
            Some(store) => {
                let db = catalog.sql(&store.backend).context("storage.stores.inference")?;
                let (completions, writers) = InferenceStore::start(db, store, auth.access_policy.clone())
                    .context("cannot start the inference store")?;
                (Some(completions), Some(writers))
            }
            None => (None, None),
        };
        let conversations = match &config.storage.stores.conversations {
            Some(store) => {
                let db = catalog.sql(&store.backend).context("storage.stores.conversations")?;
                let conversations = ConversationStore::new(db, auth.access_policy.clone())
                    .context("cannot set up the conversations store")?;
                Some(conversations)
            }
            None => None,
        };
        if let Some(meter) = options.telemetry.meter() {
            metrics::register(meter, &catalog, completions.as_ref());
        }
        let tasks = TaskTracker::new();
        let state = AppState {
            catalog: catalog.clone(),
            version: env!("CARGO_PKG_VERSION"),
            authenticator,
            route_policy: Arc::new(auth.route_policy.clone()),
            access_policy: Arc::new(auth.access_policy.clone()),
            providers,
            models: models.clone(),
            completions,
            conversations,
            tasks: tasks.clone(),
            runtime: tokio::runtime::Handle::current(),
            telemetry: ferrostack_http::HttpTelemetry::new(options.telemetry.meter(), options.telemetry.traces()),
            readiness: Arc::default(),
        };
        let mut server = HttpServer::new(move || ferrostack_http::app(state.clone()))
            // Signals are handled once, by the caller's cancellation token (see `run_until`).
            .disable_signals()
            // Streamed answers are many small writes spaced in time: with Nagle's algorithm each one
            // after the first waits for the client's delayed ACK (~40 ms a stream, measured with
            // scripts/bench.sh). Send them as they come.
            .tcp_nodelay(true)
            // A client that closes its connection is gone: its request's handler (and the
            // upstream call it makes, see crates/http/src/routes/chat/create.rs) is dropped at
            // once instead of running on for a half-closed connection nobody reads.
            .h1_allow_half_closed(false)
            .shutdown_timeout(config.server.shutdown_timeout_seconds);
        if let Some(workers) = config.server.workers {
            server = server.workers(workers);
        }
        let (host, port) = (config.server.host.as_str(), config.server.port);
        let server = server.bind((host, port)).with_context(|| format!("cannot listen on {host}:{port}"))?;
        let addr =
            server.addrs().first().copied().with_context(|| format!("listening on {host}:{port} gave no address"))?;
        let server = server.run();
        let grace = Duration::from_secs(config.server.shutdown_timeout_seconds);
        // Model discovery runs until shutdown (step 2 below cancels it).
        let background = CancellationToken::new();
        ferrostack_models::discovery::start(&models, config, &tasks, &background);
        Ok(Self { server, addr, catalog, tasks, writers, grace, background })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve until `shutdown` is cancelled, then shut down in order.
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { server, addr, catalog, tasks, writers, grace, background } = self;
        tracing::info!(%addr, "ferrostack listening on http://{addr}");
        let handle = server.handle();
        // Tracked with the upstream tasks; it has ended by the time they are awaited (step 2).
        let mut serving = tasks.spawn(server);
        let early = tokio::select! {
            res = &mut serving => Some(res),
            () = shutdown.cancelled() => None,
        };
        let served = match early {
            Some(res) => res,
            None => {
                // Shutdown order:
                // 1. stop accepting connections and let in-flight requests finish, bounded by
                //    server.shutdown_timeout_seconds;
                tracing::info!("shutting down: draining in-flight requests");
                handle.stop(true).await;
                serving.await
            }
        };
        // 2. stop model discovery, and wait for upstream calls and stream relays still running (a
        //    client that left mid-stream leaves a relay that stores what it assembled), bounded by
        //    the same timeout;
        background.cancel();
        tasks.close();
        if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
            tracing::warn!(tasks = tasks.len(), "shutdown: upstream tasks still running after the timeout");
        }
        // 3. drain the inference store's write queue within its drain_timeout_seconds;
        if let Some(writers) = writers {
            let grace = writers.drain_timeout();
            let report = writers.shutdown(grace).await;
            if !report.drained {
                tracing::error!(rows = report.unwritten.len(), "shutdown: rows left unwritten in the write queue");
            }
        }
        // 4. close the storage pools, now that nothing can use them;
        // 5. (the caller) shut telemetry down: `TelemetryGuard::shutdown` flushes the spans and
        //    metrics of everything above, so it comes last.
        catalog.close().await;
        tracing::info!("ferrostack stopped");
        served.context("server task failed")?.context("server failed")
    }
}

/// Listen for SIGINT and SIGTERM now; the returned future cancels `token` on the first one.
/// Poll it beside [`Application::run_until`] (no background task: nothing to track or leak).
pub fn cancel_on_signals(token: CancellationToken) -> anyhow::Result<impl Future<Output = ()> + Send> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!(signal = name, "signal received; shutting down");
        token.cancel();
    })
}
