//! The loading pipeline: layer (file, built-in storage, `FERROSTACK__*` overrides), substitute
//! `${env.X}`, type, normalise, validate.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::LazyLock;

use config::{Config, Environment, File, FileFormat, Source, ValueKind};
use regex::Regex;
use serde_json::Value;

use crate::coverage::{self, Coverage};
use crate::env::{Env, OVERRIDE_PREFIX, home_dir};
use crate::error::{ConfigError, Problem, Problems};
use crate::model::{
    BackendConfig, DEFAULT_KV_BACKEND, DEFAULT_SQL_BACKEND, RunConfig, SqliteBackendConfig, StorageConfig,
    StoresConfig, default_sqlite_busy_timeout_ms, default_sqlite_pool_size, default_statement_timeout_ms,
};
use crate::paths::{IndexMap, join, to_file_path};
use crate::subst::{self, Outcome};
use crate::{de, validate};

/// A loaded, valid run config.
#[derive(Debug)]
pub struct Loaded {
    /// The typed config, with every `${env.X}` substituted and every check passed.
    pub config: RunConfig,
    /// Things that are accepted but deserve a look (what is accepted and ignored, in one line;
    /// ignored fields; text that looks like a substitution but is not one). The caller logs them.
    pub warnings: Vec<String>,
    /// What is served, what is accepted and ignored, what the environment switched off. Its
    /// [`Coverage::warning`] is also the first of `warnings`.
    pub coverage: Coverage,
}

/// Load the run config in `path`, then apply the `FERROSTACK__*` overrides of `env`.
pub fn load_file(path: &Path, env: &Env) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
    load(Some((&text, Some(path))), env)
}

/// Load a run config given as YAML text: the same pipeline as [`load_file`].
pub fn load_str(yaml: &str, env: &Env) -> Result<Loaded, ConfigError> {
    load(Some((yaml, None)), env)
}

/// The config used when no file is given: the built-in SQLite set-up under [`home_dir`], and the
/// `FERROSTACK__*` overrides of `env`.
pub fn load_default(env: &Env) -> Result<Loaded, ConfigError> {
    load(None, env)
}

fn load(file: Option<(&str, Option<&Path>)>, env: &Env) -> Result<Loaded, ConfigError> {
    let mut builder = Config::builder();
    let mut file_has_storage = false;
    match file {
        Some((text, path)) => {
            let parsed = parse_yaml(text, path)?;
            file_has_storage = parsed.get::<config::Value>("storage").is_ok_and(|v| !matches!(v.kind, ValueKind::Nil));
            builder = builder.add_source(parsed);
        }
        // No file: the built-in config, which is of the current version, with the starter
        // providers (from the engine variables, else the echo provider).
        None => {
            builder = builder.add_source(Layer { key: "version", value: Value::from(2) });
            let (providers, models) = starter_providers(env);
            builder = builder.add_source(Layer { key: "providers", value: providers });
            builder = builder.add_source(Layer { key: "models", value: models });
        }
    }
    let uses_builtin_storage = !file_has_storage;
    if uses_builtin_storage {
        let storage = serde_json::to_value(builtin_storage(&home_dir(env))).map_err(|e| {
            ConfigError::Invalid(Problems::from(vec![Problem::new("storage", format!("built-in storage: {e}"))]))
        })?;
        builder = builder.add_source(Layer { key: "storage", value: storage });
    }
    let (overrides, override_texts) = overrides(env);
    builder = builder.add_source(
        Environment::with_prefix("FERROSTACK")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(overrides)),
    );
    let merged = builder.build().and_then(|c| c.try_deserialize::<Value>()).map_err(|e| {
        ConfigError::Invalid(Problems::from(vec![Problem::new(
            "(environment)",
            format!("cannot apply overrides: {e}"),
        )]))
    })?;

    let mut merged = drop_null_sections(merged);
    let split = coverage::split(&mut merged);
    let (tree, outcome) = subst::substitute(merged, env, &override_texts);
    let mut problems: Vec<Problem> = split.problems.clone();
    problems.extend(outcome.problems.iter().cloned());
    let mut warnings = outcome.warnings.clone();
    let later = match de::run_config(&tree, &outcome.env_texts) {
        Ok(mut config) => {
            normalise(&mut config, env);
            config.storage.builtin = uses_builtin_storage
                && config
                    .storage
                    .backends
                    .values()
                    .all(|b| matches!(b, BackendConfig::KvSqlite(_) | BackendConfig::SqlSqlite(_)));
            let (found, notes) = validate::validate(&config, &outcome.disabled);
            let coverage = coverage::coverage(&config, &split, &outcome.disabled, &outcome.index_map);
            if let Some(w) = coverage.warning() {
                warnings.insert(0, w);
            }
            warnings.extend(notes.into_iter().map(|w| w.render(&outcome.index_map)));
            if found.is_empty() && problems.is_empty() {
                return Ok(Loaded { config, warnings, coverage });
            }
            found
        }
        Err(found) => found,
    };
    problems.extend(later.into_iter().filter_map(|p| finish(p, &outcome)));
    Err(ConfigError::Invalid(Problems::from(problems)))
}

