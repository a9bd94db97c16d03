//! Black-box tests of the `ferrostack` binary: exit codes and messages for bad input, secrets kept
//! out of output, `migrate` and `migrate --status`, and a graceful stop on SIGTERM.

#![expect(clippy::expect_used, reason = "a test fails by panicking; harness = false targets are not cfg(test)")]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, ExitCode, Output, Stdio};
use std::time::Duration;

use ferrostack_testkit::{Postgres, Test, TestDatabase};

const BIN: &str = env!("CARGO_BIN_EXE_ferrostack");
const SECRET: &str = "hunter2-do-not-print";

fn main() -> ExitCode {
    ferrostack_testkit::run(vec![
        Test::plain("cli::config_check_prints_the_resolved_config_with_secrets_redacted", config_check_redacts),
        Test::plain("cli::bad_configs_exit_non_zero_naming_the_cause", bad_configs),
        Test::plain("cli::config_check_of_llama_stack_configs_lists_served_and_ignored", llama_stack_configs),
        Test::plain("cli::serve_on_an_unreachable_database_fails_naming_the_backend", serve_unreachable),
        Test::plain("cli::serve_builtin_then_sigterm_stops_gracefully", serve_then_sigterm),
        Test::plain("cli::config_show_default_prints_a_loadable_starter_config", show_default),
        Test::postgres("cli::serve_on_an_unknown_database_fails_naming_it", serve_unknown_database),
        Test::postgres("cli::migrate_status_apply_apply_status", migrate_cycle),
        Test::postgres("cli::serve_refuses_a_schema_that_is_behind", serve_refuses_behind),
        Test::postgres("cli::debug_logs_carry_no_message_text_or_bound_values", debug_logs_say_nothing),
        Test::plain("cli::config_check_says_where_a_deployment_is_open", open_deployment_warnings),
    ])
}

fn ferrostack(args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    cmd.env("HOME", home).env("FERROSTACK_HOME", home.join("ferrostack")).env("RUST_LOG", "info");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run ferrostack")
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn write(dir: &Path, name: &str, body: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write config");
    path.display().to_string()
}

fn postgres_yaml(host: &str, port: u16, db: &str, user: &str) -> String {
    format!(
        "version: 2\nstorage:\n  backends:\n    kv_pg: {{ type: kv_postgres, host: {host}, port: {port}, db: {db}, user: {user}, password: {SECRET}, create_timeout_ms: 2000, wait_timeout_ms: 2000 }}\n    sql_pg: {{ type: sql_postgres, host: {host}, port: {port}, db: {db}, user: {user}, password: {SECRET}, create_timeout_ms: 2000, wait_timeout_ms: 2000 }}\n  stores:\n    metadata: {{ backend: kv_pg, namespace: registry }}\n    prompts: {{ backend: kv_pg, namespace: prompts }}\n    connectors: {{ backend: kv_pg, namespace: connectors }}\n    inference: {{ backend: sql_pg }}\n    conversations: {{ backend: sql_pg }}\nserver: {{ host: 127.0.0.1, port: 0 }}\n"
    )
}

async fn config_check_redacts() {
    let home = tempfile::tempdir().expect("tempdir");
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../deploy/examples/named-backends.yaml");
    let env = [
        ("POSTGRES_HOST", "db.internal"),
        ("POSTGRES_PORT", "5433"),
        ("POSTGRES_DB", "stack"),
        ("POSTGRES_USER", "stack"),
        ("POSTGRES_PASSWORD", SECRET),
    ];
    let out = ferrostack(&["config", "check", example], &env, home.path());
    let all = text(&out);
    assert!(out.status.success(), "config check of the named-backends example: {all}");
    assert!(!all.contains(SECRET), "the password is never printed: {all}");
    assert!(all.contains("********"), "the password shows as redacted: {all}");
    assert!(all.contains("remote::chromadb"), "the unserved provider is warned about: {all}");
    assert!(all.contains("\"port\": 5433"), "env values are substituted and coerced: {all}");
}

/// `config check` of the Llama Stack-shaped configs in `tests/llama-stack/`: valid, with one line
/// saying what is served and what is accepted and ignored; the warning is not repeated.
async fn llama_stack_configs() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/llama-stack");
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case<'_>; 3] = [
        ("starter.yaml", &[("VLLM_URL", "http://vllm:8000/v1")], "inference provider vllm (remote::vllm)"),
        (
            "postgres-demo.yaml",
            &[("INFERENCE_MODEL", "m"), ("VLLM_URL", "http://vllm:8000/v1")],
            "authentication kubernetes",
        ),
        ("k8s-benchmark.yaml", &[("INFERENCE_MODEL", "m")], "authentication github_token"),
    ];
    for (name, env, served) in cases {
        let path = format!("{dir}/{name}");
        let out = ferrostack(&["config", "check", &path], env, home.path());
        let all = text(&out);
        assert!(out.status.success(), "{name}: {all}");
        let line = all.lines().find(|l| l.starts_with("# served: ")).unwrap_or_else(|| panic!("{name}: {all}"));
        assert!(line.contains(served), "{name}: {line}");
        assert!(line.contains("; accepted and ignored: ") && line.contains("api safety"), "{name}: {line}");
        assert!(!all.contains("# warning: accepted and ignored"), "{name}: listed once: {all}");
    }
}

