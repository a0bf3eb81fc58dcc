//! [`FileCtx`]: typed access to the values of one YAML file, with errors that
//! name the file, the full dotted key path and the line.
//!
//! Shared by the agent (`file.rs`) and colony (`colony_file.rs`) walkers.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::closest;
use crate::yaml::{Key, Node, Value, line_of};
use crate::{ConfigError, duration, parse_duration, values};

/// Error construction and typed access for values of one file.
pub(crate) struct FileCtx<'a> {
    path: &'a Path,
}

impl<'a> FileCtx<'a> {
    /// A context for the file (or origin name) `path`.
    pub(crate) fn new(path: &'a Path) -> FileCtx<'a> {
        FileCtx { path }
    }
}

impl FileCtx<'_> {
    /// `parent.key`, or `key` at the top level.
    pub(crate) fn join(&self, parent: &str, key: &Key) -> String {
        if parent.is_empty() {
            key.value.clone()
        } else {
            format!("{parent}.{}", key.value)
        }
    }

    /// An invalid-value error at `key`, pointing at `node`'s line.
    pub(crate) fn invalid(&self, key: &str, node: &Node, message: String) -> ConfigError {
        self.invalid_at(key, line_of(node), message)
    }

    /// An invalid-value error at `key` on `line`.
    pub(crate) fn invalid_at(&self, key: &str, line: Option<u64>, message: String) -> ConfigError {
        ConfigError::InvalidValue {
            path: self.path.to_path_buf(),
            key: key.to_owned(),
            line,
            message,
        }
    }

    /// An unknown-key error for `key` under `parent`.
    pub(crate) fn unknown(
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
    pub(crate) fn mapping<'n>(
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

    /// The items of a list (an empty value counts as an empty list);
    /// `example` shows what an item looks like.
    pub(crate) fn list<'n>(
        &self,
        node: &'n Node,
        key: &str,
        example: &str,
    ) -> Result<&'n [Node], ConfigError> {
        match &node.value {
            Value::Seq(items) => Ok(items),
            Value::Null => Ok(&[]),
            other => {
                let msg = format!(
                    "expected a list, e.g. {example}, found {}",
                    other.describe()
                );
                Err(self.invalid(key, node, msg))
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

    /// A file path, taken as written (relative paths are relative to the
    /// process's working directory).
    pub(crate) fn path_value(&self, node: &Node, key: &str) -> Result<PathBuf, ConfigError> {
        self.parse(node, key, |s| {
            if s.trim().is_empty() {
                Err("the path must not be empty".to_owned())
            } else {
                Ok(PathBuf::from(s))
            }
        })
    }

    /// `true` or `false`.
    pub(crate) fn boolean(&self, node: &Node, key: &str) -> Result<bool, ConfigError> {
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
    pub(crate) fn count(&self, node: &Node, key: &str, min: usize) -> Result<usize, ConfigError> {
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

    /// A whole number in `min..=max`.
    pub(crate) fn count_in(
        &self,
        node: &Node,
        key: &str,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        match &node.value {
            Value::Int(n) => {
                values::check_count_in(*n, min, max).map_err(|m| self.invalid(key, node, m))
            }
            other => Err(self.invalid(
                key,
                node,
                format!(
                    "expected a whole number from {min} to {max}, found {}",
                    other.describe()
                ),
            )),
        }
    }

    /// A byte count: a whole number, or a string such as `"16MiB"`.
    pub(crate) fn byte_size(&self, node: &Node, key: &str) -> Result<usize, ConfigError> {
        match &node.value {
            Value::Str(_) => {
                let bytes = self.parse(node, key, duration::parse_byte_size)?;
                values::check_count(bytes as i128, 1).map_err(|m| self.invalid(key, node, m))
            }
            _ => self.count(node, key, 1),
        }
    }

    /// A duration string such as `"30s"`, or a whole number of seconds; at least `min`.
    pub(crate) fn duration(
        &self,
        node: &Node,
        key: &str,
        min: Duration,
    ) -> Result<Duration, ConfigError> {
        self.duration_in(node, key, min, None)
    }

    /// Like [`FileCtx::duration`], also at most `max` when given.
    pub(crate) fn duration_in(
        &self,
        node: &Node,
        key: &str,
        min: Duration,
        max: Option<Duration>,
    ) -> Result<Duration, ConfigError> {
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
        values::check_duration(d, min, max).map_err(|m| self.invalid(key, node, m))
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
