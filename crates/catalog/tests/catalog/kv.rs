//! The KV contract (REFERENCE.md 2.1), each case written once over two namespaces of one
//! backend, run on kv_sqlite (temp file) and kv_postgres (fresh migrated database).

use std::future::Future;
use std::pin::Pin;

use chrono::{Duration, Utc};
use ferrostack_catalog::{Catalog, KvStore};
use ferrostack_config::KvStoreRef;
use ferrostack_testkit::{Test, TestDatabase};
use serde_json::json;

use crate::support::{self, TempDir};

/// Two namespaces ("alpha" and "alphabet": one is a prefix of the other) on one backend.
pub struct Kv {
    pub a: KvStore,
    pub b: KvStore,
    pub catalog: Catalog,
    _dir: Option<TempDir>,
    _db: Option<TestDatabase>,
}

impl Kv {
    fn new(catalog: Catalog, dir: Option<TempDir>, db: Option<TestDatabase>) -> Self {
        let a = catalog.kv(&KvStoreRef { backend: "kv".into(), namespace: "alpha".into() }).expect("kv alpha");
        let b = catalog.kv(&KvStoreRef { backend: "kv".into(), namespace: "alphabet".into() }).expect("kv alphabet");
        Kv { a, b, catalog, _dir: dir, _db: db }
    }
}

pub async fn sqlite_kv() -> Kv {
    let dir = TempDir::new();
    let storage = support::storage([("kv", support::sqlite("kv_sqlite", &dir.file("kv.db")))]);
    Kv::new(support::open_migrated(&storage).await, Some(dir), None)
}

pub async fn postgres_kv(db: TestDatabase) -> Kv {
    let storage = support::storage([("kv", support::postgres("kv_postgres", &db, json!({})))]);
    Kv::new(support::open_migrated(&storage).await, None, Some(db))
}

type Case = fn(Kv) -> Pin<Box<dyn Future<Output = ()>>>;

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("get_set_overwrite", |kv| Box::pin(get_set_overwrite(kv))),
        ("delete_is_idempotent", |kv| Box::pin(delete_is_idempotent(kv))),
        ("expired_entries_are_absent", |kv| Box::pin(expired_entries_are_absent(kv))),
        ("ranges_are_half_open_in_byte_order", |kv| Box::pin(ranges_are_half_open_in_byte_order(kv))),
        ("prefix_range_pattern", |kv| Box::pin(prefix_range_pattern(kv))),
        ("keys_are_stripped_of_namespace", |kv| Box::pin(keys_are_stripped_of_namespace(kv))),
        ("namespaces_are_isolated", |kv| Box::pin(namespaces_are_isolated(kv))),
        ("values_round_trip", |kv| Box::pin(values_round_trip(kv))),
        ("purge_expired", |kv| Box::pin(purge_expired(kv))),
        ("insert_new_only_when_absent", |kv| Box::pin(insert_new_only_when_absent(kv))),
    ]
}

pub fn tests() -> Vec<Test> {
    let mut tests = Vec::new();
    for (name, case) in cases() {
        tests.push(Test::plain(format!("kv::sqlite::{name}"), move || async move {
            let kv = sqlite_kv().await;
            let catalog = kv.catalog.clone();
            case(kv).await;
            catalog.close().await;
        }));
        tests.push(Test::postgres(format!("kv::postgres::{name}"), move |pg| async move {
            let kv = postgres_kv(pg.fresh_database().await).await;
            let catalog = kv.catalog.clone();
            case(kv).await;
            catalog.close().await;
        }));
    }
    // The ordering cases again on a database whose default collation is a locale's (ICU en-US
    // sorts "a" < "B" < "b"): the key column's COLLATE "C" must keep byte order.
    let ordering = ["ranges_are_half_open_in_byte_order", "prefix_range_pattern", "namespaces_are_isolated"];
    for (name, case) in cases().into_iter().filter(|(name, _)| ordering.contains(name)) {
        tests.push(Test::postgres(format!("kv::postgres_icu_locale::{name}"), move |pg| async move {
            let db = pg.fresh_database_with(ICU_DATABASE).await;
            let sorted: String = db
                .client()
                .await
                .query_one("SELECT string_agg(k, ',' ORDER BY k) FROM (VALUES ('a'), ('B')) v(k)", &[])
                .await
                .unwrap()
                .get(0);
            assert_eq!(sorted, "a,B", "the database sorts by locale, not bytes");
            let kv = postgres_kv(db).await;
            let catalog = kv.catalog.clone();
            case(kv).await;
            catalog.close().await;
        }));
    }
    tests
}

/// `CREATE DATABASE` options for a database that collates by the en-US ICU locale.
const ICU_DATABASE: &str = "TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'";

