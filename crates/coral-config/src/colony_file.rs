//! Applies a parsed colony YAML document to the colony configuration,
//! checking every key (unknown keys are errors with the full dotted key
//! path, the line, the accepted keys and a spelling suggestion).

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::colony_build::{ColonyBuilder, POLL_INTERVAL_MAX, POLL_INTERVAL_MIN};
use crate::ctx::FileCtx;
use crate::dial::parse_dial_target;
use crate::link::MAX_PUSH_RECORDS;
use crate::types::LogFormat;
use crate::yaml::{Node, line_of};
use crate::{ConfigError, beyla_file, colony_storage, tls, token, values};

const ROOT_KEYS: &[&str] = &["colony", "storage"];
const COLONY_KEYS: &[&str] = &[
    "id", "data_dir", "api", "admin", "auth", "poll", "health", "agents", "log",
];
const API_KEYS: &[&str] = &["endpoint", "tls"];
const ADMIN_KEYS: &[&str] = &["endpoint", "red_metrics"];
const AUTH_KEYS: &[&str] = &["token", "token_file"];
const POLL_KEYS: &[&str] = &[
    "interval",
    "timeout",
    "max_concurrent",
    "page_size",
    "tls",
    "lease_interval",
];
const HEALTH_KEYS: &[&str] = &["degraded_after", "unreachable_after"];
const AGENT_KEYS: &[&str] = &["id", "endpoint"];
const LOG_KEYS: &[&str] = &["format", "level"];
const STORAGE_KEYS: &[&str] = &[
    "retention",
    "cleanup_interval",
    "beyla",
    "engine",
    "url",
    "database",
    "user",
    "password_file",
    "cluster",
];
const RETENTION_KEYS: &[&str] = &[
    "otel_spans",
    "otel_operations",
    "trace_spans",
    "host_metrics",
    "gaps",
];
const BEYLA_KEYS: &[&str] = &["retention", "trace_sampling_rate", "trace_slow_threshold"];
const BEYLA_RETENTION_KEYS: &[&str] = &["http_metrics", "grpc_metrics", "sql_metrics", "traces"];

/// Most agents polled at once (`colony.poll.max_concurrent`).
const MAX_CONCURRENT: usize = 1024;
/// Shortest retention: anything longer than 0.
const ONE_MS: Duration = Duration::from_millis(1);
/// Example of a static agents list, for errors.
const AGENTS_EXAMPLE: &str = "`- { id: web-1, endpoint: \"10.0.0.5:9001\" }`";

/// Applies the document `root`, read from `path`, to `b`.
pub(crate) fn apply(b: &mut ColonyBuilder, root: &Node, path: &Path) -> Result<(), ConfigError> {
    let f = FileCtx::new(path);
    for (key, value) in f.mapping(root, "", ROOT_KEYS)? {
        match key.value.as_str() {
            "colony" => colony(&f, b, value)?,
            "storage" => storage(&f, b, value)?,
            other => {
                // A known colony setting at the top level: it belongs under `colony:`.
                let hint = COLONY_KEYS
                    .contains(&other)
                    .then(|| format!("colony.{other}"));
                return Err(f.unknown(key, "", ROOT_KEYS, hint));
            }
        }
    }
    Ok(())
}

