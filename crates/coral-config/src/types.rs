//! The validated, fully-defaulted configuration types.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::beyla::BeylaConfig;
use crate::link::{ColonyLink, redacted};
use crate::tls::ServerTls;

/// The complete, validated agent configuration.
///
/// File paths (`agent.data_dir`, TLS files, token files) are taken as
/// written: relative paths are relative to the process's working directory,
/// not to the config file.
///
/// `Debug` output hides [`auth_token`](Self::auth_token) and the colony token.
#[derive(Clone)]
pub struct AgentConfig {
    /// Agent identity (`agent.id`); defaults to the host name.
    pub agent_id: String,
    /// Where the agent keeps its data (`agent.data_dir`); defaults to
    /// `$CORAL_HOME/agent`.
    pub data_dir: PathBuf,
    /// How the agent runs (`agent.mode`).
    pub mode: AgentMode,
    /// OTLP receivers, filtering and aggregation (`agent.telemetry`).
    pub telemetry: TelemetryConfig,
    /// AgentService gRPC listen address (`agent.api.endpoint`).
    pub api_endpoint: SocketAddr,
    /// Serve the AgentService over TLS with this certificate (`agent.api.tls`);
    /// `None` = plain text. Both files existed when the config was loaded.
    pub api_tls: Option<ServerTls>,
    /// The shared secret (`agent.colony.token` / `token_file`, `CORAL_TOKEN`,
    /// `--token`). When set, the agent API requires
    /// `authorization: Bearer <token>` on every call, and the agent sends it
    /// to the colony ([`ColonyLink::token`] holds the same value). Set without
    /// a colony (e.g. by `CORAL_TOKEN` alone) it only protects the agent API.
    pub auth_token: Option<String>,
    /// The colony this agent registers with and (in push modes) pushes to
    /// (`agent.colony`); `None` = standalone agent.
    pub colony: Option<ColonyLink>,
    /// Admin HTTP listen address: `/metrics`, `/healthz` (`agent.admin.endpoint`).
    pub admin_endpoint: SocketAddr,
    /// Local storage retention (`agent.storage`).
    pub storage: StorageConfig,
    /// Host metrics collection (`agent.host_metrics`).
    pub host_metrics: HostMetricsConfig,
    /// Logging of the agent itself (`agent.log`).
    pub log: LogConfig,
    /// Beyla, the eBPF instrumenter the agent runs (`beyla`, a top-level
    /// section beside `agent`).
    pub beyla: BeylaConfig,
    /// The file the configuration was loaded from, if any.
    pub source: Option<PathBuf>,
}

impl fmt::Debug for AgentConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let AgentConfig {
            agent_id,
            data_dir,
            mode,
            telemetry,
            api_endpoint,
            admin_endpoint,
            api_tls,
            auth_token,
            colony,
            storage,
            host_metrics,
            log,
            beyla,
            source,
        } = self;
        f.debug_struct("AgentConfig")
            .field("agent_id", agent_id)
            .field("data_dir", data_dir)
            .field("mode", mode)
            .field("telemetry", telemetry)
            .field("api_endpoint", api_endpoint)
            .field("admin_endpoint", admin_endpoint)
            .field("api_tls", api_tls)
            .field("auth_token", &redacted(auth_token))
            .field("colony", colony)
            .field("storage", storage)
            .field("host_metrics", host_metrics)
            .field("log", log)
            .field("beyla", beyla)
            .field("source", source)
            .finish()
    }
}

/// Host metrics collection (`agent.host_metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostMetricsConfig {
    /// Whether host metrics are collected (`enabled`; default true).
    pub enabled: bool,
    /// How often they are sampled (`interval`, ≥ 1s; default 60s).
    pub interval: Duration,
}

