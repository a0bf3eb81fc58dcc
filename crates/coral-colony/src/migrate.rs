//! `coral colony migrate --to clickhouse`: copies a stopped colony's
//! history from its embedded store (`colony.duckdb`) into the ClickHouse
//! store, table by table, in batches of bounded size, resumable.
//!
//! - **Reading.** The file is opened read-only on the blocking pool (never
//!   on the async runtime); a colony still running on it holds its lock, and
//!   the migration says so. Each table is streamed in its stored order
//!   (DuckDB's `rowid`), converted on the blocking pool to the ClickHouse
//!   row structs (`store::clickhouse::rows`) and inserted with one
//!   insert per batch; at most three batches are in memory at a time (one
//!   being read, one waiting, one being inserted).
//! - **Keys.** DuckDB rows carry no agent store session, and merged rows no
//!   seq_id. Every migrated agent row gets the session [`SESSION`] and a
//!   seq_id that depends only on the row's own identity in DuckDB: a stable
//!   hash of its key columns for the merged tables (a bucket's minute,
//!   service and span kind), 0 for host samples (one per agent and minute),
//!   and the agent's own seq_id for spans, whose session also names the
//!   span. A row copied twice therefore carries the same key twice and
//!   collapses (`ReplacingMergeTree`, reads with `FINAL`): a repeated or
//!   resumed migration never counts a row twice, even when the colony ran
//!   on in between (a bucket that merged more parts replaces its old copy).
//!   A merged bucket becomes one row; ClickHouse's reads merge it with any
//!   parts a colony on ClickHouse stores later for the same minute.
//! - **Resuming.** After each batch, the table's position (the last rowid
//!   copied) is recorded in `migration_progress` in the ClickHouse database,
//!   with a fingerprint of the DuckDB table (rows, highest rowid, a hash of
//!   every row). A later run whose table has the same fingerprint continues
//!   after that rowid, or skips the table when it was finished; a table that
//!   changed since is copied again from the start (its keys make that
//!   harmless; rows the embedded colony deleted since stay until
//!   ClickHouse's retention drops them). Dropping `migration_progress` makes
//!   the next run copy everything again.
//! - **Records.** Agents, gaps and cursors are copied as they are, cursors
//!   last: a colony on ClickHouse then continues each agent from where the
//!   embedded colony stopped, and a migration stopped early never leaves a
//!   cursor ahead of the rows it covers.

#[macro_use]
mod columns;
mod convert;
mod progress;
mod source;

use std::path::{Path, PathBuf};

use clickhouse::{RowOwned, RowWrite};
use thiserror::Error;

use crate::catalogue::{self, Table};
use crate::store::clickhouse::beyla::{GrpcRow, HttpRow, SpanRow as BeylaSpanRow, SqlRow};
use crate::store::clickhouse::rows::{
    AgentRow, BucketRow, CursorRow, GapRow, HostRow, OperationRow, SpanRow,
};
use crate::store::clickhouse::{ClickHouse, ClickHouseError, insert};

use convert::FromDuckDb;
use progress::Progress;
use source::{Fingerprint, Source};

/// The agent store session every migrated agent row carries (spans add
/// their span id to it).
pub const SESSION: &str = "duckdb-migration";

/// Rows per insert unless [`Options::batch_rows`] says otherwise.
pub const DEFAULT_BATCH_ROWS: usize = 50_000;

/// The order tables are copied in: agents' rows, then gaps and agent
/// records, cursors last (see the module docs).
const ORDER: [&Table; 11] = [
    &catalogue::OTEL_SPANS,
    &catalogue::OTEL_OPERATIONS,
    &catalogue::TRACE_SPANS,
    &catalogue::HOST_METRICS,
    &catalogue::BEYLA_HTTP,
    &catalogue::BEYLA_GRPC,
    &catalogue::BEYLA_SQL,
    &catalogue::BEYLA_TRACES,
    &catalogue::GAPS,
    &catalogue::AGENTS,
    &catalogue::CURSORS,
];

/// How a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Rows per insert (at least 1).
    pub batch_rows: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }
}

/// Where one table's copy stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableProgress {
    /// The table.
    pub table: &'static str,
    /// Rows the table holds in `colony.duckdb`.
    pub read: u64,
    /// Rows this run inserted into ClickHouse so far.
    pub moved: u64,
    /// Rows an earlier run had already copied (skipped by this one).
    pub already_there: u64,
    /// True once every row of the table is in ClickHouse.
    pub finished: bool,
}

