//! Helpers for ferrostack's end-to-end tests: build a run config through the real loader, start
//! the real server in-process on port 0, and talk to it over real HTTP.

#![expect(clippy::expect_used, reason = "test support: a set-up that fails must fail the test")]

pub mod identity;
pub mod otlp;
/// The one fake OpenAI upstream of the test suites.
pub use ferrostack_testkit::upstream;

use std::net::SocketAddr;

use ferrostack::{Application, ServeOptions};
use ferrostack_config::{Env, RunConfig};
use ferrostack_testkit::TestDatabase;
use tokio_util::sync::CancellationToken;

/// Load a YAML run config through the real loader, with the given environment.
pub fn config_from_yaml(yaml: &str, env: &[(&str, &str)]) -> RunConfig {
    let env = Env::from_pairs(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    match ferrostack_config::load_str(yaml, &env) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("test config does not load: {e}\n---\n{yaml}"),
    }
}

/// The built-in set-up (no config file): SQLite files under `home`.
pub fn builtin_config(home: &std::path::Path) -> RunConfig {
    let env = Env::from_pairs([("FERROSTACK_HOME".to_owned(), home.display().to_string())]);
    let mut config = match ferrostack_config::load_default(&env) {
        Ok(loaded) => loaded.config,
        Err(e) => panic!("built-in config does not load: {e}"),
    };
    test_server_settings(&mut config);
    config
}

/// Where a test keeps its data.
#[derive(Debug, Clone, Copy)]
pub enum Storage<'a> {
    /// SQLite files in this directory.
    Sqlite(&'a std::path::Path),
    /// This PostgreSQL database.
    Postgres(&'a TestDatabase),
}

impl Storage<'_> {
    /// The `storage:` block: one KV and one SQL backend, every store on them, the inference store
    /// with `durability: sync` so a stored completion is readable as soon as its answer is sent.
    pub fn yaml(&self) -> String {
        let (kv, sql) = match self {
            Storage::Sqlite(dir) => (
                format!("{{ type: kv_sqlite, db_path: {}/kv.db }}", dir.display()),
                format!("{{ type: sql_sqlite, db_path: {}/sql.db }}", dir.display()),
            ),
            Storage::Postgres(db) => {
                let s = db.server();
                let password = s.password().map(|p| format!(", password: {p}")).unwrap_or_default();
                let common = format!(
                    "host: {}, port: {}, db: {}, user: {}{password}, pool_size: 4, wait_timeout_ms: 2000, create_timeout_ms: 2000",
                    s.host(),
                    s.port(),
                    db.name(),
                    s.user()
                );
                (format!("{{ type: kv_postgres, {common} }}"), format!("{{ type: sql_postgres, {common} }}"))
            }
        };
        let (kv_name, sql_name) = match self {
            Storage::Sqlite(_) => ("kv_sqlite", "sql_sqlite"),
            Storage::Postgres(_) => ("kv_postgres", "sql_postgres"),
        };
        format!(
            "storage:\n  backends:\n    {kv_name}: {kv}\n    {sql_name}: {sql}\n  stores:\n    metadata: {{ backend: {kv_name}, namespace: registry }}\n    prompts: {{ backend: {kv_name}, namespace: prompts }}\n    connectors: {{ backend: {kv_name}, namespace: connectors }}\n    inference: {{ backend: {sql_name}, durability: sync }}\n    conversations: {{ backend: {sql_name} }}\n    responses: {{ backend: {sql_name} }}\n"
        )
    }
}

/// A config whose KV and SQL backends both live in `db` (one pool each).
pub fn postgres_config(db: &TestDatabase) -> RunConfig {
    let mut config = config_from_yaml(&format!("version: 2\n{}", Storage::Postgres(db).yaml()), &[]);
    test_server_settings(&mut config);
    config
}

