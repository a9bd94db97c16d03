//! The responses store: one row per turn in `openai_responses`, under the access policy.
//!
//! Every statement goes through the [`AuthorizedTable`]: inserts stamp the caller, reads and
//! deletes carry the compiled predicate. Reading a chain is one recursive query that walks
//! `previous_response_id` along the primary key with the read predicate applied at every step,
//! so an ancestor the caller may not read ends the chain there: it never becomes context.

use ferrostack_authz::policy::{ListPage, Order};
use ferrostack_authz::{AuthorizedTable, StoreError, User};
use ferrostack_catalog::{Db, Row, Sql, Tx, Value};
use ferrostack_config::{AccessRule, Action};
use ferrostack_conversations::ConversationStore;
use ferrostack_conversations::validate::MAX_ITEMS_PER_CALL;
use serde_json::Value as Json;

use crate::Error;

/// The table the migrations create (`V5__responses`).
pub const TABLE: &str = ferrostack_config::tables::RESPONSES;
/// Default page size of the list of responses.
pub const DEFAULT_LIMIT: u32 = 50;
/// Default page size of a response's input items.
pub const DEFAULT_ITEMS_LIMIT: u32 = 20;
/// Largest page size of both lists.
pub const MAX_LIMIT: u32 = 100;
/// Most turns a chain is read back through (a guard: chains are acyclic by construction, since a
/// response can only point at one that existed before it).
pub const MAX_CHAIN_TURNS: u32 = 10_000;

const COLUMNS: &str = "id, created_at, model, previous_response_id, response_object, input_items";
/// Alias of the table inside the chain query.
const ALIAS: &str = "r";

/// A response as stored: the response object as answered, and the input items of its turn.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// The response object (`{id, object: "response", output, usage, ...}`).
    pub response: Json,
    /// The turn's input items, in the order given, each with its id.
    pub input: Vec<Json>,
}

impl StoredResponse {
    fn from_row(row: &Row) -> Result<Self, Error> {
        let response: Json = row.get("response_object")?;
        let input = match row.get::<Json>("input_items")? {
            Json::Array(items) => items,
            _ => Vec::new(),
        };
        Ok(Self { response, input })
    }

    /// The response's id.
    pub fn id(&self) -> &str {
        self.response.get("id").and_then(Json::as_str).unwrap_or_default()
    }

    /// The output items.
    pub fn output(&self) -> &[Json] {
        self.response.get("output").and_then(Json::as_array).map_or(&[], Vec::as_slice)
    }
}

/// A list of input items asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputItemsParams {
    /// Start after this item (in the listed order).
    pub after: Option<String>,
    /// Stop before this item (in the listed order).
    pub before: Option<String>,
    /// Page size, 1..=100.
    pub limit: u32,
    /// Stored order (`Asc`) or its reverse (`Desc`, the default).
    pub order: Order,
    /// `include` values: `message.input_image.image_url` keeps images' URLs, which are left out
    /// otherwise.
    pub include: Vec<String>,
}

/// The `include` values accepted on input items (OpenAI's list); only
/// `message.input_image.image_url` changes what ferrostack answers.
pub const INCLUDE_VALUES: &[&str] = &[
    "message.input_image.image_url",
    "message.output_text.logprobs",
    "file_search_call.results",
    "web_search_call.results",
    "web_search_call.action.sources",
    "computer_call_output.output.image_url",
    "code_interpreter_call.outputs",
    "reasoning.encrypted_content",
];

/// The responses store. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ResponseStore {
    table: AuthorizedTable,
    conversations: Option<ConversationStore>,
    /// Largest turn stored, in bytes (`max_row_bytes` of `storage.stores.responses`).
    max_row_bytes: usize,
}

/// Bytes of `items` as a JSON array.
fn items_size(items: &[Json]) -> usize {
    2 + items.iter().map(|i| ferrostack_catalog::json::json_size(i) + 1).sum::<usize>()
}

fn store_error(e: StoreError, id: &str, action: &'static str) -> Error {
    match e {
        StoreError::NotFound => Error::NotFound { id: id.to_owned(), param: None },
        StoreError::Forbidden { .. } => Error::Forbidden { id: id.to_owned(), action },
        other => Error::Store(other),
    }
}

impl ResponseStore {
    /// The store on `db` under `policy`; `conversations` (the conversations store, when on) is
    /// where the `conversation` parameter's items are read and appended. Both must share one
    /// backend ([`Error::SeparateBackends`]), so a response and its items commit together.
    pub fn new(
        db: Db,
        policy: impl Into<std::sync::Arc<[AccessRule]>>,
        conversations: Option<ConversationStore>,
    ) -> Result<Self, Error> {
        if let Some(c) = &conversations
            && !c.db().shares_pool_with(&db)
        {
            return Err(Error::SeparateBackends);
        }
        let table = AuthorizedTable::new(db, TABLE, "id", "created_at", policy)
            .map_err(|e| Error::Store(StoreError::Compile(e)))?
            .with_tiebreak("sequence");
        Ok(Self { table, conversations, max_row_bytes: ferrostack_config::default_max_row_bytes() })
    }

