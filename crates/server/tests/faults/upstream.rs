//! The upstream fails: it hangs (before answering, or mid-stream with its connection open) and it
//! dies mid-stream. A client that leaves cancels its upstream call; a cut stream is stored with
//! `finish_reason: null`, never a made-up `stop`; a hung upstream and impatient, retrying clients
//! do not pile up connections; a provider at its concurrency cap answers 503 without calling it;
//! an upstream that comes back is used again without a restart.

use std::time::{Duration, Instant};

use ferrostack_testkit::upstream::FakeUpstream;
use serde_json::{Value, json};

use crate::support::{Rig, Settings, check_refusal, report};

/// How soon a cancelled call must be seen closed by the upstream.
const CANCEL_BOUND: Duration = Duration::from_secs(3);

/// Open a streamed completion and read up to its first data event: the response (still open) and
/// the completion id the client sees.
pub async fn open_stream(http: &reqwest::Client, base: &str, model: &str) -> (reqwest::Response, String) {
    let body = json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "stream, please"}]});
    let mut res = http
        .post(format!("{base}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("open a stream: {e}"));
    assert_eq!(res.status().as_u16(), 200, "the stream opens");
    let mut text = String::new();
    loop {
        let chunk = res.chunk().await.unwrap_or_else(|e| panic!("read the stream: {e}"));
        let chunk = chunk.unwrap_or_else(|| panic!("the stream ended before its first event: {text}"));
        text.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(id) = events(&text).iter().find_map(|e| e["id"].as_str().map(str::to_owned)) {
            return (res, id);
        }
    }
}

/// The JSON data events of an SSE text.
pub fn events(text: &str) -> Vec<Value> {
    text.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).filter_map(|d| serde_json::from_str(d).ok()).collect()
}

/// Read the rest of a stream; the text and whether it broke (vs. ended).
pub async fn read_rest(mut res: reqwest::Response) -> (String, bool) {
    let mut text = String::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), res.chunk()).await {
            Ok(Ok(Some(chunk))) => text.push_str(&String::from_utf8_lossy(&chunk)),
            Ok(Ok(None)) => return (text, false),
            Ok(Err(_)) => return (text, true),
            Err(_) => panic!("the stream neither ended nor broke within 10 s after the upstream died: {text}"),
        }
    }
}

/// Wait until completion `id` is stored; its first choice.
pub async fn stored_choice(rig: &Rig, id: &str) -> Value {
    let rig_ref = rig;
    ferrostack_testkit::wait_for(&format!("completion {id} to be stored"), Duration::from_secs(10), || async move {
        rig_ref.stored_choices(id).await.map(|c| c[0].clone())
    })
    .await
}

/// A client that leaves a stream whose upstream hangs (connection open, no tokens) cancels the
/// upstream call at once, and what was produced is stored with `finish_reason: null`. The same
/// for a non-streaming call whose client times out.
pub async fn client_disconnect_cancels_the_upstream_call() {
    const TEST: &str = "upstream::client_disconnect_cancels_the_upstream_call";
    let rig = Rig::start().await;
    let server = rig.serve(&Settings::new("sync")).await;
    let http = reqwest::Client::new();

    let (res, id) = open_stream(&http, &server.base, "trickle").await;
    assert_eq!(rig.upstream.fault_calls_open(), 1, "the upstream call is open");
    let left = Instant::now();
    drop(res);
    ferrostack_testkit::wait_for("the upstream stream to be cancelled", CANCEL_BOUND, || {
        let open = rig.upstream.fault_calls_open();
        async move { (open == 0).then_some(()) }
    })
    .await;
    let stream_cancel = left.elapsed();
    let choice = stored_choice(&rig, &id).await;
    assert_eq!(choice["finish_reason"], Value::Null, "a stream the client left is stored as incomplete: {choice}");
    assert_eq!(choice["message"]["content"], "partial", "what was produced is stored: {choice}");

    // Non-streaming: the client gives up after 300 ms.
    let impatient =
        reqwest::Client::builder().timeout(Duration::from_millis(300)).build().unwrap_or_else(|e| panic!("{e}"));
    let body = json!({"model": "hang", "messages": [{"role": "user", "content": "never answered"}]});
    let started = rig.upstream.fault_calls_started();
    let res = impatient.post(format!("{}/v1/chat/completions", server.base)).json(&body).send().await;
    assert!(res.is_err_and(|e| e.is_timeout()), "the fake never answers");
    assert_eq!(rig.upstream.fault_calls_started(), started + 1, "the call reached the upstream");
    let left = Instant::now();
    ferrostack_testkit::wait_for("the upstream call to be cancelled", CANCEL_BOUND, || {
        let open = rig.upstream.fault_calls_open();
        async move { (open == 0).then_some(()) }
    })
    .await;
    report(
        TEST,
        &format!("stream_cancelled_ms={} call_cancelled_ms={}", stream_cancel.as_millis(), left.elapsed().as_millis()),
    );
}

