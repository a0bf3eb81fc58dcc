//! `CORAL_*` environment-variable overrides for the agent ([`ENV_VARS`]) and
//! the colony ([`COLONY_ENV_VARS`]).
//!
//! The environment is passed in as a map (the binary collects
//! `std::env::vars()`); this crate never reads the process environment.
//! Environment variables override the config file and are overridden by
//! command-line flags. A variable that is set but empty counts as unset.
//! Errors about `CORAL_TOKEN` never show its value, nor does any error show
//! the content of a password file.
//!
//! Agent:
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
//! | `CORAL_COLONY_ENDPOINT`    | `agent.colony.endpoint` (creates the colony section if the file has none) | `host:port`, `http://host:port`, `https://host:port` |
//! | `CORAL_TOKEN`              | `agent.colony.token` / `token_file` (`AgentConfig::auth_token`; without a colony it only protects the agent API) | printable ASCII without spaces |
//! | `CORAL_HOST_METRICS_INTERVAL` | `agent.host_metrics.interval`   | duration ≥ 1s |
//! | `CORAL_RETENTION`          | `agent.storage.retention`          | duration: `500ms`, `30s`, `5m`, `1h`, `2d`, or bare seconds |
//! | `CORAL_SAMPLE_RATE`        | the `sample_rate` filter rule      | `0.0`–`1.0`; other filter rules are unchanged |
//! | `CORAL_ACK`                | `agent.telemetry.ack`              | `received`, `stored` |
//! | `CORAL_LOG_FORMAT`         | `agent.log.format`                 | `text`, `json` |
//! | `CORAL_LOG_LEVEL`          | `agent.log.level`                  | `tracing` filter directive, e.g. `info`, `coral=debug,info` |
//! | `CORAL_BEYLA_ENABLED`      | `beyla.enabled`                    | `true`, `false`, `1`, `0` |
//!
//! Colony:
//!
//! | Variable                    | Overrides                          | Accepted values |
//! |-----------------------------|------------------------------------|-----------------|
//! | `CORAL_HOME`                | base of the default data directory | path; default `$HOME/.coral` (data dir `$CORAL_HOME/colony`) |
//! | `HOME`                      | —                                  | only used to derive the default `CORAL_HOME` |
//! | `CORAL_COLONY_ID`           | `colony.id`                        | non-empty, no whitespace; default: host name |
//! | `CORAL_COLONY_DATA_DIR`     | `colony.data_dir`                  | path |
//! | `CORAL_COLONY_API_ENDPOINT` | `colony.api.endpoint`              | `ip:port`, e.g. `127.0.0.1:9000` |
//! | `CORAL_COLONY_ADMIN_ENDPOINT` | `colony.admin.endpoint`          | `ip:port`, e.g. `127.0.0.1:9003` |
//! | `CORAL_RED_METRICS`         | `colony.admin.red_metrics`         | `true`, `false`, `1`, `0` |
//! | `CORAL_POLL_INTERVAL`       | `colony.poll.interval`             | duration from 1s to 1h |
//! | `CORAL_TOKEN`               | `colony.auth.token` / `token_file` | printable ASCII without spaces |
//! | `CORAL_LOG_FORMAT`          | `colony.log.format`                | `text`, `json` |
//! | `CORAL_LOG_LEVEL`           | `colony.log.level`                 | `tracing` filter directive |
//! | `CORAL_STORAGE_ENGINE`      | `storage.engine`                   | `duckdb`, `clickhouse` |
//! | `CORAL_STORAGE_URL`         | `storage.url`                      | `http://host:port`, `https://host:port`, e.g. `http://127.0.0.1:8123` |
//! | `CORAL_STORAGE_DATABASE`    | `storage.database`                 | identifier `[A-Za-z_][A-Za-z0-9_]*`, ≤ 64 characters |
//! | `CORAL_STORAGE_USER`        | `storage.user`                     | non-empty, no whitespace |
//! | `CORAL_STORAGE_PASSWORD_FILE` | `storage.password_file`          | path of a file holding the password (read at load) |
//! | `CORAL_STORAGE_CLUSTER`     | `storage.cluster`                  | identifier, as for the database |
//!
//! The `CORAL_STORAGE_*` settings other than the engine are only accepted
//! with the `clickhouse` engine, from whichever layer it comes.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::ConfigError;
use crate::build::{ADMIN_KEY, API_KEY, Builder, GRPC_KEY, HTTP_KEY, Origin};
use crate::colony_build::{ColonyBuilder, parse_poll_interval};
use crate::colony_storage::{self, Set, StorageDraft};
use crate::dial::parse_dial_target;
use crate::parse_duration;
use crate::token::TokenSource;
use crate::types::{AckMode, AgentMode, LogFormat};
use crate::values;

