//! Test support for ferrostack's integration tests.
//!
//! - [`run`] runs a list of [`Test`]s through libtest-mimic (so `cargo test` and nextest both list
//!   and filter them). Tests that need PostgreSQL are skipped with ONE loud line saying how many and
//!   why when no server answers, unless `CI=true` or `FERROSTACK_REQUIRE_POSTGRES=1`, in which case
//!   they fail with the reason.
//! - [`Postgres`] is the server found through `TEST_DATABASE_URL`, else
//!   `postgres://postgres@127.0.0.1:5432/postgres`; [`Postgres::fresh_database`] creates a
//!   `test_<uuid>` database that is dropped when the guard is.

pub mod cluster;
pub mod upstream;

use std::future::Future;
use std::process::ExitCode;
use std::sync::OnceLock;
use std::time::Duration;

pub use libtest_mimic::Failed;
use libtest_mimic::{Arguments, Trial};
use tokio_postgres::NoTls;

/// The URL tried when `TEST_DATABASE_URL` is not set.
pub const DEFAULT_TEST_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// What a test needs from the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Runs anywhere.
    Nothing,
    /// Needs a PostgreSQL server; gets a [`Postgres`].
    Postgres,
}

type Body = Box<dyn FnOnce(Option<Postgres>) -> Result<(), Failed> + Send>;

/// One named test.
pub struct Test {
    name: String,
    needs: Needs,
    body: Body,
    skip: Option<String>,
}

impl std::fmt::Debug for Test {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Test").field("name", &self.name).field("needs", &self.needs).field("skip", &self.skip).finish()
    }
}

impl Test {
    /// A test that needs nothing; the body runs on its own Tokio runtime.
    pub fn plain<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        Self { name: name.into(), needs: Needs::Nothing, body: Box::new(move |_| block_on(f())), skip: None }
    }

    /// A test that needs nothing, on a current-thread Tokio runtime: the one kind where
    /// `tokio::time::pause` / `advance` may move the clock (instead of waiting on a real one).
    pub fn current_thread<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        let body = move |_| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Failed::from(format!("cannot build a Tokio runtime: {e}")))?;
            rt.block_on(f());
            Ok(())
        };
        Self { name: name.into(), needs: Needs::Nothing, body: Box::new(body), skip: None }
    }

    /// A test that needs PostgreSQL; the body runs on its own Tokio runtime.
    pub fn postgres<F, Fut>(name: impl Into<String>, f: F) -> Self
    where
        F: FnOnce(Postgres) -> Fut + Send + 'static,
        Fut: Future<Output = ()>,
    {
        Self {
            name: name.into(),
            needs: Needs::Postgres,
            body: Box::new(move |pg| match pg {
                Some(pg) => block_on(f(pg)),
                None => Err(Failed::from("no PostgreSQL for a test that needs one")),
            }),
            skip: None,
        }
    }

    /// Report the test as skipped (libtest's "ignored"), not passed, when `reason` is given: for
    /// a test whose tool is missing on this machine. Decide with [`postgres_required`] in mind:
    /// where a test must run (CI), pass `None` and let it fail.
    pub fn skip_when(mut self, reason: Option<String>) -> Self {
        self.skip = reason;
        self
    }

    /// The test's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Run `f` to completion on a fresh multi-threaded runtime; a panic becomes a failure.
fn block_on<Fut: Future<Output = ()>>(f: Fut) -> Result<(), Failed> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| Failed::from(format!("cannot build a Tokio runtime: {e}")))?;
    rt.block_on(f);
    // Background tasks (servers, pools) die with the runtime; do not wait for them.
    rt.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

/// Whether PostgreSQL tests must run (fail rather than skip when no server answers).
pub fn postgres_required() -> bool {
    let truthy = |name: &str| {
        std::env::var(name).map(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes")).unwrap_or(false)
    };
    truthy("CI") || truthy("FERROSTACK_REQUIRE_POSTGRES")
}

/// Run the tests with libtest's command line (filters, `--list`, `--ignored`, ...).
pub fn run(tests: Vec<Test>) -> ExitCode {
    let args = Arguments::from_args();
    let pg_count = tests.iter().filter(|t| t.needs == Needs::Postgres).count();
    // Only probe for PostgreSQL when a PostgreSQL test will actually run.
    let probing = pg_count > 0 && !args.list;
    let pg = if probing { Some(Postgres::discover()) } else { None };
    let mut skip = false;
    if let Some(Err(reason)) = &pg {
        if postgres_required() {
            eprintln!(
                "\n*** {pg_count} PostgreSQL tests will FAIL: PostgreSQL is required (CI=true or \
                 FERROSTACK_REQUIRE_POSTGRES=1) but {reason}\n"
            );
        } else {
            skip = true;
            eprintln!(
                "\n*** SKIPPING {pg_count} PostgreSQL tests: {reason}. Start PostgreSQL or set \
                 TEST_DATABASE_URL; set FERROSTACK_REQUIRE_POSTGRES=1 to make this an error.\n"
            );
        }
    }
    let server = match pg {
        Some(Ok(p)) => Some(p),
        _ => None,
    };
    let trials = tests
        .into_iter()
        .map(|t| {
            let needs_pg = t.needs == Needs::Postgres;
            let server = if needs_pg { server.clone() } else { None };
            let body = t.body;
            if let Some(reason) = &t.skip {
                eprintln!("*** SKIPPING {}: {reason}", t.name);
            }
            let ignored = (needs_pg && skip) || t.skip.is_some();
            Trial::test(t.name, move || body(server)).with_ignored_flag(ignored)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit_code()
}

/// Spawn a test's background task (a fake server, concurrent requests) on the test's runtime; it
/// dies with the runtime when the test ends. The one place tests may spawn: production code uses
/// a `TaskTracker` or a `JoinSet` (clippy.toml bans a raw `tokio::spawn`).
#[expect(clippy::disallowed_methods, reason = "the tests' one spawn helper; the test's runtime owns the task")]
pub fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    tokio::spawn(f)
}

/// Poll `f` until it returns `Some`, up to `timeout`; panics naming `what` when it never does.
/// The one polling helper of the test suites: wait on a condition, never sleep for a guess.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A loopback address where nothing listens (a port the OS just handed out and took back), for
/// tests of refused connections.
pub fn unused_loopback_addr() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("bind 127.0.0.1:0: {e}"));
    listener.local_addr().unwrap_or_else(|e| panic!("local_addr: {e}"))
}

