//! Beyla's rows in ClickHouse: the HTTP, gRPC and SQL histograms and the
//! spans, stored as the agent sent them (one row per agent, session and
//! seq_id, so a page stored twice collapses like any other), and read back
//! in the embedded store's shape: one histogram per (minute, agent, series),
//! the parts of a series merged with [`Histogram::merge`] in seq_id order, as
//! the embedded store merges them on arrival.

use std::collections::HashSet;

use clickhouse::Row;
use coral_model::{BeylaRows, Histogram};
use coral_proto::colony::{QueryBeylaRequest, QueryBeylaResponse};
use coral_proto::common::{
    BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, BeylaTraceSpan, LatencyHistogram,
};
use serde::{Deserialize, Serialize};

use super::write::insert;
use super::{ClickHouse, ClickHouseError};
use crate::catalogue::{self, Table};
use crate::store::beyla::{BeylaOutcome, TraceSampling};
use crate::store::query_beyla::{DEFAULT_MAX_TRACES, MAX_TRACES};
use crate::store::traces::is_trace_id;

/// `beyla_http_metrics`: one HTTP histogram part.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(crate) struct HttpRow {
    pub agent_id: String,
    pub session_id: String,
    pub seq_id: u64,
    pub minute: i64,
    pub service_name: String,
    pub kind: String,
    pub http_method: String,
    pub http_route: String,
    pub http_status_code: i32,
    pub count: u64,
    pub sum_ms: f64,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub latency_bounds: Vec<f64>,
    pub latency_counts: Vec<u64>,
    pub attributes: String,
}

/// `beyla_grpc_metrics`: one RPC histogram part.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(crate) struct GrpcRow {
    pub agent_id: String,
    pub session_id: String,
    pub seq_id: u64,
    pub minute: i64,
    pub service_name: String,
    pub kind: String,
    pub rpc_system: String,
    pub grpc_method: String,
    pub grpc_status_code: i32,
    pub count: u64,
    pub sum_ms: f64,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub latency_bounds: Vec<f64>,
    pub latency_counts: Vec<u64>,
    pub attributes: String,
}

/// `beyla_sql_metrics`: one database-client histogram part.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(crate) struct SqlRow {
    pub agent_id: String,
    pub session_id: String,
    pub seq_id: u64,
    pub minute: i64,
    pub service_name: String,
    pub db_system: String,
    pub sql_operation: String,
    pub table_name: String,
    pub count: u64,
    pub error_count: u64,
    pub sum_ms: f64,
    pub min_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub latency_bounds: Vec<f64>,
    pub latency_counts: Vec<u64>,
    pub attributes: String,
}

/// `beyla_traces`: a Beyla span.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(crate) struct SpanRow {
    pub agent_id: String,
    pub session_id: String,
    pub seq_id: u64,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub service_name: String,
    pub span_name: String,
    pub span_kind: String,
    pub start_time: i64,
    pub start_time_ns: i64,
    pub duration_us: i64,
    pub status_code: i32,
    pub is_error: u8,
    pub attributes: String,
}

impl SpanRow {
    fn new(agent_id: &str, session_id: &str, s: &BeylaTraceSpan) -> SpanRow {
        SpanRow {
            agent_id: agent_id.to_owned(),
            session_id: session_id.to_owned(),
            seq_id: s.seq_id,
            trace_id: s.trace_id.clone(),
            span_id: s.span_id.clone(),
            parent_span_id: s.parent_span_id.clone(),
            service_name: s.service_name.clone(),
            span_name: s.span_name.clone(),
            span_kind: s.span_kind.clone(),
            start_time: s.start_time_unix_nano / 1_000,
            start_time_ns: s.start_time_unix_nano,
            duration_us: s.duration_us,
            status_code: s.status_code as i32,
            is_error: u8::from(s.is_error),
            attributes: s.attributes_json.clone(),
        }
    }

    /// The span as `QueryBeyla` returns it.
    pub(crate) fn into_proto(self) -> BeylaTraceSpan {
        BeylaTraceSpan {
            agent_id: self.agent_id,
            seq_id: self.seq_id,
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            service_name: self.service_name,
            span_name: self.span_name,
            span_kind: self.span_kind,
            start_time_unix_nano: self.start_time_ns,
            duration_us: self.duration_us,
            status_code: self.status_code as u32,
            is_error: self.is_error != 0,
            attributes_json: self.attributes,
        }
    }
}

