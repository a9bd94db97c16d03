//! The access-policy language as written in the run config: `server.auth.access_policy` and
//! `server.auth.route_policy`, parsed into typed rules at load time.
//!
//! Everything that can be wrong with a rule is found while the config is deserialized, so a rule
//! that loads is a rule the evaluator and the SQL compiler (in `ferrostack-authz`) can use as is:
//! conditions are parsed into [`Condition`], regexes are compiled, `permit`/`forbid` and
//! `when`/`unless` exclusivity is checked, unknown fields are rejected. Each problem carries the
//! path of the bad part, e.g. `server.auth.access_policy[2].when[1]`.
//!
//! ```yaml
//! access_policy:
//!   - permit: { actions: [read, update], resource: "sql_record::inference_store::*" }
//!     when: user in owners teams
//!     description: teammates read and edit each other's completions
//!   - forbid: { actions: delete, principal: intern }
//!   - permit: { actions: [create, read, update, delete] }
//!     when: [user is owner]
//! ```

use std::fmt;

use regex::Regex;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::error::Problem;

/// What a caller does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Create (store) a resource.
    Create,
    /// Read (get, list) a resource.
    Read,
    /// Update a resource.
    Update,
    /// Delete a resource.
    Delete,
}

impl Action {
    /// All four, in declaration order.
    pub const ALL: [Action; 4] = [Action::Create, Action::Read, Action::Update, Action::Delete];

    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Create => "create",
            Action::Read => "read",
            Action::Update => "update",
            Action::Delete => "delete",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether an applying rule allows or denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Effect {
    /// `permit`: the first applying rule allows.
    Permit,
    /// `forbid`: the first applying rule denies.
    Forbid,
}

/// A compiled, start-anchored regex (`regex:<re>`), matched like Python's `re.match`: anchored
/// at the start of the text only. Compared by its source.
#[derive(Clone)]
pub struct Pattern {
    source: String,
    regex: Regex,
}

impl Pattern {
    /// Compile `source` (the part after `regex:`).
    pub fn new(source: &str) -> Result<Self, regex::Error> {
        let regex = Regex::new(&format!(r"\A(?:{source})"))?;
        Ok(Self { source: source.to_owned(), regex })
    }

    /// The regex as written (after `regex:`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the regex matches at the start of `text`.
    pub fn matches(&self, text: &str) -> bool {
        self.regex.is_match(text)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "regex:{}", self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// The `resource` of a scope, matched against a resource's qualified id (`<type>::<identifier>`,
/// e.g. `sql_record::inference_store::chatcmpl-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourcePattern {
    /// A plain string: equal to the qualified id. (A bare `*` is a plain string and so matches
    /// nothing; omit `resource` to mean every resource.)
    Exact(String),
    /// `regex:<re>`: the regex matches at the start of the qualified id.
    Regex(Pattern),
    /// `<type>::*`: the qualified id starts with `<type>::` (the field holds the text before the
    /// `*`, ending in `::`).
    TypePrefix(String),
}

impl ResourcePattern {
    /// Parse a pattern as written; the error is a message for a config problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(re) = text.strip_prefix("regex:") {
            return Pattern::new(re).map(ResourcePattern::Regex).map_err(|e| format!("invalid regex {re:?}: {e}"));
        }
        if let Some(prefix) = text.strip_suffix('*')
            && prefix.ends_with("::")
        {
            return Ok(ResourcePattern::TypePrefix(prefix.to_owned()));
        }
        Ok(ResourcePattern::Exact(text.to_owned()))
    }

    /// Whether the pattern matches the qualified id `id`.
    pub fn matches(&self, id: &str) -> bool {
        match self {
            ResourcePattern::Exact(s) => s == id,
            ResourcePattern::Regex(p) => p.matches(id),
            ResourcePattern::TypePrefix(prefix) => id.starts_with(prefix.as_str()),
        }
    }
}

impl fmt::Display for ResourcePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResourcePattern::Exact(s) => f.write_str(s),
            ResourcePattern::Regex(p) => write!(f, "regex:{}", p.source),
            ResourcePattern::TypePrefix(prefix) => write!(f, "{prefix}*"),
        }
    }
}

