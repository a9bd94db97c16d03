//! The typed run-config tree.
//!
//! Every struct denies unknown fields, so a typo fails loudly with its dotted path. Defaults are
//! written once, here, as `default_*` functions; `docs/configuration.md` lists them and a test keeps
//! the two in step.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

/// What redacted secrets print as, in `config check` output and anywhere else a config is shown.
pub const REDACTED: &str = "********";

/// The whole run config (`version: 2`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Format version; only `2` is understood. Written as a number or, as some of Llama Stack's
    /// own configs do, as the text `'2'`.
    #[serde(deserialize_with = "version_number")]
    pub version: u32,
    /// Name of the distribution. Accepted for compatibility with Llama Stack run configs; only shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub distro_name: Option<String>,
    /// The APIs a Llama Stack run config asks for. Those ferrostack serves are served whether
    /// listed or not; the others are accepted and listed as ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apis: Vec<String>,
    /// Older spelling of `distro_name`. Accepted for compatibility; only shown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_name: Option<String>,
    /// Listening address and server behaviour.
    #[serde(default)]
    pub server: ServerConfig,
    /// Named backends and the stores that reference them.
    #[serde(default)]
    pub storage: StorageConfig,
    /// Providers by API (`inference`, `vector_io`, ...), each a list of entries.
    #[serde(default)]
    pub providers: BTreeMap<String, Vec<ProviderEntry>>,
    /// Models registered at start-up.
    #[serde(default)]
    pub models: Vec<ModelEntry>,
    /// Llama Stack's resources registered at start-up. Only `models` is read (its entries join
    /// `models`); the other kinds (shields, vector stores, tool groups, ...) are accepted and
    /// listed as ignored by the loader.
    #[serde(default, skip_serializing_if = "RegisteredResources::is_empty")]
    pub registered_resources: RegisteredResources,
    /// Logging and OpenTelemetry export.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
}

impl RunConfig {
    /// Every model to register, with the path of its entry: `models` first, then
    /// `registered_resources.models`.
    pub fn model_entries(&self) -> impl Iterator<Item = (String, &ModelEntry)> {
        let own = self.models.iter().enumerate().map(|(i, m)| (format!("models[{i}]"), m));
        let registered = self
            .registered_resources
            .models
            .iter()
            .enumerate()
            .map(|(i, m)| (format!("registered_resources.models[{i}]"), m));
        own.chain(registered)
    }

    /// The resolved config as JSON, for `ferrostack config check`: PostgreSQL passwords and every
    /// secret-looking provider setting (password, token, secret, api key, ...) show as [`REDACTED`].
    pub fn redacted_json(&self) -> serde_json::Value {
        serde_json::to_value(self)
            .unwrap_or_else(|e| serde_json::Value::String(format!("the config cannot be shown: {e}")))
    }
}

/// `server:`: where and how the HTTP server listens.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to bind. The default listens on loopback only; containers set `0.0.0.0`.
    #[serde(default = "default_host")]
    pub host: String,
    /// TCP port; 0 picks a free one (tests).
    #[serde(default = "default_port")]
    pub port: u16,
    /// actix worker threads; absent means one per CPU core.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// How long a graceful shutdown waits for in-flight requests, in seconds.
    #[serde(default = "default_shutdown_timeout_seconds")]
    pub shutdown_timeout_seconds: u64,
    /// Authentication and access policy.
    #[serde(default)]
    pub auth: crate::auth::AuthConfig,
    /// Llama Stack's TLS certificate for the listener. ferrostack serves plain HTTP (TLS ends at
    /// the ingress or proxy in front of it): any value other than null is refused, so that a
    /// config asking for TLS never serves without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_certfile: Option<String>,
    /// Llama Stack's TLS key for the listener; refused like `tls_certfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_keyfile: Option<String>,
    /// Llama Stack's CA for client certificates; refused like `tls_certfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_cafile: Option<String>,
    /// Llama Stack's request quotas. Accepted and listed as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<serde_json::Value>,
    /// Llama Stack's CORS settings. Accepted and listed as ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<serde_json::Value>,
    /// Resource limits of the listener (body sizes, budgets, timeouts, connections).
    #[serde(default)]
    pub limits: crate::limits::LimitsConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            host: default_host(),
            port: default_port(),
            workers: None,
            shutdown_timeout_seconds: default_shutdown_timeout_seconds(),
            auth: crate::auth::AuthConfig::default(),
            tls_certfile: None,
            tls_keyfile: None,
            tls_cafile: None,
            quota: None,
            cors: None,
            limits: crate::limits::LimitsConfig::default(),
        }
    }
}

