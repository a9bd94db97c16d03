//! `server.auth.access_policy` and `server.auth.route_policy`: parsing into typed rules, and the
//! path and words of every problem.

use ferrostack_config::{
    AccessRule, Action, Condition, Conditions, Effect, PathPattern, ResourcePattern, RouteRule, Scope,
};
use serde_json::{Value, json};

use crate::{assert_problem, load, problems, yaml};

fn config(access: Value, route: Value) -> String {
    yaml(&json!({
        "version": 2,
        "server": {"auth": {"access_policy": access, "route_policy": route}},
    }))
}

fn access(rules: Value) -> Vec<AccessRule> {
    load(&config(rules, json!([])), &[]).config.server.auth.access_policy
}

fn route(rules: Value) -> Vec<RouteRule> {
    load(&config(json!([]), rules), &[]).config.server.auth.route_policy
}

#[test]
fn every_condition_parses() {
    let rules = access(json!([{
        "permit": {"actions": ["create", "read", "update", "delete"]},
        "when": [
            "user is owner", "user   is not  owner", "user in owners teams", "user not in owners roles",
            "user with admin in roles", "user with ml not in teams", "resource is unowned",
        ],
    }]));
    let expected = vec![
        Condition::UserIsOwner,
        Condition::UserIsNotOwner,
        Condition::UserInOwners("teams".into()),
        Condition::UserNotInOwners("roles".into()),
        Condition::UserWithValueIn { value: "admin".into(), category: "roles".into() },
        Condition::UserWithValueNotIn { value: "ml".into(), category: "teams".into() },
        Condition::ResourceIsUnowned,
    ];
    assert_eq!(rules[0].conditions, Conditions::When(expected));
    assert_eq!(rules[0].scope.actions, Action::ALL.to_vec());
    assert_eq!(rules[0].effect, Effect::Permit);
}

#[test]
fn scopes_and_single_values() {
    let rules = access(json!([
        {"forbid": {"actions": "delete", "principal": "intern", "resource": "sql_record::t::*"},
         "unless": "user with admin in roles", "description": "no deletes"},
        {"permit": {"actions": "read", "resource": "regex:sql_record::t::file-[a-f0-9]+"}},
        {"permit": {"actions": "read", "resource": "model::llama"}},
        {"permit": {"actions": "read", "resource": "*"}},
    ]));
    assert_eq!(rules[0].effect, Effect::Forbid);
    assert_eq!(rules[0].scope.principal.as_deref(), Some("intern"));
    assert_eq!(rules[0].scope.resource, Some(ResourcePattern::TypePrefix("sql_record::t::".into())));
    assert_eq!(
        rules[0].conditions,
        Conditions::Unless(vec![Condition::UserWithValueIn { value: "admin".into(), category: "roles".into() }])
    );
    assert_eq!(rules[0].description.as_deref(), Some("no deletes"));
    let Some(ResourcePattern::Regex(re)) = &rules[1].scope.resource else { panic!("regex expected") };
    assert!(re.matches("sql_record::t::file-ab12"));
    assert!(re.matches("sql_record::t::file-ab12-and-more"), "anchored at the start only");
    assert!(!re.matches("x-sql_record::t::file-ab12"));
    assert_eq!(rules[2].scope.resource, Some(ResourcePattern::Exact("model::llama".into())));
    assert_eq!(rules[3].scope.resource, Some(ResourcePattern::Exact("*".into())), "a bare * matches nothing");
    assert_eq!(
        rules[3].scope,
        Scope { actions: vec![Action::Read], principal: None, resource: rules[3].scope.resource.clone() }
    );
}

#[test]
fn rules_round_trip_through_serialization() {
    let written = json!([
        {"permit": {"actions": ["read", "update"], "resource": "sql_record::t::*"}, "when": ["user in owners teams", "user is owner"]},
        {"forbid": {"actions": "delete", "principal": "p"}, "unless": "user with a not in b", "description": "d"},
    ]);
    let rules = access(written.clone());
    let back = serde_json::to_value(&rules).unwrap();
    let again: Vec<AccessRule> = serde_json::from_value(back).unwrap();
    assert_eq!(rules, again);
}