fn colony(f: &FileCtx, b: &mut ColonyBuilder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "colony";
    for (key, v) in f.mapping(node, P, COLONY_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "id" => b.cfg.colony_id = f.parse(v, &k, values::check_colony_id)?,
            "data_dir" => b.set_data_dir(f.parse(v, &k, values::check_data_dir)?),
            "api" => {
                for (key, v) in f.mapping(v, &k, API_KEYS)? {
                    let kk = f.join(&k, key);
                    match key.value.as_str() {
                        "endpoint" => {
                            b.cfg.api_endpoint = f.parse(v, &kk, values::parse_endpoint)?;
                        }
                        "tls" => b.cfg.api_tls = tls::server_tls(f, v, &kk, line_of(key))?,
                        _ => return Err(f.unknown(key, &k, API_KEYS, None)),
                    }
                }
            }
            "admin" => {
                for (key, v) in f.mapping(v, &k, ADMIN_KEYS)? {
                    let kk = f.join(&k, key);
                    match key.value.as_str() {
                        "endpoint" => {
                            b.cfg.admin.endpoint = f.parse(v, &kk, values::parse_endpoint)?;
                        }
                        "red_metrics" => b.cfg.admin.red_metrics = f.boolean(v, &kk)?,
                        _ => return Err(f.unknown(key, &k, ADMIN_KEYS, None)),
                    }
                }
            }
            "auth" => {
                let (mut token, mut token_file) = (None, None);
                for (key, v) in f.mapping(v, &k, AUTH_KEYS)? {
                    match key.value.as_str() {
                        "token" => token = Some(v),
                        "token_file" => token_file = Some(v),
                        _ => return Err(f.unknown(key, &k, AUTH_KEYS, None)),
                    }
                }
                b.token = token::from_file(f, &k, token, token_file)?;
            }
            "poll" => poll(f, b, v)?,
            "health" => health(f, b, v)?,
            "agents" => agents(f, b, v)?,
            "log" => {
                for (key, v) in f.mapping(v, &k, LOG_KEYS)? {
                    let kk = f.join(&k, key);
                    match key.value.as_str() {
                        "format" => b.cfg.log.format = f.parse(v, &kk, str::parse::<LogFormat>)?,
                        "level" => b.cfg.log.level = f.parse(v, &kk, values::check_log_level)?,
                        _ => return Err(f.unknown(key, &k, LOG_KEYS, None)),
                    }
                }
            }
            _ => return Err(f.unknown(key, P, COLONY_KEYS, None)),
        }
    }
    Ok(())
}

fn poll(f: &FileCtx, b: &mut ColonyBuilder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "colony.poll";
    let p = &mut b.cfg.poll;
    for (key, v) in f.mapping(node, P, POLL_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "interval" => {
                p.interval = f.duration_in(v, &k, POLL_INTERVAL_MIN, Some(POLL_INTERVAL_MAX))?;
            }
            "timeout" => p.timeout = f.duration(v, &k, Duration::from_millis(100))?,
            "max_concurrent" => p.max_concurrent = f.count_in(v, &k, 1, MAX_CONCURRENT)?,
            "page_size" => p.page_size = f.count_in(v, &k, 1, MAX_PUSH_RECORDS)?,
            "tls" => p.tls = Some(tls::client_tls(f, v, &k)?),
            "lease_interval" => {
                p.lease_interval = f.duration_in(
                    v,
                    &k,
                    Duration::from_secs(1),
                    Some(Duration::from_secs(300)),
                )?;
            }
            _ => return Err(f.unknown(key, P, POLL_KEYS, None)),
        }
    }
    Ok(())
}

fn health(f: &FileCtx, b: &mut ColonyBuilder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "colony.health";
    let h = &mut b.cfg.health;
    let mut last = None;
    for (key, v) in f.mapping(node, P, HEALTH_KEYS)? {
        let k = f.join(P, key);
        let min = Duration::from_secs(1);
        match key.value.as_str() {
            "degraded_after" => h.degraded_after = f.duration(v, &k, min)?,
            "unreachable_after" => h.unreachable_after = f.duration(v, &k, min)?,
            _ => return Err(f.unknown(key, P, HEALTH_KEYS, None)),
        }
        // Report an inconsistency at the later of the two settings.
        last = Some((k, v));
    }
    let inconsistent = h.unreachable_after <= h.degraded_after;
    if let Some((key, node)) = last.filter(|_| inconsistent) {
        let (degraded, unreachable) = (
            values::format_duration(h.degraded_after),
            values::format_duration(h.unreachable_after),
        );
        let relation = if key.ends_with("unreachable_after") {
            format!("{unreachable} must be longer than `{P}.degraded_after` ({degraded})")
        } else {
            format!("{degraded} must be shorter than `{P}.unreachable_after` ({unreachable})")
        };
        let msg = format!("{relation} — an agent becomes degraded first, then unreachable");
        return Err(f.invalid(&key, node, msg));
    }
    Ok(())
}

