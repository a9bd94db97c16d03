//! `${env.NAME}` substitution over the merged config tree, with the reference's rules.
//!
//! Forms, where `NAME` matches `[A-Z0-9_]+` (lower-case names are not recognised and stay literal):
//! `${env.NAME}` (error when unset or empty), `${env.NAME:=default}` and `${env.NAME:+value}`.
//! A string that changed is then coerced as a whole: `""` → null, `true`/`false` → bool, integer →
//! int, float → float. List entries can switch themselves off (`provider_id: __disabled__`, an empty
//! `model_id`), and so can `server.auth.provider_config` (an empty `type`).
//!
//! Besides the new tree, substitution reports where every value that came from the environment
//! ended up, with its text: the typed pass uses it to give string fields the exact text (`"0123"`
//! stays `"0123"` even though the tree holds the number 123) and to keep environment values out of
//! error messages.

use std::collections::HashMap;
use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::Value;

use crate::env::Env;
use crate::error::Problem;
use crate::paths::{IndexMap, join, join_index};

/// `${env.NAME}`, `${env.NAME:=X}`, `${env.NAME:+X}`; `X` cannot contain `}`.
static PATTERN: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"\$\{env\.([A-Z0-9_]+)(?::([=+])([^}]*))?\}").ok());

/// Provider ids that switch an entry off (besides an id that substitutes to empty).
const DISABLED: &str = "__disabled__";

/// `${env.NAME:+id}` as a whole string: the id the entry has when `NAME` is set.
static CONDITIONAL_ID: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"^\$\{env\.[A-Z0-9_]+:\+([^}]*)\}$").ok());

/// Fields of list entries that drop the entry when they resolve to empty or null.
const RESOURCE_ID_FIELDS: [&str; 3] = ["vector_store_id", "model_id", "shield_id"];

/// What substitution produced besides the new tree.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    /// Unset variables, at their paths in the file (original list indices).
    pub problems: Vec<Problem>,
    /// Paths (in the new tree) of values that could not be substituted: later errors there are noise.
    pub failed: Vec<String>,
    /// Text of every value that came from the environment, by path in the new tree.
    pub env_texts: HashMap<String, String>,
    /// Where list entries were dropped: maps new indices back to the file's.
    pub index_map: IndexMap,
    /// Things that look like substitutions but are not.
    pub warnings: Vec<String>,
    /// List entries switched off by their `provider_id`, in file order.
    pub disabled: Vec<DisabledEntry>,
}

/// A list entry whose `provider_id` substituted to empty (the `${env.X:+id}` idiom) or to
/// `__disabled__`: dropped before the rest of it was expanded, as the reference does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisabledEntry {
    /// Where the entry is in the file (`providers.inference[2]`).
    pub path: String,
    /// The id it would have had with its variable set (`vllm` of `${env.VLLM_URL:+vllm}`).
    pub provider_id: Option<String>,
    /// Its `provider_type`, when it is written as plain text.
    pub provider_type: Option<String>,
}

/// Substitute every string of `tree`. `env_texts` holds the text of the values set by
/// `FERROSTACK__*` overrides, by path; the outcome carries them over to the new paths.
pub(crate) fn substitute(tree: Value, env: &Env, env_texts: &HashMap<String, String>) -> (Value, Outcome) {
    let mut walker = Walker { env, input_texts: env_texts, out: Outcome::default() };
    let tree = walker.walk(tree, "", "");
    (tree, walker.out)
}

struct Walker<'a> {
    env: &'a Env,
    input_texts: &'a HashMap<String, String>,
    out: Outcome,
}

