//! Secrets never show: not in Debug, not in errors, not in `config check` output.

use serde_json::json;

use crate::{env, load, problems};

const YAML: &str = "\
version: 2
storage:
  backends:
    kv: {type: kv_sqlite, db_path: /x/kv.db}
    pg: {type: sql_postgres, user: fs, password: '${env.PGPASSWORD}'}
  stores:
    metadata: {backend: kv, namespace: registry}
    inference: {backend: pg}
    conversations: {backend: pg}
    prompts: null
    connectors: null
providers:
  inference:
  - provider_id: openai
    provider_type: remote::passthrough
    config:
      url: https://api.example.com
      api_token: ${env.OPENAI_TOKEN}
      nested: {client_secret: '${env.OPENAI_TOKEN}', api_key: literal-key}
";

const PASSWORD: &str = "pg-Secret-123";
const TOKEN: &str = "sk-Token-456";

fn secrets() -> [(&'static str, &'static str); 2] {
    [("PGPASSWORD", PASSWORD), ("OPENAI_TOKEN", TOKEN)]
}

#[test]
fn debug_hides_password_and_token() {
    let l = load(YAML, &secrets());
    let dbg = format!("{l:?}");
    assert!(!dbg.contains(PASSWORD), "password in Debug: {dbg}");
    assert!(!dbg.contains(TOKEN), "token in Debug: {dbg}");
    assert!(!dbg.contains("literal-key"), "api_key in Debug: {dbg}");
    assert!(dbg.contains("********"), "{dbg}");
    let ferrostack_config::BackendConfig::SqlPostgres(pg) = &l.config.storage.backends["pg"] else { panic!("pg") };
    assert_eq!(pg.password_secret(), Some(PASSWORD), "the one place that connects still gets it");
    assert_eq!(l.config.providers["inference"][0].config.0["api_token"], json!(TOKEN), "the provider gets it");
}

#[test]
fn redacted_json_shows_stars() {
    let l = load(YAML, &secrets());
    let v = l.config.redacted_json();
    assert_eq!(v["storage"]["backends"]["pg"]["password"], json!("********"));
    let c = &v["providers"]["inference"][0]["config"];
    assert_eq!(c["api_token"], json!("********"));
    assert_eq!(c["nested"], json!({"client_secret": "********", "api_key": "********"}));
    assert_eq!(c["url"], json!("https://api.example.com"), "other values shown");
    assert_eq!(v["storage"]["backends"]["pg"]["user"], json!("fs"));
    let text = v.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains(TOKEN), "{text}");
}

#[test]
fn errors_do_not_show_environment_values() {
    // A secret that ends up where a number is expected: the type error must not quote it.
    let yaml = "version: 2\nserver:\n  port: ${env.PGPASSWORD}\n";
    let p = problems(yaml, &secrets());
    let text = p.to_string();
    assert!(text.starts_with("server.port: invalid type: string"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");

    let p = problems("version: 2\n", &[("FERROSTACK__SERVER__PORT", PASSWORD)]);
    assert!(!p.to_string().contains(PASSWORD), "override value in: {p}");

    let p = problems(
        "version: 2\nstorage:\n  backends:\n    pg: {type: kv_postgres, user: u, ssl_mode: '${env.PGPASSWORD}'}\n",
        &secrets(),
    );
    assert!(!p.to_string().contains(PASSWORD), "variant name in: {p}");
}

#[test]
fn substitution_errors_name_the_variable_only() {
    // OPENAI_TOKEN is unset; PGPASSWORD is set and must not appear anywhere.
    let err = ferrostack_config::load_str(YAML, &env(&[("PGPASSWORD", PASSWORD)])).expect_err("token unset");
    let text = err.to_string();
    assert!(text.contains("'OPENAI_TOKEN'"), "{text}");
    assert!(!text.contains(PASSWORD), "{text}");
    assert!(!format!("{err:?}").contains(PASSWORD), "{err:?}");
}

#[test]
fn env_debug_hides_values() {
    let dbg = format!("{:?}", env(&secrets()));
    assert!(dbg.contains("PGPASSWORD") && !dbg.contains(PASSWORD), "{dbg}");
}
