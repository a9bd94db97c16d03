//! Integration tests of ferrostack-config (one test binary, one module per topic).

mod auth;
mod docs;
mod examples;
mod inference;
mod llama_stack;
mod loading;
mod policy;
mod quirks;
mod secrets;
mod starter;
mod substitution;
mod validation;

use ferrostack_config::{ConfigError, Env, Loaded, Problems, load_str};
use serde_json::Value;

/// An environment made of `pairs`.
pub fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

/// Load YAML (JSON is YAML too) with the given environment; panics with the error if it fails.
pub fn load(yaml: &str, pairs: &[(&str, &str)]) -> Loaded {
    match load_str(yaml, &env(pairs)) {
        Ok(l) => l,
        Err(e) => panic!("config does not load: {e}\n---\n{yaml}"),
    }
}

/// Load a config that must be invalid; its problems.
pub fn problems(yaml: &str, pairs: &[(&str, &str)]) -> Problems {
    match load_str(yaml, &env(pairs)) {
        Ok(l) => panic!("config loads but should not: {:#}\n---\n{yaml}", l.config.redacted_json()),
        Err(ConfigError::Invalid(p)) => p,
        Err(e) => panic!("expected ConfigError::Invalid, got: {e}\n---\n{yaml}"),
    }
}

/// Assert that `problems` has one at `path` whose message contains every word of `words`.
#[track_caller]
pub fn assert_problem(problems: &Problems, path: &str, words: &[&str], case: &str) {
    let Some(p) = problems.at(path) else {
        panic!("{case}: no problem at {path}; problems:\n{problems}");
    };
    for w in words {
        assert!(p.message.contains(w), "{case}: problem at {path} does not mention {w:?}: {}", p.message);
    }
}

/// A JSON value as config text.
pub fn yaml(v: &Value) -> String {
    v.to_string()
}
