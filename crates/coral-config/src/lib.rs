//! Coral configuration: an optional YAML file, `CORAL_*` environment
//! overrides and command-line flag overrides, validated into an
//! [`AgentConfig`] (per-host agent) or a [`ColonyConfig`] (the central
//! colony) with every default filled in.
//!
//! Precedence, lowest to highest: built-in defaults < file < environment <
//! flags. The environment is passed in as a map (see [`mod@env`] for the
//! variables: [`ENV_VARS`] for the agent, [`COLONY_ENV_VARS`] for the
//! colony); this crate never reads the process environment.
//!
//! ```
//! use std::collections::HashMap;
//! use std::path::Path;
//! use coral_config::{AgentConfig, AgentOverrides};
//!
//! let yaml = "agent:\n  telemetry:\n    filters:\n      - sample_rate: 1.0\n";
//! let env = HashMap::from([("HOME".to_owned(), "/home/ops".to_owned())]);
//! let cfg = AgentConfig::from_yaml_str(yaml, Path::new("agent.yaml"), &env, &AgentOverrides::default())?;
//! assert_eq!(cfg.telemetry.filters.sample_rate, 1.0);
//! assert!(!cfg.telemetry.filters.keep_errors);
//! assert_eq!(cfg.data_dir, Path::new("/home/ops/.coral/agent"));
//! assert!(cfg.colony.is_none(), "standalone agent");
//! # Ok::<(), coral_config::ConfigError>(())
//! ```
//!
//! ```
//! use std::collections::HashMap;
//! use std::path::Path;
//! use coral_config::{ColonyConfig, ColonyOverrides};
//!
//! let yaml = "colony:\n  agents:\n    - id: web-1\n      endpoint: \"10.0.0.5:9001\"\n";
//! let env = HashMap::from([("CORAL_HOME".to_owned(), "/var/lib/coral".to_owned())]);
//! let cfg = ColonyConfig::from_yaml_str(yaml, Path::new("colony.yaml"), &env, &ColonyOverrides::default())?;
//! assert_eq!(cfg.static_agents[0].endpoint, "http://10.0.0.5:9001");
//! assert_eq!(cfg.data_dir, Path::new("/var/lib/coral/colony"));
//! # Ok::<(), coral_config::ConfigError>(())
//! ```
//!
//! Errors ([`ConfigError`]) name the file, the full dotted key path with its
//! line, the environment variable or the flag, and say what is accepted.
//!
//! File paths in either config (data directories, TLS files, token files)
//! are taken as written: a relative path is relative to the working
//! directory of the process, not to the config file. TLS and token files
//! must exist when the configuration is loaded.
//!
//! The agent's YAML schema (every key optional):
//!
//! ```yaml
//! agent:
//!   id: web-01                        # default: host name
//!   data_dir: /var/lib/coral/agent    # default: $CORAL_HOME/agent (CORAL_HOME default ~/.coral)
//!   mode: agent                       # agent | otel-collector | forwarder
//!   telemetry:
//!     enabled: true
//!     endpoint: "127.0.0.1:4317"      # OTLP gRPC listen address
//!     http_endpoint: "127.0.0.1:4318" # OTLP HTTP listen address
//!     max_message_bytes: 16MiB        # bytes, or <n>KiB / <n>MiB / <n>GiB
//!     filters:                        # absent = these three; a list = only the listed rules
//!       - always_capture: errors
//!       - always_capture: latency_gt_ms:500
//!       - sample_rate: 0.10
//!     scrub_attributes: []            # regexes on attribute keys whose values are dropped
//!     aggregation:
//!       flush_grace: 10s
//!       max_operations_per_service: 200
//!       max_services: 1000
//!     queue_spans: 200000
//!     ack: received                   # received | stored (answer after the commit)
//!     max_connections: 1024           # per OTLP listener; past it the least recently active closes
//!   api:
//!     endpoint: "127.0.0.1:9001"      # AgentService gRPC
//!     tls:                            # serve the API over TLS; both files or neither
//!       cert_file: /etc/coral/agent.pem
//!       key_file: /etc/coral/agent-key.pem
//!   admin:
//!     endpoint: "127.0.0.1:9002"      # /metrics, /healthz
//!   colony:                           # absent = standalone agent (no registration, no push)
//!     endpoint: "127.0.0.1:9000"      # required: host:port, http://host:port or https://host:port
//!     token: "s3cret"                 # Bearer token to the colony; also required on the agent API
//!     token_file: /etc/coral/token    # alternative to token (content, trimmed); not both
//!     tls:                            # TLS to the colony (also implied by https://); {} = system roots
//!       ca_file: /etc/coral/ca.pem
//!       server_name: colony.internal
//!     heartbeat_interval: 15s         # ≥ 1s
//!     advertise_endpoint: "10.0.0.5:9001"  # where the colony dials this agent; default: bound API address
//!     fallback_endpoints: ["colony-b:9000"]  # other colonies of the fleet, tried in order when one does not answer
//!     push:                           # otel-collector / forwarder modes
//!       interval: 5s                  # ≥ 100ms
//!       max_records: 5000             # rows per IngestTelemetry call, 1–50000
//!       max_backoff: 60s              # ≥ 100ms
//!   host_metrics:
//!     enabled: true
//!     interval: 60s                   # ≥ 1s
//!   storage:
//!     retention: 1h                   # 500ms, 30s, 5m, 1h, 2d, or bare seconds
//!     cleanup_interval: 1m
//!     outbox_max_age: 24h             # push modes: unacknowledged rows older than this may be deleted
//!   log:
//!     format: text                    # text | json
//!     level: info                     # tracing EnvFilter directive
//! beyla:                              # the eBPF instrumenter the agent runs (see BeylaConfig)
//!   enabled: true                     # runs only if a binary is found and the kernel allows it
//!   binary: /opt/beyla/beyla          # BEYLA_PATH still wins; default: $CORAL_HOME/bin, $PATH
//!   discovery:
//!     services:                       # absent = every process listening on a port, except Coral/Beyla
//!       - name: checkout-api          # service name reported for matches (optional)
//!         open_port: 8080             # a port, "80,8000-8999", or [80, "8000-8999"]
//!         exe_path: "*checkout*"      # glob on the executable path
//!         process_name: checkout      # alternative to exe_path: means exe_path "*/checkout"
//!         k8s_namespace: prod         # glob
//!         k8s_pod_name: "checkout-*"  # glob
//!         k8s_pod_label: {app: payments}  # label → glob, all must match (also `k8s_pod_labels`)
//!   protocols:                        # Beyla's instrumentations
//!     http:
//!       enabled: true
//!       route_patterns: ["/api/v1/users/:id"]   # Beyla's routes.patterns
//!       unmatched_routes: low-cardinality       # unset | path | wildcard | heuristic | low-cardinality
//!       capture_headers: false        # only false: header capture is not supported
//!     grpc: {enabled: true}
//!     sql: {enabled: true, obfuscate_queries: true}   # obfuscation is done by Coral
//!     kafka: {enabled: false}
//!     redis: {enabled: false}
//!   attributes: {environment: production}      # resource attributes on everything Beyla reports
//!   sampling: {rate: 1.0}             # traces Beyla exports, (0, 1]; RED metrics are never sampled
//!   limits:
//!     max_routes_per_service: 200     # enforced by Coral's transformer
//!     wakeup_len: 100                 # Beyla's ebpf.wakeup_len (default: Beyla's)
//!   storage_retention_hours: 1        # agent-local retention of Beyla rows, whole hours ≥ 1
//!   export_interval: 15s              # Beyla's metrics export interval, 1s–1m
//!   restart:                          # the supervisor's restart policy
//!     max_rapid_failures: 5           # runs shorter than stable_after before giving up, 1–1000
//!     backoff_initial: 1s             # ≥ 10ms; doubles after each rapid failure
//!     backoff_max: 60s                # ≥ backoff_initial
//!     stable_after: 60s               # ≥ 1s
//!     stop_timeout: 10s               # SIGTERM → SIGKILL grace, ≥ 100ms
//!   log_level: info                   # Beyla's own: debug | info | warn | error
//! ```
//!
//! Every `beyla` key either reaches Beyla's generated config or is enforced
//! by Coral. The seed's `limits.max_traced_connections` and
//! `limits.ring_buffer_size`, and `protocols.http.capture_headers: true`,
//! have no Beyla equivalent and are rejected with the reason.
//!
//! The colony's YAML schema (every key optional):
//!
//! ```yaml
//! colony:
//!   id: main                          # default: host name
//!   data_dir: /var/lib/coral/colony   # default: $CORAL_HOME/colony
//!   api:
//!     endpoint: "127.0.0.1:9000"      # ColonyService gRPC listen address (port 0 allowed)
//!     tls: { cert_file: /etc/coral/colony.pem, key_file: /etc/coral/colony-key.pem }
//!   admin:
//!     endpoint: "127.0.0.1:9003"      # /metrics, /healthz, /metrics/red (port 0 allowed)
//!     red_metrics: false              # RED per service and operation at /metrics/red
//!   auth:
//!     token: "s3cret"                 # required on every RPC when set
//!     token_file: /etc/coral/token    # alternative (content, trimmed); not both
//!   poll:
//!     interval: 30s                   # 1s–1h
//!     timeout: 10s                    # per RPC, ≥ 100ms
//!     max_concurrent: 32              # agents polled at once, 1–1024
//!     page_size: 10000                # max_records per QueryTelemetry, 1–50000
//!     tls:                            # how agents' API TLS is verified; bare host:port agents use https
//!       ca_file: /etc/coral/ca.pem
//!       server_name: agents.internal
//!     lease_interval: 10s             # colonies sharing a ClickHouse: lease renewal, 1s–5m
//!   health:
//!     degraded_after: 45s             # ≥ 1s
//!     unreachable_after: 2m           # longer than degraded_after
//!   agents:                           # polled without registration; ids unique
//!     - id: web-1
//!       endpoint: "10.0.0.5:9001"     # host:port, http://host:port or https://host:port
//!   log:
//!     format: text                    # text | json
//!     level: info
//! storage:
//!   retention:
//!     otel_spans: 24h                 # 1-minute OTLP summaries
//!     otel_operations: 24h            # per-operation breakdown
//!     trace_spans: 24h                # kept raw spans
//!     host_metrics: 7d
//!     gaps: 30d
//!   cleanup_interval: 5m              # ≥ 1s
//!   beyla:                            # parsed and validated; used later
//!     retention:
//!       http_metrics: 30d
//!       grpc_metrics: 30d
//!       sql_metrics: 14d
//!       traces: 7d
//!     trace_sampling_rate: 1.0        # other traces kept, (0, 1]; by trace id
//!     trace_slow_threshold: 500ms     # traces this slow (and errors) are always kept
//!   engine: duckdb                    # duckdb (embedded, in data_dir) | clickhouse
//!   # Read only with `engine: clickhouse` (an error otherwise):
//!   url: "http://127.0.0.1:8123"      # required: ClickHouse HTTP interface, http(s)://host:port
//!   database: coral                   # plain identifier, ≤ 64 characters
//!   user: default
//!   password_file: /etc/coral/clickhouse-password  # content, trailing whitespace trimmed; default: no password
//!   cluster: coral_cluster            # remote_servers cluster (identifier); default: a single server
//! ```

