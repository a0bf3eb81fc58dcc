//! Layering: defaults < file < environment < flags, then final validation.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::beyla::BeylaConfig;
use crate::dial::parse_dial_target;
use crate::link::LinkDraft;
use crate::token::{self, TokenSource};
use crate::types::{
    AgentConfig, AgentMode, AgentOverrides, FilterConfig, HostMetricsConfig, LogConfig, LogFormat,
    StorageConfig, TelemetryConfig,
};
use crate::{ConfigError, values};

/// Key of the OTLP gRPC endpoint.
pub(crate) const GRPC_KEY: &str = "agent.telemetry.endpoint";
/// Key of the OTLP HTTP endpoint.
pub(crate) const HTTP_KEY: &str = "agent.telemetry.http_endpoint";
/// Key of the AgentService endpoint.
pub(crate) const API_KEY: &str = "agent.api.endpoint";
/// Key of the admin HTTP endpoint.
pub(crate) const ADMIN_KEY: &str = "agent.admin.endpoint";

/// Agent id used when the host name cannot be read.
const FALLBACK_AGENT_ID: &str = "coral-agent";
/// Colony id used when the host name cannot be read.
const FALLBACK_COLONY_ID: &str = "coral-colony";

/// Where a setting's value came from (used to explain conflicts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Origin {
    /// Built-in default.
    Default,
    /// The config file, at this line.
    File(Option<u64>),
    /// This environment variable.
    Env(&'static str),
    /// This command-line flag.
    Flag(&'static str),
}

/// The configuration being assembled, layer by layer.
pub(crate) struct Builder {
    /// The configuration so far (`data_dir` is final only if `data_dir_set`).
    pub(crate) cfg: AgentConfig,
    /// Whether a layer set `data_dir` explicitly.
    pub(crate) data_dir_set: bool,
    /// `$CORAL_HOME/agent`, if CORAL_HOME (or HOME) is known.
    default_data_dir: Option<PathBuf>,
    /// Origin of each endpoint, by key.
    origins: HashMap<&'static str, Origin>,
    /// `agent.colony` so far; `None` = standalone.
    pub(crate) link: Option<LinkDraft>,
    /// The shared secret so far (resolved in [`Builder::finish`]).
    pub(crate) token: Option<TokenSource>,
}

impl Builder {
    /// All defaults; `env` supplies `CORAL_HOME` / `HOME` for the data directory.
    pub(crate) fn new(env: &HashMap<String, String>, source: Option<&Path>) -> Builder {
        let ip = std::net::Ipv4Addr::LOCALHOST;
        let cfg = AgentConfig {
            agent_id: default_agent_id(),
            data_dir: PathBuf::new(),
            mode: AgentMode::Agent,
            telemetry: TelemetryConfig {
                enabled: true,
                grpc_endpoint: SocketAddr::from((ip, 4317)),
                http_endpoint: SocketAddr::from((ip, 4318)),
                max_message_bytes: 16 << 20,
                filters: FilterConfig::DEFAULT,
                scrub_attributes: Vec::new(),
                flush_grace: Duration::from_secs(10),
                max_operations_per_service: 200,
                max_services: 1000,
                queue_spans: 200_000,
                max_connections: crate::types::DEFAULT_MAX_CONNECTIONS,
                ack: crate::types::AckMode::default(),
            },
            api_endpoint: SocketAddr::from((ip, 9001)),
            admin_endpoint: SocketAddr::from((ip, 9002)),
            api_tls: None,
            auth_token: None,
            colony: None,
            storage: StorageConfig {
                retention: Duration::from_secs(3600),
                cleanup_interval: Duration::from_secs(60),
                outbox_max_age: Duration::from_secs(24 * 3600),
            },
            host_metrics: HostMetricsConfig {
                enabled: true,
                interval: Duration::from_secs(60),
            },
            log: LogConfig {
                format: LogFormat::Text,
                level: "info".to_owned(),
            },
            beyla: BeylaConfig::default(),
            source: source.map(Path::to_path_buf),
        };
        Builder {
            cfg,
            data_dir_set: false,
            default_data_dir: coral_home(env).map(|home| home.join("agent")),
            origins: HashMap::new(),
            link: None,
            token: None,
        }
    }

    /// The colony section, created with defaults if absent (env and flags
    /// setting the colony endpoint create it).
    pub(crate) fn link_mut(&mut self) -> &mut LinkDraft {
        self.link.get_or_insert_with(|| LinkDraft::new(None))
    }

    /// Sets one of the four endpoints (by key) and records where it came from.
    pub(crate) fn set_endpoint(&mut self, key: &'static str, addr: SocketAddr, origin: Origin) {
        let slot = match key {
            GRPC_KEY => &mut self.cfg.telemetry.grpc_endpoint,
            HTTP_KEY => &mut self.cfg.telemetry.http_endpoint,
            API_KEY => &mut self.cfg.api_endpoint,
            ADMIN_KEY => &mut self.cfg.admin_endpoint,
            _ => unreachable!("not an endpoint key: {key}"),
        };
        *slot = addr;
        self.origins.insert(key, origin);
    }

    /// Sets the data directory explicitly.
    pub(crate) fn set_data_dir(&mut self, dir: PathBuf) {
        self.cfg.data_dir = dir;
        self.data_dir_set = true;
    }

    /// Applies command-line flag overrides.
    pub(crate) fn apply_flags(&mut self, flags: &AgentOverrides) -> Result<(), ConfigError> {
        let flag_err =
            |flag: &'static str| move |message: String| ConfigError::Flag { flag, message };
        if let Some(id) = &flags.agent_id {
            self.cfg.agent_id = values::check_agent_id(id).map_err(flag_err("--agent-id"))?;
        }
        if let Some(dir) = &flags.data_dir {
            if dir.as_os_str().is_empty() {
                return Err(flag_err("--data-dir")(
                    "the data directory must not be empty".to_owned(),
                ));
            }
            self.set_data_dir(dir.clone());
        }
        if let Some(mode) = flags.mode {
            self.cfg.mode = mode;
        }
        let endpoints = [
            (GRPC_KEY, flags.grpc_endpoint, "--otlp-grpc-endpoint"),
            (HTTP_KEY, flags.http_endpoint, "--otlp-http-endpoint"),
            (API_KEY, flags.api_endpoint, "--api-endpoint"),
            (ADMIN_KEY, flags.admin_endpoint, "--admin-endpoint"),
        ];
        for (key, addr, flag) in endpoints {
            if let Some(addr) = addr {
                self.set_endpoint(key, addr, Origin::Flag(flag));
            }
        }
        if let Some(endpoint) = &flags.colony_endpoint {
            let target = parse_dial_target(endpoint).map_err(flag_err("--colony-endpoint"))?;
            self.link_mut().endpoint = Some(target);
        }
        if let Some(token) = &flags.token {
            let token = values::check_token(token).map_err(flag_err("--token"))?;
            self.token = Some(TokenSource::Value(token));
        }
        if let Some(format) = flags.log_format {
            self.cfg.log.format = format;
        }
        if let Some(level) = &flags.log_level {
            self.cfg.log.level = values::check_log_level(level).map_err(flag_err("--log-level"))?;
        }
        Ok(())
    }

    /// Final cross-field validation; returns the finished configuration.
    pub(crate) fn finish(mut self) -> Result<AgentConfig, ConfigError> {
        if !self.data_dir_set {
            self.cfg.data_dir = self.default_data_dir.take().ok_or(ConfigError::NoDataDir)?;
        }
        let cfg = &self.cfg;
        let mut listeners = Vec::with_capacity(4);
        if cfg.telemetry.enabled {
            listeners.push((GRPC_KEY, cfg.telemetry.grpc_endpoint));
            listeners.push((HTTP_KEY, cfg.telemetry.http_endpoint));
        }
        listeners.push((API_KEY, cfg.api_endpoint));
        listeners.push((ADMIN_KEY, cfg.admin_endpoint));
        for (i, &(first_key, first)) in listeners.iter().enumerate() {
            for &(second_key, second) in &listeners[i + 1..] {
                if endpoints_collide(first, second) {
                    return Err(ConfigError::EndpointConflict {
                        first: self.describe(first_key),
                        second: self.describe(second_key),
                        addr: second,
                    });
                }
            }
        }
        let source = self.cfg.source.clone();
        self.cfg.auth_token = token::resolve(self.token.take(), source.as_deref())?;
        if let Some(link) = self.link.take() {
            let colony = link.finish(
                self.cfg.auth_token.clone(),
                self.cfg.api_tls.is_some(),
                source.as_deref(),
            )?;
            self.cfg.colony = Some(colony);
        }
        Ok(self.cfg)
    }

    /// "`agent.api.endpoint` (set by environment variable CORAL_AGENT_API_ENDPOINT)".
    fn describe(&self, key: &'static str) -> String {
        let origin = self.origins.get(key).unwrap_or(&Origin::Default);
        let file = self
            .cfg
            .source
            .as_deref()
            .map_or_else(|| "the config file".to_owned(), |p| p.display().to_string());
        let from = match origin {
            Origin::Default => "default".to_owned(),
            Origin::File(Some(line)) => format!("set in {file} line {line}"),
            Origin::File(None) => format!("set in {file}"),
            Origin::Env(var) => format!("set by environment variable {var}"),
            Origin::Flag(flag) => format!("set by flag {flag}"),
        };
        format!("`{key}` ({from})")
    }
}

/// Whether two listen addresses would fail to bind together.
fn endpoints_collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// The Coral home directory: `CORAL_HOME`, else `$HOME/.coral`, from `env`
/// (empty values count as unset). `None` when neither is set.
pub fn coral_home(env: &HashMap<String, String>) -> Option<PathBuf> {
    let get = |name: &str| env.get(name).filter(|v| !v.trim().is_empty());
    get("CORAL_HOME")
        .map(PathBuf::from)
        .or_else(|| get("HOME").map(|home| Path::new(home).join(".coral")))
}

/// The default agent id: the host name from `/proc/sys/kernel/hostname` or
/// `/etc/hostname`, or `coral-agent` when neither is readable and valid.
pub fn default_agent_id() -> String {
    host_name().unwrap_or_else(|| FALLBACK_AGENT_ID.to_owned())
}

/// The default colony id: the host name (as for [`default_agent_id`]), or
/// `coral-colony` when it cannot be read.
pub fn default_colony_id() -> String {
    host_name().unwrap_or_else(|| FALLBACK_COLONY_ID.to_owned())
}

/// The host name from `/proc/sys/kernel/hostname` or `/etc/hostname`, if
/// readable and a valid id.
pub fn host_name() -> Option<String> {
    ["/proc/sys/kernel/hostname", "/etc/hostname"]
        .iter()
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .map(|name| name.trim().to_owned())
        .find(|name| values::check_agent_id(name).is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn collisions_consider_port_zero_and_wildcards() {
        assert!(endpoints_collide(addr("127.0.0.1:1"), addr("127.0.0.1:1")));
        assert!(endpoints_collide(addr("0.0.0.0:1"), addr("127.0.0.1:1")));
        assert!(!endpoints_collide(addr("127.0.0.1:0"), addr("127.0.0.1:0")));
        assert!(!endpoints_collide(addr("127.0.0.1:1"), addr("127.0.0.2:1")));
        assert!(!endpoints_collide(addr("127.0.0.1:1"), addr("127.0.0.1:2")));
    }

    #[test]
    fn coral_home_prefers_coral_home_then_home() {
        let env = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            coral_home(&env(&[("CORAL_HOME", "/c"), ("HOME", "/h")])),
            Some(PathBuf::from("/c"))
        );
        assert_eq!(
            coral_home(&env(&[("CORAL_HOME", ""), ("HOME", "/h")])),
            Some(PathBuf::from("/h/.coral"))
        );
        assert_eq!(coral_home(&env(&[])), None);
    }

    #[test]
    fn default_agent_id_is_a_valid_id() {
        assert!(values::check_agent_id(&default_agent_id()).is_ok());
        assert!(values::check_colony_id(&default_colony_id()).is_ok());
    }
}
