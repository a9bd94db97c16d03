//! The write queue: duplicates, durability, backpressure, outages, poison rows, shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use ferrostack_config::Durability;
use ferrostack_inference_store::Error;
use ferrostack_testkit::Test;

use crate::both;
use ferrostack_testkit::wait_for;

use crate::support::{Env, completion, config, flush, sync_config, user};

pub fn tests() -> Vec<Test> {
    let mut t = Vec::new();
    t.extend(both("write::duplicate_ids", |env| Box::pin(duplicate_ids(env))));
    t.extend(both("write::duplicate_ids_in_one_batch", |env| Box::pin(duplicate_ids_in_one_batch(env))));
    t.extend(both("write::sync_is_visible_on_return", |env| Box::pin(sync_visible(env))));
    t.extend(both("write::tiny_queue_many_producers", |env| Box::pin(tiny_queue(env))));
    t.extend(both("write::shutdown_drains", |env| Box::pin(shutdown_drains(env))));
    t.extend(both("write::batch_larger_than_bind_limit", |env| Box::pin(huge_batches(env))));
    t.extend(both("write::dropped_writers_stop_their_tasks", |env| Box::pin(dropped_writers_stop(env))));
    t.push(Test::postgres("postgres::write::locked_table_backpressure", |pg| async move {
        locked_table_backpressure(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::write::database_refusing_connections", |pg| async move {
        database_outage(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::write::poison_row_isolated", |pg| async move {
        poison_row(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::write::shutdown_grace_ends", |pg| async move {
        shutdown_grace_ends(Env::postgres(&pg).await).await;
    }));
    t.push(Test::postgres("postgres::write::group_commit", |pg| async move {
        group_commit(Env::postgres(&pg).await).await;
    }));
    t
}

async fn duplicate_ids(env: Env) {
    let (store, _writers) = env.start(&sync_config());
    let (alice, bob) = (user("alice"), user("bob"));
    let (a, b) = (Some(&alice), Some(&bob));
    store.store(completion("dup", 1, "m1"), a).await.unwrap();
    // Same owner: replaced.
    store.store(completion("dup", 2, "m2"), a).await.unwrap();
    let got = store.get(a, "dup").await.unwrap().unwrap();
    assert_eq!((got.created, got.model.as_str()), (2, "m2"));
    // Another owner: refused, the row untouched.
    let e = store.store(completion("dup", 3, "m3"), b).await.unwrap_err();
    assert!(matches!(e, Error::IdTaken { .. }), "{e}");
    let got = store.get(a, "dup").await.unwrap().unwrap();
    assert_eq!((got.created, got.model.as_str()), (2, "m2"));
    assert!(store.get(b, "dup").await.unwrap().is_none());
    assert_eq!(store.metrics().rows_id_taken(), 1);
    assert_eq!(env.count().await, 1);
}

async fn duplicate_ids_in_one_batch(env: Env) {
    let (store, writers) = env.start(&config(100, 1, 64, Durability::Async));
    let (alice, bob) = (user("alice"), user("bob"));
    let (a, b) = (Some(&alice), Some(&bob));
    // Whatever the batching, the result is the one of writing them in order.
    store.store(completion("d", 1, "v1"), a).await.unwrap();
    store.store(completion("d", 2, "v2"), b).await.unwrap();
    store.store(completion("d", 3, "v3"), a).await.unwrap();
    store.store(completion("e", 4, "v4"), b).await.unwrap();
    store.store(completion("e", 5, "v5"), b).await.unwrap();
    let report = writers.shutdown(Duration::from_secs(30)).await;
    assert!(report.drained && report.unwritten.is_empty(), "{report:?}");
    let d = store.get(a, "d").await.unwrap().unwrap();
    assert_eq!((d.created, d.model.as_str()), (3, "v3"));
    let e = store.get(b, "e").await.unwrap().unwrap();
    assert_eq!((e.created, e.model.as_str()), (5, "v5"));
    assert_eq!(store.metrics().rows_id_taken(), 1);
    assert_eq!(store.metrics().rows_written(), 4);
}

async fn sync_visible(env: Env) {
    let (store, _writers) = env.start(&config(1000, 4, 64, Durability::Sync));
    let alice = user("alice");
    let mut handles = Vec::new();
    for i in 0..40 {
        let (store, alice) = (store.clone(), alice.clone());
        handles.push(ferrostack_testkit::spawn(async move {
            let id = format!("s{i}");
            store.store(completion(&id, i, "m"), Some(&alice)).await.unwrap();
            // Returned: committed, so visible right away.
            assert!(store.get(Some(&alice), &id).await.unwrap().is_some(), "{id} visible on return");
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    let m = store.metrics();
    assert_eq!(m.rows_written(), 40);
    assert!(m.batches_written() <= 40);
    assert_eq!(m.queue_depth(), 0);
}

async fn tiny_queue(env: Env) {
    let (store, writers) = env.start(&config(2, 4, 256, Durability::Async));
    let alice = user("alice");
    let mut handles = Vec::new();
    for p in 0..40 {
        let (store, alice) = (store.clone(), alice.clone());
        handles.push(ferrostack_testkit::spawn(async move {
            for i in 0..10 {
                store.store(completion(&format!("p{p:02}-{i}"), i, "m"), Some(&alice)).await.unwrap();
            }
        }));
    }
    for h in handles {
        h.await.unwrap();
    }
    flush(&store).await;
    assert_eq!(env.count().await, 400);
    let m = writers.metrics();
    assert_eq!(m.rows_written(), 400);
    assert!(m.producer_waits() > 0, "a queue of 2 made producers wait");
    assert!(m.queue_depth() == 0);
}

async fn shutdown_drains(env: Env) {
    let (store, writers) = env.start(&config(1000, 2, 50, Durability::Async));
    let alice = user("alice");
    for i in 0..500 {
        store.store(completion(&format!("sd{i:03}"), i, "m"), Some(&alice)).await.unwrap();
    }
    let report = writers.shutdown(Duration::from_secs(30)).await;
    assert!(report.drained && report.unwritten.is_empty(), "{report:?}");
    assert_eq!(env.count().await, 500);
    let e = store.store(completion("late", 1, "m"), Some(&alice)).await.unwrap_err();
    assert!(matches!(e, Error::ShuttingDown), "{e}");
}

async fn huge_batches(env: Env) {
    // 10,000 rows per batch is more than one statement may bind on either engine: the writer
    // splits it into several statements of one transaction.
    let (store, writers) = env.start(&config(20_000, 1, 10_000, Durability::Async));
    let alice = user("alice");
    for i in 0..12_000 {
        store.store(completion(&format!("h{i:05}"), i, "m"), Some(&alice)).await.unwrap();
    }
    let report = writers.shutdown(Duration::from_secs(120)).await;
    assert!(report.drained, "{report:?}");
    assert_eq!(env.count().await, 12_000);
    assert_eq!(store.metrics().rows_failed(), 0);
}

/// An `ACCESS EXCLUSIVE` lock held by the test: writers block, the queue fills, producers wait;
/// after the release everything lands.
/// A start-up that fails after the store started drops its `Writers` without a shutdown: the
/// writer tasks stop anyway (nothing keeps running, nothing keeps the pool busy).
async fn dropped_writers_stop(env: Env) {
    let (store, writers) = env.start(&config(100, 2, 8, Durability::Async));
    store.store(completion("kept", 0, "m"), None).await.unwrap();
    flush(&store).await;
    let tasks = writers.tasks();
    assert!(!tasks.is_empty(), "the writer tasks run");
    drop(writers);
    tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await.expect("the writer tasks stopped");
    assert_eq!(env.count().await, 1);
}

async fn locked_table_backpressure(env: Env) {
    let (store, _writers) = env.start(&config(4, 2, 2, Durability::Async));
    let locker = env.pg.as_ref().unwrap().client().await;
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let alice = user("alice");
    let done = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for p in 0..20 {
        let (store, alice, done) = (store.clone(), alice.clone(), Arc::clone(&done));
        handles.push(ferrostack_testkit::spawn(async move {
            store.store(completion(&format!("lk{p:02}"), p, "m"), Some(&alice)).await.unwrap();
            done.fetch_add(1, Ordering::SeqCst);
        }));
    }
    let m = store.metrics();
    // Wait on the producers that got through (`done`), not on the queue depth: the depth reaches
    // 4 before the fourth producer has returned and counted itself.
    wait_for("the queue is full and producers wait", Duration::from_secs(10), || async {
        (done.load(Ordering::SeqCst) >= 4 && m.producer_waits() > 0).then_some(())
    })
    .await;
    assert_eq!(m.queue_depth(), 4);
    assert_eq!(done.load(Ordering::SeqCst), 4, "only as many producers as the queue holds got through");
    assert_eq!(m.rows_written(), 0);
    locker.batch_execute("COMMIT").await.unwrap();
    for h in handles {
        h.await.unwrap();
    }
    flush(&store).await;
    assert_eq!(env.count().await, 20);
    assert_eq!(m.rows_failed(), 0);
}

/// The database refuses connections for a while (and its sessions are terminated): the writers
/// retry, nothing is lost once it is back.
async fn database_outage(env: Env) {
    let (store, _writers) = env.start(&config(1000, 2, 8, Durability::Async));
    let alice = user("alice");
    store.store(completion("before", 0, "m"), Some(&alice)).await.unwrap();
    flush(&store).await;
    let test_db = env.pg.as_ref().unwrap();
    let admin = test_db.server().admin_client().await;
    let name = test_db.name().to_owned();
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS false")).await.unwrap();
    admin
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
            &[&name],
        )
        .await
        .unwrap();
    for i in 0..30 {
        store.store(completion(&format!("out{i:02}"), i, "m"), Some(&alice)).await.unwrap();
    }
    let m = store.metrics();
    wait_for("writers are retrying", Duration::from_secs(20), || async { (m.batch_retries() > 0).then_some(()) }).await;
    assert_eq!(m.rows_failed(), 0);
    admin.batch_execute(&format!("ALTER DATABASE \"{name}\" ALLOW_CONNECTIONS true")).await.unwrap();
    flush(&store).await;
    assert_eq!(env.count().await, 31);
    assert_eq!(m.rows_failed(), 0);
    assert!(m.rows_retried() > 0);
}

/// A row PostgreSQL rejects (a NUL byte in TEXT) is isolated; its batch-mates land.
async fn poison_row(env: Env) {
    let (store, _writers) = env.start(&config(100, 1, 64, Durability::Async));
    let locker = env.pg.as_ref().unwrap().client().await;
    // Hold the writer back so the rows gather into one batch.
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let alice = user("alice");
    for i in 0..10 {
        store.store(completion(&format!("good{i}"), i, "m"), Some(&alice)).await.unwrap();
        if i == 5 {
            store.store(completion("poison", 99, "bad\0model"), Some(&alice)).await.unwrap();
        }
    }
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    let ids = env.ids().await;
    let expected: Vec<String> = (0..10).map(|i| format!("good{i}")).collect();
    assert_eq!(ids, expected);
    let m = store.metrics();
    assert_eq!((m.rows_failed(), m.rows_refused(), m.rows_written()), (1, 1, 10));

    // With durability sync, the producer hears about it: refused for its content, with the
    // database's reason (SQLSTATE 22021, invalid byte sequence), never its host.
    let (sync_store, _w) = env.start(&sync_config());
    let e = sync_store.store(completion("poison2", 1, "bad\0"), Some(&alice)).await.unwrap_err();
    let Error::Refused { id, reason, content } = &e else { panic!("expected a refusal, got {e}") };
    assert_eq!(id, "poison2");
    assert!(*content, "a NUL byte is the content's fault: {e}");
    assert!(reason.contains("22021"), "the reason names the SQLSTATE: {reason}");
    assert!(!reason.contains("127.0.0.1") && !reason.contains("localhost"), "no host in the reason: {reason}");
    // The writer goes on.
    sync_store.store(completion("after-poison", 2, "m"), Some(&alice)).await.unwrap();
}

/// The grace period ends with rows still blocked: they are reported by id, not written.
async fn shutdown_grace_ends(env: Env) {
    let (store, writers) = env.start(&config(100, 1, 64, Durability::Async));
    let locker = env.pg.as_ref().unwrap().client().await;
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.unwrap();
    let alice = user("alice");
    for i in 0..5 {
        store.store(completion(&format!("g{i}"), i, "m"), Some(&alice)).await.unwrap();
    }
    let report = writers.shutdown(Duration::from_millis(300)).await;
    assert!(!report.drained);
    let mut unwritten = report.unwritten.clone();
    unwritten.sort();
    assert_eq!(unwritten, vec!["g0", "g1", "g2", "g3", "g4"]);
    locker.batch_execute("COMMIT").await.unwrap();
    assert_eq!(store.metrics().rows_failed(), 5);
    assert!(matches!(store.store(completion("late", 1, "m"), Some(&alice)).await, Err(Error::ShuttingDown)));
}

/// Sessions of this database waiting for a lock (writers held up by the test's table lock).
/// Asked on a connection outside any transaction: a transaction sees one snapshot of the
/// sessions' activity, taken at its first look.
async fn lock_waiters(watcher: &tokio_postgres::Client) -> i64 {
    watcher
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Group commit with four writers: while one batch is being written, the rows that come in
/// gather into the next batch instead of going beside it; a second writer joins only when a
/// full batch waits, or when the partial one has waited `group_commit_wait_ms`.
async fn group_commit(env: Env) {
    let locker = env.pg.as_ref().unwrap().client().await;
    let watcher = env.pg.as_ref().unwrap().client().await;
    let alice = user("alice");
    let waiting_for = |n: i64| {
        let watcher = &watcher;
        move || async move { (lock_waiters(watcher).await >= n).then_some(()) }
    };

    // A partial batch waits for the write in flight (the wait is long here, so only the end
    // of that write lets it go).
    let mut c = config(100, 4, 256, Durability::Async);
    c.group_commit_wait_ms = 60_000;
    let (store, _writers) = env.start(&c);
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.unwrap();
    store.store(completion("first", 0, "m"), Some(&alice)).await.unwrap();
    wait_for("the first batch waits for the lock", Duration::from_secs(10), waiting_for(1)).await;
    for i in 0..10 {
        store.store(completion(&format!("gc{i:02}"), i, "m"), Some(&alice)).await.unwrap();
        tokio::task::yield_now().await;
    }
    assert_eq!(lock_waiters(&watcher).await, 1, "the rows that came in are held, not written beside the first batch");
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    let m = store.metrics();
    assert_eq!(m.rows_written(), 11);
    assert_eq!(m.batches_written(), 2, "the ten rows went as one batch after the first");

    // A full batch does not wait: with batches of 4, eight rows behind a held write are two
    // more writers' batches, written beside it.
    let mut c = config(100, 4, 4, Durability::Async);
    c.group_commit_wait_ms = 60_000;
    let (store, _writers) = env.start(&c);
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.unwrap();
    store.store(completion("full0", 0, "m"), Some(&alice)).await.unwrap();
    wait_for("the first batch waits for the lock", Duration::from_secs(10), waiting_for(1)).await;
    for i in 0..8 {
        store.store(completion(&format!("full{:02}", i + 1), i, "m"), Some(&alice)).await.unwrap();
    }
    wait_for("two full batches are written beside the first", Duration::from_secs(10), waiting_for(3)).await;
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    assert_eq!(store.metrics().rows_written(), 9);

    // The wait is bounded: a partial batch behind a write held up goes after
    // `group_commit_wait_ms`.
    let mut c = config(100, 4, 256, Durability::Async);
    c.group_commit_wait_ms = 50;
    let (store, _writers) = env.start(&c);
    locker.batch_execute("BEGIN; LOCK TABLE inference_store IN ACCESS EXCLUSIVE MODE").await.unwrap();
    store.store(completion("held", 0, "m"), Some(&alice)).await.unwrap();
    wait_for("the first batch waits for the lock", Duration::from_secs(10), waiting_for(1)).await;
    store.store(completion("behind", 1, "m"), Some(&alice)).await.unwrap();
    wait_for("the partial batch is written after its wait", Duration::from_secs(10), waiting_for(2)).await;
    locker.batch_execute("COMMIT").await.unwrap();
    flush(&store).await;
    assert_eq!(store.metrics().rows_written(), 2);
    assert_eq!(env.count().await, 11 + 9 + 2);
}