#[test]
fn route_rules_parse() {
    let rules = route(json!([
        {"permit": {"paths": ["/v1/health", "/v1/version"]}},
        {"permit": {"paths": "/v1/models*"}, "when": "user with admin in roles"},
        {"forbid": {"paths": "regex:/v1/(files|batches)"}, "unless": ["user with a in roles", "user with b in roles"]},
        {"forbid": {"paths": "*"}, "description": "catch-all"},
    ]));
    assert_eq!(rules[0].paths, vec![PathPattern::Exact("/v1/health".into()), PathPattern::Exact("/v1/version".into())]);
    assert_eq!(rules[1].paths, vec![PathPattern::Prefix("/v1/models".into())]);
    assert!(rules[2].paths[0].matches("/v1/files/x"));
    assert_eq!(rules[3].paths, vec![PathPattern::Any]);
    assert_eq!(rules[3].effect, Effect::Forbid);
}

#[test]
fn access_rule_problems_name_the_bad_part() {
    let cases = [
        (
            json!([{"permit": {"actions": "read"}, "forbid": {"actions": "read"}}]),
            "server.auth.access_policy[0]",
            vec!["permit and forbid are mutually exclusive"],
        ),
        (json!([{"description": "x"}]), "server.auth.access_policy[0]", vec!["permit", "forbid"]),
        (
            json!([{"permit": {"actions": "read"}, "when": "user is owner", "unless": "user is owner"}]),
            "server.auth.access_policy[0]",
            vec!["mutually exclusive"],
        ),
        (
            json!([{"permit": {"actions": "read"}}, {"permit": {"actions": "read"}, "when": ["user is owner", "user is boss"]}]),
            "server.auth.access_policy[1].when[1]",
            vec!["unknown condition 'user is boss'", "user is owner", "resource is unowned"],
        ),
        (
            json!([{"permit": {"actions": "read"}, "unless": "user with in roles"}]),
            "server.auth.access_policy[0].unless",
            vec!["unknown condition"],
        ),
        (
            json!([{"permit": {"actions": ["read", "write"]}}]),
            "server.auth.access_policy[0].permit.actions[1]",
            vec!["write"],
        ),
        (json!([{"permit": {"actions": []}}]), "server.auth.access_policy[0].permit.actions", vec!["no action"]),
        (
            json!([{"permit": {"actions": "read", "resource": "regex:([a-"}}]),
            "server.auth.access_policy[0].permit.resource",
            vec!["invalid regex"],
        ),
        (
            json!([{"permit": {"actions": "read", "owner": "x"}}]),
            "server.auth.access_policy[0].permit.owner",
            vec!["unknown field", "owner"],
        ),
        (
            json!([{"permit": {"actions": "read"}, "whenever": "user is owner"}]),
            "server.auth.access_policy[0].whenever",
            vec!["unknown field", "whenever"],
        ),
        (json!([{"permit": {"actions": "read"}, "when": []}]), "server.auth.access_policy[0]", vec!["no condition"]),
    ];
    for (rules, path, words) in cases {
        let p = problems(&config(rules.clone(), json!([])), &[]);
        assert_problem(&p, path, &words, &rules.to_string());
    }
}

#[test]
fn route_rule_problems_name_the_bad_part() {
    let cases = [
        (
            json!([{"permit": {"paths": "*"}, "forbid": {"paths": "*"}}]),
            "server.auth.route_policy[0]",
            vec!["mutually exclusive"],
        ),
        (
            json!([{"permit": {"paths": ["/a", "regex:(("]}}]),
            "server.auth.route_policy[0].permit.paths[1]",
            vec!["invalid regex"],
        ),
        (
            json!([{"permit": {"paths": "*"}, "when": ["user is owner", "nobody"]}]),
            "server.auth.route_policy[0].when[1]",
            vec!["unknown condition 'nobody'"],
        ),
        (
            json!([{"permit": {"paths": "*", "actions": "read"}}]),
            "server.auth.route_policy[0].permit.actions",
            vec!["unknown field"],
        ),
    ];
    for (rules, path, words) in cases {
        let p = problems(&config(json!([]), rules.clone()), &[]);
        assert_problem(&p, path, &words, &rules.to_string());
    }
}
