//! Composing authorized statements: transactions (commit, rollback on drop, several tables
//! atomically), composite keys, a child table seen through its parent, and the cascade, on both
//! dialects. The tables model a conversation and its items.

use ferrostack_authz::policy::{AuthorizedTable, ChildTable, Key, Order, StoreError};
use ferrostack_catalog::{Dialect, Sql, Value};
use ferrostack_config::{AccessRule, Action, Condition, Effect, Scope};
use ferrostack_testkit::Test;

use crate::support::{Case, Scratch, both, user};

pub fn tests() -> Vec<Test> {
    let cases: Vec<(&'static str, Case)> = vec![
        ("compose_transaction_commits_or_rolls_back", |s| Box::pin(transaction(s))),
        ("compose_child_rows_are_seen_through_their_parent", |s| Box::pin(child_through_parent(s))),
        ("compose_cascade_deletes_parent_and_children_or_nothing", |s| Box::pin(cascade(s))),
        ("compose_several_tables_in_one_transaction", |s| Box::pin(atomic_across_tables(s))),
        ("compose_concurrent_transactions_both_commit", |s| Box::pin(concurrent(s))),
    ];
    both(cases)
}

async fn create_tables(s: &Scratch) {
    let (int, json) = match s.dialect() {
        Dialect::Postgres => ("BIGINT", "JSONB"),
        Dialect::Sqlite => ("INTEGER", "TEXT"),
    };
    for ddl in [
        format!(
            "CREATE TABLE convs (id TEXT PRIMARY KEY, created {int} NOT NULL, title TEXT,
             owner_principal TEXT NOT NULL, access_attributes {json})"
        ),
        format!(
            "CREATE TABLE conv_items (conversation_id TEXT NOT NULL REFERENCES convs (id), id TEXT NOT NULL,
             created {int} NOT NULL, data TEXT, PRIMARY KEY (conversation_id, id))"
        ),
    ] {
        s.db.execute(Sql::new().push(&ddl)).await.unwrap();
    }
    if s.dialect() == Dialect::Sqlite {
        for ddl in ferrostack_authz::policy::sqlite_access_values_ddl("convs", "id", "TEXT", "created") {
            s.db.execute(Sql::new().push(&ddl)).await.unwrap();
        }
    }
}

/// Everyone reads; owners do everything.
fn shared_read() -> Vec<AccessRule> {
    vec![
        AccessRule::new(Effect::Permit, Scope::actions([Action::Read])),
        AccessRule::new(Effect::Permit, Scope::actions(Action::ALL)).when(vec![Condition::UserIsOwner]),
    ]
}

fn tables(s: &Scratch, policy: Vec<AccessRule>) -> (AuthorizedTable, ChildTable) {
    let convs = AuthorizedTable::new(s.db.clone(), "convs", "id", "created", policy).unwrap();
    let items = ChildTable::new(&convs, "conv_items", "conversation_id", "id", "created").unwrap();
    (convs, items)
}

fn conv(id: &str, created: i64) -> Vec<Value> {
    vec![Value::from(id), Value::from(created), Value::from("a title")]
}

fn item(id: &str, created: i64) -> Vec<Value> {
    vec![Value::from(id), Value::from(created), Value::from(format!("item {id}"))]
}

const CONV: [&str; 3] = ["id", "created", "title"];
const ITEM: [&str; 3] = ["id", "created", "data"];

async fn count(s: &Scratch, table: &str) -> i64 {
    let row = s.db.fetch_optional(Sql::new().push(&format!("SELECT COUNT(*) AS n FROM {table}"))).await.unwrap();
    row.unwrap().get::<i64>("n").unwrap()
}

async fn transaction(s: Scratch) {
    create_tables(&s).await;
    let (convs, _) = tables(&s, Vec::new());
    let alice = user("alice", &[]);
    // Dropped without commit: nothing, and the connection goes back clean (the next statements
    // on the pool run outside any transaction).
    {
        let mut tx = s.db.begin().await.unwrap();
        assert_eq!(convs.insert_in(&mut tx, Some(&alice), &CONV, vec![conv("c1", 1)]).await.unwrap(), 1);
        let seen = convs.get_in(&mut tx, Some(&alice), "id", "c1").await.unwrap();
        assert!(seen.is_some(), "the transaction sees its own write");
    }
    assert_eq!(count(&s, "convs").await, 0, "rolled back on drop");
    for _ in 0..3 {
        assert!(convs.get(Some(&alice), "id", "c1").await.unwrap().is_none());
    }
    let mut tx = s.db.begin().await.unwrap();
    convs.insert_in(&mut tx, Some(&alice), &CONV, vec![conv("c1", 1)]).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(count(&s, "convs").await, 1, "committed");
    // A failing statement inside: the caller's `?` drops the transaction, nothing lands.
    let mut tx = s.db.begin().await.unwrap();
    convs.insert_in(&mut tx, Some(&alice), &CONV, vec![conv("c2", 2)]).await.unwrap();
    let duplicate = convs.insert_in(&mut tx, Some(&alice), &CONV, vec![conv("c1", 3)]).await.unwrap_err();
    assert!(matches!(&duplicate, StoreError::Db(e) if e.is_unique_violation()), "{duplicate}");
    drop(tx);
    assert_eq!(count(&s, "convs").await, 1, "c2 rolled back with the failure");
}