/// OTLP receiver, filtering and aggregation settings (`agent.telemetry`).
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// Whether the OTLP receivers run at all.
    pub enabled: bool,
    /// OTLP gRPC listen address (`agent.telemetry.endpoint`).
    pub grpc_endpoint: SocketAddr,
    /// OTLP HTTP listen address (`agent.telemetry.http_endpoint`).
    pub http_endpoint: SocketAddr,
    /// Largest accepted OTLP message, in bytes.
    pub max_message_bytes: usize,
    /// Which raw spans are stored.
    pub filters: FilterConfig,
    /// Attribute keys matching any of these have their values dropped before storage.
    pub scrub_attributes: Vec<regex::Regex>,
    /// How long after a minute closes before its aggregates are flushed.
    pub flush_grace: Duration,
    /// Cap on distinct operations tracked per service.
    pub max_operations_per_service: usize,
    /// Cap on distinct services tracked.
    pub max_services: usize,
    /// Spans allowed in flight between receivers and storage before the
    /// receivers push back (HTTP 429 / gRPC UNAVAILABLE); Beyla's sampled
    /// spans get a bound of the same size of their own.
    pub queue_spans: usize,
    /// Connections each OTLP listener keeps open at once; past it, a new
    /// connection replaces the least recently active one
    /// ([`DEFAULT_MAX_CONNECTIONS`]).
    pub max_connections: usize,
    /// When an OTLP export is answered (`agent.telemetry.ack`).
    pub ack: AckMode,
}

/// When the agent answers an OTLP export (`agent.telemetry.ack`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AckMode {
    /// Once the request is aggregated and its kept spans are queued for the
    /// store (`received`): the last second of kept spans and the open
    /// minutes' RED are lost if the process is killed.
    #[default]
    Received,
    /// Once the group commit holding the request's kept spans and its RED
    /// contribution is on disk (`stored`): nothing acknowledged is lost to a
    /// crash; a failed commit is answered 503 / `UNAVAILABLE`.
    Stored,
}

impl AckMode {
    /// The accepted spellings, in order.
    pub const NAMES: [&'static str; 2] = ["received", "stored"];

    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            AckMode::Received => "received",
            AckMode::Stored => "stored",
        }
    }
}

impl fmt::Display for AckMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AckMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "received" => Ok(AckMode::Received),
            "stored" => Ok(AckMode::Stored),
            other => Err(format!(
                "unknown acknowledgement mode {other:?}; expected one of: {}",
                AckMode::NAMES.join(", ")
            )),
        }
    }
}

/// `agent.telemetry.max_connections` by default: well below the usual
/// open-file limit, so a connection flood leaves descriptors for the store.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Static span filters: a span is stored when any enabled rule matches.
///
/// Without a `filters` list the defaults are: keep errors, keep spans slower
/// than 500 ms, sample 10% of the rest. With a list, only the listed rules
/// are on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FilterConfig {
    /// `always_capture: errors` — keep every error span.
    pub keep_errors: bool,
    /// `always_capture: latency_gt_ms:N` — keep spans lasting more than N ms.
    pub latency_threshold_ms: Option<f64>,
    /// `sample_rate: R` — keep this fraction (0.0–1.0) of the remaining spans.
    pub sample_rate: f64,
}

impl FilterConfig {
    /// The rules in effect when no `filters` list is given.
    pub const DEFAULT: FilterConfig = FilterConfig {
        keep_errors: true,
        latency_threshold_ms: Some(500.0),
        sample_rate: 0.10,
    };

    /// No rule on: nothing is kept (the starting point of an explicit list).
    pub const NONE: FilterConfig = FilterConfig {
        keep_errors: false,
        latency_threshold_ms: None,
        sample_rate: 0.0,
    };
}

impl Default for FilterConfig {
    fn default() -> Self {
        FilterConfig::DEFAULT
    }
}

/// Local storage settings (`agent.storage`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StorageConfig {
    /// How long raw data is kept.
    pub retention: Duration,
    /// How often expired data is deleted.
    pub cleanup_interval: Duration,
    /// In push modes (`otel-collector`, `forwarder`): rows not yet
    /// acknowledged by the colony are kept past `retention`, but once older
    /// than this they may be deleted anyway (`outbox_max_age`; default 24h).
    pub outbox_max_age: Duration,
}

/// Logging of the agent process itself (`agent.log`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Output format.
    pub format: LogFormat,
    /// A `tracing` `EnvFilter` directive string, e.g. `info` or `coral=debug,info`.
    pub level: String,
}

/// How the agent runs (`agent.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum AgentMode {
    /// Full agent: receive, aggregate, store and serve (`agent`).
    #[default]
    Agent,
    /// OTLP receiver only (`otel-collector`).
    OtelCollector,
    /// Forward to the colony without local storage (`forwarder`).
    Forwarder,
}

