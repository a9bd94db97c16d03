//! End-to-end tests: the real server, started in-process on port 0, over real HTTP, against a real
//! SQLite file and a real PostgreSQL database.

mod health;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(health::tests());
    ferrostack_testkit::run(tests)
}
