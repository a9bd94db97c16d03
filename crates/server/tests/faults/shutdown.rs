//! The server is stopped under load: SIGTERM (in both durability modes, with a healthy and with a
//! hung upstream, with the database down) and SIGKILL. Every acknowledged completion is stored,
//! except after SIGKILL in async mode, where the loss is at most the queue and is reported; the
//! process exits within `shutdown_timeout_seconds + drain_timeout_seconds`; clients get answers,
//! not resets.

use std::time::Duration;

use ferrostack_testkit::cluster::StopMode;
use serde_json::json;

use crate::support::{Load, LoadSpec, Rig, Server, Settings, check_refusal, report};

/// What the exit time may exceed the documented bound by: signal delivery, process teardown and
/// this test's 5 ms polling, on a loaded machine. Far below a second of the bound itself.
const EXIT_SLACK: Duration = Duration::from_millis(500);

/// SIGTERM while clients keep sending creates (each upstream answer takes 150 ms, so requests are
/// in flight at the signal): exit 0 within the bound, every 2xx stored, no reset, every refusal a
/// 503 in shape (a request on an open connection after the signal) or a refused connection.
async fn sigterm_under_load(test: &str, durability: &'static str) {
    let rig = Rig::start().await;
    let settings = Settings::new(durability);
    let mut server = rig.serve(&settings).await;
    let load = Load::start(&server.base, LoadSpec::new(8, "slow", durability));
    load.wait_acked(30, Duration::from_secs(20)).await;
    server.sigterm();
    let exit = server.exit_within(settings.shutdown_bound() + Duration::from_secs(10)).await;
    let tally = load.stop().await;
    let missing = rig.missing_after(&tally.acked, Duration::ZERO).await;
    let Some((status, took)) = exit else {
        panic!(
            "{test}: still running {:?} after SIGTERM:\n{}",
            settings.shutdown_bound() + Duration::from_secs(10),
            server.tail(40)
        );
    };
    report(
        test,
        &format!(
            "{} stored={} missing={} exit_ms={} bound_ms={} exit={status}",
            tally.summary(),
            tally.acked.len() - missing.len(),
            missing.len(),
            took.as_millis(),
            settings.shutdown_bound().as_millis()
        ),
    );
    assert!(status.success(), "{test}: SIGTERM ends with exit 0, not {status}:\n{}", server.tail(40));
    assert!(
        took <= settings.shutdown_bound() + EXIT_SLACK,
        "{test}: exit took {took:?}, bound {:?}",
        settings.shutdown_bound()
    );
    assert!(
        missing.is_empty(),
        "{test}: {} acknowledged completions not stored: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    // Requests that cross the signal on a kept-alive connection are the case of their own test;
    // while it is pending, the resets seen here are reported, not asserted.
    match crate::pending(OPEN_CONNECTIONS) {
        Some(why) => {
            assert!(
                tally.wrong.is_empty(),
                "{test}: answers other than 2xx or a 503 in the error shape: {:#?}",
                tally.wrong
            );
            report(
                test,
                &format!("KNOWN GAP ({OPEN_CONNECTIONS} pending: {why}): requests reset: {:?}", tally.no_answer),
            );
        }
        None => tally.assert_honest(test),
    }
}

/// The test that owns "a request on an open connection after SIGTERM is answered 503 with
/// `Connection: close`, never reset".
const OPEN_CONNECTIONS: &str = "shutdown::sigterm_open_connections_get_503_and_close";

pub async fn sigterm_sync() {
    sigterm_under_load("shutdown::sigterm_under_load_sync", "sync").await;
}

pub async fn sigterm_async() {
    sigterm_under_load("shutdown::sigterm_under_load_async", "async").await;
}

/// SIGKILL under load, then a new server on the same database: sync loses nothing; async loses at
/// most the queue (`max_write_queue_size`), and the test reports how many.
async fn sigkill_under_load(test: &str, durability: &'static str) {
    let rig = Rig::start().await;
    let settings = Settings::new(durability);
    let mut server = rig.serve(&settings).await;
    let mut spec = LoadSpec::new(8, "echo", durability);
    spec.timeout = Duration::from_secs(5);
    let load = Load::start(&server.base, spec);
    load.wait_acked(100, Duration::from_secs(20)).await;
    server.sigkill();
    let exit = server.exit_within(Duration::from_secs(5)).await;
    let tally = load.stop().await;
    assert!(exit.is_some(), "{test}: SIGKILL ends the process");
    drop(server);

    // A new process on the same database serves, and shows what survived.
    let server = rig.serve(&settings).await;
    let missing = rig.missing_after(&tally.acked, Duration::ZERO).await;
    report(
        test,
        &format!(
            "acked={} stored={} lost={} queue={} (requests cut by the kill: {})",
            tally.acked.len(),
            tally.acked.len() - missing.len(),
            missing.len(),
            settings.queue,
            tally.no_answer.len()
        ),
    );
    if durability == "sync" {
        assert!(
            missing.is_empty(),
            "{test}: sync lost {} acknowledged completions to SIGKILL: {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
    } else {
        assert!(
            missing.len() <= settings.queue,
            "{test}: async lost {} rows, more than the queue ({})",
            missing.len(),
            settings.queue
        );
    }
    let res = reqwest::Client::new()
        .post(format!("{}/v1/chat/completions", server.base))
        .json(&json!({"model": "echo", "messages": [{"role": "user", "content": "after the kill"}]}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status().as_u16(), 200, "{test}: the new process serves");
}

pub async fn sigkill_sync() {
    sigkill_under_load("shutdown::sigkill_under_load_sync", "sync").await;
}

pub async fn sigkill_async() {
    sigkill_under_load("shutdown::sigkill_under_load_async", "async").await;
}

/// The worst case of the shutdown bound, async mode: the database is down (rows wait in the
/// queue) and clients wait on an upstream that never answers. SIGTERM: the hung clients get an
/// answer (a 503 in shape, not a reset) once `shutdown_timeout_seconds` passed, the queue cannot
/// drain within `drain_timeout_seconds`, and the process exits 0 within the sum. The unwritten
/// rows are spilled to a local file, and the next start replays them *before serving*: once the
/// new process listens, every acknowledged completion is a row.
pub async fn sigterm_database_down_hung_upstream_spills_and_replays() {
    const SPILLED: usize = 150;
    const TEST: &str = "shutdown::sigterm_database_down_hung_upstream_spills_and_replays";
    let rig = Rig::start().await;
    let settings = Settings::new("async");
    let mut server = rig.serve(&settings).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_else(|e| panic!("{e}"));
    let create = |model: &str, n: usize| {
        let body = json!({"model": model, "messages": [{"role": "user", "content": format!("spill {n}")}]});
        http.post(format!("{}/v1/chat/completions", server.base)).json(&body)
    };
    rig.stop_db(StopMode::Fast).await;
    // 150 rows acknowledged while the database is down (8 clients at a time; the queue holds 200).
    let mut acked = Vec::new();
    for batch in 0..(SPILLED / 8 + 1) {
        let sends: Vec<_> = (batch * 8..((batch + 1) * 8).min(SPILLED))
            .map(|n| (n, ferrostack_testkit::spawn(create("echo", n).send())))
            .collect();
        for (n, send) in sends {
            let res = send.await.unwrap_or_else(|e| panic!("{e}")).unwrap_or_else(|e| panic!("create {n}: {e}"));
            let status = res.status().as_u16();
            let body: serde_json::Value = res.json().await.unwrap_or_default();
            assert_eq!(status, 200, "async create {n} with room in the queue and the database down: {body}");
            acked.push(body["id"].as_str().unwrap_or_else(|| panic!("no id: {body}")).to_owned());
        }
    }
    // Clients on a hung upstream, in flight at the signal.
    let hung: Vec<_> = (0..3).map(|n| ferrostack_testkit::spawn(create("hang", 1000 + n).send())).collect();
    ferrostack_testkit::wait_for("the hung calls to reach the upstream", Duration::from_secs(10), || {
        let open = rig.upstream.fault_calls_open();
        async move { (open >= 3).then_some(()) }
    })
    .await;
    server.sigterm();
    let exit = server.exit_within(settings.shutdown_bound() + Duration::from_secs(30)).await;
    let mut hung_answers = Vec::new();
    for h in hung {
        hung_answers.push(match h.await {
            Ok(Ok(res)) => {
                let status = res.status().as_u16();
                let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                check_refusal(status, retry.as_deref(), &body)
            }
            Ok(Err(e)) => Err(format!("no answer: {e:?}")),
            Err(e) => Err(format!("client task: {e}")),
        });
    }
    let Some((status, took)) = exit else {
        panic!(
            "{TEST}: still running {:?} after SIGTERM:\n{}",
            settings.shutdown_bound() + Duration::from_secs(30),
            server.tail(40)
        );
    };
    let log = server.tail(40);
    drop(server);
    report(
        TEST,
        &format!(
            "acked_while_db_down={} exit_ms={} bound_ms={} exit={status} hung_clients_answered_503={}/{}",
            acked.len(),
            took.as_millis(),
            settings.shutdown_bound().as_millis(),
            hung_answers.iter().filter(|a| a.is_ok()).count(),
            hung_answers.len()
        ),
    );
    assert!(status.success(), "{TEST}: exit 0, not {status}:\n{log}");
    assert!(
        took <= settings.shutdown_bound() + EXIT_SLACK,
        "{TEST}: exit took {took:?}, bound {:?}:\n{log}",
        settings.shutdown_bound()
    );
    for (n, a) in hung_answers.iter().enumerate() {
        assert!(
            a.is_ok(),
            "{TEST}: hung client {n} at shutdown: {}",
            a.as_ref().err().map(String::as_str).unwrap_or_default()
        );
    }

    // The unwritten rows are in a JSON-lines spill file under the home directory, one per row.
    let spilled_lines = spill_lines(rig.home.path());
    report(TEST, &format!("spill_file_lines={spilled_lines}"));
    assert_eq!(spilled_lines, acked.len(), "{TEST}: every unwritten row is spilled, once");

    // The next start replays the spill before it serves.
    rig.start_db().await;
    let server = Server::start(&rig.config(&settings), rig.home.path()).await;
    let missing = rig.missing_after(&acked, Duration::ZERO).await;
    let left_over = spill_lines(rig.home.path());
    report(
        TEST,
        &format!(
            "replayed_at_start={} missing={} spill_lines_after_replay={left_over}",
            acked.len() - missing.len(),
            missing.len()
        ),
    );
    assert_eq!(left_over, 0, "{TEST}: a replayed spill file is not left to be replayed again");
    assert!(
        missing.is_empty(),
        "{TEST}: {} of {} rows acknowledged before a SIGTERM with the database down are not stored once the next process serves: {missing:?}\n{}",
        missing.len(),
        acked.len(),
        server.tail(40)
    );
}

/// Lines of the `*.jsonl` files under `dir` (the spill files).
fn spill_lines(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                spill_lines(&path)
            } else if path.extension().is_some_and(|x| x == "jsonl") {
                std::fs::read_to_string(&path).map(|t| t.lines().filter(|l| !l.trim().is_empty()).count()).unwrap_or(0)
            } else {
                0
            }
        })
        .sum()
}

