//! How long compiling a policy to SQL takes: it happens for every statement on a tenant table.
//!
//! ```sh
//! cargo bench -p ferrostack-authz --bench compile
//! ```
#![expect(clippy::unwrap_used, reason = "a benchmark with a fixed, valid policy")]

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
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

fn compile_policies(c: &mut Criterion) {
    let user = User::new(
        "user7",
        BTreeMap::from([
            ("roles".to_owned(), vec!["admin".to_owned(), "viewer".to_owned()]),
            ("teams".to_owned(), vec!["ml".to_owned(), "dev".to_owned(), "qa".to_owned()]),
            ("projects".to_owned(), vec!["x".to_owned()]),
        ]),
    );
    let custom = custom_policy();
    let target = Target::new("items", "id");
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        for (name, policy) in [("default policy (6 rules)", &[][..]), ("custom policy (5 rules, mixed)", &custom[..])] {
            c.bench_function(&format!("compile {name}, {dialect:?}"), |b| {
                b.iter(|| compile(black_box(policy), Action::Read, &target, Some(black_box(&user)), dialect).unwrap())
            });
        }
    }
}

criterion_group!(benches, compile_policies);
criterion_main!(benches);
