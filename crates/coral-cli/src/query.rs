//! `coral query otel`, `coral query host` and `coral agents`: read from the
//! colony and render (see docs/cli.md for the JSON contracts).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use coral_proto::colony::{
    ListAgentsRequest, ListServicesRequest, QueryBeylaRequest, QueryHostCorrelationRequest,
    QueryOperationsRequest, QueryOtelSummariesRequest,
};

use crate::beyla_views::{self, Family, HttpFilter};

use crate::client::{Client, ColonyArgs};
use crate::output::{self, Empty, Format};
use crate::{suggest, views};

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
                if span.is_zero() {
                    anyhow::bail!(
                        "--since {} is an empty window; use e.g. 15m, 1h",
                        self.since
                    );
                }
                let now = unix(SystemTime::now());
                (now - span.as_secs().max(1) as i64, now)
            }
        };
        if from >= to {
            anyhow::bail!(
                "the window is empty: --from {} is not before --to {}; give an earlier --from",
                self.from.as_deref().unwrap_or_default(),
                self.to.as_deref().unwrap_or_default()
            );
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
    /// Only this span kind (SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER; any case).
    #[arg(long, value_parser = parse_span_kind)]
    kind: Option<String>,
    /// Only this agent.
    #[arg(long)]
    agent: Option<String>,
    /// One row per operation (span name) over the window, by total time spent.
    #[arg(long, value_enum, value_name = "WHAT", conflicts_with = "operation")]
    by: Option<By>,
    /// Follow one operation (span name) per minute.
    #[arg(long, value_name = "NAME")]
    operation: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    output: Format,
    #[command(flatten)]
    colony: ColonyArgs,
}

impl OtelArgs {
    /// The filters given, as typed (for "no spans with these filters").
    fn filters(&self) -> Vec<String> {
        let mut given: Vec<String> = [("--kind", &self.kind), ("--agent", &self.agent)]
            .into_iter()
            .filter_map(|(flag, v)| v.as_ref().map(|v| format!("{flag} {v}")))
            .collect();
        if let Some(op) = &self.operation {
            given.push(format!("--operation {op:?}"));
        }
        given
    }
}

/// How `coral query otel` groups its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum By {
    /// One row per operation (span name) and kind over the window.
    Operation,
}

/// The span kinds of OpenTelemetry, as the colony stores them.
const SPAN_KINDS: [&str; 5] = ["SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER"];

/// Checks a `--kind` value (any case) and returns it upper-case.
fn parse_span_kind(s: &str) -> Result<String, String> {
    let kind = s.trim().to_ascii_uppercase();
    if SPAN_KINDS.contains(&kind.as_str()) {
        Ok(kind)
    } else {
        Err(format!(
            "{s:?} is not a span kind; use one of {} (any case)",
            SPAN_KINDS.join(", ")
        ))
    }
}

/// What an empty result of a query about `service` says: the colony's hint
/// about the name (see `suggest`), also written to stderr for JSON and CSV
/// (whose stdout stays the plain empty document), and when data will appear.
/// `filters` names the flags that narrowed the query, if any.
async fn empty_notes(
    client: &mut Client,
    service: &str,
    source: Option<&str>,
    to: i64,
    format: Format,
    filters: &[String],
) -> Empty {
    let mut hint = suggest::service_hint(client, service, source).await;
    if let Some(h) = &mut hint
        && !filters.is_empty()
    {
        h.push_str(&format!(" (only {} was asked for)", filters.join(" ")));
    }
    if format != Format::Table
        && let Some(h) = &hint
    {
        say_err!("note: {h}");
    }
    Empty::now(to, hint)
}

