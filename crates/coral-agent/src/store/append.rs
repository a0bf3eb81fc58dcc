//! Appending the writer's batches of kept spans, buckets and host samples.
//!
//! A batch is stored in transactions of at most [`MAX_TRANSACTION_BYTES`] of
//! spans, each assigning `seq_id`s in order and persisting the next one. A
//! transaction that fails loses only its own spans: buckets and host samples
//! are tried again on their own.

use std::time::SystemTime;

use coral_model::Bucket;
use coral_proto::common::{HostMetrics, TelemetrySpan};
use duckdb::{Connection, params};

use super::resources::Resources;
use super::schema::{BUCKETS, OPERATIONS};
use super::writer::{micros, ts};
use crate::metrics::Counters;

/// Bytes of kept spans (as [`span_bytes`] counts them, and Beyla spans as
/// `super::beyla` counts them) committed in one transaction at most, so that
/// a burst of wide spans is committed in several transactions instead of
/// failing as one (`tests/paging.rs`'s size-limit
/// test, run once with 100,000 spans, ~440 MB, stored them all within the
/// 32 MB budget; it keeps 16,000, two transactions). Not smaller: every
/// commit past DuckDB's 16 MiB WAL threshold checkpoints, and a checkpoint
/// rewrites the row group being filled, so 16 MiB transactions (four per
/// full batch of ordinary spans instead of one) cost a quarter of the
/// agent's saturation throughput (BENCHMARKS.md).
pub(super) const MAX_TRANSACTION_BYTES: usize = 64 << 20;

/// The bytes a kept span's row holds, roughly: its text columns and a fixed
/// amount for the rest.
pub(crate) fn span_bytes(span: &TelemetrySpan) -> usize {
    256 + span.attributes_json.len()
        + span.resource_json.len()
        + span.status_message.len()
        + span.span_name.len()
        + span.http_route.len()
}

/// The rows of one batch.
#[derive(Clone, Copy)]
pub(super) struct Rows<'a> {
    pub spans: &'a [TelemetrySpan],
    pub buckets: &'a [Bucket],
    pub hosts: &'a [HostMetrics],
    /// RED deltas to keep in `pending_red_local` (`ack: stored`).
    pub pending: &'a [Bucket],
    /// Minutes whose pending rows go, their buckets being in `buckets`.
    pub flushed: &'a [i64],
}

impl Rows<'_> {
    /// Whether there is nothing to write.
    pub(super) fn is_empty(&self) -> bool {
        self.spans.is_empty()
            && self.buckets.is_empty()
            && self.hosts.is_empty()
            && self.pending.is_empty()
            && self.flushed.is_empty()
    }

    /// These rows without the spans.
    fn without_spans(self) -> Self {
        Rows { spans: &[], ..self }
    }
}

/// What [`store_rows`] did.
pub(super) struct Written {
    /// The next free seq_id.
    pub next_seq: u64,
    /// Whether the buckets (and pending changes) were stored.
    pub buckets_stored: bool,
    /// The last failure, on one line.
    pub error: Option<String>,
}

/// Stores a batch from `seq` on, in transactions of at most
/// [`MAX_TRANSACTION_BYTES`] of spans; buckets, host samples and pending
/// RED go with the first.
pub(super) fn store_rows(
    conn: &mut Connection,
    resources: &mut Resources,
    mut seq: u64,
    rows: Rows<'_>,
    counters: &Counters,
) -> Written {
    let mut buckets_stored = true;
    let mut last_error = None;
    for (i, spans) in transactions(rows.spans, span_bytes).into_iter().enumerate() {
        let part = if i == 0 {
            Rows { spans, ..rows }
        } else {
            Rows {
                spans,
                buckets: &[],
                hosts: &[],
                pending: &[],
                flushed: &[],
            }
        };
        let (next, stored, error) = store_part(conn, resources, seq, part, counters);
        seq = next;
        buckets_stored &= stored || i > 0;
        last_error = error.or(last_error);
    }
    Written {
        next_seq: seq,
        buckets_stored,
        error: last_error,
    }
}

