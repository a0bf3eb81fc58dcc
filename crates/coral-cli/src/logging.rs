//! Structured logs through `tracing`: text or JSON on stderr.
//!
//! The level comes from the configuration (`agent.log.level`); `RUST_LOG`, when
//! set, wins, so a user can turn on debug logs for one module without editing
//! the file.
//!
//! A text line is one event: a message or error that spans several lines
//! (DuckDB's do) has its inner line breaks written as `\n`.

use std::io::{IsTerminal, Write};

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
        .with_ansi(ansi);
    let result = match format {
        LogFormat::Json => builder
            .with_writer(std::io::stderr)
            .json()
            .flatten_event(true)
            .try_init(),
        LogFormat::Text => builder
            .with_writer(|| OneLine(std::io::stderr()))
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the log subscriber: {e}"))
}

/// Stderr for text logs: each write is one formatted event, whose inner line
/// breaks are escaped so that the event stays on one line.
struct OneLine(std::io::Stderr);

impl Write for OneLine {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write_all(&one_line(buf))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// `event` with every line break but a final one written as `\n`.
fn one_line(event: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let (body, end) = match event.strip_suffix(b"\n") {
        Some(body) => (body, &b"\n"[..]),
        None => (event, &b""[..]),
    };
    if !body.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return event.into();
    }
    let mut out = Vec::with_capacity(event.len() + 16);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => {}
            _ => out.push(b),
        }
    }
    out.extend_from_slice(end);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_of_several_lines_is_written_on_one() {
        let event = b"ERROR store write failed error=IO Error: No space\nLINE 1: x\r\n\n";
        assert_eq!(
            &one_line(event)[..],
            b"ERROR store write failed error=IO Error: No space\\nLINE 1: x\\n\n"
        );
        assert_eq!(&one_line(b"INFO ok\n")[..], b"INFO ok\n");
    }
}