impl AgentMode {
    /// The accepted spellings, in order.
    pub const NAMES: [&'static str; 3] = ["agent", "otel-collector", "forwarder"];

    /// The configuration spelling: `agent`, `otel-collector` or `forwarder`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentMode::Agent => "agent",
            AgentMode::OtelCollector => "otel-collector",
            AgentMode::Forwarder => "forwarder",
        }
    }
}

impl fmt::Display for AgentMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AgentMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "agent" => Ok(AgentMode::Agent),
            "otel-collector" => Ok(AgentMode::OtelCollector),
            "forwarder" => Ok(AgentMode::Forwarder),
            other => Err(format!(
                "unknown mode {other:?}; expected one of: {}",
                AgentMode::NAMES.join(", ")
            )),
        }
    }
}

/// Log output format (`agent.log.format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LogFormat {
    /// Human-readable text (`text`).
    #[default]
    Text,
    /// One JSON object per line (`json`).
    Json,
}

impl LogFormat {
    /// The accepted spellings, in order.
    pub const NAMES: [&'static str; 2] = ["text", "json"];

    /// The configuration spelling: `text` or `json`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}; expected one of: {}",
                LogFormat::NAMES.join(", ")
            )),
        }
    }
}

/// Overrides from command-line flags; `None` = not given.
///
/// Flags take precedence over environment variables, which take precedence
/// over the file. Error messages name them as `--agent-id`, `--data-dir`,
/// `--mode`, `--otlp-grpc-endpoint`, `--otlp-http-endpoint`, `--api-endpoint`,
/// `--admin-endpoint`, `--colony-endpoint`, `--token`, `--log-format` and
/// `--log-level`.
///
/// `Debug` output hides the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AgentOverrides {
    /// `--agent-id`: overrides `agent.id`.
    pub agent_id: Option<String>,
    /// `--data-dir`: overrides `agent.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--mode`: overrides `agent.mode`.
    pub mode: Option<AgentMode>,
    /// `--otlp-grpc-endpoint`: overrides `agent.telemetry.endpoint`.
    pub grpc_endpoint: Option<SocketAddr>,
    /// `--otlp-http-endpoint`: overrides `agent.telemetry.http_endpoint`.
    pub http_endpoint: Option<SocketAddr>,
    /// `--api-endpoint`: overrides `agent.api.endpoint`.
    pub api_endpoint: Option<SocketAddr>,
    /// `--admin-endpoint`: overrides `agent.admin.endpoint`.
    pub admin_endpoint: Option<SocketAddr>,
    /// `--colony-endpoint`: overrides `agent.colony.endpoint` (host:port,
    /// http://host:port or https://host:port); creates the colony section
    /// when the file has none.
    pub colony_endpoint: Option<String>,
    /// `--token`: overrides the shared secret (`agent.colony.token`), see
    /// [`AgentConfig::auth_token`].
    pub token: Option<String>,
    /// `--log-format`: overrides `agent.log.format`.
    pub log_format: Option<LogFormat>,
    /// `--log-level`: overrides `agent.log.level`.
    pub log_level: Option<String>,
}

impl fmt::Debug for AgentOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentOverrides")
            .field("agent_id", &self.agent_id)
            .field("data_dir", &self.data_dir)
            .field("mode", &self.mode)
            .field("grpc_endpoint", &self.grpc_endpoint)
            .field("http_endpoint", &self.http_endpoint)
            .field("api_endpoint", &self.api_endpoint)
            .field("admin_endpoint", &self.admin_endpoint)
            .field("colony_endpoint", &self.colony_endpoint)
            .field("token", &redacted(&self.token))
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enums_round_trip_through_their_names() {
        for name in AgentMode::NAMES {
            assert_eq!(name.parse::<AgentMode>().unwrap().to_string(), name);
        }
        for name in LogFormat::NAMES {
            assert_eq!(name.parse::<LogFormat>().unwrap().to_string(), name);
        }
        let err = "collector".parse::<AgentMode>().unwrap_err();
        assert!(err.contains("otel-collector"), "{err}");
        assert!("JSON".parse::<LogFormat>().is_err());
    }
}
