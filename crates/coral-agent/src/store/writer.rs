//! The single writer thread.
//!
//! It gathers work for [`COMMIT_INTERVAL`] into one transaction (group
//! commit: one commit a second at most, whatever the request rate). It sleeps
//! through the interval rather than waking for every request, then drains
//! what arrived; shutdown ([`WriteOp::Close`]) is handled at once. It appends rows with the
//! DuckDB Appender, assigns `seq_id`s and persists the next id in the same
//! transaction. Span batches (OTLP and Beyla) carry the semaphore permits that
//! admitted them, so the receivers' in-flight bounds cover data until it is
//! committed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_model::Bucket;
use coral_model::catalogue::{OTEL_OPERATIONS, OTEL_SPANS, TRACE_SPANS};
use coral_proto::common::{HostMetrics, TelemetrySpan};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, params};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError, channel};
use std::time::Instant;

use tokio::sync::OwnedSemaphorePermit;

use super::append::{Rows, store_rows, store_whole};
use super::beyla::BeylaRows;
use super::health::{PROBE_INTERVAL, StoreHealth};
use super::pending::{self, OpenMinutes};
use super::resources::Resources;
use super::schema;
use super::{Database, StoreError};
use crate::aggregate::Aggregator;
use crate::durable::Durability;
use crate::metrics::Counters;

/// Rows drained into one batch at most (kept spans, buckets and Beyla rows
/// together); a batch is committed in transactions of at most
/// `append::MAX_TRANSACTION_BYTES` of spans.
const MAX_BATCH_ROWS: usize = 100_000;

/// How long the writer gathers work after the first item before committing.
/// Each DuckDB commit has a fixed cost (statements, WAL write); one per
/// second instead of one per request keeps the agent cheap at every rate.
/// Rows are visible to `QueryTelemetry` after their commit; the colony polls
/// every 30 s by default.
pub const COMMIT_INTERVAL: Duration = Duration::from_secs(1);

/// The commit interval under `agent.telemetry.ack: stored`, where every
/// request waits for its commit: a short gathering window, so that an export
/// is answered within tens of milliseconds while requests that arrive
/// together still share one commit (a commit takes the RED deltas and spans
/// of every request queued by then).
pub const STORED_COMMIT_INTERVAL: Duration = Duration::from_millis(25);

/// The writer checks for shutdown this often while it gathers a batch.
const CLOSE_CHECK: Duration = Duration::from_millis(100);

/// A unit of work for the writer.
pub enum WriteOp {
    /// Kept spans, with the permits that admitted them.
    Spans(Vec<TelemetrySpan>, Option<OwnedSemaphorePermit>),
    /// Flushed one-minute buckets.
    Buckets(Vec<Bucket>),
    /// A host sample.
    Host(HostMetrics),
    /// Beyla histograms and spans (numbered from the Beyla sequence), with
    /// the permits that admitted the spans.
    Beyla(BeylaRows, Option<OwnedSemaphorePermit>),
    /// Push modes: the colony acknowledged every row up to this seq_id.
    Ack(u64),
    /// Delete rows older than the cutoff, then checkpoint.
    Retention(RetentionRule),
    /// Switch to `agent.telemetry.ack: stored` (sent once, at start).
    AckStored(StoredAck),
    /// Finish the work already queued, checkpoint and stop.
    Close,
}

/// What the writer needs to commit RED with each batch
/// (`agent.telemetry.ack: stored`, see [`crate::durable`]).
pub struct StoredAck {
    /// The pipeline's aggregator, whose deltas each commit takes.
    pub aggregator: Arc<Mutex<Aggregator>>,
    /// Where commit outcomes are published.
    pub durability: Durability,
    /// Seconds after a minute closes before its bucket is written
    /// (`agent.telemetry.aggregation.flush_grace`).
    pub grace_secs: i64,
    /// Operations per merged bucket before overflow.
    pub max_operations: usize,
}

