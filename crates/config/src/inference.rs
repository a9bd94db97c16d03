//! The typed `config` of the inference providers ferrostack serves: every provider type that
//! speaks OpenAI's chat-completions API (`remote::openai`, `remote::vllm`, `remote::ollama`,
//! `remote::fireworks`, ... see [`InferenceProviderKind`]), all spoken to by one client.
//!
//! A provider's `config` block stays a free-form [`ProviderSettings`] in the run-config tree (so
//! Llama Stack configs load unchanged and `config check` shows it as written); it is parsed here,
//! at validation time for its problems and at start-up by the providers crate for its values.
//! Parsing reports every problem at once, each at its full path
//! (`providers.inference[0].config.url`).
//!
//! The API key is a [`SecretString`]: `Debug` prints it redacted, and it is never part of a
//! problem's message.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

use crate::error::Problem;
use crate::model::{ProviderEntry, ProviderSettings, REDACTED};
use crate::paths::join;

/// Which engine an inference provider entry speaks to. All of them speak OpenAI's
/// chat-completions API and are served by the one OpenAI-compatible client; they differ in their
/// default base URL only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InferenceProviderKind {
    /// `remote::openai`: OpenAI, or any OpenAI-compatible endpoint.
    OpenAi,
    /// `remote::vllm`: a vLLM server.
    Vllm,
    /// `remote::ollama`: an Ollama server.
    Ollama,
    /// `remote::fireworks`: Fireworks AI.
    Fireworks,
    /// `remote::together`: Together AI.
    Together,
    /// `remote::groq`: Groq.
    Groq,
    /// `remote::cerebras`: Cerebras Cloud.
    Cerebras,
    /// `remote::sambanova`: SambaNova Cloud.
    Sambanova,
    /// `remote::nvidia`: NVIDIA NIM (hosted, or self-hosted with `url`).
    Nvidia,
    /// `remote::llama-openai-compat`: Meta's Llama API, OpenAI-compatible endpoint.
    LlamaOpenAiCompat,
    /// `remote::runpod`: a RunPod endpoint (`url` required).
    Runpod,
}

/// The one list of the inference provider types ferrostack serves: kind, `provider_type`, and
/// the base URL used when `url` / `base_url` is absent (`None`: the URL is required).
const KINDS: [(InferenceProviderKind, &str, Option<&str>); 11] = [
    (InferenceProviderKind::OpenAi, "remote::openai", Some(DEFAULT_OPENAI_URL)),
    (InferenceProviderKind::Vllm, "remote::vllm", None),
    (InferenceProviderKind::Ollama, "remote::ollama", Some(DEFAULT_OLLAMA_URL)),
    (InferenceProviderKind::Fireworks, "remote::fireworks", Some("https://api.fireworks.ai/inference/v1")),
    (InferenceProviderKind::Together, "remote::together", Some("https://api.together.xyz/v1")),
    (InferenceProviderKind::Groq, "remote::groq", Some("https://api.groq.com/openai/v1")),
    (InferenceProviderKind::Cerebras, "remote::cerebras", Some("https://api.cerebras.ai/v1")),
    (InferenceProviderKind::Sambanova, "remote::sambanova", Some("https://api.sambanova.ai/v1")),
    (InferenceProviderKind::Nvidia, "remote::nvidia", Some("https://integrate.api.nvidia.com/v1")),
    (InferenceProviderKind::LlamaOpenAiCompat, "remote::llama-openai-compat", Some("https://api.llama.com/compat/v1")),
    (InferenceProviderKind::Runpod, "remote::runpod", None),
];

impl InferenceProviderKind {
    /// Every served kind, in the order of the docs.
    pub fn all() -> impl Iterator<Item = Self> {
        KINDS.iter().map(|(k, _, _)| *k)
    }

    /// The kind of a `provider_type`, or `None` when ferrostack does not serve it.
    pub fn from_type(provider_type: &str) -> Option<Self> {
        KINDS.iter().find(|(_, t, _)| *t == provider_type).map(|(k, _, _)| *k)
    }