/// A histogram as the rows store it: validated, with the fields they keep.
struct Latency {
    count: u64,
    sum_ms: f64,
    min_ms: Option<f64>,
    max_ms: Option<f64>,
    bounds: Vec<f64>,
    counts: Vec<u64>,
}

fn latency(h: Option<&LatencyHistogram>) -> Result<Latency, String> {
    let h = match h {
        Some(h) => Histogram::from_proto(h).map_err(|e| e.to_string())?,
        None => return Err("no latency histogram".into()),
    };
    Ok(Latency {
        count: h.count,
        sum_ms: h.sum_ms,
        min_ms: h.min_ms,
        max_ms: h.max_ms,
        bounds: h.bounds_ms,
        counts: h.counts,
    })
}

fn histogram(
    (count, sum_ms, min_ms, max_ms): (u64, f64, Option<f64>, Option<f64>),
    bounds_ms: Vec<f64>,
    counts: Vec<u64>,
) -> LatencyHistogram {
    LatencyHistogram {
        bounds_ms,
        counts,
        count,
        sum_ms,
        min_ms,
        max_ms,
    }
}

/// Stores a page's fresh Beyla rows: one insert per table; spans are
/// trace-sampled as the embedded store samples them.
pub(crate) async fn store(
    ch: &ClickHouse,
    (agent, session): (&str, &str),
    page: &BeylaRows,
    sampling: TraceSampling,
) -> Result<BeylaOutcome, ClickHouseError> {
    let mut outcome = BeylaOutcome::default();
    let mut reject = |what: &str, seq: u64, why: String| {
        outcome.rejected += 1;
        outcome
            .reject_reason
            .get_or_insert_with(|| format!("{what} row seq_id {seq}: {why}"));
    };
    let text = |m: &std::collections::HashMap<String, String>| coral_model::string_map_to_json(m);
    let mut http = Vec::with_capacity(page.http.len());
    for m in &page.http {
        match latency(m.latency.as_ref()) {
            Ok(l) => http.push(HttpRow {
                agent_id: agent.to_owned(),
                session_id: session.to_owned(),
                seq_id: m.seq_id,
                minute: m.minute * 1_000_000,
                service_name: m.service_name.clone(),
                kind: m.kind.clone(),
                http_method: m.http_method.clone(),
                http_route: m.http_route.clone(),
                http_status_code: m.http_status_code as i32,
                count: l.count,
                sum_ms: l.sum_ms,
                min_ms: l.min_ms,
                max_ms: l.max_ms,
                latency_bounds: l.bounds,
                latency_counts: l.counts,
                attributes: text(&m.attributes),
            }),
            Err(e) => reject("HTTP", m.seq_id, e),
        }
    }
    let mut grpc = Vec::with_capacity(page.grpc.len());
    for m in &page.grpc {
        match latency(m.latency.as_ref()) {
            Ok(l) => grpc.push(GrpcRow {
                agent_id: agent.to_owned(),
                session_id: session.to_owned(),
                seq_id: m.seq_id,
                minute: m.minute * 1_000_000,
                service_name: m.service_name.clone(),
                kind: m.kind.clone(),
                rpc_system: m.rpc_system.clone(),
                grpc_method: m.grpc_method.clone(),
                grpc_status_code: m.grpc_status_code as i32,
                count: l.count,
                sum_ms: l.sum_ms,
                min_ms: l.min_ms,
                max_ms: l.max_ms,
                latency_bounds: l.bounds,
                latency_counts: l.counts,
                attributes: text(&m.attributes),
            }),
            Err(e) => reject("RPC", m.seq_id, e),
        }
    }
    let mut sql = Vec::with_capacity(page.sql.len());
    for m in &page.sql {
        match latency(m.latency.as_ref()) {
            Ok(l) => sql.push(SqlRow {
                agent_id: agent.to_owned(),
                session_id: session.to_owned(),
                seq_id: m.seq_id,
                minute: m.minute * 1_000_000,
                service_name: m.service_name.clone(),
                db_system: m.db_system.clone(),
                sql_operation: m.sql_operation.clone(),
                table_name: m.table_name.clone(),
                count: l.count,
                error_count: m.error_count,
                sum_ms: l.sum_ms,
                min_ms: l.min_ms,
                max_ms: l.max_ms,
                latency_bounds: l.bounds,
                latency_counts: l.counts,
                attributes: text(&m.attributes),
            }),
            Err(e) => reject("SQL", m.seq_id, e),
        }
    }
    let known = known_traces(ch, &page.spans, sampling).await?;
    let (kept, sampled_out) = crate::store::beyla::sample(&page.spans, sampling, |t| {
        Ok::<_, std::convert::Infallible>(known.contains(t))
    })
    .unwrap_or_else(|never| match never {});
    let spans: Vec<SpanRow> = kept
        .iter()
        .map(|s| SpanRow::new(agent, session, s))
        .collect();
    insert(ch, &catalogue::BEYLA_HTTP, &http).await?;
    insert(ch, &catalogue::BEYLA_GRPC, &grpc).await?;
    insert(ch, &catalogue::BEYLA_SQL, &sql).await?;
    insert(ch, &catalogue::BEYLA_TRACES, &spans).await?;
    outcome.sampled_out = sampled_out;
    outcome.stored = http.len() + grpc.len() + sql.len() + spans.len();
    Ok(outcome)
}

