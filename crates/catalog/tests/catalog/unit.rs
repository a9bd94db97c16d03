//! Pure checks: statement building, dialect helpers, value conversions, migration parity.

use chrono::{DateTime, Utc};
use ferrostack_catalog::json;
use ferrostack_catalog::sql::dialect;
use ferrostack_catalog::{Dialect, FromValue, Sql, Value, embedded_migrations, random_id};
use ferrostack_testkit::Test;
use serde_json::json;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("unit::random_ids_have_prefix_length_and_hex_alphabet", || async {
            for len in [0, 1, 30, 32, 48, 100] {
                let id = random_id("chatcmpl-", len);
                let hex = id.strip_prefix("chatcmpl-").unwrap_or_else(|| panic!("no prefix: {id}"));
                assert_eq!(hex.len(), len, "{id}");
                assert!(hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{id}");
            }
        }),
        Test::plain("unit::random_ids_differ_and_no_digit_is_fixed", || async {
            let ids: Vec<String> = (0..2000).map(|_| random_id("", 32)).collect();
            let distinct: std::collections::BTreeSet<&String> = ids.iter().collect();
            assert_eq!(distinct.len(), ids.len());
            // No position is fixed, as a UUID's version nibble would be.
            for pos in 0..32 {
                let values: std::collections::BTreeSet<u8> = ids.iter().map(|id| id.as_bytes()[pos]).collect();
                assert!(values.len() > 8, "position {pos} takes only {values:?}");
            }
        }),
        Test::plain("unit::json_size_is_the_serialized_length", || async {
            let v = json!({"a": [1, "x\"y", null], "b": "é"});
            assert_eq!(json::json_size(&v), serde_json::to_string(&v).map(|s| s.len()).unwrap_or_default());
        }),
        Test::plain("unit::nul_is_found_and_replaced_in_values_and_keys", || async {
            let mut v = json!({"output": [{"text": "a\u{0}b"}], "k\u{0}": 1, "n": 2});
            assert!(json::contains_nul(&v));
            json::replace_nul(&mut v);
            assert!(!json::contains_nul(&v));
            assert_eq!(v, json!({"output": [{"text": "a\u{FFFD}b"}], "k\u{FFFD}": 1, "n": 2}));
            assert!(!json::contains_nul(&json!({"a": ["b", 1, true, null]})));
        }),
        Test::plain("unit::placeholders_per_dialect", || async {
            let predicate = Sql::new().push("owner = ").bind("alice").push(" AND team = ").bind("a");
            let sql = Sql::new()
                .push("SELECT id FROM t WHERE created > ")
                .bind(5_i64)
                .push(" AND ")
                .push_sql(predicate)
                .push(" AND id IN (")
                .push_bind_list(["x", "y"])
                .push(")");
            assert_eq!(
                sql.text(Dialect::Postgres),
                "SELECT id FROM t WHERE created > $1 AND owner = $2 AND team = $3 AND id IN ($4, $5)"
            );
            assert_eq!(
                sql.text(Dialect::Sqlite),
                "SELECT id FROM t WHERE created > ?1 AND owner = ?2 AND team = ?3 AND id IN (?4, ?5)"
            );
            assert_eq!(sql.bind_count(), 5);
            assert_eq!(sql.binds()[1], &Value::Text("alice".into()));
            let hostile = Sql::new().push("SELECT 1 WHERE x = ").bind("'; DROP TABLE t; --");
            assert!(!hostile.text(Dialect::Postgres).contains("DROP"), "values never enter the text");
            let values = Sql::new()
                .push("INSERT INTO t (a, b) ")
                .push_values([vec![Value::from(1_i64), Value::Null], vec![Value::from(2_i64), Value::from(true)]]);
            assert_eq!(values.text(Dialect::Sqlite), "INSERT INTO t (a, b) VALUES (?1, ?2), (?3, ?4)");
            assert!(Sql::new().is_empty());
            assert_eq!(Sql::new().push_ident("we\"ird").text(Dialect::Postgres), "\"we\"\"ird\"");
        }),
        Test::plain("unit::dialect_helpers", || async {
            assert_eq!(dialect::escape_like("50%_a\\b"), "50\\%\\_a\\\\b");
            assert_eq!(
                dialect::on_conflict_update(&["id"], &["n", "doc"]).text(Dialect::Sqlite),
                "ON CONFLICT (\"id\") DO UPDATE SET \"n\" = excluded.\"n\", \"doc\" = excluded.\"doc\""
            );
            assert_eq!(
                dialect::on_conflict_update(&["a", "b"], &[]).text(Dialect::Postgres),
                "ON CONFLICT (\"a\", \"b\") DO NOTHING"
            );
            assert_eq!(dialect::now(Dialect::Postgres).text(Dialect::Postgres), "now()");
            assert_eq!(dialect::ilike(Dialect::Postgres), "ILIKE");
            let contains = dialect::json_array_contains(Dialect::Postgres, "attrs", "roles", "admin");
            assert_eq!(contains.bind_count(), 2);
            assert!(!contains.text(Dialect::Postgres).contains("admin"));
        }),
        Test::plain("unit::value_conversions", || async {
            assert_eq!(Value::from(None::<i64>), Value::Null);
            assert_eq!(Value::from(Some("x")), Value::Text("x".into()));
            assert_eq!(Value::from(json!({"a": 1})), Value::Json(json!({"a": 1})));
            assert_eq!(bool::from_value(&Value::Int(1)), Ok(true));
            assert!(bool::from_value(&Value::Int(2)).is_err());
            assert_eq!(serde_json::Value::from_value(&Value::Text("[1]".into())), Ok(json!([1])));
            assert!(serde_json::Value::from_value(&Value::Text("not json".into())).unwrap_err().contains("JSON"));
            let t = DateTime::<Utc>::from_value(&Value::Int(1_700_000_000_123)).unwrap();
            assert_eq!(t.timestamp_millis(), 1_700_000_000_123);
            assert_eq!(
                i32::from_value(&Value::Int(i64::MAX)).unwrap_err(),
                format!("integer {} does not fit in i32", i64::MAX)
            );
            assert_eq!(Option::<String>::from_value(&Value::Null), Ok(None));
            assert_eq!(
                String::from_value(&Value::Null).unwrap_err(),
                "expected text, found NULL (read it as an Option)"
            );
        }),
        Test::plain("unit::migration_sets_in_step", || async {
            // Every dialect carries the same migrations (versions and names): a table added for one
            // dialect must be added for the other.
            let postgres = embedded_migrations(Dialect::Postgres);
            let sqlite = embedded_migrations(Dialect::Sqlite);
            assert_eq!(postgres, sqlite);
            assert_eq!(postgres[0].to_string(), "V1__kvstore");
        }),
    ]
}
