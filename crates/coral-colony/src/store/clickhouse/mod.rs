//! The colony's ClickHouse store: the catalogue's tables in a ClickHouse
//! database (or a cluster of shards), written and read over HTTP with the
//! official client in RowBinary.
//!
//! There are no transactions: a page's rows are inserted (one insert per
//! table per page), then its cursor. A colony killed in between reads the
//! page again and inserts the same rows again; they carry the same key
//! (agent, store session, seq_id), so `ReplacingMergeTree` collapses them and
//! every read uses `FINAL`, which counts each key once even before the
//! collapse (see [`crate::catalogue::clickhouse`]).

#[macro_use]
mod kinds;
pub(crate) mod beyla;
pub mod diagnose;
mod hosts;
pub mod leases;
mod read;
pub(crate) mod rows;
mod traces;
mod write;

use std::sync::Arc;
use std::time::Duration;

use clickhouse::Client;
use thiserror::Error;

use crate::catalogue::clickhouse::Target;

pub use hosts::{host_correlation, host_samples_sql};
pub use read::{
    agents, agents_seen, cursors, gap_counts, gaps, operations, operations_sql, services,
    services_sql, summaries, summaries_sql,
};
pub use traces::{get_trace, list_traces, list_traces_sql};
pub(crate) use write::{insert, read_cursor};
pub use write::{record_seen, retention, store_page, upsert_agent};

/// Where the colony's ClickHouse is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// The HTTP interface, e.g. `http://127.0.0.1:8123`.
    pub url: String,
    /// The database the tables live in (created if missing when the user may).
    pub database: String,
    /// The user.
    pub user: String,
    /// The password (read from `storage.password_file`).
    pub password: String,
    /// The `remote_servers` cluster to shard over, if any.
    pub cluster: Option<String>,
}

/// Errors from the ClickHouse store.
#[derive(Debug, Error)]
pub enum ClickHouseError {
    /// No server answered.
    #[error(
        "cannot reach ClickHouse at {url}: {detail} — check that the server runs and that storage.url names its HTTP port (8123 by default)"
    )]
    Unreachable {
        /// The URL tried.
        url: String,
        /// The client's error.
        detail: String,
    },
    /// The server refused the user or password.
    #[error(
        "ClickHouse at {url} refused user {user:?}: {detail} — check storage.user and the password in storage.password_file"
    )]
    Login {
        /// The server.
        url: String,
        /// The user.
        user: String,
        /// The server's message.
        detail: String,
    },
    /// The database does not exist and could not be created.
    #[error(
        "ClickHouse at {url} has no database {database:?} and cannot create it: {detail} — create it, or set storage.database to one the user may write"
    )]
    Database {
        /// The server.
        url: String,
        /// The database.
        database: String,
        /// The server's message.
        detail: String,
    },
    /// The cluster's DDL could not run on its shards.
    #[error(
        "ClickHouse at {url} cannot create the tables on cluster {cluster:?}: {detail} — check that storage.cluster names a cluster of the servers' remote_servers, and that every server of it has <zookeeper> and <distributed_ddl> sections (ON CLUSTER statements need them)"
    )]
    Cluster {
        /// The server.
        url: String,
        /// The cluster.
        cluster: String,
        /// The server's message.
        detail: String,
    },
    /// A column this version stores could not be added to a table an older
    /// version created.
    #[error(
        "ClickHouse at {url} cannot add column {column} to table {table}: {detail} — grant the colony's user ALTER on the database and start the colony again (it adds the columns this version stores to tables an older version created)"
    )]
    Columns {
        /// The server.
        url: String,
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The server's message.
        detail: String,
    },
    /// A statement failed.
    #[error("ClickHouse {what} failed: {detail}")]
    Query {
        /// What was being done.
        what: &'static str,
        /// The client's or server's error.
        detail: String,
    },
    /// Stored data could not be decoded.
    #[error("ClickHouse holds an undecodable {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
}

