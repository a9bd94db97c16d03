//! The fault suite's moving parts: a throwaway cluster with a database, the fake upstream, the
//! `ferrostack` binary as a child process, a load of clients that records every answer by id, and
//! the checks every test shares (the refusal shape, what is stored).

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferrostack_testkit::cluster::{Cluster, StopMode};
use ferrostack_testkit::upstream::FakeUpstream;
use serde_json::{Value, json};

/// The `ferrostack` binary cargo built for this package.
pub const BIN: &str = env!("CARGO_BIN_EXE_ferrostack");

/// The table stored completions live in.
pub const TABLE: &str = "inference_store";

/// Server settings every test uses unless it says otherwise: short bounds, so that a fault and the
/// recovery from it fit in seconds.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `durability` of the inference store: `sync` or `async`.
    pub durability: &'static str,
    /// `server.shutdown_timeout_seconds`.
    pub shutdown_timeout_seconds: u64,
    /// `drain_timeout_seconds` of the inference store.
    pub drain_timeout_seconds: u64,
    /// `max_write_queue_size` of the inference store.
    pub queue: usize,
    /// `wait_timeout_ms` of the pools (`create_timeout_ms` is 1 s: opening a connection on a
    /// loaded 2-core machine can take longer than 500 ms; `statement_timeout_ms` is 1 s).
    pub pool_wait_ms: u64,
    /// `timeout_ms` of the provider.
    pub upstream_timeout_ms: u64,
    /// YAML appended to the inference store's entry (`{ ..., <here> }`), e.g. settings of the
    /// `faults` branch.
    pub store_extra: String,
    /// YAML appended to the provider's `config` (`{ ..., <here> }`).
    pub provider_extra: String,
}

impl Settings {
    /// The defaults of the suite for `durability`.
    pub fn new(durability: &'static str) -> Settings {
        Settings {
            durability,
            shutdown_timeout_seconds: 3,
            drain_timeout_seconds: 2,
            queue: 200,
            pool_wait_ms: 500,
            upstream_timeout_ms: 5_000,
            // Bounded waits short enough that a 6 s outage outlasts them (defaults: 5 s, 10 s, 30 s).
            store_extra: "queue_wait_timeout_ms: 1000, commit_timeout_ms: 1500, stall_timeout_seconds: 2".to_owned(),
            // No idle upstream connections: the fake (actix) closes a connection idle for 5 s, and
            // an outage of 6 s leaves ferrostack's pooled connections idle about that long; a POST
            // sent on one as it closes fails (502), which is not the fault under test here.
            provider_extra: "max_idle_connections: 0".to_owned(),
        }
    }

    /// The documented shutdown bound: `shutdown_timeout_seconds + drain_timeout_seconds`.
    pub fn shutdown_bound(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_seconds + self.drain_timeout_seconds)
    }
}

/// A cluster with one database, the fake upstream and a home directory: what a server runs on.
#[derive(Debug)]
pub struct Rig {
    /// The throwaway cluster.
    pub cluster: Arc<Cluster>,
    /// The database the server uses.
    pub db: String,
    /// The fake upstream, in this process.
    pub upstream: FakeUpstream,
    /// `FERROSTACK_HOME` of the server (and where a spill file goes by default).
    pub home: tempfile::TempDir,
}

impl Rig {
    /// A new cluster (in a blocking thread: initdb takes a second) and the fake upstream.
    pub async fn start() -> Rig {
        let cluster = tokio::task::spawn_blocking(Cluster::start)
            .await
            .unwrap_or_else(|e| panic!("cluster thread: {e}"))
            .unwrap_or_else(|e| panic!("cannot make a throwaway PostgreSQL cluster: {e}"));
        let db = "ferrostack".to_owned();
        cluster.create_database(&db).await.unwrap_or_else(|e| panic!("{e}"));
        let upstream = FakeUpstream::start().await;
        let home = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        Rig { cluster: Arc::new(cluster), db, upstream, home }
    }

