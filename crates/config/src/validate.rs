//! Checks on the typed config, before any I/O. Every problem is collected, none stops the others.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Display;
use std::ops::RangeInclusive;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use crate::coverage::{ModelProvider, model_provider};
use crate::error::Problem;
use crate::load::Warning;
use crate::model::{
    BackendConfig, BackendFamily, InferenceStoreConfig, KvStoreRef, PostgresBackendConfig, RunConfig, SqlStoreRef,
    SqliteBackendConfig, SslMode, UnservedBackend, tables,
};
use crate::paths::{join, join_index};
use crate::subst::DisabledEntry;

/// The only config format version ferrostack reads.
const VERSION: u32 = 2;
/// Largest byte bound of a write queue (64 GiB).
const MAX_QUEUE_BYTES: usize = 64 * 1024 * 1024 * 1024;

static BACKEND_NAME: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"^[A-Za-z0-9_.-]+$").ok());

/// Problems and warnings of a typed config; `disabled` are the list entries substitution switched
/// off (a model may name a disabled provider: it is skipped, not an error).
pub(crate) fn validate(config: &RunConfig, disabled: &[DisabledEntry]) -> (Vec<Problem>, Vec<Warning>) {
    let mut v = Validator { config, disabled, problems: Vec::new(), warnings: Vec::new() };
    v.version();
    v.server();
    v.backends();
    v.stores();
    v.providers();
    v.models();
    v.telemetry();
    let auth = &config.server.auth;
    if let Some(provider) = &auth.provider_config {
        crate::auth::validate_provider(provider, &mut v.problems);
    }
    crate::policy::validate(&auth.access_policy, &auth.route_policy, &mut v.problems);
    (v.problems, v.warnings)
}

struct Validator<'a> {
    config: &'a RunConfig,
    disabled: &'a [DisabledEntry],
    problems: Vec<Problem>,
    warnings: Vec<Warning>,
}