use std::collections::HashMap;
use std::path::Path;

mod beyla;
mod beyla_file;
mod beyla_kinds;
mod beyla_values;
mod build;
mod colony;
mod colony_build;
mod colony_file;
mod colony_storage;
mod ctx;
mod dial;
mod duration;
pub mod env;
mod error;
mod file;
mod filters;
mod link;
mod tls;
mod token;
mod types;
mod values;
mod yaml;

pub use beyla::{
    BeylaConfig, BeylaLimits, BeylaLogLevel, BeylaProtocols, BeylaRestart, BeylaService,
    HttpProtocol, PortSet, SqlProtocol, UnmatchedRoutes,
};
pub use build::{coral_home, default_agent_id, default_colony_id, host_name};
pub use colony::{
    AdminConfig, BeylaTraceSampling, ClickHouseStorage, ColonyConfig, ColonyOverrides,
    ColonyRetention, HealthConfig, PollConfig, StaticAgent, StorageEngine,
};
pub use duration::parse_duration;
pub use env::{COLONY_ENV_VARS, ENV_VARS};
pub use error::ConfigError;
pub use link::{ColonyLink, PushConfig};
pub use tls::{ClientTls, ServerTls};
pub use types::{
    AckMode, AgentConfig, AgentMode, AgentOverrides, DEFAULT_MAX_CONNECTIONS, FilterConfig,
    HostMetricsConfig, LogConfig, LogFormat, StorageConfig, TelemetryConfig,
};

