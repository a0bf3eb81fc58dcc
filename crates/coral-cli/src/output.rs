//! Rendering for query commands: aligned tables for people, JSON and CSV for
//! programs. Tables humanize numbers; JSON and CSV keep them exact.

use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::OnceLock;

/// ANSI red.
pub const RED: &str = "31";

/// Color is used only when stdout is a terminal and `NO_COLOR` is unset (or
/// empty), so piped output stays plain and stable.
pub fn color_enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
    })
}

/// `text` in `style` when `cond` holds and color is enabled.
pub fn paint_if(cond: bool, style: &str, text: &str) -> String {
    if cond && color_enabled() {
        format!("\x1b[{style}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// `text` safe to print on a terminal: control characters (C0, DEL, C1)
/// and bidirectional overrides become visible escapes (`\u{1b}`), so a
/// service, operation or attribute named with escape sequences cannot clear
/// the screen, move the cursor or set the window title of whoever reads
/// it. Colour (SGR) sequences stay, so painted text keeps its colour; with
/// `newlines`, `\n` stays a line break.
pub fn printable(text: &str, newlines: bool) -> std::borrow::Cow<'_, str> {
    let escaped = |c: char| {
        (c.is_control() && !(newlines && c == '\n'))
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
    };
    if !text.chars().any(escaped) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let sgr = rest.strip_prefix("\x1b[").and_then(|tail| {
            let params = tail.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
            tail[params..].starts_with('m').then_some(2 + params + 1)
        });
        if let Some(len) = sgr {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        if escaped(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
        rest = &rest[c.len_utf8()..];
    }
    std::borrow::Cow::Owned(out)
}

/// Awaits `work`; if it takes longer than a second and stderr is a
/// terminal, shows a spinner with `label` on stderr meanwhile.
pub async fn with_progress<T>(label: &str, work: impl std::future::Future<Output = T>) -> T {
    if !std::io::stderr().is_terminal() {
        return work.await;
    }
    tokio::pin!(work);
    let mut shown = false;
    let frames = ['|', '/', '-', '\\'];
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + std::time::Duration::from_secs(1),
        std::time::Duration::from_millis(120),
    );
    let mut n = 0usize;
    loop {
        tokio::select! {
            out = &mut work => {
                if shown {
                    eprint!("\r\x1b[2K");
                }
                return out;
            }
            _ = tick.tick() => {
                shown = true;
                eprint!("\r{} {label}…", frames[n % frames.len()]);
                n += 1;
            }
        }
    }
}

/// Output format (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// One JSON document (a stable contract, see docs/cli.md).
    Json,
    /// Comma-separated values with a header row.
    Csv,
}

/// Renders rows as aligned columns (two spaces between columns).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    aligned(headers, rows, "  ")
}

/// Renders rows as columns separated by ` | `, padded to align (the layout
/// of the Beyla RED tables).
pub fn piped_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    aligned(headers, rows, " | ")
}

/// Pads every cell to its column's width and joins the cells with `sep`;
/// trailing spaces are trimmed.
fn aligned(headers: &[&str], rows: &[Vec<String>], sep: &str) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| {
            row.iter()
                .map(|c| printable(c, false).into_owned())
                .collect()
        })
        .collect();
    let rows = &rows;
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let padded: Vec<String> = cells
            .enumerate()
            .map(|(i, c)| format!("{c}{}", " ".repeat(widths[i] - c.chars().count())))
            .collect();
        format!("{}\n", padded.join(sep).trim_end())
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

/// Renders rows as CSV (RFC 4180 quoting).
pub fn csv(headers: &[&str], rows: &[Vec<String>]) -> String {
    let quote = |cell: &str| {
        let cell = printable(cell, true);
        if cell.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.into_owned()
        }
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{}",
        headers
            .iter()
            .map(|h| quote(h))
            .collect::<Vec<_>>()
            .join(",")
    );
    for row in rows {
        let _ = writeln!(
            out,
            "{}",
            row.iter().map(|c| quote(c)).collect::<Vec<_>>().join(",")
        );
    }
    out
}

/// A JSON document, pretty-printed, with a final newline.
pub fn json(doc: &serde_json::Value) -> String {
    format!("{doc:#}\n")
}

/// 45200 → "45.2k", 1500000 → "1.5M".
pub fn count(n: i64) -> String {
    let f = n as f64;
    match n.unsigned_abs() {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", f / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", f / 1e6),
        _ => format!("{:.1}G", f / 1e9),
    }
}

/// Milliseconds for people: "0.42ms", "45ms", "1.20s".
pub fn ms(v: f64) -> String {
    if v >= 1000.0 {
        format!("{:.2}s", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.0}ms")
    } else {
        format!("{v:.2}ms")
    }
}