/// A config with `storage`, one inference provider pointing at `upstream`, the fake's models
/// (`test-model` → echo, `tools-model`, `bad-model`, `garbage-model`, `hold-model`,
/// `repeat-model` (every answer has the same id), `premium-model` (echo), and
/// `slow-model`: `hold` on a provider with a 300 ms read timeout), and `extra`
/// YAML appended (e.g. a `server:` block with auth).
pub fn chat_config(storage: Storage<'_>, upstream_url: &str, extra: &str) -> RunConfig {
    let models = [
        ("test-model", "echo"),
        ("tools-model", "tool-call"),
        ("bad-model", "bad-request"),
        ("garbage-model", "garbage"),
        ("unstorable-model", "no-created"),
        ("hold-model", "hold"),
        ("repeat-model", "repeat-id"),
        ("nul-model", "nul"),
        ("premium-model", "echo"),
    ]
    .iter()
    .map(|(id, upstream)| format!("  - {{ model_id: {id}, provider_id: fake, provider_model_id: {upstream} }}\n"))
    .collect::<String>();
    let yaml = format!(
        "version: 2\n{}providers:\n  inference:\n    - provider_id: fake\n      provider_type: remote::vllm\n      config: {{ url: \"{upstream_url}\", timeout_ms: 10000 }}\n    - provider_id: impatient\n      provider_type: remote::vllm\n      config: {{ url: \"{upstream_url}\", timeout_ms: 300 }}\nmodels:\n{models}  - {{ model_id: slow-model, provider_id: impatient, provider_model_id: hold }}\n{extra}",
        storage.yaml()
    );
    let mut config = config_from_yaml(&yaml, &[]);
    test_server_settings(&mut config);
    config
}

/// Loopback, port 0, two workers, short shutdown: what every test server uses.
pub fn test_server_settings(config: &mut RunConfig) {
    config.server.host = "127.0.0.1".to_owned();
    config.server.port = 0;
    config.server.workers = Some(2);
    config.server.shutdown_timeout_seconds = 5;
}

/// A running server.
#[derive(Debug)]
pub struct TestApp {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// The bound address.
    pub addr: SocketAddr,
    /// A plain HTTP client.
    pub http: reqwest::Client,
    shutdown: CancellationToken,
    /// What `run_until` returned, its error as text (with causes).
    task: Option<tokio::task::JoinHandle<Result<(), String>>>,
}

impl TestApp {
    /// Build and start the server; panics with the start-up error if it does not start.
    pub async fn spawn(config: &RunConfig, options: ServeOptions) -> TestApp {
        match Self::try_spawn(config, options).await {
            Ok(app) => app,
            Err(e) => panic!("server did not start: {e}"),
        }
    }

    /// Build and start the server, returning the start-up error (with its causes) as text.
    pub async fn try_spawn(config: &RunConfig, options: ServeOptions) -> Result<TestApp, String> {
        let app = Application::build(config, &options).await.map_err(|e| format!("{e:#}"))?;
        let addr = app.local_addr();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = ferrostack_testkit::spawn(async move { app.run_until(token).await.map_err(|e| format!("{e:#}")) });
        Ok(TestApp { base: format!("http://{addr}"), addr, http: reqwest::Client::new(), shutdown, task: Some(task) })
    }

    /// GET a path; returns the status and the body as JSON (Null when the body is not JSON).
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let res = self.http.get(format!("{}{path}", self.base)).send().await;
        let res = res.unwrap_or_else(|e| panic!("GET {path} failed: {e}"));
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Send a request with a method and an optional raw body.
    pub async fn send(&self, method: reqwest::Method, path: &str, body: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method.clone(), format!("{}{path}", self.base));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b.to_owned());
        }
        let res = req.send().await.unwrap_or_else(|e| panic!("{method} {path} failed: {e}"));
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(serde_json::Value::Null);
        (status, body)
    }

    /// Cancel the server and wait for its orderly shutdown; returns what `run_until` returned.
    pub async fn stop(mut self) -> Result<(), String> {
        // The server waits at shutdown for open connections to close (it does not close idle
        // keep-alive connections under a client): close this client's pooled ones first, as a
        // client going away would, so the stop does not wait for their keep-alive to end.
        // (Clones of the client that a test still holds keep theirs.)
        drop(std::mem::replace(&mut self.http, reqwest::Client::new()));
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await.map_err(|e| format!("server task panicked: {e}"))?,
            None => Ok(()),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub use ferrostack_testkit::wait_for;

/// Send one request over a plain TCP connection exactly as written: no client normalises the
/// path (HTTP clients resolve `.` / `..` segments and some decode `%2e`), which is the point when
/// testing how the server reads paths. Returns the status and the body as JSON (Null when the
/// body is not JSON).
pub async fn raw_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut request = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(b) = body {
        request.push_str(&format!("content-type: application/json\r\ncontent-length: {}\r\n", b.len()));
    }
    request.push_str("\r\n");
    request.push_str(body.unwrap_or_default());
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.expect("read response");
    let text = String::from_utf8_lossy(&response);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in the answer to {method} {path}: {text}"));
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    (status, serde_json::from_str(body).unwrap_or(serde_json::Value::Null))
}
