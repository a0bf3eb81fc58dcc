//! Renderings of query results: tables for people, JSON and CSV for programs
//! (the JSON shapes are the contract documented in docs/cli.md).

use coral_proto::colony::{
    ListAgentsResponse, QueryHostCorrelationResponse, QueryOtelSummariesResponse,
};
use serde_json::json;

use crate::output::{self, Empty, Format, count, ms, percent, rate, rfc3339};

const OTEL_COLUMNS: [&str; 12] = [
    "bucket_time",
    "span_kind",
    "total_spans",
    "error_count",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "min_ms",
    "max_ms",
    "agents",
    "sample_traces",
];

/// Renders `coral query otel` output; `empty` is what the table says when
/// the window holds nothing.
pub fn render_otel(
    service: &str,
    r: &QueryOtelSummariesResponse,
    format: Format,
    empty: &Empty,
) -> String {
    let row_json = |row: &coral_proto::colony::OtelSummaryRow, with_time: bool| {
        let mut v = json!({
            "span_kind": row.span_kind,
            "total_spans": row.total_spans,
            "error_count": row.error_count,
            "error_rate": rate(row.error_count, row.total_spans),
            "p50_ms": row.p50_ms, "p95_ms": row.p95_ms, "p99_ms": row.p99_ms,
            "min_ms": row.min_ms, "max_ms": row.max_ms,
            "agents": row.agent_count,
            "sample_traces": row.sample_traces,
        });
        if with_time {
            v["bucket_time"] = json!(rfc3339(row.bucket_time));
        }
        v
    };
    match format {
        Format::Json => {
            let doc = json!({
                "service": service,
                "from": rfc3339(r.from_unix),
                "to": rfc3339(r.to_unix),
                "minutes": r.rows.iter().map(|x| row_json(x, true)).collect::<Vec<_>>(),
                "totals": r.totals.iter().map(|x| row_json(x, false)).collect::<Vec<_>>(),
            });
            output::json(&doc)
        }
        Format::Csv => {
            let rows: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|x| {
                    vec![
                        rfc3339(x.bucket_time),
                        x.span_kind.clone(),
                        x.total_spans.to_string(),
                        x.error_count.to_string(),
                        rate(x.error_count, x.total_spans).to_string(),
                        x.p50_ms.to_string(),
                        x.p95_ms.to_string(),
                        x.p99_ms.to_string(),
                        x.min_ms.to_string(),
                        x.max_ms.to_string(),
                        x.agent_count.to_string(),
                        x.sample_traces.join(" "),
                    ]
                })
                .collect();
            output::csv(&OTEL_COLUMNS, &rows)
        }
        Format::Table => {
            let mut out = format!(
                "Service: {service} ({} → {}, OTLP span summaries)\n\n",
                rfc3339(r.from_unix),
                rfc3339(r.to_unix)
            );
            if r.rows.is_empty() {
                out.push_str(&format!("No spans of {service} in this window.\n"));
                out.push_str(&empty.lines(
                    "Check the service name with `coral query services`, and that apps export to the agent's OTLP endpoint.",
                ));
                return out;
            }
            let rows: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|x| {
                    vec![
                        output::minute(x.bucket_time),
                        x.span_kind.clone(),
                        count(x.total_spans),
                        percent(rate(x.error_count, x.total_spans)),
                        ms(x.p50_ms),
                        ms(x.p95_ms),
                        ms(x.p99_ms),
                        ms(x.max_ms),
                        x.sample_traces.first().cloned().unwrap_or_default(),
                    ]
                })
                .collect();
            out.push_str(&output::table(
                &[
                    "Minute (UTC)",
                    "Kind",
                    "Spans",
                    "Errors",
                    "P50",
                    "P95",
                    "P99",
                    "Max",
                    "Sample trace",
                ],
                &rows,
            ));
            out.push('\n');
            for t in &r.totals {
                out.push_str(&format!(
                    "Overall {}: {} spans, P50={} P95={} P99={} Max={}, error rate={}\n",
                    t.span_kind,
                    count(t.total_spans),
                    ms(t.p50_ms),
                    ms(t.p95_ms),
                    ms(t.p99_ms),
                    ms(t.max_ms),
                    percent(rate(t.error_count, t.total_spans))
                ));
            }
            out.push_str("Errors: spans with status ERROR, SERVER spans with HTTP status ≥ 500, CLIENT spans with HTTP status ≥ 400.\n");
            out
        }
    }
}

/// What `coral query host` counts, under its table.
pub const HOST_COUNTED: &str = "Requests: SERVER and CONSUMER spans (every span kind when the service has neither, e.g. a batch job); P99 is the highest p99 of those kinds.";

