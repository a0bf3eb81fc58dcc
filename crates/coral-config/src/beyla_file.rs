//! Applies the agent file's `beyla:` section to a [`BeylaConfig`], checking
//! every key (unknown keys are errors with the dotted key path, the line,
//! the accepted keys and a spelling suggestion).
//!
//! Settings that Beyla has no equivalent for and Coral cannot honour are
//! rejected with the reason and what to use instead, never silently
//! ignored: the seed's `limits.max_traced_connections` and
//! `limits.ring_buffer_size`, and `protocols.http.capture_headers: true`.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::beyla::{BeylaConfig, BeylaLimits, BeylaLogLevel, BeylaProtocols, BeylaRestart};
use crate::beyla::{BeylaService, UnmatchedRoutes};
use crate::beyla_values as bv;
use crate::ctx::FileCtx;
use crate::yaml::{Key, Node, Value, line_of};
use crate::{ConfigError, values};

const P: &str = "beyla";
const BEYLA_KEYS: &[&str] = &[
    "enabled",
    "binary",
    "discovery",
    "protocols",
    "attributes",
    "sampling",
    "limits",
    "storage_retention_hours",
    "export_interval",
    "restart",
    "log_level",
];
const DISCOVERY_KEYS: &[&str] = &["services"];
const SERVICE_KEYS: &[&str] = &[
    "name",
    "open_port",
    "exe_path",
    "process_name",
    "k8s_namespace",
    "k8s_pod_name",
    "k8s_pod_label",
    "k8s_pod_labels",
];
const PROTOCOL_KEYS: &[&str] = &["http", "grpc", "sql", "kafka", "redis"];
const HTTP_KEYS: &[&str] = &[
    "enabled",
    "route_patterns",
    "capture_headers",
    "unmatched_routes",
];
const ENABLED_KEYS: &[&str] = &["enabled"];
const SQL_KEYS: &[&str] = &["enabled", "obfuscate_queries"];
const SAMPLING_KEYS: &[&str] = &["rate"];
const LIMITS_KEYS: &[&str] = &["max_routes_per_service", "wakeup_len"];
const RESTART_KEYS: &[&str] = &[
    "max_rapid_failures",
    "backoff_initial",
    "backoff_max",
    "stable_after",
    "stop_timeout",
];

/// Longest `beyla.storage_retention_hours` (a year).
const MAX_RETENTION_HOURS: usize = 24 * 366;
/// Longest `beyla.export_interval`.
const MAX_EXPORT_INTERVAL: Duration = Duration::from_secs(60);
/// Example of a services list, for errors.
const SERVICES_EXAMPLE: &str = "`- { name: checkout-api, open_port: 8080 }`";

const NO_CONNECTION_LIMIT: &str = "Beyla has no setting that caps traced connections (its \
     connection maps are sized inside its eBPF programs), so this limit could not be honoured \
     — remove it; to bound what Beyla traces, narrow `beyla.discovery.services` (Coral's own \
     route cardinality is capped by `beyla.limits.max_routes_per_service`)";
const NO_RING_BUFFER_SIZE: &str = "Beyla has no ring-buffer size setting (its eBPF ring \
     buffers are sized inside its eBPF programs), so this size could not be honoured — remove \
     it; to trade delay for CPU under load, set `beyla.limits.wakeup_len` (Beyla's \
     `ebpf.wakeup_len`: events buffered before Beyla's reader is woken)";
const NO_HEADER_CAPTURE: &str = "header capture cannot be enabled from Coral: Beyla's header \
     enrichment (`ebpf.payload_extraction.http.enrichment`) needs per-header include and \
     obfuscation rules that this section does not express, and the values would be stored \
     with every trace — set it to false (Beyla's default) or remove it";

