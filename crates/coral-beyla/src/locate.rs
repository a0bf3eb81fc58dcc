//! Finding the `beyla` binary, and asking it for its version.
//!
//! The search order, first match wins:
//!
//! 1. `BEYLA_PATH` (environment), when set and not empty;
//! 2. `beyla.binary` from the agent configuration;
//! 3. `$CORAL_HOME/bin/beyla` (where `coral beyla install` puts it);
//! 4. each directory of `$PATH`, in order.
//!
//! An explicit choice (1 or 2) that names a missing or non-executable file is
//! an error naming that file: an operator who pointed at a binary wants to
//! know it is wrong, not to silently run some other `beyla`. Steps 3 and 4 are
//! a search: misses there fall through, and [`LocateError::NotFound`] lists
//! every place that was looked at, each once (`coral beyla check` prints it;
//! the agent's status uses [`LocateError::short_reason`]).
//!
//! [`locate`] is a pure function over a [`Search`] (no environment access), so
//! it is tested with injected inputs; [`Search::from_env`] reads the real
//! environment. Empty `$PATH` entries (which POSIX reads as "the current
//! directory") are skipped on purpose: an agent running with elevated
//! privileges must not execute whatever `beyla` sits in its working directory.

use std::ffi::OsString;
use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use tokio::process::Command;

/// How long [`version`] waits for each attempt.
pub const VERSION_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a binary was found (or was looked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The `BEYLA_PATH` environment variable.
    EnvBeylaPath,
    /// `beyla.binary` in the agent configuration.
    Configured,
    /// `$CORAL_HOME/bin/beyla`.
    CoralHome,
    /// A directory of `$PATH`.
    PathVar,
}

impl Source {
    /// A short label for logs and status output.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::EnvBeylaPath => "BEYLA_PATH",
            Source::Configured => "beyla.binary",
            Source::CoralHome => "$CORAL_HOME/bin",
            Source::PathVar => "$PATH",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inputs of a search; see the module docs for the order.
#[derive(Debug, Clone, Default)]
pub struct Search {
    /// The value of `BEYLA_PATH`, if set. An empty path counts as unset.
    pub beyla_path: Option<PathBuf>,
    /// `beyla.binary` from the agent configuration, if set.
    pub configured: Option<PathBuf>,
    /// `$CORAL_HOME` (default `~/.coral`).
    pub coral_home: PathBuf,
    /// The value of `$PATH`, if set.
    pub path_var: Option<OsString>,
}

impl Search {
    /// A search over the real environment (`BEYLA_PATH`, `PATH`) plus the
    /// configured binary and `$CORAL_HOME` the caller already resolved.
    pub fn from_env(configured: Option<PathBuf>, coral_home: PathBuf) -> Self {
        Search {
            beyla_path: std::env::var_os("BEYLA_PATH").map(PathBuf::from),
            configured,
            coral_home,
            path_var: std::env::var_os("PATH"),
        }
    }
}

/// A binary that was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The path to execute.
    pub path: PathBuf,
    /// Which step of the search found it.
    pub source: Source,
}

/// Why no usable binary was found.
#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    /// An explicitly chosen binary (`BEYLA_PATH` or `beyla.binary`) is unusable.
    #[error(
        "the Beyla binary chosen by {origin} ({path}) {problem}; fix {origin} to name an \
         executable `beyla`, or unset it to search $CORAL_HOME/bin and $PATH"
    )]
    Unusable {
        /// Which setting chose it.
        origin: Source,
        /// The path it named.
        path: PathBuf,
        /// What is wrong, e.g. "does not exist".
        problem: String,
    },
    /// Nothing was found anywhere.
    #[error(
        "no Beyla binary found; searched {}. Install one with `coral beyla install \
         beyla-linux-<arch>-<tag>.tar.gz`, or set BEYLA_PATH or beyla.binary",
        display_paths(.searched)
    )]
    NotFound {
        /// Every path that was looked at, in order.
        searched: Vec<PathBuf>,
    },
}