/// What retention deletes.
#[derive(Debug, Clone, Copy)]
pub struct RetentionRule {
    /// Rows older than this go.
    pub cutoff: SystemTime,
    /// Push modes: rows above the acknowledged seq_id stay until they are
    /// older than this instead (the outbox keeps unsent rows).
    pub keep_unacked_until: Option<SystemTime>,
    /// Beyla rows older than this go (`beyla.storage_retention_hours`).
    pub beyla_cutoff: Option<SystemTime>,
}

/// Handle on the writer thread. Sending [`WriteOp::Close`] (or dropping every
/// [`WriterSender`]) and calling [`Writer::join`] finishes the writes queued
/// before it and checkpoints the database.
pub struct Writer {
    handle: JoinHandle<()>,
}

/// Sends work to the writer.
pub type WriterSender = Sender<WriteOp>;

impl Writer {
    /// Starts the writer thread on `conn`.
    pub fn start(
        conn: Connection,
        db: Arc<Database>,
        counters: Arc<Counters>,
    ) -> Result<(Writer, WriterSender), StoreError> {
        let (tx, rx) = channel();
        let handle = std::thread::Builder::new()
            .name("coral-store-writer".into())
            .spawn(move || run(conn, db, counters, rx))
            .map_err(|e| StoreError::Db(duckdb::Error::ToSqlConversionFailure(Box::new(e))))?;
        Ok((Writer { handle }, tx))
    }

    /// Waits for the thread to finish (after all senders are dropped).
    pub fn join(self) {
        if self.handle.join().is_err() {
            tracing::error!("agent store writer panicked");
        }
    }
}

