//! `coral query …` commands that show the rows behind each evidence item,
//! and [`validate`], which checks a command against the CLI's grammar
//! (docs/cli.md): the command and its flags exist, values are well formed.

use thiserror::Error;

use crate::time::{Window, parse_rfc3339, rfc3339};

/// Quotes a shell word when it needs it.
pub(crate) fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:@=,+%".contains(c));
    if plain {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

fn window(w: Window) -> String {
    format!("--from {} --to {}", rfc3339(w.from), rfc3339(w.to))
}

/// `coral query otel S --from T --to T` (per minute).
pub(crate) fn otel_minutes(service: &str, w: Window) -> String {
    format!("coral query otel {} {}", quote(service), window(w))
}

/// `coral query otel S --by operation --from T --to T`.
pub(crate) fn otel_by_operation(service: &str, w: Window) -> String {
    format!(
        "coral query otel {} --by operation {}",
        quote(service),
        window(w)
    )
}

/// `coral query otel S --operation O [--agent A] --from T --to T`.
pub(crate) fn otel_operation(
    service: &str,
    operation: &str,
    agent: Option<&str>,
    w: Window,
) -> String {
    let agent = agent.map_or(String::new(), |a| format!(" --agent {}", quote(a)));
    format!(
        "coral query otel {} --operation {}{agent} {}",
        quote(service),
        quote(operation),
        window(w)
    )
}

/// The options of a trace list.
#[derive(Debug, Clone, Default)]
pub(crate) struct TraceList<'a> {
    pub operation: Option<&'a str>,
    pub keep_reason: Option<&'a str>,
    pub errors: bool,
    pub min_duration_ms: Option<f64>,
    pub limit: usize,
}

/// `coral query traces --service S … --from T --to T --limit N`.
pub(crate) fn traces(service: &str, w: Window, opts: &TraceList<'_>) -> String {
    let mut line = format!("coral query traces --service {}", quote(service));
    if let Some(op) = opts.operation {
        line.push_str(&format!(" --operation {}", quote(op)));
    }
    if let Some(reason) = opts.keep_reason {
        line.push_str(&format!(" --keep-reason {reason}"));
    }
    if opts.errors {
        line.push_str(" --errors");
    }
    if let Some(ms) = opts.min_duration_ms {
        line.push_str(&format!(" --min-duration {}ms", ms.max(1.0).round() as i64));
    }
    line.push(' ');
    line.push_str(&window(w));
    line.push_str(&format!(" --limit {}", opts.limit.clamp(1, 1000)));
    line
}

/// `coral query traces --trace-id ID`.
pub fn trace(trace_id: &str) -> String {
    format!("coral query traces --trace-id {trace_id}")
}

/// `coral query host S --from T --to T`.
pub(crate) fn host(service: &str, w: Window) -> String {
    format!("coral query host {} {}", quote(service), window(w))
}

/// `coral agents`.
pub(crate) fn agents() -> String {
    "coral agents".to_owned()
}

/// Why a reproduce line is not a valid command.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReproduceError {
    /// Unbalanced quotes.
    #[error("unbalanced quote in {0:?}")]
    Quote(String),
    /// Not a `coral` command the CLI has.
    #[error("not a coral command: {0:?}")]
    Command(String),
    /// A flag the command does not take, or one missing its value.
    #[error("{command}: bad flag {flag:?}")]
    Flag {
        /// The command.
        command: String,
        /// The flag.
        flag: String,
    },
    /// A flag value the CLI refuses.
    #[error("{flag} {value:?}: {why}")]
    Value {
        /// The flag.
        flag: String,
        /// Its value.
        value: String,
        /// What is wrong.
        why: String,
    },
}

