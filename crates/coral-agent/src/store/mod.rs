//! The agent's DuckDB store: one file, `agent.duckdb`, in the data directory.
//!
//! DuckDB calls block, so they never run on the async runtime:
//!
//! - one **writer thread** ([`writer`]) owns the write connection; it receives
//!   batches over a channel, appends them with the Appender inside one
//!   transaction per batch (group commit), assigns `seq_id`s and runs retention;
//! - **reads** ([`read`]) use cloned connections on the blocking thread pool.

/// `fn $append(app, seq, row: &$message)`: appends a row the agent numbers
/// with `seq`, then its declared columns in order; for families declared
/// as Beyla spans and host samples are (`coral_model::beyla_span_columns`,
/// `coral_model::host_sample_columns`, called with `, $append`).
macro_rules! append_numbered_row {
    (
        $append:ident;
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        fn $append(
            app: &mut duckdb::Appender<'_>,
            seq: u64,
            row: &coral_proto::common::$message,
        ) -> Result<(), duckdb::Error> {
            app.append_row(duckdb::params![seq, $(coral_model::duckdb_param!($k, row.$f),)+])
        }
    };
}

/// `const $columns` (`seq_id`, then the declared columns in order) and
/// `fn $read(row)`, the message of a row selected as `$columns`; for the
/// families [`append_numbered_row`] appends (called with
/// `, $columns, $read`).
macro_rules! read_numbered_row {
    (
        $columns:ident, $read:ident;
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        const $columns: &str = concat!(
            "seq_id", $(", ", coral_model::duckdb_select!($k, stringify!($c))),+
        );

        fn $read(row: &duckdb::Row<'_>) -> Result<coral_proto::common::$message, duckdb::Error> {
            let mut m = coral_proto::common::$message {
                seq_id: row.get(0)?,
                ..Default::default()
            };
            let mut column = 0;
            $(coral_model::duckdb_set!($k, m.$f, row, { column += 1; column });)+
            Ok(m)
        }
    };
}

mod append;
pub(crate) use append::span_bytes;
pub mod beyla;
pub mod beyla_read;
pub mod health;
mod migrate;
pub(crate) mod pending;
pub mod read;
pub mod resources;
pub mod schema;
pub mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use duckdb::Connection;
use thiserror::Error;

/// File name of the agent database inside the data directory.
pub const DB_FILE: &str = "agent.duckdb";

/// Errors from the agent store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error(
        "cannot create data directory {path}: {source} — check permissions or set agent.data_dir"
    )]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The database could not be opened.
    #[error(
        "cannot open agent database {path}: {source} — if another Coral agent uses this data directory, stop it or set a different agent.data_dir"
    )]
    Open {
        /// The database file.
        path: PathBuf,
        /// The DuckDB error.
        source: duckdb::Error,
    },
    /// A DuckDB statement failed.
    #[error("agent database error: {0}")]
    Db(#[from] duckdb::Error),
    /// The database holds data from an incompatible schema version.
    #[error(
        "agent database {path} has schema version {found}, this agent needs {expected} — move the file away to start fresh"
    )]
    Schema {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: String,
        /// Version this build writes.
        expected: String,
    },
    /// An older database could not be upgraded.
    #[error(
        "cannot upgrade agent database {path} from schema version {found} to {}: {source} — free disk space and restart the agent, or move the file away to start fresh (its data is then lost)",
        schema::SCHEMA_VERSION
    )]
    Upgrade {
        /// The database file.
        path: PathBuf,
        /// Version found in the file.
        found: String,
        /// The DuckDB error.
        source: duckdb::Error,
    },
    /// Columns this version stores could not be added to an older file.
    #[error(
        "cannot add the columns this version stores to agent database {path}: {source} — free disk space and restart the agent, or move the file away to start fresh (its data is then lost)"
    )]
    Columns {
        /// The database file.
        path: PathBuf,
        /// The DuckDB error.
        source: duckdb::Error,
    },
    /// The writer thread has stopped.
    #[error("agent store writer has stopped")]
    WriterGone,
    /// The database is being reopened after a failed write.
    #[error(
        "the agent database is being reopened after a failed write (see /healthz); retry in a few seconds"
    )]
    Reopening,
}

/// Shared handle on the opened database: session, sequence high-water mark and
/// a connection to clone for reads.
pub struct Database {
    path: PathBuf,
    session_id: String,
    /// Highest committed seq_id (0 when none).
    latest_seq: AtomicU64,
    /// Push modes: highest seq_id the colony acknowledged.
    push_acked: AtomicU64,
    /// Highest committed Beyla seq_id (0 when none).
    latest_beyla_seq: AtomicU64,
    /// `None` while the writer reopens the database.
    read_template: std::sync::Mutex<Option<Connection>>,
    health: Arc<health::StoreHealth>,
}

/// DuckDB's memory budget in the agent. It holds the rows appended since the
/// last checkpoint (a checkpoint runs every 16 MiB of WAL) and caches blocks;
/// 32 MB keeps the agent's peak RSS under load ~30 MiB lower than 64 MB did
/// without DuckDB spilling appends to temporary files (BENCHMARKS.md), and a
/// full `QueryTelemetry` page of wide spans still reads within it
/// (`tests/storage.rs`).
pub const DUCKDB_MEMORY_LIMIT: &str = "32MB";

