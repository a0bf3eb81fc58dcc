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
