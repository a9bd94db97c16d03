//! The evaluator, route rules and the compiled SQL's shape, without a database.

use ferrostack_authz::User;
use ferrostack_authz::policy::{
    CompileError, Predicate, Resource, Target, WIDE_VALUE_LIST, compile, default_policy, is_allowed, is_route_allowed,
    literal_prefix_regex, predicate,
};
use ferrostack_catalog::Dialect;
use ferrostack_config::{AccessRule, Action, Condition, Effect, PathPattern, ResourcePattern, RouteRule, Scope};
use ferrostack_testkit::Test;

use crate::support::user;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("unit_no_user_allows_everything", || async { no_user() }),
        Test::plain("unit_empty_policy_is_the_default", || async { default_is_used() }),
        Test::plain("unit_no_applying_rule_denies", || async { no_rule_denies() }),
        Test::plain("unit_route_policy", || async { routes() }),
        Test::plain("unit_default_policy_compiles_to_a_plain_or", || async { default_sql() }),
        Test::plain("unit_default_policy_long_value_list_is_one_test", || async { wide_sql() }),
        Test::plain("unit_mixed_policy_sql_binds_everything", || async { mixed_sql() }),
        Test::plain("unit_regex_patterns", || async { regexes() }),
    ]
}

fn no_user() {
    let deny_all = vec![AccessRule::new(Effect::Forbid, Scope::actions(Action::ALL))];
    assert!(is_allowed(&deny_all, Action::Delete, &Resource::new("model", "m", None), None));
    let sql = compile(&deny_all, Action::Read, &Target::new("t", "id"), None, Dialect::Postgres).unwrap();
    assert_eq!(sql.text(Dialect::Postgres), "TRUE");
}

fn default_is_used() {
    let u = user("u", &[("teams", &["x"])]);
    let shared = Resource::new("model", "m", Some(user("o", &[("teams", &["x"])])));
    let private = Resource::new("model", "m", Some(user("o", &[("teams", &["y"])])));
    assert!(is_allowed(&[], Action::Update, &shared, Some(&u)));
    assert!(!is_allowed(&[], Action::Update, &private, Some(&u)));
    assert!(is_allowed(default_policy(), Action::Read, &Resource::new("model", "m", None), Some(&u)));
    // Categories outside the four are not shared by the default policy.
    let other = Resource::new("model", "m", Some(user("o", &[("other", &["x"])])));
    assert!(!is_allowed(&[], Action::Read, &other, Some(&user("u", &[("other", &["x"])]))));
}

fn no_rule_denies() {
    let read_only = vec![AccessRule::new(Effect::Permit, Scope::actions([Action::Read]))];
    let r = Resource::new("model", "m", None);
    assert!(is_allowed(&read_only, Action::Read, &r, Some(&user("u", &[]))));
    assert!(!is_allowed(&read_only, Action::Delete, &r, Some(&user("u", &[]))));
}

fn route(effect: Effect, paths: &[&str], conditions: ferrostack_config::Conditions) -> RouteRule {
    RouteRule {
        effect,
        paths: paths.iter().map(|p| PathPattern::parse(p).unwrap()).collect(),
        conditions,
        description: None,
    }
}

fn routes() {
    use ferrostack_config::Conditions::{Always, Unless, When};
    assert!(is_route_allowed(&[], "/anything", None));
    let admin = Condition::UserWithValueIn { value: "admin".into(), category: "roles".into() };
    let banned = Condition::UserWithValueIn { value: "banned".into(), category: "roles".into() };
    let policy = vec![
        route(Effect::Permit, &["/v1/health", "/v1/version"], Always),
        route(Effect::Permit, &["/v1/admin*"], When(vec![admin.clone()])),
        route(Effect::Permit, &["regex:/v1/(models|chat)"], Unless(vec![banned.clone(), admin.clone()])),
        route(Effect::Forbid, &["*"], Always),
    ];
    assert!(is_route_allowed(&policy, "/v1/health/", None), "trailing slash stripped");
    assert!(!is_route_allowed(&policy, "/v1/admin/x", None), "conditions never match without a user");
    assert!(is_route_allowed(&policy, "/v1/admin/x", Some(&user("a", &[("roles", &["admin"])]))));
    assert!(is_route_allowed(&policy, "/v1/models", Some(&user("a", &[("roles", &["user"])]))));
    // Route `unless` = none holds: an admin (one of the two holds) does not match the rule.
    assert!(!is_route_allowed(&policy, "/v1/models", Some(&user("a", &[("roles", &["admin"])]))));
    assert!(!is_route_allowed(&policy, "/v1/files", Some(&user("a", &[("roles", &["admin"])]))));
    // Owner-based conditions behave as "no owner".
    let unowned = vec![route(Effect::Permit, &["*"], When(vec![Condition::ResourceIsUnowned]))];
    assert!(is_route_allowed(&unowned, "/x", Some(&user("a", &[]))));
    let owner = vec![route(Effect::Permit, &["*"], When(vec![Condition::UserIsOwner]))];
    assert!(!is_route_allowed(&owner, "/x", Some(&user("a", &[]))));
}