    fn row(self) -> &'static (InferenceProviderKind, &'static str, Option<&'static str>) {
        // Every kind has its row: `KINDS` lists each variant once (a unit test checks it).
        KINDS.iter().find(|(k, _, _)| *k == self).unwrap_or(&KINDS[0])
    }

    /// The `provider_type` as written in the config.
    pub fn type_name(self) -> &'static str {
        self.row().1
    }

    /// The base URL used when `url` is absent; `None` when the URL is required.
    pub fn default_url(self) -> Option<&'static str> {
        self.row().2
    }
}

/// `provider_type` of the built-in development provider: answers every chat completion in
/// process, deterministically from the request (`echo: <last user message>`). It takes no
/// settings. The starter config (no config file, no engine variable) serves model `echo` from it.
pub const ECHO_PROVIDER_TYPE: &str = "inline::echo";

/// Default `refresh_interval_seconds`: how often a provider with `refresh_models: true` is asked
/// for its models.
pub fn default_refresh_interval_seconds() -> u64 {
    300
}

/// Default base URL of `remote::openai`.
pub const DEFAULT_OPENAI_URL: &str = "https://api.openai.com/v1";
/// Default base URL of `remote::ollama`.
pub const DEFAULT_OLLAMA_URL: &str = "http://localhost:11434/v1";

/// Default `timeout_ms`: the longest wait for the next bytes of an upstream answer. Two minutes:
/// a streamed answer's first token and a non-streaming answer of a few thousand tokens come
/// well within it, and an upstream that is silent for longer is stuck, not busy. (A client
/// that leaves cancels its call at once, whatever this is; docs/configuration.md.)
pub fn default_inference_timeout_ms() -> u64 {
    120_000
}
/// Default `connect_timeout_ms`.
pub fn default_inference_connect_timeout_ms() -> u64 {
    5_000
}
/// Default `max_idle_connections` (idle keep-alive connections kept per upstream host).
pub fn default_inference_max_idle_connections() -> usize {
    64
}

/// Default `max_concurrent_requests`: upstream calls in flight at once per provider.
pub fn default_inference_max_concurrent_requests() -> usize {
    512
}
/// Default `queue_timeout_ms`: how long a call waits for a place when the provider is at its cap.
pub fn default_inference_queue_timeout_ms() -> u64 {
    1_000
}

/// Fields accepted for compatibility with Llama Stack provider configs and ignored.
const IGNORED_FIELDS: [&str; 5] =
    ["allowed_models", "max_tokens", "append_api_version", "rerank_model_to_url", "timeout"];

/// Every field the parser knows, for the "unknown field" message.
const KNOWN_FIELDS: [&str; 14] = [
    "max_concurrent_requests",
    "queue_timeout_ms",
    "refresh_models",
    "refresh_interval_seconds",
    "url",
    "base_url",
    "api_key",
    "api_token",
    "timeout_ms",
    "connect_timeout_ms",
    "verify_tls",
    "tls_verify",
    "tls_cafile",
    "max_idle_connections",
];

/// The typed `config` of a served inference provider entry.
#[derive(Clone)]
pub struct InferenceProviderConfig {
    /// The engine type.
    pub kind: InferenceProviderKind,
    /// Base URL of the OpenAI-compatible API, without a trailing `/` (`http://vllm:8000/v1`);
    /// requests go to `<url>/chat/completions`. From `url` or `base_url`.
    pub url: String,
    /// Bearer token sent as `Authorization: Bearer ...`; from `api_key` or `api_token`.
    api_key: Option<SecretString>,
    /// The longest wait for the next bytes of an answer (headers or body), in milliseconds.
    pub timeout_ms: u64,
    /// The longest wait for a TCP (and TLS) connection, in milliseconds.
    pub connect_timeout_ms: u64,
    /// Verify the upstream's TLS certificate.
    pub verify_tls: bool,
    /// PEM file of extra CA certificates for the upstream.
    pub tls_cafile: Option<String>,
    /// Idle keep-alive connections kept per upstream host.
    pub max_idle_connections: usize,
    /// Ask the provider for its models (`GET <url>/models`) at start and every
    /// `refresh_interval_seconds`, and serve each as `<provider_id>/<model>`.
    pub refresh_models: bool,
    /// Seconds between two model refreshes (also the retry delay when the provider is down).
    pub refresh_interval_seconds: u64,
    /// Upstream calls in flight at once (a stream counts until it ends or its client leaves).
    pub max_concurrent_requests: usize,
    /// How long a call waits for a place when `max_concurrent_requests` are in flight, before
    /// it is answered 503 without calling the provider, in milliseconds.
    pub queue_timeout_ms: u64,
}

