//! `loadgen`: drive an OpenAI-compatible endpoint and report requests/s, latency percentiles,
//! errors by kind and time to first chunk, as a markdown table row or JSON.
//!
//! ```text
//! loadgen run --url http://127.0.0.1:8321/v1/chat/completions --concurrency 50 --duration 10 \
//!     --model llama --stream --count-rows "host=127.0.0.1 user=postgres dbname=bench"
//! loadgen run --url 'http://127.0.0.1:8321/v1/chat/completions?limit=20' --get --requests 500 --token T
//! loadgen count --database "host=127.0.0.1 user=postgres dbname=bench"
//! ```

use std::io::Write;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use ferrostack_loadgen::{Options, Report, chat_body, count_rows, responses_body, run, stored_since};

#[derive(Debug, Parser)]
#[command(name = "loadgen", about = "Load driver for ferrostack's benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// One markdown table row (`--header` adds the header).
    Markdown,
    /// One JSON object.
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Send load and report.
    Run(RunArgs),
    /// Print the number of rows in `inference_store`.
    Count {
        /// libpq-style connection string or postgres:// URL.
        #[arg(long)]
        database: String,
    },
    /// Print the markdown header of `run`'s rows.
    Header,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Target URL (`.../v1/chat/completions`, or any URL with `--get`).
    #[arg(long)]
    url: String,
    /// Requests in flight at once.
    #[arg(long, default_value_t = 50)]
    concurrency: usize,
    /// Seconds to measure (after the warm-up).
    #[arg(long)]
    duration: Option<f64>,
    /// Or the number of requests to measure.
    #[arg(long)]
    requests: Option<u64>,
    /// Seconds of unmeasured warm-up.
    #[arg(long, default_value_t = 0.0)]
    warmup: f64,
    /// Per-request timeout in seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// `model` of the chat request.
    #[arg(long, default_value = "mock-model")]
    model: String,
    /// Ask for (and read) an SSE stream.
    #[arg(long)]
    stream: bool,
    /// Send GET requests without a body (listing) instead of chat completions.
    #[arg(long, conflicts_with = "stream")]
    get: bool,
    /// Send Responses API requests (`{model, instructions, input}`; a stream ends with
    /// `response.completed`) instead of chat completions.
    #[arg(long, conflicts_with = "get")]
    responses: bool,
    /// Bearer token.
    #[arg(long, env = "LOADGEN_TOKEN")]
    token: Option<String>,
    /// Name of the run in the report.
    #[arg(long, default_value = "run")]
    label: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Markdown)]
    format: Format,
    /// Print the markdown header before the row.
    #[arg(long)]
    header: bool,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    json_out: Option<std::path::PathBuf>,
    /// After the run, count the rows stored in this PostgreSQL database's `inference_store`
    /// (connection string) and compare with the 2xx answers, warm-up included.
    #[arg(long)]
    count_rows: Option<String>,
    /// How long the row count may stay unchanged before it is taken as final, in seconds.
    #[arg(long, default_value_t = 5.0)]
    settle: f64,
}

fn write_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Header => write_out(&Report::markdown_header()),
        Command::Count { database } => write_out(&count_rows(&database).await?.to_string()),
        Command::Run(args) => {
            let options = Options {
                url: args.url.clone(),
                body: (!args.get).then(|| match args.responses {
                    true => responses_body(&args.model, args.stream),
                    false => chat_body(&args.model, args.stream),
                }),
                stream: args.stream,
                token: args.token.clone(),
                concurrency: args.concurrency,
                duration: args.duration.map(Duration::from_secs_f64),
                requests: args.requests,
                warmup: Duration::from_secs_f64(args.warmup),
                timeout: Duration::from_secs_f64(args.timeout),
            };
            let before = match &args.count_rows {
                Some(db) => Some(count_rows(db).await?),
                None => None,
            };
            let mut report = run(&args.label, &options).await?;
            if let (Some(db), Some(before)) = (&args.count_rows, before) {
                let settle = Duration::from_secs_f64(args.settle);
                report.stored_rows = Some(stored_since(db, before, report.ok_total, settle).await?);
            }
            if let Some(path) = &args.json_out {
                std::fs::write(path, serde_json::to_string_pretty(&report)?)?;
            }
            match args.format {
                Format::Json => write_out(&serde_json::to_string(&report)?),
                Format::Markdown if args.header => {
                    write_out(&format!("{}\n{}", Report::markdown_header(), report.markdown_row()))
                }
                Format::Markdown => write_out(&report.markdown_row()),
            }
        }
    }
}