/// `storage:`: backends declared once by name, and stores that reference them.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StorageConfig {
    /// Named physical backends. When the whole `storage` block is absent, `kv_default` and
    /// `sql_default` SQLite files under the ferrostack home directory are used.
    #[serde(default)]
    pub backends: BTreeMap<String, BackendConfig>,
    /// Logical stores, each naming a backend.
    #[serde(default)]
    pub stores: StoresConfig,
    /// True when no `storage` block was given and the built-in SQLite set-up is in use. Set by the
    /// loader, never read from the file; it makes `--auto-migrate` the default.
    #[serde(skip)]
    pub builtin: bool,
    /// Backends of types ferrostack does not serve (`kv_redis`, `kv_mongodb`), taken out of
    /// `backends` by the loader: accepted and listed as ignored while only providers that are not
    /// served reference them; a store that names one is an error.
    #[serde(skip)]
    pub unserved_backends: BTreeMap<String, UnservedBackend>,
}

/// A backend of a type ferrostack does not serve, kept as written.
#[derive(Debug, Clone, PartialEq)]
pub struct UnservedBackend {
    /// Its `type` (`kv_redis`, `kv_mongodb`).
    pub type_name: String,
    /// Its other fields (secrets redacted when shown).
    pub settings: ProviderSettings,
}

impl UnservedBackend {
    /// The backend types accepted but not served.
    pub const TYPES: [&'static str; 2] = ["kv_redis", "kv_mongodb"];

    /// Both are key/value backends.
    pub fn family(&self) -> BackendFamily {
        BackendFamily::Kv
    }
}

/// The family of a backend: what kind of store may reference it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendFamily {
    /// Key/value backends (`kv_*`).
    Kv,
    /// SQL backends (`sql_*`).
    Sql,
}

impl fmt::Display for BackendFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BackendFamily::Kv => "kv_*",
            BackendFamily::Sql => "sql_*",
        })
    }
}

/// The SQL dialect a backend speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL, through deadpool-postgres.
    Postgres,
    /// SQLite, embedded (rusqlite, bundled).
    Sqlite,
}

/// `storage.backends.<name>`, discriminated by `type`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum BackendConfig {
    /// Key/value store in a SQLite file.
    KvSqlite(SqliteBackendConfig),
    /// Key/value store in a PostgreSQL table.
    KvPostgres(PostgresBackendConfig),
    /// SQL stores in a SQLite file.
    SqlSqlite(SqliteBackendConfig),
    /// SQL stores in PostgreSQL.
    SqlPostgres(PostgresBackendConfig),
}

impl BackendConfig {
    /// The `type` string as written in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            BackendConfig::KvSqlite(_) => "kv_sqlite",
            BackendConfig::KvPostgres(_) => "kv_postgres",
            BackendConfig::SqlSqlite(_) => "sql_sqlite",
            BackendConfig::SqlPostgres(_) => "sql_postgres",
        }
    }

    /// Which stores may reference this backend.
    pub fn family(&self) -> BackendFamily {
        match self {
            BackendConfig::KvSqlite(_) | BackendConfig::KvPostgres(_) => BackendFamily::Kv,
            BackendConfig::SqlSqlite(_) | BackendConfig::SqlPostgres(_) => BackendFamily::Sql,
        }
    }

    /// The database engine behind it.
    pub fn dialect(&self) -> Dialect {
        match self {
            BackendConfig::KvSqlite(_) | BackendConfig::SqlSqlite(_) => Dialect::Sqlite,
            BackendConfig::KvPostgres(_) | BackendConfig::SqlPostgres(_) => Dialect::Postgres,
        }
    }
}

