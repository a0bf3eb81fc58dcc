//! Coral agent configuration: an optional YAML file, `CORAL_*` environment
//! overrides and command-line flag overrides, validated into an
//! [`AgentConfig`] with every default filled in.
//!
//! Precedence, lowest to highest: built-in defaults < file < environment <
//! flags. The environment is passed in as a map (see [`mod@env`] for the
//! variables); this crate never reads the process environment.
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
//! # Ok::<(), coral_config::ConfigError>(())
//! ```
//!
//! Errors ([`ConfigError`]) name the file, the full dotted key path with its
//! line, the environment variable or the flag, and say what is accepted.
//!
//! The YAML schema (every key optional):
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
//!   api:
//!     endpoint: "127.0.0.1:9001"      # AgentService gRPC
//!   admin:
//!     endpoint: "127.0.0.1:9002"      # /metrics, /healthz
//!   storage:
//!     retention: 1h                   # 500ms, 30s, 5m, 1h, 2d, or bare seconds
//!     cleanup_interval: 1m
//!   log:
//!     format: text                    # text | json
//!     level: info                     # tracing EnvFilter directive
//! ```

use std::collections::HashMap;
use std::path::Path;

mod build;
mod duration;
pub mod env;
mod error;
mod file;
mod filters;
mod types;
mod values;
mod yaml;

pub use build::{coral_home, default_agent_id};
pub use duration::parse_duration;
pub use env::ENV_VARS;
pub use error::ConfigError;
pub use types::{
    AgentConfig, AgentMode, AgentOverrides, FilterConfig, LogConfig, LogFormat, StorageConfig,
    TelemetryConfig,
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
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                AgentConfig::from_yaml_str(&text, path, env, overrides)
            }
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
