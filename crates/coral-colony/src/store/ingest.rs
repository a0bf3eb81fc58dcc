//! Storing one page of an agent's rows together with its cursor.
//!
//! A page is what one `QueryTelemetry` response (pull) or one
//! `IngestTelemetry` request (push) carries: rows with seq_ids in
//! `(start_seq, max_seq]` of one agent store session. [`store_page`] runs
//! inside the caller's transaction and, in that transaction:
//!
//! 1. reads the (agent, stream) cursor; a different session resets it to 0;
//! 2. drops rows at or below the cursor (already stored: a retried push or a
//!    re-read page), so duplicates are impossible by construction;
//! 3. records every seq_id in `(cursor, max_seq]` that is absent from the page
//!    as a gap: agents commit seq_ids in order and never filter a colony read,
//!    so an absent id is a row that expired at the agent before it was read;
//! 4. appends spans and host samples, merges buckets ([`super::merge`]);
//! 5. advances the cursor to `max_seq`.

use coral_proto::common::{HostMetrics, TelemetryBucket, TelemetrySpan};
use duckdb::{Transaction, params};

use super::beyla::{BeylaRows, TraceSampling};
use super::{StoreError, merge, now_micros, ts_micros};

/// Which cursor a page advances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// Rows the poller pulled with `QueryTelemetry`.
    Pull,
    /// Rows an agent pushed with `IngestTelemetry`.
    Push,
    /// Beyla rows the poller pulled with `QueryBeylaMetrics` (their own
    /// seq_id sequence at the agent).
    Beyla,
}

impl Stream {
    /// The name stored in `gaps.stream`, and how logs name the stream.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Pull => "telemetry",
            Stream::Push => "push",
            Stream::Beyla => "beyla",
        }
    }

    /// The name of the stream's cursor in `cursors.stream`. Pulled and pushed
    /// rows number from the same agent sequence, so they share one cursor:
    /// an agent that moves between being polled and pushing (same data
    /// directory) neither re-stores what the colony has nor leaves false gaps.
    pub fn cursor_key(self) -> &'static str {
        match self {
            Stream::Pull | Stream::Push => "telemetry",
            Stream::Beyla => "beyla",
        }
    }
}

/// One page of an agent's rows.
#[derive(Debug, Clone)]
pub struct Page {
    /// The agent.
    pub agent_id: String,
    /// Pull or push.
    pub stream: Stream,
    /// The agent store session the seq_ids belong to.
    pub session_id: String,
    /// Exclusive lower bound of the page's seq_id range.
    pub start_seq: u64,
    /// Inclusive upper bound of the page's seq_id range.
    pub max_seq: u64,
    /// Buckets in the range.
    pub buckets: Vec<TelemetryBucket>,
    /// Kept spans in the range.
    pub spans: Vec<TelemetrySpan>,
    /// Host samples in the range.
    pub hosts: Vec<HostMetrics>,
    /// Beyla rows in the range (Beyla stream only).
    pub beyla: BeylaRows,
}

impl Page {
    /// Rows in the page.
    pub fn rows(&self) -> usize {
        self.buckets.len() + self.spans.len() + self.hosts.len() + self.beyla.len()
    }
}

/// What storing a page did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageOutcome {
    /// Rows newly stored.
    pub stored: usize,
    /// Rows at or below the cursor, already stored earlier.
    pub duplicates: usize,
    /// Rows refused as invalid (with the first reason).
    pub rejected: usize,
    /// Why the first rejected row was refused.
    pub reject_reason: Option<String>,
    /// The cursor after the page.
    pub cursor: u64,
    /// Gaps recorded: inclusive seq_id ranges.
    pub gaps: Vec<(u64, u64)>,
    /// True when the page started a new agent store session.
    pub session_reset: bool,
}

/// The stored cursor of (agent, stream): session id and seq_id.
pub fn read_cursor(
    tx: &duckdb::Connection,
    agent_id: &str,
    stream: Stream,
) -> Result<Option<(String, u64)>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT session_id, seq_id FROM cursors WHERE agent_id = ? AND stream = ?",
    )?;
    let mut rows = stmt.query(params![agent_id, stream.cursor_key()])?;
    Ok(match rows.next()? {
        Some(row) => Some((row.get(0)?, row.get(1)?)),
        None => None,
    })
}