/// Stores a batch in one transaction (`ack: stored`: the batch's requests
/// are answered by its outcome, so it commits whole or not at all).
pub(super) fn store_whole(
    conn: &mut Connection,
    resources: &mut Resources,
    seq: u64,
    rows: Rows<'_>,
    counters: &Counters,
) -> Result<u64, duckdb::Error> {
    match write_batch(conn, resources, seq, rows) {
        Ok(next) => {
            Counters::add(&counters.spans_stored, rows.spans.len() as u64);
            Counters::add(&counters.buckets_stored, rows.buckets.len() as u64);
            Ok(next)
        }
        Err(error) => {
            Counters::add(&counters.spans_dropped, rows.spans.len() as u64);
            tracing::error!(%error, spans = rows.spans.len(), "agent store commit failed; its requests are answered 503 and retried by their clients");
            Err(error)
        }
    }
}

/// `rows` cut into consecutive runs of at most [`MAX_TRANSACTION_BYTES`] as
/// `bytes` counts them (a wider row alone); always at least one run, empty
/// when `rows` is.
pub(super) fn transactions<T>(rows: &[T], bytes: impl Fn(&T) -> usize) -> Vec<&[T]> {
    let mut runs = Vec::new();
    let (mut start, mut total) = (0, 0);
    for (i, row) in rows.iter().enumerate() {
        let size = bytes(row);
        if i > start && total + size > MAX_TRANSACTION_BYTES {
            runs.push(&rows[start..i]);
            (start, total) = (i, 0);
        }
        total += size;
    }
    runs.push(&rows[start..]);
    runs
}

/// Stores `part` in one transaction. If that fails, its spans are counted
/// as dropped and its buckets and host samples are tried once more on their
/// own, so a span that cannot be stored never takes the RED metrics with it.
fn store_part(
    conn: &mut Connection,
    resources: &mut Resources,
    seq: u64,
    part: Rows<'_>,
    counters: &Counters,
) -> (u64, bool, Option<String>) {
    let error = match write_batch(conn, resources, seq, part) {
        Ok(next) => {
            Counters::add(&counters.spans_stored, part.spans.len() as u64);
            Counters::add(&counters.buckets_stored, part.buckets.len() as u64);
            return (next, true, None);
        }
        Err(error) => error,
    };
    let reason = super::writer::one_line(&error);
    Counters::add(&counters.spans_dropped, part.spans.len() as u64);
    tracing::error!(%error, spans = part.spans.len(), buckets = part.buckets.len(), "agent store write failed");
    let metrics = part.without_spans();
    // Worth a second transaction only when it held spans and something else.
    let retry = !part.spans.is_empty() && !metrics.is_empty();
    match retry.then(|| write_batch(conn, resources, seq, metrics)) {
        Some(Ok(next)) => {
            Counters::add(&counters.buckets_stored, part.buckets.len() as u64);
            (next, true, Some(reason))
        }
        retried => {
            if let Some(Err(error)) = retried {
                tracing::error!(%error, buckets = part.buckets.len(), "agent store write of buckets failed; they are kept for the next commit");
            }
            (seq, metrics.is_empty(), Some(reason))
        }
    }
}

/// Appends one batch in a transaction; returns the next free seq_id.
fn write_batch(
    conn: &mut Connection,
    resources: &mut Resources,
    mut seq: u64,
    rows: Rows<'_>,
) -> Result<u64, duckdb::Error> {
    let Rows {
        spans,
        buckets,
        hosts,
        pending,
        flushed,
    } = rows;
    let tx = conn.transaction()?;
    let (resource_ids, fresh) = resources.assign(&tx, spans, seq)?;
    {
        let mut app = super::schema::appender(&tx, &coral_model::catalogue::TRACE_SPANS)?;
        for (s, resource_id) in spans.iter().zip(resource_ids) {
            append_span(&mut app, seq, s, resource_id)?;
            seq += 1;
        }
        app.flush()?;
    }
    if !buckets.is_empty() {
        let now = micros(SystemTime::now());
        let mut bucket_app = tx.appender_with_columns(BUCKETS, BUCKET_COLUMNS)?;
        let mut op_app = tx.appender_with_columns(OPERATIONS, OPERATION_COLUMNS)?;
        for bucket in buckets {
            let p = bucket.to_proto("", seq);
            append_bucket(&mut bucket_app, seq, &p, now)?;
            for op in &p.operations {
                append_operation(&mut op_app, seq, op)?;
            }
            seq += 1;
        }
        bucket_app.flush()?;
        op_app.flush()?;
    }
    if !hosts.is_empty() {
        let mut app = super::schema::appender(&tx, &coral_model::catalogue::HOST_METRICS)?;
        for h in hosts {
            append_host(&mut app, seq, h)?;
            seq += 1;
        }
        app.flush()?;
    }
    super::pending::append(&tx, pending)?;
    super::pending::delete(&tx, flushed)?;
    tx.prepare_cached("UPDATE coral_metadata SET value = ? WHERE key = 'next_seq_id'")?
        .execute([seq.to_string()])?;
    tx.commit()?;
    resources.remember(fresh);
    Ok(seq)
}

