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

use super::beyla_families::HistogramFamily;
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

/// A merged histogram row: key columns, latency, attributes, own counts.
struct Merged {
    key: Vec<Value>,
    latency: Histogram,
    attributes: String,
    counts: Vec<u64>,
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
    outcome.stored += merge_family(tx, agent_id, &page.http, &mut outcome)?;
    outcome.stored += merge_family(tx, agent_id, &page.grpc, &mut outcome)?;
    outcome.stored += merge_family(tx, agent_id, &page.sql, &mut outcome)?;
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

/// Merges a family's rows with equal keys (within the page and with stored
/// rows), then rewrites each key's row once. Rows without a valid
/// histogram are refused in `outcome`. Returns the number of rows merged.
fn merge_family<F: HistogramFamily>(
    tx: &Transaction<'_>,
    agent_id: &str,
    rows: &[F],
    outcome: &mut BeylaOutcome,
) -> Result<usize, StoreError> {
    let mut count = 0;
    let mut merged: Vec<Merged> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    for m in rows {
        let latency = match histogram(m.latency()) {
            Ok(h) => h,
            Err(e) => {
                outcome.rejected += 1;
                outcome.reject_reason.get_or_insert(format!(
                    "{} row seq_id {}: {e}",
                    F::WHAT,
                    m.seq_id()
                ));
                continue;
            }
        };
        count += 1;
        let key = m.key(agent_id);
        let id = format!("{key:?}");
        match index.get(&id) {
            Some(&i) => {
                let stored = &mut merged[i];
                stored.latency.merge(&latency);
                add_counts(&mut stored.counts, &m.counts());
                stored.parts += 1;
            }
            None => {
                index.insert(id, merged.len());
                merged.push(Merged {
                    key,
                    latency,
                    attributes: coral_model::string_map_to_json(m.attributes()),
                    counts: m.counts(),
                    parts: 1,
                });
            }
        }
    }
    if merged.is_empty() {
        return Ok(count);
    }
    let table = F::FAMILY.name;
    let key_where = F::KEY
        .iter()
        .map(|c| format!("{c} = ?"))
        .collect::<Vec<_>>()
        .join(" AND ");
    {
        let mut select = tx.prepare_cached(&format!(
            "SELECT latency, parts{} FROM {table} WHERE {key_where}",
            F::COUNTS
        ))?;
        let mut delete = tx.prepare_cached(&format!("DELETE FROM {table} WHERE {key_where}"))?;
        for m in &mut merged {
            let existing: Vec<(Vec<u8>, i32, Vec<u64>)> = select
                .query_map(params_from_iter(m.key.iter()), |r| {
                    let counts = (0..m.counts.len())
                        .map(|i| r.get(2 + i))
                        .collect::<Result<_, _>>()?;
                    Ok((r.get(0)?, r.get(1)?, counts))
                })?
                .collect::<Result<_, _>>()?;
            if existing.is_empty() {
                continue;
            }
            for (blob, parts, counts) in existing {
                if let Ok(mut stored) = Histogram::decode(&blob) {
                    stored.merge(&m.latency);
                    m.latency = stored;
                }
                add_counts(&mut m.counts, &counts);
                m.parts += parts;
            }
            delete.execute(params_from_iter(m.key.iter()))?;
        }
    }
    let now = ts_micros(now_micros());
    let mut app = tx.appender_with_columns(table, &F::FAMILY.column_names())?;
    for m in merged {
        // The table's order: key, count, own counts, sum, min, max,
        // histogram, attributes, parts, updated_at.
        let h = &m.latency;
        let mut row = m.key;
        row.push(Value::UBigInt(h.count));
        row.extend(m.counts.iter().map(|&c| Value::UBigInt(c)));
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

fn add_counts(to: &mut [u64], from: &[u64]) {
    for (a, b) in to.iter_mut().zip(from) {
        *a += b;
    }
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

/// Appends `spans` of `agent_id` to `beyla_traces`.
fn append_spans(
    tx: &Transaction<'_>,
    agent_id: &str,
    spans: &[&BeylaTraceSpan],
) -> Result<(), StoreError> {
    if spans.is_empty() {
        return Ok(());
    }
    let spans_table = &crate::catalogue::BEYLA_TRACES;
    let mut app = tx.appender_with_columns(spans_table.name, &spans_table.column_names())?;
    for s in spans {
        append_span(&mut app, agent_id, s)?;
    }
    app.flush()?;
    Ok(())
}

/// Appends Beyla span `s` of `agent_id`: the columns of its declaration
/// ([`coral_model::beyla_span_columns`]), in order.
macro_rules! append_beyla_span {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        fn append_span(
            app: &mut duckdb::Appender<'_>,
            agent_id: &str,
            s: &BeylaTraceSpan,
        ) -> Result<(), duckdb::Error> {
            app.append_row(params![
                agent_id,
                s.seq_id,
                $(coral_model::duckdb_param!($k, s.$f),)+
                $(coral_model::duckdb_param!($ck, s.$cf),)*
            ])
        }
    };
}

coral_model::beyla_span_columns!(append_beyla_span);
