//! ferrostack's conversations store: OpenAI's Conversations API (conversations and their items)
//! under the access policy, on PostgreSQL and SQLite.
//!
//! - Conversations are an [`AuthorizedTable`] (`openai_conversations`): inserts stamp the caller,
//!   every read, update and delete carries the compiled policy predicate.
//! - Items are a [`ChildTable`] of it (`conversation_items`, key `(conversation_id, id)`): an
//!   item is visible exactly when its conversation is; adding or deleting one is changing the
//!   conversation (`update`). Items are listed on `(created_at, sequence)`, `sequence` assigned
//!   by the database in insertion order, so items added together keep their order.
//! - Creating a conversation with its first items, adding items and deleting a conversation with
//!   its items are each one transaction.
//!
//! The API the Responses store calls: [`ConversationStore::create`],
//! [`ConversationStore::append_in`] (several items, in order, inside the caller's transaction, so
//! a response and the items it appends commit together), [`ConversationStore::add_items`] (the
//! same in a transaction of its own) and [`ConversationStore::all_items`] (a conversation's items
//! in order, for a caller).
//!
//! The tables are created by the migrations `V4__conversations`.

mod error;
pub mod validate;

pub use error::Error;

use ferrostack_authz::policy::{ListPage, Order};
use ferrostack_authz::{AuthorizedTable, ChildTable, StoreError, User};
use ferrostack_catalog::{Db, Row, Sql, Tx, Value, random_id};
use ferrostack_config::{AccessRule, Action};
use serde::Serialize;
use serde_json::{Map, Value as Json};

/// The conversations table the migrations create.
pub const TABLE: &str = ferrostack_config::tables::CONVERSATIONS;
/// The items table the migrations create.
pub const ITEMS_TABLE: &str = ferrostack_config::tables::CONVERSATION_ITEMS;
/// Default page size of [`ConversationStore::list_items`].
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;

const COLUMNS: &str = "id, created_at, metadata";
const ITEM_COLUMNS: &str = "id, item_data";

/// A conversation as the API returns it: `{id, object: "conversation", created_at, metadata}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    /// `conv_` + 48 lowercase hex.
    pub id: String,
    /// Always `"conversation"`.
    pub object: &'static str,
    /// Unix seconds.
    pub created_at: i64,
    /// OpenAI's metadata map (`{}` when none was given).
    pub metadata: Map<String, Json>,
}

impl Conversation {
    fn from_row(row: &Row) -> Result<Self, Error> {
        let metadata: Option<Json> = row.get("metadata")?;
        Ok(Self {
            id: row.get("id")?,
            object: "conversation",
            created_at: row.get("created_at")?,
            metadata: match metadata {
                Some(Json::Object(m)) => m,
                _ => Map::new(),
            },
        })
    }
}

/// One page of items (`{object: "list", data, first_id, last_id, has_more}`).
pub type ItemPage = ListPage<Json>;

/// Parameters of a list of items.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemsParams {
    /// Id of the last item of the previous page; must be an item of the conversation.
    pub after: Option<String>,
    /// Page size, 1..=100; default 20.
    pub limit: Option<u32>,
    /// Order on (created_at, sequence); default newest first.
    pub order: Order,
}

/// The conversations store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ConversationStore {
    conversations: AuthorizedTable,
    items: ChildTable,
}

fn store_error(e: StoreError, id: &str, action: &'static str) -> Error {
    match e {
        StoreError::NotFound => Error::NotFound { id: id.to_owned() },
        StoreError::Forbidden { .. } => Error::Forbidden { id: id.to_owned(), action },
        other => Error::Store(other),
    }
}

