//! The colony configuration: [`ColonyConfig`], loaded with
//! [`ColonyConfig::load`] from an optional YAML file, `CORAL_*` environment
//! overrides ([`COLONY_ENV_VARS`](crate::COLONY_ENV_VARS)) and
//! [`ColonyOverrides`] (flags), in that order of precedence above the
//! built-in defaults.
//!
//! File paths are taken as written: relative paths are relative to the
//! process's working directory, not to the config file.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::link::redacted;
use crate::tls::{ClientTls, ServerTls};
use crate::types::LogConfig;
use crate::{ConfigError, colony_build, colony_file, env, yaml};

/// The complete, validated colony configuration.
///
/// `Debug` output hides [`auth_token`](Self::auth_token).
#[derive(Clone, PartialEq, Eq)]
pub struct ColonyConfig {
    /// Colony identity (`colony.id`); defaults to the host name.
    pub colony_id: String,
    /// Where the colony keeps its data (`colony.data_dir`); defaults to
    /// `$CORAL_HOME/colony`.
    pub data_dir: PathBuf,
    /// ColonyService gRPC listen address (`colony.api.endpoint`; port 0 =
    /// any free port). Default `127.0.0.1:9000`.
    pub api_endpoint: SocketAddr,
    /// Serve the colony API over TLS (`colony.api.tls`); `None` = plain text.
    /// Both files existed when the config was loaded.
    pub api_tls: Option<ServerTls>,
    /// The admin HTTP endpoint (`colony.admin`): `/metrics`, `/healthz`,
    /// and the opt-in RED exposition at `/metrics/red`.
    pub admin: AdminConfig,
    /// Shared secret (`colony.auth.token` / `token_file`, `CORAL_TOKEN`,
    /// `--token`). When set, every colony RPC must carry
    /// `authorization: Bearer <token>`, and the colony sends it when
    /// polling agents.
    pub auth_token: Option<String>,
    /// Polling of agents (`colony.poll`).
    pub poll: PollConfig,
    /// Agent health thresholds (`colony.health`).
    pub health: HealthConfig,
    /// Agents polled without registration (`colony.agents`), in file order;
    /// ids are unique.
    pub static_agents: Vec<StaticAgent>,
    /// How long each kind of data is kept (`storage.retention`,
    /// `storage.beyla.retention`).
    pub retention: ColonyRetention,
    /// How often expired data is deleted (`storage.cleanup_interval`, ≥ 1s;
    /// default 5m).
    pub cleanup_interval: Duration,
    /// Which Beyla traces the colony keeps (`storage.beyla.trace_sampling_rate`,
    /// `storage.beyla.trace_slow_threshold`).
    pub beyla_traces: BeylaTraceSampling,
    /// Where the colony stores (`storage.engine`; with `clickhouse`, also
    /// `storage.url`, `storage.database`, `storage.user`,
    /// `storage.password_file` and `storage.cluster`). Default: DuckDB.
    pub storage: StorageEngine,
    /// Logging of the colony itself (`colony.log`).
    pub log: LogConfig,
    /// The file the configuration was loaded from, if any.
    pub source: Option<PathBuf>,
}

impl fmt::Debug for ColonyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let ColonyConfig {
            colony_id,
            data_dir,
            api_endpoint,
            api_tls,
            admin,
            auth_token,
            poll,
            health,
            static_agents,
            retention,
            cleanup_interval,
            beyla_traces,
            storage,
            log,
            source,
        } = self;
        f.debug_struct("ColonyConfig")
            .field("colony_id", colony_id)
            .field("data_dir", data_dir)
            .field("api_endpoint", api_endpoint)
            .field("api_tls", api_tls)
            .field("admin", admin)
            .field("auth_token", &redacted(auth_token))
            .field("poll", poll)
            .field("health", health)
            .field("static_agents", static_agents)
            .field("retention", retention)
            .field("cleanup_interval", cleanup_interval)
            .field("beyla_traces", beyla_traces)
            .field("storage", storage)
            .field("log", log)
            .field("source", source)
            .finish()
    }
}

