//! `coral query traces` (every source) and `coral query beyla traces` (the
//! same command limited to Beyla's spans): open one trace with
//! `--trace-id`, or list the slowest traces matching the filters.

use anyhow::Context as _;
use clap::Args;
use coral_proto::colony::{GetTraceRequest, ListTracesRequest};

use crate::client::ColonyArgs;
use crate::output;
use crate::query::WindowArgs;
use crate::trace_views::{self, TraceFormat};

/// Where spans come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// Spans of OpenTelemetry SDKs, kept by the agents.
    Otlp,
    /// Spans of Beyla (eBPF).
    Beyla,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Otlp => "otlp",
            Source::Beyla => "beyla",
        }
    }
}

/// Why an agent kept a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KeepReason {
    /// An error span.
    Error,
    /// Slower than the agent's latency filter.
    Latency,
    /// Part of a whole trace kept by the trace-id sample.
    Sampled,
    /// A Beyla span (kept with its whole trace).
    Beyla,
}

/// Options of `coral query traces`.
#[derive(Args, Debug)]
pub struct TracesArgs {
    /// Open this trace (32 hex characters), assembled from every source and agent.
    #[arg(long, value_name = "ID", value_parser = trace_id)]
    trace_id: Option<String>,
    /// List traces with a span of this service.
    #[arg(long)]
    service: Option<String>,
    /// List traces with a span of this operation (span name).
    #[arg(long)]
    operation: Option<String>,
    #[command(flatten)]
    window: WindowArgs,
    /// Only traces at least this long (e.g. 500ms, 2s).
    #[arg(long, value_name = "DURATION")]
    min_duration: Option<String>,
    /// Only traces with an error span.
    #[arg(long)]
    errors: bool,
    /// Only traces with a span kept for this reason.
    #[arg(long, value_enum, value_name = "REASON")]
    keep_reason: Option<KeepReason>,
    /// Only spans from this source (otlp or beyla) select traces.
    #[arg(long, value_enum)]
    source: Option<Source>,
    /// Traces to list (at most 1,000).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    limit: u32,
    /// Spans to show of one trace (at most 10,000; the critical path first).
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    max_spans: u32,
    /// Output: tree, table or json.
    #[arg(
        long,
        visible_alias = "output",
        short = 'o',
        value_enum,
        default_value_t
    )]
    format: TraceFormat,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// Checks and normalises a trace id (a usage error, exit 2, otherwise):
/// 32 hex characters, lowercase.
fn trace_id(id: &str) -> Result<String, String> {
    let id = id.trim().to_ascii_lowercase();
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "{id:?} is not a trace id: expected 32 hex characters, {} given (as printed by `coral query traces --service S`)",
            id.chars().count()
        ));
    }
    Ok(id)
}

/// Runs `coral query traces`; `beyla_only` for `coral query beyla traces`.
pub async fn traces(mut args: TracesArgs, beyla_only: bool) -> anyhow::Result<()> {
    if beyla_only {
        args.source = Some(Source::Beyla);
    }
    let mut client = args.colony.client()?;
    if let Some(id) = args.trace_id.clone() {
        let response = output::with_progress(
            "waiting for the colony",
            client.get_trace(GetTraceRequest {
                trace_id: id.clone(),
                max_spans: args.max_spans,
            }),
        )
        .await
        .map_err(|s| args.colony.explain(s))?
        .into_inner();
        if !response.found {
            anyhow::bail!(
                "trace {id} not found in the colony (kept spans live for storage.retention.trace_spans, 24h by default, and Beyla spans for storage.beyla.retention.traces; spans reach the colony at its next poll)"
            );
        }
        let text = trace_views::render_trace(&response, args.format);
        print!("{}", output::printable(&text, true));
        return Ok(());
    }
    let (from, to) = args.window.resolve()?;
    let min_duration_us = match &args.min_duration {
        Some(d) => humantime::parse_duration(d)
            .with_context(|| {
                format!("--min-duration {d:?} is not a duration; use e.g. 500ms or 2s")
            })?
            .as_micros() as i64,
        None => 0,
    };
    let service = args.service.clone().unwrap_or_default();
    let response = output::with_progress(
        "waiting for the colony",
        client.list_traces(ListTracesRequest {
            service: service.clone(),
            operation: args.operation.clone().unwrap_or_default(),
            start_time_unix_ms: from * 1000,
            end_time_unix_ms: to * 1000,
            min_duration_us,
            errors_only: args.errors,
            keep_reason: args
                .keep_reason
                .and_then(|r| {
                    clap::ValueEnum::to_possible_value(&r).map(|v| v.get_name().to_owned())
                })
                .unwrap_or_default(),
            source: args.source.map(Source::as_str).unwrap_or_default().into(),
            limit: args.limit,
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    let scope = match (&args.service, &args.operation) {
        (Some(s), Some(o)) => format!("{s} {o}"),
        (Some(s), None) => s.clone(),
        (None, Some(o)) => o.clone(),
        (None, None) => "every service".into(),
    };
    let scope = match args.source {
        Some(source) => format!("{scope} ({} spans)", source.as_str()),
        None => scope,
    };
    let text = trace_views::render_list(&scope, &response, args.format);
    print!("{}", output::printable(&text, true));
    Ok(())
}
