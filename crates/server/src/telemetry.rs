//! Telemetry: log lines through `tracing`, and OpenTelemetry traces and metrics over OTLP/HTTP.
//!
//! [`init`] installs the global `tracing` subscriber: an `EnvFilter`ed log layer (`RUST_LOG`
//! overrides `telemetry.log_level`) and, when export is on, a `tracing-opentelemetry` layer with
//! its own filter, feeding a batch span processor. It returns a [`TelemetryGuard`], which hands
//! the meter to the application ([`TelemetryGuard::telemetry`]) and shuts both providers down,
//! flushing what is left, as the last step of the shutdown.
//!
//! Export off (the default) costs nothing: no exporter, no thread, no OpenTelemetry layer, and
//! every metric instrument is absent rather than a no-op.
//!
//! Nothing OpenTelemetry-related is global: the propagator is used where it is needed (the HTTP
//! layer) and the meter is passed to the application, so applications built in one process (tests)
//! keep their metrics apart. Only the `tracing` subscriber is process-wide, as it must be.

use std::time::Duration;

use anyhow::Context as _;
use ferrostack_config::{Env, LogFormat, TelemetryConfig};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider};
use tracing::level_filters::LevelFilter;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// The instrumentation scope of every span and metric.
pub const SCOPE: &str = "ferrostack";

/// What the application gets from telemetry: the meter to register its instruments on, and
/// whether spans are exported (so trace context is propagated from our spans). Cheap to clone;
/// [`Telemetry::default`] is "off".
#[derive(Debug, Clone, Default)]
pub struct Telemetry {
    meter: Option<Meter>,
    traces: bool,
}

impl Telemetry {
    /// Export off: no instruments, trace context passed on as received.
    pub fn off() -> Self {
        Self::default()
    }

    /// The meter, when metrics are exported.
    pub fn meter(&self) -> Option<&Meter> {
        self.meter.as_ref()
    }

    /// Whether spans are exported.
    pub fn traces(&self) -> bool {
        self.traces
    }
}

/// Owns the OpenTelemetry providers. [`TelemetryGuard::shutdown`] flushes and stops them; dropping
/// the guard does the same, blocking, for the paths that return early with an error.
#[must_use = "dropping the guard shuts telemetry export down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    tracer_provider: Option<SdkTracerProvider>,
    meter_provider: Option<SdkMeterProvider>,
    telemetry: Telemetry,
}

impl TelemetryGuard {
    /// What to pass to the application (`ServeOptions::telemetry`).
    pub fn telemetry(&self) -> Telemetry {
        self.telemetry.clone()
    }

    /// Flush the last spans and metrics and stop the exporters. Runs on a blocking thread: the
    /// providers wait for their export threads.
    pub async fn shutdown(mut self) {
        let tracer = self.tracer_provider.take();
        let meter = self.meter_provider.take();
        if tracer.is_none() && meter.is_none() {
            return;
        }
        let done = tokio::task::spawn_blocking(move || shutdown_providers(tracer, meter)).await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "telemetry shutdown did not finish");
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        shutdown_providers(self.tracer_provider.take(), self.meter_provider.take());
    }
}

fn shutdown_providers(tracer: Option<SdkTracerProvider>, meter: Option<SdkMeterProvider>) {
    // Errors are reported through stderr: the log layer may already be gone with the providers.
    if let Some(p) = tracer
        && let Err(e) = p.shutdown()
    {
        eprintln!("telemetry: flushing spans failed: {e}");
    }
    if let Some(p) = meter
        && let Err(e) = p.shutdown()
    {
        eprintln!("telemetry: flushing metrics failed: {e}");
    }
}

/// Export settings after the `OTEL_*` variables were applied.
#[derive(Debug, Clone)]
pub struct ExportSettings {
    /// Full URL spans are posted to (`.../v1/traces`).
    pub traces_endpoint: String,
    /// Full URL metrics are posted to (`.../v1/metrics`).
    pub metrics_endpoint: String,
    /// Resource attributes: `service.name`, `service.version`, `deployment.environment` and
    /// those of `OTEL_RESOURCE_ATTRIBUTES`.
    pub resource: Vec<(String, String)>,
    /// The sampler of new traces.
    pub sampler: Sampler,
    /// Delay between span exports.
    pub trace_interval: Duration,
    /// Delay between metric exports.
    pub metric_interval: Duration,
    /// Time limit of one export.
    pub timeout: Duration,
}

