//! A small OTLP/HTTP receiver (protobuf), served by the test on a loopback port: it decodes what
//! the exporters post to `/v1/traces` and `/v1/metrics` with opentelemetry-proto's prost types and
//! keeps it, flattened, for assertions.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use bytes::Bytes;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;
use prost::Message as _;
use serde_json::Value;

/// Attributes as JSON values (strings, integers, floats, booleans).
pub type Attributes = BTreeMap<String, Value>;

/// One received span.
#[derive(Debug, Clone)]
pub struct ReceivedSpan {
    /// Lower-case hex, 32 characters.
    pub trace_id: String,
    /// Lower-case hex, 16 characters.
    pub span_id: String,
    /// Lower-case hex; empty for a root span.
    pub parent_span_id: String,
    /// The span name.
    pub name: String,
    /// OTLP `SpanKind`: 1 internal, 2 server, 3 client.
    pub kind: i32,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    /// The span's attributes.
    pub attributes: Attributes,
    /// Its resource's attributes.
    pub resource: Attributes,
}

impl ReceivedSpan {
    /// A string attribute.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).and_then(Value::as_str)
    }

    /// An integer attribute.
    pub fn int(&self, key: &str) -> Option<i64> {
        self.attributes.get(key).and_then(Value::as_i64)
    }
}

/// One data point of a received metric: its attributes and its value (the count for a
/// histogram).
#[derive(Debug, Clone)]
pub struct Point {
    /// The point's attributes.
    pub attributes: Attributes,
    /// The value; a histogram's count.
    pub value: f64,
}

/// One received metric (of one export).
#[derive(Debug, Clone)]
pub struct ReceivedMetric {
    /// The metric name.
    pub name: String,
    /// Its unit.
    pub unit: String,
    /// Its data points.
    pub points: Vec<Point>,
    /// Its resource's attributes.
    pub resource: Attributes,
}

#[derive(Debug, Default)]
struct Received {
    spans: Mutex<Vec<ReceivedSpan>>,
    metrics: Mutex<Vec<ReceivedMetric>>,
}

/// The running receiver.
#[derive(Debug, Clone)]
pub struct OtlpReceiver {
    /// `http://127.0.0.1:<port>`: the `otlp_endpoint` to configure.
    pub endpoint: String,
    received: Arc<Received>,
    handle: ServerHandle,
}

impl OtlpReceiver {
    /// Start it on 127.0.0.1, port 0.
    pub async fn start() -> OtlpReceiver {
        let received = Arc::new(Received::default());
        let data = web::Data::from(Arc::clone(&received));
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(64 * 1024 * 1024))
                .route("/v1/traces", web::post().to(traces))
                .route("/v1/metrics", web::post().to(metrics))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", 0))
        .unwrap_or_else(|e| panic!("bind the OTLP receiver: {e}"));
        let addr = server.addrs()[0];
        let server = server.run();
        let handle = server.handle();
        ferrostack_testkit::spawn(server);
        OtlpReceiver { endpoint: format!("http://{addr}"), received, handle }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.received.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Every metric received so far (one entry per metric and export).
    pub fn metrics(&self) -> Vec<ReceivedMetric> {
        self.received.metrics.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Stop serving.
    pub async fn stop(&self) {
        self.handle.stop(false).await;
    }
}

fn protobuf_ok() -> HttpResponse {
    // An empty Export*ServiceResponse: full success.
    HttpResponse::Ok().content_type("application/x-protobuf").body(Bytes::new())
}

async fn traces(received: web::Data<Received>, body: Bytes) -> HttpResponse {
    let Ok(req) = ExportTraceServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut out = Vec::new();
    for rs in req.resource_spans {
        let resource = rs.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        for ss in rs.scope_spans {
            for s in ss.spans {
                out.push(ReceivedSpan {
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    status: s.status.map_or(0, |st| st.code),
                    attributes: attributes(&s.attributes),
                    resource: resource.clone(),
                });
            }
        }
    }
    if let Ok(mut spans) = received.spans.lock() {
        spans.extend(out);
    }
    protobuf_ok()
}

async fn metrics(received: web::Data<Received>, body: Bytes) -> HttpResponse {
    let Ok(req) = ExportMetricsServiceRequest::decode(body) else {
        return HttpResponse::BadRequest().finish();
    };
    let mut out = Vec::new();
    for rm in req.resource_metrics {
        let resource = rm.resource.map(|r| attributes(&r.attributes)).unwrap_or_default();
        for sm in rm.scope_metrics {
            for m in sm.metrics {
                let number = |p: &opentelemetry_proto::tonic::metrics::v1::NumberDataPoint| Point {
                    attributes: attributes(&p.attributes),
                    value: match p.value {
                        Some(number_data_point::Value::AsDouble(d)) => d,
                        #[expect(clippy::cast_precision_loss, reason = "test values are small")]
                        Some(number_data_point::Value::AsInt(i)) => i as f64,
                        None => f64::NAN,
                    },
                };
                let points = match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.iter().map(number).collect(),
                    Some(Data::Sum(s)) => s.data_points.iter().map(number).collect(),
                    #[expect(clippy::cast_precision_loss, reason = "test counts are small")]
                    Some(Data::Histogram(h)) => h
                        .data_points
                        .iter()
                        .map(|p| Point { attributes: attributes(&p.attributes), value: p.count as f64 })
                        .collect(),
                    _ => Vec::new(),
                };
                out.push(ReceivedMetric { name: m.name, unit: m.unit, points, resource: resource.clone() });
            }
        }
    }
    if let Ok(mut metrics) = received.metrics.lock() {
        metrics.extend(out);
    }
    protobuf_ok()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn attributes(kvs: &[KeyValue]) -> Attributes {
    kvs.iter().map(|kv| (kv.key.clone(), kv.value.as_ref().map_or(Value::Null, any_value))).collect()
}

fn any_value(v: &AnyValue) -> Value {
    match &v.value {
        Some(any_value::Value::StringValue(s)) => Value::String(s.clone()),
        Some(any_value::Value::BoolValue(b)) => Value::Bool(*b),
        Some(any_value::Value::IntValue(i)) => Value::from(*i),
        Some(any_value::Value::DoubleValue(d)) => Value::from(*d),
        Some(other) => Value::String(format!("{other:?}")),
        None => Value::Null,
    }
}
