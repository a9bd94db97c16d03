//! The read API: list, get, messages, update metadata, delete. Every statement goes through the
//! [`AuthorizedTable`](ferrostack_authz::AuthorizedTable), so the caller's access policy is part
//! of the SQL and a row the caller may not read does not exist for them.

use ferrostack_authz::{StoreError, User};
use ferrostack_catalog::sql::dialect;
use ferrostack_catalog::{Sql, Value};
use serde_json::{Map, Value as Json, json};

use crate::record::{SELECT_COLUMNS, StoredCompletion};
use crate::{Error, InferenceStore, TABLE};

pub use ferrostack_authz::policy::Order;

/// Default page size of [`InferenceStore::list`] and [`InferenceStore::messages`].
pub const DEFAULT_LIMIT: u32 = 20;
/// Largest page size.
pub const MAX_LIMIT: u32 = 100;

/// Parameters of `GET /v1/chat/completions`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    /// Id of the last completion of the previous page; must be one the caller can see.
    pub after: Option<String>,
    /// Page size, 1..=100; default 20.
    pub limit: Option<u32>,
    /// Only completions of this model (exact).
    pub model: Option<String>,
    /// Order on (created, id); default newest first.
    pub order: Order,
    /// `metadata[key]=value` filters; all must match.
    pub metadata: Vec<(String, String)>,
}

/// One page of completions (`{object: "list", data, first_id, last_id, has_more}`).
pub type ListPage = ferrostack_authz::policy::ListPage<StoredCompletion>;

/// Parameters of `GET /v1/chat/completions/{id}/messages`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessagesParams {
    /// Id of the last message of the previous page (`<completion_id>-<n>`).
    pub after: Option<String>,
    /// Page size, 1..=100; default 20.
    pub limit: Option<u32>,
    /// Default oldest first (`asc`), unlike the completion list.
    pub order: Option<Order>,
}

/// One page of messages (`{object: "list", data, first_id, last_id, has_more}`).
pub type MessagesPage = ferrostack_authz::policy::ListPage<Json>;

fn limit(given: Option<u32>) -> Result<u32, Error> {
    match given {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(n) => {
            Err(Error::InvalidParam { param: "limit", message: format!("must be between 1 and {MAX_LIMIT}, got {n}") })
        }
    }
}

fn store_error(e: StoreError, id: &str, action: &'static str) -> Error {
    match e {
        StoreError::NotFound => Error::NotFound { id: id.to_owned() },
        StoreError::Forbidden { .. } => Error::Forbidden { id: id.to_owned(), action },
        other => Error::Store(other),
    }
}

impl InferenceStore {
    /// The caller's completions, one page, ordered by (created, id): ties on `created` are
    /// ordered by id and never skipped. `after` must be a completion the caller can see
    /// ([`Error::AfterNotFound`] otherwise).
    pub async fn list(&self, caller: Option<&User>, params: ListParams) -> Result<ListPage, Error> {
        let limit = limit(params.limit)?;
        let d = self.table.db().dialect();
        let mut filter = Sql::new();
        let and = |sql: Sql, part: Sql| if sql.is_empty() { part } else { sql.push(" AND ").push_sql(part) };
        if let Some(model) = params.model {
            filter = and(filter, Sql::new().push("model = ").bind(model));
        }
        for (key, value) in params.metadata {
            filter = and(filter, dialect::json_text(d, "metadata", &key).push(" = ").bind(value));
        }
        if let Some(after) = &params.after
            && self.table.get(caller, "id", after).await?.is_none()
        {
            return Err(Error::AfterNotFound { id: after.clone(), table: TABLE });
        }
        let page =
            self.table.list(caller, SELECT_COLUMNS, filter, params.after.as_deref(), limit, params.order).await?;
        let data = page.rows.iter().map(StoredCompletion::from_row).collect::<Result<Vec<_>, _>>()?;
        Ok(ListPage::new(data, page.has_more, |c| &c.id))
    }

    /// The completion, if it exists and the caller may read it.
    pub async fn get(&self, caller: Option<&User>, id: &str) -> Result<Option<StoredCompletion>, Error> {
        match self.table.get(caller, SELECT_COLUMNS, id).await? {
            Some(row) => Ok(Some(StoredCompletion::from_row(&row)?)),
            None => Ok(None),
        }
    }

