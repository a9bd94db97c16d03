//! The database fails under load: a fast stop and a restart, a crash (immediate stop) and a
//! restart, a freeze (SIGSTOP of every server process). ferrostack answers every request with a
//! 2xx or a 503 in the error shape within a bounded time, stores every acknowledged completion,
//! and serves again without a restart once the database is back.

use std::time::{Duration, Instant};

use ferrostack_testkit::cluster::StopMode;
use serde_json::json;

use crate::support::{Load, LoadSpec, Rig, Settings, check_refusal, readyz, report, wait_readyz};

/// Longest any answer may take while the database is down or frozen: the suite's bounded waits
/// (pool 500 ms, connect 1 s, statement 1 s, queue place 1 s, sync commit 1.5 s; see `Settings`)
/// with room for a loaded 2-core machine (alone, the slowest is 1.0-2.1 s; with two tests and
/// other builds sharing the 2 cores, up to 4.6 s was seen). Shorter than [`OUTAGE`], so a request
/// that waits for the whole outage fails the test (the issue saw 30 s and more).
const ANSWER_BOUND: Duration = Duration::from_secs(5);

/// How soon after the database is back the work resumes (sync: a 2xx create; async: every row
/// acknowledged during the outage written): the writer wakes on a successful ping within a
/// second; the rest is room for a loaded machine. A writer that only retries on its backoff timer
/// (up to 5 s) misses it.
const RECOVERY_BOUND: Duration = Duration::from_secs(2);

/// How long the database stays down or frozen: longer than every bounded wait, so requests meet
/// the fault and a wait that lasts as long as the fault shows.
const OUTAGE: Duration = Duration::from_secs(6);

/// The test that owns "a read in flight when the database freezes is answered in bounded time".
const FROZEN_READS: &str = "database::reads_on_a_frozen_database_are_bounded";

#[derive(Debug, Clone, Copy)]
enum Fault {
    Stop(StopMode),
    Freeze,
}

