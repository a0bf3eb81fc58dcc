//! Beyla rows in the agent database: one-minute HTTP, RPC and SQL histograms
//! and trace spans (tables rendered by [`super::schema`]), with their own
//! `seq_id` sequence (`coral_metadata.next_beyla_seq_id`), so that the
//! colony's Beyla cursor can prove gaps exactly as it does for the telemetry
//! stream.
//!
//! Histograms are stored as `coral.common.v1.LatencyHistogram` protobuf
//! blobs next to their scalar count, sum, min and max. Reads are in
//! [`super::beyla_read`].

use coral_proto::common::{BeylaTraceSpan, LatencyHistogram};
use duckdb::types::{TimeUnit, Value};
use duckdb::{Connection, Transaction, params};
use prost::Message;

use super::append::transactions;
pub use super::beyla_read::query;

pub use coral_model::BeylaRows;

pub(super) fn ts(micros: i64) -> Value {
    Value::Timestamp(TimeUnit::Microsecond, micros)
}

fn hist_parts(h: Option<&LatencyHistogram>) -> (u64, f64, Option<f64>, Option<f64>, Vec<u8>) {
    match h {
        Some(h) => (h.count, h.sum_ms, h.min_ms, h.max_ms, h.encode_to_vec()),
        None => (0, 0.0, None, None, Vec::new()),
    }
}

/// The bytes a Beyla span's row holds, roughly: its text columns and a fixed
/// amount for the rest.
fn span_bytes(span: &BeylaTraceSpan) -> usize {
    256 + span.attributes_json.len() + span.span_name.len() + span.service_name.len()
}

/// What [`store`] did with a writer batch of Beyla rows.
#[derive(Default)]
pub(super) struct Stored {
    /// The next free Beyla seq_id.
    pub next_seq: u64,
    /// Rows committed.
    pub stored: u64,
    /// Rows lost to a failed transaction.
    pub dropped: u64,
}

impl Stored {
    /// Appends `rows` rows of `what` with `append` in a transaction of their
    /// own, numbered from the next free seq_id, which is persisted with
    /// them; counts them as stored or, if the transaction fails, dropped.
    fn write(
        &mut self,
        conn: &mut Connection,
        rows: usize,
        what: &str,
        append: impl FnOnce(&Transaction<'_>, &mut u64) -> Result<(), duckdb::Error>,
    ) {
        let mut seq = self.next_seq;
        let written = conn.transaction().and_then(|tx| {
            append(&tx, &mut seq)?;
            super::set_metadata(&tx, "next_beyla_seq_id", &seq.to_string())?;
            tx.commit()
        });
        match written {
            Ok(()) => {
                self.next_seq = seq;
                self.stored += rows as u64;
            }
            Err(error) => {
                tracing::error!(%error, rows, "agent store write of Beyla {what} failed, rows lost");
                self.dropped += rows as u64;
            }
        }
    }
}

/// Stores `rows` from `seq` on: the histograms in one transaction, then the
/// spans in transactions of at most
/// [`super::append::MAX_TRANSACTION_BYTES`], each persisting the next free
/// seq_id. A transaction that fails loses only its own rows, and the
/// sequence goes on without a hole.
pub(super) fn store(conn: &mut Connection, seq: u64, rows: &BeylaRows) -> Stored {
    let mut out = Stored {
        next_seq: seq,
        ..Stored::default()
    };
    let histograms = rows.http.len() + rows.grpc.len() + rows.sql.len();
    if histograms > 0 {
        out.write(conn, histograms, "histograms", |tx, seq| {
            append_histograms(tx, seq, rows)
        });
    }
    for spans in transactions(&rows.spans, span_bytes) {
        if !spans.is_empty() {
            out.write(conn, spans.len(), "spans", |tx, seq| {
                append_spans(tx, seq, spans)
            });
        }
    }
    out
}

/// Appends `rows`' HTTP, RPC and SQL histograms inside `tx`, numbering them
/// from `*seq`.
fn append_histograms(
    tx: &Transaction<'_>,
    seq: &mut u64,
    rows: &BeylaRows,
) -> Result<(), duckdb::Error> {
    append_numbered(
        tx,
        "beyla_http_metrics_local",
        &rows.http,
        seq,
        |app, seq, m| {
            let (count, sum, min, max, blob) = hist_parts(m.latency.as_ref());
            app.append_row(params![
                seq,
                ts(m.minute * 1_000_000),
                m.service_name,
                m.kind,
                m.http_method,
                m.http_route,
                m.http_status_code,
                count,
                sum,
                min,
                max,
                blob,
                coral_model::string_map_to_json(&m.attributes),
            ])
        },
    )?;
    append_numbered(
        tx,
        "beyla_grpc_metrics_local",
        &rows.grpc,
        seq,
        |app, seq, m| {
            let (count, sum, min, max, blob) = hist_parts(m.latency.as_ref());
            app.append_row(params![
                seq,
                ts(m.minute * 1_000_000),
                m.service_name,
                m.kind,
                m.rpc_system,
                m.grpc_method,
                m.grpc_status_code,
                count,
                sum,
                min,
                max,
                blob,
                coral_model::string_map_to_json(&m.attributes),
            ])
        },
    )?;
    append_numbered(
        tx,
        "beyla_sql_metrics_local",
        &rows.sql,
        seq,
        |app, seq, m| {
            let (count, sum, min, max, blob) = hist_parts(m.latency.as_ref());
            app.append_row(params![
                seq,
                ts(m.minute * 1_000_000),
                m.service_name,
                m.db_system,
                m.sql_operation,
                m.table_name,
                count,
                m.error_count,
                sum,
                min,
                max,
                blob,
                coral_model::string_map_to_json(&m.attributes),
            ])
        },
    )
}

/// Appends Beyla trace spans inside `tx`, numbering them from `*seq`.
fn append_spans(
    tx: &Transaction<'_>,
    seq: &mut u64,
    spans: &[BeylaTraceSpan],
) -> Result<(), duckdb::Error> {
    append_numbered(tx, "beyla_traces_local", spans, seq, |app, seq, s| {
        app.append_row(params![
            seq,
            s.trace_id,
            s.span_id,
            s.parent_span_id,
            s.service_name,
            s.span_name,
            s.span_kind,
            ts(s.start_time_unix_nano / 1_000),
            s.start_time_unix_nano,
            s.duration_us,
            s.status_code,
            s.is_error,
            s.attributes_json,
        ])
    })
}

/// Appends each of `rows` to `table` with one Appender, numbering them from
/// `*seq` (advanced past the last one).
fn append_numbered<T>(
    tx: &Transaction<'_>,
    table: &str,
    rows: &[T],
    seq: &mut u64,
    mut append: impl FnMut(&mut duckdb::Appender<'_>, u64, &T) -> Result<(), duckdb::Error>,
) -> Result<(), duckdb::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut app = tx.appender(table)?;
    for row in rows {
        append(&mut app, *seq, row)?;
        *seq += 1;
    }
    app.flush()
}

/// Deletes Beyla rows older than `cutoff_micros` (Unix µs); returns the count.
pub fn retention(conn: &Connection, cutoff_micros: i64) -> Result<u64, duckdb::Error> {
    let mut deleted = 0u64;
    for (table, time) in super::schema::dated(&super::schema::BEYLA) {
        deleted += conn.execute(
            &format!("DELETE FROM {table} WHERE {time} < ?"),
            params![ts(cutoff_micros)],
        )? as u64;
    }
    Ok(deleted)
}
