//! The server as a library: build it from a config, run it until a cancellation token fires, shut
//! it down in order. Tests embed it exactly as `ferrostack serve` runs it.

use std::net::{SocketAddr, ToSocketAddrs as _};
use std::sync::Arc;
use std::time::Duration;

use actix_http::{HttpService, KeepAlive, error::DispatchError};
use actix_service::{IntoServiceFactory as _, ServiceFactoryExt as _, fn_service, map_config};
use actix_web::dev::{AppConfig, Extensions};
use actix_web::rt::net::TcpStream;
use anyhow::Context;
use ferrostack_authz::Authenticator;
use ferrostack_catalog::Catalog;
use ferrostack_config::RunConfig;
use ferrostack_conversations::ConversationStore;
use ferrostack_http::{AppState, Front, FrontLimits, Lifecycle};
use ferrostack_inference_store::{InferenceStore, WriterConfig, Writers};
use ferrostack_providers::Providers;
use ferrostack_responses::ResponseStore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::telemetry::Telemetry;
use crate::{metrics, migrate};

/// Longest wait for the storage pools to close at shutdown (after the drain).
const POOL_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Listen queue length of each listening socket (actix's own default).
const BACKLOG: i32 = 2048;

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
    /// Shutdown as requests see it.
    lifecycle: Lifecycle,
    /// The listening sockets (second handles of those actix accepts on), closed at shutdown.
    listeners: Listeners,
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
                let mut writer_config = WriterConfig::from(store);
                writer_config.spill_path = Some(crate::durability::spill_path(config, store));
                let (completions, writers) = InferenceStore::start_with(db, &writer_config, auth.access_policy.clone())
                    .context("cannot start the inference store")?;
                // Rows an earlier run spilled at shutdown are written before anything is served.
                crate::durability::replay(&completions).await?;
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
        // Responses append to conversations in the same transaction, so both stores must share a
        // backend (checked here: a config that splits them does not start).
        let responses = match &config.storage.stores.responses {
            Some(store) => {
                let db = catalog.sql(&store.backend).context("storage.stores.responses")?;
                let responses = ResponseStore::new(db, auth.access_policy.clone(), conversations.clone())
                    .context("cannot set up the responses store")?
                    .with_max_row_bytes(store.max_row_bytes);
                Some(responses)
            }
            None => None,
        };
        if let Some(meter) = options.telemetry.meter() {
            metrics::register(meter, &catalog, completions.as_ref());
        }
        let tasks = TaskTracker::new();
        let lifecycle = Lifecycle::default();
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
            responses,
            tasks: tasks.clone(),
            runtime: tokio::runtime::Handle::current(),
            telemetry: ferrostack_http::HttpTelemetry::new(options.telemetry.meter(), options.telemetry.traces()),
            readiness: Arc::default(),
            lifecycle: lifecycle.clone(),
            limits: ferrostack_http::Limits::new(&config.server.limits),
        };
        let (host, port) = (config.server.host.as_str(), config.server.port);
        let listeners = Listeners::bind(host, port).with_context(|| format!("cannot listen on {host}:{port}"))?;
        let server =
            serve(config, &state, &lifecycle, &listeners).with_context(|| format!("cannot listen on {host}:{port}"))?;
        let addr = listeners.addr().with_context(|| format!("listening on {host}:{port} gave no address"))?;
        let grace = Duration::from_secs(config.server.shutdown_timeout_seconds);
        // Model discovery runs until shutdown (step 2 below cancels it).
        let background = CancellationToken::new();
        ferrostack_models::discovery::start(&models, config, &tasks, &background);
        Ok(Self { server, addr, catalog, tasks, writers, grace, background, lifecycle, listeners })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serve until `shutdown` is cancelled, then shut down in order, within
    /// `shutdown_timeout_seconds` + `drain_timeout_seconds` (see docs/operations.md).
    pub async fn run_until(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let Self { server, addr, catalog, tasks, writers, grace, background, lifecycle, listeners } = self;
        tracing::info!(%addr, "ferrostack listening on http://{addr}");
        let handle = server.handle();
        // Tracked with the upstream tasks; it has ended by the time they are awaited (step 2).
        let mut serving = tasks.spawn(server);
        let early = tokio::select! {
            res = &mut serving => Some(res),
            () = shutdown.cancelled() => None,
        };
        // One deadline for the in-flight phase (steps 1 and 2): the time actix gives open
        // connections and the time we give upstream tasks are the same `grace`, not one after
        // the other.
        let deadline = tokio::time::Instant::now() + grace;
        let served = match early {
            Some(res) => res,
            None => {
                // Shutdown order:
                // 1. stop accepting connections: new ones are refused at once; requests arriving
                //    on open connections are answered 503 with `Connection: close`, in-flight
                //    requests finish (their answers close their connections too), bounded by
                //    server.shutdown_timeout_seconds. Shortly before the grace ends, requests
                //    still waiting for their handler are answered 503 instead of being reset.
                // actix's acceptor stops polling the listeners (open connections are untouched,
                // unlike its graceful stop, which closes idle keep-alive connections under a
                // request the client may be sending); then the listeners are closed, so that new
                // connections are refused rather than left waiting in the listen queue. Only then
                // are requests refused: a client answered 503 + `Connection: close` reconnects at
                // once, and a connection made before the listener closed but not yet accepted
                // would be reset by the kernel when it closes.
                handle.pause().await;
                crate::telemetry::quiet_acceptor();
                listeners.close();
                lifecycle.begin_shutdown();
                tracing::info!(
                    grace_ms = grace.as_millis(),
                    connections = lifecycle.open_connections(),
                    "shutting down: draining in-flight requests"
                );
                // Open connections close as their answers (all `Connection: close` now) go out,
                // or when their keep-alive ends; the server stops when none is left, or at the
                // end of the grace, whichever comes first.
                let cut_at = deadline - crate::durability::cut_margin(grace);
                let closed = lifecycle.connections_closed();
                tokio::pin!(closed);
                let all_closed = tokio::select! {
                    () = &mut closed => true,
                    () = tokio::time::sleep_until(cut_at) => {
                        lifecycle.cut();
                        tokio::time::timeout_at(deadline, &mut closed).await.is_ok()
                    }
                };
                lifecycle.cut();
                if !all_closed {
                    tracing::warn!(
                        connections = lifecycle.open_connections(),
                        "shutdown: connections still open at the end of the grace are closed"
                    );
                }
                // Nothing left to wait for: the stop is immediate (with connections still open
                // at the end of the grace, they are closed now, a stream cut where it is).
                handle.stop(false).await;
                serving.await
            }
        };
        // 2. stop model discovery, and wait for upstream calls and stream relays still running (a
        //    client that left mid-stream leaves a relay that stores what it assembled), within
        //    what is left of the same deadline;
        background.cancel();
        tasks.close();
        if tokio::time::timeout_at(deadline, tasks.wait()).await.is_err() {
            tracing::warn!(tasks = tasks.len(), "shutdown: upstream tasks still running after the timeout");
        }
        // 3. drain the inference store's write queue within its drain_timeout_seconds; what
        //    `durability: async` rows are left are spilled to the spill file (replayed at the
        //    next start);
        if let Some(writers) = writers {
            let grace = writers.drain_timeout();
            let report = writers.shutdown(grace).await;
            if !report.drained {
                tracing::error!(
                    rows = report.unwritten.len(),
                    spilled = report.spilled,
                    "shutdown: the write queue was not drained in time"
                );
            }
        }
        // 4. close the storage pools, now that nothing can use them;
        // 5. (the caller) shut telemetry down: `TelemetryGuard::shutdown` flushes the spans and
        //    metrics of everything above, so it comes last.
        //    Cancel requests for statements abandoned above finish in the background; against a
        //    frozen database they could take a connect timeout, so closing is bounded.
        if tokio::time::timeout(POOL_CLOSE_TIMEOUT, catalog.close()).await.is_err() {
            tracing::warn!("shutdown: cancel requests to the database still pending; not waiting for them");
        }
        tracing::info!("ferrostack stopped");
        served.context("server task failed")?.context("server failed")
    }
}

