//! RED made durable at each commit (`agent.telemetry.ack: stored`).
//!
//! Under `stored`, the writer takes the aggregator's deltas (everything
//! recorded since its last commit, as partial buckets) at each commit and
//! appends them to `pending_red_local` in the same transaction as the kept
//! spans of the requests they count. [`OpenMinutes`] merges the committed
//! deltas per (minute, service, kind); once a minute has closed (and the
//! grace period passed) its merged bucket is written as an ordinary bucket
//! and its pending rows deleted, again in one transaction. Readers never see
//! pending rows, so each minute is still one bucket. At start the pending
//! rows are read back, so a crash loses no acknowledged RED.

use std::collections::BTreeMap;

use coral_model::{Bucket, BucketKey, OVERFLOW_OPERATION, Stats};
use coral_proto::common::TelemetryBucket;
use duckdb::{Connection, params};
use prost::Message;

/// Open minutes' RED, merged from committed deltas.
#[derive(Default)]
pub(crate) struct OpenMinutes {
    minutes: BTreeMap<i64, BTreeMap<BucketKey, Bucket>>,
    max_operations: usize,
}

impl OpenMinutes {
    /// Merged buckets keep at most `max_operations` operations each; later
    /// ones fold into [`OVERFLOW_OPERATION`].
    pub(crate) fn new(max_operations: usize) -> Self {
        OpenMinutes {
            minutes: BTreeMap::new(),
            max_operations: max_operations.max(1),
        }
    }

    /// Merges committed deltas.
    pub(crate) fn absorb(&mut self, deltas: Vec<Bucket>) {
        for delta in deltas {
            let minute = self.minutes.entry(delta.key.minute).or_default();
            match minute.get_mut(&delta.key) {
                Some(open) => {
                    if let Err(error) = open.merge(&delta) {
                        tracing::error!(%error, key = %delta.key, "cannot merge RED deltas");
                    }
                    fold_overflow(open, self.max_operations);
                }
                None => {
                    minute.insert(delta.key.clone(), delta);
                }
            }
        }
    }

    /// The minutes to flush: closed at least `grace_secs` before
    /// `now_unix_secs`, or every one with `force`.
    pub(crate) fn closed(&self, now_unix_secs: i64, grace_secs: i64, force: bool) -> Vec<i64> {
        let cutoff = now_unix_secs - 60 - grace_secs;
        self.minutes
            .keys()
            .copied()
            .filter(|minute| force || *minute <= cutoff)
            .collect()
    }

    /// The merged buckets of `minutes` (copies; see [`Self::forget`]).
    pub(crate) fn buckets(&self, minutes: &[i64]) -> Vec<Bucket> {
        minutes
            .iter()
            .filter_map(|m| self.minutes.get(m))
            .flat_map(|keys| keys.values().cloned())
            .collect()
    }

    /// Drops `minutes` once their buckets are committed.
    pub(crate) fn forget(&mut self, minutes: &[i64]) {
        for minute in minutes {
            self.minutes.remove(minute);
        }
    }

    /// Drops the oldest minutes past `max_minutes`; returns the buckets
    /// dropped.
    pub(crate) fn bound(&mut self, max_minutes: usize) -> u64 {
        let mut dropped = 0;
        while self.minutes.len() > max_minutes {
            if let Some((minute, keys)) = self.minutes.pop_first() {
                tracing::error!(
                    minute,
                    buckets = keys.len(),
                    "RED held while the store cannot write is past its bound; the oldest minute is dropped"
                );
                dropped += keys.len() as u64;
            }
        }
        dropped
    }

    /// Sets the operation cap of merged buckets.
    pub(crate) fn set_max_operations(&mut self, max_operations: usize) {
        self.max_operations = max_operations.max(1);
    }
}

