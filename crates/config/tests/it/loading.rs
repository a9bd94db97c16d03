//! Layering (file, built-in storage, `FERROSTACK__*` overrides), the built-in set-up and the errors
//! of loading.

use std::path::{Path, PathBuf};

use ferrostack_config::{BackendConfig, ConfigError, load_default, load_file, load_str};

use crate::{assert_problem, env, load, problems};

const WITH_STORAGE: &str = "\
version: 2
server:
  port: 8000
storage:
  backends:
    kv: {type: kv_sqlite, db_path: /data/kv.db}
    sql: {type: sql_sqlite, db_path: /data/sql.db}
  stores:
    metadata: {backend: kv, namespace: registry}
    prompts: {backend: kv, namespace: prompts}
    connectors: {backend: kv, namespace: connectors}
    inference: {backend: sql, max_write_queue_size: 100}
    conversations: {backend: sql}
";

fn sqlite_path(b: &BackendConfig) -> &str {
    match b {
        BackendConfig::KvSqlite(c) | BackendConfig::SqlSqlite(c) => &c.db_path,
        other => panic!("not a SQLite backend: {}", other.type_name()),
    }
}

#[test]
fn env_override_beats_the_file() {
    let l = load(WITH_STORAGE, &[("FERROSTACK__SERVER__PORT", "9000")]);
    assert_eq!(l.config.server.port, 9000);
    let l = load(WITH_STORAGE, &[]);
    assert_eq!(l.config.server.port, 8000, "file value without override");
}

#[test]
fn env_override_of_a_snake_case_field() {
    let l = load(WITH_STORAGE, &[("FERROSTACK__STORAGE__STORES__INFERENCE__MAX_WRITE_QUEUE_SIZE", "500")]);
    let inference = l.config.storage.stores.inference.as_ref().expect("inference store");
    assert_eq!(inference.max_write_queue_size, 500);
    assert_eq!(inference.backend, "sql", "the rest of the store comes from the file");
}

#[test]
fn env_overrides_apply_to_the_builtin_setup() {
    let e = env(&[
        ("FERROSTACK_HOME", "/srv/fs"),
        ("FERROSTACK__STORAGE__STORES__INFERENCE__NUM_WRITERS", "8"),
        ("FERROSTACK__STORAGE__BACKENDS__KV_DEFAULT__DB_PATH", "/fast/kv.db"),
        ("FERROSTACK__TELEMETRY__LOG_FORMAT", "json"),
    ]);
    let l = load_default(&e).expect("loads");
    let c = &l.config;
    assert_eq!(
        c.storage.stores.inference.as_ref().map(|s| (s.backend.as_str(), s.num_writers)),
        Some(("sql_default", 8))
    );
    assert_eq!(sqlite_path(&c.storage.backends["kv_default"]), "/fast/kv.db");
    assert_eq!(sqlite_path(&c.storage.backends["sql_default"]), "/srv/fs/sql_store.db");
    assert_eq!(c.telemetry.log_format, ferrostack_config::LogFormat::Json);
    assert!(c.storage.builtin, "still the built-in SQLite set-up");
}

#[test]
fn env_override_can_add_a_backend_and_point_a_store_at_it() {
    let l = load(
        WITH_STORAGE,
        &[
            ("FERROSTACK__STORAGE__BACKENDS__PG__TYPE", "sql_postgres"),
            ("FERROSTACK__STORAGE__BACKENDS__PG__USER", "fs"),
            ("FERROSTACK__STORAGE__BACKENDS__PG__PORT", "6543"),
            ("FERROSTACK__STORAGE__STORES__CONVERSATIONS__BACKEND", "pg"),
        ],
    );
    let BackendConfig::SqlPostgres(pg) = &l.config.storage.backends["pg"] else { panic!("pg missing") };
    assert_eq!((pg.user.as_str(), pg.port), ("fs", 6543));
    assert_eq!(l.config.storage.stores.conversations.as_ref().map(|s| s.backend.as_str()), Some("pg"));
}

#[test]
fn env_override_values_are_substituted() {
    let l = load(WITH_STORAGE, &[("FERROSTACK__SERVER__HOST", "${env.BIND}"), ("BIND", "0.0.0.0")]);
    assert_eq!(l.config.server.host, "0.0.0.0");
}

