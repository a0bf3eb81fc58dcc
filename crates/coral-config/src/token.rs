//! Shared-secret tokens: `token` (inline) or `token_file` (read at load,
//! trimmed), overridden by `CORAL_TOKEN` and `--token`.
//!
//! A token file named in the config is only read when no environment
//! variable or flag overrides the token. Token values never appear in
//! error messages.

use std::path::{Path, PathBuf};

use crate::ConfigError;
use crate::ctx::FileCtx;
use crate::values;
use crate::yaml::{Node, line_of};

/// Where the token comes from, before it is resolved.
#[derive(Debug, Clone)]
pub(crate) enum TokenSource {
    /// An inline, already-checked token.
    Value(String),
    /// A file to read, named at `key` on `line` of the config file.
    File {
        /// The token file, as written.
        path: PathBuf,
        /// Dotted key of the setting, e.g. `agent.colony.token_file`.
        key: String,
        /// Line of the setting.
        line: Option<u64>,
    },
}

/// Parses the `token` / `token_file` pair of one section (`prefix` is the
/// section's dotted path); both set is an error.
pub(crate) fn from_file(
    f: &FileCtx,
    prefix: &str,
    token: Option<&Node>,
    token_file: Option<&Node>,
) -> Result<Option<TokenSource>, ConfigError> {
    match (token, token_file) {
        (Some(t), Some(file)) => {
            let line = line_of(t)
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            let msg = format!(
                "both `{prefix}.token`{line} and `{prefix}.token_file` are set — set only one: \
                 the token itself, or a file containing it"
            );
            Err(f.invalid(&format!("{prefix}.token_file"), file, msg))
        }
        (Some(t), None) => {
            let key = format!("{prefix}.token");
            Ok(Some(TokenSource::Value(f.parse(
                t,
                &key,
                values::check_token,
            )?)))
        }
        (None, Some(file)) => {
            let key = format!("{prefix}.token_file");
            let path = f.path_value(file, &key)?;
            Ok(Some(TokenSource::File {
                path,
                key,
                line: line_of(file),
            }))
        }
        (None, None) => Ok(None),
    }
}

/// Resolves the final token, reading a token file if that is the source.
/// `origin` is the config file (for errors about the token file).
pub(crate) fn resolve(
    source: Option<TokenSource>,
    origin: Option<&Path>,
) -> Result<Option<String>, ConfigError> {
    let (path, key, line) = match source {
        None => return Ok(None),
        Some(TokenSource::Value(token)) => return Ok(Some(token)),
        Some(TokenSource::File { path, key, line }) => (path, key, line),
    };
    let invalid = |message: String| ConfigError::InvalidValue {
        path: origin.map_or_else(|| PathBuf::from("(config)"), Path::to_path_buf),
        key: key.clone(),
        line,
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|err| {
        invalid(format!(
            "cannot read token file {}: {err}{} — check the path and its permissions",
            path.display(),
            crate::tls::relative_note(&path)
        ))
    })?;
    values::check_token(&text)
        .map(Some)
        .map_err(|msg| invalid(format!("token file {}: {msg}", path.display())))
}