impl LocateError {
    /// The reason in a few words, for status lines that are shown often (the
    /// `coral up` banner, `coral agents`): "not installed — `coral beyla
    /// install`" when nothing was found (the list of places searched is for
    /// `coral beyla check`), the full message otherwise (it names one file).
    pub fn short_reason(&self) -> String {
        match self {
            LocateError::NotFound { .. } => "not installed — `coral beyla install`".to_owned(),
            other => other.to_string(),
        }
    }
}

fn display_paths(paths: &[PathBuf]) -> String {
    let parts: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    parts.join(", ")
}

/// Finds the Beyla binary; see the module docs for the order and the rules.
pub fn locate(search: &Search) -> Result<Found, LocateError> {
    let explicit = [
        (Source::EnvBeylaPath, search.beyla_path.as_ref()),
        (Source::Configured, search.configured.as_ref()),
    ];
    for (origin, path) in explicit {
        let Some(path) = path.filter(|p| !p.as_os_str().is_empty()) else {
            continue;
        };
        return match check_executable(path) {
            Ok(()) => Ok(Found {
                path: path.clone(),
                source: origin,
            }),
            Err(problem) => Err(LocateError::Unusable {
                origin,
                path: path.clone(),
                problem,
            }),
        };
    }

    let mut searched = Vec::new();
    let home = search.coral_home.join("bin").join("beyla");
    if check_executable(&home).is_ok() {
        return Ok(Found {
            path: home,
            source: Source::CoralHome,
        });
    }
    searched.push(home);

    if let Some(path_var) = &search.path_var {
        for dir in std::env::split_paths(path_var) {
            if dir.as_os_str().is_empty() {
                continue;
            }
            let candidate = dir.join("beyla");
            // A directory listed twice in $PATH (or $CORAL_HOME/bin on it)
            // is looked at once.
            if searched.contains(&candidate) {
                continue;
            }
            if check_executable(&candidate).is_ok() {
                return Ok(Found {
                    path: candidate,
                    source: Source::PathVar,
                });
            }
            searched.push(candidate);
        }
    }
    Err(LocateError::NotFound { searched })
}

/// `Ok` when `path` is a regular file (after following symlinks) with an
/// execute bit; otherwise what is wrong with it, phrased to follow the path.
fn check_executable(path: &Path) -> Result<(), String> {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("does not exist".to_owned());
        }
        Err(e) => return Err(format!("cannot be read ({e})")),
    };
    if !meta.is_file() {
        return Err("is not a regular file".to_owned());
    }
    if meta.permissions().mode() & 0o111 == 0 {
        return Err(format!(
            "is not executable (mode {:o}; run `chmod 755` on it)",
            meta.permissions().mode() & 0o7777
        ));
    }
    Ok(())
}

/// Asks the binary for its version: runs `path --version`, then
/// `path -version`, each with [`VERSION_TIMEOUT`], and returns the first
/// version found in either's output (e.g. `v2.7.8`, as printed).
///
/// Released Beyla has no version flag: it logs a banner
/// (`msg="Grafana Beyla" Version=v2.7.8 Revision=…`) on stdout, then rejects
/// the unknown flag with exit code 2. So any exit *code* is accepted as long
/// as the output holds a version; a run killed by a signal or timing out is
/// not. `None` when nothing works: the version is informational, never an
/// error.
pub async fn version(path: &Path) -> Option<String> {
    for flag in ["--version", "-version"] {
        let mut cmd = Command::new(path);
        cmd.arg(flag)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let Ok(child) = spawn_retrying(&mut cmd).await else {
            return None;
        };
        let output = match tokio::time::timeout(VERSION_TIMEOUT, child.wait_with_output()).await {
            Ok(Ok(output)) if output.status.code().is_some() => output,
            _ => continue,
        };
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        if let Some(v) = parse_version(&text) {
            return Some(v);
        }
    }
    None
}

