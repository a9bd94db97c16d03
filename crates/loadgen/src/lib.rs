//! ferrostack's load driver: `concurrency` connections send requests for a duration (or a
//! number of requests) and the run reports requests/s, latency percentiles, errors by kind and,
//! for SSE streams, the time to the first chunk.
//!
//! Latencies are kept exactly (one `u32` of microseconds per request) and percentiles are taken
//! by nearest rank on the sorted list: no histogram buckets, no dependency, and at benchmark sizes
//! (a few hundred thousand requests) the memory is a few MB.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::Serialize;

/// What one run sends and for how long.
#[derive(Debug, Clone)]
pub struct Options {
    /// Full URL of the target, such as `http://127.0.0.1:8321/v1/chat/completions`.
    pub url: String,
    /// JSON body to POST; `None` sends GET requests.
    pub body: Option<Bytes>,
    /// Read the answer as an SSE stream: time the first chunk, require `data: [DONE]`.
    pub stream: bool,
    /// `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Requests in flight at once (one connection each).
    pub concurrency: usize,
    /// How long to measure (after the warm-up).
    pub duration: Option<Duration>,
    /// Or how many requests to measure in total.
    pub requests: Option<u64>,
    /// Requests sent during the first `warmup` are answered but not measured.
    pub warmup: Duration,
    /// Per-request timeout (whole answer).
    pub timeout: Duration,
}

/// The body of a chat-completion request with one short user message.
pub fn chat_body(model: &str, stream: bool) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": model,
            "stream": stream,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Write one sentence about load testing an API server."}
            ]
        })
        .to_string(),
    )
}

/// The body of a Responses API request (`POST /v1/responses`) with the same short question.
pub fn responses_body(model: &str, stream: bool) -> Bytes {
    Bytes::from(
        serde_json::json!({
            "model": model,
            "stream": stream,
            "instructions": "You are a helpful assistant.",
            "input": "Write one sentence about load testing an API server."
        })
        .to_string(),
    )
}

/// Why a request did not count as a success.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ErrorKind {
    /// The connection could not be opened.
    Connect,
    /// No complete answer within the timeout.
    Timeout,
    /// A non-2xx status.
    Status(u16),
    /// The answer's body broke off or could not be read.
    Body,
    /// A 2xx answer whose body is not JSON (non-streaming).
    InvalidJson,
    /// A stream that carried an `error` event.
    StreamErrorEvent,
    /// A stream that ended without `data: [DONE]`.
    StreamIncomplete,
    /// Anything else the client reported (a malformed URL, a redirect loop, ...).
    Other,
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ErrorKind::Connect => f.write_str("connect"),
            ErrorKind::Timeout => f.write_str("timeout"),
            ErrorKind::Status(code) => write!(f, "http_{code}"),
            ErrorKind::Body => f.write_str("body"),
            ErrorKind::InvalidJson => f.write_str("invalid_json"),
            ErrorKind::StreamErrorEvent => f.write_str("stream_error_event"),
            ErrorKind::StreamIncomplete => f.write_str("stream_incomplete"),
            ErrorKind::Other => f.write_str("other"),
        }
    }
}

/// The kind of a client error.
pub fn classify(error: &reqwest::Error) -> ErrorKind {
    if error.is_timeout() {
        ErrorKind::Timeout
    } else if error.is_connect() {
        ErrorKind::Connect
    } else if let Some(status) = error.status() {
        ErrorKind::Status(status.as_u16())
    } else if error.is_body() || error.is_decode() || error.is_request() {
        ErrorKind::Body
    } else {
        ErrorKind::Other
    }
}

const DONE: &[u8] = b"data: [DONE]\n\n";
const ERROR_EVENT: &[u8] = b"data: {\"error\"";
/// A Responses stream ends with this event (it has no `[DONE]`) ...
const RESPONSE_COMPLETED: &[u8] = b"event: response.completed\n";
/// ... or fails with one of these.
const RESPONSE_FAILED: [&[u8]; 2] = [b"event: response.failed\n", b"event: error\n"];

/// Follows an SSE body chunk by chunk: whether an `error` event was seen and whether the body
/// ended with `data: [DONE]`. Only the last few bytes are kept.
#[derive(Debug, Default)]
pub struct StreamCheck {
    tail: Vec<u8>,
    error_event: bool,
    /// A Responses stream's `response.completed` event was seen.
    completed: bool,
}

