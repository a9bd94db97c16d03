//! Every validation rule: the path of the problem and the key words of its message.

use serde_json::{Value, json};

use crate::{assert_problem, load, problems, yaml};

/// A valid config using every kind of backend.
fn base() -> Value {
    json!({
        "version": 2,
        "server": {"host": "0.0.0.0", "port": 8321, "workers": 4, "shutdown_timeout_seconds": 30},
        "storage": {
            "backends": {
                "kv": {"type": "kv_sqlite", "db_path": "/data/kv.db"},
                "sql": {"type": "sql_sqlite", "db_path": "/data/sql.db"},
                "pg": {"type": "sql_postgres", "host": "db", "user": "fs", "db": "fs", "password": "pw"},
                "kvpg": {"type": "kv_postgres", "host": "db", "user": "fs", "db": "fs", "table_name": "kvstore"},
            },
            "stores": {
                "metadata": {"backend": "kv", "namespace": "registry"},
                "prompts": {"backend": "kvpg", "namespace": "prompts"},
                "connectors": {"backend": "kv", "namespace": "connectors"},
                "inference": {"backend": "pg", "table_name": "inference_store", "max_write_queue_size": 10, "num_writers": 2},
                "conversations": {"backend": "pg", "table_name": "openai_conversations"},
                "responses": {"backend": "sql", "table_name": "openai_responses"},
            },
        },
        "providers": {
            "inference": [{"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"url": "http://v"}}],
            "vector_io": [{"provider_id": "chroma", "provider_type": "remote::chromadb",
                "config": {"persistence": {"backend": "kv", "namespace": "vector_io::chroma"}}}],
            "files": [{"provider_id": "local", "provider_type": "inline::localfs",
                "config": {"metadata_store": {"backend": "sql", "table_name": "files_metadata"}, "any": [{"backend": "kvpg"}]}}],
        },
        "models": [{"model_id": "llama", "provider_id": "vllm", "provider_model_id": "meta/llama"}],
    })
}

#[test]
fn base_is_valid() {
    let l = load(&yaml(&base()), &[]);
    assert_eq!(l.config.storage.backends.len(), 4);
}

/// Set `value` at a `/`-separated pointer, creating maps on the way.
fn set(v: &mut Value, pointer: &str, value: Value) {
    let mut cur = v;
    let mut parts = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            match cur {
                Value::Object(m) => {
                    m.insert(part.to_owned(), value);
                }
                Value::Array(a) => {
                    let i = index(part);
                    if i == a.len() { a.push(value) } else { a[i] = value }
                }
                _ => panic!("cannot set {pointer}"),
            }
            return;
        }
        cur = match cur {
            Value::Object(m) => m.entry(part.to_owned()).or_insert_with(|| json!({})),
            Value::Array(a) => &mut a[index(part)],
            _ => panic!("cannot walk {pointer}"),
        };
    }
}

fn index(part: &str) -> usize {
    part.parse().unwrap_or_else(|e| panic!("{part}: {e}"))
}