async fn bad_configs() {
    let home = tempfile::tempdir().expect("tempdir");
    let dir = home.path();
    let sqlite = "    kv: { type: kv_sqlite, db_path: /tmp/x.db }\n";
    struct Case {
        name: &'static str,
        body: String,
        /// Words the message must contain.
        words: Vec<&'static str>,
    }
    let stores = |metadata: &str, inference: &str| {
        format!(
            "version: 2\nstorage:\n  backends:\n{sqlite}  stores:\n    metadata: {metadata}\n    inference: {inference}\n    conversations: null\n    prompts: null\n    connectors: null\n"
        )
    };
    let cases = vec![
        Case {
            name: "malformed yaml",
            body: "version: 2\nstorage: [unclosed\n".into(),
            words: vec!["bad.yaml", "line"],
        },
        Case { name: "unknown field", body: "version: 2\nserver: { prot: 1 }\n".into(), words: vec!["server", "prot"] },
        Case {
            name: "missing env var",
            body: "version: 2\nserver: { host: \"${env.FERRO_TEST_UNSET_HOST}\" }\n".into(),
            words: vec!["FERRO_TEST_UNSET_HOST", "server.host"],
        },
        Case {
            name: "unknown backend",
            body: stores("{ backend: nope, namespace: r }", "null"),
            words: vec!["storage.stores.metadata", "nope", "kv"],
        },
        Case {
            name: "wrong family",
            body: stores("{ backend: kv, namespace: r }", "{ backend: kv }"),
            words: vec!["storage.stores.inference", "sql_*"],
        },
    ];
    for Case { name: case, body, words } in cases {
        let path = write(dir, "bad.yaml", &body);
        for args in [vec!["config", "check", path.as_str()], vec!["serve", "--config", path.as_str()]] {
            let out = ferrostack(&args, &[], dir);
            let all = text(&out);
            assert_eq!(out.status.code(), Some(2), "{case} ({args:?}) exits 2: {all}");
            for w in &words {
                assert!(all.contains(w), "{case} ({args:?}): message names {w:?}: {all}");
            }
            assert!(!all.contains("panicked"), "{case}: no panic: {all}");
        }
    }
    let out = ferrostack(&["config", "check", "/nonexistent/ferrostack.yaml"], &[], dir);
    assert_eq!(out.status.code(), Some(2), "missing file: {}", text(&out));
    assert!(text(&out).contains("/nonexistent/ferrostack.yaml"), "names the file: {}", text(&out));
}

async fn serve_unreachable() {
    let home = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1.
    let path = write(home.path(), "pg.yaml", &postgres_yaml("127.0.0.1", 1, "ferrostack", "postgres"));
    for args in [vec!["serve", "--config", path.as_str()], vec!["migrate", "--config", path.as_str()]] {
        let out = ferrostack(&args, &[], home.path());
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {all}");
        assert!(all.contains("kv_pg") || all.contains("sql_pg"), "{args:?} names the backend: {all}");
        assert!(all.contains("127.0.0.1:1"), "{args:?} says where it tried: {all}");
        assert!(!all.contains(SECRET), "{args:?} never prints the password: {all}");
        assert!(!all.contains("panicked"), "{args:?}: no panic: {all}");
    }
}