/// A SQLite backend (`kv_sqlite`, `sql_sqlite`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteBackendConfig {
    /// Path of the database file; a leading `~` is expanded, parent directories are created.
    pub db_path: String,
    /// Connections in the pool (readers; SQLite itself serialises writers).
    #[serde(default = "default_sqlite_pool_size")]
    pub pool_size: u32,
    /// How long a statement waits for a lock held by another connection, in milliseconds.
    #[serde(default = "default_sqlite_busy_timeout_ms")]
    pub busy_timeout_ms: u64,
    /// Accepted for compatibility; each reference sets its own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Accepted for compatibility; ferrostack checks connections before reuse anyway.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_pre_ping: Option<bool>,
    /// Longest a statement may run, in milliseconds, before it is interrupted (0: no limit).
    /// Bounds what one slow query can hold of the pool.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

/// How the connection to PostgreSQL is secured, with libpq's `sslmode` meanings (the catalog's
/// `tls` module serves every mode; trust anchors are `ca_cert_path`, else the system's store).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    #[default]
    Disable,
    /// TLS when the server offers it.
    Prefer,
    /// TLS, without checking the certificate.
    Require,
    /// TLS, certificate checked against `ca_cert_path`.
    VerifyCa,
    /// TLS, certificate and host name checked.
    VerifyFull,
}

/// A PostgreSQL backend (`kv_postgres`, `sql_postgres`). `Debug` is derived: the password is a
/// `SecretString`, which prints redacted.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresBackendConfig {
    /// Server host name or address.
    #[serde(default = "default_pg_host")]
    pub host: String,
    /// Server port.
    #[serde(default = "default_pg_port")]
    pub port: u16,
    /// Database name.
    #[serde(default = "default_pg_db")]
    pub db: String,
    /// Role to connect as.
    pub user: String,
    /// Password; never printed.
    #[serde(default, serialize_with = "serialize_secret_opt", skip_serializing_if = "Option::is_none")]
    pub password: Option<SecretString>,
    /// TLS mode.
    #[serde(default)]
    pub ssl_mode: SslMode,
    /// CA certificate for `verify-ca` / `verify-full`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_cert_path: Option<String>,
    /// Accepted for compatibility; on `kv_postgres` another name than the migration-owned
    /// `kvstore` is ignored with a warning, on `sql_postgres` any name is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// Accepted for compatibility; each reference sets its own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Most connections the pool holds.
    #[serde(default = "default_pg_pool_size")]
    pub pool_size: u32,
    /// Accepted for compatibility with SQLAlchemy-style configs; the pool never exceeds `pool_size`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_overflow: Option<u32>,
    /// Connections older than this many seconds are closed instead of reused; -1 keeps them.
    #[serde(default = "default_pg_pool_recycle")]
    pub pool_recycle: i64,
    /// Check a connection with a round trip before handing it out (else only check it is open).
    #[serde(default = "default_true")]
    pub pool_pre_ping: bool,
    /// How long a request waits for a free connection, in milliseconds.
    #[serde(default = "default_pg_timeout_ms")]
    pub wait_timeout_ms: u64,
    /// How long opening a new connection may take, in milliseconds.
    #[serde(default = "default_pg_timeout_ms")]
    pub create_timeout_ms: u64,
    /// Longest a statement of the pool may run, in milliseconds (PostgreSQL's
    /// `statement_timeout` on every pooled connection; 0: no limit). Migrations run on their own
    /// connection without it.
    #[serde(default = "default_statement_timeout_ms")]
    pub statement_timeout_ms: u64,
}

impl PostgresBackendConfig {
    /// The password, for the one place that connects.
    pub fn password_secret(&self) -> Option<&str> {
        self.password.as_ref().map(|p| p.expose_secret())
    }
}

/// `storage.stores`: each store names a backend. Absent keys take the defaults of the reference;
/// an explicit `null` turns the store off (except `metadata`, which is required).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StoresConfig {
    /// Registry of models and other resources (KV).
    #[serde(default = "default_metadata_store")]
    pub metadata: Option<KvStoreRef>,
    /// Stored chat completions (SQL, with a write queue).
    #[serde(default = "default_inference_store")]
    pub inference: Option<InferenceStoreConfig>,
    /// Conversations and their items (SQL).
    #[serde(default = "default_conversations_store")]
    pub conversations: Option<SqlStoreRef>,
    /// Stored responses (SQL, with a write queue); off unless configured.
    #[serde(default)]
    pub responses: Option<InferenceStoreConfig>,
    /// Prompt templates (KV).
    #[serde(default = "default_prompts_store")]
    pub prompts: Option<KvStoreRef>,
    /// Connector registry (KV).
    #[serde(default = "default_connectors_store")]
    pub connectors: Option<KvStoreRef>,
}