impl<'a> Validator<'a> {
    fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(path, message));
    }

    fn range<T: PartialOrd + Display>(&mut self, path: &str, value: T, range: RangeInclusive<T>, unit: &str) {
        if !range.contains(&value) {
            let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
            let message = format!("must be between {} and {}{unit}, got {value}", range.start(), range.end());
            self.problem(path, message);
        }
    }

    fn non_empty(&mut self, path: &str, value: &str) {
        if value.trim().is_empty() {
            self.problem(path, "must not be empty");
        }
    }

    fn version(&mut self) {
        if self.config.version != VERSION {
            let message = format!(
                "unsupported version {}; ferrostack reads run configs of version {VERSION}",
                self.config.version
            );
            self.problem("version", message);
        }
    }

    fn server(&mut self) {
        let s = &self.config.server;
        self.non_empty("server.host", &s.host);
        if let Some(w) = s.workers {
            self.range("server.workers", w, 1..=1024, "");
        }
        self.range("server.shutdown_timeout_seconds", s.shutdown_timeout_seconds, 0..=3600, "seconds");
        self.limits();
        for (field, value) in
            [("tls_certfile", &s.tls_certfile), ("tls_keyfile", &s.tls_keyfile), ("tls_cafile", &s.tls_cafile)]
        {
            if value.is_some() {
                self.problem(
                    join("server", field),
                    "ferrostack serves plain HTTP and does not terminate TLS; end TLS at the ingress or proxy in \
                     front of it and remove this field (or leave it empty)",
                );
            }
        }
    }

    fn limits(&mut self) {
        let l = &self.config.server.limits;
        // Bodies are counted in u32 permits of the budget: 1 GiB is far above any sane setting.
        let gib = 1 << 30;
        self.range("server.limits.max_body_bytes", l.max_body_bytes, 1024..=gib, "bytes");
        self.range("server.limits.max_inflight_body_bytes", l.max_inflight_body_bytes, 1024..=64 * gib, "bytes");
        if l.max_inflight_body_bytes < l.max_body_bytes {
            self.problem(
                "server.limits.max_inflight_body_bytes",
                format!(
                    "must be at least server.limits.max_body_bytes ({}), or a body of the largest size could never \
                     be read, got {}",
                    l.max_body_bytes, l.max_inflight_body_bytes
                ),
            );
        }
        self.range("server.limits.budget_wait_ms", l.budget_wait_ms, 0..=60_000, "ms");
        self.range("server.limits.body_read_timeout_seconds", l.body_read_timeout_seconds, 1..=3600, "seconds");
        self.range("server.limits.header_timeout_seconds", l.header_timeout_seconds, 1..=3600, "seconds");
        self.range("server.limits.max_connections", l.max_connections, 1..=1_000_000, "");
        self.range("server.limits.max_uri_bytes", l.max_uri_bytes, 256..=65_536, "bytes");
        self.range("server.limits.max_header_bytes", l.max_header_bytes, 1024..=65_536, "bytes");
    }

    fn telemetry(&mut self) {
        let t = &self.config.telemetry;
        self.non_empty("telemetry.service_name", &t.service_name);
        let endpoint = t.otlp_endpoint.trim();
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            self.problem("telemetry.otlp_endpoint", format!("must be an http:// or https:// URL, got '{endpoint}'"));
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            self.problem("telemetry.sample_ratio", format!("must be between 0 and 1, got {}", t.sample_ratio));
        }
        if let Some(env) = &t.deployment_environment {
            self.non_empty("telemetry.deployment_environment", env);
        }
        self.range("telemetry.trace_export_interval_ms", t.trace_export_interval_ms, 100..=3_600_000, "ms");
        self.range("telemetry.metric_export_interval_ms", t.metric_export_interval_ms, 100..=3_600_000, "ms");
        self.range("telemetry.export_timeout_ms", t.export_timeout_ms, 100..=600_000, "ms");
    }

    fn backends(&mut self) {
        let config = self.config;
        for (name, backend) in &config.storage.backends {
            let path = backend_path(name);
            let name_ok = BACKEND_NAME.as_ref().is_none_or(|re| re.is_match(name));
            if !name_ok {
                self.problem(
                    path.clone(),
                    "backend names are made of letters, digits, '_', '.' and '-', and are not empty",
                );
            }
            match backend {
                BackendConfig::KvSqlite(c) | BackendConfig::SqlSqlite(c) => self.sqlite(&path, c),
                BackendConfig::KvPostgres(c) => {
                    self.postgres(&path, c);
                    if let Some(t) = &c.table_name
                        && t != tables::KVSTORE
                    {
                        self.warnings.push(Warning {
                            path: join(&path, "table_name"),
                            rest: format!(
                                ": ignored: table names are owned by migrations, the KV table is '{}' (got '{t}')",
                                tables::KVSTORE
                            ),
                        });
                    }
                }
                BackendConfig::SqlPostgres(c) => {
                    self.postgres(&path, c);
                    if c.table_name.is_some() {
                        self.warnings.push(Warning {
                            path: join(&path, "table_name"),
                            rest: ": ignored on sql_postgres backends; each store's table is owned by migrations"
                                .to_owned(),
                        });
                    }
                }
            }
        }
    }

    fn sqlite(&mut self, path: &str, c: &SqliteBackendConfig) {
        self.non_empty(&join(path, "db_path"), &c.db_path);
        self.range(&join(path, "pool_size"), c.pool_size, 1..=64, "");
        self.range(&join(path, "busy_timeout_ms"), c.busy_timeout_ms, 0..=600_000, "ms");
        self.range(&join(path, "statement_timeout_ms"), c.statement_timeout_ms, 0..=3_600_000, "ms");
    }

    fn postgres(&mut self, path: &str, c: &PostgresBackendConfig) {
        self.non_empty(&join(path, "host"), &c.host);
        self.non_empty(&join(path, "user"), &c.user);
        self.non_empty(&join(path, "db"), &c.db);
        if matches!(c.ssl_mode, SslMode::Disable | SslMode::Prefer) && c.ca_cert_path.is_some() {
            self.problem(
                join(path, "ca_cert_path"),
                "is only used with ssl_mode require, verify-ca or verify-full (disable and prefer check no certificate)",
            );
        }
        if let Some(ca) = c.ca_cert_path.as_deref().filter(|p| p.trim().is_empty()) {
            self.problem(join(path, "ca_cert_path"), format!("must name a PEM file, got {ca:?}"));
        }
        self.range(&join(path, "port"), c.port, 1..=65535, "");
        self.range(&join(path, "pool_size"), c.pool_size, 1..=1000, "");
        self.range(&join(path, "wait_timeout_ms"), c.wait_timeout_ms, 1..=600_000, "ms");
        self.range(&join(path, "create_timeout_ms"), c.create_timeout_ms, 1..=600_000, "ms");
        self.range(&join(path, "statement_timeout_ms"), c.statement_timeout_ms, 0..=3_600_000, "ms");
        if c.pool_recycle != -1 && !(1..=31_536_000).contains(&c.pool_recycle) {
            let message =
                format!("must be -1 (keep connections) or between 1 and 31536000 seconds, got {}", c.pool_recycle);
            self.problem(join(path, "pool_recycle"), message);
        }
    }

    fn stores(&mut self) {
        let config = self.config;
        let stores = &config.storage.stores;
        match &stores.metadata {
            Some(r) => self.kv_store("metadata", r),
            None => self.problem("storage.stores.metadata", "the metadata store is required and needs a kv_* backend"),
        }
        if let Some(r) = &stores.inference {
            self.queued_store("inference", r, tables::INFERENCE);
        }
        if let Some(r) = &stores.conversations {
            self.sql_store("conversations", r, tables::CONVERSATIONS);
        }
        if let Some(r) = &stores.responses {
            self.queued_store("responses", r, tables::RESPONSES);
        }
        if let Some(r) = &stores.prompts {
            self.kv_store("prompts", r);
        }
        if let Some(r) = &stores.connectors {
            self.kv_store("connectors", r);
        }
    }

    fn kv_store(&mut self, store: &str, r: &KvStoreRef) {
        let path = format!("storage.stores.{store}");
        self.store_backend(store, &join(&path, "backend"), &r.backend, BackendFamily::Kv);
    }

    fn sql_store(&mut self, store: &str, r: &SqlStoreRef, table: &str) {
        let path = format!("storage.stores.{store}");
        self.store_backend(store, &join(&path, "backend"), &r.backend, BackendFamily::Sql);
        self.table_name(store, &path, r.table_name.as_deref(), table);
    }

    fn queued_store(&mut self, store: &str, r: &InferenceStoreConfig, table: &str) {
        let path = format!("storage.stores.{store}");
        self.store_backend(store, &join(&path, "backend"), &r.backend, BackendFamily::Sql);
        self.table_name(store, &path, r.table_name.as_deref(), table);
        self.range(&join(&path, "max_write_queue_size"), r.max_write_queue_size, 1..=1_000_000, "");
        self.range(&join(&path, "num_writers"), r.num_writers, 1..=64, "");
        self.range(&join(&path, "batch_size"), r.batch_size, 1..=10_000, "");
        self.range(&join(&path, "drain_timeout_seconds"), r.drain_timeout_seconds, 0..=3_600, "seconds");
        self.range(&join(&path, "queue_wait_timeout_ms"), r.queue_wait_timeout_ms, 0..=600_000, "ms");
        self.range(&join(&path, "commit_timeout_ms"), r.commit_timeout_ms, 100..=600_000, "ms");
        self.range(&join(&path, "max_batch_bytes"), r.max_batch_bytes, 65_536..=268_435_456, "bytes");
        // A row fits in a batch; against the largest batch when max_batch_bytes is itself out
        // of range (one problem reported, not two).
        let batch_bytes =
            if (65_536..=268_435_456).contains(&r.max_batch_bytes) { r.max_batch_bytes } else { 268_435_456 };
        self.range(&join(&path, "max_row_bytes"), r.max_row_bytes, 1_024..=batch_bytes, "bytes");
        // The queue holds at least one row of the largest size.
        let row_bytes = if (1_024..=batch_bytes).contains(&r.max_row_bytes) { r.max_row_bytes } else { 1_024 };
        self.range(&join(&path, "max_queue_bytes"), r.max_queue_bytes, row_bytes..=MAX_QUEUE_BYTES, "bytes");
        self.range(&join(&path, "stall_timeout_seconds"), r.stall_timeout_seconds, 1..=3_600, "seconds");
        self.range(&join(&path, "group_commit_wait_ms"), r.group_commit_wait_ms, 0..=10_000, "ms");
        if r.spill_path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            self.problem(join(&path, "spill_path"), "must not be empty (leave it out for the default)");
        }
    }

    fn table_name(&mut self, store: &str, path: &str, given: Option<&str>, owned: &str) {
        if let Some(t) = given
            && t != owned
        {
            let message = format!(
                "table names are owned by migrations: store '{store}' uses table '{owned}'; remove table_name or set it to '{owned}' (got '{t}')"
            );
            self.problem(join(path, "table_name"), message);
        }
    }

    /// A store's backend: it must exist, be served, and be of the store's family.
    fn store_backend(&mut self, store: &str, path: &str, name: &str, family: BackendFamily) {
        match self.backend(path, name) {
            Some(Found::Served(b)) if b.family() != family => {
                let message = format!("store '{store}' needs a {family} backend, but '{name}' is {}", b.type_name());
                self.problem(path, message);
            }
            Some(Found::Unserved(b)) => {
                let served = match family {
                    BackendFamily::Kv => "kv_sqlite or kv_postgres",
                    BackendFamily::Sql => "sql_sqlite or sql_postgres",
                };
                let message = format!(
                    "backend '{name}' is {}, which ferrostack does not serve; point store '{store}' at a {served} backend",
                    b.type_name
                );
                self.problem(path, message);
            }
            _ => {}
        }
    }

    /// The named backend, or a problem at `path` listing those that exist.
    fn backend(&mut self, path: &str, name: &str) -> Option<Found<'a>> {
        let config = self.config;
        let storage = &config.storage;
        if let Some(b) = storage.backends.get(name) {
            return Some(Found::Served(b));
        }
        if let Some(b) = storage.unserved_backends.get(name) {
            return Some(Found::Unserved(b));
        }
        let mut names: Vec<&str> =
            storage.backends.keys().chain(storage.unserved_backends.keys()).map(String::as_str).collect();
        names.sort_unstable();
        let message = if names.is_empty() {
            format!("unknown backend '{name}'; no backends are defined (storage.backends is empty)")
        } else {
            format!("unknown backend '{name}'; backends defined: {}", names.join(", "))
        };
        self.problems.push(Problem::new(path, message));
        None
    }

    fn providers(&mut self) {
        let config = self.config;
        for (api, entries) in &config.providers {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for (i, entry) in entries.iter().enumerate() {
                let path = join_index(&join("providers", api), i);
                let id = entry.provider_id.as_str();
                if id.trim().is_empty() {
                    self.problem(join(&path, "provider_id"), "must not be empty");
                } else if let Some(first) = seen.get(id) {
                    let message = format!(
                        "duplicate provider_id '{id}' (also providers.{api}[{first}]); ids are unique within an API"
                    );
                    self.problem(join(&path, "provider_id"), message);
                } else {
                    seen.insert(id, i);
                }
                if entry.provider_type.trim().is_empty() {
                    self.problem(join(&path, "provider_type"), "must not be empty");
                }
                if api == "inference" {
                    crate::inference::validate_entry(entry, &path, &mut self.problems);
                }
                self.references(&join(&path, "config"), &entry.config.0);
            }
        }
    }

    /// Backend references anywhere in a provider's config: any map with a string `backend`. With
    /// a `namespace` it is a KV reference, with a `table_name` a SQL one, else any family will do.
    fn references(&mut self, path: &str, v: &Value) {
        match v {
            Value::Object(map) => {
                if let Some(Value::String(name)) = map.get("backend") {
                    let family = if map.contains_key("namespace") {
                        Some((BackendFamily::Kv, "namespace"))
                    } else if map.contains_key("table_name") {
                        Some((BackendFamily::Sql, "table_name"))
                    } else {
                        None
                    };
                    let at = join(path, "backend");
                    let found = self.backend(&at, name).map(|b| match b {
                        Found::Served(b) => (b.family(), b.type_name().to_owned()),
                        Found::Unserved(b) => (b.family(), b.type_name.clone()),
                    });
                    if let Some((found_family, type_name)) = found
                        && let Some((family, key)) = family
                        && found_family != family
                    {
                        let message = format!(
                            "this reference needs a {family} backend (it has a {key}), but '{name}' is {type_name}"
                        );
                        self.problem(at, message);
                    }
                }
                for (k, child) in map {
                    self.references(&join(path, k), child);
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter().enumerate() {
                    self.references(&join_index(path, i), child);
                }
            }
            _ => {}
        }
    }

    /// `models` and `registered_resources.models`: ids unique across both; the provider must be
    /// an inference provider of the config. One that is disabled or of a type ferrostack does not
    /// serve is not an error: the model is skipped (and listed in the coverage).
    fn models(&mut self) {
        let config = self.config;
        let inference: Vec<&str> = config
            .providers
            .get("inference")
            .map(|entries| entries.iter().map(|e| e.provider_id.as_str()).filter(|id| !id.trim().is_empty()).collect())
            .unwrap_or_default();
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for (path, m) in config.model_entries() {
            let id = m.model_id.as_str();
            if id.trim().is_empty() {
                self.problem(join(&path, "model_id"), "must not be empty");
            } else if let Some(first) = seen.get(id) {
                let message = format!("duplicate model_id '{id}' (also {first})");
                self.problem(join(&path, "model_id"), message);
            } else {
                seen.insert(id, path.clone());
            }
            if !matches!(model_provider(config, self.disabled, &m.provider_id), ModelProvider::Unknown) {
                continue;
            }
            let message = if inference.is_empty() {
                format!(
                    "unknown provider '{}'; no inference providers are defined (providers.inference)",
                    m.provider_id
                )
            } else {
                let mut ids = inference.clone();
                ids.sort_unstable();
                ids.dedup();
                format!("unknown provider '{}'; inference providers defined: {}", m.provider_id, ids.join(", "))
            };
            self.problem(join(&path, "provider_id"), message);
        }
    }
}

/// A backend found by name.
enum Found<'a> {
    Served(&'a BackendConfig),
    Unserved(&'a UnservedBackend),
}

/// `storage.backends.<name>`, with an empty name shown as `""`.
fn backend_path(name: &str) -> String {
    if name.is_empty() { "storage.backends.\"\"".to_owned() } else { join("storage.backends", name) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_name_pattern_compiles() {
        assert!(BACKEND_NAME.is_some());
    }
}