/// The colony's admin HTTP endpoint (`colony.admin`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminConfig {
    /// Listen address (`endpoint`; port 0 = any free port). Default
    /// `127.0.0.1:9003`.
    pub endpoint: SocketAddr,
    /// Serve RED per service and operation in the Prometheus format at
    /// `/metrics/red` (`red_metrics`; default false).
    pub red_metrics: bool,
}

impl AdminConfig {
    /// The defaults: `127.0.0.1:9003`, no RED exposition.
    pub const DEFAULT: AdminConfig = AdminConfig {
        endpoint: SocketAddr::V4(std::net::SocketAddrV4::new(
            std::net::Ipv4Addr::LOCALHOST,
            9003,
        )),
        red_metrics: false,
    };
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig::DEFAULT
    }
}

/// How the colony polls agents (`colony.poll`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollConfig {
    /// Time between polls of one agent (`interval`, 1s–1h; default 30s).
    pub interval: Duration,
    /// Deadline of each RPC to an agent (`timeout`, ≥ 100ms; default 10s).
    pub timeout: Duration,
    /// Agents polled at once (`max_concurrent`, 1–1024; default 32).
    pub max_concurrent: usize,
    /// `max_records` of each `QueryTelemetry` call (`page_size`, 1–50000;
    /// default 10000).
    pub page_size: usize,
    /// How agents' API certificates are verified (`tls`); `None` = no custom
    /// settings: `https://` agents are verified against the system roots.
    /// When set, static agents written as a bare `host:port` are dialed
    /// with `https://`.
    pub tls: Option<ClientTls>,
    /// With colonies sharing one ClickHouse: how often each renews its
    /// lease (`lease_interval`, 1s–5m; default 10s). A colony that misses
    /// 3 renewals is taken for dead and its agents move to the others.
    pub lease_interval: Duration,
}

impl PollConfig {
    /// The defaults: every 30s, 10s timeout, 32 at once, 10000 rows per
    /// page, no TLS settings, leases renewed every 10s.
    pub const DEFAULT: PollConfig = PollConfig {
        interval: Duration::from_secs(30),
        timeout: Duration::from_secs(10),
        max_concurrent: 32,
        page_size: 10_000,
        tls: None,
        lease_interval: Duration::from_secs(10),
    };
}

impl Default for PollConfig {
    fn default() -> Self {
        PollConfig::DEFAULT
    }
}

/// When an agent counts as degraded or unreachable (`colony.health`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthConfig {
    /// No heartbeat or successful poll for this long → degraded
    /// (`degraded_after`, ≥ 1s; default 45s).
    pub degraded_after: Duration,
    /// No heartbeat or successful poll for this long → unreachable
    /// (`unreachable_after`, longer than `degraded_after`; default 2m).
    pub unreachable_after: Duration,
}

impl HealthConfig {
    /// The defaults: degraded after 45s, unreachable after 2m.
    pub const DEFAULT: HealthConfig = HealthConfig {
        degraded_after: Duration::from_secs(45),
        unreachable_after: Duration::from_secs(120),
    };
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig::DEFAULT
    }
}

/// An agent the colony polls without it registering (`colony.agents[i]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaticAgent {
    /// The agent's id (`id`), unique in the list.
    pub id: String,
    /// The agent API address (`endpoint`), normalized to `http://host:port`
    /// or `https://host:port`. A bare `host:port` becomes `https://` when
    /// `colony.poll.tls` is set, else `http://`; an explicit scheme is kept.
    pub endpoint: String,
}