fn run(mut conn: Connection, db: Arc<Database>, counters: Arc<Counters>, rx: Receiver<WriteOp>) {
    let mut next_seq = db.latest_seq() + 1;
    let mut next_beyla = db.latest_beyla_seq() + 1;
    let mut resources = Resources::default();
    let mut stored: Option<StoredAck> = None;
    let health = db.health().clone();
    // RED committed under `ack: stored` whose minutes are not flushed yet,
    // read back from the last run (flushed at the first commit when the
    // agent now runs with `ack: received`); and, in either mode, buckets
    // that a failed commit could not write, kept for the next one.
    let mut open = OpenMinutes::new(usize::MAX);
    match pending::load(&conn) {
        Ok(deltas) => open.absorb(deltas),
        Err(error) => tracing::error!(%error, "cannot read the pending RED of the last run"),
    }
    loop {
        // A failing store is probed (and reopened) every PROBE_INTERVAL,
        // even when no work arrives.
        let first = if health.failing().is_some() {
            match rx.recv_timeout(PROBE_INTERVAL) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        } else {
            match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => break,
            }
        };
        if health.failing().is_some() && !probe(&mut conn, &db, &health, &counters) {
            // Still failing: work that arrived waits in the channel (bounded
            // by admission, which refuses new exports meanwhile), except
            // shutdown.
            if let Some(op) = first {
                let mut batch = Batch::default();
                batch.absorb(op);
                if let Some(ack) = batch.ack_stored.take() {
                    open.set_max_operations(ack.max_operations);
                    stored = Some(ack);
                }
                if batch.close {
                    break;
                }
                drop_while_failing(batch, &mut open, &counters);
            }
            // Requests waiting on the open generation are answered now.
            if let Some(ack) = &stored {
                let (_, generation) = ack
                    .aggregator
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .take_deltas();
                let reason = health.failing().map(|f| f.reason).unwrap_or_default();
                ack.durability.failed(generation, &reason);
            }
            continue;
        }
        let Some(first) = first else {
            continue;
        };
        let mut batch = Batch::default();
        batch.absorb(first);
        if let Some(ack) = batch.ack_stored.take() {
            open.set_max_operations(ack.max_operations);
            stored = Some(ack);
        }
        let interval = match stored {
            Some(_) => STORED_COMMIT_INTERVAL,
            None => COMMIT_INTERVAL,
        };
        let deadline = Instant::now() + interval;
        // Senders do not wake a sleeping writer: queued work is drained in
        // short, infrequent passes until the interval is over.
        loop {
            while !batch.close && !batch.full() {
                match rx.try_recv() {
                    Ok(op) => batch.absorb(op),
                    Err(TryRecvError::Empty) => break,
                    // Every sender is gone: this batch is the last.
                    Err(TryRecvError::Disconnected) => batch.close = true,
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if batch.close || batch.full() || left.is_zero() {
                break;
            }
            std::thread::sleep(left.min(CLOSE_CHECK));
        }
        if let Some(ack) = batch.ack_stored.take() {
            open.set_max_operations(ack.max_operations);
            stored = Some(ack);
        }
        // Under `ack: stored`: this generation's RED, then every batch of
        // spans queued before it was taken (they were sent under the same
        // lock), so that one transaction holds both.
        let deltas = stored.as_ref().map(|ack| {
            let taken = ack
                .aggregator
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take_deltas();
            loop {
                match rx.try_recv() {
                    Ok(op) => batch.absorb(op),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        batch.close = true;
                        break;
                    }
                }
            }
            taken
        });
        let Batch {
            spans,
            buckets: new_buckets,
            hosts,
            beyla,
            permits,
            ack,
            retention,
            close,
            ack_stored: _,
        } = batch;
        if !beyla.is_empty() {
            let written = super::beyla::store(&mut conn, next_beyla, &beyla);
            next_beyla = written.next_seq;
            db.set_latest_beyla_seq(next_beyla - 1);
            Counters::add(&counters.beyla_rows_stored, written.stored);
            Counters::add(&counters.beyla_rows_dropped, written.dropped);
            if written.dropped > 0 {
                fail(
                    &health,
                    &counters,
                    "a write of Beyla rows failed (see the log)",
                );
            }
        }
        // Open minutes that closed (all of them at shutdown, or with
        // `ack: received`) become ordinary buckets in the same transaction
        // that deletes their pending rows. At shutdown the last deltas go
        // into those buckets instead of the pending rows.
        let deltas = match deltas {
            Some((delta, generation)) if close => {
                open.absorb(delta);
                Some((Vec::new(), generation))
            }
            other => other,
        };
        let now = super::super::pipeline::unix_now_secs();
        let flushed = match &stored {
            Some(ack) => open.closed(now, ack.grace_secs, close),
            None => open.closed(now, 0, true),
        };
        // The batch's own buckets first: on a failure they go back to
        // `open` (the flushed ones never left it).
        let new = new_buckets.len();
        let mut buckets = new_buckets;
        buckets.extend(open.buckets(&flushed));
        let rows = Rows {
            spans: &spans,
            buckets: &buckets,
            hosts: &hosts,
            pending: &[],
            flushed: &flushed,
        };
        match (deltas, &stored) {
            (Some((delta, generation)), Some(ack)) => {
                let rows = Rows {
                    pending: &delta,
                    ..rows
                };
                match store_whole(&mut conn, &mut resources, next_seq, rows, &counters) {
                    Ok(next) => {
                        next_seq = next;
                        db.set_latest_seq(next_seq - 1);
                        open.forget(&flushed);
                        open.absorb(delta);
                        ack.durability.stored(generation);
                        recovered(&health);
                    }
                    Err(error) => {
                        let reason = one_line(&error);
                        ack.durability.failed(generation, &reason);
                        open.absorb(buckets.drain(..new).collect());
                        fail(&health, &counters, &reason);
                    }
                }
            }
            _ if !rows.is_empty() => {
                let written = store_rows(&mut conn, &mut resources, next_seq, rows, &counters);
                next_seq = written.next_seq;
                db.set_latest_seq(next_seq - 1);
                if written.buckets_stored {
                    open.forget(&flushed);
                } else {
                    // Kept, bounded, for the next commit.
                    open.absorb(buckets.drain(..new).collect());
                }
                match written.error {
                    Some(reason) => fail(&health, &counters, &reason),
                    None => recovered(&health),
                }
            }
            _ => {}
        }
        let dropped = open.bound(MAX_HELD_MINUTES);
        Counters::add(&counters.buckets_dropped, dropped);
        drop(permits);
        if let Some(acked) = ack {
            match super::set_metadata(&conn, "push_acked_seq_id", &acked.to_string()) {
                Ok(()) => db.set_push_acked(acked),
                Err(error) => tracing::warn!(%error, "cannot persist the push acknowledgement"),
            }
        }
        if let Some(rule) = retention {
            match apply_retention(&conn, &mut resources, rule, db.push_acked()) {
                Ok(deleted) => {
                    counters
                        .rows_deleted_by_retention
                        .fetch_add(deleted, Ordering::Relaxed);
                    tracing::debug!(deleted, "retention cleanup done");
                }
                Err(error) => tracing::warn!(%error, "retention cleanup failed, will retry"),
            }
        }
        if close {
            break;
        }
    }
    if let Err(error) = conn.execute_batch("CHECKPOINT") {
        tracing::warn!(%error, "final checkpoint failed");
    }
}

