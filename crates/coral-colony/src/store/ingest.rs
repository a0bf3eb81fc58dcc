//! Storing one page of an agent's rows together with its cursor.
//!
//! A page is what one `QueryTelemetry` response (pull) or one
//! `IngestTelemetry` request (push) carries: rows with seq_ids in
//! `(start_seq, max_seq]` of one agent store session. [`store_page`] runs
//! inside the caller's transaction and, in that transaction:
//!
//! 1. reads the (agent, stream) cursor; a different session resets it to 0,
//!    and the old session's rows above the cursor that the agent had reported
//!    holding are recorded as a gap: its database was replaced before the
//!    colony read them;
//! 2. drops rows at or below the cursor (already stored: a retried push or a
//!    re-read page), so duplicates are impossible by construction;
//! 3. records every seq_id in `(cursor, max_seq]` that is absent from the page
//!    as a gap: agents commit seq_ids in order and never filter a colony read,
//!    so an absent id is a row that expired at the agent before it was read;
//! 4. appends spans and host samples, merges buckets ([`super::merge`]);
//! 5. advances the cursor to `max_seq` and remembers the newest seq_id the
//!    agent reported in this session (`cursors.latest_seq_id`), so that a
//!    later replacement is measured even after a colony restart.

use coral_proto::common::{HostMetrics, TelemetryBucket, TelemetrySpan};
use duckdb::{Transaction, params};

use super::beyla::{BeylaRows, TraceSampling};
use super::rows::{append_hosts, append_spans};
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
    /// The newest seq_id of this stream the agent reported holding, per store
    /// session (registration, heartbeats, earlier pages and this one). Only
    /// read when the session changes: it bounds the old session's lost rows.
    pub reported: Vec<(String, u64)>,
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
    /// Rows of the previous session the colony never read (inclusive range),
    /// recorded as a gap when the page started a new session.
    pub replaced_gap: Option<(u64, u64)>,
    /// Rows stored, by table.
    pub stored_by_table: StoredRows,
    /// Indexes in [`Page::buckets`] of the buckets newly stored (above the
    /// cursor, not refused).
    pub stored_buckets: Vec<usize>,
}

/// Rows newly stored by one page, by table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredRows {
    /// 1-minute buckets merged into `otel_spans` (with their operations).
    pub otel_spans: usize,
    /// Kept spans in `trace_spans`.
    pub trace_spans: usize,
    /// Host samples in `host_metrics`.
    pub host_metrics: usize,
    /// Beyla rows (histograms and spans).
    pub beyla: usize,
}

/// The stored cursor of (agent, stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The agent store session the cursor belongs to.
    pub session_id: String,
    /// The highest seq_id stored here.
    pub seq_id: u64,
    /// The newest seq_id the agent reported holding in that session.
    pub latest_seq_id: u64,
}

/// The stored cursor of (agent, stream).
pub fn read_cursor(
    tx: &duckdb::Connection,
    agent_id: &str,
    stream: Stream,
) -> Result<Option<Cursor>, StoreError> {
    let mut stmt = tx.prepare_cached(
        "SELECT session_id, seq_id, coalesce(latest_seq_id, 0) FROM cursors \
         WHERE agent_id = ? AND stream = ?",
    )?;
    let mut rows = stmt.query(params![agent_id, stream.cursor_key()])?;
    Ok(match rows.next()? {
        Some(row) => Some(Cursor {
            session_id: row.get(0)?,
            seq_id: row.get(1)?,
            latest_seq_id: row.get(2)?,
        }),
        None => None,
    })
}

/// The reason recorded for rows that expired at the agent unread.
pub const EXPIRED: &str = "expired at the agent before the colony read it";

/// The reason recorded for rows lost with an agent's replaced database.
pub const REPLACED: &str = "lost with the agent's replaced database before the colony read it";

/// The newest seq_id `page` knows the agent reported in `session_id`.
pub(crate) fn reported_in(page: &Page, session_id: &str) -> u64 {
    page.reported
        .iter()
        .filter(|(s, _)| s == session_id)
        .map(|&(_, seq)| seq)
        .max()
        .unwrap_or(0)
}