impl ClickHouseError {
    pub(crate) fn query(what: &'static str) -> impl Fn(clickhouse::error::Error) -> Self {
        move |e| ClickHouseError::Query {
            what,
            detail: e.to_string(),
        }
    }
}

/// An open ClickHouse store (cheap to clone).
#[derive(Clone)]
pub struct ClickHouse(Arc<Opened>);

struct Opened {
    client: Client,
    target: Target,
    url: String,
}

/// How long one statement may take before the colony gives up on it.
pub(crate) const STATEMENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Adds to each table the columns the catalogue declares that it lacks (a
/// table created before they were declared): to the table on every shard
/// and, in a cluster, to its `Distributed` table, each checked on its own.
/// `if_not_exists` where the server has it (19.1 and later), so a shard
/// that has the column already is left as it is; on older servers an
/// `ADD COLUMN` that fails is checked again, as another colony of the fleet
/// may have added the column meanwhile. Returns what was added, as
/// `table.column`.
async fn add_missing_columns(
    client: &Client,
    target: &Target,
    url: &str,
    if_not_exists: bool,
) -> Result<Vec<String>, ClickHouseError> {
    let columns_of = |holder: String| async move {
        client
            .query("SELECT name FROM system.columns WHERE database = ? AND table = ?")
            .bind(&target.database)
            .bind(holder)
            .fetch_all::<String>()
            .await
    };
    let failed =
        |table: &str, column: &str, e: clickhouse::error::Error| ClickHouseError::Columns {
            url: url.to_owned(),
            table: table.to_owned(),
            column: column.to_owned(),
            detail: e.to_string(),
        };
    let mut added = Vec::new();
    for table in crate::catalogue::TABLES
        .iter()
        .chain(crate::catalogue::CLICKHOUSE_ONLY)
    {
        for (holder, alter) in target.column_holders(table) {
            let present = columns_of(holder.clone())
                .await
                .map_err(|e| failed(&holder, "(any)", e))?;
            for (name, ty, default) in crate::catalogue::clickhouse::columns(table) {
                if present.contains(&name) {
                    continue;
                }
                let statement = Target::add_column(&alter, &name, &ty, default, if_not_exists);
                if let Err(e) = client.query(&statement).execute().await {
                    let now = columns_of(holder.clone())
                        .await
                        .map_err(|e| failed(&holder, &name, e))?;
                    if !now.contains(&name) {
                        return Err(failed(&holder, &name, e));
                    }
                }
                added.push(format!("{holder}.{name}"));
            }
        }
    }
    Ok(added)
}

/// Whether the server at `version` (`SELECT version()`) has `ADD COLUMN IF
/// NOT EXISTS` (19.1 and later).
fn has_add_column_if_not_exists(version: &str) -> bool {
    version
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 19)
}