/// What a migration did, table by table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationReport {
    /// The file copied from.
    pub source: PathBuf,
    /// Each table, in the order copied.
    pub tables: Vec<TableProgress>,
}

impl MigrationReport {
    /// The sums over every table, as a row named `total`.
    pub fn total(&self) -> TableProgress {
        let mut total = TableProgress {
            table: "total",
            read: 0,
            moved: 0,
            already_there: 0,
            finished: true,
        };
        for t in &self.tables {
            total.read += t.read;
            total.moved += t.moved;
            total.already_there += t.already_there;
            total.finished &= t.finished;
        }
        total
    }

    /// The table named `name`.
    pub fn table(&self, name: &str) -> Option<&TableProgress> {
        self.tables.iter().find(|t| t.table == name)
    }
}

/// Why a migration stopped. Every row it inserted before stays; running it
/// again continues from there.
#[derive(Debug, Error)]
pub enum MigrateError {
    /// The data directory holds no colony database.
    #[error(
        "no colony database at {path} — name the embedded colony's data directory with --data-dir, or its config with --config (colony.data_dir)"
    )]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// A running colony holds the file.
    #[error(
        "{path} is in use by another process ({detail}) — stop the colony that runs on it, then migrate: the migration reads a stopped colony's file"
    )]
    Locked {
        /// The database file.
        path: PathBuf,
        /// DuckDB's message (it names the process).
        detail: String,
    },
    /// The file could not be opened or is not a colony database.
    #[error("cannot read {path} as a colony database: {detail} — {hint}")]
    Open {
        /// The database file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
        /// What to do.
        hint: &'static str,
    },
    /// The file was written by a colony of another schema version.
    #[error(
        "{path} has colony schema version {found}, this coral reads version {expected} — start this version's colony on it once (it upgrades the file at start), stop it, then migrate"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: String,
        /// The version this build reads.
        expected: &'static str,
    },
    /// Reading a table failed.
    #[error(
        "reading {table} from {path} failed: {detail} — check that the file is readable and not damaged, then run the migration again"
    )]
    Read {
        /// The table.
        table: &'static str,
        /// The database file.
        path: PathBuf,
        /// DuckDB's message.
        detail: String,
    },
    /// A stored value could not be decoded.
    #[error(
        "{table} in colony.duckdb holds an undecodable {what} (agent {agent:?}, rowid {rowid}): {detail} — the embedded colony cannot read this row either; delete it from colony.duckdb with a stopped colony, then run the migration again"
    )]
    Corrupt {
        /// The table.
        table: &'static str,
        /// The column's kind of value.
        what: &'static str,
        /// The row's agent.
        agent: String,
        /// The row's DuckDB rowid.
        rowid: i64,
        /// The decoder's complaint.
        detail: String,
    },
    /// An insert into ClickHouse failed.
    #[error(
        "copying {table} into ClickHouse failed after {moved} of its rows this run: {source} — once the cause is fixed, run the migration again: it continues where it stopped"
    )]
    Insert {
        /// The table.
        table: &'static str,
        /// Rows of it this run inserted before.
        moved: u64,
        /// The store's error.
        source: ClickHouseError,
    },
    /// The progress table could not be read or written.
    #[error(
        "cannot {what} the migration's progress (table migration_progress in ClickHouse): {source} — the user must be allowed to create and write tables in the database; run the migration again once it is"
    )]
    Progress {
        /// Read or record.
        what: &'static str,
        /// The store's error.
        source: ClickHouseError,
    },
    /// A table this build has no conversion for.
    #[error(
        "the migration cannot copy table {table}: this build has no conversion for it — nothing after it was copied; use a coral build whose migration knows every table"
    )]
    Unsupported {
        /// The table.
        table: &'static str,
    },
    /// The blocking task that reads DuckDB stopped unexpectedly.
    #[error("the colony.duckdb reader stopped: {detail} — run the migration again")]
    Reader {
        /// The task's failure.
        detail: String,
    },
}

/// Copies the embedded colony in `data_dir` into `to` with the default
/// [`Options`], calling `progress` after each batch and when a table is
/// done. See the [module docs](self).
pub async fn migrate(
    data_dir: &Path,
    to: &ClickHouse,
    progress: impl FnMut(TableProgress),
) -> Result<MigrationReport, MigrateError> {
    migrate_with(data_dir, to, Options::default(), progress).await
}

