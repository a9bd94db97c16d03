//! End-to-end tests: the real server, started in-process on port 0, over real HTTP, against a real
//! SQLite file and a real PostgreSQL database.

#![expect(clippy::expect_used, reason = "a test fails by panicking; harness = false targets are not cfg(test)")]

mod auth;
mod chat;
mod errors;
mod health;
mod lists;
mod telemetry;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(health::tests());
    tests.extend(auth::tests());
    tests.extend(chat::tests());
    tests.extend(errors::tests());
    tests.extend(lists::tests());
    tests.extend(telemetry::tests());
    ferrostack_testkit::run(tests)
}
