//! The code table: docs/api.md lists exactly its rows, and every status leaves with the exact
//! body, headers and code the table gives, from the domain error that causes it.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::ResponseError;
use actix_web::http::header;
use ferrostack_authz::{AuthError, StoreError};
use ferrostack_catalog::{BackendDescription, Cause};
use ferrostack_http::{ApiError, Code};
use ferrostack_inference_store::Error as StoreErr;
use ferrostack_providers::ProviderError;
use ferrostack_testkit::Test;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("errors::docs_api_md_lists_every_code", || async { docs_list_every_code() }),
        Test::plain("errors::every_status_has_its_exact_body", every_status),
    ]
}

/// The rows of the error table in docs/api.md: (status, type, code, when).
fn documented_rows() -> Vec<(String, String, String, String)> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in doc.lines().map(str::trim) {
        if line.starts_with("| status | `type` | `code` |") {
            in_table = true;
            continue;
        }
        if !in_table || line.starts_with("|---") {
            continue;
        }
        if !line.starts_with('|') {
            break;
        }
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        assert_eq!(cells.len(), 4, "docs/api.md: an error-table row has 4 cells: {line}");
        let unquote = |s: &str| s.trim_matches('`').to_owned();
        rows.push((cells[0].to_owned(), unquote(cells[1]), unquote(cells[2]), cells[3].to_owned()));
    }
    assert!(!rows.is_empty(), "docs/api.md has no error table");
    rows
}

fn docs_list_every_code() {
    let documented = documented_rows();
    let table: Vec<(String, String, String, String)> = Code::ALL
        .iter()
        .map(|c| (c.documented_status(), c.kind().to_owned(), c.as_str().to_owned(), c.when().to_owned()))
        .collect();
    for row in &table {
        assert!(documented.contains(row), "docs/api.md lacks (or words differently) the row {row:?}");
    }
    for row in &documented {
        assert!(table.contains(row), "docs/api.md lists a row the code table does not have: {row:?}");
    }
    let (status, kind, code, _) = &documented[0];
    let first = Code::ALL[0];
    assert_eq!((status.as_str(), kind.as_str(), code.as_str()), ("400", first.kind(), first.as_str()), "table order");
}

fn backend() -> Arc<BackendDescription> {
    Arc::new(BackendDescription {
        name: "sql_default".to_owned(),
        type_name: "sql_postgres",
        location: "db.internal:5432/ferrostack".to_owned(),
    })
}

/// A real reqwest error of each kind the provider classifies.
async fn refused() -> reqwest::Error {
    let addr = ferrostack_testkit::unused_loopback_addr();
    reqwest::Client::new().get(format!("http://{addr}/")).send().await.unwrap_err()
}

async fn timed_out() -> reqwest::Error {
    // Accepted by the kernel's backlog, never answered.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = reqwest::Client::builder().timeout(Duration::from_millis(50)).build().unwrap();
    let err = client.get(format!("http://{addr}/")).send().await.unwrap_err();
    drop(listener);
    err
}

fn body(message: &str, kind: &str, code: &str, param: Option<&str>) -> Value {
    json!({"error": {"message": message, "type": kind, "code": code, "param": param}})
}