async fn get_set_overwrite(kv: Kv) {
    let a = &kv.a;
    assert_eq!(a.get("k").await.unwrap(), None);
    a.set("k", "v1", None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("v1"));
    a.set("k", "v2", None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("v2"), "set overwrites");
    a.set("other", "x", Some(Utc::now() + Duration::hours(1))).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("v2"));
    assert_eq!(a.get("other").await.unwrap().as_deref(), Some("x"), "a future expiration is live");
    assert_eq!(a.keys_in_range("", "\u{ff}").await.unwrap(), vec!["k", "other"]);
}

async fn delete_is_idempotent(kv: Kv) {
    let a = &kv.a;
    a.delete("never-set").await.unwrap();
    a.set("k", "v", None).await.unwrap();
    a.delete("k").await.unwrap();
    assert_eq!(a.get("k").await.unwrap(), None);
    a.delete("k").await.unwrap();
    assert_eq!(a.keys_in_range("", "\u{ff}").await.unwrap(), Vec::<String>::new());
}

async fn expired_entries_are_absent(kv: Kv) {
    let a = &kv.a;
    let past = Utc::now() - Duration::hours(1);
    let future = Utc::now() + Duration::hours(1);
    a.set("expired", "old", Some(past)).await.unwrap();
    a.set("live", "new", Some(future)).await.unwrap();
    a.set("forever", "always", None).await.unwrap();
    assert_eq!(a.get("expired").await.unwrap(), None, "an expired entry is absent from get");
    assert_eq!(a.keys_in_range("", "\u{ff}").await.unwrap(), vec!["forever", "live"]);
    assert_eq!(a.values_in_range("", "\u{ff}").await.unwrap(), vec!["always", "new"]);
    // A live entry that is set to a past expiration disappears.
    a.set("live", "new", Some(past)).await.unwrap();
    assert_eq!(a.get("live").await.unwrap(), None);
    // An expired key set again without expiration is back.
    a.set("expired", "revived", None).await.unwrap();
    assert_eq!(a.get("expired").await.unwrap().as_deref(), Some("revived"));
}

async fn ranges_are_half_open_in_byte_order(kv: Kv) {
    let a = &kv.a;
    let keys = [
        "a", "B", "b", "A", "a:1", "a-1", "a_1", "a.1", "a1", "a10", "a2", "0", "9", "Z", "z", "~", "!", "a b", "é",
        "aé", "a\u{7f}",
    ];
    for k in keys {
        a.set(k, &format!("value of {k}"), None).await.unwrap();
    }
    let mut sorted: Vec<&str> = keys.to_vec();
    // Rust orders strings by their UTF-8 bytes: the order the contract requires.
    sorted.sort_unstable();
    let ranges = [
        ("", "\u{ff}"),
        ("a", "b"),
        ("A", "a"),
        ("a", "a"),
        ("b", "a"),
        ("a1", "a2"),
        ("!", "0"),
        ("a:1", "a_1"),
        ("0", "~"),
        ("a", "a\u{ff}"),
    ];
    for (start, end) in ranges {
        let expected: Vec<String> =
            sorted.iter().filter(|k| **k >= start && **k < end).map(|k| (*k).to_owned()).collect();
        assert_eq!(a.keys_in_range(start, end).await.unwrap(), expected, "keys in [{start:?}, {end:?})");
        let values: Vec<String> = expected.iter().map(|k| format!("value of {k}")).collect();
        assert_eq!(a.values_in_range(start, end).await.unwrap(), values, "values in [{start:?}, {end:?})");
    }
    // Inclusive start, exclusive end, on exact keys.
    assert_eq!(a.keys_in_range("a1", "a10").await.unwrap(), vec!["a1"]);
    assert_eq!(a.keys_in_range("a10", "a2").await.unwrap(), vec!["a10"]);
}

async fn prefix_range_pattern(kv: Kv) {
    let a = &kv.a;
    let prefix = "distributions:registry:v10::model:";
    for k in [
        "distributions:registry:v10::model:llama",
        "distributions:registry:v10::model:Llama",
        "distributions:registry:v10::model:a/b",
        "distributions:registry:v10::model:",
        "distributions:registry:v10::models",
        "distributions:registry:v10::shield:x",
        "distributions:registry:v1::model:old",
        "distributions:registry:v10::model",
    ] {
        a.set(k, k, None).await.unwrap();
    }
    let end = format!("{prefix}\u{ff}");
    let keys = a.keys_in_range(prefix, &end).await.unwrap();
    assert_eq!(
        keys,
        vec![
            "distributions:registry:v10::model:",
            "distributions:registry:v10::model:Llama",
            "distributions:registry:v10::model:a/b",
            "distributions:registry:v10::model:llama",
        ]
    );
    assert_eq!(a.values_in_range(prefix, &end).await.unwrap(), keys, "values follow key order");
}