impl Walker<'_> {
    /// `path` is the path in the file (for problems), `new_path` the path in the new tree.
    fn walk(&mut self, value: Value, path: &str, new_path: &str) -> Value {
        match value {
            Value::Object(map) => {
                let mut out = serde_json::Map::new();
                for (k, v) in map {
                    let (p, np) = (join(path, &k), join(new_path, &k));
                    let v = if path == "server.auth" && k == "provider_config" && self.auth_disabled(&v) {
                        Value::Null
                    } else {
                        self.walk(v, &p, &np)
                    };
                    out.insert(k, v);
                }
                Value::Object(out)
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                let total = items.len();
                let mut kept = Vec::with_capacity(total);
                for (i, item) in items.into_iter().enumerate() {
                    let p = join_index(path, i);
                    if let Some(off) = self.entry_switched_off(&item) {
                        tracing::debug!(path = %p, "config list entry switched off by substitution");
                        if let Some(entry) = off {
                            self.out.disabled.push(DisabledEntry { path: p, ..entry });
                        }
                        continue;
                    }
                    let np = join_index(new_path, out.len());
                    kept.push(i);
                    out.push(self.walk(item, &p, &np));
                }
                if kept.len() != total {
                    self.out.index_map.insert(new_path.to_owned(), kept);
                }
                Value::Array(out)
            }
            Value::String(s) => match self.resolve_at(&s, path) {
                Resolved::Unchanged => {
                    self.carry_text(path, new_path);
                    Value::String(s)
                }
                Resolved::Changed(text) => {
                    let v = coerce(&text);
                    self.out.env_texts.insert(new_path.to_owned(), text);
                    v
                }
                Resolved::Failed => {
                    self.out.failed.push(new_path.to_owned());
                    Value::String(s)
                }
            },
            other => {
                self.carry_text(path, new_path);
                other
            }
        }
    }

    /// Keep the text of an override value, under its new path.
    fn carry_text(&mut self, path: &str, new_path: &str) {
        if let Some(t) = self.input_texts.get(path) {
            self.out.env_texts.insert(new_path.to_owned(), t.clone());
        }
    }

    /// `provider_config` whose `type` resolves to empty or null: auth is off, nothing inside is
    /// expanded.
    fn auth_disabled(&self, provider_config: &Value) -> bool {
        match provider_config.get("type") {
            Some(t) => match self.peek(t) {
                Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                _ => false,
            },
            None => false,
        }
    }

    /// A list entry that switches itself off: `provider_id` resolving to empty or `__disabled__`
    /// (`Some(Some(..))`, recorded), or a resource id whose substitution resolves to empty
    /// (`Some(None)`). Such entries are dropped before their other fields are expanded, so their
    /// unset variables are not errors.
    fn entry_switched_off(&self, item: &Value) -> Option<Option<DisabledEntry>> {
        let Value::Object(map) = item else {
            return None;
        };
        if let Some(id) = map.get("provider_id") {
            let off = match id {
                // Only a substitution switches an entry off: a literal empty id is left for
                // validation.
                Value::String(s) => match resolve(self.env, s).result {
                    Resolved::Changed(text) => text.is_empty() || text == DISABLED,
                    Resolved::Unchanged => s == DISABLED,
                    Resolved::Failed => false,
                },
                _ => false,
            };
            if off {
                let raw = id.as_str().unwrap_or_default();
                let provider_id = CONDITIONAL_ID
                    .as_ref()
                    .and_then(|re| re.captures(raw))
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_owned())
                    .filter(|id| !id.is_empty() && id != DISABLED);
                let provider_type =
                    map.get("provider_type").and_then(Value::as_str).filter(|t| !t.contains("${")).map(str::to_owned);
                return Some(Some(DisabledEntry { path: String::new(), provider_id, provider_type }));
            }
        }
        // Only a substitution switches a resource off: a literal empty id is left for validation.
        let resource_off = RESOURCE_ID_FIELDS.iter().filter_map(|f| map.get(*f)).any(|id| match id {
            Value::String(s) => matches!(resolve(self.env, s).result, Resolved::Changed(text) if text.is_empty()),
            _ => false,
        });
        resource_off.then_some(None)
    }

    /// What a scalar resolves to, without recording anything; `None` when it cannot be resolved.
    fn peek(&self, v: &Value) -> Option<Value> {
        match v {
            Value::String(s) => match resolve(self.env, s).result {
                Resolved::Unchanged => Some(v.clone()),
                Resolved::Changed(text) => Some(coerce(&text)),
                Resolved::Failed => None,
            },
            other => Some(other.clone()),
        }
    }

    /// Resolve a string at `path`, recording unset variables and look-alikes.
    fn resolve_at(&mut self, s: &str, path: &str) -> Resolved {
        let Resolution { result, missing, literal } = resolve(self.env, s);
        for name in missing {
            let message = format!(
                "environment variable '{name}' is not set or empty (write ${{env.{name}:=default}} for a \
                 default, or ${{env.{name}:+value}} for a value used only when it is set)"
            );
            self.out.problems.push(Problem::new(path, message));
        }
        if let Some(snippet) = literal {
            self.out.warnings.push(format!(
                "{path}: '{snippet}' is left as it is: a substitution is ${{env.NAME}}, \
                 ${{env.NAME:=default}} or ${{env.NAME:+value}}, with NAME made of A-Z, 0-9 and _"
            ));
        }
        result
    }
}

