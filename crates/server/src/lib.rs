//! The `ferrostack` binary as a library, so tests and tools embed exactly what `main` runs.

mod app;
pub mod cli;
mod durability;
pub mod exposure;
pub mod malloc;
mod metrics;
mod migrate;
mod models;
pub mod telemetry;

use std::io::Write as _;
use std::path::Path;

use anyhow::Context;
use ferrostack_catalog::Catalog;
use ferrostack_config::{Env, Loaded};
use tokio_util::sync::CancellationToken;

pub use app::{Application, ServeOptions, cancel_on_signals};
use cli::{Cli, Command, ConfigCommand};
pub use telemetry::{Telemetry, TelemetryGuard};

/// Exit code for an invalid run config (anything else that fails exits with 1).
pub const EXIT_CONFIG: u8 = 2;

/// Run one CLI command to completion.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let env = Env::process();
    match cli.command {
        Command::Serve(args) => {
            let Loaded { mut config, warnings, coverage } = load(args.config.as_deref(), &env)?;
            if let Some(host) = args.host {
                config.server.host = host;
            }
            if let Some(port) = args.port {
                config.server.port = port;
            }
            let telemetry = telemetry::init(&config.telemetry, &env)?;
            // What is accepted and ignored is the first warning (one line); the whole picture
            // (served, ignored, disabled by the environment) goes to the info log.
            tracing::info!("run config: {coverage}");
            for w in warnings {
                tracing::warn!("{w}");
            }
            let shutdown = CancellationToken::new();
            let signals = cancel_on_signals(shutdown.clone())?;
            let options = ServeOptions { auto_migrate: args.auto_migrate, telemetry: telemetry.telemetry() };
            let served = match Application::build(&config, &options).await {
                // Steps 1 to 4 of the shutdown order are in `run_until`; a signal cancels
                // `shutdown`, and `run_until` then shuts down in order.
                Ok(app) => {
                    let run = app.run_until(shutdown);
                    tokio::pin!(run);
                    tokio::select! {
                        served = &mut run => served,
                        () = signals => run.await,
                    }
                }
                Err(e) => Err(e),
            };
            // 5. Last: flush the final spans and metrics (start-up failures included) and stop
            //    the exporters.
            telemetry.shutdown().await;
            served
        }
        Command::Migrate(args) => {
            let Loaded { config, warnings, .. } = load(args.config.as_deref(), &env)?;
            // Logs only: a one-shot command exports no telemetry.
            let logs = ferrostack_config::TelemetryConfig { enabled: false, ..config.telemetry.clone() };
            let _logging = telemetry::init(&logs, &env)?;
            for w in warnings {
                tracing::warn!("{w}");
            }
            let catalog = Catalog::open(&config.storage).await.context("cannot open storage backends")?;
            // The report is collected first and written after: holding stdout's lock across an
            // await would deadlock with log lines written to stdout from other threads.
            let mut report = Vec::new();
            let result = if args.status {
                migrate::status(&catalog, &mut report).await
            } else {
                migrate::apply(&catalog, &mut report).await
            };
            catalog.close().await;
            std::io::stdout().write_all(&report)?;
            result
        }
        Command::Config { command: ConfigCommand::Check { file } } => {
            let Loaded { config, warnings, coverage } = load(Some(&file), &env)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "# {}: valid", file.display())?;
            writeln!(out, "# {coverage}")?;
            // The coverage line already lists what is ignored; the other warnings follow.
            let listed = coverage.warning();
            for w in warnings.iter().filter(|w| Some(*w) != listed.as_ref()).chain(&exposure::warnings(&config)) {
                writeln!(out, "# warning: {w}")?;
            }
            writeln!(out, "{}", serde_json::to_string_pretty(&config.redacted_json())?)?;
            Ok(())
        }
        Command::Config { command: ConfigCommand::ShowDefault } => {
            let Loaded { config, coverage, .. } = load(None, &env)?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "# the config `ferrostack serve` uses without --config (JSON is YAML too)")?;
            writeln!(out, "# {coverage}")?;
            writeln!(out, "# secrets show as {}: write them back, or as ${{env.NAME}}", ferrostack_config::REDACTED)?;
            writeln!(out, "{}", serde_json::to_string_pretty(&config.redacted_json())?)?;
            Ok(())
        }
    }
}

fn load(path: Option<&Path>, env: &Env) -> anyhow::Result<Loaded> {
    Ok(match path {
        Some(p) => ferrostack_config::load_file(p, env)?,
        None => ferrostack_config::load_default(env)?,
    })
}

/// The process exit code for an error returned by [`run`].
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.downcast_ref::<ferrostack_config::ConfigError>().is_some() { EXIT_CONFIG } else { 1 }
}