#[test]
fn no_storage_block_means_builtin_sqlite_under_ferrostack_home() {
    let l = load("version: 2\n", &[("FERROSTACK_HOME", "/srv/fs"), ("HOME", "/home/u")]);
    let s = &l.config.storage;
    assert!(s.builtin, "builtin flag");
    let names: Vec<_> = s.backends.keys().map(String::as_str).collect();
    assert_eq!(names, [ferrostack_config::DEFAULT_KV_BACKEND, ferrostack_config::DEFAULT_SQL_BACKEND]);
    assert_eq!(s.backends["kv_default"].type_name(), "kv_sqlite");
    assert_eq!(s.backends["sql_default"].type_name(), "sql_sqlite");
    assert_eq!(sqlite_path(&s.backends["kv_default"]), "/srv/fs/kvstore.db");
    assert_eq!(sqlite_path(&s.backends["sql_default"]), "/srv/fs/sql_store.db");

    let l = load("version: 2\n", &[("HOME", "/home/u")]);
    assert_eq!(
        sqlite_path(&l.config.storage.backends["kv_default"]),
        "/home/u/.ferrostack/kvstore.db",
        "HOME fallback"
    );
    assert_eq!(ferrostack_config::home_dir(&env(&[("HOME", "/home/u")])), PathBuf::from("/home/u/.ferrostack"));

    let l = load("version: 2\nstorage:\n", &[("FERROSTACK_HOME", "/srv/fs")]);
    assert!(l.config.storage.builtin, "`storage:` with nothing under it counts as absent");
}

#[test]
fn load_default_is_the_builtin_setup() {
    let l = load_default(&env(&[("FERROSTACK_HOME", "/srv/fs"), ("FERROSTACK__SERVER__PORT", "0")])).expect("loads");
    assert!(l.config.storage.builtin);
    assert_eq!(l.config.server.port, 0, "overrides apply without a file; 0 is a valid port");
    assert_eq!(l.config.version, 2);
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
}

#[test]
fn storage_without_backends_gets_no_defaults() {
    let p = problems("version: 2\nstorage:\n  stores:\n    responses: null\n", &[]);
    assert_problem(&p, "storage.stores.metadata.backend", &["unknown backend 'kv_default'", "no backends"], "metadata");
    assert_problem(&p, "storage.stores.inference.backend", &["unknown backend 'sql_default'"], "inference");
}

#[test]
fn given_storage_is_not_builtin() {
    let l = load(WITH_STORAGE, &[]);
    assert!(!l.config.storage.builtin);
}

#[test]
fn sqlite_paths_are_home_expanded() {
    let yaml = WITH_STORAGE.replace("/data/kv.db", "~/kv.db");
    let l = load(&yaml, &[("HOME", "/home/u")]);
    assert_eq!(sqlite_path(&l.config.storage.backends["kv"]), "/home/u/kv.db");
}

#[test]
fn null_sections_take_their_defaults() {
    let l = load("version: 2\nserver:\ntelemetry:\nmodels:\nproviders:\n", &[]);
    assert_eq!(l.config.server.port, ferrostack_config::default_port());
    assert_eq!(l.config.telemetry.log_level, ferrostack_config::default_log_level());
}

#[test]
fn malformed_yaml_names_the_line_and_column() {
    let err = load_str("version: 2\nserver:\n  port: [1, 2\n", &env(&[])).expect_err("malformed");
    let ConfigError::Yaml { line, column, .. } = &err else { panic!("not a YAML error: {err}") };
    assert_eq!(*line, Some(4), "{err}");
    assert!(column.is_some(), "{err}");
    let text = err.to_string();
    assert!(text.contains("not valid YAML") && text.contains("line 4"), "{text}");

    let err = load_str("version: 2\n  bad: indentation\n", &env(&[])).expect_err("malformed");
    assert!(err.to_string().contains("line 2"), "{err}");
}

#[test]
fn malformed_yaml_file_names_the_file() {
    let path = temp_file("malformed.yaml", "version: 2\nfoo: [\n");
    let err = load_file(&path, &env(&[])).expect_err("malformed");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && text.contains("line 3"), "{text}");
}

#[test]
fn other_yaml_shapes() {
    let err = load_str("version: 2\n---\nversion: 2\n", &env(&[])).expect_err("two documents");
    assert!(matches!(err, ConfigError::Yaml { .. }) && err.to_string().contains("2 YAML documents"), "{err}");

    let p = problems("- version: 2\n", &[]);
    assert_problem(&p, ".", &["map at the top level"], "a list at the top");

    let p = problems("", &[]);
    assert_problem(&p, "version", &["missing field `version`"], "empty file");
}