/// The upstream dies mid-stream (its server is stopped, connections dropped): each client's
/// stream ends without `[DONE]` (an error event, or a broken stream), each completion is stored
/// with what was produced and `finish_reason: null`; the upstream comes back on the same address
/// and is used again without restarting ferrostack.
pub async fn upstream_killed_mid_stream() {
    const TEST: &str = "upstream::upstream_killed_mid_stream";
    let rig = Rig::start().await;
    let server = rig.serve(&Settings::new("sync")).await;
    let http = reqwest::Client::new();
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(open_stream(&http, &server.base, "trickle").await);
    }
    rig.upstream.stop().await;
    let mut error_events = 0;
    for (res, id) in streams {
        let (text, broke) = read_rest(res).await;
        assert!(!text.contains("[DONE]"), "a cut stream does not end with [DONE]: {text}");
        if events(&text).iter().any(|e| e["error"].is_object()) {
            error_events += 1;
        } else {
            assert!(broke, "a cut stream ends with an error event or a broken stream, not a clean end: {text}");
        }
        let choice = stored_choice(&rig, &id).await;
        assert_eq!(choice["finish_reason"], Value::Null, "a cut stream is stored as incomplete, not `stop`: {choice}");
        assert_eq!(choice["message"]["content"], "partial", "{choice}");
    }

    // The upstream comes back where it was.
    let addr: std::net::SocketAddr = rig
        .upstream
        .base_url
        .trim_start_matches("http://")
        .trim_end_matches("/v1")
        .parse()
        .unwrap_or_else(|e| panic!("the fake's address: {e}"));
    let back = FakeUpstream::start_at(addr).await;
    let body = json!({"model": "echo", "messages": [{"role": "user", "content": "are you back?"}]});
    let res = http.post(format!("{}/v1/chat/completions", server.base)).json(&body).send().await;
    let status = res.map(|r| r.status().as_u16()).unwrap_or_else(|e| panic!("{e}"));
    report(
        TEST,
        &format!("cut_streams=3 error_events={error_events} stored_with_null_finish=3 after_restart_status={status}"),
    );
    assert_eq!(status, 200, "the upstream is used again once it is back");
    assert_eq!(back.requests(), 1);
}

/// A hung upstream and clients that give up after 200 ms and retry, for 3 s: ferrostack cancels
/// each abandoned call, so upstream calls and the server's file descriptors stay bounded and
/// `/v1/health` keeps answering at once.
pub async fn hung_upstream_and_retrying_clients_do_not_pile_up() {
    const TEST: &str = "upstream::hung_upstream_and_retrying_clients_do_not_pile_up";
    const CLIENTS: usize = 16;
    let rig = Rig::start().await;
    let mut settings = Settings::new("sync");
    settings.upstream_timeout_ms = 60_000;
    let server = rig.serve(&settings).await;
    let fds_before = server.open_fds();
    let impatient =
        reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap_or_else(|e| panic!("{e}"));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let (http, base, stop) = (impatient.clone(), server.base.clone(), std::sync::Arc::clone(&stop));
            ferrostack_testkit::spawn(async move {
                let mut tries = 0_usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let body = json!({"model": "hang", "messages": [{"role": "user", "content": "hello?"}]});
                    let _ = http.post(format!("{base}/v1/chat/completions")).json(&body).send().await;
                    tries += 1;
                }
                tries
            })
        })
        .collect();
    let health = reqwest::Client::builder().timeout(Duration::from_secs(1)).build().unwrap_or_else(|e| panic!("{e}"));
    let mut peak_fds = 0;
    let mut peak_open = 0;
    let mut slowest_health = Duration::ZERO;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let started = Instant::now();
        let res = health.get(format!("{}/v1/health", server.base)).send().await;
        assert!(
            res.is_ok_and(|r| r.status().is_success()),
            "/v1/health answers within 1 s under the pile of hung calls"
        );
        slowest_health = slowest_health.max(started.elapsed());
        peak_fds = peak_fds.max(server.open_fds());
        peak_open = peak_open.max(rig.upstream.fault_calls_open());
        tokio::time::sleep(Duration::from_millis(100)).await; // sampling period, not a race
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut tries = 0;
    for c in clients {
        tries += c.await.unwrap_or(0);
    }
    let started = rig.upstream.fault_calls_started();
    ferrostack_testkit::wait_for("every abandoned upstream call to be closed", CANCEL_BOUND, || {
        let open = rig.upstream.fault_calls_open();
        async move { (open == 0).then_some(()) }
    })
    .await;
    report(
        TEST,
        &format!(
            "client_tries={tries} upstream_calls={started} peak_open_upstream_calls={peak_open} fds_before={fds_before} peak_fds={peak_fds} slowest_health_ms={}",
            slowest_health.as_millis()
        ),
    );
    // Each client has at most one live call (plus one being torn down) at any time.
    assert!(peak_open <= 2 * CLIENTS as u64, "{peak_open} upstream calls open at once for {CLIENTS} clients");
    assert!(
        peak_fds <= fds_before + 4 * CLIENTS,
        "file descriptors grew from {fds_before} to {peak_fds} for {CLIENTS} clients"
    );
}