/// Stores `page` and advances its cursor inside `tx` (see the module docs).
pub fn store_page(
    tx: &Transaction<'_>,
    page: &Page,
    sampling: TraceSampling,
) -> Result<PageOutcome, StoreError> {
    let mut outcome = PageOutcome::default();
    let cursor = match read_cursor(tx, &page.agent_id, page.stream)? {
        Some((session, seq)) if session == page.session_id => seq,
        Some(_) => {
            outcome.session_reset = true;
            0
        }
        None => 0,
    };
    let Page {
        agent_id,
        stream,
        session_id,
        start_seq,
        max_seq,
        ..
    } = page;
    let (stream, start_seq, max_seq) = (*stream, *start_seq, *max_seq);
    let fresh = |seq: u64| seq > cursor && seq <= max_seq;
    let buckets: Vec<&TelemetryBucket> = page.buckets.iter().filter(|b| fresh(b.seq_id)).collect();
    let spans: Vec<&TelemetrySpan> = page.spans.iter().filter(|s| fresh(s.seq_id)).collect();
    let hosts: Vec<&HostMetrics> = page.hosts.iter().filter(|h| fresh(h.seq_id)).collect();
    let mut beyla = page.beyla.clone();
    beyla.retain(fresh);
    outcome.duplicates = page.rows() - buckets.len() - spans.len() - hosts.len() - beyla.len();

    // Holes in (lower, max_seq]: lower is where this page's knowledge starts.
    // A push page starting above the cursor covers only (start_seq, max_seq]:
    // what lies below it the agent believes acknowledged, so it is not
    // provably lost.
    let lower = cursor.max(start_seq);
    let mut present: Vec<u64> = buckets
        .iter()
        .map(|b| b.seq_id)
        .chain(spans.iter().map(|s| s.seq_id))
        .chain(hosts.iter().map(|h| h.seq_id))
        .chain(beyla.seq_ids())
        .collect();
    present.sort_unstable();
    outcome.gaps = holes(lower, max_seq, &present);
    let now = ts_micros(now_micros());
    if !outcome.gaps.is_empty() {
        let mut app = tx.appender("gaps")?;
        for &(from, to) in &outcome.gaps {
            app.append_row(params![
                agent_id,
                stream.as_str(),
                session_id,
                from,
                to,
                now.clone(),
                "expired at the agent before the colony read it",
            ])?;
        }
        app.flush()?;
    }

    append_spans(tx, agent_id, &spans)?;
    append_hosts(tx, agent_id, &hosts)?;
    let merged = merge::merge_buckets(tx, agent_id, &buckets)?;
    outcome.rejected = merged.rejected;
    outcome.reject_reason = merged.reject_reason;
    outcome.stored = spans.len() + hosts.len() + merged.stored;
    if !beyla.is_empty() {
        let b = super::beyla::store(tx, agent_id, &beyla, sampling)?;
        outcome.stored += b.stored;
        outcome.rejected += b.rejected;
        if outcome.reject_reason.is_none() {
            outcome.reject_reason = b.reject_reason;
        }
    }

    let new_cursor = cursor.max(max_seq);
    let rows = outcome.stored as u64;
    // UPDATE-then-INSERT rather than a keyed upsert: the writer may advance
    // the same cursor several times in one transaction.
    let updated = tx.execute(
        "UPDATE cursors SET seq_id = ?, updated_at = ?, \
         rows_received = CASE WHEN session_id = ? THEN rows_received + ? ELSE ? END, \
         session_id = ? WHERE agent_id = ? AND stream = ?",
        params![
            new_cursor,
            now.clone(),
            session_id,
            rows,
            rows,
            session_id,
            agent_id,
            stream.cursor_key()
        ],
    )?;
    if updated == 0 {
        tx.execute(
            "INSERT INTO cursors VALUES (?, ?, ?, ?, ?, ?)",
            params![
                agent_id,
                stream.cursor_key(),
                session_id,
                new_cursor,
                rows,
                now
            ],
        )?;
    }
    outcome.cursor = new_cursor;
    Ok(outcome)
}

/// Inclusive ranges in `(lower, upper]` missing from the sorted `present`.
pub fn holes(lower: u64, upper: u64, present: &[u64]) -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut expected = lower + 1;
    for &seq in present {
        if seq < expected {
            continue;
        }
        if seq > expected {
            gaps.push((expected, seq - 1));
        }
        expected = seq + 1;
    }
    if expected <= upper {
        gaps.push((expected, upper));
    }
    gaps
}

/// Appends spans as one Arrow record batch: DuckDB ingests a columnar batch
/// several times faster than row-by-row appends (see BENCHMARKS.md).
fn append_spans(
    tx: &Transaction<'_>,
    agent_id: &str,
    spans: &[&TelemetrySpan],
) -> Result<(), StoreError> {
    if spans.is_empty() {
        return Ok(());
    }
    let batch = spans_batch(agent_id, spans).map_err(|e| StoreError::Corrupt {
        what: "span batch",
        detail: e.to_string(),
    })?;
    let mut app = tx.appender("trace_spans")?;
    app.append_record_batch(batch)?;
    app.flush()?;
    Ok(())
}