/// Resolve the export settings: the `telemetry:` block, then the standard `OTEL_*` variables,
/// which win (as environment variables win over the file everywhere else). `None` when export is
/// off: `enabled: false`, or `OTEL_SDK_DISABLED=true`. Problems with the variables are returned
/// as warnings, and the config's value is kept.
pub fn resolve(cfg: &TelemetryConfig, env: &Env) -> (Option<ExportSettings>, Vec<String>) {
    let mut warnings = Vec::new();
    let disabled = env.non_empty("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    if !cfg.enabled || disabled {
        return (None, warnings);
    }
    if let Some(p) = env.non_empty("OTEL_EXPORTER_OTLP_PROTOCOL")
        && p.trim() != "http/protobuf"
    {
        warnings.push(format!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={p} is not supported; ferrostack exports OTLP over http/protobuf"
        ));
    }
    let base = env.non_empty("OTEL_EXPORTER_OTLP_ENDPOINT").unwrap_or(&cfg.otlp_endpoint).trim().trim_end_matches('/');
    let signal = |var: &str, path: &str| env.non_empty(var).map_or_else(|| format!("{base}{path}"), str::to_owned);
    let traces_endpoint = signal("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "/v1/traces");
    let metrics_endpoint = signal("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "/v1/metrics");

    let mut resource: Vec<(String, String)> = vec![
        ("service.name".to_owned(), cfg.service_name.clone()),
        ("service.version".to_owned(), env!("CARGO_PKG_VERSION").to_owned()),
    ];
    if let Some(environment) = &cfg.deployment_environment {
        resource.push(("deployment.environment".to_owned(), environment.clone()));
    }
    if let Some(attrs) = env.non_empty("OTEL_RESOURCE_ATTRIBUTES") {
        for pair in attrs.split(',').filter(|p| !p.trim().is_empty()) {
            match pair.split_once('=') {
                Some((k, v)) if !k.trim().is_empty() => set_attr(&mut resource, k.trim(), &percent_decode(v.trim())),
                _ => warnings.push(format!("OTEL_RESOURCE_ATTRIBUTES: '{pair}' is not key=value; ignored")),
            }
        }
    }
    if let Some(name) = env.non_empty("OTEL_SERVICE_NAME") {
        set_attr(&mut resource, "service.name", name.trim());
    }

    let sampler = sampler(cfg.sample_ratio, env, &mut warnings);
    let settings = ExportSettings {
        traces_endpoint,
        metrics_endpoint,
        resource,
        sampler,
        trace_interval: Duration::from_millis(cfg.trace_export_interval_ms),
        metric_interval: Duration::from_millis(cfg.metric_export_interval_ms),
        timeout: Duration::from_millis(cfg.export_timeout_ms),
    };
    (Some(settings), warnings)
}

fn set_attr(resource: &mut Vec<(String, String)>, key: &str, value: &str) {
    match resource.iter_mut().find(|(k, _)| k == key) {
        Some(entry) => value.clone_into(&mut entry.1),
        None => resource.push((key.to_owned(), value.to_owned())),
    }
}

/// `%XX` escapes of the W3C Baggage format used by `OTEL_RESOURCE_ATTRIBUTES`.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match (bytes[i], hex.and_then(|h| u8::from_str_radix(h, 16).ok())) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `OTEL_TRACES_SAMPLER` (and `OTEL_TRACES_SAMPLER_ARG`) when set, else parent-based with
/// `sample_ratio` for new traces.
fn sampler(ratio: f64, env: &Env, warnings: &mut Vec<String>) -> Sampler {
    let from_config = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio)));
    let Some(name) = env.non_empty("OTEL_TRACES_SAMPLER") else {
        return from_config;
    };
    let mut arg = || match env.non_empty("OTEL_TRACES_SAMPLER_ARG").map(|a| a.trim().parse::<f64>()) {
        None => 1.0,
        Some(Ok(r)) if (0.0..=1.0).contains(&r) => r,
        Some(_) => {
            warnings.push("OTEL_TRACES_SAMPLER_ARG is not a ratio between 0 and 1; using 1.0".to_owned());
            1.0
        }
    };
    match name.trim() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(arg()),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(arg()))),
        other => {
            warnings
                .push(format!("OTEL_TRACES_SAMPLER={other} is not supported; using telemetry.sample_ratio ({ratio})"));
            from_config
        }
    }
}

