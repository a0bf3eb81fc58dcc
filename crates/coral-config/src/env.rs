//! `CORAL_*` environment-variable overrides.
//!
//! The environment is passed in as a map (the binary collects
//! `std::env::vars()`); this crate never reads the process environment.
//! Environment variables override the config file and are overridden by
//! command-line flags. A variable that is set but empty counts as unset.
//!
//! | Variable                   | Overrides                          | Accepted values |
//! |----------------------------|------------------------------------|-----------------|
//! | `CORAL_HOME`               | base of the default data directory | path; default `$HOME/.coral` (data dir `$CORAL_HOME/agent`) |
//! | `HOME`                     | —                                  | only used to derive the default `CORAL_HOME` |
//! | `CORAL_AGENT_ID`           | `agent.id`                         | non-empty, no whitespace; default: host name |
//! | `CORAL_DATA_DIR`           | `agent.data_dir`                   | path |
//! | `CORAL_MODE`               | `agent.mode`                       | `agent`, `otel-collector`, `forwarder` |
//! | `CORAL_TELEMETRY_ENABLED`  | `agent.telemetry.enabled`          | `true`, `false`, `1`, `0` |
//! | `CORAL_OTLP_GRPC_ENDPOINT` | `agent.telemetry.endpoint`         | `ip:port`, e.g. `127.0.0.1:4317` |
//! | `CORAL_OTLP_HTTP_ENDPOINT` | `agent.telemetry.http_endpoint`    | `ip:port`, e.g. `127.0.0.1:4318` |
//! | `CORAL_AGENT_API_ENDPOINT` | `agent.api.endpoint`               | `ip:port`, e.g. `127.0.0.1:9001` |
//! | `CORAL_ADMIN_ENDPOINT`     | `agent.admin.endpoint`             | `ip:port`, e.g. `127.0.0.1:9002` |
//! | `CORAL_RETENTION`          | `agent.storage.retention`          | duration: `500ms`, `30s`, `5m`, `1h`, `2d`, or bare seconds |
//! | `CORAL_SAMPLE_RATE`        | the `sample_rate` filter rule      | `0.0`–`1.0`; other filter rules are unchanged |
//! | `CORAL_LOG_FORMAT`         | `agent.log.format`                 | `text`, `json` |
//! | `CORAL_LOG_LEVEL`          | `agent.log.level`                  | `tracing` filter directive, e.g. `info`, `coral=debug,info` |

use std::collections::HashMap;

use crate::ConfigError;
use crate::build::{ADMIN_KEY, API_KEY, Builder, GRPC_KEY, HTTP_KEY, Origin};
use crate::parse_duration;
use crate::types::{AgentMode, LogFormat};
use crate::values;

/// Every environment variable the agent configuration reads.
pub const ENV_VARS: [&str; 14] = [
    "CORAL_HOME",
    "HOME",
    "CORAL_AGENT_ID",
    "CORAL_DATA_DIR",
    "CORAL_MODE",
    "CORAL_TELEMETRY_ENABLED",
    "CORAL_OTLP_GRPC_ENDPOINT",
    "CORAL_OTLP_HTTP_ENDPOINT",
    "CORAL_AGENT_API_ENDPOINT",
    "CORAL_ADMIN_ENDPOINT",
    "CORAL_RETENTION",
    "CORAL_SAMPLE_RATE",
    "CORAL_LOG_FORMAT",
    "CORAL_LOG_LEVEL",
];

/// Applies the `CORAL_*` overrides present in `env`.
pub(crate) fn apply(b: &mut Builder, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let get = |var: &'static str| {
        env.get(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (var, v.as_str()))
    };
    if let Some((var, v)) = get("CORAL_AGENT_ID") {
        b.cfg.agent_id = check(var, v, values::check_agent_id(v.trim()))?;
    }
    if let Some((var, v)) = get("CORAL_DATA_DIR") {
        let dir = check(var, v, values::check_data_dir(v))?;
        b.set_data_dir(dir);
    }
    if let Some((var, v)) = get("CORAL_MODE") {
        b.cfg.mode = check(var, v, v.parse::<AgentMode>())?;
    }
    if let Some((var, v)) = get("CORAL_TELEMETRY_ENABLED") {
        b.cfg.telemetry.enabled = check(var, v, values::parse_env_bool(v))?;
    }
    let endpoints = [
        ("CORAL_OTLP_GRPC_ENDPOINT", GRPC_KEY),
        ("CORAL_OTLP_HTTP_ENDPOINT", HTTP_KEY),
        ("CORAL_AGENT_API_ENDPOINT", API_KEY),
        ("CORAL_ADMIN_ENDPOINT", ADMIN_KEY),
    ];
    for (name, key) in endpoints {
        if let Some((var, v)) = get(name) {
            let addr = check(var, v, values::parse_endpoint(v))?;
            b.set_endpoint(key, addr, Origin::Env(var));
        }
    }
    if let Some((var, v)) = get("CORAL_RETENTION") {
        let retention = check(var, v, parse_duration(v))?;
        if retention.is_zero() {
            return Err(env_error(var, v, "retention must be longer than 0".into()));
        }
        b.cfg.storage.retention = retention;
    }
    if let Some((var, v)) = get("CORAL_SAMPLE_RATE") {
        b.cfg.telemetry.filters.sample_rate = check(var, v, values::parse_sample_rate(v))?;
    }
    if let Some((var, v)) = get("CORAL_LOG_FORMAT") {
        b.cfg.log.format = check(var, v, v.parse::<LogFormat>())?;
    }
    if let Some((var, v)) = get("CORAL_LOG_LEVEL") {
        b.cfg.log.level = check(var, v, values::check_log_level(v))?;
    }
    Ok(())
}

/// Maps a validation failure to an error naming the variable.
fn check<T>(var: &'static str, value: &str, result: Result<T, String>) -> Result<T, ConfigError> {
    result.map_err(|message| env_error(var, value, message))
}

fn env_error(var: &'static str, value: &str, message: String) -> ConfigError {
    ConfigError::Env {
        var,
        value: value.to_owned(),
        message,
    }
}