/// The `trace_spans` columns of `spans`, in table order (public for the
/// poll-cycle benchmark's baseline).
pub fn spans_batch(
    agent_id: &str,
    spans: &[&TelemetrySpan],
) -> Result<duckdb::arrow::record_batch::RecordBatch, duckdb::arrow::error::ArrowError> {
    use std::sync::Arc;

    use duckdb::arrow::array::{
        ArrayRef, BooleanArray, Int32Array, Int64Array, StringArray, TimestampMicrosecondArray,
        UInt64Array,
    };
    use duckdb::arrow::record_batch::RecordBatch;

    let text = |f: fn(&TelemetrySpan) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(spans.iter().map(|s| f(s))))
    };
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "agent_id",
            Arc::new(StringArray::from_iter_values(
                spans.iter().map(|_| agent_id),
            )),
        ),
        (
            "seq_id",
            Arc::new(UInt64Array::from_iter_values(
                spans.iter().map(|s| s.seq_id),
            )),
        ),
        ("trace_id", text(|s| &s.trace_id)),
        ("span_id", text(|s| &s.span_id)),
        ("parent_span_id", text(|s| &s.parent_span_id)),
        ("service_name", text(|s| &s.service_name)),
        ("span_name", text(|s| &s.span_name)),
        ("span_kind", text(|s| &s.span_kind)),
        (
            "start_time",
            Arc::new(TimestampMicrosecondArray::from_iter_values(
                spans.iter().map(|s| s.start_time_unix_nano / 1_000),
            )),
        ),
        (
            "start_time_ns",
            Arc::new(Int64Array::from_iter_values(
                spans.iter().map(|s| s.start_time_unix_nano),
            )),
        ),
        (
            "duration_us",
            Arc::new(Int64Array::from_iter_values(
                spans.iter().map(|s| s.duration_us),
            )),
        ),
        (
            "is_error",
            Arc::new(BooleanArray::from_iter(
                spans.iter().map(|s| Some(s.is_error)),
            )),
        ),
        ("status_code", text(|s| &s.status_code)),
        ("status_message", text(|s| &s.status_message)),
        (
            "http_status_code",
            Arc::new(Int32Array::from_iter(spans.iter().map(|s| {
                (s.http_status_code != 0).then_some(s.http_status_code)
            }))),
        ),
        ("http_method", text(|s| &s.http_method)),
        ("http_route", text(|s| &s.http_route)),
        ("rpc_system", text(|s| &s.rpc_system)),
        ("rpc_service", text(|s| &s.rpc_service)),
        ("rpc_method", text(|s| &s.rpc_method)),
        (
            "grpc_status_code",
            Arc::new(Int32Array::from_iter(
                spans.iter().map(|s| s.grpc_status_code),
            )),
        ),
        ("db_system", text(|s| &s.db_system)),
        ("db_operation", text(|s| &s.db_operation)),
        ("db_collection", text(|s| &s.db_collection)),
        ("keep_reason", text(|s| &s.keep_reason)),
        ("attributes", text(|s| &s.attributes_json)),
        ("resource", text(|s| &s.resource_json)),
    ];
    RecordBatch::try_from_iter(columns)
}

/// Host samples are keyed by (agent_id, bucket_time): a newer sample of the
/// same minute replaces the older one.
fn append_hosts(
    tx: &Transaction<'_>,
    agent_id: &str,
    hosts: &[&HostMetrics],
) -> Result<(), StoreError> {
    if hosts.is_empty() {
        return Ok(());
    }
    {
        let mut delete =
            tx.prepare_cached("DELETE FROM host_metrics WHERE agent_id = ? AND bucket_time = ?")?;
        for h in hosts {
            delete.execute(params![agent_id, ts_micros(h.bucket_time * 1_000_000)])?;
        }
    }
    // Within the page, the last sample of a minute wins.
    let mut latest: Vec<&HostMetrics> = Vec::with_capacity(hosts.len());
    for &h in hosts {
        match latest.iter_mut().find(|l| l.bucket_time == h.bucket_time) {
            Some(slot) if slot.seq_id < h.seq_id => *slot = h,
            Some(_) => {}
            None => latest.push(h),
        }
    }
    let mut app = tx.appender("host_metrics")?;
    for h in latest {
        app.append_row(params![
            agent_id,
            ts_micros(h.bucket_time * 1_000_000),
            h.hostname,
            h.cpu_percent,
            h.memory_used_bytes,
            h.memory_total_bytes,
            h.net_rx_bytes_per_sec,
            h.net_tx_bytes_per_sec,
            h.load1,
            h.load5,
            h.load15,
            h.interval_seconds,
        ])?;
    }
    app.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::holes;

    #[test]
    fn holes_cover_start_middle_and_end() {
        assert_eq!(holes(0, 5, &[1, 2, 3, 4, 5]), vec![]);
        assert_eq!(holes(0, 5, &[3, 4]), vec![(1, 2), (5, 5)]);
        assert_eq!(holes(10, 12, &[]), vec![(11, 12)]);
        assert_eq!(holes(10, 10, &[]), vec![]);
        assert_eq!(holes(2, 6, &[1, 2, 4, 6]), vec![(3, 3), (5, 5)]);
    }
}
