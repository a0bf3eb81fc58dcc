//! Storing one page in ClickHouse: the rows above the cursor, one insert per
//! table, then the gaps, then the cursor (the order that makes a repeat
//! harmless; see the [module docs](super)).

use clickhouse::{RowOwned, RowWrite};

use super::rows::{AgentRow, BucketRow, CursorRow, GapRow, HostRow, OperationRow, SpanRow};
use super::{ClickHouse, ClickHouseError, STATEMENT_TIMEOUT};
use crate::catalogue::{self, Table};
use crate::store::beyla::{BeylaOutcome, TraceSampling};
use crate::store::ingest::{
    Cursor, EXPIRED, Page, PageOutcome, REPLACED, StoredRows, fresh, latest_after, reported_in,
};
use crate::store::writer::{AgentRecord, Cutoffs};
use crate::store::{micros, now_micros};

/// Inserts `rows` into `table` in one statement.
pub(crate) async fn insert<T>(
    ch: &ClickHouse,
    table: &Table,
    rows: &[T],
) -> Result<(), ClickHouseError>
where
    T: RowOwned + RowWrite,
{
    if rows.is_empty() {
        return Ok(());
    }
    let failed = ch.failed("insert");
    // A server that stops answering fails the insert (the page is read again
    // later) instead of holding the poll forever.
    let mut insert = ch
        .client()
        .insert::<T>(table.name)
        .await
        .map_err(&failed)?
        .with_timeouts(Some(STATEMENT_TIMEOUT), Some(STATEMENT_TIMEOUT));
    for row in rows {
        insert.write(row).await.map_err(&failed)?;
    }
    insert.end().await.map_err(&failed)
}

/// The stored cursor of (agent, stream), newest version.
pub(crate) async fn read_cursor(
    ch: &ClickHouse,
    agent_id: &str,
    stream: &str,
) -> Result<Option<(Cursor, u64)>, ClickHouseError> {
    let sql = format!(
        "SELECT ?fields FROM {} FINAL WHERE agent_id = ? AND stream = ? \
         ORDER BY updated_at DESC LIMIT 1",
        ch.target().table(&catalogue::CURSORS)
    );
    let row: Option<CursorRow> = ch
        .client()
        .query(&sql)
        .bind(agent_id)
        .bind(stream)
        .fetch_optional()
        .await
        .map_err(ch.failed("cursor read"))?;
    Ok(row.map(|r| {
        (
            Cursor {
                session_id: r.session_id,
                seq_id: r.seq_id,
                latest_seq_id: r.latest_seq_id.unwrap_or_default(),
            },
            r.rows_received,
        )
    }))
}

/// Stores `page` and advances its cursor; Beyla spans are trace-sampled by
/// `sampling`.
pub async fn store_page(
    ch: &ClickHouse,
    page: &Page,
    sampling: TraceSampling,
) -> Result<PageOutcome, ClickHouseError> {
    let mut outcome = PageOutcome::default();
    let now = now_micros();
    let key = page.stream.cursor_key();
    let stored = read_cursor(ch, &page.agent_id, key).await?;
    let mut gaps = Vec::new();
    let (cursor, latest, received) = match stored {
        Some((c, received)) if c.session_id == page.session_id => {
            (c.seq_id, c.latest_seq_id, received)
        }
        Some((old, _)) => {
            outcome.session_reset = true;
            // As in the embedded store: a session that sends rows again was
            // not replaced after all, so what was recorded as lost with it
            // is not (a mutation: applied in the background, seconds later).
            forget_replaced(ch, page).await?;
            let reached = old.latest_seq_id.max(reported_in(page, &old.session_id));
            if reached > old.seq_id {
                let lost = (old.seq_id + 1, reached);
                gaps.push(gap(page, &old.session_id, lost, now, REPLACED));
                outcome.replaced_gap = Some(lost);
            }
            (0, 0, 0)
        }
        None => (0, 0, 0),
    };
    let fresh = fresh(page, cursor);
    outcome.duplicates = fresh.duplicates;
    outcome.gaps = fresh.gaps.clone();
    gaps.extend(
        fresh
            .gaps
            .iter()
            .map(|&range| gap(page, &page.session_id, range, now, EXPIRED)),
    );
    let (agent, session) = (page.agent_id.as_str(), page.session_id.as_str());
    let mut buckets = Vec::with_capacity(fresh.buckets.len());
    let mut operations = Vec::new();
    for &i in &fresh.buckets {
        let b = &page.buckets[i];
        if let Err(error) = check_bucket(b) {
            outcome.rejected += 1;
            outcome
                .reject_reason
                .get_or_insert_with(|| format!("bucket seq_id {}: {error}", b.seq_id));
            continue;
        }
        buckets.push(BucketRow::new(agent, session, b));
        operations.extend(
            b.operations
                .iter()
                .map(|op| OperationRow::new(agent, session, b, op)),
        );
        outcome.stored_buckets.push(i);
    }
    let spans: Vec<SpanRow> = fresh
        .spans
        .iter()
        .map(|s| SpanRow::new(agent, session, s))
        .collect();
    let hosts: Vec<HostRow> = fresh
        .hosts
        .iter()
        .map(|h| HostRow::new(agent, session, h))
        .collect();
    insert(ch, &catalogue::OTEL_SPANS, &buckets).await?;
    insert(ch, &catalogue::OTEL_OPERATIONS, &operations).await?;
    insert(ch, &catalogue::TRACE_SPANS, &spans).await?;
    insert(ch, &catalogue::HOST_METRICS, &hosts).await?;
    insert(ch, &catalogue::GAPS, &gaps).await?;
    let beyla = if fresh.beyla.is_empty() {
        BeylaOutcome::default()
    } else {
        super::beyla::store(ch, (agent, session), &fresh.beyla, sampling).await?
    };
    outcome.rejected += beyla.rejected;
    if outcome.reject_reason.is_none() {
        outcome.reject_reason = beyla.reject_reason;
    }
    outcome.stored = buckets.len() + spans.len() + hosts.len() + beyla.stored;
    outcome.stored_by_table = StoredRows {
        otel_spans: buckets.len(),
        trace_spans: spans.len(),
        host_metrics: hosts.len(),
        beyla: beyla.stored,
    };
    let new_cursor = cursor.max(page.max_seq);
    let row = CursorRow {
        agent_id: page.agent_id.clone(),
        stream: key.to_owned(),
        session_id: page.session_id.clone(),
        seq_id: new_cursor,
        rows_received: received + outcome.stored as u64,
        updated_at: now,
        latest_seq_id: Some(latest_after(page, latest, new_cursor)),
    };
    insert(ch, &catalogue::CURSORS, &[row]).await?;
    outcome.cursor = new_cursor;
    Ok(outcome)
}

