//! Access control's integration tests, in one binary: the evaluator and the compiler against each
//! other (property test, hostile values) and the authorized store layer on both dialects (the
//! acceptance cases of REFERENCE.md 3.7). PostgreSQL tests use a fresh database each (see
//! ferrostack-testkit) and are skipped with one loud line when no server answers.
// A `harness = false` target is not compiled with cfg(test), so clippy's allow-unwrap-in-tests does
// not reach it.
#![expect(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod acceptance;
mod access_values;
mod compose;
mod hostile;
mod property;
mod support;
mod unit;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(unit::tests());
    tests.extend(acceptance::tests());
    tests.extend(compose::tests());
    tests.extend(access_values::tests());
    tests.extend(hostile::tests());
    tests.extend(property::tests());
    ferrostack_testkit::run(tests)
}