/// One HTTP/1.1 exchange on an open keep-alive connection: the status, the headers (lower-case
/// names) and the body. Reads the head, then `content-length` bytes (or to the end when absent).
async fn exchange(
    stream: &mut tokio::net::TcpStream,
    request: &str,
) -> Result<(u16, Vec<(String, String)>, serde_json::Value), String> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0_u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read: {e} (got {buf:?})"))?;
        if n == 0 {
            return Err(format!("the connection closed without an answer (got {:?})", String::from_utf8_lossy(&buf)));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or(format!("no status line: {head}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse::<usize>().ok());
    let mut body = buf[head_end..].to_vec();
    loop {
        if length.is_some_and(|l| body.len() >= l) {
            break;
        }
        let n = stream.read(&mut chunk).await.map_err(|e| format!("read the body: {e}"))?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Ok((status, headers, serde_json::from_slice(&body).unwrap_or_default()))
}

fn post_request(addr: &str, body: &serde_json::Value) -> String {
    let body = body.to_string();
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// The shutdown order on open connections: SIGTERM while one request is in flight (a 1.5 s
/// upstream answer) and another keep-alive connection is idle. The in-flight request finishes
/// with a 200 whose row is stored; a request sent on the idle connection after the signal is
/// answered 503 in the error shape with `Connection: close` (not reset); new connections are
/// refused; the process exits 0 within the bound.
pub async fn sigterm_open_connections_get_503_and_close() {
    const TEST: &str = "shutdown::sigterm_open_connections_get_503_and_close";
    let rig = Rig::start().await;
    let settings = Settings::new("sync");
    let mut server = rig.serve(&settings).await;
    let addr = server.base.trim_start_matches("http://").to_owned();
    rig.upstream.set_fault_delay(Duration::from_millis(1500));

    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connect: {e}"));
    let health = format!("GET /v1/health HTTP/1.1\r\nhost: {addr}\r\n\r\n");
    let (status, _, _) = exchange(&mut idle, &health).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "the idle connection is open and kept alive");

    let slow = json!({"model": "slow", "messages": [{"role": "user", "content": "in flight at SIGTERM"}]});
    let (in_flight_req, in_flight_addr) = (post_request(&addr, &slow), addr.clone());
    let in_flight = ferrostack_testkit::spawn(async move {
        let mut conn = tokio::net::TcpStream::connect(&in_flight_addr).await.map_err(|e| format!("connect: {e}"))?;
        exchange(&mut conn, &in_flight_req).await
    });
    ferrostack_testkit::wait_for("the slow call to reach the upstream", Duration::from_secs(5), || {
        let n = rig.upstream.seen().iter().filter(|s| s.body["model"] == "fault-slow").count();
        async move { (n == 1).then_some(()) }
    })
    .await;
    server.sigterm();
    ferrostack_testkit::wait_for("the server to begin its shutdown", Duration::from_secs(5), || {
        let began = server.text().contains("shutting down");
        async move { began.then_some(()) }
    })
    .await;

    // A request on the idle connection after the signal.
    let echo = json!({"model": "echo", "messages": [{"role": "user", "content": "after SIGTERM"}]});
    let late = exchange(&mut idle, &post_request(&addr, &echo)).await;
    // A new connection.
    let refused = tokio::net::TcpStream::connect(&addr).await.is_err();
    let in_flight = in_flight.await.unwrap_or_else(|e| panic!("{e}"));
    let exit = server.exit_within(settings.shutdown_bound() + Duration::from_secs(10)).await;
    let (status, took) = exit.unwrap_or_else(|| panic!("{TEST}: still running after SIGTERM:\n{}", server.tail(40)));
    report(
        TEST,
        &format!(
            "late_request={} new_connection_refused={refused} in_flight={} exit_ms={} bound_ms={}",
            late.as_ref()
                .map(|(s, h, _)| format!(
                    "{s} connection={:?}",
                    h.iter().find(|(k, _)| k == "connection").map(|(_, v)| v)
                ))
                .unwrap_or_else(|e| e.clone()),
            in_flight.as_ref().map(|(s, _, _)| s.to_string()).unwrap_or_else(|e| e.clone()),
            took.as_millis(),
            settings.shutdown_bound().as_millis()
        ),
    );
    let (late_status, late_headers, late_body) =
        late.unwrap_or_else(|e| panic!("{TEST}: a request on an open connection after SIGTERM: {e}"));
    let retry = late_headers.iter().find(|(k, _)| k == "retry-after").map(|(_, v)| v.as_str());
    check_refusal(late_status, retry, &late_body).unwrap_or_else(|e| panic!("{TEST}: the late request: {e}"));
    assert!(
        late_headers.iter().any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close")),
        "{TEST}: the refusal closes the connection: {late_headers:?}"
    );
    assert!(refused, "{TEST}: new connections are refused once shutdown began");
    let (in_status, _, in_body) = in_flight.unwrap_or_else(|e| panic!("{TEST}: the in-flight request: {e}"));
    assert_eq!(in_status, 200, "{TEST}: the in-flight request finishes: {in_body}");
    let id = in_body["id"].as_str().unwrap_or_else(|| panic!("no id: {in_body}")).to_owned();
    assert!(rig.missing_after(&[id], Duration::ZERO).await.is_empty(), "{TEST}: the in-flight 2xx is stored");
    assert!(status.success(), "{TEST}: exit 0, not {status}");
    assert!(
        took <= settings.shutdown_bound() + EXIT_SLACK,
        "{TEST}: exit took {took:?}, bound {:?}",
        settings.shutdown_bound()
    );
}

/// SIGTERM while a client reads a stream whose upstream hangs mid-way (connection open, no
/// tokens): at the end of `shutdown_timeout_seconds` the stream is ended for the client (no
/// `[DONE]`), the upstream call is closed, what was produced is stored as incomplete
/// (`finish_reason: null`), and the process exits 0 within the bound.
pub async fn sigterm_with_a_stream_hung_midway() {
    const TEST: &str = "shutdown::sigterm_with_a_stream_hung_midway";
    let rig = Rig::start().await;
    let settings = Settings::new("sync");
    let mut server = rig.serve(&settings).await;
    let http = reqwest::Client::new();
    let (res, id) = crate::upstream::open_stream(&http, &server.base, "trickle").await;
    server.sigterm();
    let (text, broke) = crate::upstream::read_rest(res).await;
    let exit = server.exit_within(settings.shutdown_bound() + Duration::from_secs(10)).await;
    let (status, took) = exit.unwrap_or_else(|| panic!("{TEST}: still running after SIGTERM:\n{}", server.tail(40)));
    let choice = rig.stored_choices(&id).await.map(|c| c[0].clone());
    let upstream_open = rig.upstream.fault_calls_open();
    report(
        TEST,
        &format!(
            "exit_ms={} bound_ms={} stream_broke={broke} done_sent={} stored_finish_reason={} upstream_calls_open_after_exit={upstream_open}",
            took.as_millis(),
            settings.shutdown_bound().as_millis(),
            text.contains("[DONE]"),
            choice.as_ref().map(|c| c["finish_reason"].to_string()).unwrap_or_else(|| "not stored".to_owned())
        ),
    );
    assert!(status.success(), "{TEST}: exit 0, not {status}:\n{}", server.tail(40));
    assert!(
        took <= settings.shutdown_bound() + EXIT_SLACK,
        "{TEST}: exit took {took:?}, bound {:?}",
        settings.shutdown_bound()
    );
    assert!(!text.contains("[DONE]"), "{TEST}: a stream cut by the shutdown does not end with [DONE]: {text}");
    let choice = choice.unwrap_or_else(|| panic!("{TEST}: the cut stream {id} is not stored:\n{}", server.tail(40)));
    assert_eq!(choice["message"]["content"], "partial", "{TEST}: what was produced is stored: {choice}");
    assert_eq!(choice["finish_reason"], serde_json::Value::Null, "{TEST}: stored as incomplete, not `stop`: {choice}");
    ferrostack_testkit::wait_for("the upstream call to be closed", Duration::from_secs(3), || {
        let open = rig.upstream.fault_calls_open();
        async move { (open == 0).then_some(()) }
    })
    .await;
}
