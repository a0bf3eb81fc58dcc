//! The colony's storage engine: `storage.engine` (`duckdb` or `clickhouse`)
//! and the ClickHouse settings `storage.url`, `database`, `user`,
//! `password_file` and `cluster`, from the file and the `CORAL_STORAGE_*`
//! variables.
//!
//! Each value is checked where it is set. Whether the settings fit together
//! (ClickHouse needs a URL; DuckDB takes none of them) is checked once every
//! layer is applied, and only then is the password file read, so a file
//! named in the config is not read when `CORAL_STORAGE_PASSWORD_FILE`
//! overrides it. The password never appears in errors.

use std::path::{Path, PathBuf};

use crate::colony::{ClickHouseStorage, StorageEngine};
use crate::ctx::FileCtx;
use crate::yaml::{Key, Node, line_of};
use crate::{ConfigError, dial, tls, values};

/// The section these keys live in.
const P: &str = "storage";
/// The example in errors about `storage.url`.
const URL_EXAMPLE: &str = "http://127.0.0.1:8123";
/// Longest database or cluster name.
const MAX_IDENTIFIER: usize = 64;
/// `storage.database` when not set.
const DEFAULT_DATABASE: &str = "coral";
/// `storage.user` when not set.
const DEFAULT_USER: &str = "default";

/// The value of `storage.engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Engine {
    /// `duckdb`
    DuckDb,
    /// `clickhouse`
    ClickHouse,
}

/// Where a storage setting was made, for errors found after all layers.
#[derive(Debug, Clone)]
pub(crate) enum SetBy {
    /// The config file, at `key` on `line`.
    File {
        /// Dotted key, e.g. `storage.url`.
        key: String,
        /// Line of the value.
        line: Option<u64>,
    },
    /// An environment variable.
    Env {
        /// The variable, e.g. `CORAL_STORAGE_URL`.
        var: &'static str,
        /// Its value as written (never a secret).
        value: String,
        /// The key it overrides, e.g. `storage.url`.
        key: &'static str,
    },
}

/// A setting's value and where it was made.
#[derive(Debug, Clone)]
pub(crate) struct Set<T> {
    /// The checked value.
    pub(crate) value: T,
    /// Where it was set.
    pub(crate) by: SetBy,
}

impl<T> Set<T> {
    /// `value`, set by environment variable `var` (written as `raw`), which
    /// overrides `key`.
    pub(crate) fn env(value: T, var: &'static str, raw: &str, key: &'static str) -> Set<T> {
        let by = SetBy::Env {
            var,
            value: raw.to_owned(),
            key,
        };
        Set { value, by }
    }
}

/// The storage settings so far; later layers replace earlier ones.
#[derive(Debug, Default)]
pub(crate) struct StorageDraft {
    /// `storage.engine`; `None` = DuckDB.
    pub(crate) engine: Option<Set<Engine>>,
    /// `storage.url`, normalized.
    pub(crate) url: Option<Set<String>>,
    /// `storage.database`.
    pub(crate) database: Option<Set<String>>,
    /// `storage.user`.
    pub(crate) user: Option<Set<String>>,
    /// `storage.password_file`, not read yet.
    pub(crate) password_file: Option<Set<PathBuf>>,
    /// `storage.cluster`.
    pub(crate) cluster: Option<Set<String>>,
}