/// How long the colony keeps each kind of data (`storage.retention`,
/// `storage.beyla.retention`). Every value is longer than 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColonyRetention {
    /// 1-minute OTLP summaries (`otel_spans`; default 24h).
    pub otel_spans: Duration,
    /// Per-operation breakdown (`otel_operations`; default 24h).
    pub otel_operations: Duration,
    /// Kept raw spans (`trace_spans`; default 24h).
    pub trace_spans: Duration,
    /// Host metrics (`host_metrics`; default 7d).
    pub host_metrics: Duration,
    /// Recorded gaps in agents' data (`gaps`; default 30d).
    pub gaps: Duration,
    /// Beyla HTTP metrics (`beyla.retention.http_metrics`; default 30d).
    pub beyla_http: Duration,
    /// Beyla gRPC metrics (`beyla.retention.grpc_metrics`; default 30d).
    pub beyla_grpc: Duration,
    /// Beyla SQL metrics (`beyla.retention.sql_metrics`; default 14d).
    pub beyla_sql: Duration,
    /// Beyla traces (`beyla.retention.traces`; default 7d).
    pub beyla_traces: Duration,
}

impl ColonyRetention {
    /// The defaults listed on each field.
    pub const DEFAULT: ColonyRetention = ColonyRetention {
        otel_spans: Duration::from_secs(DAY),
        otel_operations: Duration::from_secs(DAY),
        trace_spans: Duration::from_secs(DAY),
        host_metrics: Duration::from_secs(7 * DAY),
        gaps: Duration::from_secs(30 * DAY),
        beyla_http: Duration::from_secs(30 * DAY),
        beyla_grpc: Duration::from_secs(30 * DAY),
        beyla_sql: Duration::from_secs(14 * DAY),
        beyla_traces: Duration::from_secs(7 * DAY),
    };
}

impl Default for ColonyRetention {
    fn default() -> Self {
        ColonyRetention::DEFAULT
    }
}

const DAY: u64 = 86_400;

/// Which Beyla traces the colony keeps (`storage.beyla`): every trace with
/// an error or a span slower than [`slow_threshold`](Self::slow_threshold),
/// and [`rate`](Self::rate) of the others, decided from the trace id so that
/// kept traces are whole.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BeylaTraceSampling {
    /// Fraction of the other traces kept (`trace_sampling_rate`, greater
    /// than 0 and at most 1; default 1.0 = all). Never NaN.
    pub rate: f64,
    /// Traces with a span at least this slow are always kept
    /// (`trace_slow_threshold`, longer than 0; default 500ms).
    pub slow_threshold: Duration,
}

impl BeylaTraceSampling {
    /// The defaults: keep every trace; 500ms counts as slow.
    pub const DEFAULT: BeylaTraceSampling = BeylaTraceSampling {
        rate: 1.0,
        slow_threshold: Duration::from_millis(500),
    };
}

impl Default for BeylaTraceSampling {
    fn default() -> Self {
        BeylaTraceSampling::DEFAULT
    }
}

// `rate` is validated to be a finite number, so equality is an equivalence.
impl Eq for BeylaTraceSampling {}

/// Where the colony stores (`storage.engine` and its settings).
///
/// `Debug` output hides the ClickHouse password.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StorageEngine {
    /// The embedded DuckDB file in `colony.data_dir` (the default).
    #[default]
    DuckDb,
    /// A ClickHouse server or cluster.
    ClickHouse(ClickHouseStorage),
}

impl fmt::Debug for StorageEngine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageEngine::DuckDb => f.write_str("DuckDb"),
            // `ClickHouseStorage`'s own `Debug` hides the password.
            StorageEngine::ClickHouse(settings) => {
                f.debug_tuple("ClickHouse").field(settings).finish()
            }
        }
    }
}

/// `storage.engine: clickhouse` settings.
///
/// `Debug` output hides [`password`](Self::password).
#[derive(Clone, PartialEq, Eq)]
pub struct ClickHouseStorage {
    /// The HTTP interface (`storage.url`): `http://host:port` or
    /// `https://host:port`, without a trailing slash. Required.
    pub url: String,
    /// The database Coral's tables live in (`storage.database`; a plain
    /// identifier; default `coral`).
    pub database: String,
    /// The user Coral connects as (`storage.user`; default `default`).
    pub user: String,
    /// The user's password, read from `storage.password_file` when the
    /// configuration is loaded (trailing whitespace trimmed); empty when no
    /// file is set.
    pub password: String,
    /// The `remote_servers` cluster the tables are created on
    /// (`storage.cluster`; a plain identifier); `None` = a single server.
    pub cluster: Option<String>,
}