/// Folds operations past `max` into [`OVERFLOW_OPERATION`].
fn fold_overflow(bucket: &mut Bucket, max: usize) {
    if bucket.operations.len() <= max {
        return;
    }
    let mut overflow = match bucket
        .operations
        .iter()
        .position(|(name, _)| name == OVERFLOW_OPERATION)
    {
        Some(i) => bucket.operations.remove(i).1,
        None => Stats::default(),
    };
    if bucket.operations.len() >= max {
        for (_, stats) in bucket.operations.split_off(max - 1) {
            if let Err(error) = overflow.merge(&stats) {
                tracing::error!(%error, key = %bucket.key, "cannot fold an operation into overflow");
            }
        }
    }
    bucket
        .operations
        .push((OVERFLOW_OPERATION.to_owned(), overflow));
}

/// Appends `deltas` to `pending_red_local` (inside the caller's transaction).
pub(crate) fn append(conn: &Connection, deltas: &[Bucket]) -> Result<(), duckdb::Error> {
    if deltas.is_empty() {
        return Ok(());
    }
    let mut app = conn.appender("pending_red_local")?;
    for delta in deltas {
        let encoded = delta.to_proto("", 0).encode_to_vec();
        app.append_row(params![delta.key.minute, encoded])?;
    }
    app.flush()
}

/// Deletes the pending rows of `minutes` (inside the caller's transaction).
pub(crate) fn delete(conn: &Connection, minutes: &[i64]) -> Result<(), duckdb::Error> {
    let mut statement = conn.prepare_cached("DELETE FROM pending_red_local WHERE minute = ?")?;
    for minute in minutes {
        statement.execute([minute])?;
    }
    Ok(())
}

/// Every pending row, decoded; rows that do not decode are skipped and
/// logged (they were written by this code, so only corruption does that).
pub(crate) fn load(conn: &Connection) -> Result<Vec<Bucket>, duckdb::Error> {
    let mut statement = conn.prepare("SELECT bucket FROM pending_red_local")?;
    let rows = statement.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
    let mut out = Vec::new();
    for row in rows {
        let decoded = TelemetryBucket::decode(row?.as_slice())
            .map_err(|e| e.to_string())
            .and_then(|p| Bucket::from_proto(&p).map_err(|e| e.to_string()));
        match decoded {
            Ok(bucket) => out.push(bucket),
            Err(error) => {
                tracing::error!(%error, "skipping a pending RED row that does not decode")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use coral_model::SpanKind;

    use super::*;

    fn delta(minute: i64, ops: &[(&str, f64)]) -> Bucket {
        let mut bucket = Bucket::new(BucketKey {
            minute,
            service: "cart".into(),
            kind: SpanKind::Server,
        });
        for (name, ms) in ops {
            bucket.stats.record(*ms, false, "");
            let mut stats = Stats::default();
            stats.record(*ms, false, "");
            bucket.operations.push(((*name).to_owned(), stats));
        }
        bucket
    }

    #[test]
    fn deltas_merge_per_minute_and_closed_minutes_come_out() {
        let mut open = OpenMinutes::new(10);
        open.absorb(vec![delta(60, &[("a", 1.0)]), delta(120, &[("a", 2.0)])]);
        open.absorb(vec![delta(60, &[("a", 3.0), ("b", 4.0)])]);
        assert_eq!(open.closed(130, 10, false), vec![60]);
        let buckets = open.buckets(&[60]);
        assert_eq!(buckets.len(), 1);
        assert_eq!(buckets[0].stats.total, 3);
        assert_eq!(buckets[0].operation("a").unwrap().total, 2);
        open.forget(&[60]);
        assert_eq!(open.closed(0, 0, true), vec![120]);
    }

    #[test]
    fn merged_operations_past_the_cap_fold_into_overflow() {
        let mut open = OpenMinutes::new(2);
        open.absorb(vec![delta(60, &[("a", 1.0)])]);
        open.absorb(vec![delta(60, &[("b", 1.0)])]);
        open.absorb(vec![delta(60, &[("c", 1.0), ("d", 1.0)])]);
        let bucket = &open.buckets(&[60])[0];
        let names: Vec<_> = bucket.operations.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["a", OVERFLOW_OPERATION]);
        assert_eq!(bucket.operation(OVERFLOW_OPERATION).unwrap().total, 3);
        let total: u64 = bucket.operations.iter().map(|(_, s)| s.total).sum();
        assert_eq!(total, bucket.stats.total);
    }
}