async fn serve_unknown_database(pg: Postgres) {
    let home = tempfile::tempdir().expect("tempdir");
    let yaml = postgres_yaml(&pg.host(), pg.port(), "no_such_database_here", &pg.user());
    let path = write(home.path(), "pg.yaml", &yaml);
    let out = ferrostack(&["serve", "--config", &path], &[], home.path());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("no_such_database_here"), "names the database: {all}");
    assert!(!all.contains(SECRET), "never prints the password: {all}");
}

fn pg_config_file(dir: &Path, db: &TestDatabase) -> String {
    let server = db.server();
    write(dir, "pg.yaml", &postgres_yaml(&server.host(), server.port(), db.name(), &server.user()))
}

async fn migrate_cycle(pg: Postgres) {
    let db = pg.fresh_database().await;
    let home = tempfile::tempdir().expect("tempdir");
    let path = pg_config_file(home.path(), &db);

    let out = ferrostack(&["migrate", "--config", &path, "--status"], &[], home.path());
    let before = text(&out);
    assert!(out.status.success(), "{before}");
    assert!(before.contains("pending") && before.contains("kvstore"), "all pending before: {before}");
    assert!(!before.contains("applied "), "nothing applied before: {before}");

    let out = ferrostack(&["migrate", "--config", &path], &[], home.path());
    let first = text(&out);
    assert!(out.status.success(), "{first}");
    assert!(first.contains("applied") && first.contains("kvstore"), "first run applies: {first}");

    let out = ferrostack(&["migrate", "--config", &path], &[], home.path());
    let second = text(&out);
    assert!(out.status.success(), "{second}");
    assert!(second.contains("up to date") && !second.contains("applied"), "second run is a no-op: {second}");

    let out = ferrostack(&["migrate", "--config", &path, "--status"], &[], home.path());
    let after = text(&out);
    assert!(after.contains("applied") && !after.contains("pending"), "all applied after: {after}");
}

async fn serve_refuses_behind(pg: Postgres) {
    let db = pg.fresh_database().await;
    let home = tempfile::tempdir().expect("tempdir");
    let path = pg_config_file(home.path(), &db);
    let out = ferrostack(&["serve", "--config", &path], &[], home.path());
    let all = text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("ferrostack migrate"), "names the command: {all}");
    assert!(all.contains("--auto-migrate"), "names the override: {all}");
}

/// A `ferrostack serve` process started by a test, its address read from its log.
struct Serving {
    child: std::process::Child,
    addr: String,
    stdout: std::thread::JoinHandle<Vec<String>>,
    stderr: std::thread::JoinHandle<String>,
}

impl Serving {
    /// Spawn `cmd` (a `serve` command) with piped output and wait until it logs its address.
    fn start(cmd: &mut Command) -> Serving {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().expect("spawn ferrostack serve");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = std::thread::spawn(move || {
            let mut lines = Vec::new();
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(i) = line.find("listening on http://") {
                    let rest = &line[i + "listening on http://".len()..];
                    let _ = tx.send(rest.chars().take_while(|c| !c.is_whitespace()).collect::<String>());
                }
                lines.push(line);
            }
            lines
        });
        let stderr = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
        let addr = rx.recv_timeout(Duration::from_secs(60)).expect("the server logs its address");
        Serving { child, addr, stdout, stderr }
    }

    /// SIGTERM, wait for the exit; its status and everything it wrote (stdout, then stderr).
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let kill = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill");
        assert!(kill.success());
        let status = self.child.wait().expect("wait");
        let out = self.stdout.join().expect("stdout reader").join("\n");
        let err = self.stderr.join().expect("stderr reader");
        (status, format!("{out}\n{err}"))
    }
}

