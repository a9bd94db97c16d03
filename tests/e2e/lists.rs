//! The list query on a real route: a `limit` above the route's maximum is capped (clients written
//! for OpenAI ask for `limit=1000`), `has_more` tells the truth, and too many filters are a 400.

use ferrostack::ServeOptions;
use ferrostack_testkit::Test;
use ferrostack_tests::upstream::FakeUpstream;
use ferrostack_tests::{Storage, TestApp, chat_config};
use futures_util::StreamExt;
use serde_json::{Value, json};

pub fn tests() -> Vec<Test> {
    vec![
        Test::plain("lists::sqlite::limit_above_the_maximum_is_capped", || async {
            let dir = tempfile::tempdir().expect("tempdir");
            capped(Storage::Sqlite(dir.path())).await;
        }),
        Test::postgres("lists::postgres::limit_above_the_maximum_is_capped", |pg| async move {
            let db = pg.fresh_database().await;
            capped(Storage::Postgres(&db)).await;
        }),
    ]
}

async fn capped(storage: Storage<'_>) {
    let upstream = FakeUpstream::start().await;
    let config = chat_config(storage, &upstream.base_url, "");
    let app = TestApp::spawn(&config, ServeOptions { auto_migrate: true, ..ServeOptions::default() }).await;
    let url = format!("{}/v1/chat/completions", app.base);
    let body = json!({"model": "test-model", "messages": [{"role": "user", "content": "hi"}]});
    // 101 stored completions: one more than the route's maximum page.
    let statuses: Vec<u16> = futures_util::stream::iter(0..101)
        .map(|_| {
            let req = app.http.post(&url).json(&body);
            async move { req.send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    let (status, page) = app.get("/v1/chat/completions?limit=1000").await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(100), "capped to the maximum");
    assert_eq!(page["has_more"], json!(true), "one more follows");
    let after = page["last_id"].as_str().expect("last_id").to_owned();
    let (status, rest) = app.get(&format!("/v1/chat/completions?limit=1000&after={after}")).await;
    assert_eq!(status, 200, "{rest}");
    assert_eq!((rest["data"].as_array().map(Vec::len), rest["has_more"].clone()), (Some(1), json!(false)));

    let filters: String = (0..17).map(|i| format!("&metadata[k{i}]=v")).collect();
    let (status, err) = app.get(&format!("/v1/chat/completions?limit=5{filters}")).await;
    assert_eq!(status, 400);
    assert_eq!(
        err,
        json!({"error": {"message": "at most 16 metadata[key]=value filters are accepted, got 17",
                         "type": "invalid_request_error", "code": "invalid_request", "param": "metadata"}})
    );
    let (status, err): (u16, Value) = app.get("/v1/chat/completions?limit=0").await;
    assert_eq!((status, err["error"]["param"].clone()), (400, json!("limit")), "{err}");
    app.stop().await.expect("clean stop");
    upstream.stop().await;
}