/// A fraction as a percentage: 0.023 → "2.3%".
pub fn percent(fraction: f64) -> String {
    format!("{:.1}%", fraction * 100.0)
}

/// Bytes for people: "512B", "1.5KiB", "3.2GiB".
pub fn bytes(v: f64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = v;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{v:.0}{}", UNITS[0])
    } else {
        format!("{v:.1}{}", UNITS[unit])
    }
}

/// Errors over total as a fraction (0 when there is no traffic).
pub fn rate(errors: i64, total: i64) -> f64 {
    if total > 0 {
        errors as f64 / total as f64
    } else {
        0.0
    }
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(unix: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// Unix nanoseconds as RFC 3339 UTC with microseconds.
pub fn rfc3339_nanos(unix_ns: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_ns.max(0) as u64);
    humantime::format_rfc3339_micros(t).to_string()
}

/// Unix seconds as "YYYY-MM-DD HH:MM" (UTC) for tables.
pub fn minute(unix: i64) -> String {
    let s = rfc3339(unix);
    format!("{} {}", &s[..10], &s[11..16])
}

/// The agent's default `agent.telemetry.aggregation.flush_grace`, seconds:
/// how long after a minute closes the agent writes it.
pub const FLUSH_GRACE_SECS: i64 = 10;

/// The colony's poll interval under `coral up`, seconds (`up::UP_POLL_INTERVAL`).
pub const UP_POLL_SECS: i64 = 5;

/// The default poll interval of `coral colony serve`, seconds.
pub const COLONY_POLL_SECS: i64 = 30;

/// "HH:MM:SS" of Unix seconds (UTC).
fn clock(unix: i64) -> String {
    rfc3339(unix)[11..19].to_owned()
}

/// When data will appear, for a window ending at `window_to` (Unix seconds)
/// seen at `now`: a minute is queryable once it has closed, the agent has
/// waited `flush_grace` and the colony has polled. Names the next minute to
/// appear and about when (with `coral up`'s poll interval). `None` for
/// windows that ended minutes ago, where waiting would not help.
pub fn arrival_note(now: i64, window_to: i64) -> Option<String> {
    if window_to < now - 120 {
        return None;
    }
    let lag = FLUSH_GRACE_SECS + UP_POLL_SECS;
    let current = now.div_euclid(60) * 60;
    // The previous minute, unless it has had time to arrive already.
    let minute = if current - 60 + 60 + lag > now {
        current - 60
    } else {
        current
    };
    let closes = minute + 60;
    Some(format!(
        "Minutes appear once they close, plus the agent's flush_grace ({FLUSH_GRACE_SECS} s by default) and the colony's poll interval ({UP_POLL_SECS} s under `coral up`, {COLONY_POLL_SECS} s by default for `coral colony serve`).\n\
         The minute {} UTC closes at {} and appears by about {}.\n",
        &clock(minute)[..5],
        clock(closes),
        clock(closes + lag),
    ))
}

/// What a table says under an empty result besides "nothing here".
#[derive(Debug, Clone, Default)]
pub struct Empty {
    /// A hint about the name asked for (`suggest::service_hint`).
    pub hint: Option<String>,
    /// When data will appear ([`arrival_note`]).
    pub arrival: Option<String>,
}

impl Empty {
    /// The notes for a window `[_, to)` seen now, with `hint`.
    pub fn now(to: i64, hint: Option<String>) -> Empty {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        Empty {
            hint,
            arrival: arrival_note(now, to),
        }
    }

    /// The hint (or `fallback` without one) and the arrival note, one per line.
    pub fn lines(&self, fallback: &str) -> String {
        let mut out = String::new();
        match &self.hint {
            Some(hint) if hint.ends_with(['?', '.']) => out.push_str(&format!("{hint}\n")),
            Some(hint) => out.push_str(&format!("{hint}.\n")),
            None if !fallback.is_empty() => out.push_str(&format!("{fallback}\n")),
            None => {}
        }
        if let Some(arrival) = &self.arrival {
            out.push_str(arrival);
        }
        out
    }
}

/// An error and its causes as one line, each cause added only until one is
/// found that the text already says (errors that print their source in
/// their own message would otherwise show it twice).
pub fn error_once(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut current = error;
    while let Some(cause) = current.source() {
        let part = cause.to_string();
        if text.contains(&part) {
            // Said already; what it rests on is the library's detail (a
            // DuckDB error code, say), not news to the reader.
            break;
        }
        if !part.is_empty() {
            text.push_str(": ");
            text.push_str(&part);
        }
        current = cause;
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn humanizes() {
        assert_eq!(count(999), "999");
        assert_eq!(count(45_200), "45.2k");
        assert_eq!(count(1_500_000), "1.5M");
        assert_eq!(ms(0.4249), "0.42ms");
        assert_eq!(ms(45.4), "45ms");
        assert_eq!(ms(1200.0), "1.20s");
        assert_eq!(percent(0.023), "2.3%");
        assert_eq!(bytes(1536.0), "1.5KiB");
        assert_eq!(rfc3339(60), "1970-01-01T00:01:00Z");
        assert_eq!(minute(3660), "1970-01-01 01:01");
    }

    #[test]
    fn names_with_control_characters_print_as_data() {
        let hostile = "shop\x1b[2J\x1b]0;pwned\x07'; DROP TABLE otel_spans;--\u{202e}";
        let shown = printable(hostile, true);
        assert!(!shown.contains(|c: char| c.is_control()), "{shown:?}");
        assert_eq!(
            shown,
            "shop\\u{1b}[2J\\u{1b}]0;pwned\\u{7}'; DROP TABLE otel_spans;--\\u{202e}"
        );
        // Colour stays; line breaks stay only where asked.
        assert_eq!(
            printable("\x1b[31mslow\x1b[0m\n", true),
            "\x1b[31mslow\x1b[0m\n"
        );
        assert_eq!(printable("a\nb\tc", false), "a\\nb\\tc");
        // Tables and CSV escape every cell, and align on what is shown.
        let table = table(&["SERVICE", "N"], &[vec!["x\x1b[2Jy".into(), "1".into()]]);
        assert_eq!(table, "SERVICE      N\nx\\u{1b}[2Jy  1\n");
        assert!(!csv(&["s"], &[vec!["\x1b[H".into()]]).contains('\x1b'));
    }

    #[test]
    fn arrival_note_names_the_next_minute_and_when_it_appears() {
        // 14:03:20: 14:02 is in already; 14:03 closes at 14:04:00.
        let t = 1_800_000_000 / 86_400 * 86_400 + 14 * 3600;
        let at = |m: i64, s: i64| t + m * 60 + s;
        let note = arrival_note(at(3, 20), at(4, 0)).unwrap();
        assert!(
            note.contains(&format!(
                "The minute {} UTC closes at {} and appears by about {}.",
                &clock(at(3, 0))[..5],
                clock(at(4, 0)),
                clock(at(4, 15))
            )),
            "{note}"
        );
        assert!(note.contains("flush_grace (10 s by default)"), "{note}");
        // 14:03:05: 14:02 has not had time to arrive; it is the next one.
        let note = arrival_note(at(3, 5), at(4, 0)).unwrap();
        assert!(
            note.contains(&format!("appears by about {}.", clock(at(3, 15)))),
            "{note}"
        );
        // A window that ended long ago: waiting does not help.
        assert_eq!(arrival_note(at(30, 0), at(4, 0)), None);
        assert_eq!(
            humantime::parse_duration(crate::up::UP_POLL_INTERVAL)
                .unwrap()
                .as_secs() as i64,
            UP_POLL_SECS
        );
    }

    #[test]
    fn empty_notes_put_the_hint_or_the_fallback_first() {
        let notes = Empty {
            hint: Some("no data for service 'a'; did you mean 'b'?".into()),
            arrival: Some("later\n".into()),
        };
        assert_eq!(
            notes.lines("fallback"),
            "no data for service 'a'; did you mean 'b'?\nlater\n"
        );
        let notes = Empty {
            hint: Some("'a' has data in the last 7 days".into()),
            arrival: None,
        };
        assert_eq!(
            notes.lines("fallback"),
            "'a' has data in the last 7 days.\n"
        );
        assert_eq!(Empty::default().lines("fallback"), "fallback\n");
    }

    #[test]
    fn error_once_skips_causes_already_said() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(
                    f,
                    "cannot listen on 127.0.0.1:9000: {} — try another port",
                    self.0
                )
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let io = || std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address in use");
        assert_eq!(
            error_once(&Outer(io())),
            "cannot listen on 127.0.0.1:9000: Address in use — try another port"
        );
        let wrapped = anyhow::Error::new(io()).context("cannot start");
        assert_eq!(error_once(&*wrapped), "cannot start: Address in use");
    }

    #[test]
    fn renders_tables_and_csv() {
        let rows = vec![vec!["a,b".to_owned(), "1".to_owned()]];
        assert_eq!(table(&["NAME", "N"], &rows), "NAME  N\na,b   1\n");
        assert_eq!(csv(&["name", "n"], &rows), "name,n\n\"a,b\",1\n");
    }
}