/// Applies one key of the file's `storage:` section that is not one of the
/// retention keys; anything else is an unknown key (`expected` lists every
/// key of the section).
pub(crate) fn file_key(
    f: &FileCtx,
    d: &mut StorageDraft,
    key: &Key,
    v: &Node,
    expected: &[&'static str],
) -> Result<(), ConfigError> {
    let k = f.join(P, key);
    let by = SetBy::File {
        key: k.clone(),
        line: line_of(v),
    };
    match key.value.as_str() {
        "engine" => {
            let value = f.parse(v, &k, parse_engine)?;
            d.engine = Some(Set { value, by });
        }
        "url" => {
            d.url = Some(Set {
                value: f.parse(v, &k, parse_url)?,
                by,
            })
        }
        "database" => {
            let value = f.parse(v, &k, check_database)?;
            d.database = Some(Set { value, by });
        }
        "user" => {
            d.user = Some(Set {
                value: f.parse(v, &k, check_user)?,
                by,
            })
        }
        "password_file" => {
            let value = f.path_value(v, &k)?;
            d.password_file = Some(Set { value, by });
        }
        "cluster" => {
            let value = f.parse(v, &k, check_cluster)?;
            d.cluster = Some(Set { value, by });
        }
        _ => return Err(f.unknown(key, P, expected, None)),
    }
    Ok(())
}

/// Parses `storage.engine`: `duckdb` or `clickhouse`.
pub(crate) fn parse_engine(s: &str) -> Result<Engine, String> {
    match s.trim() {
        "duckdb" => Ok(Engine::DuckDb),
        "clickhouse" => Ok(Engine::ClickHouse),
        other => Err(format!(
            "unknown storage engine {other:?}; expected one of: duckdb (the embedded database \
             in `colony.data_dir`, the default), clickhouse (set `storage.url` too)"
        )),
    }
}

/// Parses `storage.url`, ClickHouse's HTTP interface, into
/// `http://host:port` or `https://host:port`. A URL with a user name or
/// password is not echoed in the error.
pub(crate) fn parse_url(s: &str) -> Result<String, String> {
    let text = s.trim();
    let shown = if text.contains('@') {
        "the URL".to_owned()
    } else {
        format!("{text:?}")
    };
    let fail = |reason: &str| {
        format!(
            "{shown} is not a valid ClickHouse URL: {reason} — use the HTTP interface as \
             http://host:port or https://host:port, e.g. \"{URL_EXAMPLE}\""
        )
    };
    let Some((scheme, rest)) = text.split_once("://") else {
        return Err(fail("the scheme is missing"));
    };
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => "http",
        "https" => "https",
        other => {
            return Err(fail(&format!(
                "unsupported scheme `{other}://` (Coral talks to ClickHouse over HTTP, usually \
                 port 8123, or 8443 with TLS)"
            )));
        }
    };
    let rest = rest.trim_end_matches('/');
    if rest.contains('@') {
        return Err(fail(
            "user names and passwords do not belong in the URL (set `storage.user` and \
             `storage.password_file`)",
        ));
    }
    if let Some(i) = rest.find(['/', '?', '#']) {
        return Err(fail(&format!(
            "paths, queries and fragments are not allowed (found `{}`)",
            &rest[i..]
        )));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail("it contains whitespace"));
    }
    let (host, port) = dial::split_host_port(rest).map_err(|reason| fail(&reason))?;
    Ok(format!("{scheme}://{host}:{port}"))
}

/// Checks `storage.database`: a plain identifier.
pub(crate) fn check_database(s: &str) -> Result<String, String> {
    check_identifier(s, "database name", DEFAULT_DATABASE)
}

/// Checks `storage.cluster`: a plain identifier.
pub(crate) fn check_cluster(s: &str) -> Result<String, String> {
    check_identifier(s, "cluster name", "coral_cluster")
}

/// Checks `storage.user`: non-empty, no whitespace or control characters.
pub(crate) fn check_user(s: &str) -> Result<String, String> {
    values::check_id(s.trim(), "ClickHouse user", DEFAULT_USER)
}

/// Checks a ClickHouse name used unquoted in SQL: `[A-Za-z_][A-Za-z0-9_]*`,
/// at most 64 characters.
fn check_identifier(s: &str, what: &str, example: &str) -> Result<String, String> {
    let name = s.trim();
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if name.is_empty() {
        return Err(format!("the {what} must not be empty"));
    }
    if !plain {
        return Err(format!(
            "{name:?} is not a plain identifier — the {what} must start with a letter or `_` \
             and contain only letters, digits and `_`, e.g. \"{example}\""
        ));
    }
    if name.len() > MAX_IDENTIFIER {
        return Err(format!(
            "the {what} is {} characters long — use at most {MAX_IDENTIFIER}",
            name.len()
        ));
    }
    Ok(name.to_owned())
}

