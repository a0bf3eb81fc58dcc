//! Structured logs through `tracing`: text or JSON on stderr.
//!
//! The level comes from the configuration (`agent.log.level`); `RUST_LOG`, when
//! set, wins, so a user can turn on debug logs for one module without editing
//! the file.

use std::io::IsTerminal;

use coral_config::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber.
pub fn init(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.is_empty() => EnvFilter::try_new(directives)?,
        _ => EnvFilter::try_new(level).map_err(|e| {
            anyhow::anyhow!("invalid log level {level:?} (agent.log.level / CORAL_LOG_LEVEL): {e}")
        })?,
    };
    // Colour only on a terminal, and never with NO_COLOR set.
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}