/// Every environment variable the agent configuration reads.
pub const ENV_VARS: [&str; 19] = [
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
    "CORAL_COLONY_ENDPOINT",
    "CORAL_TOKEN",
    "CORAL_HOST_METRICS_INTERVAL",
    "CORAL_RETENTION",
    "CORAL_SAMPLE_RATE",
    "CORAL_ACK",
    "CORAL_LOG_FORMAT",
    "CORAL_LOG_LEVEL",
    "CORAL_BEYLA_ENABLED",
];

/// Every environment variable the colony configuration reads.
pub const COLONY_ENV_VARS: [&str; 17] = [
    "CORAL_HOME",
    "HOME",
    "CORAL_COLONY_ID",
    "CORAL_COLONY_DATA_DIR",
    "CORAL_COLONY_API_ENDPOINT",
    "CORAL_COLONY_ADMIN_ENDPOINT",
    "CORAL_RED_METRICS",
    "CORAL_POLL_INTERVAL",
    "CORAL_TOKEN",
    "CORAL_LOG_FORMAT",
    "CORAL_LOG_LEVEL",
    "CORAL_STORAGE_ENGINE",
    "CORAL_STORAGE_URL",
    "CORAL_STORAGE_DATABASE",
    "CORAL_STORAGE_USER",
    "CORAL_STORAGE_PASSWORD_FILE",
    "CORAL_STORAGE_CLUSTER",
];