/// Run a load, inflict `fault` for [`OUTAGE`], end it, and check everything the issue asks.
async fn outage_under_load(test: &str, durability: &'static str, fault: Fault) {
    let rig = Rig::start().await;
    let settings = Settings::new(durability);
    let server = rig.serve(&settings).await;
    let load = Load::start(&server.base, LoadSpec::new(6, "echo", durability));
    load.wait_acked(20, Duration::from_secs(20)).await;

    let before = load.tally();
    match fault {
        Fault::Stop(mode) => rig.stop_db(mode).await,
        Fault::Freeze => rig.cluster.freeze().unwrap_or_else(|e| panic!("{e}")),
    }
    let down_at = Instant::now();
    // /readyz tells the truth while the database is away, within a bounded time.
    let readyz_ms = wait_readyz(&server.base, 503, Some("database_unavailable"), OUTAGE).await;
    let remaining = OUTAGE.saturating_sub(down_at.elapsed());
    tokio::time::sleep(remaining).await; // the outage itself: a fixed fault length, not a race
    let during = load.tally();
    match fault {
        Fault::Stop(_) => rig.start_db().await,
        Fault::Freeze => rig.cluster.thaw(),
    }
    let back = Instant::now();
    load.mark();
    let recovered = if durability == "sync" {
        // A create is answered once its row committed: the first 2xx says the writer is back.
        ferrostack_testkit::wait_for("a 2xx create after the database is back", Duration::from_secs(20), || {
            let t = load.tally();
            async move { t.first_ok_after_mark }
        })
        .await
    } else {
        // Async creates are answered while the queue has room: the writer is back when every
        // row acknowledged until now is written.
        let queued = load.tally().acked;
        let missing = rig.missing_after(&queued, Duration::from_secs(20)).await;
        assert!(
            missing.is_empty(),
            "{test}: {} rows acknowledged during the outage not written 20 s after it",
            missing.len()
        );
        back.elapsed()
    };
    wait_readyz(&server.base, 200, None, Duration::from_secs(10)).await;
    load.wait_acked(20, Duration::from_secs(20)).await;
    let tally = load.stop().await;

    // Every acknowledged completion is stored, by exact id (async: once the queue drained).
    let missing = rig.missing_after(&tally.acked, Duration::from_secs(15)).await;
    let refused_during = during.refusals - before.refusals;
    report(
        test,
        &format!(
            "{} stored={} missing={} refusals_during_outage={} recovery_ms={} outage_ms={} readyz_503_after_ms={}",
            tally.summary(),
            tally.acked.len() - missing.len(),
            missing.len(),
            refused_during,
            recovered.as_millis(),
            OUTAGE.as_millis(),
            readyz_ms.as_millis()
        ),
    );
    assert!(
        missing.is_empty(),
        "{test}: {} acknowledged completions are not stored: {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    if !tally.wrong.is_empty() || !tally.no_answer.is_empty() {
        let log = server.text();
        let notable: Vec<&str> =
            log.lines().filter(|l| l.contains("ERROR") || l.contains("upstream")).take(20).collect();
        eprintln!("{test}: server log, errors and upstream lines:\n{}", notable.join("\n"));
    }
    tally.assert_honest(test);
    assert!(
        tally.slowest_create <= ANSWER_BOUND,
        "{test}: a create took {:?} (bound {ANSWER_BOUND:?}): waits must be bounded (slowest answer: {})",
        tally.slowest_create,
        tally.slowest_what
    );
    // A read that sent its statement just before a freeze is the case of its own test; while that
    // test is pending, the slowest read here is reported, not asserted.
    match (fault, crate::pending(FROZEN_READS)) {
        (Fault::Freeze, Some(why)) => {
            report(test, &format!("KNOWN GAP ({FROZEN_READS} pending: {why}): slowest read {:?}", tally.slowest_read))
        }
        _ => assert!(
            tally.slowest_read <= ANSWER_BOUND,
            "{test}: a read took {:?} (bound {ANSWER_BOUND:?}): waits must be bounded (slowest answer: {})",
            tally.slowest_read,
            tally.slowest_what
        ),
    }
    assert!(
        recovered <= RECOVERY_BOUND,
        "{test}: creates answered 2xx again only {recovered:?} after the database was back (bound {RECOVERY_BOUND:?})"
    );
    assert!(!server.text().contains("panicked"), "{test}: no panic:\n{}", server.tail(40));
}

pub async fn fast_restart_sync() {
    outage_under_load("database::fast_restart_under_load_sync", "sync", Fault::Stop(StopMode::Fast)).await;
}

pub async fn fast_restart_async() {
    outage_under_load("database::fast_restart_under_load_async", "async", Fault::Stop(StopMode::Fast)).await;
}

pub async fn crash_restart_sync() {
    outage_under_load("database::crash_restart_under_load_sync", "sync", Fault::Stop(StopMode::Immediate)).await;
}

pub async fn crash_restart_async() {
    outage_under_load("database::crash_restart_under_load_async", "async", Fault::Stop(StopMode::Immediate)).await;
}

pub async fn freeze_sync() {
    outage_under_load("database::freeze_under_load_sync", "sync", Fault::Freeze).await;
}

pub async fn freeze_async() {
    outage_under_load("database::freeze_under_load_async", "async", Fault::Freeze).await;
}

