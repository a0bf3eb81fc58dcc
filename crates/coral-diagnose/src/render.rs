//! Renderers: [`render_text`] for a terminal, [`render_json`] for the
//! versioned JSON contract.

use std::fmt::Write as _;

use crate::report::{Diagnosis, Evidence};

/// The JSON contract (pretty-printed).
pub fn render_json(d: &Diagnosis) -> String {
    serde_json::to_string_pretty(d).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn evidence<'a>(d: &'a Diagnosis, id: &str) -> Option<&'a Evidence> {
    d.evidence.iter().find(|e| e.id == id)
}

/// Text: the verdict line, numbered causes (chain, share explained, the
/// numbers, 2-3 trace ids, a reproduce line), then what was ruled out and
/// the coverage.
pub fn render_text(d: &Diagnosis) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", d.summary);
    let _ = writeln!(
        out,
        "incident {} – {}, baseline {} – {}",
        crate::time::rfc3339(d.windows.incident.from),
        crate::time::rfc3339(d.windows.incident.to),
        crate::time::rfc3339(d.windows.baseline.from),
        crate::time::rfc3339(d.windows.baseline.to)
    );
    if !d.endpoints.is_empty() {
        let _ = writeln!(out, "\nslowest endpoints of {}:", d.target.service);
        for e in d.endpoints.iter().take(5) {
            let _ = writeln!(
                out,
                "  {}: P95={} ms (baseline: {} ms, {:+} %)",
                e.operation, e.p95_ms, e.baseline_p95_ms, e.change_pct
            );
        }
    }
    if !d.causes.is_empty() {
        let _ = writeln!(out);
    }
    for c in &d.causes {
        let op = c
            .operation
            .as_deref()
            .map_or(String::new(), |o| format!(" {o}"));
        let at = c
            .host
            .as_deref()
            .map_or(String::new(), |h| format!(" on {h}"));
        let _ = writeln!(
            out,
            "{}. {}{op}{at} [{}] explains {} %",
            c.rank,
            c.service,
            c.kind.as_str(),
            c.explains_pct
        );
        if !c.chain.is_empty() {
            let _ = writeln!(out, "   {}", c.chain.join(" → "));
        }
        let _ = writeln!(out, "   {}", c.claim);
        let traces: Vec<&String> = c
            .evidence
            .iter()
            .rev()
            .filter_map(|id| evidence(d, id))
            .flat_map(|e| e.trace_ids.iter())
            .take(3)
            .collect();
        if !traces.is_empty() {
            let t: Vec<&str> = traces.iter().map(|s| s.as_str()).collect();
            let _ = writeln!(out, "   traces: {}", t.join(", "));
        }
        if let Some(e) = c.evidence.first().and_then(|id| evidence(d, id)) {
            let _ = writeln!(out, "   reproduce: {}", e.reproduce);
        }
    }
    if !d.changes.is_empty() {
        let _ = writeln!(out, "\nchanges:");
        for c in &d.changes {
            let _ = writeln!(out, "  - [{}] {}", c.kind, c.claim);
        }
    }
    if let Some(s) = &d.symptom
        && d.causes.is_empty()
        && let Some(e) = s.evidence.first().and_then(|id| evidence(d, id))
    {
        let _ = writeln!(out, "reproduce: {}", e.reproduce);
    }
    let slow: Vec<&str> = d
        .evidence
        .iter()
        .filter(|e| e.check == "exemplars" && d.causes.is_empty())
        .flat_map(|e| e.trace_ids.iter().map(String::as_str))
        .take(3)
        .collect();
    if !slow.is_empty() {
        let _ = writeln!(out, "slowest traces: {}", slow.join(", "));
    }
    if !d.ruled_out.is_empty() {
        let _ = writeln!(out, "\nruled out:");
        for r in d.ruled_out.iter().take(8) {
            let _ = writeln!(
                out,
                "  - {}: {} — {} [{}]",
                r.check,
                r.entity,
                r.reason,
                r.evidence.join(", ")
            );
        }
        if d.ruled_out.len() > 8 {
            let _ = writeln!(out, "  … {} more (see -o json)", d.ruled_out.len() - 8);
        }
    }
    let c = &d.coverage;
    let _ = writeln!(
        out,
        "\ncoverage: {} agent(s) in both windows{}{}; {} gap(s); requests {}/min (baseline {}/min); sampled traces {} (baseline {}); failing traces {} (baseline {})",
        c.agents_both.len(),
        if c.agents_incident_only.is_empty() {
            String::new()
        } else {
            format!(", {} only in the incident", c.agents_incident_only.len())
        },
        if c.agents_baseline_only.is_empty() {
            String::new()
        } else {
            format!(", {} only in the baseline", c.agents_baseline_only.len())
        },
        c.gaps,
        c.requests_per_minute.incident,
        c.requests_per_minute.baseline,
        c.sampled_traces.incident,
        c.sampled_traces.baseline,
        c.error_traces.incident,
        c.error_traces.baseline
    );
    for m in &c.missing {
        let _ = writeln!(out, "  missing: {m}");
    }
    out
}