/// The HTTP server on `listeners`, not yet running: actix's HTTP/1 service with the app, each
/// connection wrapped in [`Front`] so that what actix refuses itself is answered in the error
/// shape too (see crates/http/src/front.rs). This is what `actix_web::HttpServer` builds, with the
/// settings below, plus that wrapper.
fn serve(
    config: &RunConfig,
    state: &AppState,
    lifecycle: &Lifecycle,
    listeners: &Listeners,
) -> anyhow::Result<actix_web::dev::Server> {
    let limits = &config.server.limits;
    let workers = config.server.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let mut builder = actix_web::dev::Server::build()
        // Signals are handled once, by the caller's cancellation token (see `run_until`).
        .disable_signals()
        .shutdown_timeout(config.server.shutdown_timeout_seconds)
        // `server.limits.max_connections`: actix counts connections per worker, so the configured
        // total is shared out. The bound on open connections at shutdown is kept by `run_until`,
        // which forces the stop.
        .max_concurrent_connections(limits.max_connections.div_ceil(workers.max(1)));
    if let Some(workers) = config.server.workers {
        builder = builder.workers(workers);
    }
    let front = FrontLimits::from(limits);
    let header_timeout = Duration::from_secs(limits.header_timeout_seconds);
    for listener in listeners.for_actix()? {
        let addr = listener.local_addr().context("the listening socket has no address")?;
        let state = state.clone();
        let lifecycle = lifecycle.clone();
        builder = builder.listen(format!("ferrostack-{addr}"), listener, move || {
            let on_connect = lifecycle.clone();
            let app = ferrostack_http::app(state.clone())
                .into_factory()
                .map_err(|err: actix_web::Error| err.error_response());
            let http = HttpService::build()
                // `server.limits.header_timeout_seconds`: headers of the first request on a
                // connection not complete in time get 408 (in the error shape, from `Front`).
                .client_request_timeout(header_timeout)
                // actix_web::HttpServer's defaults for the rest.
                .keep_alive(KeepAlive::default())
                .client_disconnect_timeout(Duration::from_secs(1))
                // A client that closes its connection is gone: its request's handler (and the
                // upstream call it makes, see crates/http/src/routes/chat/create.rs) is dropped at
                // once instead of running on for a half-closed connection nobody reads.
                .h1_allow_half_closed(false)
                .local_addr(addr)
                // Every open client connection is counted: shutdown waits for them to close (see
                // `run_until`) instead of closing idle keep-alive connections under a client's
                // request.
                .on_connect_ext(move |_: &Front<TcpStream>, data: &mut Extensions| {
                    data.insert(on_connect.connection_opened());
                })
                // The app reads neither `ConnectionInfo`'s fallback host nor its `AppConfig`
                // (peer addresses come from the connection), so actix's default config serves.
                .h1(map_config(app, |()| AppConfig::default()));
            fn_service(move |io: TcpStream| {
                // Streamed answers are many small writes spaced in time: with Nagle's algorithm
                // each one after the first waits for the client's delayed ACK (~40 ms a stream,
                // measured with scripts/bench.sh). Send them as they come.
                if let Err(err) = io.set_nodelay(true) {
                    tracing::debug!(%err, "cannot set TCP_NODELAY on a client connection");
                }
                let peer = io.peer_addr().ok();
                std::future::ready(Ok::<_, DispatchError>((Front::new(io, front), peer)))
            })
            .and_then(http)
        })?;
    }
    Ok(builder.run())
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
        tracing::info!(signal = name, "signal received");
        token.cancel();
    })
}

