//! Checking a narration against the answer it narrates: every number, trace
//! id and evidence id it states must be in the `coral ask` document. Pure,
//! so it is tested without a model.
//!
//! A number matches when some number of the document, rounded to as many
//! decimals as the narration wrote, equals it ("101 ms" and "101.4 ms" both
//! match 101.38; "%" is ignored). Numbers inside the document's strings
//! (times, claims, queries) count too. Evidence ids (`e5`) must name an
//! entry of `evidence`; trace ids (16 or 32 hex characters) must appear in
//! the document's text.

use std::collections::BTreeSet;

use serde_json::Value;

/// Why a narration was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rejection {
    /// A number the evidence does not hold.
    Number(String),
    /// A trace id the evidence does not hold.
    TraceId(String),
    /// An evidence id that names no evidence.
    EvidenceId(String),
    /// Nothing to print.
    Empty,
}

impl std::fmt::Display for Rejection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rejection::Number(n) => {
                write!(f, "it states {n}, a number that is not in the evidence")
            }
            Rejection::TraceId(t) => {
                write!(f, "it cites trace {t}, which the evidence does not hold")
            }
            Rejection::EvidenceId(e) => write!(f, "it cites evidence {e}, which does not exist"),
            Rejection::Empty => f.write_str("it is empty"),
        }
    }
}

/// The tokens of a text: runs of ASCII letters and digits, with the
/// decimal point kept between digits (`101.4`, `e5`, `14`, `00Z`).
fn tokens(text: &str) -> Vec<&str> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut start = None;
    for i in 0..=b.len() {
        let c = b.get(i).copied();
        let keep = match c {
            Some(c) if c.is_ascii_alphanumeric() => true,
            Some(b'.') => {
                start.is_some()
                    && i > 0
                    && b[i - 1].is_ascii_digit()
                    && b.get(i + 1).is_some_and(u8::is_ascii_digit)
            }
            _ => false,
        };
        match (keep, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push(&text[s..i]);
                start = None;
            }
            _ => {}
        }
    }
    out
}

fn is_hex_id(t: &str) -> bool {
    (t.len() == 16 || t.len() == 32)
        && t.bytes().all(|c| c.is_ascii_hexdigit())
        && t.bytes().any(|c| c.is_ascii_digit())
}

fn is_evidence_id(t: &str) -> bool {
    t.len() > 1 && t.starts_with('e') && t[1..].bytes().all(|c| c.is_ascii_digit())
}

/// The numbers a token states: a plain number, or the digits at the start
/// or end of a unit-suffixed one (`150ms`, `1h`).
fn numbers_in(token: &str) -> Vec<&str> {
    let is_num = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit() || c == b'.');
    if is_num(token) {
        return vec![token];
    }
    let lead = token
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(token.len());
    if lead > 0 {
        return vec![&token[..lead]];
    }
    Vec::new()
}

/// Everything the document states: its numbers and its text.
struct Facts {
    numbers: Vec<f64>,
    text: String,
    evidence: BTreeSet<String>,
}

