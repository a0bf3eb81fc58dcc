//! The colony's single writer thread.
//!
//! Pages from the poller and from push ingest queue on one channel. The writer
//! takes what is waiting (up to [`MAX_BATCH_ROWS`]) and stores it in one
//! transaction: each page with its cursor, so group commit never weakens the
//! per-page guarantee. If the transaction fails, every page in it is retried
//! in a transaction of its own, so one bad page cannot fail its neighbours.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::thread::JoinHandle;
use std::time::SystemTime;

use duckdb::{Connection, params};
use tokio::sync::oneshot;

use super::beyla::TraceSampling;
use super::clickhouse::ClickHouse;
use super::ingest::{Page, PageOutcome, store_page};
use super::{Database, StoreError, micros, now_micros, ts_micros};
use crate::catalogue::{self, Table};
use crate::metrics::ColonyMetrics;

/// Rows gathered into one transaction at most.
pub const MAX_BATCH_ROWS: usize = 200_000;

/// A registered or configured agent, as persisted in `agents`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentRecord {
    /// Agent id.
    pub agent_id: String,
    /// AgentService address (`http(s)://host:port`), empty for push-only agents.
    pub endpoint: String,
    /// Agent version.
    pub version: String,
    /// Agent mode.
    pub mode: String,
    /// Capabilities.
    pub capabilities: Vec<String>,
    /// Host name.
    pub hostname: String,
    /// "registered", "static" or "push".
    pub source: String,
    /// Unix microseconds of the first registration.
    pub registered_at_us: i64,
}

/// Retention cutoffs, one per table.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// `otel_spans`.
    pub otel_spans: SystemTime,
    /// `otel_operations`.
    pub otel_operations: SystemTime,
    /// `trace_spans`.
    pub trace_spans: SystemTime,
    /// `host_metrics`.
    pub host_metrics: SystemTime,
    /// `gaps`.
    pub gaps: SystemTime,
    /// `beyla_http_metrics`.
    pub beyla_http: SystemTime,
    /// `beyla_grpc_metrics`.
    pub beyla_grpc: SystemTime,
    /// `beyla_sql_metrics`.
    pub beyla_sql: SystemTime,
    /// `beyla_traces`.
    pub beyla_traces: SystemTime,
}

impl Cutoffs {
    /// Each dated table with its cutoff.
    pub fn by_table(&self) -> [(&'static Table, SystemTime); 9] {
        [
            (&catalogue::OTEL_SPANS, self.otel_spans),
            (&catalogue::OTEL_OPERATIONS, self.otel_operations),
            (&catalogue::TRACE_SPANS, self.trace_spans),
            (&catalogue::HOST_METRICS, self.host_metrics),
            (&catalogue::GAPS, self.gaps),
            (&catalogue::BEYLA_HTTP, self.beyla_http),
            (&catalogue::BEYLA_GRPC, self.beyla_grpc),
            (&catalogue::BEYLA_SQL, self.beyla_sql),
            (&catalogue::BEYLA_TRACES, self.beyla_traces),
        ]
    }
}

type Reply<T> = oneshot::Sender<Result<T, String>>;

/// Work for the writer.
pub enum WriteOp {
    /// Store a page and advance its cursor.
    Page(Page, Reply<PageOutcome>),
    /// Insert or update an agent record.
    Agent(AgentRecord),
    /// Delete rows older than the cutoffs; replies with rows deleted.
    Retention(Cutoffs, Reply<u64>),
    /// Finish queued work, checkpoint and stop.
    Close,
}

/// Handle on the writer thread.
pub struct Writer {
    handle: JoinHandle<()>,
}

/// What the writer is started with.
#[derive(Debug, Clone, Default)]
pub struct WriterSettings {
    /// Which Beyla traces are kept.
    pub sampling: TraceSampling,
    /// Where commits, failures and retention are counted.
    pub metrics: Arc<ColonyMetrics>,
}

/// Sends work to the store: the DuckDB writer thread, or ClickHouse.
#[derive(Clone)]
pub struct WriterSender {
    sink: Sink,
    metrics: Arc<ColonyMetrics>,
}

#[derive(Clone)]
enum Sink {
    DuckDb(Sender<WriteOp>),
    ClickHouse(ClickHouse, TraceSampling),
}

impl WriterSender {
    /// Stores into ClickHouse: each call runs on the caller's task (there are
    /// no transactions to serialise; see [`super::clickhouse`]).
    pub fn clickhouse(
        ch: ClickHouse,
        sampling: TraceSampling,
        metrics: Arc<ColonyMetrics>,
    ) -> WriterSender {
        WriterSender {
            sink: Sink::ClickHouse(ch, sampling),
            metrics,
        }
    }

    /// The metrics the writer counts in (the poller counts its polls there).
    pub fn metrics(&self) -> &Arc<ColonyMetrics> {
        &self.metrics
    }