/// Applies the `beyla:` mapping `node` to `cfg`.
pub(crate) fn apply(f: &FileCtx, node: &Node, cfg: &mut BeylaConfig) -> Result<(), ConfigError> {
    for (key, v) in f.mapping(node, P, BEYLA_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "enabled" => cfg.enabled = f.boolean(v, &k)?,
            "binary" => cfg.binary = Some(f.path_value(v, &k)?),
            "discovery" => {
                for (key, v) in f.mapping(v, &k, DISCOVERY_KEYS)? {
                    match key.value.as_str() {
                        "services" => cfg.services = services(f, v, &f.join(&k, key))?,
                        _ => return Err(f.unknown(key, &k, DISCOVERY_KEYS, None)),
                    }
                }
            }
            "protocols" => protocols(f, v, &mut cfg.protocols)?,
            "attributes" => {
                cfg.attributes =
                    string_map(f, v, &k, bv::check_attribute_key, bv::check_attribute_value)?;
            }
            "sampling" => {
                for (key, v) in f.mapping(v, &k, SAMPLING_KEYS)? {
                    match key.value.as_str() {
                        "rate" => cfg.sampling_rate = rate(f, v, &f.join(&k, key))?,
                        _ => return Err(f.unknown(key, &k, SAMPLING_KEYS, None)),
                    }
                }
            }
            "limits" => limits(f, v, &mut cfg.limits)?,
            "storage_retention_hours" => {
                let hours = f.count_in(v, &k, 1, MAX_RETENTION_HOURS)?;
                cfg.storage_retention = Duration::from_secs(hours as u64 * 3600);
            }
            "export_interval" => {
                let d = f.duration(v, &k, Duration::from_secs(1))?;
                if d > MAX_EXPORT_INTERVAL {
                    let msg = format!(
                        "{} is too long — must be at most 1m: Coral keeps Beyla's metrics in \
                         1-minute buckets, and an export covering more than a minute cannot \
                         be split between them",
                        values::format_duration(d)
                    );
                    return Err(f.invalid(&k, v, msg));
                }
                cfg.export_interval = d;
            }
            "restart" => restart(f, v, &mut cfg.restart)?,
            "log_level" => cfg.log_level = f.parse(v, &k, str::parse::<BeylaLogLevel>)?,
            _ => return Err(f.unknown(key, P, BEYLA_KEYS, None)),
        }
    }
    Ok(())
}

fn services(f: &FileCtx, node: &Node, key: &str) -> Result<Vec<BeylaService>, ConfigError> {
    f.list(node, key, SERVICES_EXAMPLE)?
        .iter()
        .enumerate()
        .map(|(i, item)| service(f, item, &format!("{key}[{i}]")))
        .collect()
}

fn service(f: &FileCtx, item: &Node, at: &str) -> Result<BeylaService, ConfigError> {
    let mut s = BeylaService::default();
    let mut exe_key: Option<&Key> = None;
    let mut labels_key: Option<&Key> = None;
    for (key, v) in f.mapping(item, at, SERVICE_KEYS)? {
        let k = f.join(at, key);
        match key.value.as_str() {
            "name" => s.name = Some(f.parse(v, &k, bv::check_service_name)?),
            "open_port" => s.open_ports = Some(open_ports(f, v, &k)?),
            "exe_path" | "process_name" => {
                if let Some(first) = exe_key.replace(key) {
                    return Err(both(f, at, first, key, "select by executable path"));
                }
                s.exe_path = Some(if key.value == "exe_path" {
                    f.parse(v, &k, bv::check_glob)?
                } else {
                    f.parse(v, &k, bv::process_name_glob)?
                });
            }
            "k8s_namespace" => s.k8s_namespace = Some(f.parse(v, &k, bv::check_glob)?),
            "k8s_pod_name" => s.k8s_pod_name = Some(f.parse(v, &k, bv::check_glob)?),
            "k8s_pod_label" | "k8s_pod_labels" => {
                if let Some(first) = labels_key.replace(key) {
                    return Err(both(
                        f,
                        at,
                        first,
                        key,
                        "are two spellings of the same setting",
                    ));
                }
                s.k8s_pod_labels = string_map(f, v, &k, bv::check_label_name, bv::check_glob)?;
                if s.k8s_pod_labels.is_empty() {
                    let msg = "is empty — list at least one label, e.g. `{ app: payments }`, \
                               or remove the key"
                        .to_owned();
                    return Err(f.invalid(&k, v, msg));
                }
            }
            _ => return Err(f.unknown(key, at, SERVICE_KEYS, None)),
        }
    }
    let has_selector = s.open_ports.is_some()
        || s.exe_path.is_some()
        || s.k8s_namespace.is_some()
        || s.k8s_pod_name.is_some()
        || !s.k8s_pod_labels.is_empty();
    if !has_selector {
        let msg = format!(
            "has no selector, so it would match no process — add at least one of open_port, \
             exe_path, process_name, k8s_namespace, k8s_pod_name, k8s_pod_label, e.g. \
             {SERVICES_EXAMPLE}"
        );
        return Err(f.invalid(at, item, msg));
    }
    Ok(s)
}