#[test]
fn each_rule() {
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value, &str, Vec<&str>)> = vec![
        // name, pointer, new value, problem path, words of the message
        ("version", "/version", json!(1), "version", vec!["unsupported version 1", "version 2"]),
        ("empty host", "/server/host", json!(""), "server.host", vec!["must not be empty"]),
        ("workers 0", "/server/workers", json!(0), "server.workers", vec!["between 1 and 1024", "got 0"]),
        ("workers too many", "/server/workers", json!(1025), "server.workers", vec!["between 1 and 1024", "got 1025"]),
        ("shutdown timeout", "/server/shutdown_timeout_seconds", json!(3601), "server.shutdown_timeout_seconds", vec!["between 0 and 3600", "got 3601"]),
        ("backend name", "/storage/backends/bad name", json!({"type": "kv_sqlite", "db_path": "x"}), "storage.backends.bad name", vec!["letters, digits"]),
        ("empty backend name", "/storage/backends/", json!({"type": "kv_sqlite", "db_path": "x"}), "storage.backends.\"\"", vec!["not empty"]),
        ("empty db_path", "/storage/backends/kv/db_path", json!(""), "storage.backends.kv.db_path", vec!["must not be empty"]),
        ("sqlite pool 0", "/storage/backends/kv/pool_size", json!(0), "storage.backends.kv.pool_size", vec!["between 1 and 64", "got 0"]),
        ("sqlite pool 65", "/storage/backends/sql/pool_size", json!(65), "storage.backends.sql.pool_size", vec!["between 1 and 64", "got 65"]),
        ("busy timeout", "/storage/backends/kv/busy_timeout_ms", json!(600_001), "storage.backends.kv.busy_timeout_ms", vec!["between 0 and 600000", "got 600001"]),
        ("empty pg user", "/storage/backends/pg/user", json!(""), "storage.backends.pg.user", vec!["must not be empty"]),
        ("empty pg host", "/storage/backends/pg/host", json!(" "), "storage.backends.pg.host", vec!["must not be empty"]),
        ("empty pg db", "/storage/backends/kvpg/db", json!(""), "storage.backends.kvpg.db", vec!["must not be empty"]),
        ("ca cert without verify", "/storage/backends/pg/ca_cert_path", json!("/ca.pem"), "storage.backends.pg.ca_cert_path", vec!["require, verify-ca or verify-full"]),
        ("pg port 0", "/storage/backends/pg/port", json!(0), "storage.backends.pg.port", vec!["between 1 and 65535", "got 0"]),
        ("pg pool 0", "/storage/backends/pg/pool_size", json!(0), "storage.backends.pg.pool_size", vec!["between 1 and 1000", "got 0"]),
        ("pg pool 1001", "/storage/backends/kvpg/pool_size", json!(1001), "storage.backends.kvpg.pool_size", vec!["between 1 and 1000", "got 1001"]),
        ("wait timeout 0", "/storage/backends/pg/wait_timeout_ms", json!(0), "storage.backends.pg.wait_timeout_ms", vec!["between 1 and 600000", "got 0"]),
        ("create timeout", "/storage/backends/pg/create_timeout_ms", json!(600_001), "storage.backends.pg.create_timeout_ms", vec!["between 1 and 600000", "got 600001"]),
        ("recycle 0", "/storage/backends/pg/pool_recycle", json!(0), "storage.backends.pg.pool_recycle", vec!["-1", "between 1 and 31536000", "got 0"]),
        ("recycle -2", "/storage/backends/pg/pool_recycle", json!(-2), "storage.backends.pg.pool_recycle", vec!["got -2"]),
        ("recycle too long", "/storage/backends/pg/pool_recycle", json!(31_536_001), "storage.backends.pg.pool_recycle", vec!["got 31536001"]),
        ("queue size 0", "/storage/stores/inference/max_write_queue_size", json!(0), "storage.stores.inference.max_write_queue_size", vec!["between 1 and 1000000", "got 0"]),
        ("queue size big", "/storage/stores/responses/max_write_queue_size", json!(1_000_001), "storage.stores.responses.max_write_queue_size", vec!["got 1000001"]),
        ("writers 0", "/storage/stores/inference/num_writers", json!(0), "storage.stores.inference.num_writers", vec!["between 1 and 64", "got 0"]),
        ("writers 65", "/storage/stores/responses/num_writers", json!(65), "storage.stores.responses.num_writers", vec!["between 1 and 64", "got 65"]),
        ("batch 0", "/storage/stores/inference/batch_size", json!(0), "storage.stores.inference.batch_size", vec!["between 1 and 10000", "got 0"]),
        ("batch big", "/storage/stores/responses/batch_size", json!(10_001), "storage.stores.responses.batch_size", vec!["got 10001"]),
        ("drain long", "/storage/stores/inference/drain_timeout_seconds", json!(3_601), "storage.stores.inference.drain_timeout_seconds", vec!["between 0 and 3600 seconds", "got 3601"]),
        ("queue wait long", "/storage/stores/inference/queue_wait_timeout_ms", json!(600_001), "storage.stores.inference.queue_wait_timeout_ms", vec!["between 0 and 600000 ms", "got 600001"]),
        ("commit timeout short", "/storage/stores/inference/commit_timeout_ms", json!(99), "storage.stores.inference.commit_timeout_ms", vec!["between 100 and 600000 ms", "got 99"]),
        ("batch bytes small", "/storage/stores/inference/max_batch_bytes", json!(1024), "storage.stores.inference.max_batch_bytes", vec!["between 65536 and 268435456 bytes", "got 1024"]),
        ("row over batch", "/storage/stores/inference/max_row_bytes", json!(33_554_432), "storage.stores.inference.max_row_bytes", vec!["between 1024 and 16777216 bytes", "got 33554432"]),
        ("queue bytes under a row", "/storage/stores/inference/max_queue_bytes", json!(1_048_576), "storage.stores.inference.max_queue_bytes", vec!["between 16777216 and 68719476736 bytes", "got 1048576"]),
        ("stall 0", "/storage/stores/responses/stall_timeout_seconds", json!(0), "storage.stores.responses.stall_timeout_seconds", vec!["between 1 and 3600 seconds", "got 0"]),
        ("group commit wait", "/storage/stores/inference/group_commit_wait_ms", json!(10_001), "storage.stores.inference.group_commit_wait_ms", vec!["between 0 and 10000 ms", "got 10001"]),
        ("spill path empty", "/storage/stores/inference/spill_path", json!(" "), "storage.stores.inference.spill_path", vec!["must not be empty"]),
        ("unknown store backend", "/storage/stores/conversations/backend", json!("nope"), "storage.stores.conversations.backend", vec!["unknown backend 'nope'", "backends defined: kv, kvpg, pg, sql"]),
        ("inference on kv", "/storage/stores/inference/backend", json!("kv"), "storage.stores.inference.backend", vec!["store 'inference' needs a sql_* backend, but 'kv' is kv_sqlite"]),
        ("conversations on kv", "/storage/stores/conversations/backend", json!("kvpg"), "storage.stores.conversations.backend", vec!["needs a sql_* backend", "kv_postgres"]),
        ("responses on kv", "/storage/stores/responses/backend", json!("kv"), "storage.stores.responses.backend", vec!["store 'responses' needs a sql_* backend"]),
        ("metadata on sql", "/storage/stores/metadata/backend", json!("pg"), "storage.stores.metadata.backend", vec!["store 'metadata' needs a kv_* backend, but 'pg' is sql_postgres"]),
        ("prompts on sql", "/storage/stores/prompts/backend", json!("sql"), "storage.stores.prompts.backend", vec!["needs a kv_* backend", "sql_sqlite"]),
        ("connectors on sql", "/storage/stores/connectors/backend", json!("sql"), "storage.stores.connectors.backend", vec!["store 'connectors' needs a kv_* backend"]),
        ("metadata null", "/storage/stores/metadata", Value::Null, "storage.stores.metadata", vec!["the metadata store is required and needs a kv_* backend"]),
        ("inference table", "/storage/stores/inference/table_name", json!("chat_completions"), "storage.stores.inference.table_name", vec!["owned by migrations", "'inference_store'"]),
        ("conversations table", "/storage/stores/conversations/table_name", json!("convs"), "storage.stores.conversations.table_name", vec!["owned by migrations", "'openai_conversations'"]),
        ("responses table", "/storage/stores/responses/table_name", json!("resp"), "storage.stores.responses.table_name", vec!["owned by migrations", "'openai_responses'"]),
        ("empty provider id", "/providers/vector_io/0/provider_id", json!(""), "providers.vector_io[0].provider_id", vec!["must not be empty"]),
        ("empty provider type", "/providers/inference/0/provider_type", json!(""), "providers.inference[0].provider_type", vec!["must not be empty"]),
        ("duplicate provider id", "/providers/inference/1", json!({"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"url": "http://v2"}}), "providers.inference[1].provider_id", vec!["duplicate provider_id 'vllm'", "providers.inference[0]"]),
        ("kv reference unknown", "/providers/vector_io/0/config/persistence/backend", json!("nope"), "providers.vector_io[0].config.persistence.backend", vec!["unknown backend 'nope'", "kv, kvpg, pg, sql"]),
        ("kv reference to sql", "/providers/vector_io/0/config/persistence/backend", json!("pg"), "providers.vector_io[0].config.persistence.backend", vec!["needs a kv_* backend", "namespace", "'pg' is sql_postgres"]),
        ("sql reference to kv", "/providers/files/0/config/metadata_store/backend", json!("kv"), "providers.files[0].config.metadata_store.backend", vec!["needs a sql_* backend", "table_name", "'kv' is kv_sqlite"]),
        ("reference in a list", "/providers/files/0/config/any/0/backend", json!("nope"), "providers.files[0].config.any[0].backend", vec!["unknown backend 'nope'"]),
        ("empty model id", "/models/0/model_id", json!(""), "models[0].model_id", vec!["must not be empty"]),
        ("duplicate model id", "/models/1", json!({"model_id": "llama", "provider_id": "vllm"}), "models[1].model_id", vec!["duplicate model_id 'llama'", "models[0]"]),
        ("unknown model provider", "/models/0/provider_id", json!("ollama"), "models[0].provider_id", vec!["unknown provider 'ollama'", "inference providers defined: vllm"]),
        ("model provider of another api", "/models/0/provider_id", json!("chroma"), "models[0].provider_id", vec!["unknown provider 'chroma'"]),
        ("sample ratio above 1", "/telemetry/sample_ratio", json!(1.5), "telemetry.sample_ratio", vec!["between 0 and 1", "got 1.5"]),
        ("sample ratio negative", "/telemetry/sample_ratio", json!(-0.1), "telemetry.sample_ratio", vec!["between 0 and 1"]),
        ("otlp endpoint scheme", "/telemetry/otlp_endpoint", json!("collector:4318"), "telemetry.otlp_endpoint", vec!["http:// or https://", "collector:4318"]),
        ("empty service name", "/telemetry/service_name", json!(" "), "telemetry.service_name", vec!["must not be empty"]),
        ("empty environment", "/telemetry/deployment_environment", json!(""), "telemetry.deployment_environment", vec!["must not be empty"]),
        ("trace interval", "/telemetry/trace_export_interval_ms", json!(99), "telemetry.trace_export_interval_ms", vec!["between 100 and 3600000 ms", "got 99"]),
        ("metric interval", "/telemetry/metric_export_interval_ms", json!(3_600_001), "telemetry.metric_export_interval_ms", vec!["got 3600001"]),
        ("export timeout", "/telemetry/export_timeout_ms", json!(0), "telemetry.export_timeout_ms", vec!["between 100 and 600000 ms"]),
    ];
    for (name, pointer, value, path, words) in cases {
        let mut c = base();
        set(&mut c, pointer, value);
        let p = problems(&yaml(&c), &[]);
        assert_problem(&p, path, &words, name);
        assert_eq!(p.len(), 1, "case {name:?}: exactly one problem expected:\n{p}");
    }
}

#[test]
fn accepted_edges() {
    #[rustfmt::skip]
    let cases: Vec<(&str, &str, Value)> = vec![
        ("port 0", "/server/port", json!(0)),
        ("port 65535", "/server/port", json!(65535)),
        ("workers 1024", "/server/workers", json!(1024)),
        ("shutdown 0", "/server/shutdown_timeout_seconds", json!(0)),
        ("ssl prefer", "/storage/backends/pg/ssl_mode", json!("prefer")),
        ("ssl require", "/storage/backends/pg/ssl_mode", json!("require")),
        ("ssl verify-ca", "/storage/backends/pg/ssl_mode", json!("verify-ca")),
        ("ssl verify-full", "/storage/backends/kvpg/ssl_mode", json!("verify-full")),
        ("ssl disable", "/storage/backends/pg/ssl_mode", json!("disable")),
        ("recycle -1", "/storage/backends/pg/pool_recycle", json!(-1)),
        ("recycle 1", "/storage/backends/pg/pool_recycle", json!(1)),
        ("busy 0", "/storage/backends/kv/busy_timeout_ms", json!(0)),
        ("dotted backend name", "/storage/backends/a.b-c_1", json!({"type": "kv_sqlite", "db_path": "x"})),
        ("null inference store", "/storage/stores/inference", Value::Null),
        ("null conversations store", "/storage/stores/conversations", Value::Null),
        ("null prompts store", "/storage/stores/prompts", Value::Null),
        ("no table name", "/storage/stores/inference/table_name", Value::Null),
        ("reference of any family", "/providers/files/0/config/any/0/backend", json!("sql")),
        ("backend key that is not a string", "/providers/files/0/config/any/0/backend", json!({"x": 1})),
        ("memory sqlite", "/storage/backends/kv/db_path", json!(":memory:")),
    ];
    for (name, pointer, value) in cases {
        let mut c = base();
        set(&mut c, pointer, value);
        if let Err(e) = ferrostack_config::load_str(&yaml(&c), &crate::env(&[])) {
            panic!("case {name:?} should load: {e}");
        }
    }
}

#[test]
fn many_problems_are_reported_at_once() {
    let mut c = base();
    set(&mut c, "/version", json!(3));
    set(&mut c, "/server/workers", json!(0));
    set(&mut c, "/storage/backends/pg/pool_size", json!(0));
    set(&mut c, "/storage/backends/pg/ca_cert_path", json!("/ca.pem"));
    set(&mut c, "/storage/stores/inference/backend", json!("kv"));
    set(&mut c, "/storage/stores/conversations/table_name", json!("x"));
    set(&mut c, "/providers/vector_io/0/config/persistence/backend", json!("gone"));
    set(&mut c, "/models/0/provider_id", json!("nobody"));
    let p = problems(&yaml(&c), &[]);
    let paths: Vec<_> = p.iter().map(|x| x.path.as_str()).collect();
    for want in [
        "version",
        "server.workers",
        "storage.backends.pg.pool_size",
        "storage.backends.pg.ca_cert_path",
        "storage.stores.inference.backend",
        "storage.stores.conversations.table_name",
        "providers.vector_io[0].config.persistence.backend",
        "models[0].provider_id",
    ] {
        assert!(paths.contains(&want), "{want} missing from:\n{p}");
    }
    assert_eq!(p.len(), 8, "{p}");
}

#[test]
fn unserved_provider_types_are_warnings() {
    let l = load(&yaml(&base()), &[]);
    let want = "accepted and ignored (not served by ferrostack): providers.files[0] local (inline::localfs), providers.vector_io[0] chroma (remote::chromadb)";
    assert!(l.warnings.iter().any(|w| w == want), "{:#?}", l.warnings);
    assert_eq!(l.warnings.iter().filter(|w| w.contains("not served")).count(), 1, "listed once: {:#?}", l.warnings);
    assert!(
        !l.warnings.iter().any(|w| w.contains("remote::vllm")),
        "served inference types do not warn: {:#?}",
        l.warnings
    );
    assert_eq!(l.coverage.served, ["inference provider vllm (remote::vllm)", "1 model"]);
    assert_eq!(
        ferrostack_config::served_provider_types(),
        [
            ("inference", "remote::openai"),
            ("inference", "remote::vllm"),
            ("inference", "remote::ollama"),
            ("inference", "remote::fireworks"),
            ("inference", "remote::together"),
            ("inference", "remote::groq"),
            ("inference", "remote::cerebras"),
            ("inference", "remote::sambanova"),
            ("inference", "remote::nvidia"),
            ("inference", "remote::llama-openai-compat"),
            ("inference", "remote::runpod"),
        ],
        "update these tests and docs/migrating-from-llama-stack.md when provider types are served"
    );
}

#[test]
fn kv_postgres_table_name_is_a_warning() {
    // The reference's own distribution configs set it (`llamastack_kvstore`); they must load
    // (issue 17). ferrostack's KV table is owned by migrations, so the name is ignored, loudly.
    let mut c = base();
    set(&mut c, "/storage/backends/kvpg/table_name", json!("ogx_kvstore"));
    let l = load(&yaml(&c), &[]);
    let w = l.warnings.iter().find(|w| w.starts_with("storage.backends.kvpg.table_name: ignored"));
    let w = w.unwrap_or_else(|| panic!("{:#?}", l.warnings));
    assert!(w.contains("'kvstore'") && w.contains("'ogx_kvstore'") && w.contains("owned by migrations"), "{w}");
}

#[test]
fn sql_postgres_table_name_is_a_warning() {
    let mut c = base();
    set(&mut c, "/storage/backends/pg/table_name", json!("x"));
    let l = load(&yaml(&c), &[]);
    assert!(l.warnings.iter().any(|w| w.starts_with("storage.backends.pg.table_name: ignored")), "{:#?}", l.warnings);
}

#[test]
fn no_backends_at_all() {
    let p = problems(
        "version: 2\nstorage:\n  backends: {}\n  stores: {metadata: {backend: kv, namespace: r}, inference: null, conversations: null, prompts: null, connectors: null}\n",
        &[],
    );
    assert_problem(
        &p,
        "storage.stores.metadata.backend",
        &["unknown backend 'kv'", "no backends are defined"],
        "empty backends",
    );
}

#[test]
fn models_without_inference_providers() {
    let p = problems("version: 2\nmodels: [{model_id: m, provider_id: p}]\n", &[]);
    assert_problem(&p, "models[0].provider_id", &["unknown provider 'p'", "no inference providers"], "no providers");
}
