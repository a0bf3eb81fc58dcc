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
        if cell.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", cell.replace('"', "\"\""))
        } else {
            cell.to_owned()
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
    fn renders_tables_and_csv() {
        let rows = vec![vec!["a,b".to_owned(), "1".to_owned()]];
        assert_eq!(table(&["NAME", "N"], &rows), "NAME  N\na,b   1\n");
        assert_eq!(csv(&["name", "n"], &rows), "name,n\n\"a,b\",1\n");
    }
}
