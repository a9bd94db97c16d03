//! The catalog's integration tests, in one binary: the KV contract and the SQL layer on both
//! dialects, migrations, pools, errors. PostgreSQL tests use a fresh database each (see
//! ferrostack-testkit) and are skipped with one loud line when no server answers.
// A `harness = false` target is not compiled with cfg(test), so clippy's allow-unwrap-in-tests does
// not reach it.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod bounds;
mod errors;
mod kv;
mod migrations;
mod pools;
mod sql;
mod support;
mod tls;
mod unit;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(unit::tests());
    tests.extend(kv::tests());
    tests.extend(sql::tests());
    tests.extend(migrations::tests());
    tests.extend(pools::tests());
    tests.extend(errors::tests());
    tests.extend(bounds::tests());
    tests.extend(tls::tests());
    ferrostack_testkit::run(tests)
}
