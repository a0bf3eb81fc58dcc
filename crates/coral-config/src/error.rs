//! [`ConfigError`]: every way loading the agent or colony configuration can fail.
//!
//! Each message says what happened, where (file and dotted key path with the
//! line number, environment variable, or flag) and what to do about it.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// An error loading or validating the Coral configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file could not be read.
    #[error(
        "cannot read config file {}: {source} — check the path and its permissions",
        path.display()
    )]
    Read {
        /// The file that was being read.
        path: PathBuf,
        /// The operating-system error.
        source: std::io::Error,
    },

    /// The file is not well-formed YAML.
    #[error(
        "invalid config {}: YAML syntax error{}: {message} — fix the YAML syntax",
        path.display(),
        Position(*line, *column)
    )]
    Syntax {
        /// The file (or origin name) being parsed.
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<u64>,
        /// 1-based column of the problem, when known.
        column: Option<u64>,
        /// The parser's description of the problem.
        message: String,
    },

    /// A key that the schema does not know (usually a misspelling).
    #[error(
        "invalid config {}: unknown key `{key}`{}; {}expected one of: {} — fix the spelling or remove it",
        path.display(),
        Position(*line, None),
        Suggestion(suggestion.as_deref()),
        expected.join(", ")
    )]
    UnknownKey {
        /// The file (or origin name) being parsed.
        path: PathBuf,
        /// Full dotted key path, e.g. `agent.telemetry.filtres`.
        key: String,
        /// 1-based line of the key, when known.
        line: Option<u64>,
        /// The keys accepted at that level.
        expected: Vec<&'static str>,
        /// The closest accepted key (or other hint), if any.
        suggestion: Option<String>,
    },

    /// A key has a value of the wrong type or outside its accepted range.
    #[error(
        "invalid config {}: `{key}`{}: {message}",
        path.display(),
        Position(*line, None)
    )]
    InvalidValue {
        /// The file (or origin name) being parsed.
        path: PathBuf,
        /// Full dotted key path, e.g. `agent.telemetry.filters[1]`.
        key: String,
        /// 1-based line of the value, when known.
        line: Option<u64>,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// An environment variable has an invalid value.
    #[error("invalid environment variable {var}={value:?}: {message}")]
    Env {
        /// The variable name, e.g. `CORAL_OTLP_GRPC_ENDPOINT`.
        var: &'static str,
        /// The rejected value.
        value: String,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// A command-line flag has an invalid value.
    #[error("invalid flag {flag}: {message}")]
    Flag {
        /// The flag, e.g. `--agent-id`.
        flag: &'static str,
        /// What is wrong and what is accepted.
        message: String,
    },

    /// Two listeners were configured on the same address.
    #[error(
        "conflicting listen addresses: {first} and {second} are both {addr} — give each listener its own port (or port 0 to pick a free one)"
    )]
    EndpointConflict {
        /// Where the first endpoint was set (key and source).
        first: String,
        /// Where the second endpoint was set (key and source).
        second: String,
        /// The shared address.
        addr: SocketAddr,
    },

    /// No data directory was configured and none could be derived.
    #[error(
        "cannot determine the agent data directory: neither CORAL_HOME nor HOME is set — set `agent.data_dir` in the config file, CORAL_DATA_DIR, --data-dir, or CORAL_HOME"
    )]
    NoDataDir,

    /// No colony data directory was configured and none could be derived.
    #[error(
        "cannot determine the colony data directory: neither CORAL_HOME nor HOME is set — set `colony.data_dir` in the config file, CORAL_COLONY_DATA_DIR, --data-dir, or CORAL_HOME"
    )]
    NoColonyDataDir,
}

impl ConfigError {
    /// The dotted key path the error is about, for file errors that have one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. } | ConfigError::InvalidValue { key, .. } => {
                Some(key)
            }
            _ => None,
        }
    }

    /// The 1-based line in the file the error is about, when known.
    pub fn line(&self) -> Option<u64> {
        match self {
            ConfigError::Syntax { line, .. }
            | ConfigError::UnknownKey { line, .. }
            | ConfigError::InvalidValue { line, .. } => *line,
            _ => None,
        }
    }
}

/// Renders ` (line L)` / ` at line L, column C`, or nothing when unknown.
struct Position(Option<u64>, Option<u64>);

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (Some(line), Some(column)) => write!(f, " at line {line}, column {column}"),
            (Some(line), None) => write!(f, " (line {line})"),
            _ => Ok(()),
        }
    }
}

/// Renders `did you mean `x`? ` or nothing.
struct Suggestion<'a>(Option<&'a str>);

impl fmt::Display for Suggestion<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "did you mean `{s}`? "),
            None => Ok(()),
        }
    }
}

/// The accepted key closest to `unknown`, if it is plausibly a misspelling.
pub(crate) fn closest<'a>(unknown: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let unknown = unknown.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (edit_distance(&unknown, c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Damerau-style (optimal string alignment) edit distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_keys_only() {
        let keys = ["enabled", "endpoint", "filters", "scrub_attributes"];
        assert_eq!(closest("filtres", &keys), Some("filters"));
        assert_eq!(closest("Endpont", &keys), Some("endpoint"));
        assert_eq!(closest("zzz", &keys), None);
    }

    #[test]
    fn position_renders_line_and_column() {
        assert_eq!(
            Position(Some(3), Some(7)).to_string(),
            " at line 3, column 7"
        );
        assert_eq!(Position(Some(3), None).to_string(), " (line 3)");
        assert_eq!(Position(None, None).to_string(), "");
    }
}