/// With the database down: reads, updates and deletes answer 503 with `Retry-After` in the error
/// shape within the pool's wait; an async create takes a queue place (2xx) while there is one, and
/// once the queue is full the next create is refused with a 503 *without calling the upstream*;
/// /readyz says not ready. When the database is back, every acknowledged row is written without
/// a restart.
pub async fn down_refuses_honestly_and_full_queue_never_calls_upstream() {
    const TEST: &str = "database::down_refuses_honestly_and_full_queue_never_calls_upstream";
    let rig = Rig::start().await;
    let mut settings = Settings::new("async");
    settings.queue = 5;
    let server = rig.serve(&settings).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_else(|e| panic!("{e}"));
    let create = |n: usize| {
        let body = json!({"model": "echo", "messages": [{"role": "user", "content": format!("queued {n}")}]});
        http.post(format!("{}/v1/chat/completions", server.base)).json(&body)
    };
    // One stored row to read, update and delete while the database is down.
    let res = create(0).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status().as_u16(), 200);
    let first: serde_json::Value = res.json().await.unwrap_or_else(|e| panic!("{e}"));
    let first_id = first["id"].as_str().unwrap_or_else(|| panic!("no id: {first}")).to_owned();
    assert!(rig.missing_after(std::slice::from_ref(&first_id), Duration::from_secs(10)).await.is_empty());

    rig.stop_db(StopMode::Fast).await;
    let mut refusals = 0;
    let mut slowest = Duration::ZERO;
    let id = &first_id;
    let calls: Vec<(&str, reqwest::RequestBuilder)> = vec![
        ("GET list", http.get(format!("{}/v1/chat/completions", server.base))),
        ("GET one", http.get(format!("{}/v1/chat/completions/{id}", server.base))),
        ("GET messages", http.get(format!("{}/v1/chat/completions/{id}/messages", server.base))),
        (
            "POST update",
            http.post(format!("{}/v1/chat/completions/{id}", server.base)).json(&json!({"metadata": {"k": "v"}})),
        ),
        ("DELETE", http.delete(format!("{}/v1/chat/completions/{id}", server.base))),
        ("GET conversation", http.get(format!("{}/v1/conversations/conv_{}", server.base, "0a".repeat(24)))),
    ];
    for (what, req) in calls {
        let started = Instant::now();
        let res = req.send().await.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let took = started.elapsed();
        slowest = slowest.max(took);
        let status = res.status().as_u16();
        let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
        check_refusal(status, retry.as_deref(), &body).unwrap_or_else(|e| panic!("{what} with the database down: {e}"));
        assert!(took <= ANSWER_BOUND, "{what} took {took:?} with the database down (bound {ANSWER_BOUND:?})");
        refusals += 1;
    }
    let ready = readyz(&server.base).await;
    assert!(
        ready.as_ref().is_some_and(|(s, r)| *s == 503 && r.iter().any(|r| r == "database_unavailable")),
        "/readyz with the database down: {ready:?}"
    );

    // Creates: the queue holds 5 rows; each create takes a place before its upstream call.
    let mut acked = vec![first_id.clone()];
    let mut refused_creates = 0;
    let upstream_before = rig.upstream.requests();
    let mut upstream_calls_for_acked = 0;
    for n in 1..=8 {
        let calls_before = rig.upstream.requests();
        let started = Instant::now();
        let res = create(n).send().await.unwrap_or_else(|e| panic!("create {n}: no answer: {e}"));
        let took = started.elapsed();
        slowest = slowest.max(took);
        let status = res.status().as_u16();
        let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: serde_json::Value = res.json().await.unwrap_or(serde_json::Value::Null);
        if status == 200 {
            acked.push(body["id"].as_str().unwrap_or_else(|| panic!("no id: {body}")).to_owned());
            upstream_calls_for_acked += rig.upstream.requests() - calls_before;
        } else {
            check_refusal(status, retry.as_deref(), &body)
                .unwrap_or_else(|e| panic!("create {n} with a full queue: {e}"));
            assert_eq!(
                rig.upstream.requests(),
                calls_before,
                "create {n} was refused after calling the upstream (billed, unanswered)"
            );
            assert!(took <= ANSWER_BOUND, "create {n} took {took:?} to be refused (bound {ANSWER_BOUND:?})");
            refused_creates += 1;
        }
    }
    assert!(
        refused_creates >= 3,
        "a queue of 5 rows refuses at least 3 of 8 creates with the database down; refused {refused_creates}"
    );
    assert_eq!(
        rig.upstream.requests() - upstream_before,
        upstream_calls_for_acked,
        "the upstream is called only for acknowledged creates"
    );

    rig.start_db().await;
    let back = Instant::now();
    let missing = rig.missing_after(&acked, Duration::from_secs(10)).await;
    let drained = back.elapsed();
    report(
        TEST,
        &format!(
            "acked={} stored={} refusals_503_reads_updates_deletes={refusals} refused_creates={refused_creates} slowest_refusal_ms={} queue_written_ms_after_recovery={}",
            acked.len(),
            acked.len() - missing.len(),
            slowest.as_millis(),
            drained.as_millis()
        ),
    );
    assert!(missing.is_empty(), "acknowledged completions not stored after recovery: {missing:?}");
    assert!(
        drained <= RECOVERY_BOUND,
        "the queue was written {drained:?} after the database came back (bound {RECOVERY_BOUND:?})"
    );
    let res = create(99).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status().as_u16(), 200, "creates work again without a restart");
}

