//! The colony's DuckDB as the diagnosis engine's data source
//! ([`coral_diagnose::DiagnosisData`]), behind `Diagnose` (`coral ask`).
//! Blocking: call from a blocking context.
//!
//! Each method is one SQL query over a bounded window:
//!
//! | method | tables |
//! |---|---|
//! | `services` | `otel_spans`, `beyla_{http,grpc,sql}_metrics` |
//! | `red` | `otel_operations` (sketches), `beyla_{http,grpc,sql}_metrics` (histograms), `agents` |
//! | `traces` | `trace_spans`, `beyla_traces`, `agents` |
//! | `hosts` | `host_metrics` |
//! | `coverage` | `agents`, `gaps` |
//!
//! Trace queries are cut at [`MAX_TRACES`] traces of at most
//! [`MAX_SPANS_PER_TRACE`] spans each; sampled traces come in trace id
//! order, so a cut keeps the sample unbiased.
//!
//! The ClickHouse source ([`super::clickhouse::diagnose`]) answers the same:
//! it shares the limits, the merge of RED rows ([`merge_red`]) and the
//! conversion of a stored span ([`StoredSpan`]).

use std::collections::BTreeMap;

use coral_diagnose::data::{
    AgentInfo, CoverageData, GapRow, HostMinute, KeepReason, Latency, RedRow, Source, Trace,
    TraceBatch, TraceFilter, TraceSelect, TraceSpan,
};
use coral_diagnose::{DiagnosisData, Window};
use coral_model::{DurationSketch, Histogram, SpanKind, samples_from_json};
use duckdb::types::Value;
use duckdb::{Connection, params_from_iter};
use thiserror::Error;

use super::ts_micros;

/// Most traces one trace query returns, whatever the engine asks.
pub const MAX_TRACES: usize = 5_000;
/// Most spans read of one trace (the earliest by start time).
pub const MAX_SPANS_PER_TRACE: usize = 2_000;
/// Most gaps one coverage query returns (the newest).
pub const MAX_GAPS: usize = 1_000;

/// Why a diagnosis query failed.
#[derive(Debug, Error)]
pub enum DataError {
    /// A DuckDB statement failed.
    #[error("the {query} query failed: {source}")]
    Query {
        /// Which query (`services`, `red`, `traces`, `hosts`, `coverage`).
        query: &'static str,
        /// DuckDB's error.
        #[source]
        source: duckdb::Error,
    },
    /// A ClickHouse statement failed.
    #[error("the {query} query failed: {source}")]
    ClickHouse {
        /// Which query (`services`, `red`, `traces`, `hosts`, `coverage`).
        query: &'static str,
        /// The ClickHouse store's error.
        #[source]
        source: super::clickhouse::ClickHouseError,
    },
    /// A stored sketch or histogram could not be decoded.
    #[error("the colony database holds an undecodable {what}: {detail}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoder's complaint.
        detail: String,
    },
}

fn failed(query: &'static str) -> impl Fn(duckdb::Error) -> DataError {
    move |source| DataError::Query { query, source }
}

/// The colony's store, read through one connection.
pub struct ColonyData<'a> {
    conn: &'a Connection,
}

