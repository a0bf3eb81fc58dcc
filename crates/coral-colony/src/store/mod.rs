//! The colony's store: by default one DuckDB file, `colony.duckdb`, in the
//! data directory; or ClickHouse ([`clickhouse`], behind [`engine::Store`]).
//!
//! As in the agent, DuckDB calls never run on the async runtime: one writer
//! thread ([`writer`]) owns the write connection and applies pages, agent
//! records and retention; reads ([`query`]) clone a connection on the blocking
//! pool.

#[macro_use]
mod kinds;
pub mod beyla;
pub(crate) mod beyla_families;
pub mod clickhouse;
pub mod diagnose;
pub mod engine;
pub mod ingest;
pub mod merge;
pub mod operations;
pub mod query;
pub mod query_beyla;
pub mod rows;
pub mod schema;
pub mod services;
pub mod traces;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use duckdb::Connection;
use duckdb::types::{TimeUnit, Value};
use thiserror::Error;

/// File name of the colony database inside the data directory.
pub const DB_FILE: &str = "colony.duckdb";

/// Errors from the colony store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error(
        "cannot create data directory {path}: {source} — check permissions or set colony.data_dir"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(
        "cannot open colony database {path}: {source} — if another colony uses this data directory, stop it or set a different colony.data_dir"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// The DuckDB error.
        source: duckdb::Error,
    },
    /// A DuckDB statement failed.
    #[error("colony database error: {0}")]
    Db(#[from] duckdb::Error),
    /// Stored data could not be decoded.
    #[error("colony database holds an undecodable {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
    /// The database holds data from an incompatible schema version.
    #[error(
        "colony database {path} has schema version {found}, this colony needs {expected} — move the file away to start fresh"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: String,
        /// Version this build writes.
        expected: String,
    },
    /// Columns this version stores could not be added to an older file.
    #[error(
        "cannot add the columns this version stores to colony database {path}: {source} — free disk space and start the colony again"
    )]
    Columns {
        /// The database file.
        path: PathBuf,
        /// The DuckDB error.
        source: duckdb::Error,
    },
    /// The writer could not store something (a full disk, an I/O error); the
    /// cursors did not move, so nothing is lost.
    #[error(
        "cannot write {what} to the colony database: {detail} — check free space and permissions under colony.data_dir"
    )]
    Write {
        /// What was being stored.
        what: &'static str,
        /// The writer's error.
        detail: String,
    },
    /// The writer thread has stopped.
    #[error("colony store writer has stopped")]
    WriterGone,
    /// The ClickHouse store failed.
    #[error(transparent)]
    ClickHouse(#[from] clickhouse::ClickHouseError),
    /// The database is being reopened after a failed write.
    #[error("the colony database is being reopened after a failed write; retry in a few seconds")]
    Reopening,
}

/// Shared handle on the opened database.
pub struct Database {
    path: PathBuf,
    /// `None` while the writer reopens the database.
    read_template: Mutex<Option<Connection>>,
}

/// The colony's DuckDB settings, for every instance it opens.
const SETTINGS: &str = "SET threads = 2; SET memory_limit = '1GB';";

impl Database {
    /// Opens (or creates) `colony.duckdb` in `data_dir`; returns the handle and
    /// the write connection for the writer thread.
    pub fn open(data_dir: &Path) -> Result<(Arc<Database>, Connection), StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        // The colony appends large pages and answers analytical queries: two
        // threads and a bounded buffer pool keep it a good neighbour.
        conn.execute_batch(SETTINGS)?;
        conn.execute_batch(&schema::ddl())?;
        let version: Option<String> = conn
            .query_row(
                "SELECT value FROM coral_metadata WHERE key = 'schema_version'",
                [],
                |r| r.get(0),
            )
            .ok();
        match version {
            Some(found) if found == "1" => {
                let tx = conn.unchecked_transaction()?;
                tx.execute_batch(schema::MIGRATE_FROM_1)?;
                tx.commit()?;
            }
            Some(found) if found != schema::SCHEMA_VERSION => {
                return Err(StoreError::Schema {
                    path,
                    found,
                    expected: schema::SCHEMA_VERSION.to_owned(),
                });
            }
            Some(_) => {}
            None => {
                conn.execute(
                    "INSERT INTO coral_metadata VALUES ('schema_version', ?)",
                    [schema::SCHEMA_VERSION],
                )?;
            }
        }
        let added = schema::add_missing_columns(&conn).map_err(|source| StoreError::Columns {
            path: path.clone(),
            source,
        })?;
        if !added.is_empty() {
            tracing::info!(path = %path.display(), columns = %added.join(", "), "added the columns this version stores to the colony database");
        }
        let read_template = Mutex::new(Some(conn.try_clone()?));
        Ok((
            Arc::new(Database {
                path,
                read_template,
            }),
            conn,
        ))
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new connection for a read (call from a blocking context).
    pub fn reader(&self) -> Result<Connection, StoreError> {
        let template = self.template();
        match template.as_ref() {
            Some(template) => Ok(template.try_clone()?),
            None => Err(StoreError::Reopening),
        }
    }

    /// Opens the database file again after DuckDB invalidated it (a write
    /// failed, e.g. on a full disk): readers are let go first, then a new
    /// instance gives the writer its connection and readers theirs. The
    /// caller has dropped its old write connection.
    pub(crate) fn reopen(&self) -> Result<Connection, StoreError> {
        *self.template() = None;
        let conn = Connection::open(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        conn.execute_batch(SETTINGS)?;
        *self.template() = Some(conn.try_clone()?);
        Ok(conn)
    }

    fn template(&self) -> std::sync::MutexGuard<'_, Option<Connection>> {
        self.read_template
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A DuckDB TIMESTAMP value from Unix microseconds.
pub(crate) fn ts_micros(micros: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, micros)
}

/// `t` in Unix microseconds (0 before the epoch).
pub(crate) fn micros(t: std::time::SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

/// Now, in Unix microseconds.
pub(crate) fn now_micros() -> i64 {
    micros(std::time::SystemTime::now())
}