/// Applies the `CORAL_*` overrides present in `env`.
pub(crate) fn apply(b: &mut Builder, env: &HashMap<String, String>) -> Result<(), ConfigError> {
    let get = getter(env);
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
    if let Some((var, v)) = get("CORAL_COLONY_ENDPOINT") {
        b.link_mut().endpoint = Some(check(var, v, parse_dial_target(v))?);
    }
    if let Some((var, v)) = get("CORAL_TOKEN") {
        b.token = Some(TokenSource::Value(check_secret(
            var,
            v,
            values::check_token(v),
        )?));
    }
    if let Some((var, v)) = get("CORAL_HOST_METRICS_INTERVAL") {
        let d = check(var, v, parse_duration(v))?;
        let d = check(
            var,
            v,
            values::check_duration(d, Duration::from_secs(1), None),
        )?;
        b.cfg.host_metrics.interval = d;
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
    if let Some((var, v)) = get("CORAL_ACK") {
        b.cfg.telemetry.ack = check(var, v, v.parse::<AckMode>())?;
    }
    if let Some((var, v)) = get("CORAL_LOG_FORMAT") {
        b.cfg.log.format = check(var, v, v.parse::<LogFormat>())?;
    }
    if let Some((var, v)) = get("CORAL_LOG_LEVEL") {
        b.cfg.log.level = check(var, v, values::check_log_level(v))?;
    }
    if let Some((var, v)) = get("CORAL_BEYLA_ENABLED") {
        b.cfg.beyla.enabled = check(var, v, values::parse_env_bool(v))?;
    }
    Ok(())
}

/// Applies the colony's `CORAL_*` overrides present in `env`.
pub(crate) fn apply_colony(
    b: &mut ColonyBuilder,
    env: &HashMap<String, String>,
) -> Result<(), ConfigError> {
    let get = getter(env);
    if let Some((var, v)) = get("CORAL_COLONY_ID") {
        b.cfg.colony_id = check(var, v, values::check_colony_id(v.trim()))?;
    }
    if let Some((var, v)) = get("CORAL_COLONY_DATA_DIR") {
        let dir = check(var, v, values::check_data_dir(v))?;
        b.set_data_dir(dir);
    }
    if let Some((var, v)) = get("CORAL_COLONY_API_ENDPOINT") {
        b.cfg.api_endpoint = check(var, v, values::parse_endpoint(v))?;
    }
    if let Some((var, v)) = get("CORAL_COLONY_ADMIN_ENDPOINT") {
        b.cfg.admin.endpoint = check(var, v, values::parse_endpoint(v))?;
    }
    if let Some((var, v)) = get("CORAL_RED_METRICS") {
        b.cfg.admin.red_metrics = check(var, v, values::parse_env_bool(v))?;
    }
    if let Some((var, v)) = get("CORAL_POLL_INTERVAL") {
        b.cfg.poll.interval = check(var, v, parse_poll_interval(v))?;
    }
    if let Some((var, v)) = get("CORAL_TOKEN") {
        b.token = Some(TokenSource::Value(check_secret(
            var,
            v,
            values::check_token(v),
        )?));
    }
    if let Some((var, v)) = get("CORAL_LOG_FORMAT") {
        b.cfg.log.format = check(var, v, v.parse::<LogFormat>())?;
    }
    if let Some((var, v)) = get("CORAL_LOG_LEVEL") {
        b.cfg.log.level = check(var, v, values::check_log_level(v))?;
    }
    apply_storage(&mut b.storage, &get)
}

/// Applies the `CORAL_STORAGE_*` overrides; whether they fit the engine is
/// checked when the configuration is finished.
fn apply_storage<'e>(
    s: &mut StorageDraft,
    get: &impl Fn(&'static str) -> Option<(&'static str, &'e str)>,
) -> Result<(), ConfigError> {
    if let Some((var, v)) = get("CORAL_STORAGE_ENGINE") {
        let engine = check(var, v, colony_storage::parse_engine(v))?;
        s.engine = Some(Set::env(engine, var, v, "storage.engine"));
    }
    if let Some((var, v)) = get("CORAL_STORAGE_URL") {
        let url = colony_storage::parse_url(v);
        // A URL with a user name may hold a password: do not show it.
        let url = if v.contains('@') {
            check_secret(var, v, url)
        } else {
            check(var, v, url)
        }?;
        s.url = Some(Set::env(url, var, v, "storage.url"));
    }
    if let Some((var, v)) = get("CORAL_STORAGE_DATABASE") {
        let database = check(var, v, colony_storage::check_database(v))?;
        s.database = Some(Set::env(database, var, v, "storage.database"));
    }
    if let Some((var, v)) = get("CORAL_STORAGE_USER") {
        let user = check(var, v, colony_storage::check_user(v))?;
        s.user = Some(Set::env(user, var, v, "storage.user"));
    }
    if let Some((var, v)) = get("CORAL_STORAGE_PASSWORD_FILE") {
        let path = PathBuf::from(v);
        s.password_file = Some(Set::env(path, var, v, "storage.password_file"));
    }
    if let Some((var, v)) = get("CORAL_STORAGE_CLUSTER") {
        let cluster = check(var, v, colony_storage::check_cluster(v))?;
        s.cluster = Some(Set::env(cluster, var, v, "storage.cluster"));
    }
    Ok(())
}

/// Looks a variable up in `env`; empty (or all-whitespace) values count as unset.
fn getter<'e>(
    env: &'e HashMap<String, String>,
) -> impl Fn(&'static str) -> Option<(&'static str, &'e str)> {
    move |var: &'static str| {
        env.get(var)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (var, v.as_str()))
    }
}

/// Like [`check`], but the error does not show the (secret) value.
fn check_secret<T>(
    var: &'static str,
    value: &str,
    result: Result<T, String>,
) -> Result<T, ConfigError> {
    let hidden = format!("<{} characters, hidden>", value.chars().count());
    result.map_err(|message| env_error(var, &hidden, message))
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
