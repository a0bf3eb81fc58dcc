//! Reads behind the colony's query API. Blocking: call from a blocking context.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use coral_model::{Bucket, samples_from_json};
use coral_proto::colony::{
    Gap, HostCorrelationRow, OtelSummaryRow, QueryHostCorrelationResponse,
    QueryOtelSummariesResponse,
};
use coral_proto::common::{DurationSketch, TelemetryBucket};
use duckdb::types::Value;
use duckdb::{Connection, params, params_from_iter};
use prost::Message;

use super::writer::AgentRecord;
use super::{StoreError, ts_micros};

/// The stored cursor of one (agent, stream).
#[derive(Debug, Clone, Default)]
pub struct CursorRow {
    /// Agent store session.
    pub session_id: String,
    /// Highest seq_id stored.
    pub seq_id: u64,
    /// Rows stored in this session.
    pub rows_received: u64,
}

/// Every cursor, by (agent_id, stream).
pub fn cursors(conn: &Connection) -> Result<HashMap<(String, String), CursorRow>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT agent_id, stream, session_id, seq_id, rows_received FROM cursors")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            (r.get(0)?, r.get(1)?),
            CursorRow {
                session_id: r.get(2)?,
                seq_id: r.get(3)?,
                rows_received: r.get(4)?,
            },
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Gap counts by agent.
pub fn gap_counts(conn: &Connection) -> Result<HashMap<String, u64>, StoreError> {
    let mut stmt =
        conn.prepare("SELECT agent_id, count(*)::UBIGINT FROM gaps GROUP BY agent_id")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Gaps, newest first (of one agent when `agent_id` is not empty).
pub fn gaps(conn: &Connection, agent_id: &str) -> Result<Vec<Gap>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT agent_id, stream, session_id, from_seq_id, to_seq_id, \
         strftime(detected_at, '%Y-%m-%dT%H:%M:%SZ'), reason FROM gaps \
         WHERE ? = '' OR agent_id = ? ORDER BY detected_at DESC, agent_id, from_seq_id",
    )?;
    let rows = stmt.query_map(params![agent_id, agent_id], |r| {
        Ok(Gap {
            agent_id: r.get(0)?,
            stream: r.get(1)?,
            session_id: r.get(2)?,
            from_seq_id: r.get(3)?,
            to_seq_id: r.get(4)?,
            detected_at: r.get(5)?,
            reason: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Persisted agent records.
pub fn agents(conn: &Connection) -> Result<Vec<AgentRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT agent_id, endpoint, version, mode, capabilities, hostname, source, \
         epoch_us(registered_at) FROM agents ORDER BY agent_id",
    )?;
    let rows = stmt.query_map([], |r| {
        let caps: String = r.get(4)?;
        Ok(AgentRecord {
            agent_id: r.get(0)?,
            endpoint: r.get(1)?,
            version: r.get(2)?,
            mode: r.get(3)?,
            capabilities: caps
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            hostname: r.get(5)?,
            source: r.get(6)?,
            registered_at_us: r.get(7)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Merged 1-minute summaries of `service` in `[from, to)` (Unix seconds):
/// one row per (minute, span kind) across agents, plus totals per kind.
pub fn otel_summaries(
    conn: &Connection,
    service: &str,
    from: i64,
    to: i64,
    span_kind: &str,
    agent_id: &str,
) -> Result<QueryOtelSummariesResponse, StoreError> {
    let mut sql = String::from(
        "SELECT agent_id, epoch(bucket_time)::BIGINT, span_kind, total_spans, error_count, \
         min_ms, max_ms, sum_ms, samples, sketch FROM otel_spans \
         WHERE service_name = ? AND bucket_time >= ? AND bucket_time < ?",
    );
    let mut args = vec![
        Value::Text(service.to_owned()),
        ts_micros(from * 1_000_000),
        ts_micros(to * 1_000_000),
    ];
    if !span_kind.is_empty() {
        sql.push_str(" AND span_kind = ?");
        args.push(Value::Text(span_kind.to_owned()));
    }
    if !agent_id.is_empty() {
        sql.push_str(" AND agent_id = ?");
        args.push(Value::Text(agent_id.to_owned()));
    }
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args.iter()))?;
    let mut summaries = Summaries::default();
    while let Some(r) = rows.next()? {
        let agent: String = r.get(0)?;
        let sketch: Vec<u8> = r.get(9)?;
        let proto = TelemetryBucket {
            bucket_time: r.get(1)?,
            service_name: service.to_owned(),
            span_kind: r.get(2)?,
            total_spans: r.get(3)?,
            error_count: r.get(4)?,
            min_ms: r.get(5)?,
            max_ms: r.get(6)?,
            sum_ms: r.get(7)?,
            samples: samples_from_json(&r.get::<_, String>(8)?),
            sketch: Some(DurationSketch::decode(sketch.as_slice()).map_err(|e| {
                StoreError::Corrupt {
                    what: "sketch",
                    detail: e.to_string(),
                }
            })?),
            ..Default::default()
        };
        summaries.add(&agent, &proto)?;
    }
    Ok(summaries.finish(from, to))
}

/// Buckets of one service merged per (minute, span kind) and per kind,
/// counting the agents behind each: the answer of `QueryOtelSummaries`,
/// whichever engine the buckets come from.
#[derive(Default)]
pub(crate) struct Summaries {
    minutes: BTreeMap<(i64, String), (Bucket, BTreeSet<String>)>,
    totals: BTreeMap<String, (Bucket, BTreeSet<String>)>,
}

impl Summaries {
    /// Merges `proto`, one agent's bucket (or its parts merged).
    pub(crate) fn add(&mut self, agent: &str, proto: &TelemetryBucket) -> Result<(), StoreError> {
        self.add_from(&[agent], proto)
    }

    /// Merges `proto`, the buckets of one minute and kind from `agents`
    /// merged.
    pub(crate) fn add_from<A: AsRef<str>>(
        &mut self,
        agents: &[A],
        proto: &TelemetryBucket,
    ) -> Result<(), StoreError> {
        let bucket = Bucket::from_proto(proto).map_err(|e| StoreError::Corrupt {
            what: "bucket",
            detail: e.to_string(),
        })?;
        let kind = proto.span_kind.clone();
        add(
            &mut self.minutes,
            (proto.bucket_time, kind.clone()),
            &bucket,
            agents,
        )?;
        // Totals use minute 0 so that every minute's bucket merges.
        let mut flat = bucket;
        flat.key.minute = 0;
        add(&mut self.totals, kind, &flat, agents)
    }

    /// The response for the window `[from, to)`.
    pub(crate) fn finish(self, from: i64, to: i64) -> QueryOtelSummariesResponse {
        QueryOtelSummariesResponse {
            rows: self
                .minutes
                .into_values()
                .map(|(b, a)| summary_row(&b, a.len()))
                .collect(),
            totals: self
                .totals
                .into_values()
                .map(|(b, a)| summary_row(&b, a.len()))
                .collect(),
            from_unix: from,
            to_unix: to,
        }
    }
}

fn add<K: Ord, A: AsRef<str>>(
    map: &mut BTreeMap<K, (Bucket, BTreeSet<String>)>,
    key: K,
    bucket: &Bucket,
    agents: &[A],
) -> Result<(), StoreError> {
    let names = agents.iter().map(|a| a.as_ref().to_owned());
    match map.get_mut(&key) {
        Some((merged, known)) => {
            merged.merge(bucket).map_err(|e| StoreError::Corrupt {
                what: "bucket",
                detail: e.to_string(),
            })?;
            known.extend(names);
        }
        None => {
            map.insert(key, (bucket.clone(), names.collect()));
        }
    }
    Ok(())
}

fn summary_row(bucket: &Bucket, agents: usize) -> OtelSummaryRow {
    let p = bucket.to_proto("", 0);
    OtelSummaryRow {
        bucket_time: p.bucket_time,
        service_name: p.service_name,
        span_kind: p.span_kind,
        total_spans: p.total_spans,
        error_count: p.error_count,
        p50_ms: p.p50_ms,
        p95_ms: p.p95_ms,
        p99_ms: p.p99_ms,
        min_ms: p.min_ms,
        max_ms: p.max_ms,
        sum_ms: p.sum_ms,
        sample_traces: p.sample_traces,
        agent_count: agents as u32,
    }
}

/// The correlation query: per minute and agent, the service's requests
/// (SERVER and CONSUMER span summaries, or every kind when the service has
/// neither in the window, as `ListServices` counts them; so a request that
/// is both a server span and a client span of the same service counts once)
/// and their p99 next to the host's CPU, memory and network (documented in
/// `docs/colony.md`). Parameters: service, from, to.
pub const CORRELATION_SQL: &str = "\
WITH w AS (
  SELECT * FROM otel_spans
  WHERE service_name = $1 AND bucket_time >= $2 AND bucket_time < $3
), counted AS (
  SELECT * FROM w
  WHERE span_kind IN ('SERVER', 'CONSUMER')
     OR NOT EXISTS (SELECT 1 FROM w WHERE span_kind IN ('SERVER', 'CONSUMER'))
)
SELECT epoch(o.bucket_time)::BIGINT AS bucket_time, o.agent_id, o.service_name,
       sum(o.total_spans)::BIGINT AS total_spans, sum(o.error_count)::BIGINT AS error_count,
       max(o.p99_ms) AS p99_ms,
       any_value(h.cpu_percent) AS cpu_percent, any_value(h.memory_used_bytes) AS memory_used_bytes,
       any_value(h.net_rx_bytes_per_sec) AS net_rx_bytes_per_sec,
       any_value(h.net_tx_bytes_per_sec) AS net_tx_bytes_per_sec, any_value(h.load1) AS load1
FROM counted o
LEFT JOIN host_metrics h ON h.agent_id = o.agent_id AND h.bucket_time = o.bucket_time
GROUP BY o.bucket_time, o.agent_id, o.service_name
ORDER BY o.bucket_time, o.agent_id";

/// Runs [`CORRELATION_SQL`] for `service` in `[from, to)`.
pub fn host_correlation(
    conn: &Connection,
    service: &str,
    from: i64,
    to: i64,
) -> Result<QueryHostCorrelationResponse, StoreError> {
    let mut stmt = conn.prepare(CORRELATION_SQL)?;
    let rows = stmt.query_map(
        params![
            service,
            ts_micros(from * 1_000_000),
            ts_micros(to * 1_000_000)
        ],
        |r| {
            Ok(HostCorrelationRow {
                bucket_time: r.get(0)?,
                agent_id: r.get(1)?,
                service_name: r.get(2)?,
                total_spans: r.get(3)?,
                error_count: r.get(4)?,
                p99_ms: r.get(5)?,
                cpu_percent: r.get(6)?,
                memory_used_bytes: r.get(7)?,
                net_rx_bytes_per_sec: r.get(8)?,
                net_tx_bytes_per_sec: r.get(9)?,
                load1: r.get(10)?,
            })
        },
    )?;
    Ok(QueryHostCorrelationResponse {
        rows: rows.collect::<Result<_, _>>()?,
        from_unix: from,
        to_unix: to,
    })
}
