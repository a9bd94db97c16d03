//! A throwaway PostgreSQL cluster for the fault suite: `initdb` under a temporary directory, a
//! server on a free loopback port, and the faults an operator meets: a fast or immediate stop, a
//! restart, and a freeze (SIGSTOP) of the whole server.
//!
//! The cluster is the machine's PostgreSQL binaries (`/usr/lib/postgresql/<version>/bin`, or
//! `FERROSTACK_PG_BIN`), run as the current user, or as the `postgres` OS user when the tests run
//! as root (`initdb` and `postgres` refuse to run as root). [`Cluster::unavailable`] says why a
//! cluster cannot be made on this machine, for a test to skip with that reason.
//!
//! Freezing stops the postmaster *and* every process it forked: stopping only the postmaster would
//! leave the backends of open connections answering, which is not a database that hangs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::NoTls;

/// The OS user the cluster runs as when the tests run as root.
const CLUSTER_OS_USER: &str = "postgres";

/// How a cluster is stopped (`pg_ctl stop -m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopMode {
    /// Disconnect every client and stop cleanly (`fast`).
    Fast,
    /// Kill every server process without a checkpoint, as a crash would (`immediate`).
    Immediate,
}

impl StopMode {
    fn as_arg(self) -> &'static str {
        match self {
            StopMode::Fast => "fast",
            StopMode::Immediate => "immediate",
        }
    }
}

/// A PostgreSQL cluster of its own, removed (stopped, thawed first if frozen) when dropped.
#[derive(Debug)]
pub struct Cluster {
    bin: PathBuf,
    /// The temporary directory holding the data directory and the socket.
    root: PathBuf,
    data: PathBuf,
    port: u16,
    /// `Some("postgres")` when the commands must run as that user.
    run_as: Option<&'static str>,
    /// The processes stopped by [`Cluster::freeze`], to continue.
    frozen: Mutex<Vec<u32>>,
}

/// Where the PostgreSQL binaries are: `FERROSTACK_PG_BIN`, else the newest
/// `/usr/lib/postgresql/<version>/bin` with `initdb`, `pg_ctl` and `postgres`.
fn find_bin() -> Result<PathBuf, String> {
    let has_all = |dir: &Path| ["initdb", "pg_ctl", "postgres"].iter().all(|b| dir.join(b).is_file());
    if let Some(dir) = std::env::var_os("FERROSTACK_PG_BIN").map(PathBuf::from) {
        return if has_all(&dir) {
            Ok(dir)
        } else {
            Err(format!("FERROSTACK_PG_BIN={} has no initdb, pg_ctl and postgres", dir.display()))
        };
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|e| format!("no PostgreSQL binaries: /usr/lib/postgresql: {e} (set FERROSTACK_PG_BIN)"))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_string_lossy().split('.').next()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            has_all(&bin).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(|| {
        "no initdb, pg_ctl and postgres under /usr/lib/postgresql/*/bin (set FERROSTACK_PG_BIN)".to_owned()
    })
}

