//! Authentication providers against a fake identity provider served by the test itself on a
//! loopback port: a JWKS (keys generated here: RSA, P-256, Ed25519), an RFC 7662 introspection
//! endpoint, a custom authentication endpoint, a GitHub API, a Kubernetes API server's reviews,
//! and an endpoint that never answers (timeouts).
// A `harness = false` target is not compiled with cfg(test), so clippy's allow-unwrap-in-tests does
// not reach it.
#![expect(clippy::unwrap_used, reason = "test code: a panic is a failed test")]

mod caching;
mod custom;
mod github;
mod headers;
mod introspection;
mod jwks;
mod kubernetes;
mod support;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut tests = Vec::new();
    tests.extend(jwks::tests());
    tests.extend(introspection::tests());
    tests.extend(custom::tests());
    tests.extend(headers::tests());
    tests.extend(github::tests());
    tests.extend(kubernetes::tests());
    tests.extend(caching::tests());
    ferrostack_testkit::run(tests)
}
