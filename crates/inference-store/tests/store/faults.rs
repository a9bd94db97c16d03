//! Faults: rows too large, byte-bounded batches, a full queue, sync commit timeouts, a stalled
//! writer, and spilling at shutdown with replay at the next start.

use std::path::PathBuf;
use std::time::Duration;

use ferrostack_config::{Durability, InferenceStoreConfig};
use ferrostack_inference_store::{Error, InferenceStore, WriterConfig};
use ferrostack_testkit::{Test, wait_for};
use serde_json::json;

use crate::both;
use crate::support::{Env, TempDir, completion, config, flush, user};

pub fn tests() -> Vec<Test> {
    let mut t = Vec::new();
    t.extend(both("faults::row_over_max_row_bytes_is_refused", |env| Box::pin(row_too_large(env))));
    t.extend(both("faults::batches_are_bounded_by_bytes", |env| Box::pin(batches_bounded_by_bytes(env))));
    t.extend(both("faults::spilled_rows_are_replayed_once", |env| Box::pin(spill_and_replay(env))));
    t.push(Test::postgres("postgres::faults::full_queue_refuses_within_the_wait", |pg| async move {
        full_queue(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::faults::queue_byte_bound_waits_then_refuses", |pg| async move {
        queue_byte_bound(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::faults::sync_commit_wait_is_bounded", |pg| async move {
        sync_commit_timeout(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::faults::stalled_writer_is_reported", |pg| async move {
        stalled_writer(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::faults::locked_rows_spill_at_shutdown", |pg| async move {
        locked_rows_spill(Env::postgres(&pg).await).await;
    }));
    t
}

fn with(base: InferenceStoreConfig, f: impl FnOnce(&mut InferenceStoreConfig)) -> InferenceStoreConfig {
    let mut c = base;
    f(&mut c);
    c
}

/// A completion whose answer is `bytes` long.
fn sized(id: &str, bytes: usize) -> ferrostack_inference_store::StoredCompletion {
    let mut c = completion(id, 1, "m");
    c.choices =
        json!([{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "x".repeat(bytes)}}])
            .into();
    c
}

async fn row_too_large(env: Env) {
    for durability in [Durability::Async, Durability::Sync] {
        let (store, _w) = env.start(&with(config(100, 1, 64, durability), |c| c.max_row_bytes = 4096));
        let alice = user("alice");
        let e = store.store(sized(&format!("big-{durability}"), 10_000), Some(&alice)).await.unwrap_err();
        let Error::TooLarge { size, limit, .. } = e else { panic!("expected TooLarge, got {e}") };
        assert_eq!(limit, 4096);
        assert!(size > 10_000, "{size}");
        assert!(e_text(size, limit).contains("4096"));
        // The request-side check, before any upstream call.
        let messages = json!([{"role": "user", "content": "y".repeat(5000)}]).to_string();
        let e = store.check_request_size(messages.len(), None).unwrap_err();
        assert!(matches!(e, Error::RequestTooLarge { limit: 4096, .. }), "{e}");
        store.check_request_size(json!([{"role": "user", "content": "hi"}]).to_string().len(), None).unwrap();
        // The writer goes on.
        store.store(sized(&format!("small-{durability}"), 100), Some(&alice)).await.unwrap();
        flush(&store).await;
        assert_eq!(store.metrics().rows_too_large(), 1);
    }
    assert_eq!(env.ids().await, vec!["small-async", "small-sync"]);
}

fn e_text(size: usize, limit: usize) -> String {
    Error::TooLarge { id: "x".into(), size, limit }.to_string()
}

async fn batches_bounded_by_bytes(env: Env) {
    // 40 rows of about 3 KB, at most 8 KB a batch: at most 2 rows a batch, so at least 20
    // batches, however the rows are taken.
    let (store, _w) = env.start(&with(config(1000, 1, 256, Durability::Async), |c| c.max_batch_bytes = 8 * 1024));
    let alice = user("alice");
    for i in 0..40 {
        store.store(sized(&format!("r{i:02}"), 3000), Some(&alice)).await.unwrap();
    }
    flush(&store).await;
    let m = store.metrics();
    assert_eq!(m.rows_written(), 40);
    assert!(m.batches_written() >= 20, "batches: {}", m.batches_written());
    assert_eq!(env.count().await, 40);
}

/// Rows spilled by a shutdown with no time to drain are written by the next start's replay,
/// once, also when a replay is repeated (cut short and run again).
async fn spill_and_replay(env: Env) {
    let dir = TempDir::new();
    let path = dir.path().join("spill").join("inference.jsonl");
    let mut writer_config = WriterConfig::from(&config(1000, 1, 16, Durability::Async));
    writer_config.spill_path = Some(path.clone());
    let (store, writers) = InferenceStore::start_with(env.db.clone(), &writer_config, Vec::new()).unwrap();
    let alice = user("alice");
    let mut row = completion("meta", 1, "m");
    row.metadata = Some(serde_json::Map::from_iter([("k".to_owned(), json!("v"))]));
    row.upstream_id = Some("up-1".to_owned());
    store.store(row.clone(), Some(&alice)).await.unwrap();
    for i in 0..200 {
        store.store(completion(&format!("s{i:03}"), i, "m"), Some(&alice)).await.unwrap();
    }
    store.store(completion("anon", 1, "m"), None).await.unwrap();
    let report = writers.shutdown(Duration::ZERO).await;
    assert!(report.unwritten.is_empty(), "async rows are spilled, not lost: {:?}", report.unwritten);
    let written_before = env.count().await;
    assert!(report.spilled > 0 || written_before == 202, "nothing left to spill only if all was written");
    assert_eq!(store.metrics().rows_spilled(), report.spilled);
    if report.spilled > 0 {
        assert!(path.exists(), "spill file at {}", path.display());
    }
    let saved = std::fs::read(&path).ok();

    let (store, writers) = InferenceStore::start_with(env.db.clone(), &writer_config, Vec::new()).unwrap();
    let replay = store.replay_spilled().await.unwrap();
    assert_eq!(replay.rows, report.spilled);
    assert_eq!(replay.bad_lines, 0);
    assert!(!path.exists(), "the replayed file is deleted");
    assert_eq!(env.count().await, 202, "every row once");
    // What was spilled comes back whole: metadata, upstream id, owner.
    let back = store.get(Some(&alice), "meta").await.unwrap().expect("the row is back");
    assert_eq!(back.metadata, row.metadata);
    assert_eq!(back.upstream_id, row.upstream_id);
    assert!(store.get(Some(&user("bob")), "meta").await.unwrap().is_none(), "the owner is kept");

    // A replay cut short leaves its claimed file; the next start replays it again: still once.
    if let Some(saved) = saved {
        std::fs::write(dir.path().join("spill").join("inference.jsonl.00000000000000000001-1.replaying"), saved)
            .unwrap();
        let replay = store.replay_spilled().await.unwrap();
        assert_eq!(replay.files, 1);
        assert_eq!(env.count().await, 202, "replaying twice writes nothing twice");
    }
    // A line that is not a row is kept aside, not dropped silently.
    std::fs::write(&path, "{\"v\":1,\"table\":\"other\"}\nnot json\n").unwrap();
    let replay = store.replay_spilled().await.unwrap();
    assert_eq!((replay.rows, replay.bad_lines), (0, 2));
    let kept: Vec<PathBuf> = std::fs::read_dir(dir.path().join("spill"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "rejected"))
        .collect();
    assert_eq!(kept.len(), 1, "{kept:?}");
    drop(writers.shutdown(Duration::from_secs(5)).await);
}

/// Hold the table locked so nothing commits.
async fn lock(env: &Env) -> tokio_postgres::Client {
    let locker = env.pg.as_ref().unwrap().client().await;
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.unwrap();
    locker
}

async fn full_queue(env: Env) {
    let (store, _w) = env.start(&with(config(2, 1, 64, Durability::Async), |c| c.queue_wait_timeout_ms = 200));
    let locker = lock(&env).await;
    let alice = user("alice");
    store.store(completion("a", 1, "m"), Some(&alice)).await.unwrap();
    store.store(completion("b", 1, "m"), Some(&alice)).await.unwrap();
    assert!(store.writer_health().full());
    // No place frees: refused after the wait, not blocked for the outage.
    let e = store.reserve().await.unwrap_err();
    assert!(matches!(e, Error::QueueFull { .. }), "{e}");
    let e = store.store(completion("c", 1, "m"), Some(&alice)).await.unwrap_err();
    assert!(matches!(e, Error::QueueFull { .. }), "{e}");
    assert_eq!(store.metrics().queue_full(), 2);
    // A reservation holds its place until used or dropped.
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    let held = store.reserve().await.unwrap();
    let _second = store.reserve().await.unwrap();
    assert!(matches!(store.reserve().await, Err(Error::QueueFull { .. })));
    held.store(completion("d", 1, "m"), Some(&alice)).await.unwrap();
    flush(&store).await;
    assert!(store.reserve().await.is_ok(), "a written row frees its place");
    assert_eq!(env.ids().await, vec!["a", "b", "d"]);
}

/// The queue's byte bound (`max_queue_bytes`): with nothing committing, a request is admitted
/// while the bytes held are under the bound, then waits and is refused (503), though row places
/// are free; the bound is passed by at most the rows admitted under it; every row accepted is
/// written once the database answers; an estimate is held until used or dropped.
async fn queue_byte_bound(env: Env) {
    const BOUND: usize = 32 * 1024;
    const ROW: usize = 16 * 1024;
    // Rows of about 10 KB: row places for 100, bytes for about 3.
    let (store, _w) = env.start(&with(config(100, 1, 64, Durability::Async), |c| {
        c.queue_wait_timeout_ms = 200;
        c.max_queue_bytes = BOUND;
        c.max_row_bytes = ROW;
    }));
    assert_eq!(store.metrics().max_queue_bytes(), BOUND as u64);
    let locker = lock(&env).await;
    let alice = user("alice");
    let mut accepted = Vec::new();
    let refused = loop {
        let id = format!("b{:02}", accepted.len());
        match store.store(sized(&id, 10_000), Some(&alice)).await {
            Ok(()) => accepted.push(id),
            Err(e) => break e,
        }
        assert!(accepted.len() < 20, "the byte bound never refused a row");
    };
    assert!(matches!(refused, Error::QueueFull { .. }), "{refused}");
    // Admitted while under the bound (one row at a time here): 4 rows of about 10 KB.
    assert_eq!(accepted.len(), 4, "{accepted:?}");
    let held = store.metrics().queue_bytes();
    assert!(held >= BOUND as u64 && held <= (BOUND + ROW) as u64, "bytes held: {held}");
    let health = store.writer_health();
    assert!(health.full() && health.available > 90, "{health:?}");
    assert!(matches!(store.reserve().await, Err(Error::QueueFull { .. })));
    assert!(matches!(store.reserve_sized(100).await, Err(Error::QueueFull { .. })));
    assert_eq!(store.metrics().queue_full(), 3);
    // The database answers again: every accepted row is written, the bytes are given back.
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    assert_eq!(env.ids().await, accepted);
    assert_eq!(store.metrics().queue_bytes(), 0);
    assert!(!store.writer_health().full());

    // An estimate is charged at the reservation: a second one that does not fit waits, then is
    // refused; dropping the first gives its bytes back.
    let first = store.reserve_sized(20_000).await.unwrap();
    assert_eq!(store.metrics().queue_bytes(), 20_000);
    assert!(matches!(store.reserve_sized(20_000).await, Err(Error::QueueFull { .. })));
    drop(first);
    assert_eq!(store.metrics().queue_bytes(), 0);
    let second = store.reserve_sized(20_000).await.unwrap();
    // Used, it is settled to the row's size.
    second.store(sized("settled", 1_000), Some(&alice)).await.unwrap();
    flush(&store).await;
    assert_eq!(store.metrics().queue_bytes(), 0);
    assert_eq!(env.count().await, 5);
}

async fn sync_commit_timeout(env: Env) {
    let (store, _w) = env.start(&with(config(100, 1, 64, Durability::Sync), |c| c.commit_timeout_ms = 300));
    let locker = lock(&env).await;
    let alice = user("alice");
    // `first` is taken into a batch that blocks on the lock; `second` waits behind it.
    let first = {
        let (store, alice) = (store.clone(), alice.clone());
        ferrostack_testkit::spawn(async move { store.store(completion("first", 1, "m"), Some(&alice)).await })
    };
    let db = env.pg.as_ref().unwrap();
    let admin = db.server().admin_client().await;
    let name = db.name().to_owned();
    wait_for("the first batch to wait on the lock", Duration::from_secs(10), || async {
        let row = admin
            .query_one(
                "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND wait_event_type = 'Lock'",
                &[&name],
            )
            .await
            .unwrap();
        (row.get::<_, i64>("n") > 0).then_some(())
    })
    .await;
    let e = store.store(completion("second", 1, "m"), Some(&alice)).await.unwrap_err();
    assert!(matches!(e, Error::CommitTimeout { .. }), "{e}");
    let e = first.await.unwrap().unwrap_err();
    assert!(matches!(e, Error::CommitTimeout { .. }), "{e}");
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    // `second`'s batch had not started: skipped. `first`'s had: written.
    assert_eq!(env.ids().await, vec!["first"]);
    assert_eq!(store.metrics().rows_abandoned(), 1);
    assert_eq!(store.metrics().commit_timeouts(), 2);
}

async fn stalled_writer(env: Env) {
    let (store, _w) = env.start(&with(config(100, 1, 64, Durability::Async), |c| c.stall_timeout_seconds = 1));
    assert!(!store.writer_health().stalled);
    let locker = lock(&env).await;
    store.store(completion("stuck", 1, "m"), Some(&user("alice"))).await.unwrap();
    wait_for("the writer to report a stall", Duration::from_secs(20), || async {
        store.writer_health().stalled.then_some(())
    })
    .await;
    let health = store.writer_health();
    assert!(health.oldest_age >= Duration::from_secs(1), "{health:?}");
    assert_eq!(health.depth, 1);
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    assert!(!store.writer_health().stalled);
    assert_eq!(store.writer_health().oldest_age, Duration::ZERO);
}

/// Rows blocked for the whole drain are spilled (none reported lost), and replayed once the
/// table is free.
async fn locked_rows_spill(env: Env) {
    let dir = TempDir::new();
    let path = dir.path().join("rows.jsonl");
    let mut writer_config = WriterConfig::from(&config(100, 1, 64, Durability::Async));
    writer_config.spill_path = Some(path.clone());
    let (store, writers) = InferenceStore::start_with(env.db.clone(), &writer_config, Vec::new()).unwrap();
    let locker = lock(&env).await;
    let alice = user("alice");
    for i in 0..5 {
        store.store(completion(&format!("g{i}"), i, "m"), Some(&alice)).await.unwrap();
    }
    let report = writers.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained);
    assert!(report.unwritten.is_empty(), "{:?}", report.unwritten);
    assert_eq!(report.spilled, 5);
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(env.count().await, 0);
    let (store, _w) = InferenceStore::start_with(env.db.clone(), &writer_config, Vec::new()).unwrap();
    assert_eq!(store.replay_spilled().await.unwrap().rows, 5);
    assert_eq!(env.ids().await, vec!["g0", "g1", "g2", "g3", "g4"]);
    assert_eq!(store.metrics().rows_replayed(), 5);
}
