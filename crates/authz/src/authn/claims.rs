//! Claims → attributes.

use std::collections::BTreeMap;

use serde_json::Value;

/// The attributes `mapping` (claim path → attribute category) gives for `claims`.
///
/// A claim path is first followed through nested objects (`resource_access.app.roles`), else read
/// as a literal key containing dots; a missing claim is skipped. A list is taken item by item
/// (strings as they are, numbers and booleans as their JSON text, anything else skipped); a string
/// is split on whitespace (`scope: "a b"` → `a`, `b`); other types are skipped. Several claims
/// mapping to one category are concatenated, in the order of the claim paths.
pub fn map_claims(claims: &Value, mapping: &BTreeMap<String, String>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (path, category) in mapping {
        let values: Vec<String> = match lookup(claims, path) {
            Some(Value::Array(items)) => items.iter().filter_map(scalar).collect(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            _ => continue,
        };
        out.entry(category.clone()).or_default().extend(values);
    }
    out
}

/// The claim at `path`: dotted traversal first, then the literal key.
fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = claims;
    let mut found = true;
    for part in path.split('.') {
        match cur.get(part) {
            Some(v) => cur = v,
            None => {
                found = false;
                break;
            }
        }
    }
    if found { Some(cur) } else { claims.get(path) }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// `None` for an empty set: a user with no attributes.
pub(crate) fn non_empty(attributes: BTreeMap<String, Vec<String>>) -> Option<BTreeMap<String, Vec<String>>> {
    if attributes.is_empty() { None } else { Some(attributes) }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn mapping(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(a, b)| ((*a).to_owned(), (*b).to_owned())).collect()
    }

    #[test]
    fn cases() {
        let claims = json!({
            "sub": "alice",
            "scope": "read  write",
            "groups": ["g1", 2, true, null, {"x": 1}],
            "resource_access": {"app": {"roles": ["admin"]}},
            "literal.dotted": "lit",
            "n": 5,
        });
        let m = mapping(&[
            ("sub", "roles"),
            ("scope", "scopes"),
            ("groups", "teams"),
            ("resource_access.app.roles", "roles"),
            ("literal.dotted", "lits"),
            ("n", "numbers"),
            ("missing", "none"),
            ("resource_access.app.missing", "none"),
        ]);
        let out = map_claims(&claims, &m);
        assert_eq!(out["roles"], vec!["admin".to_owned(), "alice".to_owned()]);
        assert_eq!(out["scopes"], vec!["read", "write"]);
        assert_eq!(out["teams"], vec!["g1", "2", "true"]);
        assert_eq!(out["lits"], vec!["lit"]);
        assert!(!out.contains_key("numbers"));
        assert!(!out.contains_key("none"));
        assert!(non_empty(map_claims(&claims, &mapping(&[("zzz", "a")]))).is_none());
        assert_eq!(lookup(&claims, "resource_access.app").unwrap(), &json!({"roles": ["admin"]}));
    }
}