/// Deletes the gaps recorded as lost with `page`'s session when another
/// session replaced it.
async fn forget_replaced(ch: &ClickHouse, page: &Page) -> Result<(), ClickHouseError> {
    ch.client()
        .query(&format!(
            "{} DELETE WHERE agent_id = ? AND session_id = ? AND reason = ?",
            ch.target().alter(&catalogue::GAPS)
        ))
        .bind(&page.agent_id)
        .bind(&page.session_id)
        .bind(REPLACED)
        .execute()
        .await
        .map_err(ch.failed("gap correction"))
}

fn gap(page: &Page, session: &str, (from, to): (u64, u64), now: i64, reason: &str) -> GapRow {
    GapRow {
        agent_id: page.agent_id.clone(),
        stream: page.stream.as_str().to_owned(),
        session_id: session.to_owned(),
        from_seq_id: from,
        to_seq_id: to,
        detected_at: now,
        reason: reason.to_owned(),
    }
}

/// A bucket is refused as the embedded store refuses it: when its sketch or
/// samples do not decode.
fn check_bucket(b: &coral_proto::common::TelemetryBucket) -> Result<(), coral_model::ModelError> {
    coral_model::Bucket::from_proto(b).map(|_| ())
}

/// Inserts a new version of an agent's record.
pub async fn upsert_agent(ch: &ClickHouse, record: &AgentRecord) -> Result<(), ClickHouseError> {
    insert(
        ch,
        &catalogue::AGENTS,
        &[AgentRow::new(record, now_micros())],
    )
    .await
}

/// Inserts a version of each agent's record seen at the given time (Unix
/// µs): what the colony that polls them tells the others.
pub async fn record_seen(
    ch: &ClickHouse,
    seen: &[(AgentRecord, i64)],
) -> Result<(), ClickHouseError> {
    let rows: Vec<AgentRow> = seen.iter().map(|(r, at)| AgentRow::new(r, *at)).collect();
    insert(ch, &catalogue::AGENTS, &rows).await
}

/// Drops the days of every dated table that end before its cutoff; returns
/// the rows dropped. Rows of the cutoff's own day stay until the day has
/// passed (reads select by time, so they are not shown as older).
pub async fn retention(ch: &ClickHouse, cutoffs: &Cutoffs) -> Result<u64, ClickHouseError> {
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct Part {
        partition: String,
        rows: u64,
    }
    let mut dropped = 0;
    for (table, cutoff) in cutoffs.by_table() {
        let local = ch.target().partitioned(table);
        let day = yyyymmdd(micros(cutoff));
        let parts: Vec<Part> = ch
            .client()
            .query(&format!(
                "SELECT partition, sum(rows) AS rows FROM {} \
                 WHERE database = ? AND table = ? AND active GROUP BY partition",
                ch.target().parts()
            ))
            .bind(&ch.target().database)
            .bind(&local)
            .fetch_all()
            .await
            .map_err(ch.failed("retention"))?;
        for part in parts {
            // Partitions are `toYYYYMMDD` numbers; anything else is not ours.
            let Ok(p) = part.partition.trim_matches('\'').parse::<u32>() else {
                continue;
            };
            if p >= day {
                continue;
            }
            ch.client()
                .query(&format!("{} DROP PARTITION {p}", ch.target().alter(table)))
                .execute()
                .await
                .map_err(ch.failed("retention"))?;
            dropped += part.rows;
        }
    }
    Ok(dropped)
}

/// The UTC day of `micros` as `YYYYMMDD`.
fn yyyymmdd(micros: i64) -> u32 {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros.max(0) as u64);
    let s = humantime::format_rfc3339_seconds(t).to_string();
    s[..10].replace('-', "").parse().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(super::yyyymmdd(0), 19700101);
        assert_eq!(super::yyyymmdd(1_765_065_599_000_000), 20251206);
        assert_eq!(super::yyyymmdd(1_765_065_600_000_000), 20251207);
    }
}
