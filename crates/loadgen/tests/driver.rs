//! The load driver: percentile math, stream checks, error classification, and short runs against
//! the mock upstream on a loopback port. No timing assertions.
#![expect(clippy::unwrap_used, reason = "test helpers outside #[test] functions")]

use std::time::{Duration, Instant};

use ferrostack_loadgen::{ErrorKind, Latency, Options, Report, StreamCheck, chat_body, client, one, percentile, run};
use ferrostack_mock_upstream::{Config, bind};

async fn mock(config: Config) -> String {
    let (server, addrs) = bind(config).unwrap();
    ferrostack_testkit::spawn(server);
    format!("http://{}", addrs[0])
}

fn options(url: String) -> Options {
    Options {
        url,
        body: Some(chat_body("m", false)),
        stream: false,
        token: None,
        concurrency: 4,
        duration: None,
        requests: Some(40),
        warmup: Duration::ZERO,
        timeout: Duration::from_secs(10),
    }
}

#[test]
fn percentiles_by_nearest_rank() {
    let sorted: Vec<u32> = (1..=100).collect();
    assert_eq!(percentile(&sorted, 50.0), 50);
    assert_eq!(percentile(&sorted, 90.0), 90);
    assert_eq!(percentile(&sorted, 99.0), 99);
    assert_eq!(percentile(&sorted, 100.0), 100);
    assert_eq!(percentile(&sorted, 0.0), 1);
    assert_eq!(percentile(&[7], 99.0), 7);
    assert_eq!(percentile(&[], 50.0), 0);
    // 10 samples: p99 is the largest, p50 the 5th.
    let ten = [1, 2, 3, 4, 5, 6, 7, 8, 9, 1000];
    assert_eq!(percentile(&ten, 99.0), 1000);
    assert_eq!(percentile(&ten, 50.0), 5);
    assert_eq!(percentile(&ten, 90.0), 9);
}

#[test]
fn latency_summary_sorts_and_converts_to_ms() {
    let mut samples = vec![3000, 1000, 2000, 4000];
    let l = Latency::of(&mut samples);
    assert_eq!(samples, [1000, 2000, 3000, 4000]);
    assert_eq!((l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms, l.mean_ms), (2.0, 4.0, 4.0, 4.0, 2.5));
    assert_eq!(Latency::of(&mut []), Latency::default());
}

#[test]
fn stream_check_needs_done_and_no_error_event() {
    let mut ok = StreamCheck::default();
    for chunk in ["data: {\"id\":\"a\"}\n\n", "data: [DO", "NE]\n\n"] {
        ok.feed(chunk.as_bytes());
    }
    assert_eq!(ok.finish(), Ok(()));

    let mut cut = StreamCheck::default();
    cut.feed(b"data: {\"id\":\"a\"}\n\n");
    assert_eq!(cut.finish(), Err(ErrorKind::StreamIncomplete));

    // An error event split across two chunks is still seen.
    let mut failed = StreamCheck::default();
    failed.feed(b"data: {\"id\":\"a\"}\n\ndata: {\"er");
    failed.feed(b"ror\": {\"message\": \"upstream died\"}}\n\n");
    assert_eq!(failed.finish(), Err(ErrorKind::StreamErrorEvent));

    assert_eq!(StreamCheck::default().finish(), Err(ErrorKind::StreamIncomplete));
}

#[test]
fn stream_check_of_responses_streams() {
    // A Responses stream has no [DONE]: it ends with response.completed, seen across chunks.
    let mut ok = StreamCheck::default();
    for chunk in
        ["event: response.created\ndata: {}\n\n", "event: response.comp", "leted\ndata: {\"response\": {}}\n\n"]
    {
        ok.feed(chunk.as_bytes());
    }
    assert_eq!(ok.finish(), Ok(()));
    let mut failed = StreamCheck::default();
    failed.feed(b"event: response.created\ndata: {}\n\nevent: response.failed\ndata: {}\n\n");
    assert_eq!(failed.finish(), Err(ErrorKind::StreamErrorEvent));
}