fn now_seconds() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl ConversationStore {
    /// The store on `db` under `policy` (`server.auth.access_policy`; empty: the default policy).
    pub fn new(db: Db, policy: impl Into<std::sync::Arc<[AccessRule]>>) -> Result<Self, Error> {
        let conversations = AuthorizedTable::new(db, TABLE, "id", "created_at", policy)
            .map_err(|e| Error::Store(StoreError::Compile(e)))?;
        let items = ChildTable::new(&conversations, ITEMS_TABLE, "conversation_id", "id", "created_at")?
            .with_tiebreak("sequence");
        Ok(Self { conversations, items })
    }

    /// The database handle (to begin a transaction that [`ConversationStore::append_in`] joins).
    pub fn db(&self) -> &Db {
        self.conversations.db()
    }

    /// Create a conversation owned by the caller, with `metadata` and up to 20 first `items`
    /// (validated; ids generated where not given), in one transaction. The answer does not
    /// include the items (OpenAI's shape).
    pub async fn create(
        &self,
        caller: Option<&User>,
        metadata: Option<&Json>,
        items: &[Json],
    ) -> Result<Conversation, Error> {
        let metadata = metadata.filter(|m| !m.is_null()).map(validate::metadata).transpose()?;
        let items = validate::items(items, 0)?;
        let id = random_id("conv_", 48);
        let created_at = now_seconds();
        let mut tx = self.db().begin().await?;
        let stored_metadata = metadata.clone().map_or(Value::Null, |m| Value::Json(Json::Object(m)));
        self.conversations
            .insert_in(
                &mut tx,
                caller,
                &["id", "created_at", "metadata"],
                vec![vec![Value::from(id.as_str()), Value::Int(created_at), stored_metadata]],
            )
            .await?;
        if !items.is_empty() {
            self.insert_items(&mut tx, caller, &id, items, created_at).await?;
        }
        tx.commit().await?;
        Ok(Conversation { id, object: "conversation", created_at, metadata: metadata.unwrap_or_default() })
    }

    /// The conversation, if it exists and the caller may read it ([`Error::NotFound`] otherwise).
    pub async fn get(&self, caller: Option<&User>, id: &str) -> Result<Conversation, Error> {
        validate::conversation_id(id)?;
        match self.conversations.get_in(&mut self.db().clone(), caller, COLUMNS, id).await? {
            Some(row) => Conversation::from_row(&row),
            None => Err(Error::NotFound { id: id.to_owned() }),
        }
    }

    /// Replace the conversation's metadata (not merged, as OpenAI's update); returns the updated
    /// conversation. 404 / 403 as [`Error::NotFound`] / [`Error::Forbidden`].
    pub async fn update_metadata(
        &self,
        caller: Option<&User>,
        id: &str,
        metadata: &Json,
    ) -> Result<Conversation, Error> {
        validate::conversation_id(id)?;
        let metadata = validate::metadata(metadata)?;
        self.conversations
            .update_one(caller, id, vec![("metadata", Value::Json(Json::Object(metadata)))])
            .await
            .map_err(|e| store_error(e, id, "update"))?;
        self.get(caller, id).await
    }

    /// Delete the conversation and its items, in one transaction.
    pub async fn delete(&self, caller: Option<&User>, id: &str) -> Result<(), Error> {
        validate::conversation_id(id)?;
        self.items.delete_parent_cascade(caller, id).await.map_err(|e| store_error(e, id, "delete"))
    }

    /// Add up to 20 items to the conversation, in order, in one transaction; returns them as
    /// stored (with their ids).
    pub async fn add_items(&self, caller: Option<&User>, id: &str, items: &[Json]) -> Result<Vec<Json>, Error> {
        let mut tx = self.db().begin().await?;
        let stored = self.append_in(&mut tx, caller, id, items).await?;
        tx.commit().await?;
        Ok(stored)
    }

    /// [`ConversationStore::add_items`] inside the caller's transaction `tx` (begun with
    /// [`ConversationStore::db`]`().begin()`): the items are appended after every item already
    /// there, in the order given, and commit (or roll back) with whatever else `tx` does.
    pub async fn append_in(
        &self,
        tx: &mut Tx,
        caller: Option<&User>,
        id: &str,
        items: &[Json],
    ) -> Result<Vec<Json>, Error> {
        validate::conversation_id(id)?;
        let items = validate::items(items, 1)?;
        // 404 / 403 on the conversation before anything else is said about the items.
        self.items.parent().check_in(tx, caller, id, Action::Update).await.map_err(|e| store_error(e, id, "update"))?;
        self.insert_items(tx, caller, id, items, now_seconds()).await
    }

    async fn insert_items(
        &self,
        tx: &mut Tx,
        caller: Option<&User>,
        id: &str,
        items: Vec<Json>,
        created_at: i64,
    ) -> Result<Vec<Json>, Error> {
        let given: Vec<String> =
            items.iter().filter_map(|i| i.get("id").and_then(Json::as_str).map(str::to_owned)).collect();
        if !given.is_empty() {
            let filter = Sql::new().push("id IN (").push_bind_list(given).push(")");
            let sql = self.items.select_sql(caller, id, "id", filter, Sql::new().push("LIMIT 1"))?;
            if let Some(row) = tx.fetch_all(sql).await?.first() {
                return Err(Error::ItemExists { conversation: id.to_owned(), item: row.get("id")? });
            }
        }
        let mut rows = Vec::with_capacity(items.len());
        let mut stored = Vec::with_capacity(items.len());
        for mut item in items {
            if item.get("id").is_none() {
                let kind = item.get("type").and_then(Json::as_str).unwrap_or("message");
                item["id"] = Json::from(random_id(validate::id_prefix(kind), 48));
            }
            let item_id = item.get("id").and_then(Json::as_str).unwrap_or_default().to_owned();
            rows.push(vec![Value::from(item_id.as_str()), Value::Int(created_at), Value::Json(item.clone())]);
            stored.push(item);
        }
        self.items
            .insert_in(tx, caller, id, &["id", "created_at", "item_data"], rows)
            .await
            .map_err(|e| store_error(e, id, "update"))?;
        Ok(stored)
    }

    /// One page of the conversation's items on (created_at, sequence). [`Error::NotFound`] when
    /// the conversation is missing or not readable; [`Error::AfterNotFound`] for an `after` that
    /// is not one of its items; `limit` outside 1..=100 is [`Error::Invalid`].
    pub async fn list_items(&self, caller: Option<&User>, id: &str, params: ItemsParams) -> Result<ItemPage, Error> {
        validate::conversation_id(id)?;
        let limit = match params.limit {
            None => DEFAULT_LIMIT,
            Some(n) if (1..=MAX_LIMIT).contains(&n) => n,
            Some(n) => {
                return Err(Error::invalid("limit", format!("limit must be between 1 and {MAX_LIMIT}, got {n}")));
            }
        };
        let mut db = self.db().clone();
        self.items
            .parent()
            .check_in(&mut db, caller, id, Action::Read)
            .await
            .map_err(|e| store_error(e, id, "read"))?;
        if let Some(after) = &params.after
            && self.items.get_in(&mut db, caller, "id", id, after).await?.is_none()
        {
            return Err(Error::AfterNotFound { id: after.clone(), conversation: id.to_owned() });
        }
        let page = self
            .items
            .list_in(&mut db, caller, id, ITEM_COLUMNS, params.after.as_deref(), limit, params.order)
            .await
            .map_err(|e| store_error(e, id, "read"))?;
        let data = page.rows.iter().map(|r| r.get::<Json>("item_data")).collect::<Result<Vec<_>, _>>()?;
        Ok(ItemPage::new(data, page.has_more, |i| i.get("id").and_then(Json::as_str).unwrap_or_default()))
    }

    /// Every item of the conversation, oldest first (what a next Responses turn reads).
    pub async fn all_items(&self, caller: Option<&User>, id: &str) -> Result<Vec<Json>, Error> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let params = ItemsParams { after, limit: Some(MAX_LIMIT), order: Order::Asc };
            let page = self.list_items(caller, id, params).await?;
            after = (!page.last_id.is_empty()).then(|| page.last_id.clone());
            all.extend(page.data);
            if !page.has_more {
                return Ok(all);
            }
        }
    }

    /// One item ([`Error::ItemNotFound`] when it is not in that conversation, or the
    /// conversation is not readable).
    pub async fn get_item(&self, caller: Option<&User>, id: &str, item_id: &str) -> Result<Json, Error> {
        validate::conversation_id(id)?;
        let not_found = || Error::ItemNotFound { conversation: id.to_owned(), item: item_id.to_owned() };
        match self.items.get_in(&mut self.db().clone(), caller, ITEM_COLUMNS, id, item_id).await? {
            Some(row) => Ok(row.get("item_data")?),
            None => Err(not_found()),
        }
    }

    /// Delete one item: 404 when the conversation or the item is not there for the caller, 403
    /// when the caller may read the conversation but not change it.
    pub async fn delete_item(&self, caller: Option<&User>, id: &str, item_id: &str) -> Result<(), Error> {
        validate::conversation_id(id)?;
        let mut db = self.db().clone();
        self.items
            .parent()
            .check_in(&mut db, caller, id, Action::Read)
            .await
            .map_err(|e| store_error(e, id, "read"))?;
        if self.items.get_in(&mut db, caller, "id", id, item_id).await?.is_none() {
            return Err(Error::ItemNotFound { conversation: id.to_owned(), item: item_id.to_owned() });
        }
        self.items
            .parent()
            .check_in(&mut db, caller, id, Action::Update)
            .await
            .map_err(|e| store_error(e, id, "update"))?;
        let filter = Sql::new().push("id = ").bind(item_id);
        if self.items.delete_where_in(&mut db, caller, id, filter).await? == 0 {
            return Err(Error::ItemNotFound { conversation: id.to_owned(), item: item_id.to_owned() });
        }
        Ok(())
    }
}