async fn every_status() {
    let unavailable_db = "the database is unavailable right now; retry later";
    let cases: Vec<(&str, ApiError, u16, Value)> = vec![
        (
            "bad limit",
            StoreErr::InvalidParam { param: "limit", message: "must be at least 1, got 0".into() }.into(),
            400,
            body(
                "invalid 'limit': must be at least 1, got 0",
                "invalid_request_error",
                "invalid_request",
                Some("limit"),
            ),
        ),
        (
            "unknown cursor",
            StoreErr::AfterNotFound { id: "nope".into(), table: "inference_store" }.into(),
            400,
            body(
                "Record with id='nope' not found in table 'inference_store'",
                "invalid_request_error",
                "invalid_request",
                Some("after"),
            ),
        ),
        (
            "provider 4xx passed on",
            ProviderError::Upstream {
                provider: "fake".into(),
                status: 422,
                message: "max_tokens is too large".into(),
                error_type: None,
                code: None,
                param: Some("max_tokens".into()),
            }
            .into(),
            422,
            body("max_tokens is too large", "invalid_request_error", "upstream_error", Some("max_tokens")),
        ),
        (
            "no credentials",
            AuthError::MissingCredentials("Authentication required".into()).into(),
            401,
            body("Authentication required", "authentication_error", "unauthorized", None),
        ),
        (
            "malformed authorization",
            AuthError::InvalidHeaderFormat.into(),
            401,
            body("Invalid Authorization header format", "authentication_error", "unauthorized", None),
        ),
        (
            "refused token",
            AuthError::Rejected("Token not active".into()).into(),
            401,
            body("Token not active", "authentication_error", "unauthorized", None),
        ),
        (
            "readable, not deletable",
            StoreErr::Forbidden { id: "c1".into(), action: "delete" }.into(),
            403,
            body("not allowed to delete chat completion c1", "permission_error", "forbidden", None),
        ),
        (
            "hidden or missing",
            StoreErr::NotFound { id: "c1".into() }.into(),
            404,
            body("Chat completion with id c1 not found", "not_found_error", "not_found", None),
        ),
        (
            "authorized layer: not found",
            StoreError::NotFound.into(),
            404,
            body("not found", "not_found_error", "not_found", None),
        ),
        (
            "unknown model",
            ProviderError::ModelNotFound { model: "gpt-9".into() }.into(),
            404,
            body("model 'gpt-9' not found", "not_found_error", "model_not_found", Some("model")),
        ),
        (
            "wrong method",
            ApiError::method_not_allowed("Method Not Allowed"),
            405,
            body("Method Not Allowed", "invalid_request_error", "method_not_allowed", None),
        ),
        (
            "id of another owner, durability sync",
            StoreErr::IdTaken { id: "c1".into() }.into(),
            409,
            body(
                "chat completion id c1 is taken by another owner; the stored row was left unchanged",
                "conflict_error",
                "conflict",
                None,
            ),
        ),
        (
            "body too large",
            ApiError::payload_too_large("request body is 20 bytes; the limit is 10"),
            413,
            body("request body is 20 bytes; the limit is 10", "invalid_request_error", "payload_too_large", None),
        ),
        (
            "row rejected by the database, durability sync",
            StoreErr::WriteFailed { id: "c1".into() }.into(),
            500,
            body("internal server error", "internal_error", "internal_error", None),
        ),
        (
            "a bug in a store",
            StoreError::NothingToSet.into(),
            500,
            body("internal server error", "internal_error", "internal_error", None),
        ),
        (
            "store off",
            ApiError::not_implemented("stored chat completions are off"),
            501,
            body("stored chat completions are off", "not_implemented", "not_implemented", None),
        ),
        (
            "provider 5xx",
            ProviderError::Upstream {
                provider: "fake".into(),
                status: 500,
                message: "boom".into(),
                error_type: None,
                code: None,
                param: None,
            }
            .into(),
            502,
            body("upstream provider fake failed (HTTP 500): boom", "upstream_error", "upstream_error", None),
        ),
        (
            "provider unreachable",
            ProviderError::Unreachable { provider: "fake".into(), source: refused().await.into() }.into(),
            502,
            body("upstream provider fake unreachable", "upstream_error", "upstream_unavailable", None),
        ),
        (
            "provider answer not JSON",
            ProviderError::InvalidResponse { provider: "fake".into(), detail: "not JSON".into() }.into(),
            502,
            body("upstream returned an invalid response", "upstream_error", "upstream_invalid_response", None),
        ),
        (
            "provider answer cannot be stored",
            StoreErr::InvalidCompletion("'created' is missing".into()).into(),
            502,
            body(
                "upstream returned invalid chat completion: 'created' is missing",
                "upstream_error",
                "upstream_invalid_response",
                None,
            ),
        ),
        (
            "identity provider down",
            AuthError::Unavailable.into(),
            503,
            body("Authentication service unavailable", "service_unavailable", "service_unavailable", None),
        ),
        (
            "identity provider slow",
            AuthError::Timeout.into(),
            503,
            body("Authentication service timeout", "service_unavailable", "service_unavailable", None),
        ),
        (
            "shutting down",
            StoreErr::ShuttingDown.into(),
            503,
            body(
                "the inference store is shutting down and accepts no more writes",
                "service_unavailable",
                "service_unavailable",
                None,
            ),
        ),
        (
            "pool timeout",
            StoreErr::Store(StoreError::Db(ferrostack_catalog::Error::PoolTimeout {
                backend: backend(),
                waited: Duration::from_secs(30),
                pool_size: 16,
            }))
            .into(),
            503,
            body(unavailable_db, "service_unavailable", "database_unavailable", None),
        ),
        (
            "database refuses connections",
            ferrostack_catalog::Error::Connect { backend: backend(), cause: Cause::Message("refused".into()) }.into(),
            503,
            body(unavailable_db, "service_unavailable", "database_unavailable", None),
        ),
        (
            "pool closed",
            StoreError::Db(ferrostack_catalog::Error::Closed { backend: backend() }).into(),
            503,
            body(unavailable_db, "service_unavailable", "database_unavailable", None),
        ),
        (
            "provider timeout",
            ProviderError::Timeout { provider: "fake".into(), source: timed_out().await.into() }.into(),
            504,
            body("upstream provider fake timed out", "upstream_error", "upstream_timeout", None),
        ),
        (
            "slow body",
            ApiError::new(Code::RequestTimeout, "slow"),
            408,
            body("slow", "invalid_request_error", "request_timeout", None),
        ),
        (
            "long uri",
            ApiError::new(Code::UriTooLong, "long"),
            414,
            body("long", "invalid_request_error", "uri_too_long", None),
        ),
        (
            "large headers",
            ApiError::new(Code::HeadersTooLarge, "large"),
            431,
            body("large", "invalid_request_error", "headers_too_large", None),
        ),
        (
            "body budget full",
            ApiError::new(Code::ServerBusy, "busy"),
            503,
            body("busy", "service_unavailable", "server_busy", None),
        ),
        (
            "provider at its cap",
            ProviderError::Busy { provider: "fake".into(), limit: 8 }.into(),
            503,
            body(
                "upstream provider fake is at its limit of 8 concurrent requests; retry later",
                "service_unavailable",
                "upstream_busy",
                None,
            ),
        ),
    ];
    let mut seen = BTreeSet::new();
    for (case, err, status, want) in cases {
        seen.insert(err.code().as_str());
        let res = err.error_response();
        assert_eq!(res.status().as_u16(), status, "{case}");
        let headers = res.headers().clone();
        let bytes = actix_web::body::to_bytes(res.into_body()).await.unwrap();
        let got: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(got, want, "{case}");
        let retry_after = headers.get(header::RETRY_AFTER).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(retry_after, (status == 503).then(|| "1".to_owned()), "{case}: Retry-After on 503 only");
        let challenge = headers.get(header::WWW_AUTHENTICATE).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(challenge, (status == 401).then(|| "Bearer".to_owned()), "{case}: WWW-Authenticate on 401 only");
        assert_eq!(headers.get(header::CONTENT_TYPE).unwrap(), "application/json", "{case}");
    }
    let all: BTreeSet<&str> = Code::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(seen, all, "every code of the table has a case here");
}