/// The database answers pings but writes hang (a transaction holds an EXCLUSIVE lock on the table:
/// reads go on, inserts wait). `/readyz` reports the full queue and, after
/// `stall_timeout_seconds`, the stalled writer; a create over the full queue is refused with a 503
/// without calling the upstream; when the lock goes, the queue is written at once and `/readyz` is
/// ready again.
pub async fn stuck_writer_and_full_queue() {
    const TEST: &str = "database::stuck_writer_and_full_queue";
    let rig = Rig::start().await;
    let mut settings = Settings::new("async");
    settings.queue = 5;
    let server = rig.serve(&settings).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_else(|e| panic!("{e}"));
    let create = |n: usize| {
        let body = json!({"model": "echo", "messages": [{"role": "user", "content": format!("stuck {n}")}]});
        http.post(format!("{}/v1/chat/completions", server.base)).json(&body)
    };
    let locker = rig.cluster.client(&rig.db).await.unwrap_or_else(|e| panic!("{e}"));
    locker
        .batch_execute(&format!("BEGIN; LOCK TABLE {} IN EXCLUSIVE MODE", crate::support::TABLE))
        .await
        .unwrap_or_else(|e| panic!("lock the table: {e}"));
    let locked = Instant::now();
    let mut acked = Vec::new();
    let mut refused = 0;
    let mut slowest_refusal = Duration::ZERO;
    for n in 0..7 {
        let calls_before = rig.upstream.requests();
        let started = Instant::now();
        let res = create(n).send().await.unwrap_or_else(|e| panic!("create {n}: no answer: {e}"));
        let took = started.elapsed();
        let status = res.status().as_u16();
        let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let body: serde_json::Value = res.json().await.unwrap_or_default();
        if status == 200 {
            acked.push(body["id"].as_str().unwrap_or_else(|| panic!("no id: {body}")).to_owned());
        } else {
            check_refusal(status, retry.as_deref(), &body)
                .unwrap_or_else(|e| panic!("create {n} over a full queue: {e}"));
            assert_eq!(rig.upstream.requests(), calls_before, "create {n} was refused after calling the upstream");
            assert!(took <= ANSWER_BOUND, "create {n} took {took:?} to be refused (bound {ANSWER_BOUND:?})");
            slowest_refusal = slowest_refusal.max(took);
            refused += 1;
        }
    }
    assert_eq!(acked.len(), settings.queue, "the queue takes {} rows while writes hang", settings.queue);
    assert_eq!(refused, 2, "the creates over the queue are refused");
    let full_ms = wait_readyz(&server.base, 503, Some("write_queue_full"), Duration::from_secs(5)).await;
    let stalled_ms = wait_readyz(&server.base, 503, Some("writer_stalled"), Duration::from_secs(8)).await;
    let stalled_after = locked.elapsed();
    // Reads go on while writes hang.
    let res =
        http.get(format!("{}/v1/chat/completions?limit=1", server.base)).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(res.status().as_u16(), 200, "reads are not blocked by the lock");

    locker.batch_execute("COMMIT").await.unwrap_or_else(|e| panic!("unlock: {e}"));
    let unlocked = Instant::now();
    let missing = rig.missing_after(&acked, Duration::from_secs(10)).await;
    let written = unlocked.elapsed();
    let ready_ms = wait_readyz(&server.base, 200, None, Duration::from_secs(10)).await;
    report(
        TEST,
        &format!(
            "acked={} stored={} refused_creates={refused} slowest_refusal_ms={} readyz_full_ms={} readyz_stalled_ms_after_lock={} written_ms_after_unlock={} ready_again_ms={}",
            acked.len(),
            acked.len() - missing.len(),
            slowest_refusal.as_millis(),
            full_ms.as_millis(),
            stalled_after.as_millis().max(stalled_ms.as_millis()),
            written.as_millis(),
            ready_ms.as_millis()
        ),
    );
    assert!(missing.is_empty(), "{TEST}: acknowledged rows not written after the lock went: {missing:?}");
    assert!(
        written <= RECOVERY_BOUND,
        "{TEST}: the queue was written {written:?} after the lock went (bound {RECOVERY_BOUND:?})"
    );
}