/// Targets never traced: the exporter's own HTTP stack (a span per export would feed itself)
/// and the OpenTelemetry crates' internal events.
const UNTRACED_TARGETS: &[&str] = &[
    "opentelemetry",
    "opentelemetry_sdk",
    "opentelemetry_otlp",
    "opentelemetry_http",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
];

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// Targets whose debug and trace events carry data: the PostgreSQL driver logs every bound value
/// (message contents, principals, attributes, metadata), the HTTP stacks log headers (the
/// upstream's API key) and bodies. A filter that turns on debug or trace in general keeps these
/// at `info`, unless it names them itself (`tokio_postgres=debug` still works, on purpose).
pub const DATA_BEARING_TARGETS: &[&str] =
    &["tokio_postgres", "postgres_protocol", "rusqlite", "reqwest", "hyper", "hyper_util", "h2", "actix_http"];

/// Where actix logs the requests it refuses before they reach the app (see [`log_filter`]).
const CLIENT_ERROR_TARGET: &str = "actix_http::h1::dispatcher";

/// The log filter for `spec` (`RUST_LOG` syntax): `spec`, plus `<target>=info` for each of
/// [`DATA_BEARING_TARGETS`] that `spec` does not name, when `spec` enables anything more verbose
/// than `info`.
pub fn log_filter(spec: &str) -> Result<EnvFilter, tracing_subscriber::filter::ParseError> {
    // actix's HTTP/1 dispatcher logs a client's malformed request (a bad header, broken chunked
    // framing) at ERROR after answering it itself: the client's fault, never the server's. Off
    // unless the filter names the target (`actix_http::h1::dispatcher=error` shows them again).
    let quiet;
    let spec = if spec.contains(CLIENT_ERROR_TARGET) {
        spec
    } else {
        quiet = format!("{spec},{CLIENT_ERROR_TARGET}=off");
        quiet.as_str()
    };
    let plain = EnvFilter::try_new(spec)?;
    if plain.max_level_hint().is_some_and(|max| max <= LevelFilter::INFO) {
        return Ok(plain);
    }
    let named = |target: &str| {
        spec.split(',').any(|directive| {
            let name = directive.trim().split(['=', '[']).next().unwrap_or_default();
            name == target || name.starts_with(&format!("{target}::"))
        })
    };
    let mut capped = spec.to_owned();
    for target in DATA_BEARING_TARGETS.iter().filter(|t| !named(t)) {
        capped.push_str(&format!(",{target}=info"));
    }
    EnvFilter::try_new(capped)
}

/// Set once shutdown closed the listening sockets itself (see `Application::run_until`).
static LISTENERS_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// actix's acceptor logs at ERROR when it meets a listening socket that shutdown just closed on
/// purpose (an `accept` failing with EINVAL, then a failed deregistration): the closing races with
/// its pause, which it acknowledges before acting on. From the moment shutdown closes the
/// listeners, its log lines are dropped; before that (e.g. EMFILE, out of descriptors) they show.
pub(crate) fn quiet_acceptor() {
    LISTENERS_CLOSED.store(true, std::sync::atomic::Ordering::SeqCst);
}

