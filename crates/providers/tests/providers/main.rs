//! The providers crate's tests, in one binary: the SSE parser and the stream assembler, request
//! validation, the registry, and the upstream client against a fake OpenAI-compatible server on a
//! loopback port.
// A `harness = false` target is not compiled with cfg(test), so clippy's allow-unwrap-in-tests does
// not reach it.
#![expect(clippy::unwrap_used, clippy::expect_used, reason = "test code: a panic is a failed test")]

mod plain;
mod property;
mod support;
mod unit;
mod upstream;
mod validation;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(unit::tests());
    tests.extend(property::tests());
    tests.extend(validation::tests());
    tests.extend(upstream::tests());
    tests.extend(plain::tests());
    ferrostack_testkit::run(tests)
}
