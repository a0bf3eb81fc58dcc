//! `coral query otel`, `coral query host` and `coral agents`: read from the
//! colony and render (see docs/cli.md for the JSON contracts).

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use clap::Args;
use coral_proto::colony::{
    ListAgentsRequest, QueryHostCorrelationRequest, QueryOtelSummariesRequest,
};

use crate::client::ColonyArgs;
use crate::output::Format;
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
    let response = client
        .query_host_correlation(QueryHostCorrelationRequest {
            service_name: args.service.clone(),
            from_unix: from,
            to_unix: to,
        })
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
    let response = client
        .list_agents(ListAgentsRequest {})
        .await
        .map_err(|s| args.colony.explain(s))?
        .into_inner();
    print!("{}", views::render_agents(&response, args.output));
    Ok(())
}