impl ClickHouse {
    /// Logs in, creates the database and the tables if missing, and returns
    /// the store. Fails with the setting to fix when the server cannot be
    /// reached, refuses the login, or has no usable database.
    pub async fn open(settings: &Settings) -> Result<ClickHouse, ClickHouseError> {
        let mut base = Client::default()
            .with_url(&settings.url)
            .with_user(&settings.user)
            .with_password(&settings.password)
            // RowBinary without the server-side schema check, which needs
            // a newer server than 18.16; the rows' columns are checked
            // against the catalogue by the tests instead.
            .with_validation(false);
        if settings.cluster.is_some() {
            // An insert into a `Distributed` table returns once every shard
            // has its rows: a cursor moves only past rows that are stored,
            // and a read right after sees them.
            base = base
                .with_setting("insert_distributed_sync", "1")
                // A subquery over a `Distributed` table inside a query over
                // one (a trace's spans `IN` the slowest traces) runs once,
                // over every shard, and its result goes to each shard.
                .with_setting("distributed_product_mode", "global");
        }
        let version = tokio::time::timeout(
            STATEMENT_TIMEOUT,
            base.query("SELECT version()").fetch_one::<String>(),
        )
        .await
        .map_err(|_| ClickHouseError::Unreachable {
            url: settings.url.clone(),
            detail: format!("no answer in {}s", STATEMENT_TIMEOUT.as_secs()),
        })?
        .map_err(|e| classify(settings, e))?;
        let target = Target {
            database: settings.database.clone(),
            cluster: settings.cluster.clone(),
        };
        let schema_failed = |e: clickhouse::error::Error| match &settings.cluster {
            Some(cluster) => ClickHouseError::Cluster {
                url: settings.url.clone(),
                cluster: cluster.clone(),
                detail: e.to_string(),
            },
            None => ClickHouseError::Query {
                what: "schema creation",
                detail: e.to_string(),
            },
        };
        base.query(&target.create_database())
            .execute()
            .await
            .map_err(|e| match &settings.cluster {
                Some(_) => schema_failed(e),
                None => ClickHouseError::Database {
                    url: settings.url.clone(),
                    database: settings.database.clone(),
                    detail: e.to_string(),
                },
            })?;
        let client = base.with_database(&settings.database);
        for statement in target.ddl().into_iter().skip(1) {
            client
                .query(&statement)
                .execute()
                .await
                .map_err(schema_failed)?;
        }
        let if_not_exists = has_add_column_if_not_exists(&version);
        let added = add_missing_columns(&client, &target, &settings.url, if_not_exists).await?;
        if !added.is_empty() {
            tracing::info!(columns = %added.join(", "), "added the columns this version stores to the ClickHouse tables");
        }
        tracing::info!(url = %settings.url, %version, database = %settings.database, "colony store: ClickHouse");
        Ok(ClickHouse(Arc::new(Opened {
            client,
            target,
            url: settings.url.clone(),
        })))
    }

    /// The client, on the colony's database (for tools and tests that run
    /// their own SQL).
    pub fn client(&self) -> &Client {
        &self.0.client
    }

    /// Where the tables are.
    pub fn target(&self) -> &Target {
        &self.0.target
    }

    /// How a failed statement of `what` is reported: a server that cannot
    /// be reached is named with its URL (polls pause until it answers).
    pub(crate) fn failed(
        &self,
        what: &'static str,
    ) -> impl Fn(clickhouse::error::Error) -> ClickHouseError + '_ {
        move |e| match e {
            clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut => {
                ClickHouseError::Unreachable {
                    url: self.0.url.clone(),
                    detail: format!("{what}: {e}"),
                }
            }
            e => ClickHouseError::Query {
                what,
                detail: e.to_string(),
            },
        }
    }

    /// Bytes the colony's tables take on disk (active parts; in a cluster,
    /// on every shard).
    pub async fn disk_bytes(&self) -> Result<u64, ClickHouseError> {
        self.client()
            .query(&format!(
                "SELECT toUInt64(sum(bytes_on_disk)) FROM {} \
                 WHERE database = ? AND active",
                self.target().parts()
            ))
            .bind(&self.target().database)
            .fetch_one::<u64>()
            .await
            .map_err(self.failed("disk usage read"))
    }
}

/// The error a failed first statement means.
fn classify(settings: &Settings, error: clickhouse::error::Error) -> ClickHouseError {
    let detail = error.to_string();
    let url = settings.url.clone();
    match &error {
        clickhouse::error::Error::Network(_) => ClickHouseError::Unreachable { url, detail },
        // 192 unknown user, 193 wrong password, 516 authentication failed.
        _ if ["Code: 192", "Code: 193", "Code: 516"]
            .iter()
            .any(|code| detail.contains(code)) =>
        {
            ClickHouseError::Login {
                url,
                user: settings.user.clone(),
                detail,
            }
        }
        _ => ClickHouseError::Query {
            what: "first statement",
            detail,
        },
    }
}
