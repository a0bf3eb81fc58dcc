//! `coral query otel`, `coral query host` and `coral agents`: read from the
//! colony and render (see docs/cli.md for the JSON contracts).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use coral_proto::colony::{
    ListAgentsRequest, ListAgentsResponse, QueryHostCorrelationRequest,
    QueryHostCorrelationResponse, QueryOtelSummariesRequest, QueryOtelSummariesResponse,
};
use serde_json::json;

use crate::client::ColonyArgs;
use crate::output::{self, Format, count, ms, percent, rate, rfc3339};

/// The time window of a query.
#[derive(Args, Debug, Clone)]
pub struct WindowArgs {
    /// How far back from now (e.g. 15m, 1h, 2d).
    #[arg(long, default_value = "1h", conflicts_with = "from")]
    pub since: String,
    /// Window start, RFC 3339 (e.g. 2026-11-21T14:00:00Z).
    #[arg(long, requires = "to")]
    pub from: Option<String>,
    /// Window end, RFC 3339.
    #[arg(long, requires = "from")]
    pub to: Option<String>,
}

impl WindowArgs {
    /// `[from, to)` in Unix seconds, `to` rounded up to the next minute.
    pub fn resolve(&self) -> anyhow::Result<(i64, i64)> {
        let unix =
            |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        let (from, to) = match (&self.from, &self.to) {
            (Some(from), Some(to)) => {
                let parse = |flag: &str, v: &str| {
                    humantime::parse_rfc3339_weak(v).with_context(|| {
                        format!(
                            "{flag} {v:?} is not a time; use RFC 3339, e.g. 2026-11-21T14:00:00Z"
                        )
                    })
                };
                (unix(parse("--from", from)?), unix(parse("--to", to)?))
            }
            _ => {
                let span = humantime::parse_duration(&self.since).with_context(|| {
                    format!(
                        "--since {:?} is not a duration; use e.g. 15m, 1h or 2d",
                        self.since
                    )
                })?;
                let now = unix(SystemTime::now());
                (now - span.as_secs() as i64, now)
            }
        };
        if from >= to {
            anyhow::bail!("the window is empty: --from must be before --to");
        }
        Ok((from, (to + 59) / 60 * 60))
    }
}

/// `coral query otel <service>`.
#[derive(Args, Debug)]
pub struct OtelArgs {
    /// Service name (the OTel resource's service.name).
    pub service: String,
    #[command(flatten)]
    window: WindowArgs,
    /// Only this span kind (SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER).
    #[arg(long)]
    kind: Option<String>,
    /// Only this agent.
    #[arg(long)]
    agent: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// Runs `coral query otel`.
pub async fn otel(args: OtelArgs) -> anyhow::Result<()> {
    let (from, to) = args.window.resolve()?;
    let mut client = args.colony.client()?;
    let response = client
        .query_otel_summaries(QueryOtelSummariesRequest {
            service_name: args.service.clone(),
            from_unix: from,
            to_unix: to,
            span_kind: args.kind.clone().unwrap_or_default().to_uppercase(),
            agent_id: args.agent.clone().unwrap_or_default(),
        })
        .await
        .map_err(|s| args.colony.explain(s))?
        .into_inner();
    print!("{}", render_otel(&args.service, &response, args.output));
    Ok(())
}

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

/// Renders `coral query otel` output.
pub fn render_otel(service: &str, r: &QueryOtelSummariesResponse, format: Format) -> String {
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
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            )
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
                out.push_str("No spans in this window. Check the service name with `coral agents` and that apps export to the agent's OTLP endpoint.\n");
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
                    "Sample trace",
                ],
                &rows,
            ));
            out.push('\n');
            for t in &r.totals {
                out.push_str(&format!(
                    "Overall {}: {} spans, P50={} P95={} P99={}, error rate={}\n",
                    t.span_kind,
                    count(t.total_spans),
                    ms(t.p50_ms),
                    ms(t.p95_ms),
                    ms(t.p99_ms),
                    percent(rate(t.error_count, t.total_spans))
                ));
            }
            out.push_str("Errors: spans with status ERROR, SERVER spans with HTTP status ≥ 500, CLIENT spans with HTTP status ≥ 400.\n");
            out
        }
    }
}

/// `coral query host <service>`.
#[derive(Args, Debug)]
pub struct HostArgs {
    /// Service name.
    pub service: String,
    #[command(flatten)]
    window: WindowArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// Runs `coral query host`.
pub async fn host(args: HostArgs) -> anyhow::Result<()> {
    let (from, to) = args.window.resolve()?;
    let mut client = args.colony.client()?;
    let response = client
        .query_host_correlation(QueryHostCorrelationRequest {
            service_name: args.service.clone(),
            from_unix: from,
            to_unix: to,
        })
        .await
        .map_err(|s| args.colony.explain(s))?
        .into_inner();
    print!("{}", render_host(&args.service, &response, args.output));
    Ok(())
}

/// Renders `coral query host` output.
pub fn render_host(service: &str, r: &QueryHostCorrelationResponse, format: Format) -> String {
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
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            )
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
                "Service: {service} — span p99 next to host metrics ({} → {})\n\n",
                rfc3339(r.from_unix),
                rfc3339(r.to_unix)
            );
            if r.rows.is_empty() {
                out.push_str("No spans in this window.\n");
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
                    "Spans",
                    "P99",
                    "CPU",
                    "Mem used",
                    "Net rx",
                    "Net tx",
                    "Load1",
                ],
                &rows,
            ));
            out.push_str("\n'-' = no host sample for that minute (host metrics are sampled once a minute).\n");
            out
        }
    }
}

/// `coral agents`.
#[derive(Args, Debug)]
pub struct AgentsArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// Runs `coral agents`.
pub async fn agents(args: AgentsArgs) -> anyhow::Result<()> {
    let mut client = args.colony.client()?;
    let response = client
        .list_agents(ListAgentsRequest {})
        .await
        .map_err(|s| args.colony.explain(s))?
        .into_inner();
    print!("{}", render_agents(&response, args.output));
    Ok(())
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
                    })
                })
                .collect();
            let doc = json!({"colony_id": r.colony_id, "agents": agents});
            format!(
                "{}\n",
                serde_json::to_string_pretty(&doc).unwrap_or_default()
            )
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
            out.push_str(&output::table(
                &[
                    "Agent",
                    "Health",
                    "Mode",
                    "Endpoint",
                    "Last seen",
                    "Last poll",
                    "Lag",
                    "Gaps",
                    "Rows",
                ],
                &rows,
            ));
            for a in r.agents.iter().filter(|a| !a.last_poll_error.is_empty()) {
                out.push_str(&format!(
                    "\n{}: last poll failed: {}\n",
                    a.agent_id, a.last_poll_error
                ));
            }
            out
        }
    }
}
