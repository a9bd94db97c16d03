//! What of a run config ferrostack serves, and what it accepts and ignores.
//!
//! A Llama Stack run config names many APIs and providers ferrostack does not serve (vector IO,
//! safety, agents, tool runtimes, ...). They are accepted so that the config loads as it is, and
//! listed once: in one start-up warning and in `config check`'s output. Keys ferrostack does
//! serve stay strict.

use std::fmt;

use serde_json::Value;

use crate::error::Problem;
use crate::inference::InferenceProviderKind;
use crate::model::RunConfig;
use crate::paths::{IndexMap, join, join_index, to_file_path};
use crate::subst::DisabledEntry;

/// The APIs ferrostack serves, as named in a run config's `apis` and `providers`.
pub const SERVED_APIS: [&str; 1] = ["inference"];

/// Top-level sections ferrostack reads. Any other section is accepted and ignored, unless its
/// name is a near miss of one of these (a typo).
const READ_SECTIONS: [&str; 10] = [
    "version",
    "distro_name",
    "image_name",
    "apis",
    "server",
    "storage",
    "providers",
    "models",
    "registered_resources",
    "telemetry",
];

/// Top-level sections of the reference's run configs (current and older) that ferrostack does
/// not serve. Never taken for typos, however close to a section ferrostack reads.
const REFERENCE_SECTIONS: [&str; 17] = [
    "vector_stores",
    "safety",
    "connectors",
    "external_providers_dir",
    "external_apis_dir",
    "container_image",
    "logging",
    "shields",
    "vector_dbs",
    "datasets",
    "scoring_fns",
    "benchmarks",
    "tool_groups",
    "metadata_store",
    "inference_store",
    "conversations_store",
    "quota",
];

/// Whether ferrostack serves provider entries of `provider_type` under `providers.<api>`.
pub fn is_served_provider(api: &str, provider_type: &str) -> bool {
    api == "inference"
        && (InferenceProviderKind::from_type(provider_type).is_some() || provider_type == crate::ECHO_PROVIDER_TYPE)
}

/// Every served `(api, provider_type)`, in the order of the docs.
pub fn served_provider_types() -> Vec<(&'static str, &'static str)> {
    InferenceProviderKind::all().map(|k| ("inference", k.type_name())).collect()
}

/// What ferrostack makes of a loaded run config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Coverage {
    /// What is served: inference providers (`vllm (remote::vllm)`), models, the auth provider.
    pub served: Vec<String>,
    /// What is accepted and ignored: top-level sections, `apis` entries, provider entries of APIs
    /// or types ferrostack does not serve, other kinds of registered resources, server options.
    pub ignored: Vec<String>,
    /// List entries switched off by the environment (`provider_id: ${env.X:+id}` with `X` unset).
    pub disabled: Vec<String>,
    /// Models not registered because their provider is disabled or not served.
    pub skipped_models: Vec<String>,
}

impl Coverage {
    /// The one start-up warning: what is accepted but ignored, and the models skipped. `None`
    /// when everything in the config is served.
    pub fn warning(&self) -> Option<String> {
        let mut parts = Vec::new();
        if !self.ignored.is_empty() {
            parts.push(format!("accepted and ignored (not served by ferrostack): {}", self.ignored.join(", ")));
        }
        if !self.skipped_models.is_empty() {
            parts.push(format!("models skipped: {}", self.skipped_models.join(", ")));
        }
        if parts.is_empty() { None } else { Some(parts.join("; ")) }
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |items: &[String]| if items.is_empty() { "nothing".to_owned() } else { items.join(", ") };
        write!(f, "served: {}; accepted and ignored: {}", list(&self.served), list(&self.ignored))?;
        if !self.disabled.is_empty() {
            write!(f, "; disabled by the environment: {}", self.disabled.join(", "))?;
        }
        if !self.skipped_models.is_empty() {
            write!(f, "; models skipped: {}", self.skipped_models.join(", "))?;
        }
        Ok(())
    }
}

/// What the pre-typing split took out of the tree.
#[derive(Debug, Default)]
pub(crate) struct Split {
    /// Ignored sections, as paths (`vector_stores`, `registered_resources.shields`).
    pub sections: Vec<String>,
    /// Near misses of sections ferrostack reads.
    pub problems: Vec<Problem>,
}