/// A read whose statement is already at the server when the database freezes: nothing on the
/// server can end it (PostgreSQL's `statement_timeout` is the frozen server's), so only a
/// client-side deadline answers it. Made deterministic with a lock: the test holds an ACCESS
/// EXCLUSIVE lock on the table, so the reads wait at the server; then the cluster is frozen for
/// [`OUTAGE`]. Each read must be answered within [`ANSWER_BOUND`] with a 503 in the error shape (or a
/// 200, should it finish), never after the freeze.
pub async fn reads_on_a_frozen_database_are_bounded() {
    let rig = Rig::start().await;
    let settings = Settings::new("sync");
    let server = rig.serve(&settings).await;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_else(|e| panic!("{e}"));
    let locker = rig.cluster.client(&rig.db).await.unwrap_or_else(|e| panic!("{e}"));
    locker
        .batch_execute(&format!("BEGIN; LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", crate::support::TABLE))
        .await
        .unwrap_or_else(|e| panic!("lock the table: {e}"));
    let reads: Vec<_> = (0..3)
        .map(|_| {
            let req = http.get(format!("{}/v1/chat/completions?limit=1", server.base));
            ferrostack_testkit::spawn(async move {
                let started = Instant::now();
                let res = req.send().await;
                let took = started.elapsed();
                match res {
                    Ok(res) => {
                        let status = res.status().as_u16();
                        let retry = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                        let body: serde_json::Value = res.json().await.unwrap_or_default();
                        (took, if status == 200 { Ok(()) } else { check_refusal(status, retry.as_deref(), &body) })
                    }
                    Err(e) => (took, Err(format!("no answer: {e}"))),
                }
            })
        })
        .collect();
    // Freeze as soon as a read waits at the server for the lock (well before the 1.5 s statement
    // timeout would end it; the others are in flight too, waiting there or for a connection).
    ferrostack_testkit::wait_for("a read to wait for the lock", Duration::from_secs(5), || {
        let locker = &locker;
        async move {
            let rows = locker
                .query(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()",
                    &[],
                )
                .await
                .ok()?;
            (rows.first()?.get::<_, i64>(0) >= 1).then_some(())
        }
    })
    .await;
    rig.cluster.freeze().unwrap_or_else(|e| panic!("{e}"));
    let frozen = Instant::now();
    let mut answers = Vec::new();
    for r in reads {
        // Collected while frozen, up to the freeze's end; later answers are counted as late.
        let left = OUTAGE.saturating_sub(frozen.elapsed());
        match tokio::time::timeout(left, r).await {
            Ok(Ok(a)) => answers.push(Some(a)),
            _ => answers.push(None),
        }
    }
    rig.cluster.thaw();
    drop(locker);
    let answered: Vec<String> = answers
        .iter()
        .map(|a| match a {
            Some((took, Ok(()))) => format!("{}ms", took.as_millis()),
            Some((took, Err(e))) => format!("{}ms wrong: {e}", took.as_millis()),
            None => format!("no answer within the {} ms freeze", OUTAGE.as_millis()),
        })
        .collect();
    report(FROZEN_READS, &format!("reads_in_flight_at_freeze=3 answers={answered:?}"));
    for a in &answers {
        match a {
            Some((took, Ok(()))) => assert!(*took <= ANSWER_BOUND, "a read took {took:?} (bound {ANSWER_BOUND:?})"),
            Some((_, Err(e))) => panic!("a read on a frozen database: {e}"),
            None => panic!(
                "a read in flight when the database froze got no answer during the {OUTAGE:?} freeze: {answered:?}"
            ),
        }
    }
}
