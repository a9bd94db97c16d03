//! Property test of the request validators the http crate owns: arbitrary query strings into the
//! list-query parser, and arbitrary JSON into the NUL check of bodies, never a panic, and either a
//! valid value or a 400 in the error shape (with `param` whenever a parameter is at fault).

use actix_web::ResponseError;
use ferrostack_http::{ListQuery, ListSpec, Order};
use ferrostack_testkit::Test;
use futures_util::FutureExt as _;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

pub fn tests() -> Vec<Test> {
    vec![Test::plain("props::list_queries_parse_or_are_400_naming_the_parameter", || async { list_queries() })]
}

#[derive(Debug)]
struct Spec;
impl ListSpec for Spec {
    const DEFAULT_LIMIT: u32 = 20;
    const MAX_LIMIT: u32 = 100;
    const DEFAULT_ORDER: Order = Order::Desc;
    const METADATA: bool = true;
    const FILTERS: &'static [&'static str] = &["model"];
}

/// A key: one the parser knows, a metadata filter, or anything.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec!["after", "limit", "order", "model", "before", "metadata", "metadata[]"])
            .prop_map(str::to_owned),
        "[a-z%0-9]{0,6}".prop_map(|k| format!("metadata[{k}]")),
        "[ -~]{0,10}",
    ]
}

/// A value: numbers (also huge and negative), orders, and arbitrary percent-encoded bytes.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i128>().prop_map(|n| n.to_string()),
        proptest::sample::select(vec!["asc", "desc", "", "%00", "a%00b", "%ZZ", "%ff%fe", "+"]).prop_map(str::to_owned),
        proptest::collection::vec(any::<u8>(), 0..12)
            .prop_map(|bytes| bytes.iter().map(|b| format!("%{b:02X}")).collect::<String>()),
        "[ -~]{0,12}",
    ]
}

fn body_of(err: &ferrostack_http::ApiError) -> Value {
    let res = err.error_response();
    assert_eq!(res.status().as_u16(), 400, "{err}");
    let bytes = actix_web::body::to_bytes(res.into_body()).now_or_never().unwrap().unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn list_queries() {
    let mut runner = TestRunner::new(Config { cases: 2_000, failure_persistence: None, ..Config::default() });
    let query = proptest::collection::vec((key(), value()), 0..20)
        .prop_map(|pairs| pairs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("&"));
    runner
        .run(&query, |q| {
            match ListQuery::<Spec>::parse(&q) {
                Ok(parsed) => {
                    assert!((1..=100).contains(&parsed.limit), "{q}: limit {}", parsed.limit);
                    let texts = parsed.after.iter().chain(parsed.filters.iter().map(|(_, v)| v));
                    let meta = parsed.metadata.iter().flat_map(|(k, v)| [k, v]);
                    assert!(texts.chain(meta).all(|t| !t.contains('\0')), "{q}: a NUL got through");
                }
                Err(e) => {
                    let body = body_of(&e);
                    assert_eq!(body["error"]["code"], "invalid_request", "{q}: {body}");
                    // Only a query string that does not decode at all has no parameter to name.
                    let message = body["error"]["message"].as_str().unwrap_or_default();
                    assert!(
                        body["error"]["param"].is_string() || message.starts_with("invalid query string"),
                        "{q}: {body}"
                    );
                }
            }
            Ok(())
        })
        .unwrap();
}