/// Stores `page` and advances its cursor inside `tx` (see the module docs).
pub fn store_page(
    tx: &Transaction<'_>,
    page: &Page,
    sampling: TraceSampling,
) -> Result<PageOutcome, StoreError> {
    let mut outcome = PageOutcome::default();
    let now = ts_micros(now_micros());
    let stored = read_cursor(tx, &page.agent_id, page.stream)?;
    let (cursor, latest) = match stored {
        Some(c) if c.session_id == page.session_id => (c.seq_id, c.latest_seq_id),
        Some(old) => {
            outcome.session_reset = true;
            // A session that sends rows again was not replaced after all
            // (two processes with one agent id, e.g. a rolling update whose
            // old pod still pushes): what was recorded as lost with it is
            // not. Should it stop for good, the next reset records it again
            // from its cursor then.
            tx.prepare_cached(
                "DELETE FROM gaps WHERE agent_id = ? AND session_id = ? AND reason = ?",
            )?
            .execute(params![page.agent_id, page.session_id, REPLACED])?;
            // What the old session held beyond the cursor went with its
            // database. Rows written after the agent's last report are not
            // known here, so the recorded range is a lower bound.
            let reached = old.latest_seq_id.max(reported_in(page, &old.session_id));
            if reached > old.seq_id {
                let lost = (old.seq_id + 1, reached);
                record_gaps(tx, page, &old.session_id, &[lost], &now, REPLACED)?;
                tracing::warn!(agent_id = %page.agent_id, stream = page.stream.as_str(), session = %old.session_id, from = lost.0, to = lost.1, "the agent's database was replaced before these rows of its previous session reached the colony; recorded as a gap");
                outcome.replaced_gap = Some(lost);
            }
            (0, 0)
        }
        None => (0, 0),
    };
    let Page {
        agent_id,
        stream,
        session_id,
        max_seq,
        ..
    } = page;
    let max_seq = *max_seq;
    let stream = *stream;
    let Fresh {
        buckets: fresh_buckets,
        spans,
        hosts,
        beyla,
        duplicates,
        gaps,
    } = fresh(page, cursor);
    let buckets: Vec<&TelemetryBucket> = fresh_buckets.iter().map(|&i| &page.buckets[i]).collect();
    outcome.duplicates = duplicates;
    outcome.gaps = gaps;
    record_gaps(tx, page, session_id, &outcome.gaps, &now, EXPIRED)?;

    append_spans(tx, agent_id, &spans)?;
    append_hosts(tx, agent_id, &hosts)?;
    let merged = merge::merge_buckets(tx, agent_id, &buckets)?;
    outcome.rejected = merged.rejected;
    outcome.reject_reason = merged.reject_reason;
    outcome.stored = spans.len() + hosts.len() + merged.stored;
    outcome.stored_by_table = StoredRows {
        otel_spans: merged.stored,
        trace_spans: spans.len(),
        host_metrics: hosts.len(),
        beyla: 0,
    };
    outcome.stored_buckets = fresh_buckets
        .into_iter()
        .enumerate()
        .filter(|(position, _)| !merged.refused.contains(position))
        .map(|(_, i)| i)
        .collect();
    if !beyla.is_empty() {
        let b = super::beyla::store(tx, agent_id, &beyla, sampling)?;
        outcome.stored += b.stored;
        outcome.stored_by_table.beyla = b.stored;
        outcome.rejected += b.rejected;
        if outcome.reject_reason.is_none() {
            outcome.reject_reason = b.reject_reason;
        }
    }

    let new_cursor = cursor.max(max_seq);
    let new_latest = latest_after(page, latest, new_cursor);
    let rows = outcome.stored as u64;
    // UPDATE-then-INSERT rather than a keyed upsert: the writer may advance
    // the same cursor several times in one transaction.
    let updated = tx.execute(
        "UPDATE cursors SET seq_id = ?, latest_seq_id = ?, updated_at = ?, \
         rows_received = CASE WHEN session_id = ? THEN rows_received + ? ELSE ? END, \
         session_id = ? WHERE agent_id = ? AND stream = ?",
        params![
            new_cursor,
            new_latest,
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
            "INSERT INTO cursors (agent_id, stream, session_id, seq_id, rows_received, \
             updated_at, latest_seq_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            params![
                agent_id,
                stream.cursor_key(),
                session_id,
                new_cursor,
                rows,
                now,
                new_latest
            ],
        )?;
    }
    outcome.cursor = new_cursor;
    Ok(outcome)
}