impl fmt::Debug for InferenceProviderConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InferenceProviderConfig")
            .field("kind", &self.kind)
            .field("url", &self.url)
            .field("api_key", &self.api_key.as_ref().map(|_| REDACTED))
            .field("timeout_ms", &self.timeout_ms)
            .field("connect_timeout_ms", &self.connect_timeout_ms)
            .field("verify_tls", &self.verify_tls)
            .field("tls_cafile", &self.tls_cafile)
            .field("max_idle_connections", &self.max_idle_connections)
            .field("refresh_models", &self.refresh_models)
            .field("refresh_interval_seconds", &self.refresh_interval_seconds)
            .field("max_concurrent_requests", &self.max_concurrent_requests)
            .field("queue_timeout_ms", &self.queue_timeout_ms)
            .finish()
    }
}

impl InferenceProviderConfig {
    /// The typed config of `entry`, found at `path` (`providers.inference[0]`): `None` when its
    /// `provider_type` is not a served inference type, else the config or every problem of it.
    pub fn from_entry(entry: &ProviderEntry, path: &str) -> Option<Result<Self, Vec<Problem>>> {
        let kind = InferenceProviderKind::from_type(&entry.provider_type)?;
        Some(Self::parse(kind, &entry.config, &join(path, "config")))
    }