#[test]
fn unknown_fields_are_reported_with_their_path() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("top level", "version: 2\nservre: {}\n", "servre", &["unknown field `servre`", "`server`"]),
        ("server", "version: 2\nserver: {prot: 1}\n", "server.prot", &["unknown field `prot`", "`port`"]),
        ("store", "version: 2\nstorage:\n  stores: {inference: {backend: x, writers: 2}}\n",
            "storage.stores.inference.writers", &["unknown field `writers`", "`num_writers`"]),
        ("unknown store", "version: 2\nstorage:\n  stores: {files: {backend: x}}\n", "storage.stores.files", &["unknown field `files`"]),
        ("backend", "version: 2\nstorage:\n  backends:\n    pg: {type: sql_postgres, user: u, pasword: x}\n",
            "storage.backends.pg.pasword", &["unknown field `pasword`", "`password`"]),
        ("sqlite backend", "version: 2\nstorage:\n  backends:\n    kv: {type: kv_sqlite, db_path: x, path: y}\n",
            "storage.backends.kv.path", &["unknown field `path`", "`db_path`"]),
        ("model", "version: 2\nmodels: [{model_id: m, provider_id: p, name: x}]\n", "models[0].name", &["unknown field `name`"]),
        ("provider", "version: 2\nproviders: {inference: [{provider_id: p, provider_type: t, cfg: {}}]}\n",
            "providers.inference[0].cfg", &["unknown field `cfg`", "`config`"]),
    ];
    for (name, yaml, path, words) in cases {
        let p = problems(yaml, &[]);
        assert_problem(&p, path, words, name);
    }
}

#[test]
fn type_errors_are_reported_with_their_path() {
    #[rustfmt::skip]
    let cases: &[(&str, &str, &str, &[&str])] = &[
        ("port out of u16", "version: 2\nserver: {port: 70000}\n", "server.port", &["70000", "u16"]),
        ("port as text", "version: 2\nserver: {port: http}\n", "server.port", &["invalid type: string \"http\""]),
        ("missing field", "version: 2\nstorage:\n  backends:\n    pg: {type: kv_postgres}\n", "storage.backends.pg.user", &["missing field `user`"]),
        ("backend not a map", "version: 2\nstorage:\n  backends:\n    pg: 5\n", "storage.backends.pg", &["expected a map", "got a number"]),
        ("backends not a map", "version: 2\nstorage:\n  backends: [a]\n", "storage.backends", &["expected a map of named backends"]),
        ("ssl mode", "version: 2\nstorage:\n  backends:\n    pg: {type: kv_postgres, user: u, ssl_mode: sometimes}\n",
            "storage.backends.pg.ssl_mode", &["unknown variant `sometimes`", "`verify-full`"]),
        ("models not a list", "version: 2\nmodels: {a: 1}\n", "models", &["expected a sequence"]),
    ];
    for (name, yaml, path, words) in cases {
        let p = problems(yaml, &[]);
        assert_problem(&p, path, words, name);
    }
}

#[test]
fn unknown_backend_type_lists_the_supported_ones() {
    // kv_redis and kv_mongodb are Llama Stack types: accepted since issue 17 (see
    // unserved_backend_types_are_accepted_until_a_store_needs_them); anything else is unknown.
    for ty in ["postgres", "kv_memcached"] {
        let p = problems(&format!("version: 2\nstorage:\n  backends:\n    b: {{type: {ty}, host: h}}\n"), &[]);
        assert_problem(
            &p,
            "storage.backends.b.type",
            &[
                &format!("unknown backend type '{ty}'"),
                "kv_sqlite, kv_postgres, sql_sqlite, sql_postgres",
                "kv_redis and kv_mongodb are accepted but not served",
            ],
            ty,
        );
    }
    let p = problems("version: 2\nstorage:\n  backends:\n    b: {db_path: x}\n", &[]);
    assert_problem(&p, "storage.backends.b.type", &["missing field `type`", "kv_sqlite"], "no type");
}