impl<'a> ColonyData<'a> {
    /// Reads through `conn` (a reader from [`super::Database::reader`]).
    pub fn new(conn: &'a Connection) -> ColonyData<'a> {
        ColonyData { conn }
    }
}

fn seconds(t: i64) -> Value {
    ts_micros(t.saturating_mul(1_000_000))
}

/// Each agent's hostname (one row per agent).
const AGENT_HOSTS: &str =
    "(SELECT agent_id, any_value(hostname) AS hostname FROM agents GROUP BY agent_id)";

/// RED rows of one service from both sources. Parameters: the service and
/// the window, four times (OTLP, Beyla HTTP, gRPC, SQL). Beyla HTTP fails
/// with a status ≥ 500, gRPC with a status other than OK.
const RED_SQL: &str = "
WITH r AS (
  SELECT 'otlp' AS source, epoch(bucket_time)::BIGINT AS minute, agent_id,
         span_kind AS kind, operation, total_spans::BIGINT AS requests,
         error_count::BIGINT AS errors, sum_ms, max_ms, sketch AS latency, samples
  FROM otel_operations WHERE service_name = ? AND bucket_time >= ? AND bucket_time < ?
  UNION ALL
  SELECT 'beyla', epoch(minute)::BIGINT, agent_id, upper(kind),
         trim(http_method || ' ' || http_route), count::BIGINT,
         CASE WHEN http_status_code >= 500 THEN count ELSE 0 END::BIGINT,
         sum_ms, coalesce(max_ms, 0), latency, '[]'
  FROM beyla_http_metrics WHERE service_name = ? AND minute >= ? AND minute < ?
  UNION ALL
  SELECT 'beyla', epoch(minute)::BIGINT, agent_id, upper(kind), grpc_method, count::BIGINT,
         CASE WHEN grpc_status_code <> 0 THEN count ELSE 0 END::BIGINT,
         sum_ms, coalesce(max_ms, 0), latency, '[]'
  FROM beyla_grpc_metrics WHERE service_name = ? AND minute >= ? AND minute < ?
  UNION ALL
  SELECT 'beyla', epoch(minute)::BIGINT, agent_id, 'CLIENT',
         trim(sql_operation || ' ' || table_name), count::BIGINT, error_count::BIGINT,
         sum_ms, coalesce(max_ms, 0), latency, '[]'
  FROM beyla_sql_metrics WHERE service_name = ? AND minute >= ? AND minute < ?
)
SELECT r.source, r.minute, r.agent_id, coalesce(a.hostname, ''), r.kind, r.operation,
       r.requests, r.errors, r.sum_ms, r.max_ms, r.latency, r.samples
FROM r LEFT JOIN {AGENT_HOSTS} a USING (agent_id)
ORDER BY r.minute, r.agent_id, r.kind, r.operation";

/// Kept spans of both sources as one relation, with what the engine reads.
const SPANS: &str = "(
  SELECT agent_id, trace_id, span_id, parent_span_id, service_name, span_name, span_kind,
         start_time, start_time_ns, duration_us, is_error, status_message,
         coalesce(http_status_code, 0) AS http_status, grpc_status_code AS grpc_status,
         db_system, http_route, keep_reason, attributes, resource
  FROM trace_spans
  UNION ALL
  SELECT agent_id, trace_id, span_id, parent_span_id, service_name, span_name, upper(span_kind),
         start_time, start_time_ns, duration_us, is_error, '', status_code, NULL::INTEGER,
         '', '', 'beyla', attributes, ''
  FROM beyla_traces)";

/// One (minute, agent, kind, operation, source) being merged.
struct RedAcc {
    row: RedRow,
}

impl RedAcc {
    fn add(&mut self, other: RedRow) {
        let r = &mut self.row;
        r.requests += other.requests;
        r.errors += other.errors;
        r.sum_ms += other.sum_ms;
        r.max_ms = r.max_ms.max(other.max_ms);
        match (&mut r.latency, &other.latency) {
            (Latency::Sketch(mine), Latency::Sketch(theirs)) => {
                // Sketches of one store share an accuracy; counts add anyway.
                let _ = mine.merge(theirs);
            }
            (Latency::Histogram(mine), Latency::Histogram(theirs)) => mine.merge(theirs),
            _ => {}
        }
        for id in other.sample_trace_ids {
            if !r.sample_trace_ids.contains(&id) {
                r.sample_trace_ids.push(id);
            }
        }
    }
}