/// One condition of `when` / `unless` (REFERENCE.md 3.2): whitespace-separated words, exact
/// keywords.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Condition {
    /// `user is owner`: the resource has an owner and it is the caller.
    UserIsOwner,
    /// `user is not owner`: the resource is unowned or its owner is someone else.
    UserIsNotOwner,
    /// `user in owners <category>`: the owner and the caller share a value of `category`
    /// (fail-closed: false when the resource is unowned or its owner has no value there).
    UserInOwners(String),
    /// `user not in owners <category>`: the negation of [`Condition::UserInOwners`].
    UserNotInOwners(String),
    /// `user with <value> in <category>`: the caller has `value` in `category`.
    UserWithValueIn {
        /// The value.
        value: String,
        /// The category.
        category: String,
    },
    /// `user with <value> not in <category>`: the negation of [`Condition::UserWithValueIn`].
    UserWithValueNotIn {
        /// The value.
        value: String,
        /// The category.
        category: String,
    },
    /// `resource is unowned`: the resource has no owner.
    ResourceIsUnowned,
}

/// The condition forms, for messages.
pub const CONDITION_FORMS: &str = "'user is owner', 'user is not owner', 'user in owners <category>', \
     'user not in owners <category>', 'user with <value> in <category>', 'user with <value> not in <category>', \
     'resource is unowned'";

impl Condition {
    /// Parse a condition string; the error is a message for a config problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let condition = match words.as_slice() {
            ["user", "is", "owner"] => Condition::UserIsOwner,
            ["user", "is", "not", "owner"] => Condition::UserIsNotOwner,
            ["user", "in", "owners", category] => Condition::UserInOwners((*category).to_owned()),
            ["user", "not", "in", "owners", category] => Condition::UserNotInOwners((*category).to_owned()),
            ["user", "with", value, "in", category] => {
                Condition::UserWithValueIn { value: (*value).to_owned(), category: (*category).to_owned() }
            }
            ["user", "with", value, "not", "in", category] => {
                Condition::UserWithValueNotIn { value: (*value).to_owned(), category: (*category).to_owned() }
            }
            ["resource", "is", "unowned"] => Condition::ResourceIsUnowned,
            _ => return Err(format!("unknown condition '{text}'; expected one of {CONDITION_FORMS}")),
        };
        Ok(condition)
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Condition::UserIsOwner => f.write_str("user is owner"),
            Condition::UserIsNotOwner => f.write_str("user is not owner"),
            Condition::UserInOwners(c) => write!(f, "user in owners {c}"),
            Condition::UserNotInOwners(c) => write!(f, "user not in owners {c}"),
            Condition::UserWithValueIn { value, category } => write!(f, "user with {value} in {category}"),
            Condition::UserWithValueNotIn { value, category } => write!(f, "user with {value} not in {category}"),
            Condition::ResourceIsUnowned => f.write_str("resource is unowned"),
        }
    }
}

impl<'de> Deserialize<'de> for Condition {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Condition::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for Condition {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// `when` / `unless` of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Conditions {
    /// Neither: the rule applies whenever its scope matches.
    #[default]
    Always,
    /// `when`: every listed condition holds.
    When(Vec<Condition>),
    /// `unless`: on an access rule, NOT every listed condition holds (at least one fails); on a
    /// route rule, none of them holds (REFERENCE.md 3.2 and 4.4 differ here).
    Unless(Vec<Condition>),
}

/// The `permit` / `forbid` scope of an access rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// The actions the rule is about (one or a list in the config; never empty).
    #[serde(deserialize_with = "one_or_many_actions")]
    pub actions: Vec<Action>,
    /// Only this caller (absent: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Only resources matching this pattern (absent: every resource).
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "resource_pattern")]
    pub resource: Option<ResourcePattern>,
}

/// One rule of `server.auth.access_policy`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RawAccessRule", into = "RawAccessRule")]
pub struct AccessRule {
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// What the rule is about.
    pub scope: Scope,
    /// `when` / `unless`.
    pub conditions: Conditions,
    /// Shown as the reason of a decision in logs.
    pub description: Option<String>,
}

