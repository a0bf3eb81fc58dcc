//! `coral up`: a colony and an agent in one process, the agent registered
//! with the colony, both databases under `$CORAL_HOME`.

use std::collections::HashMap;

use anyhow::Context as _;
use clap::Args;

use crate::agent::ServeArgs;
use crate::colony::ColonyServeArgs;

/// Poll interval of the all-in-one (unless configured): data shows up in
/// queries within seconds of the minute closing.
pub const UP_POLL_INTERVAL: &str = "5s";

/// Options of `coral up`.
#[derive(Args, Debug, Default)]
pub struct UpArgs {
    #[command(flatten)]
    agent: ServeArgs,
    /// Colony configuration file (YAML).
    #[arg(long, value_name = "FILE")]
    colony_config: Option<std::path::PathBuf>,
    /// Colony API listen address (default 127.0.0.1:9000).
    #[arg(long, value_name = "HOST:PORT")]
    colony_api_endpoint: Option<String>,
}

/// Runs colony and agent until a signal, then stops both in order.
pub async fn up(args: UpArgs) -> anyhow::Result<()> {
    let env: HashMap<String, String> = std::env::vars().collect();
    let poll_interval =
        (!env.contains_key("CORAL_POLL_INTERVAL")).then(|| UP_POLL_INTERVAL.to_owned());
    let colony_args = ColonyServeArgs {
        config: args.colony_config,
        api_endpoint: args.colony_api_endpoint,
        poll_interval,
        ..Default::default()
    };
    let colony_config = colony_args.load(&env)?;
    let mut agent_args = args.agent;
    let log = agent_args.log_overrides();
    let level = log
        .1
        .clone()
        .unwrap_or_else(|| colony_config.log.level.clone());
    crate::logging::init(log.0.unwrap_or(colony_config.log.format), &level)?;
    let colony = coral_colony::start(&colony_config)
        .await
        .context("cannot start the coral colony")?;
    agent_args.colony_endpoint = Some(format!("http://{}", colony.addr));
    let mut options = agent_args.options(&env);
    options.colony_ports = vec![colony.addr.port()];
    let agent_config = match agent_args.load(&env) {
        Ok(config) => config,
        Err(error) => {
            colony.shutdown().await;
            return Err(error);
        }
    };
    let agent = match coral_agent::start_with(&agent_config, options).await {
        Ok(agent) => agent,
        Err(error) => {
            colony.shutdown().await;
            return Err(anyhow::Error::new(error).context("cannot start the coral agent"));
        }
    };
    let a = agent.addrs;
    say!(
        "Coral is running: colony {} and agent {}.",
        colony_config.colony_id,
        agent_config.agent_id
    );
    say!(
        "  data:        {}",
        colony_config
            .data_dir
            .parent()
            .unwrap_or(&colony_config.data_dir)
            .display()
    );
    if let (Some(grpc), Some(http)) = (a.otlp_grpc, a.otlp_http) {
        say!("  OTLP gRPC:   {grpc}");
        say!("  OTLP HTTP:   http://{http}");
    }
    say!("  colony API:  {}", colony.addr);
    say!("  agent API:   {}", a.api);
    say!("  metrics:     http://{}/metrics", a.admin);
    say!("  {}", crate::agent::beyla_line(&agent));
    if let Some(grpc) = a.otlp_grpc {
        say!();
        say!("Point an OpenTelemetry SDK at it:");
        say!("  export OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc}");
        say!("  export OTEL_EXPORTER_OTLP_PROTOCOL=grpc");
    }
    say!();
    say!("Then: coral agents · coral query otel <service>");
    say!("Press Ctrl-C to stop.");
    crate::agent::wait_for_signal().await;
    say_err!("shutting down: flushing open minutes and closing the databases…");
    agent.shutdown().await;
    colony.shutdown().await;
    Ok(())
}