impl Default for StoresConfig {
    fn default() -> Self {
        Self {
            metadata: default_metadata_store(),
            inference: default_inference_store(),
            conversations: default_conversations_store(),
            responses: None,
            prompts: default_prompts_store(),
            connectors: default_connectors_store(),
        }
    }
}

/// A reference to a KV backend with a key namespace (`{backend, namespace}`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KvStoreRef {
    /// Name of a `kv_*` backend.
    pub backend: String,
    /// Prefix of every key (`<namespace>:<key>`).
    pub namespace: String,
}

/// A reference to a SQL backend (`{backend, table_name}`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SqlStoreRef {
    /// Name of a `sql_*` backend.
    pub backend: String,
    /// Accepted for compatibility; must equal the migration-owned table name when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
}

/// A SQL store with a write queue (`inference`, `responses`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct InferenceStoreConfig {
    /// Name of a `sql_*` backend.
    pub backend: String,
    /// Accepted for compatibility; must equal the migration-owned table name when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table_name: Option<String>,
    /// Rows the write queue holds before requests wait for room.
    #[serde(default = "default_max_write_queue_size")]
    pub max_write_queue_size: usize,
    /// Bytes of rows the write queue holds before requests wait for room (rows admitted before
    /// the bound was reached may pass it by their own size).
    #[serde(default = "default_max_queue_bytes")]
    pub max_queue_bytes: usize,
    /// Concurrent batch writers.
    #[serde(default = "default_num_writers")]
    pub num_writers: usize,
    /// When a store call returns: once the row is queued (`async`) or once its batch committed
    /// (`sync`, group commit).
    #[serde(default)]
    pub durability: Durability,
    /// Most rows one batch writes (one multi-row INSERT).
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// Grace period at shutdown for writing what is still queued.
    #[serde(default = "default_drain_timeout_seconds")]
    pub drain_timeout_seconds: u64,
    // Durability and fault handling of the write queue (issues 14 and 15).
    /// How long a request waits for a place in the write queue (reserved before the upstream is
    /// called) before it is answered 503, in milliseconds.
    #[serde(default = "default_queue_wait_timeout_ms")]
    pub queue_wait_timeout_ms: u64,
    /// `durability: sync`: how long a request waits for its row's batch to commit before it is
    /// answered 503, in milliseconds.
    #[serde(default = "default_commit_timeout_ms")]
    pub commit_timeout_ms: u64,
    /// Most bytes of row data one batch writes (a batch holds at least one row).
    #[serde(default = "default_max_batch_bytes")]
    pub max_batch_bytes: usize,
    /// Largest row accepted, in bytes (refused with 413 at the request).
    #[serde(default = "default_max_row_bytes")]
    pub max_row_bytes: usize,
    /// A writer with rows queued that commits nothing for this long is stalled: `/readyz` answers 503.
    #[serde(default = "default_stall_timeout_seconds")]
    pub stall_timeout_seconds: u64,
    /// Group commit: how long a partial batch may wait, while another writer's batch is being
    /// written, for that write to end (or a full batch) before it is written beside it, in
    /// milliseconds. `0`: never wait (every writer writes whatever it took at once).
    #[serde(default = "default_group_commit_wait_ms")]
    pub group_commit_wait_ms: u64,
    /// Where `durability: async` rows still queued when the drain ends are saved (JSON lines) and
    /// replayed from at the next start. Default: under ferrostack's home directory, one file per
    /// database and table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_path: Option<String>,
}

/// When a write through a store's write queue counts as done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// The store call returns once the row is queued; a crash may lose what is queued.
    #[default]
    Async,
    /// The store call returns once the row's batch committed (group commit).
    Sync,
}

