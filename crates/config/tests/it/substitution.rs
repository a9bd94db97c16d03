//! `${env.NAME}` substitution, row by row of the reference's rules. Values are observed inside a
//! provider's free-form `config`, where the tree is kept as substitution leaves it.

use serde_json::{Value, json};

use crate::{assert_problem, env, load, problems, yaml};

/// A config whose `providers.inference[0].config.v` is `template`.
fn with_value(template: &str) -> String {
    yaml(&json!({
        "version": 2,
        "providers": {"inference": [{"provider_id": "p", "provider_type": "remote::passthrough", "config": {"v": template}}]},
    }))
}

/// What `template` resolves to, or the problems' text.
fn resolve(template: &str, pairs: &[(&str, &str)]) -> Result<Value, String> {
    match ferrostack_config::load_str(&with_value(template), &env(pairs)) {
        Ok(l) => Ok(l.config.providers["inference"][0].config.0["v"].clone()),
        Err(e) => Err(e.to_string()),
    }
}

const V: &str = "providers.inference[0].config.v";

/// Name, template, environment, expected value.
type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], Value);

#[test]
fn forms_and_coercion() {
    let home = ("HOME", "/home/u");
    #[rustfmt::skip]
    let cases: &[Case] = &[
        // name, template, environment, expected value
        ("plain, set", "${env.V}", &[("V", "abc")], json!("abc")),
        ("default, set", "${env.V:=dflt}", &[("V", "abc")], json!("abc")),
        ("default, unset", "${env.V:=dflt}", &[], json!("dflt")),
        ("default, empty", "${env.V:=dflt}", &[("V", "")], json!("dflt")),
        ("empty default, unset", "${env.V:=}", &[], Value::Null),
        ("alternative, set", "${env.V:+alt}", &[("V", "abc")], json!("alt")),
        ("alternative, unset", "${env.V:+alt}", &[], Value::Null),
        ("alternative, empty", "${env.V:+alt}", &[("V", "")], Value::Null),
        ("empty alternative, set", "${env.V:+}", &[("V", "abc")], Value::Null),
        ("zero is an int", "${env.V}", &[("V", "0")], json!(0)),
        ("port is an int", "${env.V}", &[("V", "5432")], json!(5432)),
        ("negative int", "${env.V}", &[("V", "-7")], json!(-7)),
        ("upper-case TRUE is a bool", "${env.V}", &[("V", "TRUE")], json!(true)),
        ("False is a bool", "${env.V}", &[("V", "False")], json!(false)),
        ("float", "${env.V}", &[("V", "1.5")], json!(1.5)),
        ("exponent is a float", "${env.V}", &[("V", "1e3")], json!(1000.0)),
        ("nan stays a string", "${env.V}", &[("V", "nan")], json!("nan")),
        ("text stays a string", "${env.V}", &[("V", "a1")], json!("a1")),
        ("default coerced", "${env.V:=8000}", &[], json!(8000)),
        ("several occurrences", "http://${env.H}:${env.P}/v1", &[("H", "h"), ("P", "80")], json!("http://h:80/v1")),
        ("several occurrences coerced together", "${env.A}${env.B}", &[("A", "1"), ("B", "2")], json!(12)),
        ("literal text around a number", "port-${env.P}", &[("P", "80")], json!("port-80")),
        ("default cannot contain }", "${env.V:=a}b}", &[], json!("ab}")),
        ("lower-case name is literal", "${env.lower}", &[("lower", "x")], json!("${env.lower}")),
        ("shell syntax is literal", "${env.V:-x}", &[("V", "y")], json!("${env.V:-x}")),
        ("no substitution, no coercion", "123", &[], json!("123")),
        ("no substitution, bool text", "true", &[], json!("true")),
        ("no substitution, empty", "", &[], json!("")),
        ("tilde in a value is expanded", "${env.D}", &[("D", "~/data"), home], json!("/home/u/data")),
        ("tilde in a default is expanded", "${env.D:=~/x}/kv.db", &[home], json!("/home/u/x/kv.db")),
        ("tilde alone", "${env.D}", &[("D", "~"), home], json!("/home/u")),
        ("literal tilde is not expanded by substitution", "~/x/${env.F}", &[("F", "f"), home], json!("~/x/f")),
        ("tilde of another user is kept", "${env.D}", &[("D", "~bob/x"), home], json!("~bob/x")),
    ];
    for (name, template, pairs, want) in cases {
        match resolve(template, pairs) {
            Ok(got) => assert_eq!(&got, want, "case {name:?}: {template:?}"),
            Err(e) => panic!("case {name:?}: {template:?} does not load: {e}"),
        }
    }
}

