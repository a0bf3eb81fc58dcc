//! Reading `colony.duckdb` for the migration: opened read-only, every call
//! on the blocking pool; a table streamed in its stored (`rowid`) order as
//! batches of ClickHouse rows through a channel of one batch, so a slow
//! insert holds the reader back instead of letting rows pile up.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use duckdb::{AccessMode, Config, Connection};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::MigrateError;
use super::columns::Columns;
use super::convert::FromDuckDb;
use crate::catalogue::{Role, Table, Ty};
use crate::store::schema::SCHEMA_VERSION;

/// What identifies a table's content: a run whose table has the same
/// fingerprint as an earlier run's may continue where that one stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Fingerprint {
    /// Rows in the table.
    pub rows: u64,
    /// The highest rowid (-1 when empty).
    pub max_rowid: i64,
    /// Rows, highest rowid and content hash, as stored with the progress.
    pub text: String,
}

/// The open file.
pub(super) struct Source {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

/// Rows of one table, in rowid order.
pub(super) struct Batch<T> {
    /// The rows.
    pub rows: Vec<T>,
    /// The rowid of the last of them.
    pub last_rowid: i64,
}

/// A table being read: its batches, then how the read ended.
pub(super) struct Batches<T> {
    rx: mpsc::Receiver<Batch<T>>,
    task: JoinHandle<Result<(), MigrateError>>,
}

impl<T> Batches<T> {
    /// The next batch; `None` when the table is read (or the read failed:
    /// [`finish`](Self::finish) says).
    pub async fn next(&mut self) -> Option<Batch<T>> {
        self.rx.recv().await
    }

    /// How the read ended.
    pub async fn finish(self) -> Result<(), MigrateError> {
        drop(self.rx);
        self.task.await.map_err(|e| MigrateError::Reader {
            detail: e.to_string(),
        })?
    }
}

/// Runs `f` on the blocking pool.
async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, MigrateError> + Send + 'static,
) -> Result<R, MigrateError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| MigrateError::Reader {
            detail: e.to_string(),
        })?
}

