//! Log output through `tracing`. (OpenTelemetry export joins here with the telemetry work.)

use ferrostack_config::{LogFormat, TelemetryConfig};
use tracing_subscriber::EnvFilter;

/// Install the global subscriber: `RUST_LOG` overrides `telemetry.log_level`. Installing twice
/// (tests embedding the app) keeps the first one.
pub fn init(cfg: &TelemetryConfig) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => {
            EnvFilter::try_new(&v).map_err(|e| anyhow::anyhow!("RUST_LOG={v:?} is not a valid log filter: {e}"))?
        }
        _ => EnvFilter::try_new(&cfg.log_level)
            .map_err(|e| anyhow::anyhow!("telemetry.log_level: {:?} is not a valid log filter: {e}", cfg.log_level))?,
    };
    // Colours only for a person at a terminal, never into files or log collectors.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_ansi(ansi).with_writer(std::io::stdout);
    // An error here only means a subscriber is already installed.
    let _ = match cfg.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    Ok(())
}
