//! Request telemetry: the root span of every request, its request id, W3C trace context in (from
//! the client) and out (to the upstream provider), and the HTTP and upstream metrics.
//!
//! - [`trace_request`] is the outermost middleware: it opens the `HTTP` server span (HTTP semantic
//!   conventions; `request_id`, and `enduser.id` once authentication recorded it), continues an
//!   incoming `traceparent`, records the status, echoes `x-request-id` and records
//!   `http.server.request.duration`.
//! - [`UpstreamCall`] is the client span and the metrics of one upstream inference call.
//!
//! With export off ([`HttpTelemetry::off`]) there are no instruments at all, and trace context is
//! passed to the upstream as the client sent it.

use std::sync::{Arc, LazyLock};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, web};
use ferrostack_providers::{ForwardHeaders, ModelRoute};
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Histogram, Meter};
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument as _;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::AppState;

/// The request id header, read and echoed.
pub const REQUEST_ID_HEADER: &str = "x-request-id";
/// Longest `x-request-id` accepted from a client; longer or odd ones are replaced.
const MAX_REQUEST_ID_LEN: usize = 128;

/// Bucket bounds (seconds) of the duration histograms: the HTTP semantic-convention buckets,
/// extended for generations and streams that last minutes.
const DURATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0, 120.0, 300.0];

static PROPAGATOR: LazyLock<TraceContextPropagator> = LazyLock::new(TraceContextPropagator::new);

/// What the HTTP layer records: whether spans are exported, and the instruments when metrics are.
#[derive(Debug, Clone, Default)]
pub struct HttpTelemetry {
    traces: bool,
    metrics: Option<Arc<Instruments>>,
}

#[derive(Debug)]
struct Instruments {
    request_duration: Histogram<f64>,
    upstream_duration: Histogram<f64>,
    time_to_first_chunk: Histogram<f64>,
}

impl HttpTelemetry {
    /// Export off.
    pub fn off() -> Self {
        Self::default()
    }

    /// Instruments on `meter` (when metrics are exported); `traces` when spans are exported.
    pub fn new(meter: Option<&Meter>, traces: bool) -> Self {
        let metrics = meter.map(|m| {
            Arc::new(Instruments {
                request_duration: m
                    .f64_histogram("http.server.request.duration")
                    .with_unit("s")
                    .with_description("Duration of HTTP server requests (until the response head for streams).")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
                upstream_duration: m
                    .f64_histogram("gen_ai.client.operation.duration")
                    .with_unit("s")
                    .with_description("Duration of upstream inference calls, to the end of the stream for streams.")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
                time_to_first_chunk: m
                    .f64_histogram("ferrostack.upstream.time_to_first_chunk")
                    .with_unit("s")
                    .with_description("Time from sending a streamed upstream request to its first chunk.")
                    .with_boundaries(DURATION_BUCKETS.to_vec())
                    .build(),
            })
        });
        Self { traces, metrics }
    }
}

/// The id of one request: the client's `x-request-id` when it is sane, else a new UUID. Found in
/// the request's extensions; every log line of the request carries it (a field of its span).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// The client's id when it is 1 to 128 characters of letters, digits and `-_.:/+=@`.
    fn from_header(value: Option<&HeaderValue>) -> Option<Self> {
        let v = value?.to_str().ok()?;
        let sane = !v.is_empty()
            && v.len() <= MAX_REQUEST_ID_LEN
            && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:/+=@".contains(&b));
        sane.then(|| Self(v.to_owned()))
    }

    fn generate() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

/// The root span of every request. Install it outermost, so that authentication and the error
/// shape run inside it: [`crate::app`] installs it last (outermost).
pub async fn trace_request<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    let telemetry = req.app_data::<web::Data<AppState>>().map(|s| s.telemetry.clone()).unwrap_or_default();
    let started = Instant::now();
    let request_id = RequestId::from_header(req.headers().get(REQUEST_ID_HEADER)).unwrap_or_else(RequestId::generate);
    req.extensions_mut().insert(request_id.clone());
    let method = req.method().clone();
    // The matched pattern (`/v1/chat/completions/{completion_id}`), never the raw path: it names
    // the span and labels the metric without one series per id.
    let route = req.match_pattern();
    let name = match &route {
        Some(r) => format!("{method} {r}"),
        None => method.to_string(),
    };
    let span = tracing::info_span!(
        "HTTP request",
        otel.name = %name,
        otel.kind = "server",
        otel.status_code = Empty,
        http.request.method = %method,
        http.route = route.as_deref(),
        url.path = %req.path(),
        http.response.status_code = Empty,
        error.type = Empty,
        enduser.id = Empty,
        request_id = %request_id.as_str(),
    );
    if telemetry.traces {
        let parent = PROPAGATOR.extract(&HeaderExtractor(req.headers()));
        if parent.span().span_context().is_valid() {
            // Fails only when the span is disabled by the filter; nothing to continue then.
            let _ = span.set_parent(parent);
        }
    }
    let result = next.call(req).instrument(span.clone()).await;
    let status = match &result {
        Ok(res) => res.status(),
        Err(e) => e.as_response_error().status_code(),
    };
    span.record("http.response.status_code", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", status.as_str());
    }
    if let Some(m) = &telemetry.metrics {
        let mut attrs = vec![
            KeyValue::new("http.request.method", method.to_string()),
            KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        ];
        if let Some(r) = route {
            attrs.push(KeyValue::new("http.route", r));
        }
        m.request_duration.record(started.elapsed().as_secs_f64(), &attrs);
    }
    result.map(|mut res| {
        if let Ok(v) = HeaderValue::from_str(request_id.as_str()) {
            res.headers_mut().insert(HeaderName::from_static(REQUEST_ID_HEADER), v);
        }
        res
    })
}

