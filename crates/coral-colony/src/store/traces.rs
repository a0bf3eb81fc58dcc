//! One trace model over both span sources: OTLP kept spans (`trace_spans`)
//! and Beyla spans (`beyla_traces`), from every agent, joined by trace id.
//! Answers `GetTrace` (one trace, its critical path and self times) and
//! `ListTraces` (summaries, slowest first). Blocking.
//!
//! `GetTrace` reads in two passes so that a huge trace costs bounded memory:
//! first the timing of every span (ids and times, a few dozen bytes each, up
//! to [`MAX_SPANS_READ`]), from which the critical path is computed; then the
//! details (attributes, resource) of the spans it returns, at most
//! `max_spans` and [`MAX_RESPONSE_BYTES`] of text, critical-path spans first.

use std::collections::{HashMap, HashSet};

use coral_model::{SpanTiming, TraceShape};
use coral_proto::colony::{
    GetTraceResponse, ListTracesRequest, ListTracesResponse, TraceSpan, TraceSummary,
};
use duckdb::types::Value;
use duckdb::{Connection, params_from_iter};
use serde::Deserialize;

use super::{StoreError, ts_micros};

/// Spans returned by `GetTrace` when the request names no bound; also the
/// upper bound.
pub const MAX_TRACE_SPANS: u32 = 10_000;
/// Spans whose timing `GetTrace` reads for the critical path; a trace with
/// more is analysed on its first spans by start time, and says so.
pub const MAX_SPANS_READ: usize = 1_000_000;
/// Text (attributes and resources) `GetTrace` returns at most, far below
/// the 256 MiB a CLI accepts; spans past it are cut and the response says so.
pub const MAX_RESPONSE_BYTES: usize = 32 * 1024 * 1024;
/// Default and upper bound of `ListTraces`.
pub const DEFAULT_LIST_LIMIT: u32 = 20;
/// Upper bound of `ListTraces`' `limit`.
pub const MAX_LIST_LIMIT: u32 = 1_000;

/// Both sources as one relation. Columns: source, agent_id, seq_id, trace_id,
/// span_id, parent_span_id, service_name, span_name, span_kind, start_time,
/// start_time_ns, duration_us, is_error, status, status_message,
/// status_code, keep_reason, attributes, resource.
const ALL_SPANS: &str = "(\
SELECT 'otlp' AS source, agent_id, seq_id, trace_id, span_id, parent_span_id, service_name, \
       span_name, lower(span_kind) AS span_kind, start_time, start_time_ns, duration_us, is_error, \
       lower(status_code) AS status, status_message, \
       coalesce(http_status_code, grpc_status_code, 0) AS status_code, keep_reason, attributes, \
       resource \
FROM trace_spans \
UNION ALL \
SELECT 'beyla', agent_id, seq_id, trace_id, span_id, parent_span_id, service_name, span_name, \
       lower(span_kind), start_time, start_time_ns, duration_us, is_error, \
       CASE WHEN is_error THEN 'error' ELSE 'unset' END, '', status_code, 'beyla', attributes, '{}' \
FROM beyla_traces)";

/// Whether `id` is a trace id: 32 hex characters.
pub fn is_trace_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A span's identity and timing (the first pass).
pub(crate) struct Timing {
    pub source: &'static str,
    pub agent_id: String,
    pub seq_id: u64,
    pub span_id: String,
    pub parent_span_id: String,
    pub start_ns: i64,
    pub duration_us: i64,
}

/// `source` as one of the two names.
pub(crate) fn source_name(source: &str) -> &'static str {
    if source == "beyla" { "beyla" } else { "otlp" }
}

/// A span's details (the second pass).
pub(crate) struct Detail {
    pub source: &'static str,
    pub agent_id: String,
    pub seq_id: u64,
    pub service: String,
    pub operation: String,
    pub kind: String,
    pub error: bool,
    pub status: String,
    pub status_message: String,
    pub status_code: i32,
    pub keep_reason: String,
    pub attributes: String,
    pub resource: String,
}

/// What the trace view shows of a resource.
#[derive(Default, Deserialize)]
struct ResourceFacts {
    #[serde(rename = "host.name")]
    host: Option<serde_json::Value>,
    #[serde(rename = "service.version")]
    version: Option<serde_json::Value>,
    #[serde(rename = "k8s.pod.name")]
    pod: Option<serde_json::Value>,
}