    /// Stores a page; resolves when it is committed (or failed).
    pub async fn store(&self, page: Page) -> Result<PageOutcome, StoreError> {
        let failed = |detail: String| StoreError::Write {
            what: "a page of agent rows (its cursor did not move; it will be read again)",
            detail,
        };
        match &self.sink {
            Sink::DuckDb(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(WriteOp::Page(page, reply))
                    .map_err(|_| StoreError::WriterGone)?;
                rx.await
                    .map_err(|_| StoreError::WriterGone)?
                    .map_err(failed)
            }
            Sink::ClickHouse(ch, sampling) => {
                match super::clickhouse::store_page(ch, &page, *sampling).await {
                    Ok(outcome) => {
                        self.metrics.page_stored(&page, &outcome);
                        Ok(outcome)
                    }
                    Err(error) => {
                        self.metrics.write_failed();
                        Err(failed(error.to_string()))
                    }
                }
            }
        }
    }

    /// Queues an agent record (fire and forget).
    pub fn upsert_agent(&self, record: AgentRecord) {
        match &self.sink {
            Sink::DuckDb(tx) => {
                let _ = tx.send(WriteOp::Agent(record));
            }
            Sink::ClickHouse(ch, _) => {
                let ch = ch.clone();
                tokio::spawn(async move {
                    if let Err(error) = super::clickhouse::upsert_agent(&ch, &record).await {
                        tracing::warn!(%error, agent_id = %record.agent_id, "cannot persist agent record");
                    }
                });
            }
        }
    }

    /// Runs retention; resolves with rows deleted.
    pub async fn retention(&self, cutoffs: Cutoffs) -> Result<u64, StoreError> {
        let failed = |detail: String| StoreError::Write {
            what: "retention deletes",
            detail,
        };
        match &self.sink {
            Sink::DuckDb(tx) => {
                let (reply, rx) = oneshot::channel();
                tx.send(WriteOp::Retention(cutoffs, reply))
                    .map_err(|_| StoreError::WriterGone)?;
                rx.await
                    .map_err(|_| StoreError::WriterGone)?
                    .map_err(failed)
            }
            Sink::ClickHouse(ch, _) => {
                let rows = super::clickhouse::retention(ch, &cutoffs)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                self.metrics.retention_deleted(rows);
                Ok(rows)
            }
        }
    }

    /// Asks the writer to stop after the queued work (ClickHouse has no
    /// writer: nothing is queued).
    pub fn close(&self) {
        if let Sink::DuckDb(tx) = &self.sink {
            let _ = tx.send(WriteOp::Close);
        }
    }
}

impl Writer {
    /// Starts the writer thread on `conn` with `settings`.
    pub fn start(
        conn: Connection,
        db: Arc<Database>,
        settings: WriterSettings,
    ) -> std::io::Result<(Writer, WriterSender)> {
        let (tx, rx) = channel();
        let metrics = settings.metrics.clone();
        let handle = std::thread::Builder::new()
            .name("coral-colony-writer".into())
            .spawn(move || run(conn, &db, rx, &settings))?;
        Ok((
            Writer { handle },
            WriterSender {
                sink: Sink::DuckDb(tx),
                metrics,
            },
        ))
    }

