//! `coral colony migrate --to clickhouse URL`: copies a stopped colony's
//! history from its embedded DuckDB file into ClickHouse
//! ([`coral_colony::migrate`]), prints what each table moved, and says how to
//! run the colony on ClickHouse from there on.
//!
//! Settings come from the flags, then the colony config (`--config`, with
//! `CORAL_*` as the colony reads them: its `colony.data_dir` and, when it
//! already names a ClickHouse store, its `storage.*`), then the defaults.

use std::collections::HashMap;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use coral_colony::migrate::{MigrateError, MigrationReport, Options, TableProgress};
use coral_colony::store::clickhouse::{ClickHouse, ClickHouseError, Settings};
use coral_config::{ColonyConfig, ColonyOverrides, StorageEngine};

use crate::output;

/// Options of `coral colony migrate`.
#[derive(Args, Debug, Clone)]
pub struct MigrateArgs {
    /// The store to copy into: clickhouse.
    #[arg(long, value_name = "ENGINE")]
    pub to: String,
    /// ClickHouse's HTTP interface, e.g. http://127.0.0.1:8123 (default:
    /// `storage.url` of --config).
    #[arg(value_name = "URL")]
    pub url: Option<String>,
    /// The colony's configuration file (YAML): its data directory and, if
    /// set, its ClickHouse settings.
    #[arg(long, short = 'c', value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// The colony's data directory, holding colony.duckdb (default: the
    /// config's `colony.data_dir`, else $CORAL_HOME/colony).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The ClickHouse database (default: the config's, else coral).
    #[arg(long, value_name = "NAME")]
    pub database: Option<String>,
    /// The ClickHouse user (default: the config's, else default).
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,
    /// A file holding the ClickHouse password (default: the config's
    /// `storage.password_file`, else no password).
    #[arg(long, value_name = "FILE")]
    pub password_file: Option<PathBuf>,
    /// The ClickHouse cluster (`remote_servers`) to shard over, if any.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// Rows per insert.
    #[arg(long, value_name = "N", default_value_t = coral_colony::migrate::DEFAULT_BATCH_ROWS)]
    pub batch_rows: usize,
}

/// Runs the migration and prints its report.
pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    check_engine(&args.to)?;
    let env: HashMap<String, String> = std::env::vars().collect();
    let overrides = ColonyOverrides {
        data_dir: args.data_dir.clone(),
        ..Default::default()
    };
    let config = ColonyConfig::load(args.config.as_deref(), &env, &overrides)?;
    let settings = settings(&args, &config.storage)?;
    // A mistyped data directory is said before ClickHouse is touched.
    let file = config.data_dir.join(coral_colony::store::DB_FILE);
    if !file.is_file() {
        return Err(MigrateError::Missing { path: file }.into());
    }
    let store = ClickHouse::open(&settings)
        .await
        .map_err(|e| anyhow!(open_error(e)))?;
    let interactive = std::io::stderr().is_terminal();
    let report = coral_colony::migrate::migrate_with(
        &config.data_dir,
        &store,
        Options {
            batch_rows: args.batch_rows.max(1),
        },
        |p| {
            if interactive {
                show_progress(&p);
            }
        },
    )
    .await?;
    print!(
        "{}",
        render(&report, &settings, args.password_file.as_deref())
    );
    Ok(())
}

/// `--to`: only ClickHouse is a target.
fn check_engine(to: &str) -> anyhow::Result<()> {
    match to.trim().to_ascii_lowercase().as_str() {
        "clickhouse" => Ok(()),
        "duckdb" => bail!(
            "--to duckdb: the colony's history is in DuckDB already — `--to` names the store to copy it into: clickhouse, e.g. `coral colony migrate --to clickhouse http://127.0.0.1:8123`"
        ),
        other => bail!(
            "unknown engine {other:?} in --to — the history can be copied to clickhouse, e.g. `coral colony migrate --to clickhouse http://127.0.0.1:8123`"
        ),
    }
}

/// The ClickHouse settings: flags, then the config's ClickHouse storage,
/// then the defaults.
fn settings(args: &MigrateArgs, storage: &StorageEngine) -> anyhow::Result<Settings> {
    let configured = match storage {
        StorageEngine::ClickHouse(c) => Some(c),
        StorageEngine::DuckDb => None,
    };
    let url = match (&args.url, configured) {
        (Some(url), _) => url_of(url)?,
        (None, Some(c)) => c.url.clone(),
        (None, None) => bail!(
            "no ClickHouse URL — name its HTTP interface after --to clickhouse, e.g. `coral colony migrate --to clickhouse http://127.0.0.1:8123`"
        ),
    };
    let database = match (&args.database, configured) {
        (Some(d), _) => identifier(d, "--database")?,
        (None, Some(c)) => c.database.clone(),
        (None, None) => "coral".to_owned(),
    };
    let user = match (&args.user, configured) {
        (Some(u), _) if u.trim().is_empty() || u.trim().contains(char::is_whitespace) => {
            bail!("--user {u:?} is not a ClickHouse user name — give one without spaces")
        }
        (Some(u), _) => u.trim().to_owned(),
        (None, Some(c)) => c.user.clone(),
        (None, None) => "default".to_owned(),
    };
    let password = match (&args.password_file, configured) {
        (Some(file), _) => password(file)?,
        (None, Some(c)) => c.password.clone(),
        (None, None) => String::new(),
    };
    let cluster = match (&args.cluster, configured) {
        (Some(c), _) => Some(identifier(c, "--cluster")?),
        (None, Some(c)) => c.cluster.clone(),
        (None, None) => None,
    };
    Ok(Settings {
        url,
        database,
        user,
        password,
        cluster,
    })
}