    /// Parse the `config` block of a provider of `kind`, found at `path`
    /// (`providers.inference[0].config`).
    pub fn parse(kind: InferenceProviderKind, settings: &ProviderSettings, path: &str) -> Result<Self, Vec<Problem>> {
        let empty = Map::new();
        let mut problems = Vec::new();
        let map = match &settings.0 {
            Value::Object(map) => map,
            Value::Null => &empty,
            other => {
                problems
                    .push(Problem::new(path, format!("expected a map of settings, got {}", crate::de::kind(other))));
                &empty
            }
        };
        let mut p = Parser { map, path, problems };
        p.unknown_fields();

        let url = match p.alias_string("url", "base_url") {
            Some((field, url)) => {
                let url = url.trim_end_matches('/').to_owned();
                if let Err(why) = crate::url::check_http_url(&url, crate::url::UrlUse::Base) {
                    p.problem(field, format!("'{url}' is not a valid URL: {why}"));
                }
                url
            }
            None => match kind.default_url() {
                Some(u) => u.to_owned(),
                // Given but unusable: that problem is already reported.
                None if ["url", "base_url"].iter().any(|f| p.map.get(*f).is_some_and(|v| !v.is_null())) => {
                    String::new()
                }
                None => {
                    p.problem(
                        "url",
                        format!("missing field `url`; {} needs the base URL of its API", kind.type_name()),
                    );
                    String::new()
                }
            },
        };
        // Llama Stack's ollama `url` is the server (`http://localhost:11434`); the OpenAI API is under /v1.
        let url = if kind == InferenceProviderKind::Ollama && !url.is_empty() && !url.ends_with("/v1") {
            format!("{url}/v1")
        } else {
            url
        };
        let api_key = p.alias_secret("api_key", "api_token");
        let timeout_ms = p.integer("timeout_ms", 1, 3_600_000, "ms").unwrap_or_else(default_inference_timeout_ms);
        let connect_timeout_ms =
            p.integer("connect_timeout_ms", 1, 600_000, "ms").unwrap_or_else(default_inference_connect_timeout_ms);
        let max_idle_connections = p
            .integer("max_idle_connections", 0, 10_000, "")
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or_else(default_inference_max_idle_connections);
        let max_concurrent_requests = p
            .integer("max_concurrent_requests", 1, 100_000, "")
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .unwrap_or_else(default_inference_max_concurrent_requests);
        let queue_timeout_ms =
            p.integer("queue_timeout_ms", 0, 600_000, "ms").unwrap_or_else(default_inference_queue_timeout_ms);
        let refresh_models = p.bool("refresh_models").unwrap_or(false);
        let refresh_interval_seconds =
            p.integer("refresh_interval_seconds", 1, 86_400, "s").unwrap_or_else(default_refresh_interval_seconds);
        let mut verify_tls = p.bool("verify_tls");
        let mut tls_cafile = p.string("tls_cafile");
        if tls_cafile.as_deref().is_some_and(|f| f.trim().is_empty()) {
            p.problem("tls_cafile", "must not be empty".to_owned());
        }
        // Llama Stack's `tls_verify`: a bool, or the path of a CA bundle.
        match p.map.get("tls_verify") {
            None | Some(Value::Null) => {}
            Some(v) => {
                let given_also =
                    if verify_tls.is_some() || tls_cafile.is_some() { Some("verify_tls / tls_cafile") } else { None };
                if let Some(other) = given_also {
                    p.problem("tls_verify", format!("give either tls_verify or {other}, not both"));
                } else {
                    match v {
                        Value::Bool(b) => verify_tls = Some(*b),
                        Value::String(s) if s == "true" || s == "false" => verify_tls = Some(s == "true"),
                        Value::String(s) if !s.trim().is_empty() => tls_cafile = Some(s.clone()),
                        other => p.problem(
                            "tls_verify",
                            format!("expected a bool or the path of a CA bundle, got {}", crate::de::kind(other)),
                        ),
                    }
                }
            }
        }
        let verify_tls = verify_tls.unwrap_or(true);
        if !verify_tls && tls_cafile.is_some() {
            p.problem("tls_cafile", "has no effect with verify_tls: false; remove one of them".to_owned());
        }
        let problems = p.problems;
        if problems.is_empty() {
            Ok(Self {
                kind,
                url,
                api_key,
                timeout_ms,
                connect_timeout_ms,
                verify_tls,
                tls_cafile,
                max_idle_connections,
                refresh_models,
                refresh_interval_seconds,
                max_concurrent_requests,
                queue_timeout_ms,
            })
        } else {
            Err(problems)
        }
    }

    /// The API key, for the one place that sends it.
    pub fn api_key(&self) -> Option<&str> {
        self.api_key.as_ref().map(|k| k.expose_secret())
    }

    /// A config of `kind` pointing at `url`, with defaults for everything else (tests, tools).
    pub fn new(kind: InferenceProviderKind, url: impl Into<String>, api_key: Option<String>) -> Self {
        Self {
            kind,
            url: url.into().trim_end_matches('/').to_owned(),
            api_key: api_key.map(SecretString::from),
            timeout_ms: default_inference_timeout_ms(),
            connect_timeout_ms: default_inference_connect_timeout_ms(),
            verify_tls: true,
            tls_cafile: None,
            max_idle_connections: default_inference_max_idle_connections(),
            refresh_models: false,
            refresh_interval_seconds: default_refresh_interval_seconds(),
            max_concurrent_requests: default_inference_max_concurrent_requests(),
            queue_timeout_ms: default_inference_queue_timeout_ms(),
        }
    }
}

/// Problems of a served inference provider entry (nothing for other types).
pub(crate) fn validate_entry(entry: &ProviderEntry, path: &str, problems: &mut Vec<Problem>) {
    if entry.provider_type == ECHO_PROVIDER_TYPE {
        let empty = match &entry.config.0 {
            Value::Null => true,
            Value::Object(map) => map.is_empty(),
            _ => false,
        };
        if !empty {
            problems.push(Problem::new(join(path, "config"), format!("{ECHO_PROVIDER_TYPE} takes no settings")));
        }
        return;
    }
    if let Some(Err(mut found)) = InferenceProviderConfig::from_entry(entry, path) {
        problems.append(&mut found);
    }
}