/// Renders `coral query host` output; `empty` is what the table says when
/// the window holds nothing.
pub fn render_host(
    service: &str,
    r: &QueryHostCorrelationResponse,
    format: Format,
    empty: &Empty,
) -> String {
    let opt = |v: Option<f64>, f: fn(f64) -> String| v.map(f).unwrap_or_else(|| "-".into());
    match format {
        Format::Json => {
            let rows: Vec<_> = r
                .rows
                .iter()
                .map(|x| {
                    json!({
                        "bucket_time": rfc3339(x.bucket_time), "agent_id": x.agent_id,
                        "total_spans": x.total_spans, "error_count": x.error_count,
                        "p99_ms": x.p99_ms, "cpu_percent": x.cpu_percent,
                        "memory_used_bytes": x.memory_used_bytes,
                        "net_rx_bytes_per_sec": x.net_rx_bytes_per_sec,
                        "net_tx_bytes_per_sec": x.net_tx_bytes_per_sec, "load1": x.load1,
                    })
                })
                .collect();
            let doc = json!({"service": service, "from": rfc3339(r.from_unix), "to": rfc3339(r.to_unix), "rows": rows});
            output::json(&doc)
        }
        Format::Csv => {
            let s = |v: Option<f64>| v.map(|x| x.to_string()).unwrap_or_default();
            let rows: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|x| {
                    vec![
                        rfc3339(x.bucket_time),
                        x.agent_id.clone(),
                        x.total_spans.to_string(),
                        x.error_count.to_string(),
                        x.p99_ms.to_string(),
                        s(x.cpu_percent),
                        x.memory_used_bytes
                            .map(|v| v.to_string())
                            .unwrap_or_default(),
                        s(x.net_rx_bytes_per_sec),
                        s(x.net_tx_bytes_per_sec),
                        s(x.load1),
                    ]
                })
                .collect();
            output::csv(
                &[
                    "bucket_time",
                    "agent_id",
                    "total_spans",
                    "error_count",
                    "p99_ms",
                    "cpu_percent",
                    "memory_used_bytes",
                    "net_rx_bytes_per_sec",
                    "net_tx_bytes_per_sec",
                    "load1",
                ],
                &rows,
            )
        }
        Format::Table => {
            let mut out = format!(
                "Service: {service} — requests and their p99 next to host metrics ({} → {})\n\n",
                rfc3339(r.from_unix),
                rfc3339(r.to_unix)
            );
            if r.rows.is_empty() {
                out.push_str(&format!("No spans of {service} in this window.\n"));
                out.push_str(&empty.lines(
                    "Check the service name with `coral query services`, and that apps export to the agent's OTLP endpoint.",
                ));
                return out;
            }
            let rows: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|x| {
                    vec![
                        output::minute(x.bucket_time),
                        x.agent_id.clone(),
                        count(x.total_spans),
                        ms(x.p99_ms),
                        opt(x.cpu_percent, |v| format!("{v:.1}%")),
                        opt(x.memory_used_bytes.map(|v| v as f64), output::bytes),
                        opt(x.net_rx_bytes_per_sec, |v| {
                            format!("{}/s", output::bytes(v))
                        }),
                        opt(x.net_tx_bytes_per_sec, |v| {
                            format!("{}/s", output::bytes(v))
                        }),
                        opt(x.load1, |v| format!("{v:.2}")),
                    ]
                })
                .collect();
            out.push_str(&output::table(
                &[
                    "Minute (UTC)",
                    "Agent",
                    "Requests",
                    "P99",
                    "CPU",
                    "Mem used",
                    "Net rx",
                    "Net tx",
                    "Load1",
                ],
                &rows,
            ));
            out.push('\n');
            out.push_str(HOST_COUNTED);
            out.push_str("\n'-' = no host sample for that minute (host metrics are sampled once a minute).\n");
            out
        }
    }
}

