//! The list query every list route takes, parsed once: `after`, `before`, `limit`, `order`,
//! `metadata[key]=value` and the route's own exact-match filters.
//!
//! A route declares its list with a [`ListSpec`] (limit range and default, default order, which
//! optional parameters it takes) and takes [`ListQuery<Spec>`] as a handler argument:
//!
//! - `limit` below 1 or not a number is a 400 naming `limit`; above the route's maximum it is
//!   capped to the maximum (clients written for OpenAI ask for `limit=1000` where OpenAI sets no
//!   bound): the page is shorter than asked and `has_more` tells the truth; a route whose
//!   reference bounds the range ([`ListSpec::STRICT_LIMIT`]) answers 400 naming `limit` instead;
//! - `order` is `asc` or `desc`;
//! - at most [`MAX_METADATA_FILTERS`] `metadata[key]=value` filters (400 naming the limit above);
//! - any other parameter is a 400 naming it.
//!
//! The answer is a [`Page`]: `{object: "list", data, first_id, last_id, has_more}`.

use std::future::{Ready, ready};
use std::marker::PhantomData;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
pub use ferrostack_authz::policy::{ListPage as Page, Order};

use crate::ApiError;

/// Most `metadata[key]=value` filters one list request may carry: each is a JSON lookup ANDed
/// onto the query, so an unbounded number would be an unbounded query.
pub const MAX_METADATA_FILTERS: usize = 16;

/// What one list route accepts.
pub trait ListSpec {
    /// `limit` when none is given.
    const DEFAULT_LIMIT: u32;
    /// Largest page; a larger `limit` is capped to it.
    const MAX_LIMIT: u32;
    /// `order` when none is given.
    const DEFAULT_ORDER: Order;
    /// Whether `before` is taken.
    const BEFORE: bool = false;
    /// Whether `metadata[key]=value` filters are taken.
    const METADATA: bool = false;
    /// Further exact-match filters the route takes (`model`, ...), by parameter name.
    const FILTERS: &'static [&'static str] = &[];
    /// Whether a `limit` above [`ListSpec::MAX_LIMIT`] is a 400 naming `limit` instead of being
    /// capped (routes whose OpenAI reference documents the range as a bound, e.g. conversation
    /// items).
    const STRICT_LIMIT: bool = false;
}

/// A parsed list query for the route described by `S`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery<S> {
    /// Id of the last item of the previous page.
    pub after: Option<String>,
    /// Id of the first item of the next page (routes with [`ListSpec::BEFORE`]).
    pub before: Option<String>,
    /// Page size, within 1..=[`ListSpec::MAX_LIMIT`].
    pub limit: u32,
    /// Order on (created, id).
    pub order: Order,
    /// `metadata[key]=value` filters, in query order; all must match.
    pub metadata: Vec<(String, String)>,
    /// The route's own filters ([`ListSpec::FILTERS`]) that were given, in query order.
    pub filters: Vec<(&'static str, String)>,
    spec: PhantomData<fn() -> S>,
}

impl<S> ListQuery<S> {
    /// The value of the route filter `name`, when given (the last one, if repeated).
    pub fn filter(&self, name: &str) -> Option<&str> {
        self.filters.iter().rev().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }
}

impl<S: ListSpec> ListQuery<S> {
    /// Parse a query string (`a=1&b=2`, percent-decoded).
    pub fn parse(query: &str) -> Result<Self, ApiError> {
        let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
            .map_err(|e| ApiError::invalid_request(format!("invalid query string: {e}"), None))?
            .into_inner();
        let mut q = ListQuery {
            after: None,
            before: None,
            limit: S::DEFAULT_LIMIT,
            order: S::DEFAULT_ORDER,
            metadata: Vec::new(),
            filters: Vec::new(),
            spec: PhantomData,
        };
        for (key, value) in pairs {
            // What is matched against stored rows must be storable text.
            crate::text::reject_nul_str(&key, "query")?;
            crate::text::reject_nul_str(&value, &key)?;
            match key.as_str() {
                "after" => q.after = Some(value),
                "before" if S::BEFORE => q.before = Some(value),
                "limit" => q.limit = parse_limit(&value, S::MAX_LIMIT, S::STRICT_LIMIT)?,
                "order" => q.order = parse_order(&value)?,
                k => {
                    if let Some(name) = S::FILTERS.iter().find(|f| **f == k) {
                        q.filters.push((name, value));
                        continue;
                    }
                    match k.strip_prefix("metadata[").and_then(|rest| rest.strip_suffix(']')) {
                        Some(meta) if S::METADATA && !meta.is_empty() => q.metadata.push((meta.to_owned(), value)),
                        _ => {
                            return Err(ApiError::invalid_request(format!("unknown query parameter {k:?}"), Some(k)));
                        }
                    }
                }
            }
        }
        if q.metadata.len() > MAX_METADATA_FILTERS {
            return Err(ApiError::invalid_request(
                format!(
                    "at most {MAX_METADATA_FILTERS} metadata[key]=value filters are accepted, got {}",
                    q.metadata.len()
                ),
                Some("metadata"),
            ));
        }
        Ok(q)
    }
}

impl<S: ListSpec> FromRequest for ListQuery<S> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(Self::parse(req.query_string()))
    }
}

/// 1..=`max`; larger values (however large) are capped to `max`, or refused when `strict`.
fn parse_limit(value: &str, max: u32, strict: bool) -> Result<u32, ApiError> {
    let invalid = |what: &str| ApiError::invalid_request(format!("limit must be {what}, got {value:?}"), Some("limit"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if value.strip_prefix('-').is_some_and(digits) {
        return Err(invalid("at least 1"));
    }
    if !digits(value) {
        return Err(invalid("an integer"));
    }
    // All digits: a value too large for u64 is still a number, and capped like any other.
    let n = value.parse::<u64>().unwrap_or(u64::MAX);
    if n < 1 {
        return Err(invalid("at least 1"));
    }
    if strict && n > u64::from(max) {
        return Err(invalid(&format!("between 1 and {max}")));
    }
    Ok(u32::try_from(n).unwrap_or(u32::MAX).min(max))
}

fn parse_order(value: &str) -> Result<Order, ApiError> {
    match value {
        "asc" => Ok(Order::Asc),
        "desc" => Ok(Order::Desc),
        other => Err(ApiError::invalid_request(format!("order must be 'asc' or 'desc', got {other:?}"), Some("order"))),
    }
}
