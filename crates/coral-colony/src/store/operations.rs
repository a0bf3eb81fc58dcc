//! Per-operation RED of an OTLP service for `QueryOperations`, from the
//! buckets' operation breakdown (`otel_operations`, 100 % of spans). Blocking.
//!
//! Rows merge across agents per (minute, operation, kind), and over the
//! window per (operation, kind): counts add, sketches merge, percentiles come
//! from the merged sketch (≤ 1 % relative error).

use std::collections::{BTreeMap, BTreeSet};

use coral_model::{Stats, operation_from_proto, samples_from_json};
use coral_proto::colony::{OperationRow, QueryOperationsRequest, QueryOperationsResponse};
use coral_proto::common::{DurationSketch, OperationSummary};
use duckdb::types::Value;
use duckdb::{Connection, params_from_iter};
use prost::Message;

use super::{StoreError, ts_micros};

type Merged = (Stats, BTreeSet<String>);

/// Answers `QueryOperations` for `[from, to)` (Unix seconds).
pub fn query(
    conn: &Connection,
    req: &QueryOperationsRequest,
    from: i64,
    to: i64,
) -> Result<QueryOperationsResponse, StoreError> {
    let mut sql = String::from(
        "SELECT agent_id, epoch(bucket_time)::BIGINT, operation, span_kind, total_spans, \
         error_count, min_ms, max_ms, sum_ms, samples, sketch FROM otel_operations \
         WHERE service_name = ? AND bucket_time >= ? AND bucket_time < ?",
    );
    let mut args = vec![
        Value::Text(req.service_name.clone()),
        ts_micros(from * 1_000_000),
        ts_micros(to * 1_000_000),
    ];
    for (column, value) in [
        ("span_kind", req.span_kind.to_ascii_uppercase()),
        ("operation", req.operation.clone()),
        ("agent_id", req.agent_id.clone()),
    ] {
        if !value.is_empty() {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(Value::Text(value));
        }
    }
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args.iter()))?;
    let mut out = Operations::default();
    while let Some(r) = rows.next()? {
        let agent: String = r.get(0)?;
        let minute: i64 = r.get(1)?;
        let kind: String = r.get(3)?;
        let sketch: Vec<u8> = r.get(10)?;
        let summary = OperationSummary {
            operation: r.get(2)?,
            total_spans: r.get(4)?,
            error_count: r.get(5)?,
            min_ms: r.get(6)?,
            max_ms: r.get(7)?,
            sum_ms: r.get(8)?,
            samples: samples_from_json(&r.get::<_, String>(9)?),
            sketch: Some(DurationSketch::decode(sketch.as_slice()).map_err(|e| {
                StoreError::Corrupt {
                    what: "operation",
                    detail: e.to_string(),
                }
            })?),
            ..Default::default()
        };
        out.add(&agent, minute, kind, &summary)?;
    }
    Ok(out.finish(from, to))
}

/// Operation rows merged per (minute, operation, kind) and over the window,
/// counting the agents behind each: the answer of `QueryOperations`,
/// whichever engine the rows come from.
#[derive(Default)]
pub(crate) struct Operations {
    minutes: BTreeMap<(i64, String, String), Merged>,
    totals: BTreeMap<(String, String), Merged>,
}

impl Operations {
    /// Merges one agent's operation row of `minute`.
    pub(crate) fn add(
        &mut self,
        agent: &str,
        minute: i64,
        kind: String,
        summary: &OperationSummary,
    ) -> Result<(), StoreError> {
        let stats = operation_from_proto(summary).map_err(|e| StoreError::Corrupt {
            what: "operation",
            detail: e.to_string(),
        })?;
        let operation = summary.operation.clone();
        add(
            &mut self.minutes,
            (minute, operation.clone(), kind.clone()),
            &stats,
            agent,
        )?;
        add(&mut self.totals, (operation, kind), &stats, agent)
    }

    /// The response for the window `[from, to)`: totals slowest first.
    pub(crate) fn finish(self, from: i64, to: i64) -> QueryOperationsResponse {
        let mut totals: Vec<OperationRow> = self
            .totals
            .into_iter()
            .map(|((operation, kind), m)| row(0, operation, kind, &m))
            .collect();
        totals.sort_by(|a, b| {
            b.sum_ms
                .total_cmp(&a.sum_ms)
                .then_with(|| a.operation.cmp(&b.operation))
                .then_with(|| a.span_kind.cmp(&b.span_kind))
        });
        QueryOperationsResponse {
            rows: self
                .minutes
                .into_iter()
                .map(|((minute, operation, kind), m)| row(minute, operation, kind, &m))
                .collect(),
            totals,
            from_unix: from,
            to_unix: to,
        }
    }
}

fn add<K: Ord>(
    map: &mut BTreeMap<K, Merged>,
    key: K,
    stats: &Stats,
    agent: &str,
) -> Result<(), StoreError> {
    match map.get_mut(&key) {
        Some((merged, agents)) => {
            merged.merge(stats).map_err(|e| StoreError::Corrupt {
                what: "operation",
                detail: e.to_string(),
            })?;
            agents.insert(agent.to_owned());
        }
        None => {
            map.insert(key, (stats.clone(), BTreeSet::from([agent.to_owned()])));
        }
    }
    Ok(())
}

fn row(minute: i64, operation: String, span_kind: String, (s, agents): &Merged) -> OperationRow {
    let (p50_ms, p95_ms, p99_ms) = s.percentiles();
    OperationRow {
        bucket_time: minute,
        operation,
        span_kind,
        total_spans: i64::try_from(s.total).unwrap_or(i64::MAX),
        error_count: i64::try_from(s.errors).unwrap_or(i64::MAX),
        p50_ms,
        p95_ms,
        p99_ms,
        min_ms: s.min_ms_or_zero(),
        max_ms: s.max_ms,
        sum_ms: s.sum_ms,
        sample_traces: s.samples.trace_ids(),
        agent_count: agents.len() as u32,
    }
}
