//! `mock-upstream`: the benchmark's OpenAI-compatible upstream. Prints `listening on http://ADDR`
//! once bound, then serves until SIGINT or SIGTERM.

use std::io::Write;

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = ferrostack_mock_upstream::Config::parse();
    let (server, addrs) = ferrostack_mock_upstream::bind(config)?;
    {
        let mut out = std::io::stdout().lock();
        for addr in &addrs {
            writeln!(out, "listening on http://{addr}")?;
        }
        out.flush()?;
    }
    let handle = server.handle();
    let mut running = tokio::task::JoinSet::new();
    running.spawn(server);
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    handle.stop(false).await;
    if let Some(served) = running.join_next().await {
        served??;
    }
    Ok(())
}