#[test]
fn yaml_literals_are_not_coerced() {
    let l = load(
        "version: 2\nproviders:\n  inference:\n  - provider_id: p\n    provider_type: remote::passthrough\n    config: {quoted: '123', number: 123, yes_text: 'true', empty: ''}\n",
        &[],
    );
    let c = &l.config.providers["inference"][0].config.0;
    assert_eq!(c["quoted"], json!("123"), "quoted YAML number stays a string");
    assert_eq!(c["number"], json!(123), "YAML number stays a number");
    assert_eq!(c["yes_text"], json!("true"), "quoted YAML bool stays a string");
    assert_eq!(c["empty"], json!(""), "empty YAML string stays empty, not null");
}

#[test]
fn unset_variable_is_a_problem_with_path_and_hint() {
    for (name, pairs) in [("unset", &[][..]), ("empty", &[("V", "")][..])] {
        let p = problems(&with_value("${env.V}"), pairs);
        assert_problem(&p, V, &["environment variable 'V' is not set or empty", ":=", ":+"], name);
    }
}

#[test]
fn every_unset_variable_is_reported() {
    let yaml = yaml(&json!({
        "version": 2,
        "server": {"host": "${env.HOST}"},
        "providers": {"inference": [{"provider_id": "p", "provider_type": "remote::passthrough",
            "config": {"url": "http://${env.A}:${env.B}", "list": ["ok", "${env.C}"]}}]},
    }));
    let p = problems(&yaml, &[]);
    assert_eq!(p.len(), 4, "all four unset variables:\n{p}");
    assert_problem(&p, "server.host", &["'HOST'"], "top-level field");
    assert_problem(&p, "providers.inference[0].config.list[1]", &["'C'"], "list entry");
    let url: Vec<_> = p.iter().filter(|x| x.path == "providers.inference[0].config.url").collect();
    assert_eq!(url.len(), 2, "both variables of one string:\n{p}");
    assert!(url[0].message.contains("'A'") && url[1].message.contains("'B'"), "{p}");
}

#[test]
fn unset_variable_is_not_also_a_type_error() {
    // server.port cannot be a string, but the unset variable is the only thing to report.
    let p = problems("version: 2\nserver:\n  port: ${env.PORT}\n", &[]);
    assert_eq!(p.len(), 1, "{p}");
    assert_problem(&p, "server.port", &["'PORT'"], "port");
}

#[test]
fn disabled_provider_is_dropped_without_expanding_it() {
    let yaml = yaml(&json!({
        "version": 2,
        "providers": {"inference": [
            {"provider_id": "${env.ENABLE_VLLM:=__disabled__}", "provider_type": "remote::passthrough",
             "config": {"url": "${env.VLLM_URL}", "api_token": "${env.VLLM_TOKEN}"}},
            {"provider_id": "__disabled__", "provider_type": "remote::x", "config": {"url": "${env.NOPE}"}},
            {"provider_id": "ollama", "provider_type": "remote::ollama", "config": {}},
        ]},
    }));
    let l = load(&yaml, &[]);
    let ids: Vec<_> = l.config.providers["inference"].iter().map(|p| p.provider_id.as_str()).collect();
    assert_eq!(ids, ["ollama"], "both disabled entries dropped, no error for their unset variables");

    let l = load(&yaml, &[("ENABLE_VLLM", "vllm"), ("VLLM_URL", "http://v"), ("VLLM_TOKEN", "t")]);
    let ids: Vec<_> = l.config.providers["inference"].iter().map(|p| p.provider_id.as_str()).collect();
    assert_eq!(ids, ["vllm", "ollama"], "enabled when ENABLE_VLLM is set");

    let p = problems(&yaml, &[("ENABLE_VLLM", "vllm")]);
    assert_problem(&p, "providers.inference[0].config.url", &["'VLLM_URL'"], "enabled entry is expanded");
}