impl std::fmt::Display for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Durability::Async => "async",
            Durability::Sync => "sync",
        })
    }
}

/// One provider entry under `providers.<api>`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEntry {
    /// Unique id within its API.
    pub provider_id: String,
    /// Implementation, e.g. `remote::vllm`.
    pub provider_type: String,
    /// Provider-specific settings; backend references inside are validated.
    #[serde(default)]
    pub config: ProviderSettings,
    /// Accepted for compatibility (external provider module); unused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
}

/// A provider's free-form `config` block. Debug and Serialize redact values whose key looks like a
/// secret (password, token, secret, api key), because these blocks hold API keys.
#[derive(Clone, Default, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct ProviderSettings(pub serde_json::Value);

impl ProviderSettings {
    /// The settings with every secret-looking value replaced by [`REDACTED`].
    pub fn redacted(&self) -> serde_json::Value {
        redact_value(&self.0)
    }
}

impl fmt::Debug for ProviderSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.redacted())
    }
}

impl Serialize for ProviderSettings {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.redacted().serialize(serializer)
    }
}

/// Whether a config key names a secret (`password`, `api_token`, `client_secret`, `api_key`, ...).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "passwd", "token", "secret", "api_key", "apikey", "credential", "private_key"]
        .iter()
        .any(|s| k.contains(s))
}

fn redact_value(v: &serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if is_secret_key(k) && !v.is_null() {
                        serde_json::Value::String(REDACTED.to_owned())
                    } else {
                        redact_value(v)
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        serde_json::Value::Array(items) => serde_json::Value::Array(items.iter().map(redact_value).collect()),
        other => other.clone(),
    }
}

/// One entry of `models:`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    /// The id clients send in `model`.
    pub model_id: String,
    /// An inference provider's `provider_id`.
    pub provider_id: String,
    /// The name the provider knows the model by; defaults to `model_id`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_model_id: Option<String>,
    /// `llm` or `embedding`.
    #[serde(default)]
    pub model_type: ModelType,
    /// Free-form metadata shown on `/v1/models`.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// `registered_resources:` of a Llama Stack run config. The loader keeps only `models` here; the
/// other kinds are taken out before typing and listed as ignored.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RegisteredResources {
    /// Models registered at start-up, like `models`. Entries whose provider is disabled or of a
    /// type ferrostack does not serve are skipped (and listed).
    #[serde(default)]
    pub models: Vec<ModelEntry>,
}

impl RegisteredResources {
    /// Nothing registered.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Kind of model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ModelType {
    /// Chat / completion model.
    #[default]
    Llm,
    /// Embedding model.
    Embedding,
    /// Reranking model (Llama Stack's `rerank`); registered, not served by ferrostack's routes.
    Rerank,
}

/// `telemetry:`: logs, and OpenTelemetry traces and metrics over OTLP.
///
/// The standard `OTEL_*` variables override these fields (see `docs/observability.md`); export
/// is on only when `enabled` is true and `OTEL_SDK_DISABLED` is not `true`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Default log filter (`RUST_LOG` overrides it), e.g. `info` or `ferrostack=debug,info`.
    #[serde(default = "default_log_level")]
    pub log_level: String,
    /// `pretty` for people, `json` for log collectors.
    #[serde(default)]
    pub log_format: LogFormat,
    /// Export traces and metrics over OTLP. Off by default; when off, no exporter runs and no
    /// OpenTelemetry layer is installed.
    #[serde(default)]
    pub enabled: bool,
    /// Base URL of the OTLP receiver (a collector), without the signal path: `/v1/traces` and
    /// `/v1/metrics` are appended. `OTEL_EXPORTER_OTLP_ENDPOINT` overrides it.
    #[serde(default = "default_otlp_endpoint")]
    pub otlp_endpoint: String,
    /// OTLP transport. Only `http/protobuf` is built in.
    #[serde(default)]
    pub protocol: OtlpProtocol,
    /// `service.name` of the resource. `OTEL_SERVICE_NAME` overrides it.
    #[serde(default = "default_service_name")]
    pub service_name: String,
    /// `deployment.environment` of the resource (`production`, `staging`, ...); left out when
    /// unset.
    #[serde(default)]
    pub deployment_environment: Option<String>,
    /// Share of new traces recorded, 0 to 1 (a sampled incoming `traceparent` is always
    /// followed). `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` override it.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
    /// How often finished spans are sent, in milliseconds.
    #[serde(default = "default_trace_export_interval_ms")]
    pub trace_export_interval_ms: u64,
    /// How often metrics are collected and sent, in milliseconds.
    #[serde(default = "default_metric_export_interval_ms")]
    pub metric_export_interval_ms: u64,
    /// Longest time one export request may take, in milliseconds.
    #[serde(default = "default_export_timeout_ms")]
    pub export_timeout_ms: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            log_level: default_log_level(),
            log_format: LogFormat::default(),
            enabled: false,
            otlp_endpoint: default_otlp_endpoint(),
            protocol: OtlpProtocol::default(),
            service_name: default_service_name(),
            deployment_environment: None,
            sample_ratio: default_sample_ratio(),
            trace_export_interval_ms: default_trace_export_interval_ms(),
            metric_export_interval_ms: default_metric_export_interval_ms(),
            export_timeout_ms: default_export_timeout_ms(),
        }
    }
}

/// OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum OtlpProtocol {
    /// Protobuf over HTTP (port 4318 on a collector).
    #[default]
    #[serde(rename = "http/protobuf")]
    HttpProtobuf,
}

impl std::fmt::Display for OtlpProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::HttpProtobuf => "http/protobuf",
        })
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

fn version_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Version {
        Number(u32),
        Text(String),
    }
    match Version::deserialize(d)? {
        Version::Number(n) => Ok(n),
        Version::Text(t) => t
            .trim()
            .parse()
            .map_err(|_| serde::de::Error::custom(format!("invalid version {t:?}: expected a number such as 2"))),
    }
}

fn serialize_secret_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(_) => s.serialize_str(REDACTED),
        None => s.serialize_none(),
    }
}

// ---- defaults (docs/configuration.md lists each one) ----

/// Default bind address.
pub fn default_host() -> String {
    "127.0.0.1".to_owned()
}
/// Default port.
pub fn default_port() -> u16 {
    8321
}
/// Default graceful-shutdown timeout.
pub fn default_shutdown_timeout_seconds() -> u64 {
    30
}
/// Default SQLite pool size.
pub fn default_sqlite_pool_size() -> u32 {
    4
}
/// Default SQLite busy timeout.
pub fn default_sqlite_busy_timeout_ms() -> u64 {
    5_000
}
/// Default PostgreSQL host.
pub fn default_pg_host() -> String {
    "localhost".to_owned()
}
/// Default PostgreSQL port.
pub fn default_pg_port() -> u16 {
    5432
}
/// Default PostgreSQL database.
pub fn default_pg_db() -> String {
    "ferrostack".to_owned()
}
/// Default PostgreSQL pool size.
pub fn default_pg_pool_size() -> u32 {
    10
}
/// Default connection recycle age, in seconds (-1: never). Long-lived connections accumulate
/// server-side state (memory of the backend process); an hour bounds it at the cost of one
/// reconnect per connection an hour.
pub fn default_pg_pool_recycle() -> i64 {
    3_600
}
/// Default statement timeout, in milliseconds.
pub fn default_statement_timeout_ms() -> u64 {
    30_000
}
/// Default pool wait / connection create timeout.
pub fn default_pg_timeout_ms() -> u64 {
    5_000
}
fn default_true() -> bool {
    true
}
/// Default write-queue capacity.
pub fn default_max_write_queue_size() -> usize {
    10_000
}
/// Default number of batch writers.
pub fn default_num_writers() -> usize {
    4
}
/// Default most rows per batch INSERT of a write queue.
pub fn default_batch_size() -> usize {
    256
}
/// Default grace period for draining a write queue at shutdown, in seconds.
pub fn default_drain_timeout_seconds() -> u64 {
    30
}
/// Default wait for a place in a write queue, in milliseconds.
pub fn default_queue_wait_timeout_ms() -> u64 {
    5_000
}
/// Default wait for a `durability: sync` commit, in milliseconds.
pub fn default_commit_timeout_ms() -> u64 {
    10_000
}
/// Default byte bound of one batch (16 MiB, far below PostgreSQL's 1 GB message limit).
pub fn default_max_batch_bytes() -> usize {
    16 * 1024 * 1024
}
/// Default largest stored row (16 MiB).
pub fn default_max_row_bytes() -> usize {
    16 * 1024 * 1024
}
/// Default byte bound of a write queue (256 MiB).
pub fn default_max_queue_bytes() -> usize {
    256 * 1024 * 1024
}
/// Default time without progress after which a writer counts as stalled.
pub fn default_stall_timeout_seconds() -> u64 {
    30
}
/// Default longest wait of a partial batch for another writer's batch (group commit).
pub fn default_group_commit_wait_ms() -> u64 {
    20
}
/// Default log filter.
pub fn default_log_level() -> String {
    "info".to_owned()
}
/// Default OTLP endpoint: a collector on this host, OTLP/HTTP port.
pub fn default_otlp_endpoint() -> String {
    "http://localhost:4318".to_owned()
}
/// Default `service.name`.
pub fn default_service_name() -> String {
    "ferrostack".to_owned()
}
/// Default share of traces recorded: all.
pub fn default_sample_ratio() -> f64 {
    1.0
}
/// Default delay between span exports, in milliseconds (the OpenTelemetry default).
pub fn default_trace_export_interval_ms() -> u64 {
    5000
}
/// Default delay between metric exports, in milliseconds (the OpenTelemetry default).
pub fn default_metric_export_interval_ms() -> u64 {
    60_000
}
/// Default time limit of one export, in milliseconds.
pub fn default_export_timeout_ms() -> u64 {
    10_000
}
/// Name of the built-in KV backend.
pub const DEFAULT_KV_BACKEND: &str = "kv_default";
/// Name of the built-in SQL backend.
pub const DEFAULT_SQL_BACKEND: &str = "sql_default";

