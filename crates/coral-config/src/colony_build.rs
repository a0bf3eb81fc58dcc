//! Layering of the colony configuration: defaults < file < environment <
//! flags, then final validation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::build::{coral_home, default_colony_id};
use crate::colony::{
    AdminConfig, BeylaTraceSampling, ColonyConfig, ColonyOverrides, ColonyRetention, HealthConfig,
    PollConfig, StaticAgent, StorageEngine,
};
use crate::colony_storage::StorageDraft;
use crate::dial::DialTarget;
use crate::token::{self, TokenSource};
use crate::types::{LogConfig, LogFormat};
use crate::{ConfigError, parse_duration, values};

/// Shortest `colony.poll.interval`.
pub(crate) const POLL_INTERVAL_MIN: Duration = Duration::from_secs(1);
/// Longest `colony.poll.interval`.
pub(crate) const POLL_INTERVAL_MAX: Duration = Duration::from_secs(3600);

/// The colony configuration being assembled, layer by layer.
pub(crate) struct ColonyBuilder {
    /// The configuration so far (`data_dir` is final only if `data_dir_set`;
    /// `static_agents` is filled in by [`ColonyBuilder::finish`]).
    pub(crate) cfg: ColonyConfig,
    /// Whether a layer set `data_dir` explicitly.
    data_dir_set: bool,
    /// `$CORAL_HOME/colony`, if CORAL_HOME (or HOME) is known.
    default_data_dir: Option<PathBuf>,
    /// The shared secret so far.
    pub(crate) token: Option<TokenSource>,
    /// Static agents from the file: id and parsed endpoint.
    pub(crate) agents: Vec<(String, DialTarget)>,
    /// `storage.engine` and its settings so far, with where each was set.
    pub(crate) storage: StorageDraft,
}

impl ColonyBuilder {
    /// All defaults; `env` supplies `CORAL_HOME` / `HOME` for the data directory.
    pub(crate) fn new(env: &HashMap<String, String>, source: Option<&Path>) -> ColonyBuilder {
        let cfg = ColonyConfig {
            colony_id: default_colony_id(),
            data_dir: PathBuf::new(),
            api_endpoint: SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, 9000)),
            api_tls: None,
            admin: AdminConfig::DEFAULT,
            auth_token: None,
            poll: PollConfig::DEFAULT,
            health: HealthConfig::DEFAULT,
            static_agents: Vec::new(),
            retention: ColonyRetention::DEFAULT,
            cleanup_interval: Duration::from_secs(300),
            beyla_traces: BeylaTraceSampling::DEFAULT,
            storage: StorageEngine::DuckDb,
            log: LogConfig {
                format: LogFormat::Text,
                level: "info".to_owned(),
            },
            source: source.map(Path::to_path_buf),
        };
        ColonyBuilder {
            cfg,
            data_dir_set: false,
            default_data_dir: coral_home(env).map(|home| home.join("colony")),
            token: None,
            agents: Vec::new(),
            storage: StorageDraft::default(),
        }
    }

    /// Sets the data directory explicitly.
    pub(crate) fn set_data_dir(&mut self, dir: PathBuf) {
        self.cfg.data_dir = dir;
        self.data_dir_set = true;
    }

    /// Applies command-line flag overrides.
    pub(crate) fn apply_flags(&mut self, flags: &ColonyOverrides) -> Result<(), ConfigError> {
        let flag_err =
            |flag: &'static str| move |message: String| ConfigError::Flag { flag, message };
        if let Some(id) = &flags.colony_id {
            self.cfg.colony_id = values::check_colony_id(id).map_err(flag_err("--colony-id"))?;
        }
        if let Some(dir) = &flags.data_dir {
            if dir.as_os_str().is_empty() {
                return Err(flag_err("--data-dir")(
                    "the data directory must not be empty".to_owned(),
                ));
            }
            self.set_data_dir(dir.clone());
        }
        if let Some(endpoint) = &flags.api_endpoint {
            self.cfg.api_endpoint =
                values::parse_endpoint(endpoint).map_err(flag_err("--api-endpoint"))?;
        }
        if let Some(endpoint) = &flags.admin_endpoint {
            self.cfg.admin.endpoint =
                values::parse_endpoint(endpoint).map_err(flag_err("--admin-endpoint"))?;
        }
        if flags.red_metrics {
            self.cfg.admin.red_metrics = true;
        }
        if let Some(interval) = &flags.poll_interval {
            self.cfg.poll.interval =
                parse_poll_interval(interval).map_err(flag_err("--poll-interval"))?;
        }
        if let Some(token) = &flags.token {
            let token = values::check_token(token).map_err(flag_err("--token"))?;
            self.token = Some(TokenSource::Value(token));
        }
        if let Some(format) = &flags.log_format {
            self.cfg.log.format = format
                .parse::<LogFormat>()
                .map_err(flag_err("--log-format"))?;
        }
        if let Some(level) = &flags.log_level {
            self.cfg.log.level = values::check_log_level(level).map_err(flag_err("--log-level"))?;
        }
        Ok(())
    }

    /// Final validation; returns the finished configuration.
    pub(crate) fn finish(mut self) -> Result<ColonyConfig, ConfigError> {
        if !self.data_dir_set {
            self.cfg.data_dir = self
                .default_data_dir
                .take()
                .ok_or(ConfigError::NoColonyDataDir)?;
        }
        let source = self.cfg.source.clone();
        self.cfg.auth_token = token::resolve(self.token.take(), source.as_deref())?;
        self.cfg.storage = std::mem::take(&mut self.storage).resolve(source.as_deref())?;
        let tls = self.cfg.poll.tls.is_some();
        self.cfg.static_agents = self
            .agents
            .into_iter()
            .map(|(id, target)| StaticAgent {
                id,
                endpoint: target.url_or(tls),
            })
            .collect();
        Ok(self.cfg)
    }
}

/// Parses a poll interval from text (environment variable or flag): a
/// duration from 1s to 1h.
pub(crate) fn parse_poll_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    values::check_duration(d, POLL_INTERVAL_MIN, Some(POLL_INTERVAL_MAX))
}