/// A reachable PostgreSQL server that tests may create databases on.
#[derive(Debug, Clone)]
pub struct Postgres {
    admin: tokio_postgres::Config,
    url: String,
}

fn cached() -> &'static OnceLock<Result<Postgres, String>> {
    static FOUND: OnceLock<Result<Postgres, String>> = OnceLock::new();
    &FOUND
}

impl Postgres {
    /// Find the server (once per process): `TEST_DATABASE_URL`, else the default URL.
    pub fn discover() -> Result<Postgres, String> {
        cached().get_or_init(probe).clone()
    }

    /// The admin URL the server was found at.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Host of the server (first one).
    pub fn host(&self) -> String {
        match self.admin.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        }
    }

    /// Port of the server.
    pub fn port(&self) -> u16 {
        self.admin.get_ports().first().copied().unwrap_or(5432)
    }

    /// Role the tests connect as.
    pub fn user(&self) -> String {
        self.admin.get_user().unwrap_or("postgres").to_owned()
    }

    /// Password of that role, if any.
    pub fn password(&self) -> Option<String> {
        self.admin.get_password().map(|p| String::from_utf8_lossy(p).into_owned())
    }

    /// A connection to the admin database.
    pub async fn admin_client(&self) -> tokio_postgres::Client {
        connect(&self.admin).await.unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.url))
    }

    /// Create a fresh, empty `test_<uuid>` database; it is dropped (forcibly) with the guard.
    pub async fn fresh_database(&self) -> TestDatabase {
        self.fresh_database_with("").await
    }

    /// [`Postgres::fresh_database`] with `options` appended to `CREATE DATABASE`, e.g. a locale:
    /// `TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`.
    pub async fn fresh_database_with(&self, options: &str) -> TestDatabase {
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        let admin = self.admin_client().await;
        admin
            .batch_execute(&format!("CREATE DATABASE \"{name}\" {options}"))
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name} failed: {e}"));
        let mut config = self.admin.clone();
        config.dbname(&name);
        TestDatabase { name, config, server: self.clone() }
    }
}

fn probe() -> Result<Postgres, String> {
    let url = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| DEFAULT_TEST_DATABASE_URL.to_owned());
    let mut admin: tokio_postgres::Config =
        url.parse().map_err(|e| format!("TEST_DATABASE_URL {url:?} is not a PostgreSQL URL: {e}"))?;
    admin.connect_timeout(Duration::from_secs(3));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot build a Tokio runtime: {e}"))?;
    rt.block_on(async {
        let client = connect(&admin).await.map_err(|e| format!("no PostgreSQL answered at {url} ({e})"))?;
        client.simple_query("SELECT 1").await.map_err(|e| format!("PostgreSQL at {url} failed a query ({e})"))?;
        Ok(Postgres { admin: admin.clone(), url: url.clone() })
    })
}

async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, conn) = config.connect(NoTls).await?;
    spawn(async move {
        // The connection ends when the client is dropped; its error then is of no interest.
        let _ = conn.await;
    });
    Ok(client)
}

/// A database created for one test; dropped with `DROP DATABASE ... WITH (FORCE)` on drop.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    config: tokio_postgres::Config,
    server: Postgres,
}

impl TestDatabase {
    /// The database name (`test_<uuid>`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Connection settings for this database.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The server it lives on (host, port, user, password).
    pub fn server(&self) -> &Postgres {
        &self.server
    }

    /// A `postgres://` URL for this database.
    pub fn url(&self) -> String {
        let auth = match self.server.password() {
            Some(p) => format!("{}:{}", self.server.user(), p),
            None => self.server.user(),
        };
        format!("postgres://{auth}@{}:{}/{}", self.server.host(), self.server.port(), self.name)
    }

    /// A direct connection to this database (for assertions and sabotage).
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.config).await.unwrap_or_else(|e| panic!("cannot connect to {}: {e}", self.name))
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin = self.server.admin.clone();
        let name = self.name.clone();
        // Drop may run inside a runtime; do the blocking work on a thread of its own.
        let dropper = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
                return;
            };
            rt.block_on(async {
                if let Ok(client) = connect(&admin).await {
                    let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                }
            });
        });
        let _ = dropper.join();
    }
}