async fn child_through_parent(s: Scratch) {
    create_tables(&s).await;
    let (convs, items) = tables(&s, shared_read());
    let (alice, bob) = (user("alice", &[]), user("bob", &[]));
    convs.insert(Some(&alice), &CONV, vec![conv("c1", 1), conv("c2", 2)]).await.unwrap();

    let mut tx = s.db.begin().await.unwrap();
    let added = items.insert_in(&mut tx, Some(&alice), "c1", &ITEM, vec![item("i1", 1), item("i2", 1), item("i3", 2)]);
    assert_eq!(added.await.unwrap(), 3);
    // Item ids are scoped to their conversation: the same id in another one is another row.
    assert_eq!(items.insert_in(&mut tx, Some(&alice), "c2", &ITEM, vec![item("i1", 5)]).await.unwrap(), 1);
    tx.commit().await.unwrap();

    // Bob may read alice's conversations (shared_read) but not change them: 403 on append.
    let mut tx = s.db.begin().await.unwrap();
    let refused = items.insert_in(&mut tx, Some(&bob), "c1", &ITEM, vec![item("i9", 9)]).await.unwrap_err();
    assert!(matches!(refused, StoreError::Forbidden { action: Action::Update, .. }), "{refused}");
    let missing = items.insert_in(&mut tx, Some(&alice), "nope", &ITEM, vec![item("i9", 9)]).await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound), "{missing}");
    drop(tx);

    let mut db = s.db.clone();
    let ids = |page: &ferrostack_authz::policy::Page| -> Vec<String> {
        page.rows.iter().map(|r| r.get::<String>("id").unwrap()).collect()
    };
    let page = items.list_in(&mut db, Some(&bob), "c1", "id", None, 2, Order::Asc).await.unwrap();
    assert_eq!((ids(&page), page.has_more), (vec!["i1".to_owned(), "i2".to_owned()], true), "(created, id) order");
    let page = items.list_in(&mut db, Some(&bob), "c1", "id", Some("i2"), 2, Order::Asc).await.unwrap();
    assert_eq!((ids(&page), page.has_more), (vec!["i3".to_owned()], false));
    let page = items.list_in(&mut db, Some(&bob), "c2", "id, data", None, 10, Order::Desc).await.unwrap();
    assert_eq!(page.rows[0].get::<String>("data").unwrap(), "item i1");
    let row = items.get_in(&mut db, Some(&bob), "data", "c2", "i1").await.unwrap().unwrap();
    assert_eq!(row.get::<String>("data").unwrap(), "item i1", "(c2, i1), not (c1, i1)");

    // Under an owner-only policy bob sees neither the conversation nor its items: 404, not 403.
    let (_, private) = tables(
        &s,
        vec![AccessRule::new(Effect::Permit, Scope::actions(Action::ALL)).when(vec![Condition::UserIsOwner])],
    );
    let hidden = private.list_in(&mut db, Some(&bob), "c1", "id", None, 10, Order::Asc).await.unwrap_err();
    assert!(matches!(hidden, StoreError::NotFound), "{hidden}");
    assert!(private.get_in(&mut db, Some(&bob), "id", "c1", "i1").await.unwrap().is_none());
    assert_eq!(private.delete_where_in(&mut db, Some(&bob), "c1", Sql::new()).await.unwrap(), 0, "bob deletes nothing");
    assert_eq!(
        private.delete_where_in(&mut db, Some(&alice), "c1", Sql::new().push("\"id\" = ").bind("i3")).await.unwrap(),
        1
    );

    // A composite key on an authorized table: both parts must match.
    let keyed = AuthorizedTable::with_key(s.db.clone(), "convs", &["id", "title"], "created", Vec::new()).unwrap();
    assert!(
        keyed.get(Some(&alice), "id", Key(vec![Value::from("c1"), Value::from("a title")])).await.unwrap().is_some()
    );
    assert!(keyed.get(Some(&alice), "id", Key(vec![Value::from("c1"), Value::from("other")])).await.unwrap().is_none());
    let arity = keyed.get(Some(&alice), "id", "c1").await.unwrap_err();
    assert!(matches!(arity, StoreError::KeyArity { expected: 2, got: 1, .. }), "{arity}");
}

