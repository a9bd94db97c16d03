//! Integration tests of the inference store, on SQLite temp files and fresh PostgreSQL
//! databases (migrated with `Catalog::migrate`). Tests named `both::...` run on each.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly on unexpected errors")]

use std::process::ExitCode;

use ferrostack_testkit::{Test, run};

mod faults;
mod read;
mod support;
mod write;

use support::{Env, TestFuture};

/// One test per dialect.
fn both(name: &str, body: fn(Env) -> TestFuture) -> Vec<Test> {
    vec![
        Test::plain(format!("sqlite::{name}"), move || async move { body(Env::sqlite().await).await }),
        Test::postgres(format!("postgres::{name}"), move |pg| async move { body(Env::postgres(&pg).await).await }),
    ]
}

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(read::tests());
    tests.extend(write::tests());
    tests.extend(faults::tests());
    run(tests)
}