impl AccessRule {
    /// A rule with no conditions.
    pub fn new(effect: Effect, scope: Scope) -> Self {
        Self { effect, scope, conditions: Conditions::Always, description: None }
    }

    /// The same rule with `when` conditions.
    pub fn when(mut self, conditions: Vec<Condition>) -> Self {
        self.conditions = Conditions::When(conditions);
        self
    }

    /// The same rule with `unless` conditions.
    pub fn unless(mut self, conditions: Vec<Condition>) -> Self {
        self.conditions = Conditions::Unless(conditions);
        self
    }
}

impl Scope {
    /// A scope over `actions`, any principal, any resource.
    pub fn actions(actions: impl IntoIterator<Item = Action>) -> Self {
        Self { actions: actions.into_iter().collect(), principal: None, resource: None }
    }
}

/// One rule of `server.auth.route_policy` (REFERENCE.md 4.4).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(try_from = "RawRouteRule", into = "RawRouteRule")]
pub struct RouteRule {
    /// `permit` or `forbid`.
    pub effect: Effect,
    /// The request paths the rule is about.
    pub paths: Vec<PathPattern>,
    /// `when` / `unless` (`unless` = none holds).
    pub conditions: Conditions,
    /// Shown as the reason of a decision in logs.
    pub description: Option<String>,
}

/// A pattern of a route rule's `paths`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathPattern {
    /// `*`: every path.
    Any,
    /// `regex:<re>`: matches at the start of the path.
    Regex(Pattern),
    /// `<prefix>*`: the path starts with the prefix.
    Prefix(String),
    /// Anything else: the path equals it.
    Exact(String),
}

impl PathPattern {
    /// Parse a pattern as written; the error is a message for a config problem.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "*" {
            return Ok(PathPattern::Any);
        }
        if let Some(re) = text.strip_prefix("regex:") {
            return Pattern::new(re).map(PathPattern::Regex).map_err(|e| format!("invalid regex {re:?}: {e}"));
        }
        if let Some(prefix) = text.strip_suffix('*') {
            return Ok(PathPattern::Prefix(prefix.to_owned()));
        }
        Ok(PathPattern::Exact(text.to_owned()))
    }

    /// Whether the pattern matches `path` (already normalised: trailing `/` stripped).
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Any => true,
            PathPattern::Regex(p) => p.matches(path),
            PathPattern::Prefix(prefix) => path.starts_with(prefix.as_str()),
            PathPattern::Exact(s) => s == path,
        }
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPattern::Any => f.write_str("*"),
            PathPattern::Regex(p) => write!(f, "regex:{}", p.source),
            PathPattern::Prefix(prefix) => write!(f, "{prefix}*"),
            PathPattern::Exact(s) => f.write_str(s),
        }
    }
}

impl<'de> Deserialize<'de> for PathPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        PathPattern::parse(&text).map_err(de::Error::custom)
    }
}

impl Serialize for PathPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

// ---- the rules as written ------------------------------------------------------------------

/// A rule as written: access rules scope by [`Scope`], route rules by [`RawPaths`].
#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawRule<S> {
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    permit: Option<S>,
    #[serde(default = "none", skip_serializing_if = "Option::is_none")]
    forbid: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    when: Option<OneOrMany<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    unless: Option<OneOrMany<Condition>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

fn none<S>() -> Option<S> {
    None
}

type RawAccessRule = RawRule<Scope>;
type RawRouteRule = RawRule<RawPaths>;

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct RawPaths {
    paths: OneOrMany<PathPattern>,
}

fn effect_of<T>(permit: Option<T>, forbid: Option<T>) -> Result<(Effect, T), String> {
    match (permit, forbid) {
        (Some(_), Some(_)) => Err("permit and forbid are mutually exclusive".to_owned()),
        (None, None) => Err("a rule needs `permit` or `forbid`".to_owned()),
        (Some(s), None) => Ok((Effect::Permit, s)),
        (None, Some(s)) => Ok((Effect::Forbid, s)),
    }
}