/// Minutes of RED held in memory while the store cannot write; past this
/// the oldest are dropped (counted in `buckets_dropped`).
const MAX_HELD_MINUTES: usize = 120;

fn fail(health: &StoreHealth, counters: &Counters, reason: &str) {
    Counters::add(&counters.store_write_failures, 1);
    if health.fail(reason) {
        tracing::error!(
            reason,
            "the agent store cannot write: new exports are refused (503 / UNAVAILABLE) until a probe commit succeeds; free disk space in the data directory"
        );
    }
}

fn recovered(health: &StoreHealth) {
    if health.recover() {
        tracing::info!("the agent store writes again; exports are accepted");
    }
}

/// While the store fails: buckets are kept (bounded) for the recovery;
/// spans (of requests that were already admitted, or whose commit is
/// answered as failed), Beyla rows and host samples are dropped, counted.
fn drop_while_failing(batch: Batch, open: &mut OpenMinutes, counters: &Counters) {
    open.absorb(batch.buckets);
    Counters::add(&counters.spans_dropped, batch.spans.len() as u64);
    Counters::add(&counters.beyla_rows_dropped, batch.beyla.len() as u64);
}

/// Tries a commit on a failing store, reopening the database first when
/// DuckDB invalidated it; true (and the store healthy) when it went through.
fn probe(conn: &mut Connection, db: &Database, health: &StoreHealth, counters: &Counters) -> bool {
    let reason = health.failing().map(|f| f.reason).unwrap_or_default();
    if super::health::invalidated(&reason) {
        db.close_readers();
        match Connection::open_in_memory() {
            Ok(placeholder) => drop(std::mem::replace(conn, placeholder)),
            Err(error) => {
                fail(health, counters, &one_line(&error));
                return false;
            }
        }
        match db.reopen() {
            Ok(reopened) => *conn = reopened,
            Err(error) => {
                fail(health, counters, &one_line(&error));
                return false;
            }
        }
    }
    let written = conn.execute_batch(
        "UPDATE coral_metadata SET value = value WHERE key = 'next_seq_id'; CHECKPOINT;",
    );
    match written {
        Ok(()) => {
            Counters::add(&counters.store_recoveries, 1);
            recovered(health);
            true
        }
        Err(error) => {
            fail(health, counters, &one_line(&error));
            false
        }
    }
}

/// An error's text on one line (DuckDB's errors span several).
pub(super) fn one_line(error: &dyn std::fmt::Display) -> String {
    error
        .to_string()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Everything drained from the channel for one transaction.
#[derive(Default)]
struct Batch {
    spans: Vec<TelemetrySpan>,
    buckets: Vec<Bucket>,
    hosts: Vec<HostMetrics>,
    beyla: BeylaRows,
    permits: Vec<OwnedSemaphorePermit>,
    ack: Option<u64>,
    retention: Option<RetentionRule>,
    close: bool,
    ack_stored: Option<StoredAck>,
}

impl Batch {
    /// Holds as many rows as one batch takes.
    fn full(&self) -> bool {
        self.spans.len() + self.buckets.len() + self.beyla.len() >= MAX_BATCH_ROWS
    }

    fn absorb(&mut self, op: WriteOp) {
        match op {
            WriteOp::Spans(mut spans, permit) => {
                self.spans.append(&mut spans);
                self.permits.extend(permit);
            }
            WriteOp::Buckets(mut buckets) => self.buckets.append(&mut buckets),
            WriteOp::Host(sample) => self.hosts.push(sample),
            WriteOp::Beyla(mut rows, permit) => {
                self.beyla.append(&mut rows);
                self.permits.extend(permit);
            }
            WriteOp::Ack(seq) => self.ack = Some(self.ack.unwrap_or(0).max(seq)),
            WriteOp::Retention(rule) => self.retention = Some(rule),
            WriteOp::AckStored(ack) => self.ack_stored = Some(ack),
            WriteOp::Close => self.close = true,
        }
    }
}

pub(super) fn micros(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as i64
}

pub(super) fn ts(micros: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, micros)
}