/// Splits a command line into words (single and double quotes, `\'` in
/// the `'…'\''…'` idiom).
fn words(line: &str) -> Result<Vec<String>, ReproduceError> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(x) => cur.push(x),
                        None => return Err(ReproduceError::Quote(line.to_owned())),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => cur.extend(chars.next()),
                        Some(x) => cur.push(x),
                        None => return Err(ReproduceError::Quote(line.to_owned())),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// Flags of each command: (name, takes a value).
fn flags_of(command: &str) -> Option<&'static [(&'static str, bool)]> {
    const WINDOW_OUT: &[(&str, bool)] = &[
        ("--since", true),
        ("--from", true),
        ("--to", true),
        ("-o", true),
        ("--output", true),
    ];
    const OTEL: &[(&str, bool)] = &[
        ("--since", true),
        ("--from", true),
        ("--to", true),
        ("-o", true),
        ("--output", true),
        ("--kind", true),
        ("--agent", true),
        ("--by", true),
        ("--operation", true),
    ];
    const TRACES: &[(&str, bool)] = &[
        ("--since", true),
        ("--from", true),
        ("--to", true),
        ("-o", true),
        ("--format", true),
        ("--output", true),
        ("--trace-id", true),
        ("--service", true),
        ("--operation", true),
        ("--min-duration", true),
        ("--errors", false),
        ("--keep-reason", true),
        ("--source", true),
        ("--limit", true),
        ("--max-spans", true),
    ];
    const BEYLA: &[(&str, bool)] = &[
        ("--since", true),
        ("--from", true),
        ("--to", true),
        ("-o", true),
        ("--output", true),
        ("--route", true),
        ("--method", true),
        ("--status", true),
        ("--kind", true),
        ("--table", true),
        ("--operation", true),
    ];
    const AGENTS: &[(&str, bool)] = &[("-o", true), ("--output", true)];
    Some(match command {
        "query otel" => OTEL,
        "query host" | "query services" => WINDOW_OUT,
        "query traces" => TRACES,
        "query beyla http" | "query beyla grpc" | "query beyla sql" => BEYLA,
        "agents" => AGENTS,
        _ => return None,
    })
}

/// Checks that `line` is a command the `coral` CLI accepts.
pub fn validate(line: &str) -> Result<(), ReproduceError> {
    let w = words(line)?;
    let bad_command = || ReproduceError::Command(line.to_owned());
    if w.first().map(String::as_str) != Some("coral") {
        return Err(bad_command());
    }
    let rest = &w[1..];
    let (command, positional, args) = match rest {
        [a] if a == "agents" => ("agents".to_owned(), 0, &rest[1..]),
        [q, c, ..] if q == "query" && (c == "services" || c == "traces") => {
            (format!("query {c}"), 0, &rest[2..])
        }
        [q, c, ..] if q == "query" && (c == "otel" || c == "host") => {
            (format!("query {c}"), 1, &rest[2..])
        }
        [q, b, f, ..]
            if q == "query" && b == "beyla" && ["http", "grpc", "sql"].contains(&f.as_str()) =>
        {
            (format!("query beyla {f}"), 1, &rest[3..])
        }
        _ => return Err(bad_command()),
    };
    let flags = flags_of(&command).ok_or_else(bad_command)?;
    let mut given: Vec<(String, Option<String>)> = Vec::new();
    let mut positionals = 0;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a.starts_with('-') {
            let (name, takes) = flags.iter().find(|(f, _)| f == a).copied().ok_or_else(|| {
                ReproduceError::Flag {
                    command: command.clone(),
                    flag: a.clone(),
                }
            })?;
            if takes {
                let v = args.get(i + 1).ok_or_else(|| ReproduceError::Flag {
                    command: command.clone(),
                    flag: a.clone(),
                })?;
                given.push((name.to_owned(), Some(v.clone())));
                i += 2;
            } else {
                given.push((name.to_owned(), None));
                i += 1;
            }
        } else {
            if a.is_empty() {
                return Err(bad_command());
            }
            positionals += 1;
            i += 1;
        }
    }
    if positionals != positional {
        return Err(bad_command());
    }
    check_values(&command, &given)
}