fn acceptor_quieted(target: &str) -> bool {
    target.starts_with("actix_server::accept") && LISTENERS_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Install the global subscriber and, when export is on, the OpenTelemetry providers.
///
/// Installing a subscriber twice (tests embedding the app) keeps the first one; with export on
/// that is an error, since spans would not reach the exporter.
pub fn init(cfg: &TelemetryConfig, env: &Env) -> anyhow::Result<TelemetryGuard> {
    let filter = match env.non_empty("RUST_LOG") {
        Some(v) => log_filter(v).map_err(|e| anyhow::anyhow!("RUST_LOG={v:?} is not a valid log filter: {e}"))?,
        None => log_filter(&cfg.log_level)
            .map_err(|e| anyhow::anyhow!("telemetry.log_level: {:?} is not a valid log filter: {e}", cfg.log_level))?,
    };
    // Colours only for a person at a terminal, never into files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let fmt = tracing_subscriber::fmt::layer().with_ansi(ansi).with_writer(std::io::stdout);
    // The hint matters: without one the subscriber's maximum level is unknown, so `tracing`
    // treats it as TRACE and every `trace!`/`debug!` of actix, hyper and tokio on the hot path
    // is built and offered to the filters (about 11 events per relayed SSE event, 5% of a
    // stream's instructions, callgrind); with it, they stop at a level comparison.
    let max = filter.max_level_hint().unwrap_or(LevelFilter::TRACE);
    let acceptor =
        tracing_subscriber::filter::filter_fn(move |meta| *meta.level() <= max && !acceptor_quieted(meta.target()))
            .with_max_level_hint(max);
    let log_layer: BoxedLayer = match cfg.log_format {
        LogFormat::Json => fmt.json().flatten_event(true).with_filter(filter).with_filter(acceptor).boxed(),
        LogFormat::Pretty => fmt.compact().with_filter(filter).with_filter(acceptor).boxed(),
    };
    let mut layers = vec![log_layer];

    let (settings, warnings) = resolve(cfg, env);
    let mut guard = TelemetryGuard { tracer_provider: None, meter_provider: None, telemetry: Telemetry::off() };
    if let Some(settings) = &settings {
        let resource = Resource::builder_empty()
            .with_attributes(settings.resource.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())))
            .build();
        let tracer_provider = tracer_provider(settings, resource.clone())?;
        let meter_provider = meter_provider(settings, resource)?;
        let tracer = tracer_provider.tracer(SCOPE);
        let targets = UNTRACED_TARGETS
            .iter()
            .fold(Targets::new().with_default(LevelFilter::INFO), |t, target| t.with_target(*target, LevelFilter::OFF));
        let otel_layer = tracing_opentelemetry::layer()
            .with_tracer(tracer)
            .with_location(false)
            .with_threads(false)
            .with_tracked_inactivity(false)
            .with_filter(targets)
            .boxed();
        layers.push(otel_layer);
        guard.telemetry = Telemetry { meter: Some(meter_provider.meter(SCOPE)), traces: true };
        guard.tracer_provider = Some(tracer_provider);
        guard.meter_provider = Some(meter_provider);
    }
    let installed = tracing_subscriber::registry().with(layers).try_init();
    if settings.is_some() && installed.is_err() {
        anyhow::bail!("telemetry: a tracing subscriber is already installed in this process; spans cannot be exported");
    }
    for w in warnings {
        tracing::warn!("{w}");
    }
    if let Some(s) = &settings {
        let service = s.resource.iter().find(|(k, _)| k == "service.name").map_or("", |(_, v)| v.as_str());
        tracing::info!(
            traces = %s.traces_endpoint,
            metrics = %s.metrics_endpoint,
            service,
            "OpenTelemetry export on (OTLP over http/protobuf)"
        );
    }
    Ok(guard)
}

fn tracer_provider(s: &ExportSettings, resource: Resource) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&s.traces_endpoint)
        .with_timeout(s.timeout)
        .build()
        .with_context(|| format!("telemetry: cannot build the span exporter for {}", s.traces_endpoint))?;
    let batch = BatchConfigBuilder::default().with_scheduled_delay(s.trace_interval).build();
    let processor = BatchSpanProcessor::builder(exporter).with_batch_config(batch).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_sampler(s.sampler.clone())
        .with_resource(resource)
        .build())
}

fn meter_provider(s: &ExportSettings, resource: Resource) -> anyhow::Result<SdkMeterProvider> {
    let exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(&s.metrics_endpoint)
        .with_timeout(s.timeout)
        .build()
        .with_context(|| format!("telemetry: cannot build the metric exporter for {}", s.metrics_endpoint))?;
    let reader = PeriodicReader::builder(exporter).with_interval(s.metric_interval).build();
    Ok(SdkMeterProvider::builder().with_reader(reader).with_resource(resource).build())
}
