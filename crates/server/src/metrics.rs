//! Metrics read from state the application already keeps: the storage pools
//! ([`Catalog::pool_status`]) and the inference store's write queue ([`QueueMetrics`]). They are
//! observable instruments: their callbacks run when the meter collects, never on a request path.

use std::sync::Arc;

use ferrostack_catalog::Catalog;
use ferrostack_inference_store::{InferenceStore, QueueMetrics};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Meter;

/// Register the pool and write-queue instruments on `meter`. They live as long as the meter
/// provider (the callbacks hold a catalog handle and the queue's counters).
pub fn register(meter: &Meter, catalog: &Catalog, completions: Option<&InferenceStore>) {
    pools(meter, catalog);
    if let Some(store) = completions {
        queue(meter, &store.metrics_handle());
    }
}

/// `db.client.connection.*` (OpenTelemetry database semantic conventions), one series per backend
/// (`db.client.connection.pool.name`).
fn pools(meter: &Meter, catalog: &Catalog) {
    let names = catalog.backend_names();
    let statuses = {
        let catalog = catalog.clone();
        move || names.iter().filter_map(|n| catalog.pool_status(n).ok().map(|s| (n.clone(), s))).collect::<Vec<_>>()
    };
    let pool = |name: &str| KeyValue::new("db.client.connection.pool.name", name.to_owned());
    let count = statuses.clone();
    meter
        .i64_observable_up_down_counter("db.client.connection.count")
        .with_unit("{connection}")
        .with_description("Connections open in each storage pool, by state (idle or used).")
        .with_callback(move |o| {
            for (name, s) in count() {
                let used = s.size.saturating_sub(s.available);
                o.observe(as_i64(s.available), &[pool(&name), KeyValue::new("db.client.connection.state", "idle")]);
                o.observe(as_i64(used), &[pool(&name), KeyValue::new("db.client.connection.state", "used")]);
            }
        })
        .build();
    let max = statuses.clone();
    meter
        .i64_observable_up_down_counter("db.client.connection.max")
        .with_unit("{connection}")
        .with_description("Most connections each storage pool may open (pool_size).")
        .with_callback(move |o| {
            for (name, s) in max() {
                o.observe(as_i64(s.max_size), &[pool(&name)]);
            }
        })
        .build();
    meter
        .i64_observable_up_down_counter("db.client.connection.pending_requests")
        .with_unit("{request}")
        .with_description("Requests waiting for a connection of each storage pool.")
        .with_callback(move |o| {
            for (name, s) in statuses() {
                o.observe(as_i64(s.waiting), &[pool(&name)]);
            }
        })
        .build();
}

/// `ferrostack.inference_store.*`: the write queue.
fn queue(meter: &Meter, metrics: &Arc<QueueMetrics>) {
    let m = Arc::clone(metrics);
    meter
        .i64_observable_up_down_counter("ferrostack.inference_store.queue.depth")
        .with_unit("{row}")
        .with_description("Rows accepted and not yet committed or given up (queued and being written).")
        .with_callback(move |o| o.observe(i64::try_from(m.queue_depth()).unwrap_or(i64::MAX), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .i64_observable_up_down_counter("ferrostack.inference_store.queue.bytes")
        .with_unit("By")
        .with_description(
            "Bytes charged to the write queue's byte bound: rows queued or being written, and the \
             estimates of places reserved for requests still waiting for their upstream.",
        )
        .with_callback(move |o| o.observe(i64::try_from(m.queue_bytes()).unwrap_or(i64::MAX), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .i64_observable_gauge("ferrostack.inference_store.queue.bytes.limit")
        .with_unit("By")
        .with_description("The write queue's byte bound (`max_queue_bytes`).")
        .with_callback(move |o| o.observe(i64::try_from(m.max_queue_bytes()).unwrap_or(i64::MAX), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .u64_observable_counter("ferrostack.inference_store.rows")
        .with_unit("{row}")
        .with_description(
            "Rows by outcome: written, retried (once per retry), failed (refused included), id_taken, \
             refused (by the database for good), too_large, abandoned, spilled, replayed.",
        )
        .with_callback(move |o| {
            for (outcome, n) in [
                ("written", m.rows_written()),
                ("retried", m.rows_retried()),
                ("failed", m.rows_failed()),
                ("id_taken", m.rows_id_taken()),
                ("refused", m.rows_refused()),
                ("too_large", m.rows_too_large()),
                ("abandoned", m.rows_abandoned()),
                ("spilled", m.rows_spilled()),
                ("replayed", m.rows_replayed()),
            ] {
                o.observe(n, &[KeyValue::new("outcome", outcome)]);
            }
        })
        .build();
    let m = Arc::clone(metrics);
    meter
        .u64_observable_counter("ferrostack.inference_store.batches")
        .with_unit("{batch}")
        .with_description("Batches committed.")
        .with_callback(move |o| o.observe(m.batches_written(), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .u64_observable_gauge("ferrostack.inference_store.batch.size")
        .with_unit("{row}")
        .with_description("Rows in the last committed batch.")
        .with_callback(move |o| o.observe(m.last_batch_size(), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .f64_observable_gauge("ferrostack.inference_store.batch.duration")
        .with_unit("s")
        .with_description("How long the last committed batch's transaction took.")
        .with_callback(move |o| o.observe(m.last_batch_latency().as_secs_f64(), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .u64_observable_counter("ferrostack.inference_store.producer.waits")
        .with_unit("{wait}")
        .with_description("Times a request found the write queue full and waited for room.")
        .with_callback(move |o| o.observe(m.producer_waits(), &[]))
        .build();
    queue_faults(meter, metrics);
}

/// The write queue under faults: its age, capacity, stall, and the requests it refused.
fn queue_faults(meter: &Meter, metrics: &Arc<QueueMetrics>) {
    let m = Arc::clone(metrics);
    meter
        .f64_observable_gauge("ferrostack.inference_store.queue.oldest_age")
        .with_unit("s")
        .with_description("Age of the oldest row queued or being written (0 when none).")
        .with_callback(move |o| o.observe(m.oldest_age().as_secs_f64(), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .i64_observable_up_down_counter("ferrostack.inference_store.queue.capacity")
        .with_unit("{row}")
        .with_description("Places in the write queue (max_write_queue_size).")
        .with_callback(move |o| o.observe(i64::try_from(m.capacity()).unwrap_or(i64::MAX), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .i64_observable_gauge("ferrostack.inference_store.writer.stalled")
        .with_unit("1")
        .with_description("1 while the writer makes no progress with rows waiting longer than stall_timeout_seconds.")
        .with_callback(move |o| o.observe(i64::from(m.stalled()), &[]))
        .build();
    let m = Arc::clone(metrics);
    meter
        .u64_observable_counter("ferrostack.inference_store.requests.refused")
        .with_unit("{request}")
        .with_description(
            "Requests answered 503 by the write queue: queue_full (no place in time), commit_timeout (sync).",
        )
        .with_callback(move |o| {
            o.observe(m.queue_full(), &[KeyValue::new("reason", "queue_full")]);
            o.observe(m.commit_timeouts(), &[KeyValue::new("reason", "commit_timeout")]);
        })
        .build();
}

fn as_i64(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