/// The effective uid of this process (from /proc: no libc call needed).
fn euid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Whether `user` is an OS user and `runuser` is there to switch to it.
fn can_run_as(user: &str) -> Result<(), String> {
    let out = Command::new("runuser")
        .args(["-u", user, "--", "true"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("running as root and runuser is not available ({e}): initdb refuses root"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "running as root and cannot run a command as the {user} OS user (initdb refuses root): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Which user the cluster's commands run as on this machine, or why none can.
fn runner() -> Result<Option<&'static str>, String> {
    match euid() {
        Some(0) => can_run_as(CLUSTER_OS_USER).map(|()| Some(CLUSTER_OS_USER)),
        _ => Ok(None),
    }
}

/// Every live process whose parent is `parent` (from /proc).
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // /proc/<pid>/stat: `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|stat| {
                    let rest = &stat[stat.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                .is_some_and(|ppid| ppid == parent)
        })
        .collect()
}

/// Send `signal` (e.g. `STOP`) to `pids` with kill(1); the pids it could not signal (gone).
fn signal(signal: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let mut cmd = Command::new("kill");
    cmd.arg(format!("-{signal}")).args(pids.iter().map(u32::to_string)).stderr(Stdio::null());
    // A backend that exited in between is no error.
    let _ = cmd.status();
}

impl Cluster {
    /// Why no cluster can be made here (no binaries, root without a `postgres` user), or `None`.
    pub fn unavailable() -> Option<String> {
        find_bin().err().or_else(|| runner().err())
    }

    /// `initdb` a new cluster in a temporary directory and start it on a free loopback port, with
    /// trust authentication for the `postgres` role. Blocking: call it from `spawn_blocking` or
    /// before the load starts.
    pub fn start() -> Result<Cluster, String> {
        let bin = find_bin()?;
        let run_as = runner()?;
        let root = std::env::temp_dir().join(format!("ferrostack-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&root).map_err(|e| format!("create {}: {e}", root.display()))?;
        let data = root.join("data");
        let mut cluster = Cluster { bin, root, data, port: 0, run_as, frozen: Mutex::new(Vec::new()) };
        if let Some(user) = run_as {
            let out = Command::new("chown")
                .args([&format!("{user}:"), &cluster.root.display().to_string()])
                .output()
                .map_err(|e| format!("chown: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "chown {user} {}: {}",
                    cluster.root.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        let data = cluster.data.display().to_string();
        cluster.run(
            "initdb",
            &["-D", &data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8", "--no-instructions"],
        )?;
        // Settings for a throwaway cluster: few connections, small memory, no fsync (the data
        // lives as long as the test; a stop, immediate or not, still loses no committed row:
        // the OS keeps what PostgreSQL wrote).
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nmax_connections = 60\nshared_buffers = 16MB\nfsync = off\nfull_page_writes = off\nsynchronous_commit = on\nlog_min_messages = warning\n",
            cluster.root.display()
        );
        let conf_path = cluster.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf_path).map_err(|e| format!("read {}: {e}", conf_path.display()))?;
        text.push_str(&conf);
        std::fs::write(&conf_path, text).map_err(|e| format!("write {}: {e}", conf_path.display()))?;
        // A port the OS just handed out; another process may take it first, so try a few.
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = crate::unused_loopback_addr().port();
            match cluster.start_again() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(format!("the cluster did not start: {last}"))
    }

    /// Run a PostgreSQL binary (as the cluster's user), failing with its output.
    fn run(&self, program: &str, args: &[&str]) -> Result<Output, String> {
        let path = self.bin.join(program);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        cmd.args(args).current_dir(&self.root).stdin(Stdio::null());
        let out = cmd.output().map_err(|e| format!("run {}: {e}", path.display()))?;
        if out.status.success() {
            Ok(out)
        } else {
            Err(format!(
                "{program} {args:?} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Connection settings for `db` as the `postgres` role.
    pub fn config(&self, db: &str) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config.host("127.0.0.1").port(self.port).user("postgres").dbname(db).connect_timeout(Duration::from_secs(3));
        config
    }

    /// A connection to `db` (for set-up and for checking what is stored).
    pub async fn client(&self, db: &str) -> Result<tokio_postgres::Client, String> {
        let (client, conn) = self.config(db).connect(NoTls).await.map_err(|e| format!("connect to {db}: {e}"))?;
        crate::spawn(async move {
            let _ = conn.await;
        });
        Ok(client)
    }

    /// Create database `name` on the cluster.
    pub async fn create_database(&self, name: &str) -> Result<(), String> {
        let admin = self.client("postgres").await?;
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.map_err(|e| format!("CREATE DATABASE: {e}"))
    }

    /// Start the (stopped) cluster and wait until it accepts connections. Blocking.
    pub fn start_again(&self) -> Result<(), String> {
        let data = self.data.display().to_string();
        let log = self.root.join("server.log").display().to_string();
        let options = format!("-p {}", self.port);
        self.run("pg_ctl", &["start", "-w", "-t", "30", "-D", &data, "-l", &log, "-o", &options]).map(|_| ())
    }

    /// Stop the cluster (`pg_ctl stop -m fast|immediate`) and wait until it is down. Blocking.
    pub fn stop(&self, mode: StopMode) -> Result<(), String> {
        let data = self.data.display().to_string();
        self.run("pg_ctl", &["stop", "-w", "-t", "30", "-m", mode.as_arg(), "-D", &data]).map(|_| ())
    }

    /// The postmaster's pid (first line of `postmaster.pid`), while it runs.
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// Freeze the whole server with SIGSTOP: the postmaster first (so it forks nothing new), then
    /// every process it forked (the backends of open connections, the checkpointer, the WAL
    /// writer, ...). Connections stay open and nothing answers, as with a hung host.
    pub fn freeze(&self) -> Result<(), String> {
        let postmaster = self.postmaster_pid().ok_or("the cluster is not running: no postmaster.pid")?;
        signal("STOP", &[postmaster]);
        let mut stopped = vec![postmaster];
        // A child forked just before the postmaster stopped is already its child here.
        let children = children_of(postmaster);
        signal("STOP", &children);
        stopped.extend(children);
        if let Ok(mut frozen) = self.frozen.lock() {
            frozen.extend(stopped);
        }
        Ok(())
    }

    /// Continue everything [`Cluster::freeze`] stopped (children first, then the postmaster).
    pub fn thaw(&self) {
        let mut pids = self.frozen.lock().map(|mut f| std::mem::take(&mut *f)).unwrap_or_default();
        pids.reverse();
        signal("CONT", &pids);
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.thaw();
        if self.postmaster_pid().is_some() {
            let _ = self.stop(StopMode::Immediate);
        }
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
