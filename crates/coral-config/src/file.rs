//! Applies a parsed YAML document to the configuration, checking every key.
//!
//! Unknown keys are rejected at every level (the equivalent of serde's
//! `deny_unknown_fields`), with the full dotted key path, the line, the
//! accepted keys and a spelling suggestion.

use std::path::Path;
use std::time::Duration;

use crate::build::{ADMIN_KEY, API_KEY, Builder, GRPC_KEY, HTTP_KEY, Origin};
use crate::error::closest;
use crate::types::{AgentMode, LogFormat};
use crate::yaml::{Key, Node, Value, line_of};
use crate::{ConfigError, duration, filters, parse_duration, values};

const ROOT_KEYS: &[&str] = &["agent"];
const AGENT_KEYS: &[&str] = &[
    "id",
    "data_dir",
    "mode",
    "telemetry",
    "api",
    "admin",
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
];
const AGGREGATION_KEYS: &[&str] = &["flush_grace", "max_operations_per_service", "max_services"];
const ENDPOINT_KEYS: &[&str] = &["endpoint"];
const STORAGE_KEYS: &[&str] = &["retention", "cleanup_interval"];
const LOG_KEYS: &[&str] = &["format", "level"];

/// Applies the document `root`, read from `path`, to `b`.
pub(crate) fn apply(b: &mut Builder, root: &Node, path: &Path) -> Result<(), ConfigError> {
    let f = FileCtx { path };
    for (key, value) in f.mapping(root, "", ROOT_KEYS)? {
        match key.value.as_str() {
            "agent" => agent(&f, b, value)?,
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
            "api" => endpoint_section(f, b, v, "agent.api", API_KEY)?,
            "admin" => endpoint_section(f, b, v, "agent.admin", ADMIN_KEY)?,
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

fn storage(f: &FileCtx, b: &mut Builder, node: &Node) -> Result<(), ConfigError> {
    const P: &str = "agent.storage";
    let one_ms = Duration::from_millis(1);
    for (key, v) in f.mapping(node, P, STORAGE_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "retention" => b.cfg.storage.retention = f.duration(v, &k, one_ms)?,
            "cleanup_interval" => b.cfg.storage.cleanup_interval = f.duration(v, &k, one_ms)?,
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

/// Error construction and typed access for values of one file.
pub(crate) struct FileCtx<'a> {
    path: &'a Path,
}

impl FileCtx<'_> {
    /// `parent.key`, or `key` at the top level.
    fn join(&self, parent: &str, key: &Key) -> String {
        if parent.is_empty() {
            key.value.clone()
        } else {
            format!("{parent}.{}", key.value)
        }
    }

    /// An invalid-value error at `key`, pointing at `node`'s line.
    pub(crate) fn invalid(&self, key: &str, node: &Node, message: String) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            line: line_of(node),
            message,
        }
    }

    /// An unknown-key error for `key` under `parent`.
    fn unknown(
        &self,
        key: &Key,
        parent: &str,
        expected: &[&'static str],
        hint: Option<String>,
    ) -> ConfigError {
        ConfigError::UnknownKey {
            path: self.path.to_path_buf(),
            key: self.join(parent, key),
            line: line_of(key),
            expected: expected.to_vec(),
            suggestion: hint.or_else(|| closest(&key.value, expected).map(str::to_owned)),
        }
    }

    /// The entries of a mapping (an empty value counts as an empty mapping).
    fn mapping<'n>(
        &self,
        node: &'n Node,
        key: &str,
        expected: &[&str],
    ) -> Result<&'n [(Key, Node)], ConfigError> {
        match &node.value {
            Value::Map(entries) => Ok(entries),
            Value::Null => Ok(&[]),
            other => {
                let at = if key.is_empty() { "(top level)" } else { key };
                let msg = format!(
                    "expected a mapping with keys {}, found {}",
                    expected.join(", "),
                    other.describe()
                );
                Err(self.invalid(at, node, msg))
            }
        }
    }

    /// A string value passed through `check`.
    pub(crate) fn parse<T>(
        &self,
        node: &Node,
        key: &str,
        check: impl FnOnce(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match &node.value {
            Value::Str(s) => check(s).map_err(|msg| self.invalid(key, node, msg)),
            other => Err(self.invalid(key, node, expected_string(other))),
        }
    }

    /// `true` or `false`.
    fn boolean(&self, node: &Node, key: &str) -> Result<bool, ConfigError> {
        match &node.value {
            Value::Bool(b) => Ok(*b),
            other => Err(self.invalid(
                key,
                node,
                format!("expected true or false, found {}", other.describe()),
            )),
        }
    }

    /// A whole number ≥ `min`.
    fn count(&self, node: &Node, key: &str, min: usize) -> Result<usize, ConfigError> {
        match &node.value {
            Value::Int(n) => values::check_count(*n, min).map_err(|m| self.invalid(key, node, m)),
            other => Err(self.invalid(
                key,
                node,
                format!(
                    "expected a whole number ≥ {min}, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// A byte count: a whole number, or a string such as `"16MiB"`.
    fn byte_size(&self, node: &Node, key: &str) -> Result<usize, ConfigError> {
        match &node.value {
            Value::Str(_) => {
                let bytes = self.parse(node, key, duration::parse_byte_size)?;
                values::check_count(bytes as i128, 1).map_err(|m| self.invalid(key, node, m))
            }
            _ => self.count(node, key, 1),
        }
    }

    /// A duration string such as `"30s"`, or a whole number of seconds; at least `min`.
    fn duration(&self, node: &Node, key: &str, min: Duration) -> Result<Duration, ConfigError> {
        let d = match &node.value {
            Value::Str(_) => self.parse(node, key, parse_duration)?,
            Value::Int(n) if *n >= 0 => u64::try_from(*n)
                .map(Duration::from_secs)
                .map_err(|_| self.invalid(key, node, format!("{n} seconds is too large")))?,
            other => {
                let msg = format!(
                    "expected a duration such as \"500ms\", \"30s\", \"5m\", \"1h\", \"2d\" or a \
                     whole number of seconds, found {}",
                    other.describe()
                );
                return Err(self.invalid(key, node, msg));
            }
        };
        if d < min {
            return Err(self.invalid(key, node, "must be longer than 0".to_owned()));
        }
        Ok(d)
    }
}

/// "expected a string, found …" with a quoting hint for numbers and booleans.
fn expected_string(found: &Value) -> String {
    match found {
        Value::Null => "has no value — set it or remove the key to use the default".to_owned(),
        Value::Bool(_) | Value::Int(_) | Value::Float(_) => format!(
            "expected a string, found {} — put it in quotes if it is meant as text",
            found.describe()
        ),
        other => format!("expected a string, found {}", other.describe()),
    }
}
