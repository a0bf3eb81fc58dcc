//! `coral query otel`, `coral query host` and `coral agents`: read from the
//! colony and render (see docs/cli.md for the JSON contracts).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use coral_proto::colony::{
    ListAgentsRequest, ListServicesRequest, QueryBeylaRequest, QueryHostCorrelationRequest,
    QueryOtelSummariesRequest,
};

use crate::beyla_views::{self, Family, HttpFilter};

use crate::client::ColonyArgs;
use crate::output::{self, Format};
use crate::views;

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
    /// The `--since` text when the window is relative to now (for titles).
    pub fn since_label(&self) -> Option<&str> {
        self.from.is_none().then_some(self.since.as_str())
    }

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
    let response = output::with_progress(
        "waiting for the colony",
        client.query_otel_summaries(QueryOtelSummariesRequest {
            service_name: args.service.clone(),
            from_unix: from,
            to_unix: to,
            span_kind: args.kind.clone().unwrap_or_default().to_uppercase(),
            agent_id: args.agent.clone().unwrap_or_default(),
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    print!(
        "{}",
        views::render_otel(&args.service, &response, args.output)
    );
    Ok(())
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
    let response = output::with_progress(
        "waiting for the colony",
        client.query_host_correlation(QueryHostCorrelationRequest {
            service_name: args.service.clone(),
            from_unix: from,
            to_unix: to,
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    print!(
        "{}",
        views::render_host(&args.service, &response, args.output)
    );
    Ok(())
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
    let response = output::with_progress(
        "waiting for the colony",
        client.list_agents(ListAgentsRequest {}),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    print!("{}", views::render_agents(&response, args.output));
    Ok(())
}

/// `coral query beyla http|grpc|sql <service>`.
#[derive(Args, Debug)]
pub struct BeylaArgs {
    /// Service name (as Beyla reports it).
    pub service: String,
    #[command(flatten)]
    window: WindowArgs,
    /// HTTP: only this route (exact, e.g. /api/v1/users/:id). SQL: only this table.
    #[arg(long, alias = "table")]
    route: Option<String>,
    /// HTTP: only this method. gRPC: only this method (full path). SQL: only this operation.
    #[arg(long, alias = "operation")]
    method: Option<String>,
    /// HTTP: only this status, a code (404) or a class (5xx).
    #[arg(long, value_parser = beyla_views::parse_status)]
    status: Option<String>,
    /// Server side (default) or the service's outgoing client calls.
    #[arg(long, value_parser = ["server", "client"], default_value = "server")]
    kind: String,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// Runs `coral query beyla http|grpc|sql`.
pub async fn beyla(args: BeylaArgs, family: Family) -> anyhow::Result<()> {
    let (from, to) = args.window.resolve()?;
    let mut client = args.colony.client()?;
    let metric_type = match family {
        Family::Http => "http",
        Family::Grpc => "grpc",
        Family::Sql => "sql",
    };
    let response = output::with_progress(
        "waiting for the colony",
        client.query_beyla(QueryBeylaRequest {
            service_names: vec![args.service.clone()],
            metric_types: vec![metric_type.into()],
            start_time_unix_ms: from * 1000,
            end_time_unix_ms: to * 1000,
            ..Default::default()
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    let filter = HttpFilter {
        route: args.route.clone(),
        method: args.method.clone(),
        status: args.status.clone(),
        kind: args.kind.clone(),
    };
    let since = args.window.since_label();
    let window = beyla_views::Window { from, to, since };
    print!(
        "{}",
        beyla_views::render(
            &args.service,
            &window,
            family,
            &response,
            &filter,
            args.output
        )
    );
    Ok(())
}

/// `coral query beyla traces`.
#[derive(Args, Debug)]
pub struct TracesArgs {
    /// Show this trace (32 hex characters), assembled from every agent.
    #[arg(long, value_name = "ID")]
    trace_id: Option<String>,
    /// List the slowest traces of this service.
    #[arg(long, required_unless_present = "trace_id")]
    service: Option<String>,
    #[command(flatten)]
    window: WindowArgs,
    /// Only traces with a span at least this long (e.g. 500ms, 2s).
    #[arg(long, value_name = "DURATION")]
    min_duration: Option<String>,
    /// Traces to list.
    #[arg(long, default_value_t = 20)]
    limit: u32,
    /// Output: tree, table or json.
    #[arg(
        long,
        visible_alias = "output",
        short = 'o',
        value_enum,
        default_value_t
    )]
    format: crate::trace_views::TraceFormat,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// Runs `coral query beyla traces`.
pub async fn traces(args: TracesArgs) -> anyhow::Result<()> {
    let mut client = args.colony.client()?;
    if let Some(id) = &args.trace_id {
        let id = id.trim().to_ascii_lowercase();
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            anyhow::bail!("--trace-id {id:?} is not a trace id: expected 32 hex characters");
        }
        let response = output::with_progress(
            "waiting for the colony",
            client.query_beyla(QueryBeylaRequest {
                trace_id: id.clone(),
                include_traces: true,
                ..Default::default()
            }),
        )
        .await
        .map_err(|s| args.colony.explain(s))?
        .into_inner();
        print!(
            "{}",
            crate::trace_views::render_trace(&id, &response.trace_spans, args.format)
        );
        return Ok(());
    }
    let service = args.service.clone().unwrap_or_default();
    let (from, to) = args.window.resolve()?;
    let min_duration_us = match &args.min_duration {
        Some(d) => humantime::parse_duration(d)
            .with_context(|| {
                format!("--min-duration {d:?} is not a duration; use e.g. 500ms or 2s")
            })?
            .as_micros() as i64,
        None => 0,
    };
    let response = output::with_progress(
        "waiting for the colony",
        client.query_beyla(QueryBeylaRequest {
            service_names: vec![service.clone()],
            metric_types: vec!["none".into()],
            start_time_unix_ms: from * 1000,
            end_time_unix_ms: to * 1000,
            include_traces: true,
            max_traces: args.limit.max(1),
            min_duration_us,
            ..Default::default()
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    print!(
        "{}",
        crate::trace_views::render_list(&service, &response.trace_spans, args.format)
    );
    Ok(())
}

/// `coral query services`.
#[derive(Args, Debug)]
pub struct ServicesArgs {
    #[command(flatten)]
    window: WindowArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    #[command(flatten)]
    colony: ColonyArgs,
}

/// Runs `coral query services`.
pub async fn services(args: ServicesArgs) -> anyhow::Result<()> {
    let (from, to) = args.window.resolve()?;
    let mut client = args.colony.client()?;
    let response = output::with_progress(
        "waiting for the colony",
        client.list_services(ListServicesRequest {
            start_time_unix_ms: from * 1000,
            end_time_unix_ms: to * 1000,
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    let since = args.window.since_label();
    let window = beyla_views::Window { from, to, since };
    print!(
        "{}",
        beyla_views::render_services(&window, &response.services, args.output)
    );
    Ok(())
}