    /// The run config for `settings`: one KV and one SQL backend on the cluster, the fake as the
    /// provider of the models `echo`, `slow` (`fault-slow`), `trickle` and `hang`.
    pub fn config(&self, s: &Settings) -> PathBuf {
        let pg = format!(
            "host: 127.0.0.1, port: {}, db: {}, user: postgres, pool_size: 8, wait_timeout_ms: {}, create_timeout_ms: 1000, statement_timeout_ms: 1000",
            self.cluster.port(),
            self.db,
            s.pool_wait_ms
        );
        let sep = |extra: &str| if extra.is_empty() { String::new() } else { format!(", {extra}") };
        let models = [("echo", "echo"), ("slow", "fault-slow"), ("trickle", "fault-trickle"), ("hang", "fault-hang")]
            .iter()
            .map(|(id, scenario)| {
                format!("  - {{ model_id: {id}, provider_id: fake, provider_model_id: {scenario} }}\n")
            })
            .collect::<String>();
        let yaml = format!(
            "version: 2
server: {{ host: 127.0.0.1, port: 0, workers: 2, shutdown_timeout_seconds: {shutdown} }}
storage:
  backends:
    kv_pg: {{ type: kv_postgres, {pg} }}
    sql_pg: {{ type: sql_postgres, {pg} }}
  stores:
    metadata: {{ backend: kv_pg, namespace: registry }}
    prompts: {{ backend: kv_pg, namespace: prompts }}
    connectors: {{ backend: kv_pg, namespace: connectors }}
    inference: {{ backend: sql_pg, durability: {durability}, max_write_queue_size: {queue}, drain_timeout_seconds: {drain}{store_extra} }}
    conversations: {{ backend: sql_pg }}
providers:
  inference:
    - provider_id: fake
      provider_type: remote::vllm
      config: {{ url: \"{url}\", timeout_ms: {timeout}{provider_extra} }}
models:
{models}",
            shutdown = s.shutdown_timeout_seconds,
            durability = s.durability,
            queue = s.queue,
            drain = s.drain_timeout_seconds,
            store_extra = sep(&s.store_extra),
            url = self.upstream.fault_url(),
            timeout = s.upstream_timeout_ms,
            provider_extra = sep(&s.provider_extra),
        );
        let path = self.home.path().join(format!("ferrostack-{}.yaml", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, yaml).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Start `ferrostack serve` with `settings`.
    pub async fn serve(&self, s: &Settings) -> Server {
        Server::start(&self.config(s), self.home.path()).await
    }

    /// Stop the cluster (blocking work off the runtime).
    pub async fn stop_db(&self, mode: StopMode) {
        let cluster = Arc::clone(&self.cluster);
        tokio::task::spawn_blocking(move || cluster.stop(mode))
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("stop the cluster: {e}"));
    }

    /// Start the stopped cluster and wait until it accepts connections.
    pub async fn start_db(&self) {
        let cluster = Arc::clone(&self.cluster);
        tokio::task::spawn_blocking(move || cluster.start_again())
            .await
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|e| panic!("start the cluster again: {e}"));
    }

    /// Which of `ids` are rows of the inference store, read straight from the database.
    pub async fn stored(&self, ids: &[String]) -> HashSet<String> {
        let client = self.cluster.client(&self.db).await.unwrap_or_else(|e| panic!("{e}"));
        let rows = client
            .query(&format!("SELECT id FROM {TABLE} WHERE id = ANY($1)"), &[&ids])
            .await
            .unwrap_or_else(|e| panic!("read stored ids: {e}"));
        rows.iter().map(|r| r.get::<_, String>(0)).collect()
    }

    /// The stored `choices` of completion `id` (None: no such row).
    pub async fn stored_choices(&self, id: &str) -> Option<Value> {
        let client = self.cluster.client(&self.db).await.unwrap_or_else(|e| panic!("{e}"));
        let row = client
            .query_opt(&format!("SELECT choices::text FROM {TABLE} WHERE id = $1"), &[&id])
            .await
            .unwrap_or_else(|e| panic!("read a stored row: {e}"))?;
        serde_json::from_str(&row.get::<_, String>(0)).ok()
    }

    /// Wait until every id in `ids` is stored (the async queue drains on its own time); the ids
    /// still missing after `timeout`.
    pub async fn missing_after(&self, ids: &[String], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let stored = self.stored(ids).await;
            let missing: Vec<String> = ids.iter().filter(|id| !stored.contains(*id)).cloned().collect();
            if missing.is_empty() || Instant::now() >= deadline {
                return missing;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A `ferrostack serve` child process.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    output: Arc<Mutex<Vec<String>>>,
    /// When SIGTERM or SIGKILL was sent.
    signalled: Option<Instant>,
}

impl Server {
    /// Spawn `ferrostack serve --config <config> --auto-migrate` and wait until it logs its address.
    pub async fn start(config: &Path, home: &Path) -> Server {
        let mut child = Command::new(BIN)
            .args(["serve", "--auto-migrate", "--config"])
            .arg(config)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", home)
            .env("FERROSTACK_HOME", home)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {BIN}: {e}"));
        let output = Arc::new(Mutex::new(Vec::new()));
        let stdout: Box<dyn Read + Send> = Box::new(child.stdout.take().unwrap_or_else(|| panic!("stdout")));
        let stderr: Box<dyn Read + Send> = Box::new(child.stderr.take().unwrap_or_else(|| panic!("stderr")));
        for stream in [stdout, stderr] {
            let output = Arc::clone(&output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Ok(mut o) = output.lock() {
                        o.push(line);
                    }
                }
            });
        }
        let mut server = Server { child, base: String::new(), output, signalled: None };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(addr) = server.text().split("listening on http://").nth(1) {
                let addr: String = addr.chars().take_while(|c| !c.is_whitespace()).collect();
                server.base = format!("http://{addr}");
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("ferrostack exited at start ({status}):\n{}", server.text());
            }
            assert!(Instant::now() < deadline, "ferrostack did not log its address within 60 s:\n{}", server.text());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything it printed so far.
    pub fn text(&self) -> String {
        self.output.lock().map(|o| o.join("\n")).unwrap_or_default()
    }

    /// The last `n` lines it printed (for failure messages).
    pub fn tail(&self, n: usize) -> String {
        let lines = self.output.lock().map(|o| o.clone()).unwrap_or_default();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the process (sockets included).
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid())).map(|d| d.count()).unwrap_or(0)
    }

    fn kill(&mut self, signal: &str) {
        let ok = Command::new("kill").args([&format!("-{signal}"), &self.pid().to_string()]).status();
        assert!(ok.is_ok_and(|s| s.success()), "kill -{signal} {}", self.pid());
        self.signalled = Some(Instant::now());
    }

    /// Send SIGTERM.
    pub fn sigterm(&mut self) {
        self.kill("TERM");
    }

    /// Send SIGKILL.
    pub fn sigkill(&mut self) {
        self.kill("KILL");
    }

    /// Wait up to `limit` for the process to exit: its status and the time since the signal.
    /// `None` (and the process killed) when it is still running then.
    pub async fn exit_within(&mut self, limit: Duration) -> Option<(ExitStatus, Duration)> {
        let since = self.signalled.unwrap_or_else(Instant::now);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some((status, since.elapsed()));
            }
            if since.elapsed() > limit {
                let _ = self.child.kill();
                let _ = self.child.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// What one answer must look like when the server refuses: 503, `Retry-After`, and the one error
/// shape with type `service_unavailable`. `Err` says what is wrong.
pub fn check_refusal(status: u16, retry_after: Option<&str>, body: &Value) -> Result<(), String> {
    if status != 503 {
        return Err(format!("status {status}, not 503: {body}"));
    }
    let error = &body["error"];
    let shaped = error.is_object()
        && error["message"].is_string()
        && error["type"] == "service_unavailable"
        && error["code"].is_string()
        && error.get("param").is_some();
    if !shaped {
        return Err(format!(
            "503 not in the error shape {{error: {{message, type: service_unavailable, code, param}}}}: {body}"
        ));
    }
    match retry_after.map(str::parse::<u64>) {
        Some(Ok(_)) => Ok(()),
        _ => Err(format!("503 without a Retry-After in seconds ({retry_after:?}): {body}")),
    }
}

/// Every answer a load saw, by kind.
#[derive(Debug, Default, Clone)]
pub struct Tally {
    /// Completion ids of every 2xx create, in order.
    pub acked: Vec<String>,
    /// 503 refusals in the right shape (creates and reads).
    pub refusals: usize,
    /// Successful reads (200 / 404 as expected).
    pub reads: usize,
    /// Connections refused (the listener is closed: after SIGTERM, or the process is gone).
    pub conn_refused: usize,
    /// Requests that got no answer: a reset or closed connection, a timeout.
    pub no_answer: Vec<String>,
    /// Answers that should not be: a 500, a 503 out of shape, an unexpected status.
    pub wrong: Vec<String>,
    /// Longest a refusal (503) took.
    pub slowest_refusal: Duration,
    /// Longest any answer took.
    pub slowest_answer: Duration,
    /// What that answer was (request and outcome).
    pub slowest_what: String,
    /// Longest a create took (any outcome).
    pub slowest_create: Duration,
    /// Longest a read took (any outcome).
    pub slowest_read: Duration,
    /// When the first 2xx create after [`Load::mark`] was answered, relative to the mark.
    pub first_ok_after_mark: Option<Duration>,
}

impl Tally {
    /// A one-line summary for the closing note.
    pub fn summary(&self) -> String {
        format!(
            "acked={} refusals_503={} reads={} conn_refused={} no_answer={} wrong={} slowest_refusal_ms={} slowest_create_ms={} slowest_read_ms={} slowest=[{}]",
            self.acked.len(),
            self.refusals,
            self.reads,
            self.conn_refused,
            self.no_answer.len(),
            self.wrong.len(),
            self.slowest_refusal.as_millis(),
            self.slowest_create.as_millis(),
            self.slowest_read.as_millis(),
            self.slowest_what
        )
    }

    /// Panics naming every answer that was neither a 2xx, an expected read, a 503 in shape nor a
    /// refused connection.
    pub fn assert_honest(&self, what: &str) {
        assert!(
            self.wrong.is_empty(),
            "{what}: answers other than 2xx or a 503 in the error shape: {:#?}",
            first(&self.wrong)
        );
        assert!(self.no_answer.is_empty(), "{what}: requests left without an answer: {:#?}", first(&self.no_answer));
    }
}

fn first(v: &[String]) -> &[String] {
    &v[..v.len().min(10)]
}

/// Clients that keep the server busy: each loops create, create, read, until stopped.
#[derive(Debug)]
pub struct Load {
    tally: Arc<Mutex<Tally>>,
    stop: Arc<AtomicBool>,
    mark: Arc<Mutex<Option<Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// What a load sends.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Concurrent clients.
    pub clients: usize,
    /// The model of the creates.
    pub model: &'static str,
    /// Whether a read of an acknowledged id must find it (sync: yes; async: it may be queued).
    pub reads_must_find: bool,
    /// Per-request client timeout: an answer slower than this counts as no answer.
    pub timeout: Duration,
    /// Stop a client at its first refused connection (the server is going away).
    pub stop_on_refused: bool,
}

impl LoadSpec {
    /// `clients` clients creating with `model`.
    pub fn new(clients: usize, model: &'static str, durability: &str) -> LoadSpec {
        LoadSpec {
            clients,
            model,
            reads_must_find: durability == "sync",
            timeout: Duration::from_secs(20),
            stop_on_refused: true,
        }
    }
}

impl Load {
    /// Start the clients against `base`.
    pub fn start(base: &str, spec: LoadSpec) -> Load {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let mark = Arc::new(Mutex::new(None));
        let http = reqwest::Client::builder()
            .timeout(spec.timeout)
            .pool_max_idle_per_host(spec.clients)
            .build()
            .unwrap_or_else(|e| panic!("http client: {e}"));
        let tasks = (0..spec.clients)
            .map(|n| {
                let client = Client {
                    http: http.clone(),
                    base: base.to_owned(),
                    spec: spec.clone(),
                    tally: Arc::clone(&tally),
                    mark: Arc::clone(&mark),
                };
                let stop = Arc::clone(&stop);
                ferrostack_testkit::spawn(async move {
                    let mut i = 0_usize;
                    while !stop.load(Ordering::SeqCst) {
                        let go_on = if i % 3 == 2 { client.read(n, i).await } else { client.create(n, i).await };
                        if !go_on {
                            break;
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        Load { tally, stop, mark, tasks }
    }

    /// From now on, remember when the first 2xx create comes ([`Tally::first_ok_after_mark`]).
    pub fn mark(&self) {
        if let Ok(mut m) = self.mark.lock() {
            *m = Some(Instant::now());
        }
        if let Ok(mut t) = self.tally.lock() {
            t.first_ok_after_mark = None;
        }
    }

    /// A copy of the tally so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Wait until `n` more creates than now were acknowledged (the server is serving creates).
    pub async fn wait_acked(&self, n: usize, timeout: Duration) {
        let start = self.tally().acked.len();
        ferrostack_testkit::wait_for(&format!("{n} acknowledged creates"), timeout, || {
            let now = self.tally().acked.len();
            async move { (now >= start + n).then_some(()) }
        })
        .await;
    }

    /// Stop the clients (each finishes the request it is in) and return the tally.
    pub async fn stop(self) -> Tally {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            let _ = t.await;
        }
        self.tally.lock().map(|t| t.clone()).unwrap_or_default()
    }
}

#[derive(Debug)]
struct Client {
    http: reqwest::Client,
    base: String,
    spec: LoadSpec,
    tally: Arc<Mutex<Tally>>,
    mark: Arc<Mutex<Option<Instant>>>,
}

/// One request's outcome, before it is filed.
enum Outcome {
    Answer { status: u16, retry_after: Option<String>, body: Value },
    Refused,
    NoAnswer(String),
}

impl Outcome {
    fn describe(&self) -> String {
        match self {
            Outcome::Answer { status, body, .. } => format!("{status} {}", body["error"]["code"]),
            Outcome::Refused => "connection refused".to_owned(),
            Outcome::NoAnswer(e) => format!("no answer: {}", e.chars().take(120).collect::<String>()),
        }
    }
}

impl Tally {
    fn note_time(&mut self, took: Duration, what: impl FnOnce() -> String) {
        if took > self.slowest_answer {
            self.slowest_answer = took;
            self.slowest_what = what();
        }
    }
}

impl Client {
    async fn send(&self, req: reqwest::RequestBuilder) -> Outcome {
        match req.send().await {
            Ok(res) => {
                let status = res.status().as_u16();
                let retry_after = res.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_owned);
                match res.bytes().await {
                    Ok(bytes) => Outcome::Answer {
                        status,
                        retry_after,
                        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    },
                    Err(e) => Outcome::NoAnswer(format!("status {status}, then the body broke: {e:?}")),
                }
            }
            Err(e) if e.is_connect() => Outcome::Refused,
            Err(e) => Outcome::NoAnswer(format!("{e:?}")),
        }
    }

    /// File a refusal or a broken answer; whether the client goes on.
    fn file_other(&self, t: &mut Tally, what: &str, outcome: Outcome, took: Duration) -> bool {
        match outcome {
            Outcome::Answer { status, retry_after, body } => {
                match check_refusal(status, retry_after.as_deref(), &body) {
                    Ok(()) => {
                        t.refusals += 1;
                        t.slowest_refusal = t.slowest_refusal.max(took);
                    }
                    Err(e) => t.wrong.push(format!("{what}: {e}")),
                }
                true
            }
            Outcome::Refused => {
                t.conn_refused += 1;
                !self.spec.stop_on_refused
            }
            Outcome::NoAnswer(e) => {
                t.no_answer.push(format!("{what} after {} ms: {e}", took.as_millis()));
                true
            }
        }
    }

    async fn create(&self, n: usize, i: usize) -> bool {
        let body = json!({"model": self.spec.model, "messages": [{"role": "user", "content": format!("client {n} request {i}")}]});
        let started = Instant::now();
        let outcome = self.send(self.http.post(format!("{}/v1/chat/completions", self.base)).json(&body)).await;
        let took = started.elapsed();
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        t.note_time(took, || format!("create -> {}", outcome.describe()));
        t.slowest_create = t.slowest_create.max(took);
        if let Outcome::Answer { status: 200, body, .. } = &outcome {
            match body["id"].as_str() {
                Some(id) => {
                    t.acked.push(id.to_owned());
                    let mark = self.mark.lock().map(|m| *m).unwrap_or(None);
                    if let (Some(mark), None) = (mark, t.first_ok_after_mark) {
                        t.first_ok_after_mark = Some(mark.elapsed());
                    }
                }
                None => t.wrong.push(format!("create: 200 without an id: {body}")),
            }
            return true;
        }
        self.file_other(&mut t, "create", outcome, took)
    }

    /// A read: a page of the list, or an acknowledged completion by id.
    async fn read(&self, n: usize, i: usize) -> bool {
        let known = {
            let t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
            t.acked.get((n * 7919 + i) % t.acked.len().max(1)).cloned()
        };
        let (path, must_find) = match known {
            Some(id) if i.is_multiple_of(2) => (format!("/v1/chat/completions/{id}"), self.spec.reads_must_find),
            _ => ("/v1/chat/completions?limit=2".to_owned(), true),
        };
        let started = Instant::now();
        let outcome = self.send(self.http.get(format!("{}{path}", self.base))).await;
        let took = started.elapsed();
        let mut t = self.tally.lock().unwrap_or_else(|e| e.into_inner());
        t.note_time(took, || format!("GET {path} -> {}", outcome.describe()));
        t.slowest_read = t.slowest_read.max(took);
        match &outcome {
            Outcome::Answer { status: 200, .. } => {
                t.reads += 1;
                true
            }
            Outcome::Answer { status: 404, .. } if !must_find => {
                t.reads += 1;
                true
            }
            _ => self.file_other(&mut t, &format!("GET {path}"), outcome, took),
        }
    }
}

/// `GET /readyz`: the status and the `reasons` it gives (none when it did not answer in 3 s).
pub async fn readyz(base: &str) -> Option<(u16, Vec<String>)> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().ok()?;
    let res = http.get(format!("{base}/readyz")).send().await.ok()?;
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap_or_default();
    let reasons = body["reasons"].as_array().map(|r| r.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect());
    Some((status, reasons.unwrap_or_default()))
}

/// Wait until `/readyz` answers `status` with `reason` among its reasons (any reasons: `None`).
pub async fn wait_readyz(base: &str, status: u16, reason: Option<&str>, timeout: Duration) -> Duration {
    let started = Instant::now();
    let what = format!("/readyz to answer {status} with reason {reason:?}");
    ferrostack_testkit::wait_for(&what, timeout, || async move {
        let (got, reasons) = readyz(base).await?;
        (got == status && reason.is_none_or(|r| reasons.iter().any(|g| g == r))).then_some(())
    })
    .await;
    started.elapsed()
}

/// Print one line of numbers for the closing note (`cargo test ... 2>&1 | grep FAULTS`).
pub fn report(test: &str, line: &str) {
    eprintln!("FAULTS {test}: {line}");
}