/// Appends kept span `s` as row `seq`, its resource stored as
/// `resource_id`: the columns of its declaration
/// ([`coral_model::kept_span_columns`]), in order.
macro_rules! append_kept_span {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        fn append_span(
            app: &mut duckdb::Appender<'_>,
            seq: u64,
            s: &TelemetrySpan,
            resource_id: u64,
        ) -> Result<(), duckdb::Error> {
            app.append_row(params![seq, $(coral_model::duckdb_param!($k, s.$f),)+ resource_id])
        }
    };
}

coral_model::kept_span_columns!(append_kept_span);

/// Appends bucket `p` as row `seq`, flushed at `now` (µs), and its
/// operations: the columns of their declarations
/// ([`coral_model::bucket_columns`], [`coral_model::operation_columns`]),
/// named.
macro_rules! append_bucket_family {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        key: [$($kc:ident: $kk:ident = $kf:ident),+ $(,)?],
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        derived: [$($dc:ident: $dk:ident = $df:ident),+ $(,)?] $(,)?
    ) => {
        append_bucket_family!(@ $message, $($kc: $kk = $kf,)+ $($c: $k = $f,)+ $($dc: $dk = $df,)+);
    };
    (@ TelemetryBucket, $($c:ident: $k:ident = $f:ident,)+) => {
        /// The columns [`append_bucket`] appends.
        const BUCKET_COLUMNS: &[&str] =
            &["seq_id", $(stringify!($c),)+ "sketch", "flushed_at"];

        fn append_bucket(
            app: &mut duckdb::Appender<'_>,
            seq: u64,
            p: &coral_proto::common::TelemetryBucket,
            now: i64,
        ) -> Result<(), duckdb::Error> {
            app.append_row(params![
                seq,
                $(coral_model::duckdb_param!($k, p.$f),)+
                encode_sketch(p.sketch.as_ref()),
                ts(now),
            ])
        }
    };
    (@ OperationSummary, $($c:ident: $k:ident = $f:ident,)+) => {
        /// The columns [`append_operation`] appends.
        const OPERATION_COLUMNS: &[&str] =
            &["bucket_seq_id", $(stringify!($c),)+ "sketch"];

        fn append_operation(
            app: &mut duckdb::Appender<'_>,
            bucket_seq: u64,
            op: &coral_proto::common::OperationSummary,
        ) -> Result<(), duckdb::Error> {
            app.append_row(params![
                bucket_seq,
                $(coral_model::duckdb_param!($k, op.$f),)+
                encode_sketch(op.sketch.as_ref()),
            ])
        }
    };
}

coral_model::bucket_columns!(append_bucket_family);
coral_model::operation_columns!(append_bucket_family);

// `append_host`: a host sample as row `seq`, from its declaration.
coral_model::host_sample_columns!(append_numbered_row, append_host);

fn encode_sketch(sketch: Option<&coral_proto::common::DurationSketch>) -> Vec<u8> {
    use prost::Message;
    sketch.map(Message::encode_to_vec).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_cut_into_transactions_by_bytes() {
        let sizes = |runs: Vec<&[usize]>| runs.iter().map(|r| r.to_vec()).collect::<Vec<_>>();
        let mb = 1 << 20;
        assert_eq!(
            sizes(transactions(&[], |&b: &usize| b)),
            vec![Vec::<usize>::new()]
        );
        let rows = [30 * mb, 30 * mb, 10 * mb, 20 * mb];
        assert_eq!(
            sizes(transactions(&rows, |&b| b)),
            vec![vec![30 * mb, 30 * mb], vec![10 * mb, 20 * mb]],
        );
        // A row over the limit is a transaction of its own.
        let rows = [mb, 100 * mb, mb];
        assert_eq!(
            sizes(transactions(&rows, |&b| b)),
            vec![vec![mb], vec![100 * mb], vec![mb]],
        );
    }
}