#[test]
fn error_kinds_have_stable_names() {
    let names: Vec<String> = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Status(503),
        ErrorKind::Body,
        ErrorKind::InvalidJson,
        ErrorKind::StreamErrorEvent,
        ErrorKind::StreamIncomplete,
        ErrorKind::Other,
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        names,
        ["connect", "timeout", "http_503", "body", "invalid_json", "stream_error_event", "stream_incomplete", "other"]
    );
}

#[tokio::test]
async fn counts_every_request_against_the_mock() {
    let base = mock(Config::default()).await;
    let report = run("mock", &options(format!("{base}/v1/chat/completions"))).await.unwrap();
    assert_eq!(report.requests, 40);
    assert_eq!(report.ok, 40);
    assert_eq!(report.ok_total, 40);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert!(report.requests_per_second > 0.0);
    assert!(report.latency.p50_ms <= report.latency.p99_ms && report.latency.p99_ms <= report.latency.max_ms);
    assert!(report.first_chunk.is_none());
    let row = report.markdown_row();
    assert!(row.starts_with("| mock | 4 |"), "{row}");
    assert_eq!(row.matches('|').count(), Report::markdown_header().lines().next().unwrap().matches('|').count());
}

#[tokio::test]
async fn times_the_first_chunk_of_streams() {
    let base = mock(Config { words: 5, chunk_delay_ms: 1.0, ..Config::default() }).await;
    let mut o = options(format!("{base}/v1/chat/completions"));
    o.body = Some(chat_body("m", true));
    o.stream = true;
    o.requests = Some(8);
    let report = run("stream", &o).await.unwrap();
    assert_eq!(report.ok, 8, "{:?}", report.errors);
    let first = report.first_chunk.unwrap();
    assert!(first.max_ms <= report.latency.max_ms);
}

#[tokio::test]
async fn a_duration_run_stops() {
    let base = mock(Config::default()).await;
    let mut o = options(format!("{base}/v1/chat/completions"));
    o.requests = None;
    o.duration = Some(Duration::from_millis(200));
    o.warmup = Duration::from_millis(50);
    let report = run("timed", &o).await.unwrap();
    assert!(report.ok > 0);
    assert!(report.ok_total >= report.ok, "warm-up answers are counted in ok_total only");
}

#[tokio::test]
async fn classifies_errors() {
    let base = mock(Config { latency_ms: 300.0, ..Config::default() }).await;
    let c = |o: &Options| client(o).unwrap();

    // A status: no such route on the mock.
    let o = options(format!("{base}/v1/nope"));
    assert_eq!(one(&c(&o), &o, Instant::now()).await, Err(ErrorKind::Status(404)));

    // A body that is not JSON: GET /health is JSON, but a 2xx non-JSON answer is needed; the
    // stream endpoint read as JSON gives one.
    let mut o = options(format!("{base}/v1/chat/completions"));
    o.body = Some(chat_body("m", true));
    assert_eq!(one(&c(&o), &o, Instant::now()).await, Err(ErrorKind::InvalidJson));

    // A JSON answer read as a stream has no [DONE].
    let mut o = options(format!("{base}/v1/chat/completions"));
    o.stream = true;
    assert_eq!(one(&c(&o), &o, Instant::now()).await, Err(ErrorKind::StreamIncomplete));

    // Timeout: the mock waits 300 ms before answering.
    let mut o = options(format!("{base}/v1/chat/completions"));
    o.timeout = Duration::from_millis(20);
    assert_eq!(one(&c(&o), &o, Instant::now()).await, Err(ErrorKind::Timeout));

    // Connection refused: a port that was just free.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let o = options(format!("http://127.0.0.1:{port}/v1/chat/completions"));
    assert_eq!(one(&c(&o), &o, Instant::now()).await, Err(ErrorKind::Connect));

    // Errors are reported by kind in a run.
    let mut o = options(format!("{base}/v1/nope"));
    o.requests = Some(5);
    let report = run("errors", &o).await.unwrap();
    assert_eq!(report.ok, 0);
    assert_eq!(report.errors.get("http_404"), Some(&5));
}