/// "`a` and `b` both …": two keys of one entry that exclude each other.
fn both(f: &FileCtx, at: &str, first: &Key, second: &Key, why: &str) -> ConfigError {
    let msg = format!(
        "`{}` and `{}` {why} — keep only one",
        first.value, second.value
    );
    f.invalid_at(&f.join(at, second), line_of(second), msg)
}

fn open_ports(f: &FileCtx, node: &Node, key: &str) -> Result<crate::PortSet, ConfigError> {
    let bad = |node: &Node, found: &Value| {
        let msg = format!("expected {}, found {}", bv::PORTS_HELP, found.describe());
        f.invalid(key, node, msg)
    };
    let mut ranges = Vec::new();
    let single = std::slice::from_ref(node);
    let items = match &node.value {
        Value::Seq(items) => items.as_slice(),
        _ => single,
    };
    for item in items {
        match &item.value {
            Value::Int(n) => ranges.push(bv::check_port(*n).map_err(|m| f.invalid(key, item, m))?),
            Value::Str(s) => {
                ranges.extend(bv::parse_port_list(s).map_err(|m| f.invalid(key, item, m))?)
            }
            other => return Err(bad(item, other)),
        }
    }
    crate::PortSet::new(ranges).ok_or_else(|| bad(node, &node.value))
}

fn protocols(f: &FileCtx, node: &Node, p: &mut BeylaProtocols) -> Result<(), ConfigError> {
    const K: &str = "beyla.protocols";
    for (key, v) in f.mapping(node, K, PROTOCOL_KEYS)? {
        let k = f.join(K, key);
        match key.value.as_str() {
            "http" => {
                for (key, v) in f.mapping(v, &k, HTTP_KEYS)? {
                    let kk = f.join(&k, key);
                    match key.value.as_str() {
                        "enabled" => p.http.enabled = f.boolean(v, &kk)?,
                        "route_patterns" => {
                            let example = "[\"/api/v1/users/:id\", \"/orders/{id}\"]";
                            p.http.route_patterns = f
                                .list(v, &kk, example)?
                                .iter()
                                .enumerate()
                                .map(|(i, item)| {
                                    f.parse(item, &format!("{kk}[{i}]"), bv::check_route)
                                })
                                .collect::<Result<_, _>>()?;
                        }
                        "capture_headers" => {
                            if f.boolean(v, &kk)? {
                                return Err(f.invalid(&kk, v, NO_HEADER_CAPTURE.to_owned()));
                            }
                        }
                        "unmatched_routes" => {
                            p.http.unmatched_routes =
                                f.parse(v, &kk, str::parse::<UnmatchedRoutes>)?;
                        }
                        _ => return Err(f.unknown(key, &k, HTTP_KEYS, None)),
                    }
                }
            }
            "sql" => {
                for (key, v) in f.mapping(v, &k, SQL_KEYS)? {
                    let kk = f.join(&k, key);
                    match key.value.as_str() {
                        "enabled" => p.sql.enabled = f.boolean(v, &kk)?,
                        "obfuscate_queries" => p.sql.obfuscate_queries = f.boolean(v, &kk)?,
                        _ => return Err(f.unknown(key, &k, SQL_KEYS, None)),
                    }
                }
            }
            name => {
                let slot = match name {
                    "grpc" => &mut p.grpc,
                    "kafka" => &mut p.kafka,
                    "redis" => &mut p.redis,
                    _ => return Err(f.unknown(key, K, PROTOCOL_KEYS, None)),
                };
                for (key, v) in f.mapping(v, &k, ENABLED_KEYS)? {
                    match key.value.as_str() {
                        "enabled" => *slot = f.boolean(v, &f.join(&k, key))?,
                        _ => return Err(f.unknown(key, &k, ENABLED_KEYS, None)),
                    }
                }
            }
        }
    }
    Ok(())
}

