//! How long compiling a policy to SQL takes (it happens on every tenant-table statement).
//!
//! ```sh
//! cargo bench -p ferrostack-authz --bench compile
//! ```
//!
//! A plain timing loop (no criterion: it would add ~60 crates to the build for a number that
//! only needs to be "microseconds, not milliseconds").
#![expect(clippy::print_stdout, clippy::unwrap_used, reason = "a benchmark prints its numbers")]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use ferrostack_authz::User;
use ferrostack_authz::policy::{Target, compile};
use ferrostack_catalog::Dialect;
use ferrostack_config::{AccessRule, Action};

fn custom_policy() -> Vec<AccessRule> {
    serde_json::from_value(serde_json::json!([
        {"forbid": {"actions": ["delete"], "resource": "sql_record::items::*"}, "unless": "user with admin in roles"},
        {"permit": {"actions": ["read"]}, "when": ["user in owners teams"]},
        {"permit": {"actions": ["read", "update"], "principal": "user7"}, "unless": ["user in owners projects", "user is not owner"]},
        {"permit": {"actions": ["create", "read", "update", "delete"]}, "when": "user is owner"},
        {"permit": {"actions": ["read"]}, "when": "resource is unowned"},
    ]))
    .unwrap()
}

fn bench(name: &str, policy: &[AccessRule], user: &User, dialect: Dialect) {
    let target = Target::new("items", "id");
    let iterations = 200_000_u32;
    for _ in 0..10_000 {
        black_box(compile(policy, Action::Read, &target, Some(user), dialect).unwrap());
    }
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(compile(black_box(policy), Action::Read, &target, Some(black_box(user)), dialect).unwrap());
    }
    let per = started.elapsed() / iterations;
    println!("{name:<40} {dialect:?}: {per:.2?} per compile");
}

fn main() {
    let user = User::new(
        "user7",
        BTreeMap::from([
            ("roles".to_owned(), vec!["admin".to_owned(), "viewer".to_owned()]),
            ("teams".to_owned(), vec!["ml".to_owned(), "dev".to_owned(), "qa".to_owned()]),
            ("projects".to_owned(), vec!["x".to_owned()]),
        ]),
    );
    let custom = custom_policy();
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        bench("default policy (6 rules)", &[], &user, dialect);
        bench("custom policy (5 rules, mixed)", &custom, &user, dialect);
    }
}
