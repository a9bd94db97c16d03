//! End-to-end tests: the real server, started in-process on port 0, over real HTTP, against a real
//! SQLite file and a real PostgreSQL database.

#![expect(clippy::expect_used, reason = "a test fails by panicking; harness = false targets are not cfg(test)")]

/// The same test on a SQLite file and on a fresh PostgreSQL database, named
/// `<module>::sqlite::<name>` and `<module>::postgres::<name>`.
macro_rules! on_both {
    ($module:literal, $name:literal, $f:path) => {
        [
            ferrostack_testkit::Test::plain(concat!($module, "::sqlite::", $name), || async {
                let dir = tempfile::tempdir().expect("tempdir");
                $f(ferrostack_tests::Storage::Sqlite(dir.path())).await
            }),
            ferrostack_testkit::Test::postgres(concat!($module, "::postgres::", $name), |pg| async move {
                let db = pg.fresh_database().await;
                $f(ferrostack_tests::Storage::Postgres(&db)).await
            }),
        ]
    };
}

mod auth;
mod cancel;
mod chat;
mod conversations;
mod durability;
mod errors;
mod health;
mod hostile;
mod lists;
mod llama_stack;
mod models;
mod replicas;
mod responses;
mod security;
mod telemetry;

use std::process::ExitCode;

fn main() -> ExitCode {
    // The replica tests start this binary again as a `ferrostack` process.
    if let Some(code) = replicas::run_as_replica() {
        return code;
    }
    let mut tests = Vec::new();
    tests.extend(health::tests());
    tests.extend(auth::tests());
    tests.extend(chat::tests());
    tests.extend(cancel::tests());
    tests.extend(conversations::tests());
    tests.extend(security::tests());
    tests.extend(errors::tests());
    tests.extend(lists::tests());
    tests.extend(telemetry::tests());
    tests.extend(replicas::tests());
    tests.extend(llama_stack::tests());
    tests.extend(models::tests());
    tests.extend(durability::tests());
    tests.extend(hostile::tests());
    tests.extend(responses::tests());
    ferrostack_testkit::run(tests)
}
