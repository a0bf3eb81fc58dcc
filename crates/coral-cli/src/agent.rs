//! `coral agent serve` (and the agent half of `coral up`).

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use coral_agent::AgentOptions;
use coral_config::{AgentConfig, AgentMode, AgentOverrides, LogFormat};

/// Options of `coral agent serve` (and `coral up`). Flags override the
/// configuration file and `CORAL_*` environment variables.
#[derive(Args, Debug, Default, Clone)]
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
    /// Colony to register with (host:port or http(s)://host:port).
    #[arg(
        long = "colony-endpoint",
        visible_alias = "colony",
        value_name = "ADDR"
    )]
    pub colony_endpoint: Option<String>,
    /// Shared token (colony calls and this agent's API).
    #[arg(long, hide_env_values = true)]
    token: Option<String>,
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

impl ServeArgs {
    /// The log flags, if given.
    pub fn log_overrides(&self) -> (Option<LogFormat>, Option<String>) {
        (self.log_format, self.log_level.clone())
    }

    /// Loads the agent configuration.
    pub fn load(
        self,
        env: &std::collections::HashMap<String, String>,
    ) -> anyhow::Result<AgentConfig> {
        let path = self.config.clone();
        Ok(AgentConfig::load(path.as_deref(), env, &self.overrides())?)
    }

    /// How the agent finds Beyla and reloads its `beyla:` section when the
    /// config file changes (same file, environment and flags).
    pub fn options(&self, env: &std::collections::HashMap<String, String>) -> AgentOptions {
        let mut options = AgentOptions::default();
        options.beyla.coral_home = coral_config::coral_home(env);
        if let Some(path) = self.config.clone() {
            let (env, overrides) = (env.clone(), self.clone().overrides());
            options.beyla.reload = Some(std::sync::Arc::new(move || {
                AgentConfig::load(Some(&path), &env, &overrides)
                    .map(|c| c.beyla)
                    .map_err(|e| e.to_string())
            }));
        }
        options
    }

    fn overrides(self) -> AgentOverrides {
        AgentOverrides {
            agent_id: self.agent_id,
            data_dir: self.data_dir,
            mode: self.mode,
            grpc_endpoint: self.otlp_grpc_endpoint,
            http_endpoint: self.otlp_http_endpoint,
            api_endpoint: self.api_endpoint,
            admin_endpoint: self.admin_endpoint,
            colony_endpoint: self.colony_endpoint,
            token: self.token,
            log_format: self.log_format,
            log_level: self.log_level,
        }
    }
}

/// Loads the configuration, runs the agent until a signal, then shuts down.
pub async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let options = args.options(&env);
    let config = args.load(&env)?;
    crate::logging::init(config.log.format, &config.log.level)?;
    // The start errors print their cause in their own message: say it once.
    let signal = shutdown_signal();
    let agent = coral_agent::start_with(&config, options)
        .await
        .map_err(|error| {
            anyhow::anyhow!(
                "cannot start the coral agent: {}",
                crate::output::error_once(&error)
            )
        })?;
    let a = agent.addrs;
    say!(
        "coral agent {} listening: otlp-grpc={} otlp-http={} api={} admin={}",
        config.agent_id,
        a.otlp_grpc.map_or("disabled".into(), |s| s.to_string()),
        a.otlp_http.map_or("disabled".into(), |s| s.to_string()),
        a.api,
        a.admin
    );
    say!("{}", beyla_line(&agent));
    signal.await;
    say_err!("shutting down: flushing open minutes and closing the database…");
    agent.shutdown().await;
    Ok(())
}

/// One line on Beyla for the start banner: short when it is off (where the
/// agent looked for it is `coral beyla check`'s to say).
pub fn beyla_line(agent: &coral_agent::RunningAgent) -> String {
    let b = agent.api.status().beyla.unwrap_or_default();
    if b.state == "disabled" {
        format!("Beyla off: {}", b.reason)
    } else {
        format!("Beyla: {} — {} ({})", b.state, b.summary, b.binary)
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, listened for from the moment this is called,
/// before the start banner, so that a signal sent as soon as the banner is
/// read still shuts down cleanly instead of killing the process.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{Signal, SignalKind, signal};
        async fn next(signal: Option<Signal>) {
            match signal {
                Some(mut signal) => {
                    signal.recv().await;
                }
                None => std::future::pending().await,
            }
        }
        let term = signal(SignalKind::terminate()).ok();
        let interrupt = signal(SignalKind::interrupt()).ok();
        async move {
            tokio::select! {
                _ = next(term) => {}
                _ = next(interrupt) => {}
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