/// RED rows merged per (minute, agent, span kind, operation, source), in
/// that order: Beyla's series of one operation (e.g. its status codes) add
/// up to one row. Rows of a key merge in the order given.
pub(crate) fn merge_red(rows: impl IntoIterator<Item = RedRow>) -> Vec<RedRow> {
    let mut merged: BTreeMap<(i64, String, SpanKind, String, Source), RedAcc> = BTreeMap::new();
    for row in rows {
        let key = (
            row.minute,
            row.agent_id.clone(),
            row.span_kind,
            row.operation.clone(),
            row.source,
        );
        match merged.get_mut(&key) {
            Some(acc) => acc.add(row),
            None => {
                merged.insert(key, RedAcc { row });
            }
        }
    }
    merged.into_values().map(|a| a.row).collect()
}

/// The text of a scalar JSON value (`None` for objects, arrays and null).
fn scalar_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A JSON object's scalar attributes as text.
fn attribute_texts(json: &str) -> BTreeMap<String, String> {
    match serde_json::from_str::<serde_json::Value>(json) {
        Ok(serde_json::Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), scalar_text(v)?)))
            .collect(),
        _ => BTreeMap::new(),
    }
}

/// Resource keys that become span fields rather than attributes.
const RESOURCE_FIELDS: [&str; 4] = [
    "service.name",
    "service.version",
    "host.name",
    "k8s.pod.name",
];

fn keep_reason(text: &str) -> KeepReason {
    match text {
        "error" => KeepReason::Error,
        "latency" => KeepReason::Latency,
        "beyla" => KeepReason::Beyla,
        _ => KeepReason::Sampled,
    }
}

/// A kept span as both engines read it: the columns of [`SPANS`] and the
/// agent's hostname, before [`StoredSpan::into_span`] makes it the engine's.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct StoredSpan {
    pub agent_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub service_name: String,
    pub span_name: String,
    /// As stored (upper case for Beyla's).
    pub span_kind: String,
    pub start_time_ns: i64,
    pub duration_us: i64,
    pub is_error: bool,
    pub status_message: String,
    /// The HTTP status (0 when none); Beyla's one status column.
    pub http_status: i32,
    pub grpc_status: Option<i32>,
    pub db_system: String,
    pub http_route: String,
    pub keep_reason: String,
    /// JSON object.
    pub attributes: String,
    /// JSON object (empty for Beyla's).
    pub resource: String,
    /// The agent's hostname, empty when unknown.
    pub agent_host: String,
}

impl StoredSpan {
    /// One row of the trace query: `matched`, then the columns of
    /// [`SPANS`], then the agent's hostname.
    fn from_row(r: &duckdb::Row<'_>) -> Result<StoredSpan, duckdb::Error> {
        Ok(StoredSpan {
            agent_id: r.get(1)?,
            span_id: r.get(3)?,
            parent_span_id: r.get(4)?,
            service_name: r.get(5)?,
            span_name: r.get(6)?,
            span_kind: r.get(7)?,
            start_time_ns: r.get(9)?,
            duration_us: r.get(10)?,
            is_error: r.get(11)?,
            status_message: r.get(12)?,
            http_status: r.get(13)?,
            grpc_status: r.get(14)?,
            db_system: r.get(15)?,
            http_route: r.get(16)?,
            keep_reason: r.get(17)?,
            attributes: r.get(18)?,
            resource: r.get(19)?,
            agent_host: r.get(20)?,
        })
    }

