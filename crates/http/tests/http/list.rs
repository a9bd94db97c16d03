//! The list-query extractor: defaults, ranges, caps and the 400s, table-driven.

use ferrostack_http::{ListQuery, ListSpec, MAX_METADATA_FILTERS, Order};
use ferrostack_testkit::Test;
use serde_json::json;

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("list::defaults_and_values", || async { defaults_and_values() }),
        Test::plain("list::limit_above_the_maximum_is_capped", || async { capped() }),
        Test::plain("list::strict_limit_above_the_maximum_is_400", || async { strict() }),
        Test::plain("list::bad_queries_are_400_naming_the_parameter", || async { bad_queries() }),
        Test::plain("list::metadata_filters_are_capped_at_16", || async { metadata_cap() }),
    ]
}

#[derive(Debug)]
struct Full;
impl ListSpec for Full {
    const DEFAULT_LIMIT: u32 = 20;
    const MAX_LIMIT: u32 = 100;
    const DEFAULT_ORDER: Order = Order::Desc;
    const BEFORE: bool = true;
    const METADATA: bool = true;
    const FILTERS: &'static [&'static str] = &["model"];
}

#[derive(Debug)]
struct Bare;
impl ListSpec for Bare {
    const DEFAULT_LIMIT: u32 = 5;
    const MAX_LIMIT: u32 = 10;
    const DEFAULT_ORDER: Order = Order::Asc;
}

fn defaults_and_values() {
    let q = ListQuery::<Full>::parse("").unwrap();
    assert_eq!((q.after, q.before, q.limit, q.order), (None, None, 20, Order::Desc));
    let q = ListQuery::<Bare>::parse("").unwrap();
    assert_eq!((q.limit, q.order), (5, Order::Asc));
    let q = ListQuery::<Full>::parse("after=a&before=b&limit=7&order=asc&model=m&metadata%5Benv%5D=prod&metadata[k]=v")
        .unwrap();
    assert_eq!((q.after.as_deref(), q.before.as_deref(), q.limit, q.order), (Some("a"), Some("b"), 7, Order::Asc));
    assert_eq!(q.filter("model"), Some("m"));
    assert_eq!(q.metadata, vec![("env".to_owned(), "prod".to_owned()), ("k".to_owned(), "v".to_owned())]);
}

fn capped() {
    for (query, want) in
        [("limit=100", 100), ("limit=101", 100), ("limit=1000", 100), ("limit=99999999999999999999999", 100)]
    {
        assert_eq!(ListQuery::<Full>::parse(query).unwrap().limit, want, "{query}");
    }
    assert_eq!(ListQuery::<Bare>::parse("limit=1000").unwrap().limit, 10, "the route's own maximum");
    assert_eq!(ListQuery::<Bare>::parse("limit=1").unwrap().limit, 1);
}

#[derive(Debug)]
struct Strict;
impl ListSpec for Strict {
    const DEFAULT_LIMIT: u32 = 20;
    const MAX_LIMIT: u32 = 100;
    const DEFAULT_ORDER: Order = Order::Desc;
    const STRICT_LIMIT: bool = true;
}

fn strict() {
    assert_eq!(ListQuery::<Strict>::parse("limit=100").unwrap().limit, 100);
    for query in ["limit=101", "limit=99999999999999999999999", "limit=0"] {
        let err = ListQuery::<Strict>::parse(query).unwrap_err();
        let body = err_body(&err);
        assert_eq!(body["error"]["param"], json!("limit"), "{query}: {body}");
    }
}

fn bad_queries() {
    let cases: [(&str, &str, &str); 9] = [
        ("limit=0", "limit", "limit must be at least 1, got \"0\""),
        ("limit=-1", "limit", "limit must be at least 1, got \"-1\""),
        ("limit=ten", "limit", "limit must be an integer, got \"ten\""),
        ("limit=", "limit", "limit must be an integer, got \"\""),
        ("limit=1.5", "limit", "limit must be an integer, got \"1.5\""),
        ("order=up", "order", "order must be 'asc' or 'desc', got \"up\""),
        ("colour=red", "colour", "unknown query parameter \"colour\""),
        ("metadata[]=x", "metadata[]", "unknown query parameter \"metadata[]\""),
        ("before=x&model=m", "before", "unknown query parameter \"before\""),
    ];
    for (query, param, message) in cases {
        let err = ListQuery::<Bare>::parse(query).unwrap_err();
        assert_eq!(err.status().as_u16(), 400, "{query}");
        let body = err_body(&err);
        assert_eq!(
            body,
            json!({"error": {"message": message, "type": "invalid_request_error", "code": "invalid_request", "param": param}}),
            "{query}"
        );
    }
}

fn metadata_cap() {
    let query = |n: usize| (0..n).map(|i| format!("metadata[k{i}]=v")).collect::<Vec<_>>().join("&");
    assert_eq!(ListQuery::<Full>::parse(&query(MAX_METADATA_FILTERS)).unwrap().metadata.len(), 16);
    let err = ListQuery::<Full>::parse(&query(MAX_METADATA_FILTERS + 1)).unwrap_err();
    assert_eq!(
        err_body(&err),
        json!({"error": {
            "message": "at most 16 metadata[key]=value filters are accepted, got 17",
            "type": "invalid_request_error", "code": "invalid_request", "param": "metadata"}})
    );
}

/// The error's JSON (its SSE form is the response body's JSON, field for field; the response
/// itself is pinned in errors.rs).
fn err_body(err: &ferrostack_http::ApiError) -> serde_json::Value {
    err.to_sse_event()
}