fn limits(f: &FileCtx, node: &Node, l: &mut BeylaLimits) -> Result<(), ConfigError> {
    const K: &str = "beyla.limits";
    for (key, v) in f.mapping(node, K, LIMITS_KEYS)? {
        let k = f.join(K, key);
        match key.value.as_str() {
            "max_routes_per_service" => l.max_routes_per_service = f.count(v, &k, 1)?,
            "wakeup_len" => l.wakeup_len = Some(f.count_in(v, &k, 1, 1 << 20)?),
            "max_traced_connections" => {
                return Err(f.invalid_at(&k, line_of(key), NO_CONNECTION_LIMIT.to_owned()));
            }
            "ring_buffer_size" => {
                return Err(f.invalid_at(&k, line_of(key), NO_RING_BUFFER_SIZE.to_owned()));
            }
            _ => return Err(f.unknown(key, K, LIMITS_KEYS, None)),
        }
    }
    Ok(())
}

fn restart(f: &FileCtx, node: &Node, r: &mut BeylaRestart) -> Result<(), ConfigError> {
    const K: &str = "beyla.restart";
    let mut backoff_at = None;
    for (key, v) in f.mapping(node, K, RESTART_KEYS)? {
        let k = f.join(K, key);
        match key.value.as_str() {
            "max_rapid_failures" => {
                r.max_rapid_failures = f.count_in(v, &k, 1, 1000)? as u32;
            }
            "backoff_initial" => {
                r.backoff_initial = f.duration(v, &k, Duration::from_millis(10))?;
                backoff_at = Some((k, v));
            }
            "backoff_max" => {
                r.backoff_max = f.duration(v, &k, Duration::from_millis(10))?;
                backoff_at = Some((k, v));
            }
            "stable_after" => r.stable_after = f.duration(v, &k, Duration::from_secs(1))?,
            "stop_timeout" => r.stop_timeout = f.duration(v, &k, Duration::from_millis(100))?,
            _ => return Err(f.unknown(key, K, RESTART_KEYS, None)),
        }
    }
    // Report an inconsistency at the later of the two settings.
    if let Some((key, v)) = backoff_at.filter(|_| r.backoff_max < r.backoff_initial) {
        let msg = format!(
            "`{K}.backoff_max` ({}) is shorter than `{K}.backoff_initial` ({}) — the delay \
             starts at backoff_initial and doubles up to backoff_max",
            values::format_duration(r.backoff_max),
            values::format_duration(r.backoff_initial)
        );
        return Err(f.invalid(&key, v, msg));
    }
    Ok(())
}

/// A sampling fraction in (0, 1].
pub(crate) fn rate(f: &FileCtx, node: &Node, key: &str) -> Result<f64, ConfigError> {
    let rate = match node.value {
        Value::Float(x) => x,
        Value::Int(n) => n as f64,
        ref other => {
            let msg = format!(
                "expected a number greater than 0 and at most 1, e.g. 0.25, found {}",
                other.describe()
            );
            return Err(f.invalid(key, node, msg));
        }
    };
    bv::check_trace_rate(rate).map_err(|m| f.invalid(key, node, m))
}

/// A mapping of strings to strings, keys and values checked.
fn string_map(
    f: &FileCtx,
    node: &Node,
    key: &str,
    check_key: fn(&str) -> Result<String, String>,
    check_value: fn(&str) -> Result<String, String>,
) -> Result<BTreeMap<String, String>, ConfigError> {
    let entries = match &node.value {
        Value::Map(entries) => entries.as_slice(),
        Value::Null => &[],
        other => {
            let msg = format!(
                "expected a mapping of names to text values, e.g. `{{ environment: production }}`, \
                 found {}",
                other.describe()
            );
            return Err(f.invalid(key, node, msg));
        }
    };
    let mut map = BTreeMap::new();
    for (name, v) in entries {
        let k = f.join(key, name);
        let name = check_key(&name.value).map_err(|m| f.invalid_at(&k, line_of(name), m))?;
        let value = f.parse(v, &k, check_value)?;
        map.insert(name, value);
    }
    Ok(map)
}
