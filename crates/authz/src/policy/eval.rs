//! The in-memory evaluator: the reference semantics (REFERENCE.md 3.2-3.3 and 4.4), used for
//! resources that are not rows (the model registry) and as the oracle of the SQL compiler's
//! property tests.

use std::sync::LazyLock;

use ferrostack_config::{AccessRule, Action, Condition, Conditions, Effect, RouteRule, Scope};

use crate::User;

/// Prefix of the qualified id of a SQL row: `sql_record::<table>::<id>`.
pub const SQL_RECORD: &str = "sql_record";

/// The four attribute categories the default policy shares rows across.
pub const DEFAULT_CATEGORIES: [&str; 4] = ["roles", "teams", "projects", "namespaces"];

/// Something a policy decides about: its qualified id (`<type>::<identifier>`) and its owner
/// (`None`: unowned).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    /// `<type>::<identifier>`, e.g. `model::llama` or `sql_record::inference_store::chatcmpl-1`.
    pub qualified_id: String,
    /// Who owns it; `None` for an unowned (public) resource.
    pub owner: Option<User>,
}

impl Resource {
    /// A resource of `kind` (e.g. `model`) with identifier `id`.
    pub fn new(kind: &str, id: &str, owner: Option<User>) -> Self {
        Self { qualified_id: format!("{kind}::{id}"), owner }
    }

    /// The row `id` of table `table`: `sql_record::<table>::<id>`.
    pub fn sql_record(table: &str, id: &str, owner: Option<User>) -> Self {
        Self { qualified_id: format!("{SQL_RECORD}::{table}::{id}"), owner }
    }
}

/// The policy used when `access_policy` is empty (REFERENCE.md 3.3): every action is permitted
/// on a resource that is unowned, that the caller owns, or whose owner shares a value with the
/// caller in one of [`DEFAULT_CATEGORIES`].
pub fn default_policy() -> &'static [AccessRule] {
    static DEFAULT: LazyLock<Vec<AccessRule>> = LazyLock::new(|| {
        let all = || Scope::actions(Action::ALL);
        let mut rules: Vec<AccessRule> = DEFAULT_CATEGORIES
            .iter()
            .map(|c| AccessRule::new(Effect::Permit, all()).when(vec![Condition::UserInOwners((*c).to_owned())]))
            .collect();
        rules.push(AccessRule::new(Effect::Permit, all()).when(vec![Condition::UserIsOwner]));
        rules.push(AccessRule::new(Effect::Permit, all()).when(vec![Condition::ResourceIsUnowned]));
        rules
    });
    &DEFAULT
}

/// The policy in force: `policy`, or the default one when it is empty.
pub fn effective(policy: &[AccessRule]) -> &[AccessRule] {
    if policy.is_empty() { default_policy() } else { policy }
}

/// Whether `user` may do `action` on `resource` under `policy` (REFERENCE.md 3.2): no user
/// (authentication off) is allowed; an empty policy is the default one; the first rule that
/// applies decides; when none applies, the answer is no.
pub fn is_allowed(policy: &[AccessRule], action: Action, resource: &Resource, user: Option<&User>) -> bool {
    let Some(user) = user else { return true };
    deciding_rule(policy, action, resource, user).is_some_and(|rule| rule.effect == Effect::Permit)
}

/// The rule that decides (the first that applies), if any; its `description` is the reason to log.
pub fn deciding_rule<'p>(
    policy: &'p [AccessRule],
    action: Action,
    resource: &Resource,
    user: &User,
) -> Option<&'p AccessRule> {
    effective(policy).iter().find(|rule| applies(rule, action, resource, user))
}

fn applies(rule: &AccessRule, action: Action, resource: &Resource, user: &User) -> bool {
    let scope = &rule.scope;
    if !scope.actions.contains(&action) {
        return false;
    }
    if scope.principal.as_ref().is_some_and(|p| *p != user.principal) {
        return false;
    }
    if scope.resource.as_ref().is_some_and(|r| !r.matches(&resource.qualified_id)) {
        return false;
    }
    let holds = |c: &Condition| condition_holds(c, user, resource.owner.as_ref());
    match &rule.conditions {
        Conditions::Always => true,
        Conditions::When(cs) => cs.iter().all(holds),
        Conditions::Unless(cs) => !cs.iter().all(holds),
    }
}

/// Whether one condition holds for `user` on a resource owned by `owner`.
pub fn condition_holds(condition: &Condition, user: &User, owner: Option<&User>) -> bool {
    match condition {
        Condition::UserIsOwner => owner.is_some_and(|o| o.principal == user.principal),
        Condition::UserIsNotOwner => owner.is_none_or(|o| o.principal != user.principal),
        Condition::UserInOwners(category) => in_owners(user, owner, category),
        Condition::UserNotInOwners(category) => !in_owners(user, owner, category),
        Condition::UserWithValueIn { value, category } => user.values(category).contains(value),
        Condition::UserWithValueNotIn { value, category } => !user.values(category).contains(value),
        Condition::ResourceIsUnowned => owner.is_none(),
    }
}

/// Fail-closed: false when there is no owner or either side has no value in `category`.
fn in_owners(user: &User, owner: Option<&User>, category: &str) -> bool {
    let Some(owner) = owner else { return false };
    let theirs = owner.values(category);
    user.values(category).iter().any(|v| theirs.contains(v))
}

/// Whether a request for `path` passes the route policy (REFERENCE.md 4.4): an empty policy
/// allows every route; otherwise the first rule whose paths match and whose conditions hold
/// decides, and no match is a denial. Conditions see only the user (owner-based ones behave as
/// on an unowned resource); a rule with conditions never matches without a user; `unless` means
/// none of the conditions holds.
pub fn is_route_allowed(policy: &[RouteRule], path: &str, user: Option<&User>) -> bool {
    if policy.is_empty() {
        return true;
    }
    let path = normalise_path(path);
    policy
        .iter()
        .find(|rule| rule.paths.iter().any(|p| p.matches(path)) && route_conditions_hold(&rule.conditions, user))
        .is_some_and(|rule| rule.effect == Effect::Permit)
}

fn normalise_path(path: &str) -> &str {
    if path == "/" {
        return path;
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() { "/" } else { trimmed }
}

fn route_conditions_hold(conditions: &Conditions, user: Option<&User>) -> bool {
    match (conditions, user) {
        (Conditions::Always, _) => true,
        (_, None) => false,
        (Conditions::When(cs), Some(u)) => cs.iter().all(|c| condition_holds(c, u, None)),
        (Conditions::Unless(cs), Some(u)) => !cs.iter().any(|c| condition_holds(c, u, None)),
    }
}
