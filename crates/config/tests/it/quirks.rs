//! What the `config` crate does to the tree, pinned: the loader relies on (or works around) each.

use serde_json::{Value, json};

use crate::{assert_problem, load, problems};

fn provider_config(yaml_config: &str, pairs: &[(&str, &str)]) -> Value {
    let yaml = format!(
        "version: 2\nproviders:\n  inference:\n  - provider_id: p\n    provider_type: remote::passthrough\n    config: {yaml_config}\n"
    );
    load(&yaml, pairs).config.providers["inference"][0].config.0.clone()
}

#[test]
fn file_keys_keep_their_case() {
    let c = provider_config("{CamelKey: 1, UPPER: 2}", &[]);
    assert_eq!(c, json!({"CamelKey": 1, "UPPER": 2}));
    let l = load(
        "version: 2\nproviders: {inference: [{provider_id: p, provider_type: t}]}\nmodels: [{model_id: m, provider_id: p, metadata: {ContextLength: 8}}]\n",
        &[],
    );
    assert_eq!(l.config.models[0].metadata["ContextLength"], json!(8), "model metadata keys keep their case");
}

#[test]
fn nested_keys_with_dots_are_kept() {
    let c = provider_config("{a.b: 1, 'x.y.z': {k: v}}", &[]);
    assert_eq!(c, json!({"a.b": 1, "x.y.z": {"k": "v"}}));
}

#[test]
fn top_level_keys_with_dots_are_split() {
    // The config crate reads top-level keys as paths: `server.port: 1` sets server.port.
    let l = load("version: 2\nserver.port: 1234\n", &[]);
    assert_eq!(l.config.server.port, 1234);
    // An unknown section is accepted and listed as ignored (issue 17): under its first segment.
    let l = load("version: 2\nfoo.bar: 1\n", &[]);
    assert_eq!(l.coverage.ignored, ["foo"], "dotted unknown key");
    let p = problems("version: 2\nservr.port: 1\n", &[]);
    assert_problem(&p, "servr", &["unknown field `servr`", "`server`"], "dotted near miss");
}

#[test]
fn yaml_types_are_kept() {
    let c = provider_config(
        "{n: null, tilde: ~, s: '123', i: 123, f: 1.5, b: true, neg: -3, big: 9007199254740993, e: {}, l: []}",
        &[],
    );
    assert_eq!(
        c,
        json!({"n": null, "tilde": null, "s": "123", "i": 123, "f": 1.5, "b": true, "neg": -3, "big": 9_007_199_254_740_993_i64, "e": {}, "l": []})
    );
}

#[test]
fn empty_provider_config_and_lists() {
    let l = load("version: 2\nproviders: {}\nmodels: []\n", &[]);
    assert!(l.config.providers.is_empty() && l.config.models.is_empty());
    let c = provider_config("{}", &[]);
    assert_eq!(c, json!({}));
}

#[test]
fn override_keys_are_lower_cased() {
    // Environment names are upper case; the config crate lower-cases the whole key, so an override
    // cannot reach a key with upper-case letters: it creates a lower-case sibling.
    let c = provider_config("{CamelKey: 1}", &[("FERROSTACK__PROVIDERS__INFERENCE__0__CONFIG__CAMELKEY", "2")]);
    assert_eq!(c, json!({"CamelKey": 1, "camelkey": 2}));
}

#[test]
fn override_digit_segments_index_lists() {
    let c = provider_config("{url: http://a}", &[("FERROSTACK__PROVIDERS__INFERENCE__0__CONFIG__URL", "http://b")]);
    assert_eq!(c, json!({"url": "http://b"}), "the list stays a list, its entry is updated");
}

#[test]
fn override_values_are_parsed_but_string_fields_keep_the_text() {
    // try_parsing turns "0123" into 123 and "true" into a bool; a string field takes the text.
    let yaml = "version: 2\nstorage:\n  backends:\n    kv: {type: kv_sqlite, db_path: /x}\n  stores: {metadata: {backend: kv, namespace: r}, inference: null, conversations: null, prompts: null, connectors: null}\n";
    let l = load(
        yaml,
        &[
            ("FERROSTACK__STORAGE__STORES__METADATA__NAMESPACE", "0123"),
            ("FERROSTACK__TELEMETRY__LOG_LEVEL", "inf"),
            ("FERROSTACK__SERVER__HOST", "TRUE"),
            ("FERROSTACK__SERVER__PORT", "9000"),
        ],
    );
    assert_eq!(l.config.storage.stores.metadata.as_ref().map(|m| m.namespace.as_str()), Some("0123"));
    assert_eq!(l.config.telemetry.log_level, "inf", "a float the crate parses (infinity), kept as text");
    assert_eq!(l.config.server.host, "TRUE");
    assert_eq!(l.config.server.port, 9000);
    let c = provider_config("{}", &[("FERROSTACK__PROVIDERS__INFERENCE__0__CONFIG__N", "0123")]);
    assert_eq!(c, json!({"n": 123}), "in free-form config the parsed number is what remains");
}

#[test]
fn empty_override_is_an_empty_string() {
    let p = problems("version: 2\n", &[("FERROSTACK__SERVER__HOST", "")]);
    assert_problem(&p, "server.host", &["must not be empty"], "empty override");
}

#[test]
fn anchors_and_aliases() {
    // Aliases are resolved to copies of the anchored node; merge keys (`<<`) are not YAML 1.2 and
    // stay an ordinary key, which is then unknown.
    let c = provider_config("{a: &u {x: 1}, b: *u}", &[]);
    assert_eq!(c, json!({"a": {"x": 1}, "b": {"x": 1}}));
    let p = problems("version: 2\ndefaults: &d {port: 1}\nserver:\n  <<: *d\n", &[]);
    assert!(p.iter().any(|x| x.message.contains("unknown field")), "{p}");
}