impl StreamCheck {
    /// Feed the next chunk.
    pub fn feed(&mut self, chunk: &[u8]) {
        // An error event may straddle two chunks: search the previous tail joined with the chunk.
        let mut window = std::mem::take(&mut self.tail);
        window.extend_from_slice(chunk);
        if !self.error_event && window.windows(ERROR_EVENT.len()).any(|w| w == ERROR_EVENT) {
            self.error_event = true;
        }
        if !self.error_event && RESPONSE_FAILED.iter().any(|e| window.windows(e.len()).any(|w| w == *e)) {
            self.error_event = true;
        }
        if !self.completed && window.windows(RESPONSE_COMPLETED.len()).any(|w| w == RESPONSE_COMPLETED) {
            self.completed = true;
        }
        let keep = window.len().saturating_sub(DONE.len().max(ERROR_EVENT.len()).max(RESPONSE_COMPLETED.len()));
        window.drain(..keep);
        self.tail = window;
    }

    /// The verdict once the body ended.
    pub fn finish(&self) -> Result<(), ErrorKind> {
        if self.error_event {
            Err(ErrorKind::StreamErrorEvent)
        } else if self.tail.ends_with(DONE) || self.completed {
            Ok(())
        } else {
            Err(ErrorKind::StreamIncomplete)
        }
    }
}

/// The value at percentile `p` (0-100) of sorted `values`, by nearest rank; 0 when empty.
pub fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Latency summary in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    /// Summarize microsecond samples (sorts them).
    pub fn of(samples: &mut [u32]) -> Latency {
        samples.sort_unstable();
        let ms = |us: u32| f64::from(us) / 1000.0;
        let mean = if samples.is_empty() {
            0.0
        } else {
            samples.iter().map(|&s| f64::from(s)).sum::<f64>() / samples.len() as f64 / 1000.0
        };
        Latency {
            p50_ms: ms(percentile(samples, 50.0)),
            p90_ms: ms(percentile(samples, 90.0)),
            p99_ms: ms(percentile(samples, 99.0)),
            max_ms: ms(samples.last().copied().unwrap_or(0)),
            mean_ms: mean,
        }
    }
}

/// The result of one run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Free text naming the run.
    pub label: String,
    /// Connections.
    pub concurrency: usize,
    /// Length of the measured window, in seconds.
    pub seconds: f64,
    /// Requests finished in the measured window (successes and errors).
    pub requests: u64,
    /// 2xx answers (complete and valid) in the measured window.
    pub ok: u64,
    /// 2xx answers including the warm-up: what a server that stores every answer must have stored.
    pub ok_total: u64,
    /// Successful requests per second in the measured window.
    pub requests_per_second: f64,
    /// Latency of successful requests (whole answer).
    pub latency: Latency,
    /// Time to the first body chunk of successful streams.
    pub first_chunk: Option<Latency>,
    /// Failed requests by kind (measured window).
    pub errors: BTreeMap<String, u64>,
    /// Stored rows counted after the run, when asked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stored_rows: Option<u64>,
}

impl Report {
    /// Header of the markdown table [`Report::markdown_row`] fills.
    pub fn markdown_header() -> String {
        "| run | conns | req/s | p50 ms | p90 ms | p99 ms | max ms | first chunk p50 / p99 ms | 2xx | errors | stored rows |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
            .to_owned()
    }

    /// One markdown table row.
    pub fn markdown_row(&self) -> String {
        let first = self.first_chunk.map_or_else(|| "-".to_owned(), |f| format!("{:.2} / {:.2}", f.p50_ms, f.p99_ms));
        let errors = if self.errors.is_empty() {
            "0".to_owned()
        } else {
            self.errors.iter().map(|(k, v)| format!("{k}: {v}")).collect::<Vec<_>>().join(", ")
        };
        let stored = self.stored_rows.map_or_else(
            || "-".to_owned(),
            |n| format!("{n} ({})", if n == self.ok_total { "== 2xx" } else { "!= 2xx" }),
        );
        format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} | {} |",
            self.label,
            self.concurrency,
            self.requests_per_second,
            self.latency.p50_ms,
            self.latency.p90_ms,
            self.latency.p99_ms,
            self.latency.max_ms,
            first,
            self.ok_total,
            errors,
            stored
        )
    }
}

#[derive(Debug, Default)]
struct Samples {
    latency: Vec<u32>,
    first_chunk: Vec<u32>,
    ok: u64,
    ok_total: u64,
    errors: BTreeMap<ErrorKind, u64>,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.latency.extend(other.latency);
        self.first_chunk.extend(other.first_chunk);
        self.ok += other.ok;
        self.ok_total += other.ok_total;
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The HTTP client a run uses: one connection per concurrent request, kept alive, no proxy.
pub fn client(options: &Options) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(options.concurrency)
        .timeout(options.timeout)
        .tcp_nodelay(true)
        .no_proxy()
        .build()
}