/// The trace ids of `spans` that already have spans stored (only asked when
/// sampling drops traces; ids that are not trace ids are never looked up).
async fn known_traces(
    ch: &ClickHouse,
    spans: &[BeylaTraceSpan],
    sampling: TraceSampling,
) -> Result<HashSet<String>, ClickHouseError> {
    if sampling.rate >= 1.0 {
        return Ok(HashSet::new());
    }
    let ids: HashSet<&str> = spans
        .iter()
        .map(|s| s.trace_id.as_str())
        .filter(|t| is_trace_id(t))
        .collect();
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    // Hex ids only, so they are safe as literals; `IN` on the sort key's
    // leading column reads only the granules that may hold them.
    let list = ids
        .iter()
        .map(|t| format!("'{t}'"))
        .collect::<Vec<_>>()
        .join(", ");
    let known: Vec<String> = ch
        .client()
        .query(&format!(
            "SELECT DISTINCT trace_id FROM {} WHERE trace_id IN ({list})",
            ch.target().table(&catalogue::BEYLA_TRACES)
        ))
        .fetch_all()
        .await
        .map_err(ch.failed("Beyla trace lookup"))?;
    Ok(known.into_iter().collect())
}

/// The filters of a Beyla read: services (all when empty) and `[from, to)`
/// in Unix ms (open when 0).
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub services: Vec<String>,
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Filter {
    fn of(req: &QueryBeylaRequest) -> Filter {
        Filter {
            services: req.service_names.clone(),
            from_ms: req.start_time_unix_ms,
            to_ms: req.end_time_unix_ms,
        }
    }
}

/// `SELECT ?fields FROM <table> FINAL` with `f` on `time` and the service,
/// in `order`; [`bind`] binds `f`.
fn select_sql(ch: &ClickHouse, table: &Table, f: &Filter, time: &str, order: &str) -> String {
    format!(
        "SELECT ?fields FROM {} FINAL WHERE {} ORDER BY {order}",
        ch.target().table(table),
        where_sql(f, time)
    )
}

/// The conditions of `f` on `time` and the service.
fn where_sql(f: &Filter, time: &str) -> String {
    let services = if f.services.is_empty() {
        ""
    } else {
        "has(?, service_name) AND "
    };
    format!("{services}{time} >= ? AND {time} < ?")
}

fn bind(mut query: clickhouse::query::Query, f: &Filter) -> clickhouse::query::Query {
    let from = if f.from_ms > 0 { f.from_ms * 1_000 } else { 0 };
    let to = if f.to_ms > 0 {
        f.to_ms * 1_000
    } else {
        i64::MAX
    };
    if !f.services.is_empty() {
        query = query.bind(&f.services);
    }
    query.bind(from).bind(to)
}

/// Merges consecutive rows with equal keys (`key`), adding histograms.
fn merge_runs<T>(
    rows: Vec<T>,
    key: impl Fn(&T) -> String,
    mut add: impl FnMut(&mut T, T),
) -> Vec<T> {
    let mut out: Vec<(String, T)> = Vec::new();
    for row in rows {
        let k = key(&row);
        match out.last_mut() {
            Some((last, merged)) if *last == k => add(merged, row),
            _ => out.push((k, row)),
        }
    }
    out.into_iter().map(|(_, r)| r).collect()
}