impl Database {
    /// Opens (or creates) `agent.duckdb` in `data_dir`; returns the shared
    /// handle and the write connection for the writer thread.
    pub fn open(data_dir: &Path) -> Result<(Arc<Database>, Connection), StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
            path: data_dir.to_owned(),
            source,
        })?;
        let path = data_dir.join(DB_FILE);
        let mut conn = Connection::open(&path).map_err(|source| StoreError::Open {
            path: path.clone(),
            source,
        })?;
        // Bounded memory and no idle worker pool: the agent writes small
        // batches from one thread; DuckDB's defaults (80% of RAM, one thread
        // per core) are sized for analytics, not for a per-host agent.
        conn.execute_batch(&format!(
            "SET threads = 1; SET memory_limit = '{DUCKDB_MEMORY_LIMIT}';"
        ))?;
        conn.execute_batch(&schema::ddl())?;
        let version = metadata(&conn, "schema_version")?;
        match version {
            Some(found) if found == "1" => {
                tracing::info!(path = %path.display(), "upgrading the agent database from schema version 1 to 2");
                migrate::v1_to_v2(&mut conn).map_err(|source| StoreError::Upgrade {
                    path: path.clone(),
                    found,
                    source,
                })?;
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
                    "INSERT INTO coral_metadata VALUES ('schema_version', ?), ('session_id', ?), ('next_seq_id', '1')",
                    [schema::SCHEMA_VERSION, &uuid::Uuid::new_v4().to_string()],
                )?;
            }
        }
        let added = schema::add_missing_columns(&conn).map_err(|source| StoreError::Columns {
            path: path.clone(),
            source,
        })?;
        if !added.is_empty() {
            tracing::info!(path = %path.display(), columns = %added.join(", "), "added the columns this version stores to the agent database");
        }
        let session_id = metadata(&conn, "session_id")?.unwrap_or_default();
        let next: u64 = metadata(&conn, "next_seq_id")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let acked: u64 = metadata(&conn, "push_acked_seq_id")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let next_beyla: u64 = metadata(&conn, "next_beyla_seq_id")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let read_template = conn.try_clone()?;
        let db = Arc::new(Database {
            path,
            session_id,
            latest_seq: AtomicU64::new(next.saturating_sub(1)),
            push_acked: AtomicU64::new(acked),
            latest_beyla_seq: AtomicU64::new(next_beyla.saturating_sub(1)),
            read_template: std::sync::Mutex::new(Some(read_template)),
            health: Arc::default(),
        });
        Ok((db, conn))
    }

    /// The database's session id: it changes only when the file is new.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The highest committed seq_id.
    pub fn latest_seq(&self) -> u64 {
        self.latest_seq.load(Ordering::Acquire)
    }

    pub(crate) fn set_latest_seq(&self, seq: u64) {
        self.latest_seq.store(seq, Ordering::Release);
    }

    /// The highest committed Beyla seq_id (the Beyla rows' own sequence).
    pub fn latest_beyla_seq(&self) -> u64 {
        self.latest_beyla_seq.load(Ordering::Acquire)
    }

    pub(crate) fn set_latest_beyla_seq(&self, seq: u64) {
        self.latest_beyla_seq.store(seq, Ordering::Release);
    }

    /// Push modes: the highest seq_id the colony has acknowledged.
    pub fn push_acked(&self) -> u64 {
        self.push_acked.load(Ordering::Acquire)
    }

    pub(crate) fn set_push_acked(&self, seq: u64) {
        self.push_acked.store(seq, Ordering::Release);
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes used on disk by the database and its write-ahead log.
    pub fn size_bytes(&self) -> u64 {
        let wal = self.path.with_extension("duckdb.wal");
        [&self.path, &wal]
            .iter()
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum()
    }

    /// A new connection for a read (call from a blocking context).
    pub fn reader(&self) -> Result<Connection, StoreError> {
        let template = self
            .read_template
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match template.as_ref() {
            Some(template) => Ok(template.try_clone()?),
            None => Err(StoreError::Reopening),
        }
    }

    /// Whether the store can write.
    pub fn health(&self) -> &Arc<health::StoreHealth> {
        &self.health
    }

    /// Drops the read template (before the writer reopens the database).
    pub(crate) fn close_readers(&self) {
        *self
            .read_template
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = None;
    }

    /// Opens the database file again after DuckDB invalidated it: a new
    /// write connection, and readers cloned from it. The caller dropped its
    /// old connection and called [`Database::close_readers`].
    pub(crate) fn reopen(&self) -> Result<Connection, StoreError> {
        let conn = Connection::open(&self.path).map_err(|source| StoreError::Open {
            path: self.path.clone(),
            source,
        })?;
        conn.execute_batch(&format!(
            "SET threads = 1; SET memory_limit = '{DUCKDB_MEMORY_LIMIT}';"
        ))?;
        let reader = conn.try_clone()?;
        *self
            .read_template
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(reader);
        Ok(conn)
    }
}

fn metadata(conn: &Connection, key: &str) -> Result<Option<String>, duckdb::Error> {
    let mut stmt = conn.prepare("SELECT value FROM coral_metadata WHERE key = ?")?;
    let mut rows = stmt.query([key])?;
    match rows.next()? {
        Some(row) => Ok(Some(row.get(0)?)),
        None => Ok(None),
    }
}

/// Sets a `coral_metadata` value (writer thread only).
pub(crate) fn set_metadata(conn: &Connection, key: &str, value: &str) -> Result<(), duckdb::Error> {
    let updated = conn.execute(
        "UPDATE coral_metadata SET value = ? WHERE key = ?",
        [value, key],
    )?;
    if updated == 0 {
        conn.execute("INSERT INTO coral_metadata VALUES (?, ?)", [key, value])?;
    }
    Ok(())
}
