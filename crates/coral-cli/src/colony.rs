//! `coral colony serve`.

use std::path::PathBuf;

use clap::Args;
use coral_config::{ColonyConfig, ColonyOverrides};

/// Options of `coral colony serve`. Flags override the file and `CORAL_*`.
#[derive(Args, Debug, Default, Clone)]
pub struct ColonyServeArgs {
    /// Colony configuration file (YAML).
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Colony id (default: the hostname).
    #[arg(long)]
    pub colony_id: Option<String>,
    /// Data directory (default: $CORAL_HOME/colony).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Colony API listen address (default 127.0.0.1:9000; port 0 picks one).
    #[arg(long, value_name = "HOST:PORT")]
    pub api_endpoint: Option<String>,
    /// Admin listen address: /metrics, /metrics/red, /healthz (default
    /// 127.0.0.1:9003; port 0 picks one).
    #[arg(long, value_name = "HOST:PORT")]
    pub admin_endpoint: Option<String>,
    /// Serve RED per service and operation for Prometheus at /metrics/red.
    #[arg(long)]
    pub red_metrics: bool,
    /// Time between polls of each agent (e.g. 30s, 5s; at least 1s).
    #[arg(long, value_name = "DURATION")]
    pub poll_interval: Option<String>,
    /// Shared token required on every RPC.
    #[arg(long, hide_env_values = true)]
    pub token: Option<String>,
    /// Log format: text or json.
    #[arg(long)]
    pub log_format: Option<String>,
    /// Log level or tracing filter directive.
    #[arg(long)]
    pub log_level: Option<String>,
}

impl ColonyServeArgs {
    /// Loads the colony configuration.
    pub fn load(
        self,
        env: &std::collections::HashMap<String, String>,
    ) -> anyhow::Result<ColonyConfig> {
        let overrides = ColonyOverrides {
            data_dir: self.data_dir,
            api_endpoint: self.api_endpoint,
            admin_endpoint: self.admin_endpoint,
            red_metrics: self.red_metrics,
            poll_interval: self.poll_interval,
            token: self.token,
            colony_id: self.colony_id,
            log_format: self.log_format,
            log_level: self.log_level,
        };
        Ok(ColonyConfig::load(self.config.as_deref(), env, &overrides)?)
    }
}

/// Runs the colony until a signal.
pub async fn serve(args: ColonyServeArgs) -> anyhow::Result<()> {
    let env: std::collections::HashMap<String, String> = std::env::vars().collect();
    let config = args.load(&env)?;
    crate::logging::init(config.log.format, &config.log.level)?;
    let signal = crate::agent::shutdown_signal();
    // The start errors print their cause in their own message: say it once.
    let colony = coral_colony::start(&config).await.map_err(|error| {
        anyhow::anyhow!(
            "cannot start the coral colony: {}",
            crate::output::error_once(&error)
        )
    })?;
    say!(
        "coral colony {} listening: api={} metrics=http://{}/metrics{} data={} poll-interval={}",
        config.colony_id,
        colony.addr,
        colony.admin_addr,
        if config.admin.red_metrics {
            " (and /metrics/red)"
        } else {
            ""
        },
        config.data_dir.display(),
        humantime::format_duration(config.poll.interval)
    );
    signal.await;
    say_err!("shutting down: finishing polls and closing the database…");
    colony.shutdown().await;
    Ok(())
}