impl SetBy {
    /// An error about this setting; `message` follows the key (file) or the
    /// variable (environment). `origin` is the config file.
    fn error(&self, origin: Option<&Path>, message: String) -> ConfigError {
        match self {
            SetBy::File { key, line } => ConfigError::InvalidValue {
                path: origin.map_or_else(|| PathBuf::from("(config)"), Path::to_path_buf),
                key: key.clone(),
                line: *line,
                message,
            },
            SetBy::Env { var, value, .. } => ConfigError::Env {
                var,
                value: value.clone(),
                message,
            },
        }
    }

    /// The key, as a message subject after a variable name ("`storage.url` "),
    /// or nothing when the error already names the key.
    fn subject(&self) -> String {
        match self {
            SetBy::File { .. } => String::new(),
            SetBy::Env { key, .. } => format!("`{key}` "),
        }
    }

    /// How to take the setting back.
    fn undo(&self) -> String {
        match self {
            SetBy::File { key, .. } => format!("remove `{key}`"),
            SetBy::Env { var, .. } => format!("unset {var}"),
        }
    }
}

impl StorageDraft {
    /// The final storage settings: reads the password file and checks that
    /// the settings fit the engine. `origin` is the config file.
    pub(crate) fn resolve(self, origin: Option<&Path>) -> Result<StorageEngine, ConfigError> {
        let StorageDraft {
            engine,
            url,
            database,
            user,
            password_file,
            cluster,
        } = self;
        let engine_by = match engine {
            Some(Set {
                value: Engine::ClickHouse,
                by,
            }) => by,
            duckdb => {
                let clickhouse_only = [
                    url.map(|s| s.by),
                    database.map(|s| s.by),
                    user.map(|s| s.by),
                    password_file.map(|s| s.by),
                    cluster.map(|s| s.by),
                ];
                return match clickhouse_only.into_iter().flatten().next() {
                    Some(by) => Err(duckdb_setting(&by, duckdb.map(|e| e.by), origin)),
                    None => Ok(StorageEngine::DuckDb),
                };
            }
        };
        let url = url.ok_or_else(|| missing_url(&engine_by, origin))?.value;
        let password = match password_file {
            Some(file) => read_password(&file, origin)?,
            None => String::new(),
        };
        Ok(StorageEngine::ClickHouse(ClickHouseStorage {
            url,
            database: database.map_or_else(|| DEFAULT_DATABASE.to_owned(), |s| s.value),
            user: user.map_or_else(|| DEFAULT_USER.to_owned(), |s| s.value),
            password,
            cluster: cluster.map(|s| s.value),
        }))
    }
}

/// A ClickHouse setting (`by`) while the engine is DuckDB (set by `engine`,
/// or the default).
fn duckdb_setting(by: &SetBy, engine: Option<SetBy>, origin: Option<&Path>) -> ConfigError {
    let engine = match engine {
        None => "the default".to_owned(),
        Some(SetBy::File { line: Some(l), .. }) => format!("`storage.engine`, line {l}"),
        Some(SetBy::File { line: None, .. }) => "`storage.engine`".to_owned(),
        Some(SetBy::Env { var, .. }) => format!("from {var}"),
    };
    let message = format!(
        "{}is only read with `storage.engine: clickhouse`, but the engine is duckdb ({engine}) \
         — set `storage.engine: clickhouse` (or CORAL_STORAGE_ENGINE=clickhouse) to store in \
         ClickHouse, or {} to keep the embedded DuckDB",
        by.subject(),
        by.undo()
    );
    by.error(origin, message)
}

