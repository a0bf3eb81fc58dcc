//! `coral agent serve` and `coral up`.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use coral_config::{AgentConfig, AgentMode, AgentOverrides, LogFormat};

/// Options of `coral agent serve` (and `coral up`). Flags override the
/// configuration file and `CORAL_*` environment variables.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Agent configuration file (YAML).
    #[arg(long, short = 'c', value_name = "FILE")]
    config: Option<PathBuf>,
    /// Operating mode.
    #[arg(long, value_parser = parse_mode)]
    mode: Option<AgentMode>,
    /// Agent id (default: the hostname).
    #[arg(long)]
    agent_id: Option<String>,
    /// Data directory (default: $CORAL_HOME/agent).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// OTLP/gRPC listen address (port 0 picks a free port).
    #[arg(long, value_name = "HOST:PORT")]
    otlp_grpc_endpoint: Option<SocketAddr>,
    /// OTLP/HTTP listen address.
    #[arg(long, value_name = "HOST:PORT")]
    otlp_http_endpoint: Option<SocketAddr>,
    /// AgentService gRPC listen address.
    #[arg(long, value_name = "HOST:PORT")]
    api_endpoint: Option<SocketAddr>,
    /// Admin HTTP (Prometheus /metrics) listen address.
    #[arg(long, value_name = "HOST:PORT")]
    admin_endpoint: Option<SocketAddr>,
    /// Log format: text or json.
    #[arg(long, value_parser = parse_log_format)]
    log_format: Option<LogFormat>,
    /// Log level or tracing filter directive (e.g. debug, coral_agent=trace).
    #[arg(long)]
    log_level: Option<String>,
}

fn parse_mode(s: &str) -> Result<AgentMode, String> {
    s.parse()
        .map_err(|_| format!("unknown mode {s:?}; use agent, otel-collector or forwarder"))
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unknown log format {s:?}; use text or json")),
    }
}

/// Loads the configuration, runs the agent until a signal, then shuts down.
pub async fn serve(args: ServeArgs, all_in_one: bool) -> anyhow::Result<()> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let overrides = AgentOverrides {
        agent_id: args.agent_id,
        data_dir: args.data_dir,
        mode: args.mode,
        grpc_endpoint: args.otlp_grpc_endpoint,
        http_endpoint: args.otlp_http_endpoint,
        api_endpoint: args.api_endpoint,
        admin_endpoint: args.admin_endpoint,
        log_format: args.log_format,
        log_level: args.log_level,
    };
    let config = AgentConfig::load(args.config.as_deref(), &env, &overrides)?;
    crate::logging::init(config.log.format, &config.log.level)?;
    let agent = coral_agent::start(&config)
        .await
        .context("cannot start the coral agent")?;
    let a = agent.addrs;
    if all_in_one {
        println!("Coral is running (agent {}).", config.agent_id);
        println!("  data:       {}", config.data_dir.display());
        if let (Some(grpc), Some(http)) = (a.otlp_grpc, a.otlp_http) {
            println!("  OTLP gRPC:  {grpc}");
            println!("  OTLP HTTP:  http://{http}");
            println!();
            println!("Point an OpenTelemetry SDK at it:");
            println!("  export OTEL_EXPORTER_OTLP_ENDPOINT=http://{grpc}");
            println!("  export OTEL_EXPORTER_OTLP_PROTOCOL=grpc");
            println!(
                "  # or HTTP: OTEL_EXPORTER_OTLP_ENDPOINT=http://{http} OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf"
            );
        }
        println!("  agent API:  {}", a.api);
        println!("  metrics:    http://{}/metrics", a.admin);
        println!();
        println!("Press Ctrl-C to stop.");
    } else {
        println!(
            "coral agent {} listening: otlp-grpc={} otlp-http={} api={} admin={}",
            config.agent_id,
            a.otlp_grpc.map_or("disabled".into(), |s| s.to_string()),
            a.otlp_http.map_or("disabled".into(), |s| s.to_string()),
            a.api,
            a.admin
        );
    }
    wait_for_signal().await;
    eprintln!("shutting down: flushing open minutes and closing the database…");
    agent.shutdown().await;
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = match signal(SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
