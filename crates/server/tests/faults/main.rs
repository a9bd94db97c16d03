//! The fault suite (issue 15): the real `ferrostack` binary, a throwaway PostgreSQL cluster of its
//! own and the fake upstream, and the faults an operator meets, each under load:
//!
//! - `database::*`: the database stopped (fast), crashed (immediate stop) and frozen (SIGSTOP of
//!   every server process), then back; and the answers while it is down;
//! - `shutdown::*`: SIGTERM and SIGKILL under load in both durability modes, and SIGTERM with the
//!   database down and a hung upstream (the spill file and its replay);
//! - `upstream::*`: a hung upstream, an upstream killed mid-stream, clients that leave, the
//!   per-provider concurrency cap.
//!
//! Each test checks by exact completion id that every 2xx answer is stored, that every refusal is
//! a 503 in the error shape with `Retry-After`, that waits and the shutdown are bounded, and that
//! the server recovers without a restart. Each prints a `FAULTS <test>: ...` line of numbers
//! (acknowledged vs stored, 503 counts, exit times): `cargo test -p ferrostack --test faults 2>&1 |
//! grep '^FAULTS'`.
//!
//! The cluster needs PostgreSQL's binaries (`/usr/lib/postgresql/*/bin` or `FERROSTACK_PG_BIN`) and,
//! as root, a `postgres` OS user. Without them the suite is skipped with the reason, unless
//! `CI=true` or `FERROSTACK_REQUIRE_POSTGRES=1`: then it fails.

mod database;
mod shutdown;
mod support;
mod upstream;

use std::process::ExitCode;

use ferrostack_testkit::Test;
use ferrostack_testkit::cluster::Cluster;

/// Tests whose behaviour is not on the branch yet, with what is missing. Each is skipped with that
/// reason (reported as ignored, not passed); remove the entry when the behaviour lands. While a
/// test is listed, the load tests leave its check to it (see [`pending`]) and say so.
const PENDING: &[(&str, &str)] = &[];

/// Tests of the `hot` branch's behaviour (issue 15 item 3): run when this build has it.
const NEEDS_HOT: &[&str] = &[
    "upstream::client_disconnect_cancels_the_upstream_call",
    "upstream::upstream_killed_mid_stream",
    "upstream::hung_upstream_and_retrying_clients_do_not_pile_up",
    "upstream::provider_concurrency_cap_refuses_without_calling_upstream",
];

/// Whether this build has the `hot` branch's upstream work: its provider setting
/// `max_concurrent_requests` passes `ferrostack config check`. (The branch is not merged into
/// `suite`: it conflicts with `faults` in create.rs, which is for the lead to resolve; these tests
/// passed against hot 2d7c41c in a scratch merge.)
fn hot_merged() -> bool {
    let Ok(dir) = tempfile::tempdir() else {
        return false;
    };
    let path = dir.path().join("hot.yaml");
    let yaml = "version: 2\nproviders:\n  inference:\n    - { provider_id: p, provider_type: remote::vllm, config: { url: 'http://127.0.0.1:1/v1', max_concurrent_requests: 1 } }\n";
    if std::fs::write(&path, yaml).is_err() {
        return false;
    }
    std::process::Command::new(support::BIN)
        .args(["config", "check"])
        .arg(&path)
        .env("FERROSTACK_HOME", dir.path())
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Why test `name` is pending, if it is: the load tests relax the one check that test owns.
pub fn pending(name: &str) -> Option<&'static str> {
    PENDING.iter().find(|(n, _)| *n == name).map(|(_, why)| *why)
}

fn main() -> ExitCode {
    let tests = vec![
        Test::plain("database::fast_restart_under_load_sync", database::fast_restart_sync),
        Test::plain("database::fast_restart_under_load_async", database::fast_restart_async),
        Test::plain("database::crash_restart_under_load_sync", database::crash_restart_sync),
        Test::plain("database::crash_restart_under_load_async", database::crash_restart_async),
        Test::plain("database::freeze_under_load_sync", database::freeze_sync),
        Test::plain("database::freeze_under_load_async", database::freeze_async),
        Test::plain(
            "database::down_refuses_honestly_and_full_queue_never_calls_upstream",
            database::down_refuses_honestly_and_full_queue_never_calls_upstream,
        ),
        Test::plain(
            "database::reads_on_a_frozen_database_are_bounded",
            database::reads_on_a_frozen_database_are_bounded,
        ),
        Test::plain("database::stuck_writer_and_full_queue", database::stuck_writer_and_full_queue),
        Test::plain("shutdown::sigterm_under_load_sync", shutdown::sigterm_sync),
        Test::plain("shutdown::sigterm_under_load_async", shutdown::sigterm_async),
        Test::plain(
            "shutdown::sigterm_open_connections_get_503_and_close",
            shutdown::sigterm_open_connections_get_503_and_close,
        ),
        Test::plain("shutdown::sigterm_with_a_stream_hung_midway", shutdown::sigterm_with_a_stream_hung_midway),
        Test::plain("shutdown::sigkill_under_load_sync", shutdown::sigkill_sync),
        Test::plain("shutdown::sigkill_under_load_async", shutdown::sigkill_async),
        Test::plain(
            "shutdown::sigterm_database_down_hung_upstream_spills_and_replays",
            shutdown::sigterm_database_down_hung_upstream_spills_and_replays,
        ),
        Test::plain("upstream::fake_upstream_sees_a_caller_leave", upstream::fake_upstream_sees_a_caller_leave),
        Test::plain(
            "upstream::client_disconnect_cancels_the_upstream_call",
            upstream::client_disconnect_cancels_the_upstream_call,
        ),
        Test::plain("upstream::upstream_killed_mid_stream", upstream::upstream_killed_mid_stream),
        Test::plain(
            "upstream::hung_upstream_and_retrying_clients_do_not_pile_up",
            upstream::hung_upstream_and_retrying_clients_do_not_pile_up,
        ),
        Test::plain(
            "upstream::provider_concurrency_cap_refuses_without_calling_upstream",
            upstream::provider_concurrency_cap_refuses_without_calling_upstream,
        ),
    ];
    // No cluster on this machine: skip with the reason, unless the suite must run (CI).
    let missing = Cluster::unavailable().filter(|_| !ferrostack_testkit::postgres_required());
    let hot = hot_merged();
    let tests = tests
        .into_iter()
        .map(|t| {
            let pending = pending(t.name()).map(|why| format!("pending: {why}")).or_else(|| {
                (!hot && NEEDS_HOT.contains(&t.name())).then(|| {
                    "pending: needs branch hot (a client that leaves cancels its upstream call, cut streams stored with finish_reason null, max_concurrent_requests per provider), not in this build".to_owned()
                })
            });
            let reason = missing.clone().map(|m| format!("no throwaway PostgreSQL cluster: {m}")).or(pending);
            t.skip_when(reason)
        })
        .collect();
    ferrostack_testkit::run(tests)
}