/// Adds `b`'s histogram to `a`'s (extremes, counts and sum).
fn add_latency(a: &mut Option<LatencyHistogram>, b: Option<LatencyHistogram>) {
    let (Some(ha), Some(hb)) = (a.as_ref(), b.as_ref()) else {
        return;
    };
    if let (Ok(mut merged), Ok(other)) = (Histogram::from_proto(ha), Histogram::from_proto(hb)) {
        merged.merge(&other);
        *a = Some(merged.to_proto());
    }
}

/// HTTP histograms, one per (minute, agent, series), as the embedded store
/// holds them.
pub(crate) async fn http(
    ch: &ClickHouse,
    f: &Filter,
) -> Result<Vec<BeylaHttpMetric>, ClickHouseError> {
    let order = "minute, agent_id, service_name, kind, http_method, http_route, \
                 http_status_code, session_id, seq_id";
    let sql = select_sql(ch, &catalogue::BEYLA_HTTP, f, "minute", order);
    let rows: Vec<HttpRow> = bind(ch.client().query(&sql), f)
        .fetch_all()
        .await
        .map_err(ch.failed("Beyla HTTP read"))?;
    let metrics = rows
        .into_iter()
        .map(|r| BeylaHttpMetric {
            minute: r.minute / 1_000_000,
            agent_id: r.agent_id,
            service_name: r.service_name,
            kind: r.kind,
            http_method: r.http_method,
            http_route: r.http_route,
            http_status_code: r.http_status_code as u32,
            latency: Some(histogram(
                (r.count, r.sum_ms, r.min_ms, r.max_ms),
                r.latency_bounds,
                r.latency_counts,
            )),
            attributes: coral_model::string_map_from_json(&r.attributes),
            seq_id: 0,
        })
        .collect();
    Ok(merge_runs(
        metrics,
        |m| {
            format!(
                "{}\0{}\0{}\0{}\0{}\0{}\0{}",
                m.minute,
                m.agent_id,
                m.service_name,
                m.kind,
                m.http_method,
                m.http_route,
                m.http_status_code
            )
        },
        |a, b| add_latency(&mut a.latency, b.latency),
    ))
}

/// RPC histograms, one per (minute, agent, series).
pub(crate) async fn grpc(
    ch: &ClickHouse,
    f: &Filter,
) -> Result<Vec<BeylaGrpcMetric>, ClickHouseError> {
    let order = "minute, agent_id, service_name, kind, rpc_system, grpc_method, \
                 grpc_status_code, session_id, seq_id";
    let sql = select_sql(ch, &catalogue::BEYLA_GRPC, f, "minute", order);
    let rows: Vec<GrpcRow> = bind(ch.client().query(&sql), f)
        .fetch_all()
        .await
        .map_err(ch.failed("Beyla RPC read"))?;
    let metrics = rows
        .into_iter()
        .map(|r| BeylaGrpcMetric {
            minute: r.minute / 1_000_000,
            agent_id: r.agent_id,
            service_name: r.service_name,
            kind: r.kind,
            rpc_system: r.rpc_system,
            grpc_method: r.grpc_method,
            grpc_status_code: r.grpc_status_code as u32,
            latency: Some(histogram(
                (r.count, r.sum_ms, r.min_ms, r.max_ms),
                r.latency_bounds,
                r.latency_counts,
            )),
            attributes: coral_model::string_map_from_json(&r.attributes),
            seq_id: 0,
        })
        .collect();
    Ok(merge_runs(
        metrics,
        |m| {
            format!(
                "{}\0{}\0{}\0{}\0{}\0{}\0{}",
                m.minute,
                m.agent_id,
                m.service_name,
                m.kind,
                m.rpc_system,
                m.grpc_method,
                m.grpc_status_code
            )
        },
        |a, b| add_latency(&mut a.latency, b.latency),
    ))
}