    /// The engine's span: resource facts become fields, other resource
    /// attributes join the span's, Beyla's one status column is read as
    /// HTTP or gRPC.
    pub(crate) fn into_span(self) -> TraceSpan {
        let reason = keep_reason(&self.keep_reason);
        let mut attributes = attribute_texts(&self.attributes);
        let resource = attribute_texts(&self.resource);
        let beyla = reason == KeepReason::Beyla;
        // Beyla spans carry their resource's attributes among their own.
        let facts = if beyla { &attributes } else { &resource };
        let service_version = facts.get("service.version").cloned().unwrap_or_default();
        let pod = facts.get("k8s.pod.name").cloned().unwrap_or_default();
        let host = match facts.get("host.name") {
            Some(h) if !h.is_empty() && !beyla => h.clone(),
            _ => self.agent_host,
        };
        for (k, v) in &resource {
            if !RESOURCE_FIELDS.contains(&k.as_str()) {
                attributes.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        if !self.http_route.is_empty() {
            attributes.insert("http.route".to_owned(), self.http_route);
        }
        let status = self.http_status;
        let mut grpc_status = self.grpc_status;
        let mut http_status = u16::try_from(status).unwrap_or(0);
        if beyla {
            // Beyla's one status column holds the HTTP status, or the gRPC
            // code on RPC spans.
            let rpc = attributes.keys().any(|k| k.starts_with("rpc."));
            if rpc {
                grpc_status = Some(status);
                http_status = 0;
            }
        }
        let db_system = match self.db_system {
            s if !s.is_empty() => Some(s),
            _ => attributes.get("db.system").cloned(),
        };
        let db_statement = ["db.statement", "db.query.text"]
            .iter()
            .find_map(|k| attributes.get(*k).cloned());
        TraceSpan {
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            service: self.service_name,
            operation: self.span_name,
            kind: self.span_kind.parse().unwrap_or(SpanKind::Unspecified),
            start_ns: self.start_time_ns,
            duration_us: self.duration_us,
            is_error: self.is_error,
            status_message: self.status_message,
            http_status_code: http_status,
            grpc_status_code: grpc_status,
            db_system,
            db_statement,
            keep_reason: reason,
            agent_id: self.agent_id,
            host,
            service_version,
            pod,
            attributes,
        }
    }
}

impl DiagnosisData for ColonyData<'_> {
    type Error = DataError;

    fn services(&self, window: Window) -> Result<Vec<String>, DataError> {
        let sql = "SELECT DISTINCT service_name FROM (
              SELECT service_name FROM otel_spans WHERE bucket_time >= $1 AND bucket_time < $2
              UNION ALL SELECT service_name FROM beyla_http_metrics WHERE minute >= $1 AND minute < $2
              UNION ALL SELECT service_name FROM beyla_grpc_metrics WHERE minute >= $1 AND minute < $2
              UNION ALL SELECT service_name FROM beyla_sql_metrics WHERE minute >= $1 AND minute < $2)
            WHERE service_name <> '' ORDER BY 1";
        let mut stmt = self.conn.prepare(sql).map_err(failed("services"))?;
        let rows = stmt
            .query_map([seconds(window.from), seconds(window.to)], |r| r.get(0))
            .map_err(failed("services"))?;
        rows.collect::<Result<_, _>>().map_err(failed("services"))
    }

    fn red(&self, service: &str, window: Window) -> Result<Vec<RedRow>, DataError> {
        let sql = RED_SQL.replace("{AGENT_HOSTS}", AGENT_HOSTS);
        let mut args = Vec::with_capacity(12);
        for _ in 0..4 {
            args.push(Value::Text(service.to_owned()));
            args.push(seconds(window.from));
            args.push(seconds(window.to));
        }
        let mut stmt = self.conn.prepare(&sql).map_err(failed("red"))?;
        let mut rows = stmt
            .query(params_from_iter(args.iter()))
            .map_err(failed("red"))?;
        let mut read = Vec::new();
        while let Some(r) = rows.next().map_err(failed("red"))? {
            let source: String = r.get(0).map_err(failed("red"))?;
            let source = if source == "beyla" {
                Source::Beyla
            } else {
                Source::Otlp
            };
            let blob: Vec<u8> = r.get(10).map_err(failed("red"))?;
            let latency = match source {
                Source::Otlp => Latency::Sketch(DurationSketch::decode(&blob).map_err(|e| {
                    DataError::Corrupt {
                        what: "sketch",
                        detail: e.to_string(),
                    }
                })?),
                Source::Beyla => Latency::Histogram(Histogram::decode(&blob).map_err(|e| {
                    DataError::Corrupt {
                        what: "histogram",
                        detail: e.to_string(),
                    }
                })?),
            };
            let kind: String = r.get(4).map_err(failed("red"))?;
            let samples: String = r.get(11).map_err(failed("red"))?;
            let get_count = |i: usize| -> Result<u64, DataError> {
                Ok(r.get::<_, i64>(i).map_err(failed("red"))?.max(0) as u64)
            };
            let row = RedRow {
                minute: r.get(1).map_err(failed("red"))?,
                agent_id: r.get(2).map_err(failed("red"))?,
                host: r.get(3).map_err(failed("red"))?,
                span_kind: kind.parse().unwrap_or(SpanKind::Unspecified),
                operation: r.get(5).map_err(failed("red"))?,
                source,
                requests: get_count(6)?,
                errors: get_count(7)?,
                sum_ms: r.get(8).map_err(failed("red"))?,
                max_ms: r.get(9).map_err(failed("red"))?,
                latency,
                sample_trace_ids: samples_from_json(&samples)
                    .into_iter()
                    .map(|s| s.trace_id)
                    .filter(|id| !id.is_empty())
                    .collect(),
            };
            read.push(row);
        }
        Ok(merge_red(read))
    }

