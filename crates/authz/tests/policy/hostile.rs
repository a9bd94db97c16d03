//! Hostile principals, attribute keys and values: bound, never spliced, and access never widens
//! (SQL is compared with the evaluator).

use std::collections::BTreeMap;

use ferrostack_authz::User;
use ferrostack_config::{AccessRule, Action, Condition, Effect, Scope};
use ferrostack_testkit::Test;

use crate::property::{StoredRow, check, insert_rows};
use crate::support::{Case, Scratch, both};

pub fn tests() -> Vec<Test> {
    let cases: Vec<(&'static str, Case)> = vec![("hostile_values_never_widen_access", |s| Box::pin(hostile(s)))];
    both(cases)
}

fn nasty() -> Vec<String> {
    let mut v: Vec<String> = [
        "%",
        "_",
        "\"",
        "'",
        "\\",
        "\\\"",
        "%admin%",
        "a_b",
        "') OR 1=1--",
        "' OR ''='",
        "SELECT",
        "DROP TABLE items;",
        "$.roles",
        "roles[0]",
        "{}",
        "[]",
        "null",
        "true",
        "ключ",
        "日本語",
        "emoji😀",
        "a\"b'c\\d",
        "admin",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    v.push("x".repeat(10_240));
    v.push(format!("{}'\"%_\\", "y".repeat(10_000)));
    v
}

fn attrs(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, Vec<String>>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (k, v) in pairs {
        map.entry((*k).to_owned()).or_default().push((*v).to_owned());
    }
    Some(map)
}

async fn hostile(s: Scratch) {
    let nasty = nasty();
    let mut rows = Vec::new();
    for (i, n) in nasty.iter().enumerate() {
        rows.push(StoredRow { id: format!("p{i}"), owner: Some(User { principal: n.clone(), attributes: None }) });
        rows.push(StoredRow {
            id: format!("k{i}"),
            owner: Some(User { principal: format!("owner{i}"), attributes: attrs(&[(n, "admin")]) }),
        });
        rows.push(StoredRow {
            id: format!("v{i}"),
            owner: Some(User { principal: format!("vowner{i}"), attributes: attrs(&[("roles", n)]) }),
        });
    }
    rows.push(StoredRow { id: "public".into(), owner: None });
    rows.push(StoredRow {
        id: "admin".into(),
        owner: Some(User { principal: "root".into(), attributes: attrs(&[("roles", "admin")]) }),
    });
    insert_rows(&s.db, &rows).await;
    let keyed: Vec<String> = nasty.iter().filter(|n| !n.chars().any(char::is_whitespace)).cloned().collect();
    let mut policies: Vec<Vec<AccessRule>> = vec![Vec::new()];
    for n in keyed.iter().take(8) {
        policies.push(vec![
            AccessRule::new(Effect::Permit, Scope::actions(Action::ALL)).when(vec![
                Condition::UserWithValueIn { value: n.clone(), category: n.clone() },
                Condition::UserInOwners(n.clone()),
            ]),
            AccessRule::new(
                Effect::Forbid,
                Scope { actions: vec![Action::Delete], principal: Some(n.clone()), resource: None },
            ),
            AccessRule::new(Effect::Permit, Scope::actions(Action::ALL)).when(vec![Condition::UserIsOwner]),
        ]);
    }
    for n in &nasty {
        let users = [
            User { principal: n.clone(), attributes: None },
            User { principal: "attacker".into(), attributes: attrs(&[(n, "admin"), ("roles", n)]) },
            User { principal: "attacker".into(), attributes: attrs(&[(n, n)]) },
        ];
        for user in &users {
            for policy in &policies {
                if let Err(e) = check(&s.db, &rows, policy, user).await {
                    panic!("hostile value {:?}: {e}", n.chars().take(40).collect::<String>());
                }
            }
        }
    }
    // Every hostile value but `admin` at once: a list long enough for PostgreSQL's JSON path form.
    let wide: Vec<String> = nasty.iter().filter(|n| *n != "admin").cloned().collect();
    assert!(wide.len() > ferrostack_authz::policy::WIDE_VALUE_LIST);
    let attacker =
        User { principal: "attacker".into(), attributes: Some(BTreeMap::from([("roles".to_owned(), wide)])) };
    for policy in &policies {
        if let Err(e) = check(&s.db, &rows, policy, &attacker).await {
            panic!("hostile value list: {e}");
        }
    }
}