struct Resolution {
    result: Resolved,
    /// Variables used without a default that are unset or empty.
    missing: Vec<String>,
    /// Text that looks like a substitution but is not one (`${env.lower}`, `${env.X:-y}`).
    literal: Option<String>,
}

/// Substitute the occurrences in `s`.
fn resolve(env: &Env, s: &str) -> Resolution {
    let unchanged = || Resolution { result: Resolved::Unchanged, missing: Vec::new(), literal: None };
    let Some(re) = PATTERN.as_ref() else {
        return unchanged();
    };
    if !s.contains("${") {
        return unchanged();
    }
    let mut missing = Vec::new();
    let text = re.replace_all(s, |c: &Captures<'_>| {
        let name = c.get(1).map_or("", |m| m.as_str());
        let alt = c.get(3).map_or("", |m| m.as_str());
        let value = match (c.get(2).map(|m| m.as_str()), env.non_empty(name)) {
            (None | Some("="), Some(v)) => v,
            (None, None) => {
                missing.push(name.to_owned());
                ""
            }
            (Some("="), None) | (Some(_), Some(_)) => alt,
            (Some(_), None) => "",
        };
        env.expand_tilde(value)
    });
    let leftover = re.replace_all(s, "");
    let literal = leftover.find("${env.").map(|start| leftover[start..].chars().take(40).collect());
    let result = if !missing.is_empty() {
        Resolved::Failed
    } else if text == s {
        Resolved::Unchanged
    } else {
        Resolved::Changed(text.into_owned())
    };
    Resolution { result, missing, literal }
}

enum Resolved {
    Unchanged,
    Changed(String),
    Failed,
}