async fn keys_are_stripped_of_namespace(kv: Kv) {
    kv.a.set("x:y", "1", None).await.unwrap();
    kv.a.set("alpha:z", "2", None).await.unwrap();
    assert_eq!(kv.a.keys_in_range("", "\u{ff}").await.unwrap(), vec!["alpha:z", "x:y"]);
    assert_eq!(kv.a.namespace(), "alpha");
}

async fn namespaces_are_isolated(kv: Kv) {
    let (a, b) = (&kv.a, &kv.b);
    a.set("k", "from alpha", None).await.unwrap();
    b.set("k", "from alphabet", None).await.unwrap();
    a.set("only-a", "1", None).await.unwrap();
    b.set("only-b", "2", None).await.unwrap();
    b.set(":colon", "3", None).await.unwrap();
    assert_eq!(a.get("k").await.unwrap().as_deref(), Some("from alpha"));
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("from alphabet"));
    assert_eq!(a.get("only-b").await.unwrap(), None);
    assert_eq!(b.get("only-a").await.unwrap(), None);
    // The widest ranges stay inside the namespace.
    assert_eq!(a.keys_in_range("", "\u{10ffff}").await.unwrap(), vec!["k", "only-a"]);
    assert_eq!(b.keys_in_range("", "\u{10ffff}").await.unwrap(), vec![":colon", "k", "only-b"]);
    assert_eq!(a.values_in_range("", "\u{10ffff}").await.unwrap(), vec!["from alpha", "1"]);
    // Deleting in one namespace leaves the other alone.
    a.delete("k").await.unwrap();
    assert_eq!(b.get("k").await.unwrap().as_deref(), Some("from alphabet"));
}

async fn values_round_trip(kv: Kv) {
    let a = &kv.a;
    let large: String = "0123456789abcdef\u{e9}".repeat(600);
    assert!(large.len() > 10_000);
    let values = [
        ("unicode", "h\u{e9}llo w\u{f6}rld \u{1f389} \u{4e2d}\u{6587}".to_owned()),
        ("quotes", r#"it's "quoted" \ back\slash"#.to_owned()),
        ("sql", "'; DROP TABLE kvstore; --".to_owned()),
        ("empty", String::new()),
        ("json", json!({"a": [1, 2, {"b": null}], "s": "x'y\"z"}).to_string()),
        ("large", large),
        ("key with 'quote' and \u{e9}", "k".to_owned()),
        ("percent%_under", "like chars".to_owned()),
    ];
    for (k, v) in &values {
        a.set(k, v, None).await.unwrap();
    }
    for (k, v) in &values {
        assert_eq!(a.get(k).await.unwrap().as_ref(), Some(v), "value of {k:?}");
    }
    assert_eq!(a.get("percent__under").await.unwrap(), None, "no LIKE semantics in get");
    assert_eq!(a.keys_in_range("", "\u{10ffff}").await.unwrap().len(), values.len());
}

async fn purge_expired(kv: Kv) {
    let (a, b) = (&kv.a, &kv.b);
    let past = Utc::now() - Duration::minutes(5);
    for k in ["e1", "e2", "e3"] {
        a.set(k, "gone", Some(past)).await.unwrap();
    }
    a.set("live", "stays", Some(Utc::now() + Duration::hours(1))).await.unwrap();
    a.set("forever", "stays", None).await.unwrap();
    b.set("e1", "other namespace", Some(past)).await.unwrap();
    assert_eq!(a.purge_expired().await.unwrap(), 3, "purges this namespace's expired rows");
    assert_eq!(a.purge_expired().await.unwrap(), 0, "nothing left to purge");
    assert_eq!(a.keys_in_range("", "\u{ff}").await.unwrap(), vec!["forever", "live"]);
    assert_eq!(b.purge_expired().await.unwrap(), 1, "the other namespace's row was left alone");
}

async fn insert_new_only_when_absent(kv: Kv) {
    assert!(kv.a.insert_new("k", "first", None).await.expect("insert"), "absent: inserted");
    assert!(!kv.a.insert_new("k", "second", None).await.expect("insert"), "present: refused");
    assert_eq!(kv.a.get("k").await.expect("get").as_deref(), Some("first"), "the first value stays");
    assert!(kv.b.insert_new("k", "other", None).await.expect("insert"), "another namespace is another key");
    let past = Utc::now() - Duration::seconds(5);
    kv.a.set("old", "expired", Some(past)).await.expect("set");
    assert!(kv.a.insert_new("old", "fresh", None).await.expect("insert"), "an expired entry counts as absent");
    assert_eq!(kv.a.get("old").await.expect("get").as_deref(), Some("fresh"));
}