fn text(v: &Option<serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// The bound on returned spans `max_spans` asks for.
pub(crate) fn span_bound(max_spans: u32) -> usize {
    (match max_spans {
        0 => MAX_TRACE_SPANS,
        n => n.min(MAX_TRACE_SPANS),
    }) as usize
}

/// One trace being assembled, whichever store it is read from: the timing
/// of its spans (the first pass) gives the critical path and the spans to
/// return; their details (the second pass) are added as they are read.
pub(crate) struct Assembly {
    response: GetTraceResponse,
    spans: Vec<Timing>,
    shape: TraceShape,
    orphans: HashSet<usize>,
    order: Vec<usize>,
    wanted: HashMap<(&'static str, String, u64), usize>,
    max_spans: usize,
    hosts: HashMap<String, String>,
    details: HashMap<usize, TraceSpan>,
    resources: HashMap<String, ResourceFacts>,
}

impl Assembly {
    /// The response for a trace without spans.
    pub(crate) fn not_found(trace_id: &str) -> GetTraceResponse {
        GetTraceResponse {
            trace_id: trace_id.to_owned(),
            ..Default::default()
        }
    }

    /// Plans the answer from the timings (sorted by start, at most
    /// [`MAX_SPANS_READ`]) of a trace of `span_count` stored spans; `hosts`
    /// names each agent's host.
    pub(crate) fn new(
        trace_id: &str,
        span_count: u64,
        spans: Vec<Timing>,
        max_spans: usize,
        hosts: HashMap<String, String>,
    ) -> Assembly {
        let timings: Vec<SpanTiming<'_>> = spans
            .iter()
            .map(|s| SpanTiming {
                span_id: &s.span_id,
                parent_span_id: &s.parent_span_id,
                start_ns: s.start_ns,
                end_ns: s
                    .start_ns
                    .saturating_add(s.duration_us.saturating_mul(1_000)),
            })
            .collect();
        let shape = TraceShape::new(&timings);
        let start = timings.iter().map(|t| t.start_ns).min().unwrap_or(0);
        let end = timings.iter().map(|t| t.end_ns).max().unwrap_or(0);
        let response = GetTraceResponse {
            trace_id: trace_id.to_owned(),
            span_count: u32::try_from(span_count).unwrap_or(u32::MAX),
            found: span_count > 0,
            duration_us: (end - start) / 1_000,
            critical_path_us: shape.critical_path_ns / 1_000,
            ..Default::default()
        };
        // Which spans to return: the critical path first, then by start time.
        let mut order: Vec<usize> = (0..spans.len()).filter(|&i| shape.on_path[i]).collect();
        order.extend((0..spans.len()).filter(|&i| !shape.on_path[i]));
        let wanted = order
            .iter()
            .take(max_spans)
            .map(|&i| {
                let s = &spans[i];
                ((s.source, s.agent_id.clone(), s.seq_id), i)
            })
            .collect();
        Assembly {
            response,
            spans,
            orphans: shape.orphans.iter().copied().collect(),
            shape,
            order,
            wanted,
            max_spans,
            hosts,
            details: HashMap::new(),
            resources: HashMap::new(),
        }
    }

    /// Adds a span's details (ignored unless the span is to be returned).
    pub(crate) fn add(&mut self, d: Detail) {
        let Some(&i) = self.wanted.get(&(d.source, d.agent_id.clone(), d.seq_id)) else {
            return;
        };
        let facts = self
            .resources
            .entry(d.resource.clone())
            .or_insert_with(|| serde_json::from_str(&d.resource).unwrap_or_default());
        let host = match text(&facts.host) {
            h if h.is_empty() => self.hosts.get(&d.agent_id).cloned().unwrap_or_default(),
            h => h,
        };
        let t = &self.spans[i];
        let orphan = self.orphans.contains(&i);
        self.details.insert(
            i,
            TraceSpan {
                span_id: t.span_id.clone(),
                parent_span_id: t.parent_span_id.clone(),
                service: d.service,
                operation: d.operation,
                kind: d.kind,
                start_unix_nano: t.start_ns,
                duration_us: t.duration_us,
                self_time_us: self.shape.self_time_ns[i] / 1_000,
                on_critical_path: self.shape.on_path[i],
                error: d.error,
                status: d.status,
                status_message: d.status_message,
                status_code: d.status_code,
                source: d.source.to_owned(),
                keep_reason: d.keep_reason,
                attributes_json: d.attributes,
                service_version: text(&facts.version),
                pod: text(&facts.pod),
                resource_json: d.resource,
                agent_id: d.agent_id,
                host,
                missing_parent: orphan && !t.parent_span_id.is_empty(),
            },
        );
    }

    /// The answer: the spans picked, within the byte budget (critical-path
    /// spans take it first), in start order.
    pub(crate) fn finish(mut self) -> GetTraceResponse {
        let mut bytes = 0usize;
        let mut picked: Vec<usize> = Vec::with_capacity(self.details.len());
        for &i in self.order.iter().take(self.max_spans) {
            let Some(d) = self.details.get(&i) else {
                continue;
            };
            let size = d.attributes_json.len() + d.resource_json.len() + 256;
            if bytes + size > MAX_RESPONSE_BYTES && !picked.is_empty() {
                break;
            }
            bytes += size;
            picked.push(i);
        }
        picked.sort_unstable();
        let mut response = self.response;
        response.spans = picked
            .into_iter()
            .filter_map(|i| self.details.remove(&i))
            .collect();
        response.truncated = (response.spans.len() as u64) < u64::from(response.span_count);
        response
    }
}

/// Answers `GetTrace`: every stored span of `trace_id` from both sources, at
/// most `max_spans` (0 = [`MAX_TRACE_SPANS`]).
pub fn get_trace(
    conn: &Connection,
    trace_id: &str,
    max_spans: u32,
) -> Result<GetTraceResponse, StoreError> {
    let trace_id = trace_id.to_ascii_lowercase();
    let span_count: u64 = conn.query_row(
        &format!("SELECT count(*)::UBIGINT FROM {ALL_SPANS} WHERE trace_id = ?"),
        [&trace_id],
        |r| r.get(0),
    )?;
    if span_count == 0 {
        return Ok(Assembly::not_found(&trace_id));
    }
    let mut stmt = conn.prepare(&format!(
        "SELECT source, agent_id, seq_id, span_id, parent_span_id, start_time_ns, duration_us \
         FROM {ALL_SPANS} WHERE trace_id = ? \
         ORDER BY start_time_ns, source, agent_id, seq_id LIMIT {MAX_SPANS_READ}"
    ))?;
    let mut rows = stmt.query([&trace_id])?;
    let mut spans: Vec<Timing> = Vec::new();
    while let Some(r) = rows.next()? {
        spans.push(Timing {
            source: source_name(&r.get::<_, String>(0)?),
            agent_id: r.get(1)?,
            seq_id: r.get(2)?,
            span_id: r.get(3)?,
            parent_span_id: r.get(4)?,
            start_ns: r.get(5)?,
            duration_us: r.get::<_, i64>(6)?.max(0),
        });
    }
    let hosts = agent_hosts(conn)?;
    let mut trace = Assembly::new(&trace_id, span_count, spans, span_bound(max_spans), hosts);
    let mut stmt = conn.prepare(&format!(
        "SELECT source, agent_id, seq_id, service_name, span_name, span_kind, is_error, status, \
         status_message, status_code, keep_reason, attributes, resource \
         FROM {ALL_SPANS} WHERE trace_id = ?"
    ))?;
    let mut rows = stmt.query([&trace_id])?;
    while let Some(r) = rows.next()? {
        trace.add(Detail {
            source: source_name(&r.get::<_, String>(0)?),
            agent_id: r.get(1)?,
            seq_id: r.get(2)?,
            service: r.get(3)?,
            operation: r.get(4)?,
            kind: r.get(5)?,
            error: r.get(6)?,
            status: r.get(7)?,
            status_message: r.get(8)?,
            status_code: r.get(9)?,
            keep_reason: r.get(10)?,
            attributes: r.get(11)?,
            resource: r.get(12)?,
        });
    }
    Ok(trace.finish())
}

/// Each known agent's hostname.
fn agent_hosts(conn: &Connection) -> Result<HashMap<String, String>, StoreError> {
    let mut stmt = conn.prepare("SELECT agent_id, hostname FROM agents")?;
    let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Answers `ListTraces` for the window `[from_ms, to_ms)` (Unix ms).
pub fn list_traces(
    conn: &Connection,
    req: &ListTracesRequest,
    from_ms: i64,
    to_ms: i64,
) -> Result<ListTracesResponse, StoreError> {
    let limit = match req.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    let mut matched = String::from("start_time >= ? AND start_time < ?");
    let mut args = vec![ts_micros(from_ms * 1_000), ts_micros(to_ms * 1_000)];
    for (column, value) in [
        ("service_name", &req.service),
        ("span_name", &req.operation),
        ("keep_reason", &req.keep_reason),
        ("source", &req.source),
    ] {
        if !value.is_empty() {
            matched.push_str(&format!(" AND {column} = ?"));
            args.push(Value::Text(value.clone()));
        }
    }
    let mut having = String::from("(max(end_ns) - min(start_time_ns)) / 1000 >= ?");
    args.push(Value::BigInt(req.min_duration_us.max(0)));
    if req.errors_only {
        having.push_str(" AND count(*) FILTER (WHERE is_error) > 0");
    }
    // Only the columns the summaries need (never the attribute JSON); the
    // services and sources are listed for the `limit` traces kept, not for
    // every trace that matched.
    let sql = format!(
        "WITH spans AS (SELECT source, trace_id, parent_span_id, service_name, span_name, \
                    keep_reason, start_time, start_time_ns, duration_us, is_error, \
                    start_time_ns + duration_us * 1000 AS end_ns FROM {ALL_SPANS}), \
         hit AS (SELECT DISTINCT trace_id FROM spans WHERE {matched}), \
         t AS (SELECT s.* FROM spans s SEMI JOIN hit USING (trace_id)), \
         summary AS (SELECT trace_id, min(start_time_ns) AS start_ns, \
                    (max(end_ns) - min(start_time_ns)) / 1000 AS duration_us, \
                    count(*) AS span_count, count(*) FILTER (WHERE is_error) AS error_count, \
                    arg_min(service_name, [CASE WHEN parent_span_id = '' THEN 0 ELSE 1 END, \
                        CASE WHEN parent_span_id = '' THEN -duration_us ELSE start_time_ns END]) \
                        AS root_service, \
                    arg_min(span_name, [CASE WHEN parent_span_id = '' THEN 0 ELSE 1 END, \
                        CASE WHEN parent_span_id = '' THEN -duration_us ELSE start_time_ns END]) \
                        AS root_operation \
                    FROM t GROUP BY trace_id HAVING {having} \
                    ORDER BY duration_us DESC, trace_id LIMIT {}), \
         firsts AS (SELECT trace_id, service_name, min(start_time_ns) AS first_ns, \
                    list(DISTINCT source) AS sources \
                    FROM t SEMI JOIN summary USING (trace_id) GROUP BY trace_id, service_name) \
         SELECT s.trace_id, s.root_service, s.root_operation, s.start_ns, s.duration_us::BIGINT, \
                s.span_count::UINTEGER, s.error_count::UINTEGER, \
                list(f.service_name ORDER BY f.first_ns, f.service_name), \
                flatten(list(f.sources)) \
         FROM summary s JOIN firsts f USING (trace_id) \
         GROUP BY ALL ORDER BY 5 DESC, 1",
        limit + 1
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(params_from_iter(args.iter()))?;
    let mut traces = Vec::new();
    while let Some(r) = rows.next()? {
        let mut sources: Vec<String> = list(r.get(8)?);
        sources.sort();
        sources.dedup();
        traces.push(TraceSummary {
            trace_id: r.get(0)?,
            root_service: r.get(1)?,
            root_operation: r.get(2)?,
            start_unix_nano: r.get(3)?,
            duration_us: r.get(4)?,
            span_count: r.get(5)?,
            error_count: r.get(6)?,
            services: list(r.get(7)?),
            sources,
        });
    }
    let truncated = traces.len() > limit as usize;
    traces.truncate(limit as usize);
    Ok(ListTracesResponse {
        traces,
        truncated,
        start_time_unix_ms: from_ms,
        end_time_unix_ms: to_ms,
    })
}

/// The strings of a DuckDB list value.
fn list(v: Value) -> Vec<String> {
    match v {
        Value::List(items) | Value::Array(items) => items
            .into_iter()
            .filter_map(|i| match i {
                Value::Text(s) => Some(s),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}