/// The URL, checked: `http(s)://host:port` without a path or credentials.
fn url_of(text: &str) -> anyhow::Result<String> {
    let url = text.trim().trim_end_matches('/');
    let fix = "give ClickHouse's HTTP interface as http://host:port or https://host:port, e.g. http://127.0.0.1:8123";
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("{url:?} is not a ClickHouse URL (no http:// or https://) — {fix}");
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        bail!("{url:?} is not a ClickHouse URL: Coral talks to ClickHouse over HTTP — {fix}");
    }
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) || rest.contains(char::is_whitespace)
    {
        bail!(
            "{url:?} is not a ClickHouse URL: only a host and port (no path, user or password) — {fix}"
        );
    }
    Ok(url.to_owned())
}

/// A database or cluster name: a plain identifier.
fn identifier(name: &str, flag: &str) -> anyhow::Result<String> {
    let name = name.trim();
    let mut chars = name.chars();
    let plain = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.len() <= 64;
    if !plain {
        bail!(
            "{flag} {name:?} is not a plain name — use letters, digits and `_` (starting with a letter or `_`), at most 64"
        );
    }
    Ok(name.to_owned())
}

/// The password in `file`, without its trailing line break.
fn password(file: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(file).with_context(|| {
        format!(
            "cannot read --password-file {} — check the path and its permissions",
            file.display()
        )
    })?;
    let password = text.trim_end();
    if password.is_empty() {
        bail!(
            "--password-file {} is empty — write the ClickHouse password into it, or leave the flag out to log in without one",
            file.display()
        );
    }
    Ok(password.to_owned())
}

/// The store's open error, in terms of this command's flags.
fn open_error(e: ClickHouseError) -> String {
    match e {
        ClickHouseError::Unreachable { url, detail } => format!(
            "cannot reach ClickHouse at {url}: {detail} — check that the server runs and that the URL names its HTTP port (8123 by default)"
        ),
        ClickHouseError::Login { url, user, detail } => format!(
            "ClickHouse at {url} refused user {user:?}: {detail} — check --user and the password in --password-file (or the config's storage.user and storage.password_file)"
        ),
        ClickHouseError::Database {
            url,
            database,
            detail,
        } => format!(
            "ClickHouse at {url} has no database {database:?} and cannot create it: {detail} — create it, or name one the user may write with --database"
        ),
        other => other.to_string(),
    }
}

/// One line on a terminal, rewritten as batches go in.
fn show_progress(p: &TableProgress) {
    use std::io::Write as _;
    let copied = p.already_there + p.moved;
    let mut err = std::io::stderr();
    let _ = write!(err, "\r\x1b[K{}: {copied} of {} rows", p.table, p.read);
    if p.finished {
        let _ = write!(err, "\r\x1b[K");
    }
    let _ = err.flush();
}

/// The report: a table of rows per table and what to do next (the storage
/// settings to set; the password file when it came from the flag, since a
/// config that named one has it already).
fn render(report: &MigrationReport, settings: &Settings, password_file: Option<&Path>) -> String {
    let row = |t: &TableProgress| {
        vec![
            t.table.to_owned(),
            t.read.to_string(),
            t.moved.to_string(),
            t.already_there.to_string(),
        ]
    };
    let mut rows: Vec<Vec<String>> = report.tables.iter().map(row).collect();
    rows.push(row(&report.total()));
    let mut out = format!(
        "Copied {} into ClickHouse at {}, database {}:\n\n",
        report.source.display(),
        settings.url,
        settings.database
    );
    out.push_str(&output::table(
        &["table", "read", "moved", "already there"],
        &rows,
    ));
    let mut storage = format!(
        "storage:\n  engine: clickhouse\n  url: {}\n  database: {}\n",
        settings.url, settings.database
    );
    if settings.user != "default" {
        storage.push_str(&format!("  user: {}\n", settings.user));
    }
    if let Some(file) = password_file {
        storage.push_str(&format!("  password_file: {}\n", file.display()));
    }
    if let Some(cluster) = &settings.cluster {
        storage.push_str(&format!("  cluster: {cluster}\n"));
    }
    out.push_str(&format!(
        "\nDone. To run the colony on ClickHouse, set `storage.engine: clickhouse` in its config:\n\n{}\nthen restart the colony: it continues every agent from where this colony stopped.\n",
        indent(&storage)
    ));
    out
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_clickhouse_is_a_target_and_urls_are_checked() {
        assert!(check_engine("ClickHouse").is_ok());
        let err = check_engine("postgres").unwrap_err().to_string();
        assert!(err.contains("unknown engine \"postgres\" in --to"), "{err}");
        assert!(check_engine("duckdb").is_err());
        assert_eq!(
            url_of(" http://127.0.0.1:8123/ ").unwrap(),
            "http://127.0.0.1:8123"
        );
        for bad in [
            "127.0.0.1:8123",
            "tcp://h:9000",
            "http://u:p@h:8123",
            "http://h:8123/db",
        ] {
            assert!(url_of(bad).is_err(), "{bad}");
        }
        assert!(identifier("coral_1", "--database").is_ok());
        assert!(identifier("a`b", "--database").is_err());
    }
}
