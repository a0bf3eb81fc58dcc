//! Applies a parsed YAML document to the configuration, checking every key.
//!
//! Unknown keys are rejected at every level (the equivalent of serde's
//! `deny_unknown_fields`), with the full dotted key path, the line, the
//! accepted keys and a spelling suggestion. The `beyla:` section is walked
//! by `beyla_file.rs`.

use std::path::Path;
use std::time::Duration;

use crate::build::{ADMIN_KEY, API_KEY, Builder, GRPC_KEY, HTTP_KEY, Origin};
use crate::ctx::FileCtx;
use crate::types::{AckMode, AgentMode, LogFormat};
use crate::yaml::{Node, Value, line_of};
use crate::{ConfigError, beyla_file, filters, link, tls, values};

const ROOT_KEYS: &[&str] = &["agent", "beyla"];
const AGENT_KEYS: &[&str] = &[
    "id",
    "data_dir",
    "mode",
    "telemetry",
    "api",
    "admin",
    "colony",
    "host_metrics",
    "storage",
    "log",
];
const TELEMETRY_KEYS: &[&str] = &[
    "enabled",
    "endpoint",
    "http_endpoint",
    "max_message_bytes",
    "filters",
    "scrub_attributes",
    "aggregation",
    "queue_spans",
    "max_connections",
    "ack",
];
const AGGREGATION_KEYS: &[&str] = &["flush_grace", "max_operations_per_service", "max_services"];
const ENDPOINT_KEYS: &[&str] = &["endpoint"];
const API_KEYS: &[&str] = &["endpoint", "tls"];
const HOST_METRICS_KEYS: &[&str] = &["enabled", "interval"];
const STORAGE_KEYS: &[&str] = &["retention", "cleanup_interval", "outbox_max_age"];
const LOG_KEYS: &[&str] = &["format", "level"];

/// Applies the document `root`, read from `path`, to `b`.
pub(crate) fn apply(b: &mut Builder, root: &Node, path: &Path) -> Result<(), ConfigError> {
    let f = FileCtx::new(path);
    for (key, value) in f.mapping(root, "", ROOT_KEYS)? {
        match key.value.as_str() {
            "agent" => agent(&f, b, value)?,
            "beyla" => beyla_file::apply(&f, value, &mut b.cfg.beyla)?,
            other => {
                // A known setting at the top level: it belongs under `agent:`.
                let hint = AGENT_KEYS
                    .contains(&other)
                    .then(|| format!("agent.{other}"));
                return Err(f.unknown(key, "", ROOT_KEYS, hint));
            }
        }
    }
    Ok(())
}

fn agent(f: &FileCtx, b: &mut Builder, node: &Node) -> Result<(), ConfigError> {
    for (key, v) in f.mapping(node, "agent", AGENT_KEYS)? {
        match key.value.as_str() {
            "id" => b.cfg.agent_id = f.parse(v, "agent.id", values::check_agent_id)?,
            "data_dir" => b.set_data_dir(f.parse(v, "agent.data_dir", values::check_data_dir)?),
            "mode" => b.cfg.mode = f.parse(v, "agent.mode", str::parse::<AgentMode>)?,
            "telemetry" => telemetry(f, b, v)?,
            "api" => api(f, b, v)?,
            "admin" => endpoint_section(f, b, v, "agent.admin", ADMIN_KEY)?,
            "colony" => {
                let (draft, token) = link::parse(f, v, line_of(key))?;
                b.link = Some(draft);
                b.token = token;
            }
            "host_metrics" => host_metrics(f, b, v)?,
            "storage" => storage(f, b, v)?,
            "log" => log(f, b, v)?,
            _ => return Err(f.unknown(key, "agent", AGENT_KEYS, None)),
        }
    }
    Ok(())
}

