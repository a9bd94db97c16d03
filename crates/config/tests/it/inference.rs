//! The typed config of served inference providers (`remote::openai`, `remote::vllm`,
//! `remote::ollama`): parsing, defaults, every problem, secrets.

use ferrostack_config::{
    InferenceProviderConfig, InferenceProviderKind, default_inference_connect_timeout_ms,
    default_inference_max_idle_connections, default_inference_timeout_ms,
};
use serde_json::{Value, json};

use crate::{assert_problem, load, problems, yaml};

/// A config with one inference provider of `provider_type` and `config`.
fn with_provider(provider_type: &str, config: Value) -> String {
    yaml(&json!({
        "version": 2,
        "providers": {"inference": [{"provider_id": "p", "provider_type": provider_type, "config": config}]},
        "models": [{"model_id": "m", "provider_id": "p"}],
    }))
}

fn parsed(provider_type: &str, config: Value, pairs: &[(&str, &str)]) -> InferenceProviderConfig {
    let l = load(&with_provider(provider_type, config), pairs);
    assert!(l.warnings.is_empty(), "served types do not warn: {:?}", l.warnings);
    let entry = &l.config.providers["inference"][0];
    match InferenceProviderConfig::from_entry(entry, "providers.inference[0]") {
        Some(Ok(c)) => c,
        other => panic!("{provider_type}: {other:?}"),
    }
}

#[test]
fn defaults_per_type() {
    let openai = parsed("remote::openai", json!({}), &[]);
    assert_eq!(openai.kind, InferenceProviderKind::OpenAi);
    assert_eq!(openai.url, "https://api.openai.com/v1");
    assert_eq!(openai.api_key(), None);
    assert_eq!(openai.timeout_ms, default_inference_timeout_ms());
    assert_eq!(openai.connect_timeout_ms, default_inference_connect_timeout_ms());
    assert_eq!(openai.max_idle_connections, default_inference_max_idle_connections());
    assert!(openai.verify_tls);
    assert_eq!(openai.tls_cafile, None);

    let ollama = parsed("remote::ollama", Value::Null, &[]);
    assert_eq!(ollama.url, "http://localhost:11434/v1");
    let ollama = parsed("remote::ollama", json!({"url": "http://ollama:11434/"}), &[]);
    assert_eq!(ollama.url, "http://ollama:11434/v1", "Llama Stack's ollama url is the server; /v1 is added");

    let vllm = parsed("remote::vllm", json!({"url": "http://vllm:8000/v1/"}), &[]);
    assert_eq!(vllm.kind, InferenceProviderKind::Vllm);
    assert_eq!(vllm.url, "http://vllm:8000/v1", "trailing slash dropped");
}

#[test]
fn every_field_and_the_aliases() {
    let c = parsed(
        "remote::openai",
        json!({
            "base_url": "https://llm.example.com/v1", "api_key": "${env.KEY}", "timeout_ms": 30000,
            "connect_timeout_ms": "250", "verify_tls": true, "tls_cafile": "/etc/ca.pem", "max_idle_connections": 8,
            "refresh_models": false, "allowed_models": ["a"], "max_tokens": 4096,
        }),
        &[("KEY", "sk-from-env")],
    );
    assert_eq!(c.url, "https://llm.example.com/v1");
    assert_eq!(c.api_key(), Some("sk-from-env"));
    assert_eq!((c.timeout_ms, c.connect_timeout_ms, c.max_idle_connections), (30000, 250, 8));
    assert_eq!(c.tls_cafile.as_deref(), Some("/etc/ca.pem"));

    let c = parsed("remote::vllm", json!({"url": "http://v", "api_token": "${env.TOKEN:=}"}), &[]);
    assert_eq!(c.api_key(), None, "an empty token from the environment means no key");
    let c = parsed("remote::vllm", json!({"url": "http://v", "api_token": "${env.TOKEN}"}), &[("TOKEN", "0123")]);
    assert!(c.api_key().is_some_and(|k| k.ends_with("123")), "a numeric-looking key is still a key");
    let c = parsed("remote::vllm", json!({"url": "http://v", "tls_verify": false}), &[]);
    assert!(!c.verify_tls, "Llama Stack's tls_verify: false");
    let c = parsed("remote::vllm", json!({"url": "http://v", "tls_verify": "/ca/bundle.pem"}), &[]);
    assert!(c.verify_tls);
    assert_eq!(c.tls_cafile.as_deref(), Some("/ca/bundle.pem"), "Llama Stack's tls_verify: <path>");
}