/// A provider with `max_concurrent_requests: 2` and `queue_timeout_ms: 300`: two calls hang
/// upstream, a third is answered 503 in the error shape after the bounded wait without reaching
/// the upstream; when one client leaves, its place frees and the next call is served.
pub async fn provider_concurrency_cap_refuses_without_calling_upstream() {
    const TEST: &str = "upstream::provider_concurrency_cap_refuses_without_calling_upstream";
    let rig = Rig::start().await;
    let mut settings = Settings::new("sync");
    settings.provider_extra.push_str(", max_concurrent_requests: 2, queue_timeout_ms: 300");
    let server = rig.serve(&settings).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap_or_else(|e| panic!("{e}"));
    let hang = json!({"model": "hang", "messages": [{"role": "user", "content": "hold a place"}]});
    let holders: Vec<_> = (0..2)
        .map(|_| {
            ferrostack_testkit::spawn(http.post(format!("{}/v1/chat/completions", server.base)).json(&hang).send())
        })
        .collect();
    ferrostack_testkit::wait_for("two calls holding the provider's places", Duration::from_secs(5), || {
        let open = rig.upstream.fault_calls_open();
        async move { (open == 2).then_some(()) }
    })
    .await;
    let calls_before = rig.upstream.requests();
    let started = Instant::now();
    let echo = json!({"model": "echo", "messages": [{"role": "user", "content": "any room?"}]});
    let res = http
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&echo)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let took = started.elapsed();
    let status = res.status().as_u16();
    let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: Value = res.json().await.unwrap_or_default();
    check_refusal(status, retry.as_deref(), &body).unwrap_or_else(|e| panic!("a call over the cap: {e}"));
    assert_eq!(rig.upstream.requests(), calls_before, "a refused call never reaches the upstream");
    assert!(
        took >= Duration::from_millis(250) && took <= Duration::from_secs(3),
        "refused after the bounded wait (300 ms), took {took:?}"
    );

    // One holder leaves: its upstream call is cancelled and its place is free again.
    for h in &holders[..1] {
        h.abort();
    }
    ferrostack_testkit::wait_for("the left call to be cancelled upstream", CANCEL_BOUND, || {
        let open = rig.upstream.fault_calls_open();
        async move { (open == 1).then_some(()) }
    })
    .await;
    let res = http
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&echo)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let after = res.status().as_u16();
    report(TEST, &format!("cap=2 refused_503_after_ms={} served_after_a_place_freed={after}", took.as_millis()));
    assert_eq!(after, 200, "a freed place serves the next call");
    for h in holders {
        h.abort();
    }
}

/// The instrument the cancellation tests rely on: the fake counts a `fault-hang` call and a
/// `fault-trickle` stream as dropped as soon as its caller closes the connection (here a plain
/// HTTP client, no ferrostack in between).
pub async fn fake_upstream_sees_a_caller_leave() {
    let fake = FakeUpstream::start().await;
    let impatient =
        reqwest::Client::builder().timeout(Duration::from_millis(200)).build().unwrap_or_else(|e| panic!("{e}"));
    let body = json!({"model": "fault-hang", "messages": [{"role": "user", "content": "x"}]});
    let res = impatient.post(format!("{}/chat/completions", fake.fault_url())).json(&body).send().await;
    // The head comes at once, the body never.
    let body = match res {
        Ok(res) => res.bytes().await,
        Err(e) => Err(e),
    };
    assert!(body.is_err_and(|e| e.is_timeout()), "the body never comes");
    assert_eq!(fake.fault_calls_started(), 1);
    ferrostack_testkit::wait_for("the fake to see the hung call's caller leave", CANCEL_BOUND, || {
        let open = fake.fault_calls_open();
        async move { (open == 0).then_some(()) }
    })
    .await;

    let body = json!({"model": "fault-trickle", "stream": true, "messages": [{"role": "user", "content": "x"}]});
    let mut res = reqwest::Client::new()
        .post(format!("{}/chat/completions", fake.fault_url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let first = res.chunk().await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_default();
    assert!(String::from_utf8_lossy(&first).contains("partial"), "{first:?}");
    assert_eq!(fake.fault_calls_open(), 1);
    drop(res);
    ferrostack_testkit::wait_for("the fake to see the stream's caller leave", CANCEL_BOUND, || {
        let open = fake.fault_calls_open();
        async move { (open == 0).then_some(()) }
    })
    .await;
    assert_eq!(fake.fault_calls_dropped(), 2);
}