/// Take the sections ferrostack does not read out of the merged tree, before substitution (so
/// their unset variables are not errors): unknown top-level sections, and every kind of
/// `registered_resources` but `models`. Empty ones are not listed.
pub(crate) fn split(tree: &mut Value) -> Split {
    let mut out = Split::default();
    let Some(root) = tree.as_object_mut() else {
        return out;
    };
    let unknown: Vec<String> = root.keys().filter(|k| !READ_SECTIONS.contains(&k.as_str())).cloned().collect();
    for key in unknown {
        let near = READ_SECTIONS.iter().find(|s| edit_distance(&key, s) <= 2);
        match near {
            Some(section) if !REFERENCE_SECTIONS.contains(&key.as_str()) => {
                let message = format!(
                    "unknown field `{key}`; did you mean `{section}`? (other sections that ferrostack does not \
                     serve are accepted and ignored)"
                );
                out.problems.push(Problem::new(key.clone(), message));
            }
            _ => {
                if root.remove(&key).is_some_and(|v| !is_empty(&v)) {
                    out.sections.push(key);
                }
            }
        }
    }
    if let Some(Value::Object(resources)) = root.get_mut("registered_resources") {
        let kinds: Vec<String> = resources.keys().filter(|k| *k != "models").cloned().collect();
        for kind in kinds {
            if resources.remove(&kind).is_some_and(|v| !is_empty(&v)) {
                out.sections.push(join("registered_resources", &kind));
            }
        }
    }
    out.sections.sort();
    out
}

/// Null, an empty list or an empty map.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        _ => false,
    }
}

/// Levenshtein distance, for typos of section names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The inference provider a model entry names, as the model registry will find it.
pub(crate) enum ModelProvider<'a> {
    /// A served inference provider.
    Served,
    /// An inference provider of a type ferrostack does not serve.
    Unserved(&'a str),
    /// An entry switched off by the environment.
    Disabled,
    /// No such provider.
    Unknown,
}

/// What `provider_id` of a model entry refers to.
pub(crate) fn model_provider<'a>(
    config: &'a RunConfig,
    disabled: &[DisabledEntry],
    provider_id: &str,
) -> ModelProvider<'a> {
    let entries = config.providers.get("inference").map(Vec::as_slice).unwrap_or_default();
    if let Some(entry) = entries.iter().find(|e| e.provider_id == provider_id) {
        return if is_served_provider("inference", &entry.provider_type) {
            ModelProvider::Served
        } else {
            ModelProvider::Unserved(&entry.provider_type)
        };
    }
    let was_disabled = disabled
        .iter()
        .any(|d| d.path.starts_with("providers.inference[") && d.provider_id.as_deref() == Some(provider_id));
    if was_disabled { ModelProvider::Disabled } else { ModelProvider::Unknown }
}

/// The coverage of a valid config.
pub(crate) fn coverage(config: &RunConfig, split: &Split, disabled: &[DisabledEntry], map: &IndexMap) -> Coverage {
    let mut c = Coverage::default();
    for (api, entries) in &config.providers {
        for (i, e) in entries.iter().enumerate() {
            let path = to_file_path(&join_index(&join("providers", api), i), map);
            let what = format!("{} ({})", e.provider_id, e.provider_type);
            if is_served_provider(api, &e.provider_type) {
                c.served.push(format!("{api} provider {what}"));
            } else {
                c.ignored.push(format!("{path} {what}"));
            }
        }
    }
    let mut served_models = 0usize;
    for (path, m) in config.model_entries() {
        let path = to_file_path(&path, map);
        match model_provider(config, disabled, &m.provider_id) {
            ModelProvider::Served => served_models += 1,
            ModelProvider::Unserved(t) => {
                c.skipped_models.push(format!("{path} {} (provider {} is {t}, not served)", m.model_id, m.provider_id));
            }
            ModelProvider::Disabled => {
                c.skipped_models.push(format!("{path} {} (provider {} is disabled)", m.model_id, m.provider_id));
            }
            ModelProvider::Unknown => {}
        }
    }
    if served_models > 0 {
        c.served.push(format!("{served_models} model{}", if served_models == 1 { "" } else { "s" }));
    }
    if let Some(p) = &config.server.auth.provider_config {
        c.served.push(format!("authentication {}", p.type_name()));
    }
    let mut listed: Vec<&str> = Vec::new();
    for api in &config.apis {
        // Listed once, even when the config names it twice.
        if !SERVED_APIS.contains(&api.as_str()) && !listed.contains(&api.as_str()) {
            listed.push(api);
            c.ignored.push(format!("api {api}"));
        }
    }
    c.ignored.extend(split.sections.iter().cloned());
    for (name, b) in &config.storage.unserved_backends {
        c.ignored.push(format!("storage.backends.{name} ({})", b.type_name));
    }
    for (field, value) in [("quota", &config.server.quota), ("cors", &config.server.cors)] {
        if value.as_ref().is_some_and(|v| !is_empty(v) && *v != Value::Bool(false)) {
            c.ignored.push(join("server", field));
        }
    }
    for d in disabled {
        let id = d.provider_id.as_deref().unwrap_or("(no id)");
        let ty = d.provider_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default();
        c.disabled.push(format!("{} {id}{ty}", d.path));
    }
    c
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn distances() {
        assert_eq!(edit_distance("server", "server"), 0);
        assert_eq!(edit_distance("servr", "server"), 1);
        assert_eq!(edit_distance("storgae", "storage"), 2);
        assert!(edit_distance("safety", "storage") > 2);
    }
}