async fn cascade(s: Scratch) {
    create_tables(&s).await;
    let (convs, items) = tables(&s, shared_read());
    let (alice, bob) = (user("alice", &[]), user("bob", &[]));
    convs.insert(Some(&alice), &CONV, vec![conv("c1", 1), conv("c2", 2)]).await.unwrap();
    let mut tx = s.db.begin().await.unwrap();
    items.insert_in(&mut tx, Some(&alice), "c1", &ITEM, vec![item("i1", 1), item("i2", 2)]).await.unwrap();
    items.insert_in(&mut tx, Some(&alice), "c2", &ITEM, vec![item("i1", 1)]).await.unwrap();
    tx.commit().await.unwrap();

    let refused = items.delete_parent_cascade(Some(&bob), "c1").await.unwrap_err();
    assert!(matches!(refused, StoreError::Forbidden { action: Action::Delete, .. }), "{refused}");
    let missing = items.delete_parent_cascade(Some(&alice), "nope").await.unwrap_err();
    assert!(matches!(missing, StoreError::NotFound), "{missing}");
    assert_eq!((count(&s, "convs").await, count(&s, "conv_items").await), (2, 3), "nothing deleted");

    items.delete_parent_cascade(Some(&alice), "c1").await.unwrap();
    assert_eq!((count(&s, "convs").await, count(&s, "conv_items").await), (1, 1), "c1 and its two items");
    assert!(items.get_in(&mut s.db.clone(), Some(&alice), "id", "c2", "i1").await.unwrap().is_some());
}

async fn atomic_across_tables(s: Scratch) {
    create_tables(&s).await;
    let (convs, items) = tables(&s, shared_read());
    let alice = user("alice", &[]);
    convs.insert(Some(&alice), &CONV, vec![conv("c1", 1)]).await.unwrap();
    // Append an item and retitle the conversation together; the second item collides, so
    // neither the first item nor the new title land.
    let mut tx = s.db.begin().await.unwrap();
    items.insert_in(&mut tx, Some(&alice), "c1", &ITEM, vec![item("i1", 1)]).await.unwrap();
    convs.update_one_in(&mut tx, Some(&alice), "c1", vec![("title", Value::from("new"))]).await.unwrap();
    let collision = items.insert_in(&mut tx, Some(&alice), "c1", &ITEM, vec![item("i1", 2)]).await;
    assert!(collision.is_err());
    drop(tx);
    let title = convs.get(Some(&alice), "title", "c1").await.unwrap().unwrap().get::<String>("title").unwrap();
    assert_eq!((title.as_str(), count(&s, "conv_items").await), ("a title", 0));
    // The same, committed.
    let mut tx = s.db.begin().await.unwrap();
    items.insert_in(&mut tx, Some(&alice), "c1", &ITEM, vec![item("i1", 1)]).await.unwrap();
    convs.update_one_in(&mut tx, Some(&alice), "c1", vec![("title", Value::from("new"))]).await.unwrap();
    tx.commit().await.unwrap();
    let title = convs.get(Some(&alice), "title", "c1").await.unwrap().unwrap().get::<String>("title").unwrap();
    assert_eq!((title.as_str(), count(&s, "conv_items").await), ("new", 1));
}

/// Two transactions at once: both commit. On SQLite the second waits for the first's writer turn
/// (held until the first committed), so it sees the first's row.
async fn concurrent(s: Scratch) {
    create_tables(&s).await;
    let (convs, _) = tables(&s, Vec::new());
    let alice = user("alice", &[]);
    let mut first = s.db.begin().await.unwrap();
    convs.insert_in(&mut first, Some(&alice), &CONV, vec![conv("c1", 1)]).await.unwrap();
    let second = {
        let (convs, alice) = (convs.clone(), alice.clone());
        ferrostack_testkit::spawn(async move {
            let mut tx = convs.db().begin().await.unwrap();
            convs.insert_in(&mut tx, Some(&alice), &CONV, vec![conv("c2", 2)]).await.unwrap();
            let sees_c1 = convs.get_in(&mut tx, Some(&alice), "id", "c1").await.unwrap().is_some();
            tx.commit().await.unwrap();
            sees_c1
        })
    };
    first.commit().await.unwrap();
    let sees_c1 = second.await.unwrap();
    assert_eq!(count(&s, "convs").await, 2, "both committed");
    if s.dialect() == Dialect::Sqlite {
        assert!(sees_c1, "on SQLite the second began after the first committed");
    }
}
