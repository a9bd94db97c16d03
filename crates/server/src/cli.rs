//! The command line: `serve`, `migrate`, `config check`, `config show-default`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ferrostack: a multi-tenant, OpenAI-compatible API server.
#[derive(Debug, Parser)]
#[command(name = "ferrostack", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server until SIGTERM or SIGINT.
    Serve(ServeArgs),
    /// Apply pending database migrations to every storage backend (or list them with --status).
    Migrate(MigrateArgs),
    /// Inspect a run config.
    Config {
        /// The config subcommand.
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// `ferrostack serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Run config file (YAML). Without one, ferrostack uses SQLite files under $FERROSTACK_HOME
    /// (default ~/.ferrostack) and applies migrations itself.
    #[arg(long, env = "FERROSTACK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Apply pending migrations before serving (the default only for the built-in SQLite set-up).
    #[arg(long)]
    pub auto_migrate: bool,
    /// Address to bind, overriding server.host.
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind, overriding server.port (0 picks a free port).
    #[arg(long)]
    pub port: Option<u16>,
}

/// `ferrostack migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Run config file (YAML); without one, the built-in SQLite set-up.
    #[arg(long, env = "FERROSTACK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Only list applied and pending migrations; change nothing.
    #[arg(long)]
    pub status: bool,
}

/// `ferrostack config ...`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a run config and print it resolved, with secrets redacted.
    Check {
        /// The run config file (YAML).
        file: PathBuf,
    },
    /// Print the config `serve` uses without a config file (the built-in SQLite storage, and the
    /// starter providers from OLLAMA_URL, VLLM_URL, OPENAI_API_KEY, or the echo provider), with
    /// secrets redacted: a starting point to copy into a file. JSON is YAML too.
    ShowDefault,
}