/// Send one request and read the whole answer: the time to the first body chunk (streams) or
/// the kind of failure.
pub async fn one(client: &reqwest::Client, options: &Options, started: Instant) -> Result<Option<Duration>, ErrorKind> {
    let mut request = match &options.body {
        Some(body) => client
            .post(&options.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(reqwest::Body::from(body.clone())),
        None => client.get(&options.url),
    };
    if let Some(token) = &options.token {
        request = request.bearer_auth(token);
    }
    let mut response = request.send().await.map_err(|e| classify(&e))?;
    let status = response.status();
    if !status.is_success() {
        // Read the body so the connection can be reused.
        let _ = response.bytes().await;
        return Err(ErrorKind::Status(status.as_u16()));
    }
    if options.stream {
        let mut check = StreamCheck::default();
        let mut first = None;
        while let Some(chunk) = response.chunk().await.map_err(|e| classify(&e))? {
            if first.is_none() {
                first = Some(started.elapsed());
            }
            check.feed(&chunk);
        }
        check.finish()?;
        Ok(first)
    } else {
        let body = response.bytes().await.map_err(|e| classify(&e))?;
        serde_json::from_slice::<serde::de::IgnoredAny>(&body).map_err(|_| ErrorKind::InvalidJson)?;
        Ok(None)
    }
}

/// Run the load and summarize it.
pub async fn run(label: &str, options: &Options) -> anyhow::Result<Report> {
    anyhow::ensure!(options.concurrency > 0, "concurrency must be at least 1");
    anyhow::ensure!(
        options.duration.is_some() || options.requests.is_some(),
        "give a duration or a number of requests"
    );
    let client = client(options)?;
    let started = Instant::now();
    let measure_from = started + options.warmup;
    let end = options.duration.map(|d| measure_from + d);
    // Requests still to be measured (only with a request count).
    let budget = Arc::new(AtomicI64::new(options.requests.map_or(i64::MAX, |n| i64::try_from(n).unwrap_or(i64::MAX))));
    // A set: every worker is joined below, and aborted if this function is left early.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..options.concurrency {
        let (client, options, budget) = (client.clone(), options.clone(), Arc::clone(&budget));
        tasks.spawn(async move {
            let mut samples = Samples::default();
            loop {
                let now = Instant::now();
                if end.is_some_and(|end| now >= end) {
                    break;
                }
                let measured = now >= measure_from;
                if measured && budget.fetch_sub(1, Ordering::Relaxed) <= 0 {
                    break;
                }
                let outcome = one(&client, &options, now).await;
                let elapsed = now.elapsed();
                match outcome {
                    Ok(first) => {
                        samples.ok_total += 1;
                        if measured {
                            samples.ok += 1;
                            samples.latency.push(micros(elapsed));
                            if let Some(first) = first {
                                samples.first_chunk.push(micros(first));
                            }
                        }
                    }
                    Err(kind) => {
                        if measured {
                            *samples.errors.entry(kind).or_default() += 1;
                        }
                    }
                }
            }
            samples
        });
    }
    let mut all = Samples::default();
    while let Some(task) = tasks.join_next().await {
        all.merge(task?);
    }
    let seconds = Instant::now().saturating_duration_since(measure_from).as_secs_f64().max(f64::EPSILON);
    let requests = all.ok + all.errors.values().sum::<u64>();
    Ok(Report {
        label: label.to_owned(),
        concurrency: options.concurrency,
        seconds,
        requests,
        ok: all.ok,
        ok_total: all.ok_total,
        requests_per_second: all.ok as f64 / seconds,
        latency: Latency::of(&mut all.latency),
        first_chunk: options.stream.then(|| Latency::of(&mut all.first_chunk)),
        errors: all.errors.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        stored_rows: None,
    })
}

/// Rows in ferrostack's `inference_store` table.
pub async fn count_rows(database_url: &str) -> anyhow::Result<u64> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
    let mut connection = {
        let mut set = tokio::task::JoinSet::new();
        set.spawn(connection);
        set
    };
    let row = client.query_one("SELECT count(*) FROM inference_store", &[]).await?;
    let n: i64 = row.get(0);
    drop(client);
    let _ = connection.join_next().await;
    Ok(u64::try_from(n)?)
}

/// Rows stored since `before`, waiting for the write queue to drain: polls until the count
/// reaches `expected` or stops moving for `settle`.
pub async fn stored_since(database_url: &str, before: u64, expected: u64, settle: Duration) -> anyhow::Result<u64> {
    let mut last = count_rows(database_url).await?;
    let mut unchanged_since = Instant::now();
    loop {
        let stored = last.saturating_sub(before);
        if stored >= expected || unchanged_since.elapsed() >= settle {
            return Ok(stored);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = count_rows(database_url).await?;
        if now != last {
            last = now;
            unchanged_since = Instant::now();
        }
    }
}