/// The reference's coercion of a string that substitution changed.
pub(crate) fn coerce(text: &str) -> Value {
    if text.is_empty() {
        return Value::Null;
    }
    if text.eq_ignore_ascii_case("true") {
        return Value::Bool(true);
    }
    if text.eq_ignore_ascii_case("false") {
        return Value::Bool(false);
    }
    let t = text.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if let Ok(i) = t.parse::<i64>() {
            return Value::from(i);
        }
        if let Ok(u) = t.trim_start_matches('+').parse::<u64>() {
            return Value::from(u);
        }
    }
    if t.bytes().any(|b| b.is_ascii_digit())
        && let Ok(f) = t.parse::<f64>()
        && let Some(n) = serde_json::Number::from_f64(f)
    {
        return Value::Number(n);
    }
    Value::String(text.to_owned())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn run(tree: Value, pairs: &[(&str, &str)]) -> (Value, Outcome) {
        substitute(tree, &Env::from_pairs(pairs.iter().copied()), &HashMap::new())
    }

    #[test]
    fn pattern_compiles() {
        assert!(PATTERN.is_some());
        assert!(CONDITIONAL_ID.is_some());
    }

    #[test]
    fn provider_id_substituted_to_empty_disables_the_entry() {
        let tree = json!({"providers": {"inference": [
            {"provider_id": "${env.VLLM_URL:+vllm}", "provider_type": "remote::vllm", "config": {"url": "${env.VLLM_URL}"}},
            {"provider_id": "${env.OFF:=}", "provider_type": "remote::x"},
            {"provider_id": "openai", "provider_type": "remote::openai"},
        ]}});
        let (out, outcome) = run(tree.clone(), &[]);
        assert!(outcome.problems.is_empty(), "disabled entries are not expanded: {:?}", outcome.problems);
        assert_eq!(
            out["providers"]["inference"],
            json!([{"provider_id": "openai", "provider_type": "remote::openai"}])
        );
        assert_eq!(
            outcome.disabled,
            [
                DisabledEntry {
                    path: "providers.inference[0]".to_owned(),
                    provider_id: Some("vllm".to_owned()),
                    provider_type: Some("remote::vllm".to_owned()),
                },
                DisabledEntry {
                    path: "providers.inference[1]".to_owned(),
                    provider_id: None,
                    provider_type: Some("remote::x".to_owned()),
                },
            ]
        );
        let (out, outcome) = run(tree, &[("VLLM_URL", "http://v")]);
        assert_eq!(out["providers"]["inference"][0]["provider_id"], json!("vllm"));
        assert_eq!(outcome.disabled.len(), 1);
    }

    #[test]
    fn auth_provider_config_with_empty_type_is_null() {
        let tree = json!({"server": {"auth": {
            "provider_config": {"type": "${env.AUTH_TYPE:=}", "jwks": {"uri": "${env.JWKS_URI}"}},
            "access_policy": [{"permit": {"actions": ["read"]}, "description": "${env.DESC:=all}"}],
        }}});
        let (out, outcome) = run(tree.clone(), &[]);
        assert!(outcome.problems.is_empty(), "JWKS_URI not expanded: {:?}", outcome.problems);
        assert_eq!(out["server"]["auth"]["provider_config"], Value::Null, "auth off");
        assert_eq!(out["server"]["auth"]["access_policy"][0]["description"], json!("all"), "rest expanded");

        let (out, outcome) = run(tree, &[("AUTH_TYPE", "oauth2_token"), ("JWKS_URI", "http://k")]);
        assert!(outcome.problems.is_empty(), "{:?}", outcome.problems);
        assert_eq!(
            out["server"]["auth"]["provider_config"],
            json!({"type": "oauth2_token", "jwks": {"uri": "http://k"}})
        );
    }

    #[test]
    fn auth_rule_only_at_server_auth() {
        let tree = json!({"elsewhere": {"provider_config": {"type": "", "x": "${env.X:=1}"}}});
        let (out, _) = run(tree, &[]);
        assert_eq!(out["elsewhere"]["provider_config"], json!({"type": "", "x": 1}));
    }

    #[test]
    fn auth_type_literal_empty_is_off_too() {
        let (out, outcome) =
            run(json!({"server": {"auth": {"provider_config": {"type": null, "a": "${env.UNSET}"}}}}), &[]);
        assert!(outcome.problems.is_empty());
        assert_eq!(out["server"]["auth"]["provider_config"], Value::Null);
    }

    #[test]
    fn texts_follow_dropped_entries() {
        let tree = json!({"models": [{"model_id": "${env.A:+a}"}, {"model_id": "b", "n": "${env.N}"}]});
        let (out, outcome) = run(tree, &[("N", "0123")]);
        assert_eq!(out["models"], json!([{"model_id": "b", "n": 123}]));
        assert_eq!(outcome.env_texts.get("models[0].n").map(String::as_str), Some("0123"), "new path");
        assert_eq!(outcome.index_map.get("models"), Some(&vec![1]));
    }

    #[test]
    fn coercion() {
        for (text, want) in [
            ("", Value::Null),
            ("tRuE", json!(true)),
            ("0", json!(0)),
            ("+5", json!(5)),
            (" 7 ", json!(7)),
            ("18446744073709551615", json!(u64::MAX)),
            ("-0.5", json!(-0.5)),
            (".5", json!(0.5)),
            ("inf", json!("inf")),
            ("1.2.3", json!("1.2.3")),
            ("0x10", json!("0x10")),
        ] {
            assert_eq!(coerce(text), want, "{text:?}");
        }
    }
}
