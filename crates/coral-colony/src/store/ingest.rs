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

use super::beyla::{BeylaPage, TraceSampling};
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
    /// The name stored in `cursors.stream` and `gaps.stream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Pull => "telemetry",
            Stream::Push => "push",
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
    pub beyla: BeylaPage,
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
    let mut rows = stmt.query(params![agent_id, stream.as_str()])?;
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
            stream.as_str()
        ],
    )?;
    if updated == 0 {
        tx.execute(
            "INSERT INTO cursors VALUES (?, ?, ?, ?, ?, ?)",
            params![agent_id, stream.as_str(), session_id, new_cursor, rows, now],
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

fn append_spans(
    tx: &Transaction<'_>,
    agent_id: &str,
    spans: &[&TelemetrySpan],
) -> Result<(), StoreError> {
    if spans.is_empty() {
        return Ok(());
    }
    let mut app = tx.appender("trace_spans")?;
    for s in spans {
        let http_status = (s.http_status_code != 0).then_some(s.http_status_code);
        app.append_row(params![
            agent_id,
            s.seq_id,
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.service_name,
            s.span_name,
            s.span_kind,
            ts_micros(s.start_time_unix_nano / 1_000),
            s.start_time_unix_nano,
            s.duration_us,
            s.is_error,
            s.status_code,
            s.status_message,
            http_status,
            s.http_method,
            s.http_route,
            s.rpc_system,
            s.rpc_service,
            s.rpc_method,
            s.grpc_status_code,
            s.db_system,
            s.db_operation,
            s.db_collection,
            s.keep_reason,
            s.attributes_json,
            s.resource_json,
        ])?;
    }
    app.flush()?;
    Ok(())
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