#[test]
fn unserved_backend_types_are_accepted_until_a_store_needs_them() {
    let base = "version: 2\nstorage:\n  backends:\n    kv: {type: kv_sqlite, db_path: /d/kv.db}\n    sql: {type: sql_sqlite, db_path: /d/sql.db}\n    cache: {type: kv_redis, host: redis, port: 6379, password: hunter2}\n    docs: {type: kv_mongodb, host: mongo}\n  stores: {metadata: {backend: kv, namespace: registry}, inference: {backend: sql}, conversations: {backend: sql}, prompts: {backend: kv, namespace: p}, connectors: {backend: kv, namespace: c}}\n";
    let providers = "providers:\n  vector_io:\n  - {provider_id: faiss, provider_type: inline::faiss, config: {persistence: {backend: cache, namespace: v}}}\n";
    let l = load(&format!("{base}{providers}"), &[]);
    assert!(l.config.storage.backends.keys().all(|k| k == "kv" || k == "sql"), "the catalog never sees them");
    assert_eq!(l.config.storage.unserved_backends["cache"].type_name, "kv_redis");
    assert!(!format!("{:?}", l.config.storage.unserved_backends).contains("hunter2"), "secrets redacted");
    for listed in ["storage.backends.cache (kv_redis)", "storage.backends.docs (kv_mongodb)"] {
        assert!(l.coverage.ignored.contains(&listed.to_owned()), "{:?}", l.coverage.ignored);
    }

    let wrong_family = "providers:\n  files:\n  - {provider_id: f, provider_type: inline::localfs, config: {metadata_store: {backend: docs, table_name: t}}}\n";
    let p = problems(&format!("{base}{wrong_family}"), &[]);
    assert_problem(
        &p,
        "providers.files[0].config.metadata_store.backend",
        &["needs a sql_* backend", "kv_mongodb"],
        "family",
    );

    let store = base.replace("metadata: {backend: kv,", "metadata: {backend: cache,");
    let p = problems(&store, &[]);
    assert_problem(
        &p,
        "storage.stores.metadata.backend",
        &["'cache' is kv_redis", "does not serve", "kv_sqlite or kv_postgres"],
        "store on redis",
    );
    let p = problems(&base.replace("metadata: {backend: kv,", "metadata: {backend: nope,"), &[]);
    assert_problem(&p, "storage.stores.metadata.backend", &["backends defined: cache, docs, kv, sql"], "names");
}

#[test]
fn every_backend_reports_its_own_type_error() {
    let yaml = "version: 2\nserver: {port: x}\nstorage:\n  backends:\n    a: {type: kv_sqlite}\n    b: {type: nope}\n";
    let p = problems(yaml, &[]);
    assert_eq!(p.len(), 3, "{p}");
    assert_problem(&p, "server.port", &["invalid type"], "outside the backends");
    assert_problem(&p, "storage.backends.a.db_path", &["missing field"], "backend a");
    assert_problem(&p, "storage.backends.b.type", &["unknown backend type"], "backend b");
}

#[test]
fn missing_file_names_the_path_and_the_os_error() {
    let path = Path::new("/nonexistent/ferrostack/run.yaml");
    let err = load_file(path, &env(&[])).expect_err("missing file");
    assert!(matches!(err, ConfigError::Read { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("/nonexistent/ferrostack/run.yaml"), "{text}");
    assert!(text.contains("No such file or directory"), "{text}");
}

#[test]
fn load_file_reads_the_file() {
    let path = temp_file("ok.yaml", WITH_STORAGE);
    let l = load_file(&path, &env(&[("FERROSTACK__SERVER__WORKERS", "3")])).expect("loads");
    assert_eq!(l.config.server.port, 8000);
    assert_eq!(l.config.server.workers, Some(3));
}

#[test]
fn invalid_config_display_has_one_line_per_problem() {
    let err = load_str("version: 3\nserver: {workers: 0}\n", &env(&[])).expect_err("invalid");
    let text = err.to_string();
    let lines: Vec<_> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].contains("2 problems"), "{text}");
    assert!(lines.contains(&"version: unsupported version 3; ferrostack reads run configs of version 2"), "{text}");
    assert!(lines.iter().any(|l| l.starts_with("server.workers: ")), "{text}");
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ferrostack-config-tests");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let path = dir.join(format!("{}-{name}", std::process::id()));
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    path
}

#[test]
fn telemetry_block_and_its_env_overrides() {
    let yaml = "version: 2\ntelemetry:\n  enabled: false\n  otlp_endpoint: http://collector:4318\n  protocol: http/protobuf\n  deployment_environment: staging\n  metric_export_interval_ms: 1000\n";
    let l = load(yaml, &[("FERROSTACK__TELEMETRY__ENABLED", "true"), ("FERROSTACK__TELEMETRY__SAMPLE_RATIO", "0.25")]);
    let t = &l.config.telemetry;
    assert!(t.enabled, "the env override turns export on");
    assert_eq!(t.sample_ratio, 0.25);
    assert_eq!(t.otlp_endpoint, "http://collector:4318");
    assert_eq!(t.protocol, ferrostack_config::OtlpProtocol::HttpProtobuf);
    assert_eq!(t.deployment_environment.as_deref(), Some("staging"));
    assert_eq!(t.metric_export_interval_ms, 1000);
    assert_eq!(t.service_name, ferrostack_config::default_service_name());

    let defaults = load("version: 2\n", &[]).config.telemetry;
    assert!(!defaults.enabled, "telemetry export is off by default");
    let err = load_str("version: 2\ntelemetry:\n  protocol: grpc\n", &env(&[])).expect_err("grpc is not built in");
    assert!(err.to_string().contains("telemetry.protocol"), "{err}");
}