/// Runs `coral query otel`.
pub async fn otel(args: OtelArgs) -> anyhow::Result<()> {
    if args.by.is_some() || args.operation.is_some() {
        return otel_operations(args).await;
    }
    let (from, to) = args.window.resolve()?;
    let mut client = args.colony.client()?;
    let response = output::with_progress(
        "waiting for the colony",
        client.query_otel_summaries(QueryOtelSummariesRequest {
            service_name: args.service.clone(),
            from_unix: from,
            to_unix: to,
            span_kind: args.kind.clone().unwrap_or_default(),
            agent_id: args.agent.clone().unwrap_or_default(),
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    let empty = if response.rows.is_empty() {
        let filters = args.filters();
        empty_notes(
            &mut client,
            &args.service,
            Some("otlp"),
            to,
            args.output,
            &filters,
        )
        .await
    } else {
        Empty::default()
    };
    let text = views::render_otel(&args.service, &response, args.output, &empty);
    print!("{}", output::printable(&text, true));
    Ok(())
}

/// `coral query otel <service> --by operation` and `--operation O`.
async fn otel_operations(args: OtelArgs) -> anyhow::Result<()> {
    let (from, to) = args.window.resolve()?;
    let mut client = args.colony.client()?;
    let response = output::with_progress(
        "waiting for the colony",
        client.query_operations(QueryOperationsRequest {
            service_name: args.service.clone(),
            from_unix: from,
            to_unix: to,
            span_kind: args.kind.clone().unwrap_or_default(),
            operation: args.operation.clone().unwrap_or_default(),
            agent_id: args.agent.clone().unwrap_or_default(),
        }),
    )
    .await
    .map_err(|s| args.colony.explain(s))?
    .into_inner();
    let empty = if response.rows.is_empty() {
        let filters = args.filters();
        empty_notes(
            &mut client,
            &args.service,
            Some("otlp"),
            to,
            args.output,
            &filters,
        )
        .await
    } else {
        Empty::default()
    };
    let empty = empty.lines(
        "Check the service name with `coral query services`, and that apps export to the agent's OTLP endpoint.",
    );
    let text = match &args.operation {
        Some(op) => crate::operation_views::render_operation(
            &args.service,
            op,
            &response,
            args.output,
            &empty,
        ),
        None => crate::operation_views::render_by_operation(
            &args.service,
            &response,
            args.output,
            &empty,
        ),
    };
    print!("{}", output::printable(&text, true));
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
    let empty = if response.rows.is_empty() {
        empty_notes(
            &mut client,
            &args.service,
            Some("otlp"),
            to,
            args.output,
            &[],
        )
        .await
    } else {
        Empty::default()
    };
    let text = views::render_host(&args.service, &response, args.output, &empty);
    print!("{}", output::printable(&text, true));
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
    let text = views::render_agents(&response, args.output);
    print!("{}", output::printable(&text, true));
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
    let (_, overall) = beyla_views::groups(&response, family, &filter);
    let empty = if overall.requests == 0 {
        let mut filters: Vec<String> = [
            ("--route", &args.route),
            ("--method", &args.method),
            ("--status", &args.status),
        ]
        .into_iter()
        .filter_map(|(flag, v)| v.as_ref().map(|v| format!("{flag} {v}")))
        .collect();
        if args.kind != "server" {
            filters.push(format!("--kind {}", args.kind));
        }
        // ListServices' Beyla side is server-side HTTP and gRPC only.
        let source = (family != Family::Sql).then_some("beyla");
        empty_notes(
            &mut client,
            &args.service,
            source,
            to,
            args.output,
            &filters,
        )
        .await
    } else {
        Empty::default()
    };
    let text = beyla_views::render(
        &args.service,
        &window,
        family,
        &response,
        &filter,
        args.output,
        &empty,
    );
    print!("{}", output::printable(&text, true));
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
    let empty = Empty::now(to, None);
    let text = beyla_views::render_services(&window, &response.services, args.output, &empty);
    print!("{}", output::printable(&text, true));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn since(s: &str) -> WindowArgs {
        WindowArgs {
            since: s.into(),
            from: None,
            to: None,
        }
    }

    #[test]
    fn windows_say_what_is_wrong_with_them() {
        let err = since("0s").resolve().unwrap_err().to_string();
        assert_eq!(err, "--since 0s is an empty window; use e.g. 15m, 1h");
        let (from, to) = since("15m").resolve().unwrap();
        assert!(to - from >= 15 * 60 && to % 60 == 0, "{from} {to}");
        let backwards = WindowArgs {
            since: "1h".into(),
            from: Some("2026-11-21T14:00:00Z".into()),
            to: Some("2026-11-21T13:00:00Z".into()),
        };
        let err = backwards.resolve().unwrap_err().to_string();
        assert!(
            err.contains("--from 2026-11-21T14:00:00Z is not before --to"),
            "{err}"
        );
    }

    #[test]
    fn span_kinds_are_checked_in_any_case() {
        assert_eq!(parse_span_kind("server").as_deref(), Ok("SERVER"));
        assert_eq!(parse_span_kind("Consumer").as_deref(), Ok("CONSUMER"));
        let err = parse_span_kind("foo").unwrap_err();
        assert_eq!(
            err,
            "\"foo\" is not a span kind; use one of SERVER, CLIENT, INTERNAL, PRODUCER, CONSUMER (any case)"
        );
    }
}