/// Parse the YAML text (the `config` crate's file layer).
fn parse_yaml(text: &str, path: Option<&Path>) -> Result<Config, ConfigError> {
    Config::builder().add_source(File::from_str(text, FileFormat::Yaml)).build().map_err(|e| yaml_error(&e, path))
}

static SCAN_ERROR: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?s)^(.*) at byte [0-9]+ line ([0-9]+) column ([0-9]+)$").ok());

fn yaml_error(e: &config::ConfigError, path: Option<&Path>) -> ConfigError {
    let text = e.to_string();
    if let Some(got) = text.strip_prefix("invalid type: ").and_then(|t| t.strip_suffix(", expected a map")) {
        // Well-formed YAML, but a list or a scalar at the top.
        let message = format!("the config must be a map at the top level (version, server, storage, ...), got {got}");
        return ConfigError::Invalid(Problems::from(vec![Problem::new(".", message)]));
    }
    let caps = SCAN_ERROR.as_ref().and_then(|re| re.captures(&text));
    let (message, line, column) = match caps {
        Some(c) => (
            c.get(1).map_or(text.as_str(), |m| m.as_str()).to_owned(),
            c.get(2).and_then(|m| m.as_str().parse().ok()),
            c.get(3).and_then(|m| m.as_str().parse().ok()),
        ),
        None => (text.clone(), None, None),
    };
    ConfigError::Yaml { file: path.map(Path::to_path_buf), line, column, message }
}

/// The built-in storage: `kv_default` and `sql_default` SQLite files under the home directory and
/// the default stores on them. It is a layer under the overrides, so
/// `FERROSTACK__STORAGE__STORES__INFERENCE__NUM_WRITERS=8` works without a file.
fn builtin_storage(home: &Path) -> StorageConfig {
    let sqlite = |file: &str| SqliteBackendConfig {
        db_path: home.join(file).display().to_string(),
        pool_size: default_sqlite_pool_size(),
        busy_timeout_ms: default_sqlite_busy_timeout_ms(),
        namespace: None,
        pool_pre_ping: None,
        statement_timeout_ms: default_statement_timeout_ms(),
    };
    let mut backends = BTreeMap::new();
    backends.insert(DEFAULT_KV_BACKEND.to_owned(), BackendConfig::KvSqlite(sqlite("kvstore.db")));
    backends.insert(DEFAULT_SQL_BACKEND.to_owned(), BackendConfig::SqlSqlite(sqlite("sql_store.db")));
    let mut stores = StoresConfig::default();
    // With no storage configured, the Responses API is served and stored on `sql_default` too (a
    // config file's `storage` keeps `responses` off unless it names it).
    stores.responses = stores.inference.clone();
    StorageConfig { backends, stores, builtin: true, unserved_backends: BTreeMap::new() }
}

/// `(variable, provider_id, provider_type, settings)`.
type StarterEngine = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)]);

/// The engine variables of the starter config: variable, `provider_id`, `provider_type`, and
/// the settings it fills (`${env.X}` texts, substituted like any config value, so that secrets
/// stay out of messages).
const STARTER_ENGINES: [StarterEngine; 3] = [
    ("OLLAMA_URL", "ollama", "remote::ollama", &[("url", "${env.OLLAMA_URL}")]),
    ("VLLM_URL", "vllm", "remote::vllm", &[("url", "${env.VLLM_URL}"), ("api_token", "${env.VLLM_API_TOKEN:=}")]),
    (
        "OPENAI_API_KEY",
        "openai",
        "remote::openai",
        &[("api_key", "${env.OPENAI_API_KEY}"), ("base_url", "${env.OPENAI_BASE_URL:=https://api.openai.com/v1}")],
    ),
];

/// The starter providers and models used without a config file, as Llama Stack's starter
/// distribution does: one provider per engine variable that is set (`OLLAMA_URL`, `VLLM_URL` with
/// `VLLM_API_TOKEN`, `OPENAI_API_KEY` with `OPENAI_BASE_URL`), each with `refresh_models: true`
/// so its models are discovered as `<provider_id>/<model>`; with none set, the built-in echo
/// provider serving model `echo`.
fn starter_providers(env: &Env) -> (Value, Value) {
    let mut providers = Vec::new();
    for (var, id, provider_type, settings) in STARTER_ENGINES {
        if env.non_empty(var).is_none() {
            continue;
        }
        let mut config = serde_json::Map::new();
        for (k, v) in settings {
            config.insert((*k).to_owned(), Value::from(*v));
        }
        config.insert("refresh_models".to_owned(), Value::Bool(true));
        providers.push(serde_json::json!({"provider_id": id, "provider_type": provider_type, "config": config}));
    }
    if providers.is_empty() {
        let echo = serde_json::json!({"provider_id": "echo", "provider_type": crate::ECHO_PROVIDER_TYPE});
        let model = serde_json::json!({"model_id": "echo", "provider_id": "echo"});
        return (serde_json::json!({"inference": [echo]}), Value::Array(vec![model]));
    }
    (serde_json::json!({"inference": providers}), Value::Array(Vec::new()))
}

