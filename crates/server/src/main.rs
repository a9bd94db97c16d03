//! `ferrostack`: parse the command line, run the command, map failure to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = ferrostack::cli::Cli::parse();
    match ferrostack::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(ferrostack::exit_code(&err))
        }
    }
}