/// The listening sockets, bound here rather than by actix so that shutdown can close them while
/// the connections actix accepted on them are still served (actix only pauses accepting).
struct Listeners(Vec<socket2::Socket>);

impl Listeners {
    /// Bind every address `host` resolves to (as actix does): an error only when none binds.
    fn bind(host: &str, port: u16) -> std::io::Result<Self> {
        use socket2::{Domain, Protocol, Socket, Type};
        let mut sockets = Vec::new();
        let mut last_err = None;
        for addr in (host, port).to_socket_addrs()? {
            let bound = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).and_then(|socket| {
                socket.set_reuse_address(true)?;
                socket.set_nonblocking(true)?;
                socket.bind(&addr.into())?;
                socket.listen(BACKLOG)?;
                Ok(socket)
            });
            match bound {
                Ok(socket) => sockets.push(socket),
                Err(err) => last_err = Some(err),
            }
        }
        match (sockets.is_empty(), last_err) {
            (true, Some(err)) => Err(err),
            (true, None) => Err(std::io::Error::other("the host resolved to no address")),
            (false, _) => Ok(Self(sockets)),
        }
    }

    /// The first address bound (the one reported; useful with port 0).
    fn addr(&self) -> anyhow::Result<SocketAddr> {
        let socket = self.0.first().context("no listening socket")?;
        socket.local_addr()?.as_socket().context("the listening socket has no IP address")
    }

    /// Second handles of the same sockets, for actix to accept on.
    fn for_actix(&self) -> anyhow::Result<Vec<std::net::TcpListener>> {
        self.0
            .iter()
            .map(|socket| Ok(socket.try_clone().context("cannot duplicate the listening socket")?.into()))
            .collect()
    }

    /// Stop listening: connections not yet accepted and new ones are refused (on Linux, shutting
    /// a listening socket's read side takes it out of the listen state, for every handle of it).
    fn close(&self) {
        for socket in &self.0 {
            if let Err(err) = socket.shutdown(std::net::Shutdown::Read) {
                tracing::warn!(%err, "shutdown: cannot close a listening socket; new connections wait until exit");
            }
        }
    }
}
