//! The starter config (no config file): the engine variables enable providers with discovery on;
//! with none set, the built-in echo provider serves model `echo`.

use ferrostack_config::{ECHO_PROVIDER_TYPE, InferenceProviderConfig, InferenceProviderKind, load_default, load_str};

use crate::env;

fn starter(vars: &[(&str, &str)]) -> ferrostack_config::RunConfig {
    let mut pairs = vec![("FERROSTACK_HOME", "/tmp/ferrostack-starter-test")];
    pairs.extend_from_slice(vars);
    load_default(&env(&pairs)).unwrap_or_else(|e| panic!("the starter config loads: {e}")).config
}

fn provider(config: &ferrostack_config::RunConfig, id: &str) -> InferenceProviderConfig {
    let (i, entry) = config.providers["inference"]
        .iter()
        .enumerate()
        .find(|(_, e)| e.provider_id == id)
        .unwrap_or_else(|| panic!("no provider {id}"));
    match InferenceProviderConfig::from_entry(entry, &format!("providers.inference[{i}]")) {
        Some(Ok(c)) => c,
        other => panic!("provider {id} is not a served, valid entry: {other:?}"),
    }
}

#[test]
fn no_engine_variable_serves_the_echo_model() {
    let config = starter(&[]);
    let providers = &config.providers["inference"];
    assert_eq!(providers.len(), 1);
    assert_eq!((providers[0].provider_id.as_str(), providers[0].provider_type.as_str()), ("echo", ECHO_PROVIDER_TYPE));
    let models: Vec<&str> = config.models.iter().map(|m| m.model_id.as_str()).collect();
    assert_eq!(models, ["echo"]);
}

#[test]
fn each_engine_variable_enables_its_provider_with_discovery() {
    let config = starter(&[("OLLAMA_URL", "http://gpu-box:11434")]);
    let ollama = provider(&config, "ollama");
    assert_eq!(ollama.kind, InferenceProviderKind::Ollama);
    assert_eq!(ollama.url, "http://gpu-box:11434/v1");
    assert!(ollama.refresh_models);
    assert!(config.models.is_empty(), "no echo once a real engine is there: {:?}", config.models);
    assert_eq!(config.providers["inference"].len(), 1);

    let config = starter(&[("VLLM_URL", "http://vllm:8000/v1"), ("VLLM_API_TOKEN", "vllm-secret")]);
    let vllm = provider(&config, "vllm");
    assert_eq!((vllm.url.as_str(), vllm.api_key()), ("http://vllm:8000/v1", Some("vllm-secret")));
    assert!(vllm.refresh_models);
    assert!(!format!("{config:?}").contains("vllm-secret"), "the token never prints");
    let vllm = provider(&starter(&[("VLLM_URL", "http://vllm:8000/v1")]), "vllm");
    assert_eq!(vllm.api_key(), None, "the token is optional");

    let config = starter(&[("OPENAI_API_KEY", "sk-test")]);
    let openai = provider(&config, "openai");
    assert_eq!((openai.url.as_str(), openai.api_key()), ("https://api.openai.com/v1", Some("sk-test")));
    let config = starter(&[("OPENAI_API_KEY", "sk-test"), ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")]);
    assert_eq!(provider(&config, "openai").url, "http://127.0.0.1:9/v1");

    let config =
        starter(&[("OLLAMA_URL", "http://a:11434"), ("VLLM_URL", "http://b:8000/v1"), ("OPENAI_API_KEY", "k")]);
    let ids: Vec<&str> = config.providers["inference"].iter().map(|p| p.provider_id.as_str()).collect();
    assert_eq!(ids, ["ollama", "vllm", "openai"]);
}

#[test]
fn a_config_file_gets_no_starter_providers() {
    let loaded = load_str("version: 2\n", &env(&[("OLLAMA_URL", "http://a:11434")])).unwrap();
    assert!(loaded.config.providers.is_empty(), "{:?}", loaded.config.providers);
    assert!(loaded.config.models.is_empty());
}

#[test]
fn refresh_settings_are_checked() {
    let yaml = "version: 2\nproviders:\n  inference:\n    - { provider_id: v, provider_type: remote::vllm, config: { url: 'http://v/v1', refresh_models: maybe, refresh_interval_seconds: 0 } }\n    - { provider_id: e, provider_type: inline::echo, config: { url: 'http://x' } }\n";
    let err = load_str(yaml, &env(&[])).unwrap_err().to_string();
    assert!(err.contains("providers.inference[0].config.refresh_models"), "{err}");
    assert!(err.contains("providers.inference[0].config.refresh_interval_seconds"), "{err}");
    assert!(err.contains("providers.inference[1].config: inline::echo takes no settings"), "{err}");
}