fn check_values(command: &str, given: &[(String, Option<String>)]) -> Result<(), ReproduceError> {
    let get = |f: &str| {
        given
            .iter()
            .find(|(n, _)| n == f)
            .and_then(|(_, v)| v.clone())
    };
    let has = |f: &str| given.iter().any(|(n, _)| n == f);
    let bad = |flag: &str, value: &str, why: &str| ReproduceError::Value {
        flag: flag.to_owned(),
        value: value.to_owned(),
        why: why.to_owned(),
    };
    match (get("--from"), get("--to")) {
        (Some(from), Some(to)) => {
            let f = parse_rfc3339(&from).ok_or_else(|| bad("--from", &from, "not RFC 3339"))?;
            let t = parse_rfc3339(&to).ok_or_else(|| bad("--to", &to, "not RFC 3339"))?;
            if f >= t {
                return Err(bad("--from", &from, "not before --to"));
            }
            if has("--since") {
                return Err(bad("--since", "", "conflicts with --from"));
            }
        }
        (None, None) => {}
        (Some(v), None) | (None, Some(v)) => {
            return Err(bad("--from/--to", &v, "both are needed"));
        }
    }
    if let Some(id) = get("--trace-id")
        && (id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        return Err(bad("--trace-id", &id, "not 32 hex characters"));
    }
    if let Some(limit) = get("--limit") {
        match limit.parse::<u32>() {
            Ok(1..=1000) => {}
            _ => return Err(bad("--limit", &limit, "must be 1..=1000")),
        }
    }
    if let Some(d) = get("--min-duration") {
        humantime::parse_duration(&d).map_err(|_| bad("--min-duration", &d, "not a duration"))?;
    }
    if let Some(r) = get("--keep-reason")
        && !["error", "latency", "sampled", "beyla"].contains(&r.as_str())
    {
        return Err(bad("--keep-reason", &r, "unknown keep reason"));
    }
    if command == "query otel" {
        if let Some(by) = get("--by") {
            if by != "operation" {
                return Err(bad("--by", &by, "only `operation`"));
            }
            if has("--operation") {
                return Err(bad("--by", &by, "conflicts with --operation"));
            }
        }
        if let Some(k) = get("--kind") {
            let ok = ["SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER"]
                .contains(&k.to_ascii_uppercase().as_str());
            if !ok {
                return Err(bad("--kind", &k, "unknown span kind"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        from: 1_795_000_020,
        to: 1_795_000_920,
    };

    #[test]
    fn generated_commands_are_valid() {
        for line in [
            "coral query services --from 2026-11-18T11:07:00Z --to 2026-11-18T11:22:00Z".to_owned(),
            otel_minutes("checkout", W),
            otel_by_operation("checkout", W),
            otel_operation("payments", "POST /charge", Some("node-c"), W),
            traces(
                "checkout",
                W,
                &TraceList {
                    operation: Some("it's"),
                    keep_reason: Some("sampled"),
                    errors: true,
                    min_duration_ms: Some(300.0),
                    limit: 1000,
                },
            ),
            trace("4bf92f3577b34da6a3ce929d0e0e4736"),
            host("checkout", W),
            agents(),
        ] {
            assert_eq!(validate(&line), Ok(()), "{line}");
        }
        assert_eq!(
            words("a 'b c' 'it'\\''s'").unwrap(),
            vec!["a", "b c", "it's"]
        );
    }

    #[test]
    fn invented_commands_are_refused() {
        for line in [
            "kubectl get pods",
            "coral query otel",
            "coral query host checkout --operation x",
            "coral query otel checkout --from 2026-01-01T00:00:00Z",
            "coral query traces --trace-id abc",
            "coral query traces --service s --limit 5000",
            "coral query otel s --by operation --operation x",
            "coral query traces --service 'unclosed",
        ] {
            assert!(validate(line).is_err(), "{line}");
        }
    }
}
