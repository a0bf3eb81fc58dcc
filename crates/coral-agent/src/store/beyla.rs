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
    append_family(tx, &rows.http, seq)?;
    append_family(tx, &rows.grpc, seq)?;
    append_family(tx, &rows.sql, seq)
}

fn append_family<F: HistogramFamily>(
    tx: &Transaction<'_>,
    rows: &[F],
    seq: &mut u64,
) -> Result<(), duckdb::Error> {
    append_numbered(tx, F::FAMILY, rows, seq, |app, seq, m| m.append(app, seq))
}

/// How the agent stores and reads one Beyla histogram family: generated
/// for each family from its declaration
/// ([`coral_model::beyla_histogram_families`]).
pub(super) trait HistogramFamily: Sized {
    /// The family's declaration.
    const FAMILY: &'static coral_model::catalogue::Table;
    /// The columns a read selects after `seq_id` and the minute.
    const COLUMNS: &'static str;
    /// Appends this metric as row `seq` of the family's agent table, in its columns'
    /// declared order.
    fn append(&self, app: &mut duckdb::Appender<'_>, seq: u64) -> Result<(), duckdb::Error>;
    /// The metric of a row selected as `seq_id, epoch(minute), COLUMNS`.
    fn read(row: &duckdb::Row<'_>) -> Result<Self, duckdb::Error>;
}

macro_rules! histogram_family {
    (
        $(#[$doc:meta])*
        table: $table:ident,
        tables: ($colony:literal, $agent:literal),
        metric: $metric:ident,
        row: $row:ident,
        what: $what:literal,
        series: [$($series:ident: $sk:ident = $sf:ident),+ $(,)?],
        counts: [$($count:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        impl HistogramFamily for coral_proto::common::$metric {
            const FAMILY: &'static coral_model::catalogue::Table =
                &coral_model::catalogue::$table;
            const COLUMNS: &'static str = concat!(
                "service_name, ",
                $(coral_model::duckdb_select!($sk, stringify!($series)), ", ",)+
                $(coral_model::duckdb_select!($ck, stringify!($count)), ", ",)*
                "latency, attributes"
            );

            fn append(
                &self,
                app: &mut duckdb::Appender<'_>,
                seq: u64,
            ) -> Result<(), duckdb::Error> {
                let (count, sum, min, max, blob) = hist_parts(self.latency.as_ref());
                app.append_row(params![
                    seq,
                    ts(self.minute * 1_000_000),
                    self.service_name,
                    $(coral_model::duckdb_param!($sk, self.$sf),)+
                    count,
                    $(coral_model::duckdb_param!($ck, self.$cf),)*
                    sum,
                    min,
                    max,
                    blob,
                    coral_model::string_map_to_json(&self.attributes),
                ])
            }

            fn read(r: &duckdb::Row<'_>) -> Result<Self, duckdb::Error> {
                let mut m = coral_proto::common::$metric {
                    seq_id: r.get(0)?,
                    minute: r.get(1)?,
                    service_name: r.get(2)?,
                    ..Default::default()
                };
                let mut column = 2;
                $(coral_model::duckdb_set!($sk, m.$sf, r, { column += 1; column });)+
                $(coral_model::duckdb_set!($ck, m.$cf, r, { column += 1; column });)*
                m.latency = super::read::proto_column(r, column + 1)?;
                m.attributes =
                    coral_model::string_map_from_json(&r.get::<_, String>(column + 2)?);
                Ok(m)
            }
        }
    };
}

coral_model::beyla_histogram_families!(histogram_family);

/// Appends Beyla trace spans inside `tx`, numbering them from `*seq`.
fn append_spans(
    tx: &Transaction<'_>,
    seq: &mut u64,
    spans: &[BeylaTraceSpan],
) -> Result<(), duckdb::Error> {
    append_numbered(
        tx,
        &coral_model::catalogue::BEYLA_TRACES,
        spans,
        seq,
        append_span,
    )
}

// `append_span`: a Beyla span as row `seq`, from its declaration.
coral_model::beyla_span_columns!(append_numbered_row, append_span);

/// Appends each of `rows` to `family`'s table with one Appender, numbering them from
/// `*seq` (advanced past the last one).
fn append_numbered<T>(
    tx: &Transaction<'_>,
    family: &'static coral_model::catalogue::Table,
    rows: &[T],
    seq: &mut u64,
    mut append: impl FnMut(&mut duckdb::Appender<'_>, u64, &T) -> Result<(), duckdb::Error>,
) -> Result<(), duckdb::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut app = super::schema::appender(tx, family)?;
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
