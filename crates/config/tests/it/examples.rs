//! The example run configs in `deploy/examples/` load as they are.

use std::path::{Path, PathBuf};

use ferrostack_config::{BackendConfig, ConfigError, SslMode, load_file, load_str};
use serde_json::json;

use crate::{assert_problem, env, problems};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/examples")
}

fn read(name: &str) -> String {
    let path = examples_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const POSTGRES_ENV: [(&str, &str); 6] = [
    ("POSTGRES_HOST", "db.internal"),
    ("POSTGRES_PORT", "5432"),
    ("POSTGRES_DB", "ferrostack"),
    ("POSTGRES_USER", "fs"),
    ("POSTGRES_PASSWORD", "s3cret"),
    ("HOME", "/home/u"),
];

#[test]
fn named_backends_loads_unchanged() {
    let path = examples_dir().join("named-backends.yaml");
    let l = load_file(&path, &env(&POSTGRES_ENV)).unwrap_or_else(|e| panic!("{e}"));
    let c = &l.config;
    assert_eq!(c.version, 2);
    assert!(!c.storage.builtin);

    let BackendConfig::KvSqlite(kv) = &c.storage.backends["kv_default"] else { panic!("kv_default is not kv_sqlite") };
    assert_eq!(kv.db_path, "/home/u/.ferrostack/distributions/demo/kvstore.db", "~ expanded");
    let BackendConfig::SqlPostgres(pg) = &c.storage.backends["sql_default"] else {
        panic!("sql_default is not sql_postgres")
    };
    assert_eq!(
        (pg.host.as_str(), pg.port, pg.db.as_str(), pg.user.as_str()),
        ("db.internal", 5432, "ferrostack", "fs")
    );
    assert_eq!(pg.password_secret(), Some("s3cret"));
    assert_eq!(pg.ssl_mode, SslMode::Disable);
    assert_eq!(c.redacted_json()["storage"]["backends"]["sql_default"]["port"], json!(5432), "port is an int");

    let s = &c.storage.stores;
    assert_eq!(
        s.metadata.as_ref().map(|m| (m.backend.as_str(), m.namespace.as_str())),
        Some(("kv_default", "registry"))
    );
    let inference = s.inference.as_ref().expect("inference store");
    assert_eq!(
        (
            inference.backend.as_str(),
            inference.table_name.as_deref(),
            inference.max_write_queue_size,
            inference.num_writers
        ),
        ("sql_default", Some("inference_store"), 10000, 4)
    );
    let conversations = s.conversations.as_ref().expect("conversations store");
    assert_eq!(
        (conversations.backend.as_str(), conversations.table_name.as_deref()),
        ("sql_default", Some("openai_conversations"))
    );
    assert!(s.responses.is_none(), "responses off unless configured");
    assert_eq!(s.prompts.as_ref().map(|p| p.backend.as_str()), Some("kv_default"), "default prompts store");

    let chroma = &c.providers["vector_io"][0];
    assert_eq!((chroma.provider_id.as_str(), chroma.provider_type.as_str()), ("chromadb", "remote::chromadb"));
    assert_eq!(chroma.config.0["url"], json!("http://localhost:8000"), "default of CHROMADB_URL");
    assert_eq!(
        chroma.config.0["persistence"],
        json!({"backend": "kv_default", "namespace": "vector_io::chroma_remote"})
    );
    assert_eq!(
        l.warnings,
        ["accepted and ignored (not served by ferrostack): providers.vector_io[0] chromadb (remote::chromadb)"]
    );
}

#[test]
fn named_backends_persistence_reference_is_checked() {
    let text = read("named-backends.yaml");
    let persistence = "        persistence:\n          backend: kv_default\n";
    assert!(text.contains(persistence), "the example changed");

    let unknown = text.replace(persistence, "        persistence:\n          backend: kv_chroma\n");
    let p = problems(&unknown, &POSTGRES_ENV);
    assert_problem(
        &p,
        "providers.vector_io[0].config.persistence.backend",
        &["unknown backend 'kv_chroma'", "backends defined: kv_default, sql_default"],
        "unknown persistence backend",
    );
    assert_eq!(p.len(), 1, "{p}");

    let wrong_family = text.replace(persistence, "        persistence:\n          backend: sql_default\n");
    let p = problems(&wrong_family, &POSTGRES_ENV);
    assert_problem(
        &p,
        "providers.vector_io[0].config.persistence.backend",
        &["needs a kv_* backend", "'sql_default' is sql_postgres"],
        "persistence on a SQL backend",
    );
}

#[test]
fn named_backends_without_postgres_env() {
    let err = load_str(&read("named-backends.yaml"), &env(&[("HOME", "/home/u")])).expect_err("POSTGRES_* unset");
    let ConfigError::Invalid(p) = err else { panic!("not invalid: {err}") };
    for (field, var) in [
        ("host", "POSTGRES_HOST"),
        ("port", "POSTGRES_PORT"),
        ("db", "POSTGRES_DB"),
        ("user", "POSTGRES_USER"),
        ("password", "POSTGRES_PASSWORD"),
    ] {
        assert_problem(&p, &format!("storage.backends.sql_default.{field}"), &[&format!("'{var}'")], field);
    }
    assert_eq!(p.len(), 5, "only the unset variables:\n{p}");
}

#[test]
fn every_example_loads() {
    let mut pairs = POSTGRES_ENV.to_vec();
    pairs.push(("VLLM_URL", "http://vllm:8000/v1"));
    let mut seen = 0;
    for entry in std::fs::read_dir(examples_dir()).expect("deploy/examples") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        seen += 1;
        if let Err(e) = load_file(&path, &env(&pairs)) {
            panic!("{} does not load: {e}", path.display());
        }
    }
    assert!(seen >= 2, "examples found: {seen}");
}

#[test]
fn postgres_example() {
    let l = load_str(
        &read("postgres.yaml"),
        &env(&[
            ("POSTGRES_HOST", "db"),
            ("POSTGRES_USER", "fs"),
            ("POSTGRES_PASSWORD", "pw"),
            ("VLLM_URL", "http://v"),
        ]),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let c = &l.config;
    for name in ["kv_default", "sql_default"] {
        let (BackendConfig::KvPostgres(pg) | BackendConfig::SqlPostgres(pg)) = &c.storage.backends[name] else {
            panic!("{name} is not PostgreSQL");
        };
        assert_eq!((pg.port, pg.db.as_str()), (5432, "ferrostack"), "{name}: defaults of the ${{env}} forms");
    }
    assert!(c.storage.stores.responses.is_some());
    assert_eq!(c.models[0].provider_id, "vllm");
    assert_eq!(c.providers["inference"][0].config.0["api_token"], serde_json::Value::Null, "empty default is null");
}