/// The client span and metrics of one upstream inference call; created inside the request span,
/// so its span is the request span's child.
#[derive(Debug)]
pub(crate) struct UpstreamCall {
    span: tracing::Span,
    metrics: Option<Arc<Instruments>>,
    attrs: Vec<KeyValue>,
    started: Instant,
    first_chunk: bool,
}

impl UpstreamCall {
    pub(crate) fn start(telemetry: &HttpTelemetry, route: &ModelRoute, model: &str, stream: bool) -> Self {
        let span = tracing::info_span!(
            "upstream chat",
            otel.name = %format!("chat {model}"),
            otel.kind = "client",
            otel.status_code = Empty,
            gen_ai.operation.name = "chat",
            gen_ai.request.model = %model,
            ferrostack.provider = %route.provider_id,
            ferrostack.provider_model = %route.provider_model_id,
            ferrostack.stream = stream,
            ferrostack.time_to_first_chunk_ms = Empty,
            ferrostack.completion_id = Empty,
            gen_ai.response.id = Empty,
            error.type = Empty,
        );
        let attrs = telemetry.metrics.as_ref().map_or_else(Vec::new, |_| {
            vec![
                KeyValue::new("gen_ai.operation.name", "chat"),
                KeyValue::new("gen_ai.request.model", model.to_owned()),
                KeyValue::new("ferrostack.provider", route.provider_id.clone()),
                KeyValue::new("ferrostack.stream", stream),
            ]
        });
        Self { span, metrics: telemetry.metrics.clone(), attrs, started: Instant::now(), first_chunk: false }
    }

    /// The span, to instrument the task making the call.
    pub(crate) fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Headers for the upstream: our span's trace context when spans are exported (the upstream
    /// sees this call as its parent), else the client's `traceparent` / `tracestate` as they came;
    /// the request id either way.
    pub(crate) fn forward_headers(&self, telemetry: &HttpTelemetry, req: &HttpRequest) -> ForwardHeaders {
        let request_id = req.extensions().get::<RequestId>().map(|id| id.as_str().to_owned());
        if telemetry.traces {
            let cx = self.span.context();
            if cx.span().span_context().is_valid() {
                let mut carrier = std::collections::HashMap::new();
                PROPAGATOR.inject_context(&cx, &mut carrier);
                return ForwardHeaders {
                    traceparent: carrier.remove("traceparent"),
                    tracestate: carrier.remove("tracestate").filter(|s| !s.is_empty()),
                    request_id,
                };
            }
        }
        let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        ForwardHeaders { traceparent: header("traceparent"), tracestate: header("tracestate"), request_id }
    }

    /// The first chunk of a stream arrived.
    pub(crate) fn first_chunk(&mut self) {
        if self.first_chunk {
            return;
        }
        self.first_chunk = true;
        let elapsed = self.started.elapsed();
        self.span.record("ferrostack.time_to_first_chunk_ms", i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX));
        if let Some(m) = &self.metrics {
            m.time_to_first_chunk.record(elapsed.as_secs_f64(), &self.attrs);
        }
    }

    /// The call is over; `error` is the `error.type` (the error code) when it failed.
    pub(crate) fn finish(mut self, error: Option<&'static str>) {
        if let Some(e) = error {
            self.span.record("otel.status_code", "ERROR");
            self.span.record("error.type", e);
            self.attrs.push(KeyValue::new("error.type", e));
        }
        if let Some(m) = &self.metrics {
            m.upstream_duration.record(self.started.elapsed().as_secs_f64(), &self.attrs);
        }
    }
}