    fn traces(&self, f: &TraceFilter) -> Result<TraceBatch, DataError> {
        let limit = f.limit.min(MAX_TRACES);
        let mut hit = String::from(
            "SELECT DISTINCT trace_id FROM s \
             WHERE service_name = ? AND start_time >= ? AND start_time < ?",
        );
        let mut args = vec![
            Value::Text(f.service.clone()),
            seconds(f.window.from),
            seconds(f.window.to),
        ];
        if let Some(op) = &f.operation {
            hit.push_str(" AND span_name = ?");
            args.push(Value::Text(op.clone()));
        }
        let (picked, order) = match f.select {
            TraceSelect::Sampled => {
                hit.push_str(" AND keep_reason IN ('sampled', 'beyla')");
                ("SELECT trace_id, 0::BIGINT AS longest FROM hit", "trace_id")
            }
            TraceSelect::Errors => (
                "SELECT trace_id, max(duration_us) AS longest FROM s SEMI JOIN hit USING (trace_id) \
                 GROUP BY trace_id HAVING bool_or(is_error)",
                "longest DESC, trace_id",
            ),
            TraceSelect::Any => (
                "SELECT trace_id, max(duration_us) AS longest FROM s SEMI JOIN hit USING (trace_id) \
                 GROUP BY trace_id",
                "longest DESC, trace_id",
            ),
        };
        let sql = format!(
            "WITH s AS {SPANS}, hit AS ({hit}), picked AS ({picked}), \
             ranked AS (SELECT trace_id, longest, count(*) OVER () AS matched FROM picked \
                        ORDER BY {order} LIMIT {limit}), \
             spans AS (SELECT s.*, row_number() OVER (PARTITION BY s.trace_id \
                         ORDER BY s.start_time_ns, s.span_id) AS nth \
                       FROM s SEMI JOIN ranked USING (trace_id)) \
             SELECT r.matched, p.agent_id, p.trace_id, p.span_id, p.parent_span_id, \
                    p.service_name, p.span_name, p.span_kind, p.start_time, p.start_time_ns, \
                    p.duration_us, p.is_error, p.status_message, p.http_status, p.grpc_status, \
                    p.db_system, p.http_route, p.keep_reason, p.attributes, p.resource, \
                    coalesce(a.hostname, '') \
             FROM ranked r JOIN spans p USING (trace_id) \
             LEFT JOIN {AGENT_HOSTS} a ON a.agent_id = p.agent_id \
             WHERE p.nth <= {MAX_SPANS_PER_TRACE} \
             ORDER BY {}, p.start_time_ns, p.span_id",
            order
                .split(", ")
                .map(|o| format!("r.{o}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let mut stmt = self.conn.prepare(&sql).map_err(failed("traces"))?;
        let mut rows = stmt
            .query(params_from_iter(args.iter()))
            .map_err(failed("traces"))?;
        let mut batch = TraceBatch::default();
        while let Some(r) = rows.next().map_err(failed("traces"))? {
            batch.matched = r.get::<_, i64>(0).map_err(failed("traces"))?.max(0) as usize;
            let trace_id: String = r.get(2).map_err(failed("traces"))?;
            let span = StoredSpan::from_row(r)
                .map_err(failed("traces"))?
                .into_span();
            match batch.traces.last_mut() {
                Some(t) if t.trace_id == trace_id => t.spans.push(span),
                _ => batch.traces.push(Trace {
                    trace_id,
                    spans: vec![span],
                }),
            }
        }
        batch.truncated = batch.matched > batch.traces.len();
        Ok(batch)
    }

    fn hosts(&self, agent_ids: &[String], window: Window) -> Result<Vec<HostMinute>, DataError> {
        if agent_ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT epoch(bucket_time)::BIGINT, agent_id, any_value(hostname), avg(cpu_percent), \
                    max(memory_used_bytes), max(memory_total_bytes), avg(net_rx_bytes_per_sec), \
                    avg(net_tx_bytes_per_sec), avg(load1) \
             FROM host_metrics WHERE bucket_time >= ? AND bucket_time < ? AND agent_id IN ({}) \
             GROUP BY 1, 2 ORDER BY 2, 1",
            vec!["?"; agent_ids.len()].join(", ")
        );
        let mut args = vec![seconds(window.from), seconds(window.to)];
        args.extend(agent_ids.iter().map(|a| Value::Text(a.clone())));
        let mut stmt = self.conn.prepare(&sql).map_err(failed("hosts"))?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                Ok(HostMinute {
                    minute: r.get(0)?,
                    agent_id: r.get(1)?,
                    hostname: r.get(2)?,
                    cpu_percent: r.get(3)?,
                    memory_used_bytes: r.get(4)?,
                    memory_total_bytes: r.get(5)?,
                    net_rx_bytes_per_sec: r.get(6)?,
                    net_tx_bytes_per_sec: r.get(7)?,
                    load1: r.get(8)?,
                })
            })
            .map_err(failed("hosts"))?;
        rows.collect::<Result<_, _>>().map_err(failed("hosts"))
    }