    /// Waits for the thread to finish (after [`WriterSender::close`]).
    pub fn join(self) {
        if self.handle.join().is_err() {
            tracing::error!("colony store writer panicked");
        }
    }
}

fn run(mut conn: Connection, db: &Database, rx: Receiver<WriteOp>, settings: &WriterSettings) {
    let mut open = true;
    // Set when DuckDB invalidated the database: the next batch reopens it
    // first (the pages that failed were refused, their cursors did not move,
    // and they are read again).
    let mut reopen = false;
    while open {
        let Ok(first) = rx.recv() else { break };
        if reopen {
            reopen = !reopened(&mut conn, db);
        }
        let mut pages: Vec<(Page, Reply<PageOutcome>)> = Vec::new();
        let mut rows = 0;
        let mut next = Some(first);
        while let Some(op) = next.take() {
            match op {
                WriteOp::Page(page, reply) => {
                    rows += page.rows();
                    pages.push((page, reply));
                }
                WriteOp::Agent(record) => {
                    if let Err(error) = upsert_agent(&conn, &record) {
                        tracing::warn!(%error, agent_id = %record.agent_id, "cannot persist agent record");
                    }
                }
                WriteOp::Retention(cutoffs, reply) => {
                    let result = retention(&conn, &cutoffs);
                    if let Ok(rows) = &result {
                        settings.metrics.retention_deleted(*rows);
                    }
                    let _ = reply.send(result.map_err(|e| e.to_string()));
                }
                WriteOp::Close => open = false,
            }
            if open && rows < MAX_BATCH_ROWS {
                next = rx.try_recv().ok();
            }
        }
        if !pages.is_empty()
            && let Some(error) = commit_pages(&mut conn, pages, settings)
        {
            reopen |= error.contains("invalidated");
        }
    }
    if let Err(error) = conn.execute_batch("CHECKPOINT") {
        tracing::warn!(%error, "final colony checkpoint failed");
    }
}

/// Swaps `conn` for a connection to a new instance of the database;
/// false (and `conn` unusable) when it cannot be opened yet.
fn reopened(conn: &mut Connection, db: &Database) -> bool {
    match Connection::open_in_memory() {
        Ok(placeholder) => drop(std::mem::replace(conn, placeholder)),
        Err(error) => {
            tracing::error!(%error, "cannot release the invalidated colony database");
            return false;
        }
    }
    match db.reopen() {
        Ok(fresh) => {
            *conn = fresh;
            tracing::info!("the colony database was reopened after a failed write");
            true
        }
        Err(error) => {
            tracing::error!(%error, "cannot reopen the colony database; trying again with the next page");
            false
        }
    }
}

/// Stores `pages`; returns the last error, if any page failed.
fn commit_pages(
    conn: &mut Connection,
    pages: Vec<(Page, Reply<PageOutcome>)>,
    settings: &WriterSettings,
) -> Option<String> {
    let (sampling, metrics) = (settings.sampling, &settings.metrics);
    if pages.len() > 1 {
        let attempt = (|| -> Result<Vec<PageOutcome>, StoreError> {
            let tx = conn.transaction()?;
            let mut outcomes = Vec::with_capacity(pages.len());
            for (page, _) in &pages {
                outcomes.push(store_page(&tx, page, sampling)?);
            }
            tx.commit()?;
            Ok(outcomes)
        })();
        match attempt {
            Ok(outcomes) => {
                for ((page, reply), outcome) in pages.into_iter().zip(outcomes) {
                    metrics.page_stored(&page, &outcome);
                    let _ = reply.send(Ok(outcome));
                }
                return None;
            }
            Err(error) => {
                metrics.write_failed();
                tracing::warn!(%error, pages = pages.len(), "group commit failed, storing pages one by one");
            }
        }
    }
    let mut last_error = None;
    for (page, reply) in pages {
        let (agent, rows) = (page.agent_id.clone(), page.rows());
        let result = (|| -> Result<PageOutcome, StoreError> {
            let tx = conn.transaction()?;
            let outcome = store_page(&tx, &page, sampling)?;
            tx.commit()?;
            Ok(outcome)
        })();
        match &result {
            Ok(outcome) => metrics.page_stored(&page, outcome),
            Err(error) => {
                metrics.write_failed();
                tracing::error!(%error, agent_id = %agent, rows, "cannot store page; its cursor was not advanced, it will be read again");
                last_error = Some(error.to_string());
            }
        }
        let _ = reply.send(result.map_err(|e| e.to_string()));
    }
    last_error
}

fn upsert_agent(conn: &Connection, r: &AgentRecord) -> Result<(), StoreError> {
    let caps = r.capabilities.join(",");
    let updated = conn.execute(
        "UPDATE agents SET endpoint = ?, version = ?, mode = ?, capabilities = ?, hostname = ?, source = ?, last_seen = ? WHERE agent_id = ?",
        params![r.endpoint, r.version, r.mode, caps, r.hostname, r.source, ts_micros(now_micros()), r.agent_id],
    )?;
    if updated == 0 {
        conn.execute(
            "INSERT INTO agents (agent_id, endpoint, version, mode, capabilities, hostname, \
             source, registered_at, last_seen) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                r.agent_id,
                r.endpoint,
                r.version,
                r.mode,
                caps,
                r.hostname,
                r.source,
                ts_micros(r.registered_at_us),
                ts_micros(now_micros())
            ],
        )?;
    }
    Ok(())
}

fn retention(conn: &Connection, c: &Cutoffs) -> Result<u64, StoreError> {
    let mut deleted = 0u64;
    for (table, cutoff) in c.by_table() {
        let Some(time) = table.time else { continue };
        deleted += conn.execute(
            &format!("DELETE FROM {} WHERE {time} < ?", table.name),
            params![ts_micros(micros(cutoff))],
        )? as u64;
    }
    conn.execute_batch("CHECKPOINT")?;
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalidated_database_is_reopened_for_the_writer_and_readers() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut conn) = Database::open(dir.path()).unwrap();
        upsert_agent(
            &conn,
            &AgentRecord {
                agent_id: "a1".into(),
                ..AgentRecord::default()
            },
        )
        .unwrap();
        assert!(reopened(&mut conn, &db));
        let count = |c: &Connection| -> i64 {
            c.query_row("SELECT count(*) FROM agents", [], |r| r.get(0))
                .unwrap()
        };
        assert_eq!(count(&conn), 1, "the writer sees what was committed");
        assert_eq!(count(&db.reader().unwrap()), 1, "so do readers");
    }
}
