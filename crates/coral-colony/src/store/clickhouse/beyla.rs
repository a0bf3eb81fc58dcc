//! Beyla's rows in ClickHouse: the HTTP, gRPC and SQL histograms and the
//! spans, stored as the agent sent them (one row per agent, session and
//! seq_id, so a page stored twice collapses like any other), and read back
//! in the embedded store's shape: one histogram per (minute, agent, series),
//! the parts of a series merged with [`Histogram::merge`] in seq_id order, as
//! the embedded store merges them on arrival. The three histogram families
//! are stored and read by the same code, over their [`Family`].

mod families;

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

pub(crate) use families::{Family, GrpcRow, HttpRow, Part, SqlRow};

// `beyla_traces`: a Beyla span, from its declaration.
coral_model::beyla_span_columns!(agent_row);
coral_model::beyla_span_columns!(span_into_proto);

/// A histogram as the rows store it: validated.
fn latency(h: Option<&LatencyHistogram>) -> Result<Histogram, String> {
    let h = h.ok_or("no latency histogram")?;
    Histogram::from_proto(h).map_err(|e| e.to_string())
}

/// The rows of a page's metrics of family `F`; a metric without a valid
/// histogram is rejected (`reject(what, seq_id, why)`).
fn rows<F: Family>(
    (agent, session): (&str, &str),
    metrics: &[F::Metric],
    reject: &mut impl FnMut(&str, u64, String),
) -> Vec<F> {
    let mut rows = Vec::with_capacity(metrics.len());
    for m in metrics {
        let (sent, own) = F::sent(m);
        match latency(sent.latency) {
            Ok(latency) => rows.push(F::row(
                Part {
                    agent_id: agent.to_owned(),
                    session_id: session.to_owned(),
                    seq_id: sent.seq_id,
                    minute: sent.minute * 1_000_000,
                    service_name: sent.service_name.to_owned(),
                    latency,
                    attributes: coral_model::string_map_to_json(sent.attributes),
                },
                own,
            )),
            Err(e) => reject(F::WHAT, sent.seq_id, e),
        }
    }
    rows
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
    let http: Vec<HttpRow> = rows((agent, session), &page.http, &mut reject);
    let grpc: Vec<GrpcRow> = rows((agent, session), &page.grpc, &mut reject);
    let sql: Vec<SqlRow> = rows((agent, session), &page.sql, &mut reject);
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

/// Family `F`'s histograms, one per (minute, agent, series), as the
/// embedded store holds them.
pub(crate) async fn histograms<F: Family>(
    ch: &ClickHouse,
    f: &Filter,
) -> Result<Vec<F::Metric>, ClickHouseError> {
    let order = format!(
        "minute, agent_id, service_name, {}session_id, seq_id",
        F::SERIES
    );
    let sql = select_sql(ch, F::TABLE, f, "minute", &order);
    let rows: Vec<F> = bind(ch.client().query(&sql), f)
        .fetch_all()
        .await
        .map_err(ch.failed(F::READ))?;
    // Consecutive parts of one series (the order puts them together, in
    // seq_id order) merge into one histogram.
    let mut merged: Vec<F::Metric> = Vec::new();
    for m in rows.into_iter().map(F::into_metric) {
        match merged.last_mut() {
            Some(last) if F::series(last) == F::series(&m) => F::add(last, m),
            _ => merged.push(m),
        }
    }
    Ok(merged)
}

/// HTTP histograms, one per (minute, agent, series).
pub(crate) async fn http(
    ch: &ClickHouse,
    f: &Filter,
) -> Result<Vec<BeylaHttpMetric>, ClickHouseError> {
    histograms::<HttpRow>(ch, f).await
}

/// RPC histograms, one per (minute, agent, series).
pub(crate) async fn grpc(
    ch: &ClickHouse,
    f: &Filter,
) -> Result<Vec<BeylaGrpcMetric>, ClickHouseError> {
    histograms::<GrpcRow>(ch, f).await
}

/// Database-client histograms, one per (minute, agent, series).
pub(crate) async fn sql(
    ch: &ClickHouse,
    f: &Filter,
) -> Result<Vec<BeylaSqlMetric>, ClickHouseError> {
    histograms::<SqlRow>(ch, f).await
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
