//! The page every list answers with, whatever the resource: `{object: "list", data, first_id,
//! last_id, has_more}`, as OpenAI's list endpoints have it. It lives beside the authorized table
//! that fetches the rows (so stores can return it); the http crate re-exports it as `Page`.

use serde::Serialize;

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ListPage<T> {
    /// Always `"list"`.
    pub object: &'static str,
    /// The items, in order.
    pub data: Vec<T>,
    /// Id of the first item, `""` when the page is empty.
    pub first_id: String,
    /// Id of the last item, `""` when the page is empty.
    pub last_id: String,
    /// Whether more items follow (exact: the query fetched one more than the page).
    pub has_more: bool,
}

impl<T> ListPage<T> {
    /// The page of `data`; `id` reads an item's id.
    pub fn new(data: Vec<T>, has_more: bool, id: impl Fn(&T) -> &str) -> Self {
        let first_id = data.first().map(|t| id(t).to_owned()).unwrap_or_default();
        let last_id = data.last().map(|t| id(t).to_owned()).unwrap_or_default();
        Self { object: "list", data, first_id, last_id, has_more }
    }
}