/// `storage.engine: clickhouse` (set by `engine`) without `storage.url`.
fn missing_url(engine: &SetBy, origin: Option<&Path>) -> ConfigError {
    match engine {
        SetBy::File { line, .. } => {
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            let missing = SetBy::File {
                key: format!("{P}.url"),
                line: None,
            };
            let message = format!(
                "is required with `storage.engine: clickhouse`{at} — set ClickHouse's HTTP \
                 interface, e.g. `url: {URL_EXAMPLE}` under `storage:` (or CORAL_STORAGE_URL)"
            );
            missing.error(origin, message)
        }
        SetBy::Env { .. } => {
            let message = format!(
                "`storage.url` is required with the clickhouse engine — set CORAL_STORAGE_URL or \
                 `storage.url` in the config file to ClickHouse's HTTP interface, e.g. \
                 {URL_EXAMPLE}"
            );
            engine.error(origin, message)
        }
    }
}

/// Reads the password file: its content without trailing whitespace. The
/// content never appears in errors.
fn read_password(file: &Set<PathBuf>, origin: Option<&Path>) -> Result<String, ConfigError> {
    let path = &file.value;
    let fail = |message: String| file.by.error(origin, message);
    let text = std::fs::read_to_string(path).map_err(|err| {
        fail(format!(
            "cannot read password file {}: {err}{} — check the path and its permissions",
            path.display(),
            tls::relative_note(path)
        ))
    })?;
    let password = text.trim_end();
    if password.is_empty() {
        return Err(fail(format!(
            "password file {} is empty — write the ClickHouse password into it, or {} to \
             connect without a password",
            path.display(),
            file.by.undo()
        )));
    }
    if password.chars().any(char::is_control) {
        return Err(fail(format!(
            "password file {} contains line breaks or other control characters — it must hold \
             only the password (a trailing line break is fine)",
            path.display()
        )));
    }
    Ok(password.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized() {
        let ok = |s: &str| parse_url(s).unwrap();
        assert_eq!(ok("http://127.0.0.1:8123"), "http://127.0.0.1:8123");
        assert_eq!(
            ok(" HTTPS://CH.Internal:8443/ "),
            "https://ch.internal:8443"
        );
        assert_eq!(ok("http://[::1]:8123//"), "http://[::1]:8123");
    }

    #[test]
    fn bad_urls_say_why_and_what_is_accepted() {
        for (input, reason) in [
            ("127.0.0.1:8123", "scheme is missing"),
            ("tcp://h:9000", "unsupported scheme `tcp://`"),
            ("http://:8123", "host is missing"),
            ("http://h", "port is missing"),
            ("http://h:8123/db", "found `/db`"),
            ("http://h:8123?x=1", "found `?x=1`"),
            ("http://h st:1", "whitespace"),
        ] {
            let err = parse_url(input).unwrap_err();
            assert!(err.contains(reason), "{input:?}: {err}");
            assert!(err.contains("http://host:port"), "{input:?}: {err}");
        }
        let err = parse_url("http://u:hunter2@h:8123").unwrap_err();
        assert!(err.contains("storage.password_file"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn identifiers() {
        assert_eq!(check_database(" _coral_2 ").unwrap(), "_coral_2");
        assert!(check_database(&"a".repeat(64)).is_ok());
        assert!(
            check_database(&"a".repeat(65))
                .unwrap_err()
                .contains("at most 64")
        );
        for bad in ["2x", "co-ral", "co ral", "db.t", "ü"] {
            let err = check_cluster(bad).unwrap_err();
            assert!(err.contains("plain identifier"), "{bad}: {err}");
        }
        assert!(
            check_database("")
                .unwrap_err()
                .contains("must not be empty")
        );
        assert!(check_user("a b").unwrap_err().contains("whitespace"));
        assert_eq!(check_user("coral").unwrap(), "coral");
        assert!(parse_engine("sqlite").unwrap_err().contains("duckdb"));
    }
}