fn agents(f: &FileCtx, b: &mut ColonyBuilder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "colony.agents";
    let mut seen: HashMap<String, usize> = HashMap::new();
    for (i, item) in f.list(node, P, AGENTS_EXAMPLE)?.iter().enumerate() {
        let at = format!("{P}[{i}]");
        let (mut id, mut endpoint) = (None, None);
        for (key, v) in f.mapping(item, &at, AGENT_KEYS)? {
            let k = f.join(&at, key);
            match key.value.as_str() {
                "id" => id = Some((f.parse(v, &k, values::check_agent_id)?, line_of(v))),
                "endpoint" => endpoint = Some(f.parse(v, &k, parse_dial_target)?),
                _ => return Err(f.unknown(key, &at, AGENT_KEYS, None)),
            }
        }
        let required = |field: &str| {
            let msg = format!(
                "is required — each static agent needs `id` and `endpoint`, e.g. {AGENTS_EXAMPLE}"
            );
            f.invalid(&format!("{at}.{field}"), item, msg)
        };
        let (id, id_line) = id.ok_or_else(|| required("id"))?;
        let endpoint = endpoint.ok_or_else(|| required("endpoint"))?;
        if let Some(first) = seen.get(&id) {
            let msg = format!(
                "agent id {id:?} is listed twice, at {P}[{first}] and {at} — give each static \
                 agent its own id"
            );
            return Err(f.invalid_at(&format!("{at}.id"), id_line, msg));
        }
        seen.insert(id.clone(), i);
        b.agents.push((id, endpoint));
    }
    Ok(())
}

fn storage(f: &FileCtx, b: &mut ColonyBuilder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "storage";
    for (key, v) in f.mapping(node, P, STORAGE_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "retention" => retention(f, b, v)?,
            "cleanup_interval" => {
                b.cfg.cleanup_interval = f.duration(v, &k, Duration::from_secs(1))?;
            }
            "beyla" => {
                for (key, v) in f.mapping(v, &k, BEYLA_KEYS)? {
                    let kk = f.join(&k, key);
                    match key.value.as_str() {
                        "retention" => beyla_retention(f, b, v)?,
                        "trace_sampling_rate" => {
                            b.cfg.beyla_traces.rate = beyla_file::rate(f, v, &kk)?
                        }
                        "trace_slow_threshold" => {
                            b.cfg.beyla_traces.slow_threshold = f.duration(v, &kk, ONE_MS)?;
                        }
                        _ => return Err(f.unknown(key, &k, BEYLA_KEYS, None)),
                    }
                }
            }
            // The engine and its settings; anything else is unknown.
            _ => colony_storage::file_key(f, &mut b.storage, key, v, STORAGE_KEYS)?,
        }
    }
    Ok(())
}

fn retention(f: &FileCtx, b: &mut ColonyBuilder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "storage.retention";
    let r = &mut b.cfg.retention;
    for (key, v) in f.mapping(node, P, RETENTION_KEYS)? {
        let slot = match key.value.as_str() {
            "otel_spans" => &mut r.otel_spans,
            "otel_operations" => &mut r.otel_operations,
            "trace_spans" => &mut r.trace_spans,
            "host_metrics" => &mut r.host_metrics,
            "gaps" => &mut r.gaps,
            _ => return Err(f.unknown(key, P, RETENTION_KEYS, None)),
        };
        *slot = f.duration(v, &f.join(P, key), ONE_MS)?;
    }
    Ok(())
}

fn beyla_retention(f: &FileCtx, b: &mut ColonyBuilder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "storage.beyla.retention";
    let r = &mut b.cfg.retention;
    for (key, v) in f.mapping(node, P, BEYLA_RETENTION_KEYS)? {
        let slot = match key.value.as_str() {
            "http_metrics" => &mut r.beyla_http,
            "grpc_metrics" => &mut r.beyla_grpc,
            "sql_metrics" => &mut r.beyla_sql,
            "traces" => &mut r.beyla_traces,
            _ => return Err(f.unknown(key, P, BEYLA_RETENTION_KEYS, None)),
        };
        *slot = f.duration(v, &f.join(P, key), ONE_MS)?;
    }
    Ok(())
}