fn conditions_of(
    when: Option<OneOrMany<Condition>>,
    unless: Option<OneOrMany<Condition>>,
) -> Result<Conditions, String> {
    match (when, unless) {
        (Some(_), Some(_)) => Err("when and unless are mutually exclusive".to_owned()),
        (Some(w), None) if w.0.is_empty() => Err("`when` lists no condition".to_owned()),
        (None, Some(u)) if u.0.is_empty() => Err("`unless` lists no condition".to_owned()),
        (Some(w), None) => Ok(Conditions::When(w.0)),
        (None, Some(u)) => Ok(Conditions::Unless(u.0)),
        (None, None) => Ok(Conditions::Always),
    }
}

fn conditions_back(conditions: Conditions) -> (Option<OneOrMany<Condition>>, Option<OneOrMany<Condition>>) {
    match conditions {
        Conditions::Always => (None, None),
        Conditions::When(c) => (Some(OneOrMany(c)), None),
        Conditions::Unless(c) => (None, Some(OneOrMany(c))),
    }
}

impl TryFrom<RawAccessRule> for AccessRule {
    type Error = String;

    fn try_from(raw: RawAccessRule) -> Result<Self, String> {
        let (effect, scope) = effect_of(raw.permit, raw.forbid)?;
        let conditions = conditions_of(raw.when, raw.unless)?;
        Ok(AccessRule { effect, scope, conditions, description: raw.description })
    }
}

impl From<AccessRule> for RawAccessRule {
    fn from(rule: AccessRule) -> Self {
        let (when, unless) = conditions_back(rule.conditions);
        let (permit, forbid) = match rule.effect {
            Effect::Permit => (Some(rule.scope), None),
            Effect::Forbid => (None, Some(rule.scope)),
        };
        RawAccessRule { permit, forbid, when, unless, description: rule.description }
    }
}

impl TryFrom<RawRouteRule> for RouteRule {
    type Error = String;

    fn try_from(raw: RawRouteRule) -> Result<Self, String> {
        let (effect, paths) = effect_of(raw.permit, raw.forbid)?;
        if paths.paths.0.is_empty() {
            return Err("`paths` lists no pattern".to_owned());
        }
        let conditions = conditions_of(raw.when, raw.unless)?;
        Ok(RouteRule { effect, paths: paths.paths.0, conditions, description: raw.description })
    }
}

impl From<RouteRule> for RawRouteRule {
    fn from(rule: RouteRule) -> Self {
        let (when, unless) = conditions_back(rule.conditions);
        let paths = RawPaths { paths: OneOrMany(rule.paths) };
        let (permit, forbid) = match rule.effect {
            Effect::Permit => (Some(paths), None),
            Effect::Forbid => (None, Some(paths)),
        };
        RawRouteRule { permit, forbid, when, unless, description: rule.description }
    }
}

/// One value or a list of values. Written as a visitor (not an untagged enum) so that an error in
/// the third element is reported at `...[2]`.
struct OneOrMany<T>(Vec<T>);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = OneOrMany<T>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or a list of strings")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                T::deserialize(de::value::StrDeserializer::<E>::new(v)).map(|t| OneOrMany(vec![t]))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(item) = seq.next_element::<T>()? {
                    out.push(item);
                }
                Ok(OneOrMany(out))
            }
        }
        deserializer.deserialize_any(V(std::marker::PhantomData))
    }
}

impl<T: Serialize> Serialize for OneOrMany<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0.as_slice() {
            [one] => one.serialize(serializer),
            many => many.serialize(serializer),
        }
    }
}

fn one_or_many_actions<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Action>, D::Error> {
    let actions = OneOrMany::<Action>::deserialize(deserializer)?.0;
    if actions.is_empty() {
        return Err(de::Error::custom("`actions` lists no action; expected create, read, update or delete"));
    }
    Ok(actions)
}

fn resource_pattern<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<ResourcePattern>, D::Error> {
    let text = String::deserialize(deserializer)?;
    ResourcePattern::parse(&text).map(Some).map_err(de::Error::custom)
}

impl Serialize for ResourcePattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Problems of both policies beyond what parsing finds (paths like
/// `server.auth.access_policy[2].when`). Parsing already rejects every malformed rule, so there
/// is nothing left to check today; kept as the place for cross-rule checks.
pub(crate) fn validate(_access: &[AccessRule], _route: &[RouteRule], _problems: &mut Vec<Problem>) {}