#[test]
fn each_problem() {
    const AT: &str = "providers.inference[0].config";
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, &str, Vec<&str>)> = vec![
        ("vllm without url", "remote::vllm", json!({}), "url", vec!["missing field `url`", "remote::vllm"]),
        ("url without scheme", "remote::vllm", json!({"url": "vllm:8000"}), "url", vec!["not a valid URL", "http://"]),
        ("url with a bad port", "remote::openai", json!({"base_url": "http://x:0/v1"}), "base_url", vec!["not a valid URL", "port"]),
        ("url not a string", "remote::vllm", json!({"url": ["http://v"]}), "url", vec!["expected a string, got a list"]),
        ("url and base_url", "remote::openai", json!({"url": "http://a", "base_url": "http://b"}), "base_url", vec!["either url or base_url"]),
        ("api_key and api_token", "remote::openai", json!({"api_key": "a", "api_token": "b"}), "api_token", vec!["either api_key or api_token"]),
        ("api_key a map", "remote::openai", json!({"api_key": {"k": "v"}}), "api_key", vec!["expected a secret string, got a map"]),
        ("api_key with a space", "remote::openai", json!({"api_key": "two words"}), "api_key", vec!["spaces"]),
        ("timeout zero", "remote::ollama", json!({"timeout_ms": 0}), "timeout_ms", vec!["between 1 and 3600000 ms, got 0"]),
        ("timeout a word", "remote::ollama", json!({"timeout_ms": "soon"}), "timeout_ms", vec!["expected an integer", "a string"]),
        ("connect timeout too long", "remote::ollama", json!({"connect_timeout_ms": 600_001}), "connect_timeout_ms", vec!["between 1 and 600000 ms"]),
        ("idle connections too many", "remote::ollama", json!({"max_idle_connections": 10_001}), "max_idle_connections", vec!["between 0 and 10000"]),
        ("verify_tls a number", "remote::ollama", json!({"verify_tls": 1}), "verify_tls", vec!["expected true or false, got a number"]),
        ("tls_cafile empty", "remote::ollama", json!({"tls_cafile": " "}), "tls_cafile", vec!["must not be empty"]),
        ("tls_cafile without verification", "remote::ollama", json!({"verify_tls": false, "tls_cafile": "/ca.pem"}), "tls_cafile", vec!["no effect"]),
        ("tls_verify and verify_tls", "remote::ollama", json!({"verify_tls": true, "tls_verify": false}), "tls_verify", vec!["either tls_verify or verify_tls"]),
        ("tls_verify a number", "remote::ollama", json!({"tls_verify": 3}), "tls_verify", vec!["a bool or the path of a CA bundle"]),
        ("unknown field", "remote::ollama", json!({"urll": "http://x"}), "urll", vec!["unknown field `urll`", "url, base_url"]),
        ("config not a map", "remote::ollama", json!("http://x"), "", vec!["expected a map of settings, got a string"]),
    ];
    for (case, ty, config, field, words) in cases {
        let p = problems(&with_provider(ty, config), &[]);
        let path = if field.is_empty() { AT.to_owned() } else { format!("{AT}.{field}") };
        assert_problem(&p, &path, &words, case);
        assert_eq!(p.len(), 1, "{case}: exactly one problem:\n{p}");
    }
}

#[test]
fn every_problem_at_once_and_in_file_terms() {
    let yaml = yaml(&json!({
        "version": 2,
        "providers": {"inference": [
            {"provider_id": "${env.OFF:=__disabled__}", "provider_type": "remote::vllm", "config": {}},
            {"provider_id": "v", "provider_type": "remote::vllm", "config": {"timeout_ms": 0, "nope": 1}},
        ]},
    }));
    let p = problems(&yaml, &[]);
    assert_eq!(p.len(), 3, "{p}");
    assert_problem(&p, "providers.inference[1].config.url", &["missing field `url`"], "counted as in the file");
    assert_problem(&p, "providers.inference[1].config.timeout_ms", &["between"], "range");
    assert_problem(&p, "providers.inference[1].config.nope", &["unknown field"], "unknown");
}

#[test]
fn api_keys_never_show() {
    const KEY: &str = "sk-Very-Secret-789";
    let yaml = with_provider("remote::openai", json!({"api_key": "${env.OPENAI_API_KEY}"}));
    let l = load(&yaml, &[("OPENAI_API_KEY", KEY)]);
    let c = InferenceProviderConfig::from_entry(&l.config.providers["inference"][0], "providers.inference[0]")
        .expect("a served type")
        .expect("valid");
    assert_eq!(c.api_key(), Some(KEY), "the client still gets it");
    for shown in [format!("{c:?}"), format!("{l:?}"), l.config.redacted_json().to_string()] {
        assert!(!shown.contains(KEY), "the key shows: {shown}");
        assert!(shown.contains("********"), "redaction marker missing: {shown}");
    }
    // A key in the wrong place: the problem names the type, never the value.
    let p = problems(&with_provider("remote::openai", json!({"api_key": [KEY]})), &[]);
    assert!(!p.to_string().contains(KEY), "{p}");
    let p = problems(&with_provider("remote::openai", json!({"api_key": "a", "api_token": KEY})), &[]);
    assert!(!p.to_string().contains(KEY), "{p}");
}

#[test]
fn other_types_are_not_parsed() {
    let l = load(&with_provider("remote::bedrock", json!({"anything": 1})), &[]);
    assert!(InferenceProviderConfig::from_entry(&l.config.providers["inference"][0], "x").is_none());
    assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
}