/// Deletes what `rule` expires, in one transaction (a colony reading
/// meanwhile sees a bucket with all of its operations or neither), then
/// checkpoints; returns rows deleted.
fn apply_retention(
    conn: &Connection,
    resources: &mut Resources,
    rule: RetentionRule,
    acked: u64,
) -> Result<u64, duckdb::Error> {
    let tx = conn.unchecked_transaction()?;
    let deleted = delete_expired(&tx, resources, rule, acked)?;
    tx.commit()?;
    conn.execute_batch("CHECKPOINT")?;
    Ok(deleted)
}

fn delete_expired(
    conn: &Connection,
    resources: &mut Resources,
    rule: RetentionRule,
    acked: u64,
) -> Result<u64, duckdb::Error> {
    let cutoff = ts(micros(rule.cutoff));
    // In push modes a row above the acknowledged seq_id is still in the
    // outbox: it stays until the (longer) outbox age passes.
    let (keep, hard) = match rule.keep_unacked_until {
        Some(until) => (true, ts(micros(until))),
        None => (false, cutoff.clone()),
    };
    // The one retention rule, for a table's time column; binds `params`.
    let expired = |time: &str| format!("{time} < ? AND (NOT ? OR seq_id <= ? OR {time} < ?)");
    let params = params![cutoff, keep, acked, hard];
    let delete_older = |table: &str, time: &str| -> Result<u64, duckdb::Error> {
        let sql = format!("DELETE FROM {table} WHERE {}", expired(time));
        Ok(conn.execute(&sql, params)? as u64)
    };
    let (buckets, operations, spans) = (
        schema::local(&OTEL_SPANS),
        schema::local(&OTEL_OPERATIONS),
        schema::local(&TRACE_SPANS),
    );
    // Operations first: they find their buckets through `bucket_seq_id`.
    conn.execute(
        &format!(
            "DELETE FROM {} WHERE bucket_seq_id IN (SELECT seq_id FROM {} WHERE {})",
            operations.name,
            buckets.name,
            expired("bucket_time")
        ),
        params,
    )?;
    let (mut deleted, mut spans_deleted) = (0, 0);
    for (table, time) in schema::dated(&schema::TELEMETRY) {
        let rows = delete_older(table, time)?;
        if table == spans.name {
            spans_deleted = rows;
        }
        deleted += rows;
    }
    if spans_deleted > 0 {
        resources.delete_unused(conn)?;
    }
    if let Some(beyla_cutoff) = rule.beyla_cutoff {
        deleted += super::beyla::retention(conn, micros(beyla_cutoff))?;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_probe_reopens_an_invalidated_database_and_readers_follow() {
        let dir = tempfile::tempdir().unwrap();
        let (db, mut conn) = Database::open(dir.path()).unwrap();
        let (health, counters) = (db.health().clone(), Counters::default());
        fail(
            &health,
            &counters,
            "FATAL Error: database has been invalidated",
        );
        assert!(probe(&mut conn, &db, &health, &counters));
        assert!(health.failing().is_none());
        let seq: String = conn
            .query_row(
                "SELECT value FROM coral_metadata WHERE key = 'next_seq_id'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(seq, "1");
        let reader = db.reader().unwrap();
        let tables: i64 = reader
            .query_row("SELECT count(*) FROM otel_spans_local", [], |row| {
                row.get(0)
            })
            .unwrap();
        assert_eq!(tables, 0);
        assert_eq!(counters.store_recoveries.load(Ordering::Relaxed), 1);
        assert_eq!(counters.store_write_failures.load(Ordering::Relaxed), 1);
    }
}