/// Spawns `cmd`, retrying briefly on `ETXTBSY`: the binary was just written
/// (an install), or a concurrent fork in this process briefly holds a write
/// handle to it.
pub(crate) async fn spawn_retrying(cmd: &mut Command) -> std::io::Result<tokio::process::Child> {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Err(e)
                if e.raw_os_error() == Some(nix::errno::Errno::ETXTBSY as i32) && attempts < 10 =>
            {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => return other,
        }
    }
}

/// The version in a program's output, as printed (`v2.7.8`, `3.0.0-rc.1`).
///
/// In order: the token after a word "version" (`Version=v2.7.8`,
/// `version: 1.9.0`, `beyla version 1.9.0`); an output that is just a
/// version; the first version-looking token on a line naming Beyla. Tokens
/// glued to other text (`go1.22.1`, times like `10:00:00.000`) do not count.
pub fn parse_version(text: &str) -> Option<String> {
    const TOKEN: &str = r"v?[0-9]+\.[0-9]+(?:\.[0-9]+)?(?:-[0-9A-Za-z.-]*[0-9A-Za-z])?(?:\+[0-9A-Za-z.-]*[0-9A-Za-z])?";
    static AFTER_WORD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(r#"(?i)\bversion["']?\s*[:=]?\s*["']?({TOKEN})\b"#))
            .expect("version regex is valid")
    });
    static ALONE: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(&format!(r"^({TOKEN})$")).expect("version regex is valid"));
    static LOOSE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(&format!(r#"(?:^|[\s="'(])({TOKEN})(?:$|[\s"'),;])"#))
            .expect("version regex is valid")
    });
    if let Some(c) = AFTER_WORD.captures(text) {
        return Some(c[1].to_owned());
    }
    if let Some(c) = ALONE.captures(text.trim()) {
        return Some(c[1].to_owned());
    }
    text.lines()
        .filter(|l| l.to_ascii_lowercase().contains("beyla"))
        .find_map(|l| LOOSE.captures(l).map(|c| c[1].to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_found_in_banners() {
        assert_eq!(
            parse_version("Beyla version: v2.7.8 (built with go1.22.1)").as_deref(),
            Some("v2.7.8")
        );
        assert_eq!(parse_version("3.1.0-rc.1\n").as_deref(), Some("3.1.0-rc.1"));
        assert_eq!(
            parse_version("go1.22\nbeyla version 1.9.0 abcdef").as_deref(),
            Some("1.9.0")
        );
        assert_eq!(parse_version("usage: beyla [flags]"), None);
        // The banner released Beyla logs before rejecting an unknown flag.
        let banner = "time=2025-03-19T10:00:00.000Z level=INFO msg=\"Grafana Beyla\" \
                      Version=v2.7.8 Revision=5a3c0f1 \"OpenTelemetry SDK Version\"=1.35.0\n\
                      flag provided but not defined: -version\n";
        assert_eq!(parse_version(banner).as_deref(), Some("v2.7.8"));
        assert_eq!(
            parse_version("Grafana Beyla v3.2.1 (linux/amd64)").as_deref(),
            Some("v3.2.1")
        );
        assert_eq!(parse_version("time=10:00:00.000 beyla starting"), None);
    }

    #[test]
    fn each_place_is_searched_and_listed_once_and_the_status_reason_is_short() {
        let dir = std::env::temp_dir().join(format!("coral-locate-{}", std::process::id()));
        let home_bin = dir.join("home/bin");
        let other = dir.join("other");
        let path_var = std::env::join_paths([&other, &home_bin, &other]).unwrap();
        let err = locate(&Search {
            coral_home: dir.join("home"),
            path_var: Some(path_var),
            ..Search::default()
        })
        .unwrap_err();
        let LocateError::NotFound { searched } = &err else {
            panic!("{err}");
        };
        assert_eq!(searched, &[home_bin.join("beyla"), other.join("beyla")]);
        assert_eq!(err.short_reason(), "not installed — `coral beyla install`");
        let unusable = LocateError::Unusable {
            origin: Source::Configured,
            path: dir.join("beyla"),
            problem: "does not exist".into(),
        };
        assert_eq!(unusable.short_reason(), unusable.to_string());
    }
}
