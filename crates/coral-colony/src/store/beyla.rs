//! Beyla rows at the colony: `beyla_http_metrics`, `beyla_grpc_metrics`,
//! `beyla_sql_metrics` (one row per minute and series per agent, histograms
//! merged by adding counts) and `beyla_traces` (spans, trace-sampled).
//!
//! Trace sampling (`storage.beyla.trace_sampling_rate`) is decided from the
//! trace id with the same rule as the agents, so kept traces are whole; a
//! trace with an error span, a span slower than `trace_slow_threshold`, or
//! spans already stored here is always kept.

use std::collections::HashMap;

use coral_model::Histogram;
use coral_proto::common::{BeylaTraceSpan, LatencyHistogram};
use duckdb::types::Value;
use duckdb::{Transaction, params, params_from_iter};
use prost::Message;

use super::{StoreError, now_micros, ts_micros};

pub use coral_model::BeylaRows;

/// Which Beyla traces the colony keeps.
#[derive(Debug, Clone, Copy)]
pub struct TraceSampling {
    /// Fraction of traces kept, decided from the trace id.
    pub rate: f64,
    /// A trace with a span at least this long (µs) is always kept.
    pub slow_us: i64,
}

impl Default for TraceSampling {
    fn default() -> Self {
        TraceSampling {
            rate: 1.0,
            slow_us: 500_000,
        }
    }
}

/// What storing a Beyla page did.
#[derive(Debug, Default)]
pub struct BeylaOutcome {
    /// Rows stored (metrics merged or inserted, spans kept).
    pub stored: usize,
    /// Spans dropped by trace sampling.
    pub sampled_out: usize,
    /// Rows refused as invalid.
    pub rejected: usize,
    /// The first refusal.
    pub reject_reason: Option<String>,
}

/// A merged histogram row: key columns, latency, attributes, extra count.
struct Merged {
    key: Vec<Value>,
    latency: Histogram,
    attributes: String,
    error_count: u64,
    parts: i32,
}

/// Stores a page's fresh Beyla rows for `agent_id` inside `tx`.
pub fn store(
    tx: &Transaction<'_>,
    agent_id: &str,
    page: &BeylaRows,
    sampling: TraceSampling,
) -> Result<BeylaOutcome, StoreError> {
    let mut outcome = BeylaOutcome::default();
    let reject = |outcome: &mut BeylaOutcome, why: String| {
        outcome.rejected += 1;
        outcome.reject_reason.get_or_insert(why);
    };
    let agent = || Value::Text(agent_id.to_owned());
    let text = |s: &str| Value::Text(s.to_owned());
    let minute = |m: i64| ts_micros(m * 1_000_000);

    let mut http = Vec::new();
    for m in &page.http {
        match histogram(m.latency.as_ref()) {
            Ok(h) => http.push((
                vec![
                    minute(m.minute),
                    agent(),
                    text(&m.service_name),
                    text(&m.kind),
                    text(&m.http_method),
                    text(&m.http_route),
                    Value::Int(m.http_status_code as i32),
                ],
                h,
                coral_model::string_map_to_json(&m.attributes),
                0,
            )),
            Err(e) => reject(&mut outcome, format!("HTTP row seq_id {}: {e}", m.seq_id)),
        }
    }
    let mut grpc = Vec::new();
    for m in &page.grpc {
        match histogram(m.latency.as_ref()) {
            Ok(h) => grpc.push((
                vec![
                    minute(m.minute),
                    agent(),
                    text(&m.service_name),
                    text(&m.kind),
                    text(&m.rpc_system),
                    text(&m.grpc_method),
                    Value::Int(m.grpc_status_code as i32),
                ],
                h,
                coral_model::string_map_to_json(&m.attributes),
                0,
            )),
            Err(e) => reject(&mut outcome, format!("RPC row seq_id {}: {e}", m.seq_id)),
        }
    }
    let mut sql = Vec::new();
    for m in &page.sql {
        match histogram(m.latency.as_ref()) {
            Ok(h) => sql.push((
                vec![
                    minute(m.minute),
                    agent(),
                    text(&m.service_name),
                    text(&m.db_system),
                    text(&m.sql_operation),
                    text(&m.table_name),
                ],
                h,
                coral_model::string_map_to_json(&m.attributes),
                m.error_count,
            )),
            Err(e) => reject(&mut outcome, format!("SQL row seq_id {}: {e}", m.seq_id)),
        }
    }
    const HTTP_KEY: &[&str] = &[
        "minute",
        "agent_id",
        "service_name",
        "kind",
        "http_method",
        "http_route",
        "http_status_code",
    ];
    const GRPC_KEY: &[&str] = &[
        "minute",
        "agent_id",
        "service_name",
        "kind",
        "rpc_system",
        "grpc_method",
        "grpc_status_code",
    ];
    const SQL_KEY: &[&str] = &[
        "minute",
        "agent_id",
        "service_name",
        "db_system",
        "sql_operation",
        "table_name",
    ];
    outcome.stored += merge_into(tx, "beyla_http_metrics", HTTP_KEY, false, http)?;
    outcome.stored += merge_into(tx, "beyla_grpc_metrics", GRPC_KEY, false, grpc)?;
    outcome.stored += merge_into(tx, "beyla_sql_metrics", SQL_KEY, true, sql)?;
    let (kept, dropped) = sample_spans(tx, &page.spans, sampling)?;
    outcome.sampled_out = dropped;
    outcome.stored += kept.len();
    append_spans(tx, agent_id, &kept)?;
    Ok(outcome)
}