impl fmt::Debug for ClickHouseStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured so that a new field cannot be forgotten here.
        let ClickHouseStorage {
            url,
            database,
            user,
            password,
            cluster,
        } = self;
        let password = (!password.is_empty()).then(|| password.clone());
        f.debug_struct("ClickHouseStorage")
            .field("url", url)
            .field("database", database)
            .field("user", user)
            .field("password", &redacted(&password))
            .field("cluster", cluster)
            .finish()
    }
}

/// Overrides from command-line flags; `None` = not given. Values are
/// validated like the file's; errors name the flag: `--colony-id`,
/// `--data-dir`, `--api-endpoint`, `--admin-endpoint`, `--poll-interval`, `--token`,
/// `--log-format`, `--log-level`.
///
/// `Debug` output hides the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ColonyOverrides {
    /// `--data-dir`: overrides `colony.data_dir`.
    pub data_dir: Option<PathBuf>,
    /// `--api-endpoint`: overrides `colony.api.endpoint` (`ip:port`).
    pub api_endpoint: Option<String>,
    /// `--admin-endpoint`: overrides `colony.admin.endpoint` (`ip:port`).
    pub admin_endpoint: Option<String>,
    /// `--red-metrics`: turns `colony.admin.red_metrics` on.
    pub red_metrics: bool,
    /// `--poll-interval`: overrides `colony.poll.interval` (duration, 1s–1h).
    pub poll_interval: Option<String>,
    /// `--token`: overrides `colony.auth.token`.
    pub token: Option<String>,
    /// `--colony-id`: overrides `colony.id`.
    pub colony_id: Option<String>,
    /// `--log-format`: overrides `colony.log.format` (`text` or `json`).
    pub log_format: Option<String>,
    /// `--log-level`: overrides `colony.log.level`.
    pub log_level: Option<String>,
}

impl fmt::Debug for ColonyOverrides {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColonyOverrides")
            .field("data_dir", &self.data_dir)
            .field("api_endpoint", &self.api_endpoint)
            .field("admin_endpoint", &self.admin_endpoint)
            .field("red_metrics", &self.red_metrics)
            .field("poll_interval", &self.poll_interval)
            .field("token", &redacted(&self.token))
            .field("colony_id", &self.colony_id)
            .field("log_format", &self.log_format)
            .field("log_level", &self.log_level)
            .finish()
    }
}

impl ColonyConfig {
    /// Load: file (optional path) → env overrides → flag overrides → validate.
    ///
    /// Without a path only defaults, `env` and `overrides` are used. A path
    /// that cannot be read is an error ([`ConfigError::Read`]).
    pub fn load(
        path: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &ColonyOverrides,
    ) -> Result<ColonyConfig, ConfigError> {
        match path {
            Some(path) => ColonyConfig::from_yaml_str(&yaml::read(path)?, path, env, overrides),
            None => {
                let mut b = colony_build::ColonyBuilder::new(env, None);
                env::apply_colony(&mut b, env)?;
                b.apply_flags(overrides)?;
                b.finish()
            }
        }
    }

    /// Same from a YAML string (`origin` is the name used in errors and
    /// becomes [`ColonyConfig::source`]).
    pub fn from_yaml_str(
        yaml: &str,
        origin: &Path,
        env: &HashMap<String, String>,
        overrides: &ColonyOverrides,
    ) -> Result<ColonyConfig, ConfigError> {
        let document = yaml::parse(yaml, origin)?;
        let mut b = colony_build::ColonyBuilder::new(env, Some(origin));
        if let Some(root) = &document {
            colony_file::apply(&mut b, root, origin)?;
        }
        env::apply_colony(&mut b, env)?;
        b.apply_flags(overrides)?;
        b.finish()
    }
}