fn default_sql() {
    let u = user("alice", &[("roles", &["admin"]), ("teams", &["ml", "dev"]), ("other", &["z"])]);
    let tree = predicate(&[], Action::Read, "items", Some(&u)).unwrap();
    let Predicate::Or(atoms) = &tree else { panic!("not an OR: {tree:?}") };
    assert_eq!(atoms.len(), 4, "{tree:?}");
    let pg = compile(&[], Action::Read, &Target::new("items", "id"), Some(&u), Dialect::Postgres).unwrap();
    assert_eq!(
        pg.text(Dialect::Postgres),
        "((\"owner_principal\" <> '' AND (\"access_attributes\" @> $1::jsonb)) OR (\"owner_principal\" <> '' AND \
         (\"access_attributes\" @> $2::jsonb OR \"access_attributes\" @> $3::jsonb)) OR \"owner_principal\" = $4 OR \
         \"owner_principal\" = '')"
    );
    let lite = compile(&[], Action::Read, &Target::new("items", "id"), Some(&u), Dialect::Sqlite).unwrap();
    // SQLite: an index probe of the side table of attribute values.
    assert!(
        lite.text(Dialect::Sqlite).contains("EXISTS (SELECT 1 FROM \"items_access_values\""),
        "{}",
        lite.text(Dialect::Sqlite)
    );
    assert!(!lite.text(Dialect::Sqlite).contains("admin"));
}

/// Up to `WIDE_VALUE_LIST` values: one `@>` per value; more: one JSON path test, values bound.
fn wide_sql() {
    let names: Vec<String> = (0..=WIDE_VALUE_LIST).map(|i| format!("t{i}")).collect();
    let values: Vec<&str> = names.iter().map(String::as_str).collect();
    let target = Target::new("items", "id");
    let narrow = user("u", &[("teams", &values[..WIDE_VALUE_LIST])]);
    let text = compile(&[], Action::Read, &target, Some(&narrow), Dialect::Postgres).unwrap().text(Dialect::Postgres);
    assert_eq!(text.matches(" @> ").count(), WIDE_VALUE_LIST, "{text}");
    assert!(!text.contains("@?"), "{text}");
    let wide = user("u", &[("teams", &values[..]), ("roles", &["r"])]);
    let text = compile(&[], Action::Read, &target, Some(&wide), Dialect::Postgres).unwrap().text(Dialect::Postgres);
    assert_eq!(text.matches(" @> ").count(), 1, "{text}");
    assert!(text.contains("(\"access_attributes\" @? CAST(CAST($2 AS TEXT) AS jsonpath))"), "{text}");
    let binds = format!("{:?}", compile(&[], Action::Read, &target, Some(&wide), Dialect::Postgres).unwrap().binds());
    assert!(binds.contains(r#"strict $.\"teams\"[*] ? (@ == \"t0\" || @ == \"t1\" || "#), "{binds}");
    assert!(!text.contains("t0"), "values are bound: {text}");
}

fn mixed_sql() {
    let mut forbid = AccessRule::new(Effect::Forbid, Scope::actions([Action::Delete]))
        .when(vec![Condition::UserIsNotOwner, Condition::UserInOwners("teams".into())]);
    forbid.scope.resource = Some(ResourcePattern::TypePrefix("sql_record::items::".into()));
    let policy = vec![forbid, AccessRule::new(Effect::Permit, Scope::actions(Action::ALL))];
    let u = user("al'ice", &[("teams", &["t'1"])]);
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        let sql = compile(&policy, Action::Delete, &Target::new("items", "id"), Some(&u), dialect).unwrap();
        let text = sql.text(dialect);
        assert!(text.starts_with("NOT COALESCE((NOT COALESCE("), "{text}");
        assert!(!text.contains("t'1") && !text.contains("al'ice"), "{text}");
    }
}

fn regexes() {
    assert_eq!(literal_prefix_regex("sql_record::t::file-.*").as_deref(), Some("sql_record::t::file-"));
    assert_eq!(literal_prefix_regex(r"sql_record::t::a\.b").as_deref(), Some("sql_record::t::a.b"));
    assert_eq!(literal_prefix_regex("sql_record::t::[a-f]+"), None);
    // The reference CI's pattern compiles for SQL tables since issue 17, on both dialects.
    let mut ci = AccessRule::new(Effect::Permit, Scope::actions([Action::Read]));
    ci.scope.resource = Some(ResourcePattern::parse("regex:sql_record::items::file-[a-f0-9-]+").unwrap());
    for dialect in [Dialect::Sqlite, Dialect::Postgres] {
        let sql = compile(&[ci.clone()], Action::Read, &Target::new("items", "id"), Some(&user("u", &[])), dialect);
        assert!(sql.is_ok(), "{dialect:?}: {sql:?}");
    }
    // What PostgreSQL cannot match exactly is refused, naming it.
    let mut rule = AccessRule::new(Effect::Permit, Scope::actions([Action::Read]));
    rule.scope.resource = Some(ResourcePattern::parse("regex:(?m)sql_record::items::a$").unwrap());
    let policy = vec![rule];
    let err = compile(&policy, Action::Read, &Target::new("items", "id"), Some(&user("u", &[])), Dialect::Sqlite);
    assert!(
        matches!(&err, Err(CompileError::UnsupportedRegex { construct, .. }) if construct.contains("multi-line")),
        "{err:?}"
    );
    let message = err.map(|_| ()).unwrap_err().to_string();
    assert!(message.contains("regex:(?m)sql_record::items::a$") && message.contains("items"), "{message}");
    // Other tables, and other actions, are unaffected by it.
    assert!(
        compile(&policy, Action::Delete, &Target::new("items", "id"), Some(&user("u", &[])), Dialect::Sqlite).is_ok()
    );
    let _ = User::default();
}