    /// The largest turn stored (`max_row_bytes`; default 16 MiB): its input items and its
    /// response object, as JSON. A turn appended to a conversation counts the same way.
    #[must_use]
    pub fn with_max_row_bytes(mut self, max_row_bytes: usize) -> Self {
        self.max_row_bytes = max_row_bytes.max(1);
        self
    }

    /// `max_row_bytes`.
    pub fn max_row_bytes(&self) -> usize {
        self.max_row_bytes
    }

    /// Before the upstream is called: refuse a turn whose input items and response fields
    /// (`skeleton`: the response object before any output) are already over `max_row_bytes`
    /// ([`Error::RequestTooLarge`]), so no answer is produced, and billed, that cannot be stored.
    pub fn check_request_size(&self, input: &[Json], skeleton: &Json) -> Result<(), Error> {
        let size = items_size(input) + ferrostack_catalog::json::json_size(skeleton);
        if size > self.max_row_bytes {
            return Err(Error::RequestTooLarge { size, limit: self.max_row_bytes });
        }
        Ok(())
    }

    /// The conversations store the `conversation` parameter uses, when on.
    pub fn conversations(&self) -> Option<&ConversationStore> {
        self.conversations.as_ref()
    }

    /// Store one turn, in one transaction: the response row (unless `store` is false), and
    /// when `conversation` is given, the turn's input then output items appended to it. Nothing
    /// is written when any part fails (a conversation deleted meanwhile, say).
    pub async fn save(
        &self,
        caller: Option<&User>,
        stored: &StoredResponse,
        store: bool,
        conversation: Option<&str>,
    ) -> Result<(), Error> {
        let size = items_size(&stored.input) + ferrostack_catalog::json::json_size(&stored.response);
        if size > self.max_row_bytes {
            return Err(Error::TooLarge { id: stored.id().to_owned(), size, limit: self.max_row_bytes });
        }
        let mut tx = self.table.db().begin().await?;
        if store {
            self.insert_in(&mut tx, caller, stored).await?;
        }
        if let Some(conversation) = conversation {
            let conversations = self.conversations.as_ref().ok_or_else(|| {
                Error::invalid("conversation", "conversations are off: storage.stores.conversations is null")
            })?;
            let items: Vec<Json> = stored.input.iter().chain(stored.output()).cloned().collect();
            for batch in items.chunks(MAX_ITEMS_PER_CALL) {
                conversations.append_in(&mut tx, caller, conversation, batch).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn insert_in(&self, tx: &mut Tx, caller: Option<&User>, stored: &StoredResponse) -> Result<(), Error> {
        let r = &stored.response;
        let text = |key: &str| r.get(key).and_then(Json::as_str).map(str::to_owned);
        let row = vec![
            Value::from(stored.id()),
            Value::Int(r.get("created_at").and_then(Json::as_i64).unwrap_or_default()),
            Value::from(text("model").unwrap_or_default()),
            Value::from(text("previous_response_id")),
            Value::Json(r.clone()),
            Value::Json(Json::Array(stored.input.clone())),
        ];
        let columns = ["id", "created_at", "model", "previous_response_id", "response_object", "input_items"];
        self.table.insert_in(tx, caller, &columns, vec![row]).await?;
        Ok(())
    }

    /// The response, if it exists and the caller may read it.
    pub async fn get(&self, caller: Option<&User>, id: &str) -> Result<StoredResponse, Error> {
        match self.table.get(caller, COLUMNS, id).await? {
            Some(row) => StoredResponse::from_row(&row),
            None => Err(Error::NotFound { id: id.to_owned(), param: None }),
        }
    }

    /// Delete the response ([`Error::NotFound`] unless readable, [`Error::Forbidden`] when
    /// readable but not deletable). The turns that continued it stay; their chain ends here.
    pub async fn delete(&self, caller: Option<&User>, id: &str) -> Result<(), Error> {
        self.table.delete_one(caller, id).await.map_err(|e| store_error(e, id, "delete"))
    }

    /// One page of the caller's responses on (created_at, sequence): insertion order, ties never
    /// skipped; each with its `input`.
    pub async fn list(
        &self,
        caller: Option<&User>,
        after: Option<&str>,
        limit: u32,
        order: Order,
        model: Option<&str>,
    ) -> Result<ListPage<Json>, Error> {
        if let Some(after) = after
            && self.table.get(caller, "id", after).await?.is_none()
        {
            return Err(Error::AfterNotFound { id: after.to_owned() });
        }
        let filter = match model {
            Some(m) => Sql::new().push("model = ").bind(m),
            None => Sql::new(),
        };
        let page = self.table.list(caller, COLUMNS, filter, after, limit.clamp(1, MAX_LIMIT), order).await?;
        let mut data = Vec::with_capacity(page.rows.len());
        for row in &page.rows {
            let stored = StoredResponse::from_row(row)?;
            let mut response = stored.response;
            if let Some(map) = response.as_object_mut() {
                map.insert("input".to_owned(), Json::Array(stored.input));
            }
            data.push(response);
        }
        Ok(ListPage::new(data, page.has_more, |r| r.get("id").and_then(Json::as_str).unwrap_or_default()))
    }

    /// The chain ending at `id`, oldest turn first, read in one recursive query: `id` itself,
    /// then each `previous_response_id` in turn, as long as the caller may read it (the read
    /// predicate is part of every step). [`Error::NotFound`] (naming `previous_response_id`)
    /// when `id` itself is missing or not readable.
    pub async fn chain(&self, caller: Option<&User>, id: &str) -> Result<Vec<StoredResponse>, Error> {
        let predicate = |table: &AuthorizedTable| table.predicate(Action::Read, caller, Some(ALIAS));
        let t = ferrostack_catalog::sql::dialect::quote_ident(TABLE);
        let sql = Sql::new()
            .push("WITH RECURSIVE chain (id, previous_response_id, depth) AS (")
            .push(&format!(
                "SELECT {ALIAS}.id, {ALIAS}.previous_response_id, 0 FROM {t} AS {ALIAS} WHERE {ALIAS}.id = "
            ))
            .bind(id)
            .push(" AND ")
            .push_sql(predicate(&self.table).map_err(StoreError::Compile)?)
            .push(&format!(
                " UNION ALL SELECT {ALIAS}.id, {ALIAS}.previous_response_id, chain.depth + 1 FROM {t} AS {ALIAS} \
                 JOIN chain ON {ALIAS}.id = chain.previous_response_id WHERE chain.depth < {MAX_CHAIN_TURNS} AND "
            ))
            .push_sql(predicate(&self.table).map_err(StoreError::Compile)?)
            .push(&format!(
                ") SELECT {ALIAS}.id, {ALIAS}.created_at, {ALIAS}.model, {ALIAS}.previous_response_id, \
                 {ALIAS}.response_object, {ALIAS}.input_items FROM chain JOIN {t} AS {ALIAS} ON {ALIAS}.id = chain.id \
                 ORDER BY chain.depth DESC"
            ));
        let rows = self.table.db().fetch_all(sql).await?;
        if rows.is_empty() {
            return Err(Error::NotFound { id: id.to_owned(), param: Some("previous_response_id") });
        }
        rows.iter().map(StoredResponse::from_row).collect()
    }

    /// One page of the response's input items.
    pub async fn input_items(
        &self,
        caller: Option<&User>,
        id: &str,
        params: InputItemsParams,
    ) -> Result<ListPage<Json>, Error> {
        if params.after.is_some() && params.before.is_some() {
            return Err(Error::invalid("before", "after and before cannot be given together"));
        }
        for value in &params.include {
            if !INCLUDE_VALUES.contains(&value.as_str()) {
                return Err(Error::invalid(
                    "include",
                    format!("include value {value:?} is not one of {}", INCLUDE_VALUES.join(", ")),
                ));
            }
        }
        let stored = self.get(caller, id).await?;
        let mut items = stored.input;
        if params.order == Order::Desc {
            items.reverse();
        }
        let position = |cursor: &str, param: &'static str| {
            items
                .iter()
                .position(|i| i.get("id").and_then(Json::as_str) == Some(cursor))
                .ok_or_else(|| Error::InputItemNotFound { item: cursor.to_owned(), response: id.to_owned(), param })
        };
        let (start, end) = match (&params.after, &params.before) {
            (Some(after), _) => (position(after, "after")? + 1, items.len()),
            (None, Some(before)) => (0, position(before, "before")?),
            (None, None) => (0, items.len()),
        };
        let limit = params.limit.clamp(1, MAX_LIMIT) as usize;
        let window = &items[start..end];
        let has_more = window.len() > limit;
        let keep_images = params.include.iter().any(|v| v == "message.input_image.image_url");
        let data: Vec<Json> = window.iter().take(limit).map(|i| public_item(i, keep_images)).collect();
        Ok(ListPage::new(data, has_more, |i| i.get("id").and_then(Json::as_str).unwrap_or_default()))
    }
}

/// An input item as listed: `input_image` parts lose their `image_url` unless asked for.
fn public_item(item: &Json, keep_images: bool) -> Json {
    let mut item = item.clone();
    if keep_images {
        return item;
    }
    if let Some(parts) = item.get_mut("content").and_then(Json::as_array_mut) {
        for part in parts {
            if part.get("type").and_then(Json::as_str) == Some("input_image")
                && let Some(map) = part.as_object_mut()
            {
                map.remove("image_url");
            }
        }
    }
    item
}