/// Renders `coral agents` output.
pub fn render_agents(r: &ListAgentsResponse, format: Format) -> String {
    let dash = |s: &str| {
        if s.is_empty() {
            "-".to_owned()
        } else {
            s.to_owned()
        }
    };
    match format {
        Format::Json => {
            let agents: Vec<_> = r
                .agents
                .iter()
                .map(|a| {
                    json!({
                        "agent_id": a.agent_id, "health": a.health, "mode": a.mode,
                        "source": a.source, "endpoint": a.endpoint, "version": a.version,
                        "hostname": a.hostname, "capabilities": a.capabilities,
                        "last_seen": a.last_seen, "last_poll": a.last_poll,
                        "last_poll_error": a.last_poll_error, "session_id": a.session_id,
                        "cursor_seq_id": a.cursor_seq_id, "agent_latest_seq_id": a.agent_latest_seq_id,
                        "lag_rows": a.lag_rows, "gap_count": a.gap_count, "rows_received": a.rows_received,
                        "beyla": a.beyla.as_ref().map(|b| json!({
                            "mode": b.mode, "state": b.state, "summary": b.summary,
                            "reason": b.reason, "version": b.version, "restarts": b.restarts,
                            "last_error": b.last_error, "protocols": b.supported_protocols,
                            "tracing": b.tracing_enabled, "kernel": b.kernel,
                        })),
                        "beyla_cursor_seq_id": a.beyla_cursor_seq_id,
                        "beyla_latest_seq_id": a.beyla_latest_seq_id,
                        "shared_id_warning": a.shared_id_warning,
                        "polled_by": a.polled_by,
                    })
                })
                .collect();
            let doc = json!({"colony_id": r.colony_id, "colonies": r.colonies, "agents": agents});
            output::json(&doc)
        }
        Format::Csv => {
            let rows: Vec<Vec<String>> = r
                .agents
                .iter()
                .map(|a| {
                    vec![
                        a.agent_id.clone(),
                        a.health.clone(),
                        a.mode.clone(),
                        a.source.clone(),
                        a.endpoint.clone(),
                        a.last_seen.clone(),
                        a.last_poll.clone(),
                        a.lag_rows.to_string(),
                        a.gap_count.to_string(),
                        a.rows_received.to_string(),
                        a.last_poll_error.clone(),
                        beyla_note(a).unwrap_or_default(),
                    ]
                })
                .collect();
            output::csv(
                &[
                    "agent_id",
                    "health",
                    "mode",
                    "source",
                    "endpoint",
                    "last_seen",
                    "last_poll",
                    "lag_rows",
                    "gap_count",
                    "rows_received",
                    "last_poll_error",
                    "beyla",
                ],
                &rows,
            )
        }
        Format::Table => {
            if r.agents.is_empty() {
                return format!(
                    "Colony {}: no agents yet. Start one with `coral agent serve` and agent.colony.endpoint set, or use `coral up`.\n",
                    r.colony_id
                );
            }
            let rows: Vec<Vec<String>> = r
                .agents
                .iter()
                .map(|a| {
                    vec![
                        a.agent_id.clone(),
                        a.health.clone(),
                        a.mode.clone(),
                        dash(&a.endpoint),
                        dash(&a.last_seen),
                        dash(&a.last_poll),
                        count(a.lag_rows as i64),
                        a.gap_count.to_string(),
                        count(a.rows_received as i64),
                    ]
                })
                .collect();
            let mut out = format!("Colony {}\n\n", r.colony_id);
            let fleet = r.colonies.len() > 1;
            if fleet {
                out = format!(
                    "Colony {} (one of {}: {})\n\n",
                    r.colony_id,
                    r.colonies.len(),
                    r.colonies.join(", ")
                );
            }
            let mut header = vec![
                "Agent",
                "Health",
                "Mode",
                "Endpoint",
                "Last seen",
                "Last poll",
                "Lag",
                "Gaps",
                "Rows",
            ];
            let mut rows = rows;
            if fleet {
                header.push("Polled by");
                for (row, a) in rows.iter_mut().zip(&r.agents) {
                    row.push(a.polled_by.clone());
                }
            }
            out.push_str(&output::table(&header, &rows));
            for a in r.agents.iter().filter(|a| !a.last_poll_error.is_empty()) {
                out.push_str(&format!(
                    "\n{}: last poll failed: {}\n",
                    a.agent_id, a.last_poll_error
                ));
            }
            for a in r.agents.iter().filter(|a| !a.shared_id_warning.is_empty()) {
                out.push_str(&format!("\n{}: {}\n", a.agent_id, a.shared_id_warning));
            }
            for a in &r.agents {
                if let Some(note) = beyla_note(a).filter(|_| {
                    a.beyla
                        .as_ref()
                        .is_some_and(|b| b.mode != "full" || b.state != "running")
                }) {
                    out.push_str(&format!("\n{}: {note}\n", a.agent_id));
                }
            }
            out
        }
    }
}

/// One line on an agent's Beyla: its mode summary, or what went wrong.
fn beyla_note(a: &coral_proto::colony::AgentInfo) -> Option<String> {
    let b = a.beyla.as_ref()?;
    Some(match b.state.as_str() {
        "failed" => format!(
            "Beyla failed after {} restart(s): {}",
            b.restarts,
            if b.last_error.is_empty() {
                "no error reported"
            } else {
                &b.last_error
            }
        ),
        "restarting" => format!(
            "Beyla restarting ({} restart(s)); last error: {}",
            b.restarts, b.last_error
        ),
        _ if !b.summary.is_empty() => b.summary.clone(),
        state => format!("Beyla {state}"),
    })
}

#[cfg(test)]
#[path = "views_tests.rs"]
mod tests;