/// Database-client histograms, one per (minute, agent, series).
pub(crate) async fn sql(
    ch: &ClickHouse,
    f: &Filter,
) -> Result<Vec<BeylaSqlMetric>, ClickHouseError> {
    let order = "minute, agent_id, service_name, db_system, sql_operation, table_name, \
                 session_id, seq_id";
    let sql = select_sql(ch, &catalogue::BEYLA_SQL, f, "minute", order);
    let rows: Vec<SqlRow> = bind(ch.client().query(&sql), f)
        .fetch_all()
        .await
        .map_err(ch.failed("Beyla SQL read"))?;
    let metrics = rows
        .into_iter()
        .map(|r| BeylaSqlMetric {
            minute: r.minute / 1_000_000,
            agent_id: r.agent_id,
            service_name: r.service_name,
            db_system: r.db_system,
            sql_operation: r.sql_operation,
            table_name: r.table_name,
            error_count: r.error_count,
            latency: Some(histogram(
                (r.count, r.sum_ms, r.min_ms, r.max_ms),
                r.latency_bounds,
                r.latency_counts,
            )),
            attributes: coral_model::string_map_from_json(&r.attributes),
            seq_id: 0,
        })
        .collect();
    Ok(merge_runs(
        metrics,
        |m| {
            format!(
                "{}\0{}\0{}\0{}\0{}\0{}",
                m.minute, m.agent_id, m.service_name, m.db_system, m.sql_operation, m.table_name
            )
        },
        |a, b| {
            a.error_count += b.error_count;
            add_latency(&mut a.latency, b.latency)
        },
    ))
}

/// `QueryBeyla` over ClickHouse: the same answer as the embedded store's
/// [`crate::store::query_beyla::query`].
pub async fn query(
    ch: &ClickHouse,
    req: &QueryBeylaRequest,
) -> Result<QueryBeylaResponse, ClickHouseError> {
    let mut response = QueryBeylaResponse::default();
    let wants = |t: &str| req.metric_types.is_empty() || req.metric_types.iter().any(|m| m == t);
    let filter = Filter::of(req);
    if req.trace_id.is_empty() {
        if wants("http") {
            response.http_metrics = http(ch, &filter).await?;
        }
        if wants("grpc") {
            response.grpc_metrics = grpc(ch, &filter).await?;
        }
        if wants("sql") {
            response.sql_metrics = sql(ch, &filter).await?;
        }
    }
    if req.include_traces || !req.trace_id.is_empty() {
        response.trace_spans = traces(ch, req, &filter).await?;
    }
    Ok(response)
}

/// The spans of one trace, or of the slowest matching traces.
async fn traces(
    ch: &ClickHouse,
    req: &QueryBeylaRequest,
    f: &Filter,
) -> Result<Vec<BeylaTraceSpan>, ClickHouseError> {
    let table = ch.target().table(&catalogue::BEYLA_TRACES);
    let failed = ch.failed("Beyla trace read");
    if !req.trace_id.is_empty() {
        let rows: Vec<SpanRow> = ch
            .client()
            .query(&format!(
                "SELECT ?fields FROM {table} FINAL WHERE trace_id = ? \
                 ORDER BY start_time_ns, agent_id, span_id"
            ))
            .bind(req.trace_id.to_ascii_lowercase())
            .fetch_all()
            .await
            .map_err(failed)?;
        return Ok(rows.into_iter().map(SpanRow::into_proto).collect());
    }
    let max = match req.max_traces {
        0 => DEFAULT_MAX_TRACES,
        n => n.min(MAX_TRACES),
    };
    let picked = format!(
        "SELECT trace_id FROM {table} FINAL WHERE {} GROUP BY trace_id \
         HAVING max(duration_us) >= ? ORDER BY max(duration_us) DESC, trace_id LIMIT {max}",
        where_sql(f, "start_time")
    );
    let rows: Vec<SpanRow> = bind(
        ch.client().query(&format!(
            "SELECT ?fields FROM {table} FINAL WHERE trace_id IN ({picked})"
        )),
        f,
    )
    .bind(req.min_duration_us)
    .fetch_all()
    .await
    .map_err(failed)?;
    // The embedded store's order: slowest trace first, then by start.
    let mut longest: std::collections::HashMap<String, i64> = Default::default();
    for r in &rows {
        let l = longest.entry(r.trace_id.clone()).or_default();
        *l = (*l).max(r.duration_us);
    }
    let mut spans: Vec<BeylaTraceSpan> = rows.into_iter().map(SpanRow::into_proto).collect();
    spans.sort_by(|a, b| {
        longest[&b.trace_id]
            .cmp(&longest[&a.trace_id])
            .then_with(|| a.trace_id.cmp(&b.trace_id))
            .then_with(|| a.start_time_unix_nano.cmp(&b.start_time_unix_nano))
            .then_with(|| a.agent_id.cmp(&b.agent_id))
            .then_with(|| a.span_id.cmp(&b.span_id))
    });
    Ok(spans)
}
