//! Authentication providers against a fake identity provider served by the test itself on a
//! loopback port: a JWKS (keys generated here: RSA, P-256, Ed25519), an RFC 7662 introspection
//! endpoint, a custom authentication endpoint, and an endpoint that never answers (timeouts).
// A `harness = false` target is not compiled with cfg(test), so clippy's allow-unwrap-in-tests does
// not reach it.
#![expect(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod custom;
mod headers;
mod introspection;
mod jwks;
mod support;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(jwks::tests());
    tests.extend(introspection::tests());
    tests.extend(custom::tests());
    tests.extend(headers::tests());
    ferrostack_testkit::run(tests)
}