fn histogram(h: Option<&LatencyHistogram>) -> Result<Histogram, String> {
    match h {
        Some(h) => Histogram::from_proto(h).map_err(|e| e.to_string()),
        None => Err("no latency histogram".into()),
    }
}

/// Merges rows with equal keys (within the page and with stored rows), then
/// rewrites each key's row once. Returns the number of incoming rows.
fn merge_into(
    tx: &Transaction<'_>,
    table: &str,
    key_columns: &[&str],
    with_errors: bool,
    rows: Vec<(Vec<Value>, Histogram, String, u64)>,
) -> Result<usize, StoreError> {
    let count = rows.len();
    if rows.is_empty() {
        return Ok(0);
    }
    let mut merged: Vec<Merged> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for (key, latency, attributes, errors) in rows {
        let id = format!("{key:?}");
        match index.get(&id) {
            Some(&i) => {
                let m = &mut merged[i];
                m.latency.merge(&latency);
                m.error_count += errors;
                m.parts += 1;
            }
            None => {
                index.insert(id, merged.len());
                merged.push(Merged {
                    key,
                    latency,
                    attributes,
                    error_count: errors,
                    parts: 1,
                });
            }
        }
    }
    let key_where = key_columns
        .iter()
        .map(|c| format!("{c} = ?"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let errors_col = if with_errors { "error_count" } else { "0" };
    {
        let mut select = tx.prepare_cached(&format!(
            "SELECT latency, {errors_col}, parts FROM {table} WHERE {key_where}"
        ))?;
        let mut delete = tx.prepare_cached(&format!("DELETE FROM {table} WHERE {key_where}"))?;
        for m in &mut merged {
            let existing: Vec<(Vec<u8>, u64, i32)> = select
                .query_map(params_from_iter(m.key.iter()), |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            if existing.is_empty() {
                continue;
            }
            for (blob, errors, parts) in existing {
                if let Ok(mut stored) = Histogram::decode(&blob) {
                    stored.merge(&m.latency);
                    m.latency = stored;
                }
                m.error_count += errors;
                m.parts += parts;
            }
            delete.execute(params_from_iter(m.key.iter()))?;
        }
    }
    let now = ts_micros(now_micros());
    let mut app = tx.appender(table)?;
    for m in merged {
        let mut row = m.key;
        let h = &m.latency;
        row.push(Value::UBigInt(h.count));
        if with_errors {
            row.push(Value::UBigInt(m.error_count));
        }
        row.push(Value::Double(h.sum_ms));
        row.push(h.min_ms.map_or(Value::Null, Value::Double));
        row.push(h.max_ms.map_or(Value::Null, Value::Double));
        row.push(Value::Blob(h.to_proto().encode_to_vec()));
        row.push(Value::Text(m.attributes));
        row.push(Value::Int(m.parts));
        row.push(now.clone());
        let refs: Vec<&dyn duckdb::ToSql> = row.iter().map(|v| v as &dyn duckdb::ToSql).collect();
        app.append_row(refs.as_slice())?;
    }
    app.flush()?;
    Ok(count)
}

/// Splits spans into kept and the number dropped by trace sampling.
fn sample_spans<'a>(
    tx: &Transaction<'_>,
    spans: &'a [BeylaTraceSpan],
    sampling: TraceSampling,
) -> Result<(Vec<&'a BeylaTraceSpan>, usize), StoreError> {
    if sampling.rate >= 1.0 {
        return Ok((spans.iter().collect(), 0));
    }
    let mut known = tx.prepare_cached("SELECT 1 FROM beyla_traces WHERE trace_id = ? LIMIT 1")?;
    sample(spans, sampling, |trace| Ok(known.exists(params![trace])?))
}

/// Splits spans into kept and the number dropped by trace sampling: a trace
/// is kept when forced (an error or a slow span), chosen by its id, or
/// `known` (spans of it are stored already; asked only of traces neither
/// forced nor chosen). Both engines sample with it.
pub(crate) fn sample<E>(
    spans: &[BeylaTraceSpan],
    sampling: TraceSampling,
    mut known: impl FnMut(&str) -> Result<bool, E>,
) -> Result<(Vec<&BeylaTraceSpan>, usize), E> {
    if sampling.rate >= 1.0 {
        return Ok((spans.iter().collect(), 0));
    }
    let mut forced: HashMap<&str, bool> = HashMap::new();
    for s in spans {
        let f = forced.entry(s.trace_id.as_str()).or_default();
        *f |= s.is_error || s.duration_us >= sampling.slow_us;
    }
    let mut keep: HashMap<&str, bool> = HashMap::new();
    for (trace, is_forced) in forced {
        let k =
            is_forced || coral_model::sampling::keep_trace(trace, sampling.rate) || known(trace)?;
        keep.insert(trace, k);
    }
    let kept: Vec<_> = spans
        .iter()
        .filter(|s| keep.get(s.trace_id.as_str()).copied().unwrap_or(true))
        .collect();
    let dropped = spans.len() - kept.len();
    Ok((kept, dropped))
}

fn append_spans(
    tx: &Transaction<'_>,
    agent_id: &str,
    spans: &[&BeylaTraceSpan],
) -> Result<(), StoreError> {
    if spans.is_empty() {
        return Ok(());
    }
    let mut app = tx.appender("beyla_traces")?;
    for s in spans {
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
            s.status_code,
            s.is_error,
            s.attributes_json,
        ])?;
    }
    app.flush()?;
    Ok(())
}