struct Parser<'a> {
    map: &'a Map<String, Value>,
    path: &'a str,
    problems: Vec<Problem>,
}

impl Parser<'_> {
    fn problem(&mut self, field: &str, message: String) {
        self.problems.push(Problem::new(join(self.path, field), message));
    }

    fn unknown_fields(&mut self) {
        let map = self.map;
        for key in map.keys() {
            if !KNOWN_FIELDS.contains(&key.as_str()) && !IGNORED_FIELDS.contains(&key.as_str()) {
                let message = format!("unknown field `{key}`, expected one of {}", KNOWN_FIELDS.join(", "));
                self.problem(key, message);
            }
        }
    }

    /// A string field; numbers and bools are taken as their text (an `${env.X}` value that looked
    /// like a number was turned into one). Null and `""` are absent.
    fn raw_string(&mut self, field: &str, secret: bool) -> Option<String> {
        match self.map.get(field)? {
            Value::Null => None,
            Value::String(s) if s.is_empty() => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            other => {
                // The message names the type, never the value (it may be a key).
                let what = if secret { "a secret string" } else { "a string" };
                let message = format!("expected {what}, got {}", crate::de::kind(other));
                self.problem(field, message);
                None
            }
        }
    }

    fn string(&mut self, field: &str) -> Option<String> {
        self.raw_string(field, false)
    }

    /// One of two spellings of a string field; giving both is a problem.
    fn alias_string(&mut self, a: &'static str, b: &'static str) -> Option<(&'static str, String)> {
        let va = self.string(a);
        let vb = self.string(b);
        match (va, vb) {
            (Some(_), Some(_)) => {
                self.problem(b, format!("give either {a} or {b}, not both"));
                None
            }
            (Some(v), None) => Some((a, v)),
            (None, Some(v)) => Some((b, v)),
            (None, None) => None,
        }
    }

    fn alias_secret(&mut self, a: &str, b: &str) -> Option<SecretString> {
        let va = self.raw_string(a, true);
        let vb = self.raw_string(b, true);
        match (va, vb) {
            (Some(_), Some(_)) => {
                self.problem(b, format!("give either {a} or {b}, not both"));
                None
            }
            (Some(v), None) | (None, Some(v)) => {
                if v.chars().any(|c| c.is_control() || c == ' ') {
                    let field = if self.map.get(a).is_some_and(|x| !x.is_null()) { a } else { b };
                    self.problem(field, "must not contain spaces or control characters".to_owned());
                }
                Some(SecretString::from(v))
            }
            (None, None) => None,
        }
    }

    fn integer(&mut self, field: &str, min: u64, max: u64, unit: &str) -> Option<u64> {
        let n = match self.map.get(field)? {
            Value::Null => return None,
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let unit = if unit.is_empty() { String::new() } else { format!(" {unit}") };
        match n {
            Some(n) if (min..=max).contains(&n) => Some(n),
            Some(n) => {
                self.problem(field, format!("must be between {min} and {max}{unit}, got {n}"));
                None
            }
            None => {
                let got = self.map.get(field).map(crate::de::kind).unwrap_or("nothing");
                self.problem(field, format!("expected an integer between {min} and {max}{unit}, got {got}"));
                None
            }
        }
    }

    fn bool(&mut self, field: &str) -> Option<bool> {
        match self.map.get(field)? {
            Value::Null => None,
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" || s == "false" => Some(s == "true"),
            other => {
                let message = format!("expected true or false, got {}", crate::de::kind(other));
                self.problem(field, message);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{InferenceProviderKind, KINDS};

    #[test]
    fn every_kind_has_one_row() {
        for (i, (kind, name, _)) in KINDS.iter().enumerate() {
            assert_eq!(kind.type_name(), *name);
            assert_eq!(InferenceProviderKind::from_type(name), Some(*kind));
            assert!(KINDS.iter().skip(i + 1).all(|(k, n, _)| k != kind && n != name), "{name} twice");
        }
    }
}