impl AgentConfig {
    /// Load: file (optional path) → env overrides → flag overrides → validate.
    ///
    /// Without a path only defaults, `env` and `overrides` are used. A path
    /// that cannot be read is an error ([`ConfigError::Read`]).
    pub fn load(
        path: Option<&Path>,
        env: &HashMap<String, String>,
        overrides: &AgentOverrides,
    ) -> Result<AgentConfig, ConfigError> {
        match path {
            Some(path) => AgentConfig::from_yaml_str(&yaml::read(path)?, path, env, overrides),
            None => {
                let mut b = build::Builder::new(env, None);
                env::apply(&mut b, env)?;
                b.apply_flags(overrides)?;
                b.finish()
            }
        }
    }

    /// Same from a YAML string (used by tests; `origin` is the name used in
    /// errors and becomes [`AgentConfig::source`]).
    pub fn from_yaml_str(
        yaml: &str,
        origin: &Path,
        env: &HashMap<String, String>,
        overrides: &AgentOverrides,
    ) -> Result<AgentConfig, ConfigError> {
        let document = yaml::parse(yaml, origin)?;
        let mut b = build::Builder::new(env, Some(origin));
        if let Some(root) = &document {
            file::apply(&mut b, root, origin)?;
        }
        env::apply(&mut b, env)?;
        b.apply_flags(overrides)?;
        b.finish()
    }
}