#[test]
fn resource_ids_toggle_entries() {
    let yaml = yaml(&json!({
        "version": 2,
        "providers": {"inference": [{"provider_id": "p", "provider_type": "remote::passthrough", "config": {
            "shields": [{"shield_id": "${env.SHIELD:+guard}", "x": "${env.UNSET_BUT_DROPPED}"}, {"shield_id": "keep"}],
            "stores": [{"vector_store_id": "${env.VS:=}"}],
        }}]},
        "models": [
            {"model_id": "${env.SMALL:+small}", "provider_id": "p", "provider_model_id": "${env.SMALL_NAME}"},
            {"model_id": "big", "provider_id": "p"},
        ],
    }));
    let l = load(&yaml, &[]);
    let ids: Vec<_> = l.config.models.iter().map(|m| m.model_id.as_str()).collect();
    assert_eq!(ids, ["big"], "model with empty model_id dropped, its unset variable ignored");
    let c = &l.config.providers["inference"][0].config.0;
    assert_eq!(c["shields"], json!([{"shield_id": "keep"}]), "shield_id toggle");
    assert_eq!(c["stores"], json!([]), "vector_store_id toggle");

    let l = load(&yaml, &[("SMALL", "1"), ("SMALL_NAME", "meta/small"), ("SHIELD", "1"), ("UNSET_BUT_DROPPED", "x")]);
    let ids: Vec<_> = l.config.models.iter().map(|m| m.model_id.as_str()).collect();
    assert_eq!(ids, ["small", "big"], "model kept when SMALL is set");
    assert_eq!(l.config.models[0].provider_model_id.as_deref(), Some("meta/small"));
}

#[test]
fn paths_after_a_dropped_entry_are_the_files() {
    let config = |last: Value| {
        yaml(&json!({
            "version": 2,
            "providers": {"inference": [{"provider_id": "p", "provider_type": "remote::passthrough"}]},
            "models": [
                {"model_id": "${env.A:+a}", "provider_id": "p"},
                {"model_id": "b", "provider_id": "nope"},
                last,
            ],
        }))
    };
    // The typed pass stops at the first error: the unknown field of models[2].
    let p = problems(&config(json!({"model_id": "c", "provider_id": "p", "bogus": 1})), &[]);
    assert_problem(&p, "models[2].bogus", &["unknown field `bogus`"], "deserialization path");
    let p = problems(&config(json!({"model_id": "c", "provider_id": "p"})), &[]);
    assert_problem(&p, "models[1].provider_id", &["unknown provider 'nope'"], "validation path");
}

#[test]
fn text_that_looks_like_a_substitution_is_a_warning() {
    let l = load(&with_value("${env.lower} and ${env.X:-y}"), &[]);
    let w: Vec<_> = l.warnings.iter().filter(|w| w.starts_with(V)).collect();
    assert_eq!(w.len(), 1, "{:?}", l.warnings);
    assert!(w[0].contains("${env.lower}") && w[0].contains("A-Z"), "{}", w[0]);
}

#[test]
fn string_fields_keep_the_text_of_substituted_numbers() {
    let yaml = "version: 2\nstorage:\n  backends:\n    kv: {type: kv_sqlite, db_path: /tmp/kv.db}\n    pg: {type: sql_postgres, host: '${env.H}', db: '${env.DB}', user: '${env.U}', password: '${env.PW}', port: '${env.PORT}'}\n  stores:\n    metadata: {backend: kv, namespace: registry}\n    prompts: null\n    connectors: null\n    inference: {backend: pg}\n    conversations: {backend: pg}\n";
    let l = load(yaml, &[("H", "10.0.0.1"), ("DB", "0123"), ("U", "1e3"), ("PW", "007"), ("PORT", "6543")]);
    let ferrostack_config::BackendConfig::SqlPostgres(pg) = &l.config.storage.backends["pg"] else {
        panic!("pg is not sql_postgres");
    };
    assert_eq!(pg.host, "10.0.0.1", "a float-looking host");
    assert_eq!(pg.db, "0123", "leading zero kept");
    assert_eq!(pg.user, "1e3", "exponent-looking text kept");
    assert_eq!(pg.password_secret(), Some("007"), "numeric password kept as written");
    assert_eq!(pg.port, 6543, "port coerced to int");
}