    fn coverage(&self, window: Window) -> Result<CoverageData, DataError> {
        // Agents and gaps in one statement: `kind` tells the rows apart.
        let sql = format!(
            "SELECT 'agent' AS kind, agent_id, hostname, 0::UBIGINT AS from_seq, \
                    0::UBIGINT AS to_seq, 0::BIGINT AS at, '' AS reason \
             FROM {AGENT_HOSTS} \
             UNION ALL \
             SELECT * FROM (SELECT 'gap', agent_id, '', from_seq_id, to_seq_id, \
                    epoch(detected_at)::BIGINT, reason FROM gaps \
                    WHERE detected_at >= ? AND detected_at < ? \
                    ORDER BY detected_at DESC, agent_id LIMIT {MAX_GAPS}) \
             ORDER BY 1, 2, 6"
        );
        let mut stmt = self.conn.prepare(&sql).map_err(failed("coverage"))?;
        let mut rows = stmt
            .query([seconds(window.from), seconds(window.to)])
            .map_err(failed("coverage"))?;
        let mut out = CoverageData::default();
        while let Some(r) = rows.next().map_err(failed("coverage"))? {
            let kind: String = r.get(0).map_err(failed("coverage"))?;
            let agent_id: String = r.get(1).map_err(failed("coverage"))?;
            if kind == "agent" {
                out.agents.push(AgentInfo {
                    agent_id,
                    hostname: r.get(2).map_err(failed("coverage"))?,
                });
            } else {
                out.gaps.push(GapRow {
                    agent_id,
                    from_seq: r.get(3).map_err(failed("coverage"))?,
                    to_seq: r.get(4).map_err(failed("coverage"))?,
                    detected_at: r.get(5).map_err(failed("coverage"))?,
                    reason: r.get(6).map_err(failed("coverage"))?,
                });
            }
        }
        Ok(out)
    }
}