fn lock(conn: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Source {
    /// Opens `path` read-only and checks that it is a colony database of
    /// this version.
    pub async fn open(path: PathBuf) -> Result<Source, MigrateError> {
        let at = path.clone();
        let conn = blocking(move || open(&at)).await?;
        Ok(Source {
            path,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The name progress is recorded under: the file's full path.
    pub fn id(&self) -> String {
        std::fs::canonicalize(&self.path)
            .unwrap_or_else(|_| self.path.clone())
            .display()
            .to_string()
    }

    /// The table's [`Fingerprint`].
    pub async fn fingerprint(&self, table: &'static Table) -> Result<Fingerprint, MigrateError> {
        let (conn, path) = (self.conn.clone(), self.path.clone());
        blocking(move || fingerprint(&lock(&conn), table).map_err(read_error(table, &path))).await
    }

    /// Streams the table's rows with rowids above `after` as `T`, in
    /// batches of `batch_rows`.
    pub fn stream<T: FromDuckDb>(
        &self,
        table: &'static Table,
        after: i64,
        batch_rows: usize,
    ) -> Batches<T> {
        let (tx, rx) = mpsc::channel(1);
        let (conn, path) = (self.conn.clone(), self.path.clone());
        let task = tokio::task::spawn_blocking(move || {
            read(&lock(&conn), &path, table, after, batch_rows, &tx)
        });
        Batches { rx, task }
    }
}

/// The table's [`Fingerprint`]: its rows, its highest rowid and a hash of
/// every row's rowid and columns (a sample replaced in place, a bucket that
/// merged another part: any change shows).
fn fingerprint(conn: &Connection, table: &Table) -> Result<Fingerprint, duckdb::Error> {
    let columns: Vec<&str> = table.columns.iter().map(|c| c.name).collect();
    let sql = format!(
        "SELECT count(*)::UBIGINT, coalesce(max(rowid), -1)::BIGINT, \
         coalesce(sum(hash(rowid, {}))::VARCHAR, '0') FROM {}",
        columns.join(", "),
        table.name
    );
    let (rows, max_rowid, hash): (u64, i64, String) =
        conn.query_row(&sql, [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(Fingerprint {
        rows,
        max_rowid,
        text: format!("rows={rows};rowid={max_rowid};hash={hash}"),
    })
}

fn read_error(table: &'static Table, path: &Path) -> impl Fn(duckdb::Error) -> MigrateError {
    let path = path.to_owned();
    move |e| MigrateError::Read {
        table: table.name,
        path: path.clone(),
        detail: e.to_string(),
    }
}

/// The columns the migration reads: the rowid, then every stored column of
/// the table (not the derived and merge book-keeping ones), timestamps as
/// Unix microseconds.
pub(super) fn select_list(table: &Table) -> String {
    let mut list = vec!["rowid".to_owned()];
    for c in table.columns.iter().filter(|c| c.role == Role::Data) {
        list.push(match c.ty {
            Ty::Timestamp => format!("epoch_us({0}) AS {0}", c.name),
            _ => c.name.to_owned(),
        });
    }
    list.join(", ")
}

fn open(path: &Path) -> Result<Connection, MigrateError> {
    if !path.is_file() {
        return Err(MigrateError::Missing {
            path: path.to_owned(),
        });
    }
    let failed = |hint: &'static str| {
        move |e: duckdb::Error| MigrateError::Open {
            path: path.to_owned(),
            detail: e.to_string(),
            hint,
        }
    };
    let config = Config::default()
        .access_mode(AccessMode::ReadOnly)
        .map_err(failed("this is a bug in the migration"))?;
    let conn = Connection::open_with_flags(path, config).map_err(|e| {
        let detail = e.to_string();
        if detail.contains("Could not set lock") || detail.contains("Conflicting lock") {
            MigrateError::Locked {
                path: path.to_owned(),
                detail,
            }
        } else {
            failed("check that the file is a colony's colony.duckdb and readable by this user")(e)
        }
    })?;
    // As the colony: two threads and a bounded buffer pool. Results without
    // ORDER BY keep the stored order, which the rowid positions rely on.
    conn.execute_batch(
        "SET threads = 2; SET memory_limit = '1GB'; SET preserve_insertion_order = true;",
    )
    .map_err(failed("check that the file is a colony's colony.duckdb"))?;
    let version: Option<String> = conn
        .query_row(
            "SELECT value FROM coral_metadata WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .map_err(failed(
            "it has no colony schema version: name a colony's data directory",
        ))?;
    if let Some(found) = version.filter(|found| found != SCHEMA_VERSION) {
        return Err(MigrateError::Schema {
            path: path.to_owned(),
            found,
            expected: SCHEMA_VERSION,
        });
    }
    // A file an older version wrote lacks the columns declared since; the
    // colony adds them when it opens the file, which this read-only copy
    // cannot.
    let present: Vec<(String, String)> = conn
        .prepare("SELECT table_name, column_name FROM information_schema.columns")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<Result<_, _>>()
        })
        .map_err(failed("check that the file is a colony's colony.duckdb"))?;
    for table in crate::catalogue::TABLES {
        if let Some(missing) = table
            .columns
            .iter()
            .find(|c| !present.iter().any(|(t, n)| t == table.name && n == c.name))
        {
            return Err(MigrateError::Open {
                path: path.to_owned(),
                detail: format!("table {} has no column {}", table.name, missing.name),
                hint: "an older colony wrote it: start the colony of this version on it once (it adds the columns it stores), stop it, and run the migration again",
            });
        }
    }
    Ok(conn)
}

/// Reads `table` after rowid `after` into `tx`, `batch_rows` rows at a
/// time; stops early (without error) when the receiver is gone.
fn read<T: FromDuckDb>(
    conn: &Connection,
    path: &Path,
    table: &'static Table,
    after: i64,
    batch_rows: usize,
    tx: &mpsc::Sender<Batch<T>>,
) -> Result<(), MigrateError> {
    let failed = read_error(table, path);
    let sql = format!(
        "SELECT {} FROM {} WHERE rowid > ?",
        select_list(table),
        table.name
    );
    let mut stmt = conn.prepare(&sql).map_err(&failed)?;
    let chunks = stmt.stream_arrow(duckdb::params![after]).map_err(&failed)?;
    let mut rows: Vec<T> = Vec::new();
    let mut rowids: Vec<i64> = Vec::new();
    let mut last = after;
    for chunk in chunks {
        let chunk = chunk.map_err(&failed)?;
        let columns = Columns::new(table, path, &chunk)?;
        for i in 0..columns.len() {
            let rowid = columns.rowid(i);
            if rowid <= last {
                return Err(MigrateError::Read {
                    table: table.name,
                    path: path.to_owned(),
                    detail: format!("rowid {rowid} came after {last}: rows out of stored order"),
                });
            }
            last = rowid;
            rowids.push(rowid);
        }
        rows.extend(T::from_duckdb(&columns)?);
        while rows.len() >= batch_rows {
            let rest = rows.split_off(batch_rows);
            let batch = Batch {
                rows: std::mem::replace(&mut rows, rest),
                last_rowid: rowids[batch_rows - 1],
            };
            rowids.drain(..batch_rows);
            if tx.blocking_send(batch).is_err() {
                return Ok(());
            }
        }
    }
    if let Some(&last_rowid) = rowids.last() {
        // A receiver gone by now has stopped the migration: nothing to do.
        let _ = tx.blocking_send(Batch { rows, last_rowid });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{HOST_METRICS, OTEL_SPANS};

    #[test]
    fn the_read_skips_derived_and_merge_columns_and_reads_times_as_micros() {
        let list = select_list(&OTEL_SPANS);
        assert!(list.starts_with("rowid, epoch_us(bucket_time) AS bucket_time, agent_id"));
        assert!(list.ends_with("samples, sketch"), "{list}");
        assert!(!list.contains("p99_ms") && !list.contains("parts"));
    }

    #[test]
    fn a_row_changed_in_place_changes_the_fingerprint() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::store::schema::ddl()).unwrap();
        let empty = fingerprint(&conn, &HOST_METRICS).unwrap();
        assert_eq!((empty.rows, empty.max_rowid), (0, -1));
        conn.execute_batch(
            "INSERT INTO host_metrics VALUES ('a', TIMESTAMP '2025-12-06 05:47:00', 'h', \
             42, 1, 2, 0, 0, 0, 0, 0, 60), ('b', TIMESTAMP '2025-12-06 05:47:00', 'h', \
             1, 1, 2, 0, 0, 0, 0, 0, 60)",
        )
        .unwrap();
        let before = fingerprint(&conn, &HOST_METRICS).unwrap();
        assert_eq!((before.rows, before.max_rowid), (2, 1));
        assert_eq!(fingerprint(&conn, &HOST_METRICS).unwrap(), before);
        conn.execute_batch("UPDATE host_metrics SET cpu_percent = 77 WHERE agent_id = 'a'")
            .unwrap();
        let after = fingerprint(&conn, &HOST_METRICS).unwrap();
        assert_eq!((after.rows, after.max_rowid), (2, 1));
        assert_ne!(after, before);
        // Every table's fingerprint runs (lists, blobs, nullable columns).
        for table in crate::catalogue::TABLES {
            fingerprint(&conn, table).unwrap();
        }
    }
}