/// A layer of the `config` crate made of one top-level key and its JSON value.
#[derive(Debug, Clone)]
struct Layer {
    key: &'static str,
    value: Value,
}

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<config::Map<String, config::Value>, config::ConfigError> {
        let mut root = config::Map::new();
        root.insert(self.key.to_owned(), to_config_value(&self.value));
        Ok(root)
    }
}

/// A JSON value as the `config` crate's value.
fn to_config_value(v: &Value) -> config::Value {
    let kind = match v {
        Value::Null => ValueKind::Nil,
        Value::Bool(b) => ValueKind::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => ValueKind::I64(i),
            (None, Some(u)) => ValueKind::U64(u),
            _ => n.as_f64().map_or(ValueKind::Nil, ValueKind::Float),
        },
        Value::String(s) => ValueKind::String(s.clone()),
        Value::Array(items) => ValueKind::Array(items.iter().map(to_config_value).collect()),
        Value::Object(map) => ValueKind::Table(map.iter().map(|(k, v)| (k.clone(), to_config_value(v))).collect()),
    };
    config::Value::new(None, kind)
}

/// The `FERROSTACK__*` pairs for the `config` crate, and the text of each by the path it sets.
///
/// A segment made of digits indexes a list (`FERROSTACK__MODELS__0__PROVIDER_MODEL_ID`): the
/// `config` crate would otherwise turn the list into a map with a key `"0"`.
fn overrides(env: &Env) -> (config::Map<String, String>, HashMap<String, String>) {
    let mut pairs = config::Map::new();
    let mut texts = HashMap::new();
    for (key, value) in env.overrides() {
        let rest = &key[OVERRIDE_PREFIX.len()..];
        let mut cfg_key = OVERRIDE_PREFIX.to_owned();
        let mut path = String::new();
        for (i, seg) in rest.split("__").enumerate() {
            if i > 0 && !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                cfg_key.push_str(&format!("[{seg}]"));
                path.push_str(&format!("[{seg}]"));
            } else {
                if i > 0 {
                    cfg_key.push_str("__");
                }
                cfg_key.push_str(seg);
                path = join(&path, &seg.to_lowercase());
            }
        }
        pairs.insert(cfg_key, value.to_owned());
        texts.insert(path, value.to_owned());
    }
    (pairs, texts)
}

/// Top-level sections written as `null` (a YAML key with everything under it commented out) are
/// treated as absent, so they take their defaults.
fn drop_null_sections(tree: Value) -> Value {
    match tree {
        Value::Object(map) => Value::Object(map.into_iter().filter(|(_, v)| !v.is_null()).collect()),
        other => other,
    }
}

/// Expand a leading `~` in every SQLite `db_path`.
fn normalise(config: &mut RunConfig, env: &Env) {
    for backend in config.storage.backends.values_mut() {
        if let BackendConfig::KvSqlite(c) | BackendConfig::SqlSqlite(c) = backend {
            c.db_path = env.expand_tilde(&c.db_path);
        }
    }
}

/// Put a problem of the typed or validation pass in the file's terms: nothing when it sits under
/// a value that could not be substituted (already reported), list indices as in the file, and no
/// environment value in the message.
fn finish(mut p: Problem, outcome: &Outcome) -> Option<Problem> {
    let under = |failed: &String| {
        p.path == *failed
            || p.path.strip_prefix(failed.as_str()).is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
    };
    if outcome.failed.iter().any(under) {
        return None;
    }
    if let Some(text) = outcome.env_texts.get(&p.path) {
        if matches!(subst::coerce(text), Value::String(_)) {
            let hidden = "(a value from the environment, not shown)";
            p.message = p.message.replace(&format!("{text:?}"), hidden).replace(&format!("`{text}`"), hidden);
        }
        if p.message.contains("invalid type: null") {
            p.message.push_str("; the value comes from the environment and is empty");
        }
    }
    p.path = to_file_path(&p.path, &outcome.index_map);
    Some(p)
}

/// A warning about a path of the typed config.
#[derive(Debug)]
pub(crate) struct Warning {
    /// Where.
    pub path: String,
    /// The rest of the line, separator included (`": ..."` or `" (id): ..."`).
    pub rest: String,
}

impl Warning {
    fn render(self, map: &IndexMap) -> String {
        format!("{}{}", to_file_path(&self.path, map), self.rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_error_pattern_compiles() {
        assert!(SCAN_ERROR.is_some());
    }

    #[test]
    fn override_keys_and_paths() {
        let env = Env::from_pairs([
            ("FERROSTACK__SERVER__PORT", "1"),
            ("FERROSTACK__PROVIDERS__INFERENCE__0__CONFIG__URL", "u"),
        ]);
        let (pairs, texts) = overrides(&env);
        assert!(pairs.contains_key("FERROSTACK__SERVER__PORT"));
        assert!(pairs.contains_key("FERROSTACK__PROVIDERS__INFERENCE[0]__CONFIG__URL"));
        assert_eq!(texts.get("server.port").map(String::as_str), Some("1"));
        assert_eq!(texts.get("providers.inference[0].config.url").map(String::as_str), Some("u"));
    }
}