    /// The completion's messages: its input messages, then the message of each choice, ids
    /// `<completion_id>-<n>` numbered from 0 across both. [`Error::NotFound`] when the
    /// completion is missing or not readable; [`Error::CursorNotFound`] for an unknown `after`.
    pub async fn messages(
        &self,
        caller: Option<&User>,
        id: &str,
        params: MessagesParams,
    ) -> Result<MessagesPage, Error> {
        let limit = limit(params.limit)? as usize;
        let completion = self.get(caller, id).await?.ok_or_else(|| Error::NotFound { id: id.to_owned() })?;
        let mut messages = flatten(&completion);
        if params.order.unwrap_or(Order::Asc) == Order::Desc {
            messages.reverse();
        }
        let start = match &params.after {
            None => 0,
            Some(after) => {
                let at = messages.iter().position(|m| m.get("id").and_then(Json::as_str) == Some(after.as_str()));
                at.ok_or_else(|| Error::CursorNotFound { cursor: after.clone(), completion: id.to_owned() })? + 1
            }
        };
        let rest: Vec<Json> = messages.into_iter().skip(start).collect();
        let has_more = rest.len() > limit;
        let data: Vec<Json> = rest.into_iter().take(limit).collect();
        Ok(MessagesPage::new(data, has_more, |m| m.get("id").and_then(Json::as_str).unwrap_or_default()))
    }

    /// Replace the completion's metadata (OpenAI's update); the owner is unchanged. Returns the
    /// updated completion. [`Error::NotFound`] when missing or not readable,
    /// [`Error::Forbidden`] when readable but not updatable.
    pub async fn update_metadata(
        &self,
        caller: Option<&User>,
        id: &str,
        metadata: Map<String, Json>,
    ) -> Result<StoredCompletion, Error> {
        self.table
            .update_one(caller, id, vec![("metadata", Value::Json(Json::Object(metadata)))])
            .await
            .map_err(|e| store_error(e, id, "update"))?;
        self.get(caller, id).await?.ok_or_else(|| Error::NotFound { id: id.to_owned() })
    }

    /// Delete the completion. [`Error::NotFound`] when missing or not readable,
    /// [`Error::Forbidden`] when readable but not deletable.
    pub async fn delete(&self, caller: Option<&User>, id: &str) -> Result<(), Error> {
        self.table.delete_one(caller, id).await.map_err(|e| store_error(e, id, "delete"))
    }
}

/// Input messages, then each choice's message, as message-list entries (the stored documents
/// are parsed here: the entries are built from their members).
fn flatten(completion: &StoredCompletion) -> Vec<Json> {
    let empty = Vec::new();
    let (inputs, choices) = (completion.input_messages.to_value(), completion.choices.to_value());
    let inputs = inputs.as_ref().ok().and_then(Json::as_array).unwrap_or(&empty);
    let choices = choices.as_ref().ok().and_then(Json::as_array).unwrap_or(&empty);
    let mut out = Vec::with_capacity(inputs.len() + choices.len());
    for message in inputs {
        let content = message.get("content");
        let (text, parts) = match content {
            Some(Json::Array(parts)) => {
                let supported: Vec<Json> = parts
                    .iter()
                    .filter(|p| matches!(p.get("type").and_then(Json::as_str), Some("text" | "image_url")))
                    .cloned()
                    .collect();
                (Json::Null, if supported.is_empty() { Json::Null } else { Json::Array(supported) })
            }
            Some(Json::String(s)) => (Json::String(s.clone()), Json::Null),
            _ => (Json::Null, Json::Null),
        };
        let n = out.len();
        out.push(entry(completion, n, message, text, parts, &["name", "tool_calls", "tool_call_id"]));
    }
    for choice in choices {
        let null = Json::Null;
        let message = choice.get("message").unwrap_or(&null);
        let text = match message.get("content") {
            Some(Json::String(s)) => Json::String(s.clone()),
            _ => Json::Null,
        };
        let n = out.len();
        out.push(entry(
            completion,
            n,
            message,
            text,
            Json::Null,
            &["tool_calls", "refusal", "function_call", "annotations", "audio"],
        ));
    }
    out
}

/// One message-list entry: every field present, `null` unless taken from `message`'s `copied`.
fn entry(completion: &StoredCompletion, n: usize, message: &Json, content: Json, parts: Json, copied: &[&str]) -> Json {
    let mut entry = json!({
        "id": format!("{}-{n}", completion.id),
        "role": message.get("role").cloned().unwrap_or(Json::Null),
        "content": content,
        "content_parts": parts,
        "name": null,
        "tool_calls": null,
        "tool_call_id": null,
        "refusal": null,
        "function_call": null,
        "annotations": null,
        "audio": null,
    });
    for key in copied {
        if let Some(value) = message.get(*key) {
            entry[*key] = value.clone();
        }
    }
    entry
}
