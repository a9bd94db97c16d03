//! The http crate's own tests: the error-code table against docs/api.md and the exact body of
//! every status, and the list-query extractor.

#![expect(clippy::unwrap_used, reason = "a test fails by panicking; harness = false targets are not cfg(test)")]

mod errors;
mod list;
mod openapi;
mod props;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(errors::tests());
    tests.extend(list::tests());
    tests.extend(openapi::tests());
    tests.extend(props::tests());
    ferrostack_testkit::run(tests)
}