async fn serve_then_sigterm() {
    let home = tempfile::tempdir().expect("tempdir");
    let serving = Serving::start(
        Command::new(BIN)
            .args(["serve", "--port", "0"])
            .env("FERROSTACK_HOME", home.path())
            .env("RUST_LOG", "info")
            .env_remove("FERROSTACK_CONFIG")
            .env_remove("OLLAMA_URL")
            .env_remove("VLLM_URL")
            .env_remove("OPENAI_API_KEY"),
    );
    let addr = serving.addr.clone();
    let res = reqwest::get(format!("http://{addr}/v1/health")).await.expect("health answers");
    assert_eq!(res.status().as_u16(), 200);

    // No config, no engine variable: the echo model answers, and the completion is stored.
    let client = reqwest::Client::new();
    let body = serde_json::json!({"model": "echo", "messages": [{"role": "user", "content": "say hi"}]});
    let res = client.post(format!("http://{addr}/v1/chat/completions")).json(&body).send().await.expect("chat");
    assert_eq!(res.status().as_u16(), 200);
    let completion: serde_json::Value = res.json().await.expect("json");
    assert_eq!(completion["choices"][0]["message"]["content"], "echo: say hi", "{completion}");
    assert_eq!(completion["usage"], serde_json::json!({"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5}));
    let id = completion["id"].as_str().expect("id");
    let stored: serde_json::Value =
        reqwest::get(format!("http://{addr}/v1/chat/completions/{id}")).await.expect("get").json().await.expect("json");
    assert_eq!(stored["id"], id, "stored: {stored}");
    let models: serde_json::Value =
        reqwest::get(format!("http://{addr}/v1/models")).await.expect("models").json().await.expect("json");
    assert_eq!(models["data"][0]["id"], "echo", "{models}");

    let (status, lines) = serving.stop();
    assert!(status.success(), "SIGTERM ends with exit 0: {status:?}\n{lines}");
    assert!(lines.contains("SIGTERM"), "the signal is logged: {lines}");
    assert!(lines.contains("ferrostack stopped"), "shutdown completes: {lines}");
    assert!(lines.contains("inference providers and models"), "the active providers are logged: {lines}");
    assert!(lines.contains("OLLAMA_URL"), "and how to add a real engine: {lines}");
}

async fn show_default() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = ferrostack(&["config", "show-default"], &[], home.path());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("inline::echo") && all.contains("\"model_id\": \"echo\""),
        "the echo provider and model: {all}"
    );

    let out = ferrostack(&["config", "show-default"], &[("OPENAI_API_KEY", SECRET)], home.path());
    let printed = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{}", text(&out));
    assert!(!printed.contains(SECRET), "the key is never printed: {printed}");
    assert!(printed.contains("remote::openai") && printed.contains("\"refresh_models\": true"), "{printed}");
    assert!(!printed.contains("inline::echo"), "no echo once an engine is set: {printed}");
    // What it prints is a config file.
    let file = write(home.path(), "copied.yaml", &printed);
    let out = ferrostack(&["config", "check", &file], &[], home.path());
    assert!(out.status.success(), "the printed config loads: {}", text(&out));
}

/// A stand-in upstream on loopback: every chat completion answers the same small completion.
async fn fake_upstream() -> (String, actix_web::dev::ServerHandle) {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let server = HttpServer::new(|| {
        App::new().route(
            "/v1/chat/completions",
            web::post().to(|| async {
                HttpResponse::Ok().json(serde_json::json!({
                    "id": "chatcmpl-upstream", "object": "chat.completion", "created": 1_700_000_000, "model": "m",
                    "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "ok"}}]
                }))
            }),
        )
    })
    .workers(1)
    .disable_signals()
    .bind(("127.0.0.1", 0))
    .expect("bind the fake upstream");
    let addr = server.addrs()[0];
    let server = server.run();
    let handle = server.handle();
    ferrostack_testkit::spawn(server);
    (format!("http://{addr}/v1"), handle)
}

async fn debug_logs_say_nothing(pg: Postgres) {
    const MARKER: &str = "zq-private-7f3a";
    let db = pg.fresh_database().await;
    let home = tempfile::tempdir().expect("tempdir");
    let (upstream, upstream_handle) = fake_upstream().await;
    let s = db.server();
    let yaml = format!(
        "{}providers:\n  inference:\n    - {{ provider_id: fake, provider_type: remote::vllm, config: {{ url: \"{upstream}\" }} }}\nmodels:\n  - {{ model_id: m, provider_id: fake }}\ntelemetry: {{ log_level: debug }}\n",
        postgres_yaml(&s.host(), s.port(), db.name(), &s.user())
            .replace(&format!(", password: {SECRET}"), "")
            // Stored before the answer, so the list below sees it.
            .replace("inference: { backend: sql_pg }", "inference: { backend: sql_pg, durability: sync }")
    );
    let config = write(home.path(), "debug.yaml", &yaml);
    let serving = Serving::start(
        Command::new(BIN)
            .args(["serve", "--config", &config, "--auto-migrate"])
            .env_remove("RUST_LOG")
            .env("FERROSTACK_HOME", home.path()),
    );
    let addr = serving.addr.clone();
    let http = reqwest::Client::new();
    let body = serde_json::json!({
        "model": "m",
        "messages": [{"role": "user", "content": format!("the message {MARKER}")}],
        "metadata": {"topic": format!("meta-{MARKER}")}
    });
    let res = http.post(format!("http://{addr}/v1/chat/completions")).json(&body).send().await.expect("chat");
    assert_eq!(res.status().as_u16(), 200);
    let res = http
        .get(format!("http://{addr}/v1/chat/completions?metadata[topic]=meta-{MARKER}"))
        .send()
        .await
        .expect("list");
    let page: serde_json::Value = res.json().await.expect("json");
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1), "stored and found: {page}");

    let (status, logs) = serving.stop();
    upstream_handle.stop(false).await;
    assert!(status.success(), "{logs}");
    assert!(logs.contains("DEBUG"), "debug logging was on: {logs}");
    assert!(!logs.contains(MARKER), "message text and bound values stay out of debug logs:\n{logs}");
}