/// [`migrate`] with `options`.
pub async fn migrate_with(
    data_dir: &Path,
    to: &ClickHouse,
    options: Options,
    mut progress: impl FnMut(TableProgress),
) -> Result<MigrationReport, MigrateError> {
    let source = Source::open(data_dir.join(crate::store::DB_FILE)).await?;
    let mut done = Progress::open(to, &source.id()).await?;
    let mut report = MigrationReport {
        source: source.path().to_owned(),
        tables: Vec::with_capacity(ORDER.len()),
    };
    let batch_rows = options.batch_rows.max(1);
    for table in ORDER {
        let fingerprint = source.fingerprint(table).await?;
        let copy = TableCopy {
            source: &source,
            to,
            table,
            batch_rows,
            fingerprint,
        };
        let row = match table.name {
            "otel_spans" => copy.rows::<BucketRow>(&mut done, &mut progress).await?,
            "otel_operations" => copy.rows::<OperationRow>(&mut done, &mut progress).await?,
            "trace_spans" => copy.rows::<SpanRow>(&mut done, &mut progress).await?,
            "host_metrics" => copy.rows::<HostRow>(&mut done, &mut progress).await?,
            "beyla_http_metrics" => copy.rows::<HttpRow>(&mut done, &mut progress).await?,
            "beyla_grpc_metrics" => copy.rows::<GrpcRow>(&mut done, &mut progress).await?,
            "beyla_sql_metrics" => copy.rows::<SqlRow>(&mut done, &mut progress).await?,
            "beyla_traces" => copy.rows::<BeylaSpanRow>(&mut done, &mut progress).await?,
            "gaps" => copy.rows::<GapRow>(&mut done, &mut progress).await?,
            "agents" => copy.rows::<AgentRow>(&mut done, &mut progress).await?,
            "cursors" => copy.rows::<CursorRow>(&mut done, &mut progress).await?,
            other => return Err(MigrateError::Unsupported { table: other }),
        };
        report.tables.push(row);
    }
    Ok(report)
}

/// One table's copy.
struct TableCopy<'a> {
    source: &'a Source,
    to: &'a ClickHouse,
    table: &'static Table,
    batch_rows: usize,
    fingerprint: Fingerprint,
}

impl TableCopy<'_> {
    /// Copies the table's rows as `T`, after what an earlier run with the
    /// same fingerprint recorded.
    async fn rows<T>(
        &self,
        done: &mut Progress,
        progress: &mut impl FnMut(TableProgress),
    ) -> Result<TableProgress, MigrateError>
    where
        T: FromDuckDb + RowOwned + RowWrite,
    {
        let table = self.table;
        let mut state = TableProgress {
            table: table.name,
            read: self.fingerprint.rows,
            moved: 0,
            already_there: 0,
            finished: false,
        };
        let mut after = -1;
        if let Some(earlier) = done.earlier(table.name, &self.fingerprint) {
            if earlier.finished {
                state.already_there = state.read;
                state.finished = true;
                progress(state.clone());
                return Ok(state);
            }
            after = earlier.last_rowid;
            state.already_there = earlier.rows_done;
        }
        let mut batches = self.source.stream::<T>(table, after, self.batch_rows);
        while let Some(batch) = batches.next().await {
            insert(self.to, table, &batch.rows)
                .await
                .map_err(|source| MigrateError::Insert {
                    table: table.name,
                    moved: state.moved,
                    source,
                })?;
            state.moved += batch.rows.len() as u64;
            let copied = state.already_there + state.moved;
            done.record(table.name, &self.fingerprint, batch.last_rowid, copied)
                .await?;
            progress(state.clone());
        }
        batches.finish().await?;
        done.finish(table.name, &self.fingerprint).await?;
        state.finished = true;
        progress(state.clone());
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_of_the_embedded_store_is_copied_once() {
        let mut copied: Vec<&str> = ORDER.iter().map(|t| t.name).collect();
        let mut tables: Vec<&str> = catalogue::TABLES.iter().map(|t| t.name).collect();
        assert_eq!(
            ORDER.last().map(|t| t.name),
            Some("cursors"),
            "cursors last"
        );
        copied.sort();
        tables.sort();
        assert_eq!(copied, tables);
    }
}