fn telemetry(f: &FileCtx, b: &mut Builder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "agent.telemetry";
    let t = &mut b.cfg.telemetry;
    let mut endpoints = Vec::new();
    for (key, v) in f.mapping(node, P, TELEMETRY_KEYS)? {
        match key.value.as_str() {
            "enabled" => t.enabled = f.boolean(v, "agent.telemetry.enabled")?,
            "endpoint" => endpoints.push((GRPC_KEY, v)),
            "http_endpoint" => endpoints.push((HTTP_KEY, v)),
            "max_message_bytes" => t.max_message_bytes = f.byte_size(v, &f.join(P, key))?,
            "filters" => t.filters = filters::parse(f, v, "agent.telemetry.filters")?,
            "scrub_attributes" => t.scrub_attributes = scrub_attributes(f, v)?,
            "aggregation" => {
                const A: &str = "agent.telemetry.aggregation";
                for (key, v) in f.mapping(v, A, AGGREGATION_KEYS)? {
                    let k = f.join(A, key);
                    match key.value.as_str() {
                        "flush_grace" => t.flush_grace = f.duration(v, &k, Duration::ZERO)?,
                        "max_operations_per_service" => {
                            t.max_operations_per_service = f.count(v, &k, 1)?;
                        }
                        "max_services" => t.max_services = f.count(v, &k, 1)?,
                        _ => return Err(f.unknown(key, A, AGGREGATION_KEYS, None)),
                    }
                }
            }
            "queue_spans" => t.queue_spans = f.count(v, "agent.telemetry.queue_spans", 1)?,
            "ack" => t.ack = f.parse(v, "agent.telemetry.ack", str::parse::<AckMode>)?,
            "max_connections" => {
                t.max_connections = f.count(v, "agent.telemetry.max_connections", 1)?
            }
            _ => return Err(f.unknown(key, P, TELEMETRY_KEYS, None)),
        }
    }
    for (key, v) in endpoints {
        let addr = f.parse(v, key, values::parse_endpoint)?;
        b.set_endpoint(key, addr, Origin::File(line_of(v)));
    }
    Ok(())
}

fn scrub_attributes(f: &FileCtx, node: &Node) -> Result<Vec<regex::Regex>, ConfigError> {
    const K: &str = "agent.telemetry.scrub_attributes";
    let items = match &node.value {
        Value::Null => return Ok(Vec::new()),
        Value::Seq(items) => items,
        other => {
            let msg = format!(
                "expected a list of regular expressions matched against attribute keys, e.g. \
                 [\"email|ssn\", \"^password$\"], found {}",
                other.describe()
            );
            return Err(f.invalid(K, node, msg));
        }
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| f.parse(item, &format!("{K}[{i}]"), values::compile_regex))
        .collect()
}

fn endpoint_section(
    f: &FileCtx,
    b: &mut Builder,
    node: &Node,
    section: &str,
    key_path: &'static str,
) -> Result<(), ConfigError> {
    for (key, v) in f.mapping(node, section, ENDPOINT_KEYS)? {
        match key.value.as_str() {
            "endpoint" => {
                let addr = f.parse(v, key_path, values::parse_endpoint)?;
                b.set_endpoint(key_path, addr, Origin::File(line_of(v)));
            }
            _ => return Err(f.unknown(key, section, ENDPOINT_KEYS, None)),
        }
    }
    Ok(())
}

fn api(f: &FileCtx, b: &mut Builder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "agent.api";
    for (key, v) in f.mapping(node, P, API_KEYS)? {
        match key.value.as_str() {
            "endpoint" => {
                let addr = f.parse(v, API_KEY, values::parse_endpoint)?;
                b.set_endpoint(API_KEY, addr, Origin::File(line_of(v)));
            }
            "tls" => b.cfg.api_tls = tls::server_tls(f, v, "agent.api.tls", line_of(key))?,
            _ => return Err(f.unknown(key, P, API_KEYS, None)),
        }
    }
    Ok(())
}

fn host_metrics(f: &FileCtx, b: &mut Builder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "agent.host_metrics";
    let h = &mut b.cfg.host_metrics;
    for (key, v) in f.mapping(node, P, HOST_METRICS_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "enabled" => h.enabled = f.boolean(v, &k)?,
            "interval" => h.interval = f.duration(v, &k, Duration::from_secs(1))?,
            _ => return Err(f.unknown(key, P, HOST_METRICS_KEYS, None)),
        }
    }
    Ok(())
}

fn storage(f: &FileCtx, b: &mut Builder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "agent.storage";
    let one_ms = Duration::from_millis(1);
    for (key, v) in f.mapping(node, P, STORAGE_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "retention" => b.cfg.storage.retention = f.duration(v, &k, one_ms)?,
            "cleanup_interval" => b.cfg.storage.cleanup_interval = f.duration(v, &k, one_ms)?,
            "outbox_max_age" => b.cfg.storage.outbox_max_age = f.duration(v, &k, one_ms)?,
            _ => return Err(f.unknown(key, P, STORAGE_KEYS, None)),
        }
    }
    Ok(())
}

fn log(f: &FileCtx, b: &mut Builder, node: &Node) -> Result<(), ConfigError> {
    for (key, v) in f.mapping(node, "agent.log", LOG_KEYS)? {
        match key.value.as_str() {
            "format" => {
                b.cfg.log.format = f.parse(v, "agent.log.format", str::parse::<LogFormat>)?
            }
            "level" => b.cfg.log.level = f.parse(v, "agent.log.level", values::check_log_level)?,
            _ => return Err(f.unknown(key, "agent.log", LOG_KEYS, None)),
        }
    }
    Ok(())
}