async fn open_deployment_warnings() {
    let home = tempfile::tempdir().expect("tempdir");
    let open = write(
        home.path(),
        "open.yaml",
        "version: 2\nserver: { host: 0.0.0.0 }\nstorage:\n  backends:\n    kv_default: { type: kv_sqlite, db_path: /tmp/kv.db }\n    sql_default: { type: sql_postgres, host: db.internal, user: app, password: postgres }\n  stores:\n    metadata: { backend: kv_default, namespace: registry }\n    prompts: null\n    connectors: null\n    inference: { backend: sql_default }\n    conversations: null\n    responses: null\nproviders:\n  inference:\n    - { provider_id: vllm, provider_type: remote::vllm, config: { url: 'http://gpu.internal:8000/v1', verify_tls: false } }\n",
    );
    let out = ferrostack(&["config", "check", &open], &[], home.path());
    let all = text(&out);
    assert!(out.status.success(), "{all}");
    for words in [
        "authentication is off and the server listens on 0.0.0.0",
        "inference provider vllm is called without checking its TLS certificate",
        "inference provider vllm is called over plain http",
        "storage backend sql_default reaches PostgreSQL at db.internal without a verified TLS connection",
        "storage backend sql_default uses a well-known password",
    ] {
        assert!(all.contains(words), "missing warning '{words}':\n{all}");
    }
    assert!(!all.contains("password: postgres") && !all.contains("\"postgres\""), "the password is not echoed: {all}");

    let header = write(
        home.path(),
        "header.yaml",
        "version: 2\nserver:\n  auth:\n    provider_config: { type: upstream_header, principal_header: x-user }\n",
    );
    let all = text(&ferrostack(&["config", "check", &header], &[], home.path()));
    assert!(all.contains("trusts the x-user header from any peer"), "{all}");

    let mapped = write(
        home.path(),
        "mapped.yaml",
        "version: 2\nserver:\n  auth:\n    provider_config: { type: oauth2_token, jwks: { uri: 'https://idp.example.com/jwks' }, claims_mapping: { sub: roles } }\n",
    );
    let all = text(&ferrostack(&["config", "check", &mapped], &[], home.path()));
    assert!(all.contains("claims_mapping files the 'sub' claim under 'roles'"), "{all}");

    // The built-in set-up on loopback says nothing of the kind.
    let quiet = write(home.path(), "quiet.yaml", "version: 2\n");
    let all = text(&ferrostack(&["config", "check", &quiet], &[], home.path()));
    assert!(!all.contains("# warning"), "{all}");
}
