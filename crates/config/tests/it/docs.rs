//! `docs/configuration.md` states the defaults of the code.

use std::path::Path;

use ferrostack_config as fc;

fn doc() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The table row of `field` in the section whose heading contains `heading`.
fn row<'a>(doc: &'a str, heading: &str, field: &str) -> &'a str {
    let mut in_section = false;
    let mut in_code = false;
    for line in doc.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            in_section = line.contains(heading);
            continue;
        }
        if in_section && line.starts_with(&format!("| `{field}` ")) {
            return line;
        }
    }
    panic!("docs/configuration.md: no row for `{field}` under a heading containing {heading:?}");
}

#[track_caller]
fn documents(doc: &str, heading: &str, field: &str, value: impl std::fmt::Display) {
    let row = row(doc, heading, field);
    let want = format!("`{value}`");
    assert!(row.contains(&want), "docs/configuration.md, {heading} / {field}: default should be {want}: {row}");
}

#[test]
fn defaults_match_the_code() {
    let doc = doc();
    let d = &doc;
    documents(d, "`server`", "host", fc::default_host());
    documents(d, "`server`", "port", fc::default_port());
    documents(d, "`server`", "shutdown_timeout_seconds", fc::default_shutdown_timeout_seconds());

    documents(d, "`kv_sqlite`", "pool_size", fc::default_sqlite_pool_size());
    documents(d, "`kv_sqlite`", "busy_timeout_ms", fc::default_sqlite_busy_timeout_ms());
    documents(d, "`kv_sqlite`", "statement_timeout_ms", fc::default_statement_timeout_ms());

    documents(d, "`kv_postgres`", "host", fc::default_pg_host());
    documents(d, "`kv_postgres`", "port", fc::default_pg_port());
    documents(d, "`kv_postgres`", "db", fc::default_pg_db());
    documents(d, "`kv_postgres`", "pool_size", fc::default_pg_pool_size());
    documents(d, "`kv_postgres`", "pool_recycle", fc::default_pg_pool_recycle());
    documents(d, "`kv_postgres`", "wait_timeout_ms", fc::default_pg_timeout_ms());
    documents(d, "`kv_postgres`", "create_timeout_ms", fc::default_pg_timeout_ms());
    documents(d, "`kv_postgres`", "statement_timeout_ms", fc::default_statement_timeout_ms());
    documents(d, "`kv_postgres`", "ssl_mode", "disable");
    documents(d, "`kv_postgres`", "pool_pre_ping", "true");
    documents(d, "`kv_postgres`", "table_name", fc::tables::KVSTORE);

    let stores = fc::StoresConfig::default();
    for (name, kv) in [("metadata", &stores.metadata), ("prompts", &stores.prompts), ("connectors", &stores.connectors)]
    {
        let kv = kv.as_ref().expect("default KV store");
        documents(d, "`storage.stores`", name, &kv.backend);
        documents(d, "`storage.stores`", name, &kv.namespace);
    }
    let inference = stores.inference.as_ref().expect("default inference store");
    documents(d, "`storage.stores`", "inference", &inference.backend);
    documents(d, "`storage.stores`", "inference", fc::tables::INFERENCE);
    documents(d, "`storage.stores`", "conversations", fc::tables::CONVERSATIONS);
    documents(d, "`storage.stores`", "responses", fc::tables::RESPONSES);
    documents(d, "`storage.stores`", "responses", "null");
    documents(d, "Store fields", "max_write_queue_size", fc::default_max_write_queue_size());
    documents(d, "Store fields", "num_writers", fc::default_num_writers());
    documents(d, "Store fields", "durability", fc::Durability::default());
    documents(d, "Store fields", "batch_size", fc::default_batch_size());
    documents(d, "Store fields", "drain_timeout_seconds", fc::default_drain_timeout_seconds());
    documents(d, "Store fields", "queue_wait_timeout_ms", fc::default_queue_wait_timeout_ms());
    documents(d, "Store fields", "commit_timeout_ms", fc::default_commit_timeout_ms());
    documents(d, "Store fields", "max_batch_bytes", fc::default_max_batch_bytes());
    documents(d, "Store fields", "max_row_bytes", fc::default_max_row_bytes());
    documents(d, "Store fields", "max_queue_bytes", fc::default_max_queue_bytes());
    documents(d, "Store fields", "stall_timeout_seconds", fc::default_stall_timeout_seconds());
    documents(d, "Store fields", "group_commit_wait_ms", fc::default_group_commit_wait_ms());

    documents(d, "`telemetry`", "log_level", fc::default_log_level());

    documents(d, "Inference providers", "url", fc::DEFAULT_OPENAI_URL);
    documents(d, "Inference providers", "url", fc::DEFAULT_OLLAMA_URL);
    documents(d, "Inference providers", "timeout_ms", fc::default_inference_timeout_ms());
    documents(d, "Inference providers", "connect_timeout_ms", fc::default_inference_connect_timeout_ms());
    documents(d, "Inference providers", "max_idle_connections", fc::default_inference_max_idle_connections());
    documents(d, "Inference providers", "refresh_interval_seconds", fc::default_refresh_interval_seconds());
    documents(d, "Inference providers", "verify_tls", "true");
    documents(d, "`telemetry`", "log_format", "pretty");
    let t = fc::TelemetryConfig::default();
    documents(d, "`telemetry`", "enabled", t.enabled);
    documents(d, "`telemetry`", "otlp_endpoint", fc::default_otlp_endpoint());
    documents(d, "`telemetry`", "protocol", t.protocol);
    documents(d, "`telemetry`", "service_name", fc::default_service_name());
    documents(d, "`telemetry`", "sample_ratio", format!("{:.1}", fc::default_sample_ratio()));
    documents(d, "`telemetry`", "trace_export_interval_ms", fc::default_trace_export_interval_ms());
    documents(d, "`telemetry`", "metric_export_interval_ms", fc::default_metric_export_interval_ms());
    documents(d, "`telemetry`", "export_timeout_ms", fc::default_export_timeout_ms());
}

#[test]
fn builtin_setup_is_described() {
    let doc = doc();
    for needle in [
        fc::DEFAULT_KV_BACKEND,
        fc::DEFAULT_SQL_BACKEND,
        "kvstore.db",
        "sql_store.db",
        fc::HOME_VAR,
        fc::OVERRIDE_PREFIX,
    ] {
        assert!(doc.contains(needle), "docs/configuration.md does not mention {needle}");
    }
}

/// `docs/migrating-from-llama-stack.md` names every served provider type and the served APIs.
#[test]
fn migration_guide_lists_what_is_served() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/migrating-from-llama-stack.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    for (_, provider_type) in fc::served_provider_types() {
        assert!(doc.contains(&format!("| `{provider_type}` |")), "{provider_type} missing from the served table");
    }
    for kind in fc::InferenceProviderKind::all() {
        if let Some(url) = kind.default_url() {
            assert!(doc.contains(&format!("`{url}`")), "{}: default URL {url}", kind.type_name());
        }
    }
    for section in ["registered_resources.models", "vector_stores", "server.tls_certfile", "github_token", "kubernetes"]
    {
        assert!(doc.contains(section), "{section}");
    }
}
