//! `ferrostack`: parse the command line, run the command, map failure to an exit code.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    // First, before any large allocation: memory is given back after bursts (see `malloc`).
    if let Some(err) = ferrostack::malloc::fix_mmap_threshold() {
        eprintln!("warning: cannot re-execute with glibc.malloc.mmap_threshold set ({err}); going on without it");
    }
    let cli = ferrostack::cli::Cli::parse();
    match ferrostack::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(ferrostack::exit_code(&err))
        }
    }
}