/// The rows of a page above the cursor, and what the page lacks.
pub(crate) struct Fresh<'a> {
    /// Positions in [`Page::buckets`] of the buckets above the cursor.
    pub buckets: Vec<usize>,
    /// Kept spans above the cursor.
    pub spans: Vec<&'a TelemetrySpan>,
    /// Host samples above the cursor.
    pub hosts: Vec<&'a HostMetrics>,
    /// Beyla rows above the cursor.
    pub beyla: BeylaRows,
    /// Rows at or below the cursor (stored before).
    pub duplicates: usize,
    /// Inclusive seq_id ranges the page should hold and does not.
    pub gaps: Vec<(u64, u64)>,
}

/// Splits `page` at `cursor` (the highest seq_id stored, in the page's
/// session): the rows to store and the holes to record as gaps.
pub(crate) fn fresh(page: &Page, cursor: u64) -> Fresh<'_> {
    let max_seq = page.max_seq;
    let is_fresh = |seq: u64| seq > cursor && seq <= max_seq;
    let buckets: Vec<usize> = (0..page.buckets.len())
        .filter(|&i| is_fresh(page.buckets[i].seq_id))
        .collect();
    let spans: Vec<&TelemetrySpan> = page.spans.iter().filter(|s| is_fresh(s.seq_id)).collect();
    let hosts: Vec<&HostMetrics> = page.hosts.iter().filter(|h| is_fresh(h.seq_id)).collect();
    let mut beyla = page.beyla.clone();
    beyla.retain(is_fresh);
    let duplicates = page.rows() - buckets.len() - spans.len() - hosts.len() - beyla.len();
    // Holes in (lower, max_seq]: lower is where this page's knowledge starts.
    // A push page starting above the cursor covers only (start_seq, max_seq]:
    // what lies below it the agent believes acknowledged, so it is not
    // provably lost.
    let lower = cursor.max(page.start_seq);
    let mut present: Vec<u64> = buckets
        .iter()
        .map(|&i| page.buckets[i].seq_id)
        .chain(spans.iter().map(|s| s.seq_id))
        .chain(hosts.iter().map(|h| h.seq_id))
        .chain(beyla.seq_ids())
        .collect();
    present.sort_unstable();
    let gaps = holes(lower, max_seq, &present);
    Fresh {
        buckets,
        spans,
        hosts,
        beyla,
        duplicates,
        gaps,
    }
}

/// The newest seq_id the agent reported for the session after storing a
/// page: what it reported before, in the page, and the new cursor.
pub(crate) fn latest_after(page: &Page, latest: u64, new_cursor: u64) -> u64 {
    latest
        .max(reported_in(page, &page.session_id))
        .max(new_cursor)
}

/// Appends `gaps` (inclusive seq_id ranges of `session_id`) with `reason`.
fn record_gaps(
    tx: &Transaction<'_>,
    page: &Page,
    session_id: &str,
    gaps: &[(u64, u64)],
    now: &duckdb::types::Value,
    reason: &str,
) -> Result<(), StoreError> {
    if gaps.is_empty() {
        return Ok(());
    }
    let table = &crate::catalogue::GAPS;
    let mut app = tx.appender_with_columns(table.name, &table.column_names())?;
    for &(from, to) in gaps {
        app.append_row(params![
            page.agent_id,
            page.stream.as_str(),
            session_id,
            from,
            to,
            now.clone(),
            reason,
        ])?;
    }
    app.flush()?;
    Ok(())
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