fn default_metadata_store() -> Option<KvStoreRef> {
    Some(KvStoreRef { backend: DEFAULT_KV_BACKEND.to_owned(), namespace: "registry".to_owned() })
}
fn default_prompts_store() -> Option<KvStoreRef> {
    Some(KvStoreRef { backend: DEFAULT_KV_BACKEND.to_owned(), namespace: "prompts".to_owned() })
}
fn default_connectors_store() -> Option<KvStoreRef> {
    Some(KvStoreRef { backend: DEFAULT_KV_BACKEND.to_owned(), namespace: "connectors".to_owned() })
}
fn default_inference_store() -> Option<InferenceStoreConfig> {
    Some(InferenceStoreConfig {
        backend: DEFAULT_SQL_BACKEND.to_owned(),
        table_name: None,
        max_write_queue_size: default_max_write_queue_size(),
        max_queue_bytes: default_max_queue_bytes(),
        num_writers: default_num_writers(),
        durability: Durability::default(),
        batch_size: default_batch_size(),
        drain_timeout_seconds: default_drain_timeout_seconds(),
        queue_wait_timeout_ms: default_queue_wait_timeout_ms(),
        commit_timeout_ms: default_commit_timeout_ms(),
        max_batch_bytes: default_max_batch_bytes(),
        max_row_bytes: default_max_row_bytes(),
        stall_timeout_seconds: default_stall_timeout_seconds(),
        group_commit_wait_ms: default_group_commit_wait_ms(),
        spill_path: None,
    })
}
fn default_conversations_store() -> Option<SqlStoreRef> {
    Some(SqlStoreRef { backend: DEFAULT_SQL_BACKEND.to_owned(), table_name: None })
}

/// Table names owned by migrations. A store's `table_name`, when given, must equal these.
pub mod tables {
    /// The KV table, on every KV backend.
    pub const KVSTORE: &str = "kvstore";
    /// Stored chat completions.
    pub const INFERENCE: &str = "inference_store";
    /// Conversations.
    pub const CONVERSATIONS: &str = "openai_conversations";
    /// A conversation's items (same store and backend as [`CONVERSATIONS`]; not configurable).
    pub const CONVERSATION_ITEMS: &str = "conversation_items";
    /// Stored responses.
    pub const RESPONSES: &str = "openai_responses";
}
