//! Appending a page's kept spans and host samples to the colony store.
//!
//! Spans go in as one Arrow record batch per page; host samples are keyed by
//! (agent_id, bucket_time), so a newer sample of a minute replaces the older.

use coral_proto::common::{HostMetrics, TelemetrySpan};
use duckdb::{Transaction, params};

use super::{StoreError, ts_micros};

/// Appends spans as one Arrow record batch: DuckDB ingests a columnar batch
/// several times faster than row-by-row appends (see BENCHMARKS.md).
pub(super) fn append_spans(
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
    let table = &crate::catalogue::TRACE_SPANS;
    let mut app = tx.appender_with_columns(table.name, &table.column_names())?;
    app.append_record_batch(batch)?;
    app.flush()?;
    Ok(())
}

/// `spans_batch`, from the kept span's declaration
/// ([`coral_model::kept_span_columns`]).
macro_rules! spans_batch {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        /// The `trace_spans` columns of `spans`, in table order (public for
        /// the poll-cycle benchmark's baseline).
        pub fn spans_batch(
            agent_id: &str,
            spans: &[&TelemetrySpan],
        ) -> Result<
            duckdb::arrow::record_batch::RecordBatch,
            duckdb::arrow::error::ArrowError,
        > {
            use duckdb::arrow::array::{ArrayRef, StringArray, UInt64Array};
            let columns: Vec<(&str, ArrayRef)> = vec![
                (
                    "agent_id",
                    std::sync::Arc::new(StringArray::from_iter_values(
                        spans.iter().map(|_| agent_id),
                    )),
                ),
                (
                    "seq_id",
                    std::sync::Arc::new(UInt64Array::from_iter_values(
                        spans.iter().map(|s| s.seq_id),
                    )),
                ),
                $((stringify!($c), arrow!($k, spans.iter().map(|s| &s.$f))),)+
                $((stringify!($cc), arrow!($ck, spans.iter().map(|s| &s.$cf))),)*
            ];
            duckdb::arrow::record_batch::RecordBatch::try_from_iter(columns)
        }
    };
}

coral_model::kept_span_columns!(spans_batch);

/// Host samples are keyed by (agent_id, bucket_time): a newer sample of the
/// same minute replaces the older one.
pub(super) fn append_hosts(
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
    let table = &crate::catalogue::HOST_METRICS;
    let mut app = tx.appender_with_columns(table.name, &table.column_names())?;
    for h in latest {
        append_host(&mut app, agent_id, h)?;
    }
    app.flush()?;
    Ok(())
}

/// Appends host sample `h` of `agent_id`: the columns of its declaration
/// ([`coral_model::host_sample_columns`]), in order.
macro_rules! append_host_sample {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        fn append_host(
            app: &mut duckdb::Appender<'_>,
            agent_id: &str,
            h: &HostMetrics,
        ) -> Result<(), duckdb::Error> {
            app.append_row(params![
                agent_id,
                $(coral_model::duckdb_param!($k, h.$f),)+
                $(coral_model::duckdb_param!($ck, h.$cf),)*
            ])
        }
    };
}

coral_model::host_sample_columns!(append_host_sample);