fn collect(v: &Value, facts: &mut Facts) {
    match v {
        Value::Number(n) => {
            if let Some(f) = n.as_f64() {
                facts.numbers.push(f);
            }
        }
        Value::String(s) => {
            facts.text.push_str(s);
            facts.text.push(' ');
            for t in tokens(s) {
                for n in numbers_in(t) {
                    if let Ok(f) = n.parse::<f64>() {
                        facts.numbers.push(f);
                    }
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect(i, facts)),
        Value::Object(map) => map.values().for_each(|i| collect(i, facts)),
        _ => {}
    }
}

fn facts(doc: &Value) -> Facts {
    let mut facts = Facts {
        numbers: Vec::new(),
        text: String::new(),
        evidence: BTreeSet::new(),
    };
    collect(doc, &mut facts);
    if let Some(list) = doc.get("evidence").and_then(Value::as_array) {
        for e in list {
            if let Some(id) = e.get("id").and_then(Value::as_str) {
                facts.evidence.insert(id.to_owned());
            }
        }
    }
    facts
}

/// True when `stated` (as written) equals a known number at its precision.
fn known_number(stated: &str, numbers: &[f64]) -> bool {
    let Ok(value) = stated.parse::<f64>() else {
        return true;
    };
    let places = stated.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
    let scale = 10f64.powi(places);
    let wanted = (value * scale).round();
    numbers
        .iter()
        .any(|n| (n * scale).round() == wanted || (n.abs() * scale).round() == wanted)
}

/// Checks `narration` against `doc`, the `coral ask` document.
pub(crate) fn verify(narration: &str, doc: &Value) -> Result<(), Rejection> {
    if narration.trim().is_empty() {
        return Err(Rejection::Empty);
    }
    let facts = facts(doc);
    for t in tokens(narration) {
        if is_hex_id(t) {
            if !facts
                .text
                .to_ascii_lowercase()
                .contains(&t.to_ascii_lowercase())
            {
                return Err(Rejection::TraceId(t.to_owned()));
            }
            continue;
        }
        if is_evidence_id(t) {
            if !facts.evidence.contains(t) {
                return Err(Rejection::EvidenceId(t.to_owned()));
            }
            continue;
        }
        for n in numbers_in(t) {
            if !known_number(n, &facts.numbers) {
                return Err(Rejection::Number(n.to_owned()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "version": 1, "verdict": "regression",
            "windows": {"incident": {"from": "2026-11-18T11:52:00Z", "to": "2026-11-18T12:00:00Z"}},
            "symptom": {"metric": "p95_ms", "baseline": 113.3, "incident": 228.2, "change_pct": 101.4},
            "causes": [{"rank": 1, "service": "card-validator", "explains_pct": 97.62,
                        "chain": ["checkout", "payments", "card-validator"], "evidence": ["e5"]}],
            "evidence": [{"id": "e5", "trace_ids": ["aae3f85b28d0bedd11f252aaa619d216"]},
                         {"id": "e9", "trace_ids": []}]
        })
    }

    #[test]
    fn tokens_keep_decimals_and_split_units() {
        assert_eq!(
            tokens("p95 went 113.3 → 228.2 ms (+101.4%), at 11:52. [e5]"),
            [
                "p95", "went", "113.3", "228.2", "ms", "101.4", "at", "11", "52", "e5"
            ]
        );
        assert_eq!(numbers_in("150ms"), ["150"]);
        assert_eq!(numbers_in("p95"), Vec::<&str>::new());
    }

    #[test]
    fn a_faithful_narration_passes() {
        let text = "Since 11:52 UTC checkout's p95 rose from 113.3 ms to 228 ms (+101%). \
                    card-validator explains 97.6% of it, via checkout → payments → card-validator \
                    [e5]; see trace aae3f85b28d0bedd11f252aaa619d216.";
        assert_eq!(verify(text, &doc()), Ok(()));
    }

    #[test]
    fn invented_numbers_and_ids_are_rejected() {
        assert_eq!(
            verify("p95 rose to 412 ms [e5].", &doc()),
            Err(Rejection::Number("412".into()))
        );
        assert_eq!(
            verify("p95 rose to 228.3 ms.", &doc()),
            Err(Rejection::Number("228.3".into())),
            "a wrong decimal is a wrong number"
        );
        assert_eq!(
            verify("see trace 0123456789abcdef0123456789abcdef", &doc()),
            Err(Rejection::TraceId(
                "0123456789abcdef0123456789abcdef".into()
            ))
        );
        assert_eq!(
            verify("as [e7] shows", &doc()),
            Err(Rejection::EvidenceId("e7".into()))
        );
        assert_eq!(verify("  ", &doc()), Err(Rejection::Empty));
        assert!(Rejection::Number("412".into()).to_string().contains("412"));
    }
}
