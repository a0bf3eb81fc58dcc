//! Traces from ClickHouse: `GetTrace` and `ListTraces` over `trace_spans`
//! and `beyla_traces` (each span once, `FINAL`), with the embedded store's
//! answers: the same two-pass assembly ([`Assembly`]) for one trace, and for
//! the list the matching traces ranked in the query, then summarised from
//! their spans' timings.

use std::collections::{BTreeMap, HashMap};

use clickhouse::Row;
use coral_proto::colony::{GetTraceResponse, ListTracesRequest, ListTracesResponse, TraceSummary};
use serde::Deserialize;

use super::{ClickHouse, ClickHouseError};
use crate::catalogue;
use crate::store::traces::{
    Assembly, DEFAULT_LIST_LIMIT, Detail, MAX_LIST_LIMIT, MAX_SPANS_READ, Timing, span_bound,
};

/// Columns of the first pass, per source.
const TIMING: &str = "agent_id, seq_id, span_id, parent_span_id, start_time_ns, duration_us";

/// Columns of the second pass from `trace_spans`.
const OTLP_DETAIL: &str = "agent_id, seq_id, service_name, span_name, \
     lower(span_kind) AS kind, is_error, lower(status_code) AS status, status_message, \
     toInt32(ifNull(http_status_code, ifNull(grpc_status_code, 0))) AS code, \
     keep_reason, attributes, resource";

/// Columns of the second pass from `beyla_traces`.
const BEYLA_DETAIL: &str = "agent_id, seq_id, service_name, span_name, \
     lower(span_kind) AS kind, is_error, if(is_error != 0, 'error', 'unset') AS status, \
     '' AS message, status_code, 'beyla' AS reason, attributes, '{}' AS resource";

#[derive(Row, Deserialize)]
struct TimingRow {
    agent_id: String,
    seq_id: u64,
    span_id: String,
    parent_span_id: String,
    start_time_ns: i64,
    duration_us: i64,
}

#[derive(Row, Deserialize)]
struct DetailRow {
    agent_id: String,
    seq_id: u64,
    service_name: String,
    span_name: String,
    span_kind: String,
    is_error: u8,
    status: String,
    status_message: String,
    status_code: i32,
    keep_reason: String,
    attributes: String,
    resource: String,
}

/// The two span tables with their source names.
fn sources(ch: &ClickHouse) -> [(&'static str, String); 2] {
    [
        ("otlp", ch.target().table(&catalogue::TRACE_SPANS)),
        ("beyla", ch.target().table(&catalogue::BEYLA_TRACES)),
    ]
}

/// `GetTrace` over ClickHouse: the same answer as the embedded store's
/// [`crate::store::traces::get_trace`].
pub async fn get_trace(
    ch: &ClickHouse,
    trace_id: &str,
    max_spans: u32,
) -> Result<GetTraceResponse, ClickHouseError> {
    let trace_id = trace_id.to_ascii_lowercase();
    let failed = ch.failed("trace read");
    let mut span_count = 0u64;
    let mut spans: Vec<Timing> = Vec::new();
    for (source, table) in sources(ch) {
        span_count += ch
            .client()
            .query(&format!(
                "SELECT count() FROM {table} FINAL WHERE trace_id = ?"
            ))
            .bind(&trace_id)
            .fetch_one::<u64>()
            .await
            .map_err(&failed)?;
        let rows: Vec<TimingRow> = ch
            .client()
            .query(&format!(
                "SELECT {TIMING} FROM {table} FINAL WHERE trace_id = ? \
                 ORDER BY start_time_ns, agent_id, seq_id LIMIT {MAX_SPANS_READ}"
            ))
            .bind(&trace_id)
            .fetch_all()
            .await
            .map_err(&failed)?;
        spans.extend(rows.into_iter().map(|r| Timing {
            source,
            agent_id: r.agent_id,
            seq_id: r.seq_id,
            span_id: r.span_id,
            parent_span_id: r.parent_span_id,
            start_ns: r.start_time_ns,
            duration_us: r.duration_us.max(0),
        }));
    }
    if span_count == 0 {
        return Ok(Assembly::not_found(&trace_id));
    }
    // The embedded store's order: by start, then source, agent and seq_id.
    spans.sort_by(|a, b| {
        (a.start_ns, a.source, &a.agent_id, a.seq_id).cmp(&(
            b.start_ns,
            b.source,
            &b.agent_id,
            b.seq_id,
        ))
    });
    spans.truncate(MAX_SPANS_READ);
    let hosts = super::agents(ch)
        .await?
        .into_iter()
        .map(|a| (a.agent_id, a.hostname))
        .collect();
    let mut trace = Assembly::new(&trace_id, span_count, spans, span_bound(max_spans), hosts);
    for ((source, table), columns) in sources(ch).into_iter().zip([OTLP_DETAIL, BEYLA_DETAIL]) {
        let mut cursor = ch
            .client()
            .query(&format!(
                "SELECT {columns} FROM {table} FINAL WHERE trace_id = ?"
            ))
            .bind(&trace_id)
            .fetch::<DetailRow>()
            .map_err(&failed)?;
        while let Some(r) = cursor.next().await.map_err(&failed)? {
            trace.add(Detail {
                source,
                agent_id: r.agent_id,
                seq_id: r.seq_id,
                service: r.service_name,
                operation: r.span_name,
                kind: r.span_kind,
                error: r.is_error != 0,
                status: r.status,
                status_message: r.status_message,
                status_code: r.status_code,
                keep_reason: r.keep_reason,
                attributes: r.attributes,
                resource: r.resource,
            });
        }
    }
    Ok(trace.finish())
}

/// The conditions a span of `source` must meet to make its trace match
/// `req` in `[from, to)` (Unix µs), with their values; `None` when no span
/// of that source can match.
fn matching(source: &str, req: &ListTracesRequest) -> Option<(String, Vec<String>)> {
    if !req.source.is_empty() && req.source != source {
        return None;
    }
    let mut sql = String::from("start_time >= ? AND start_time < ?");
    let mut args = Vec::new();
    for (column, value) in [
        ("service_name", &req.service),
        ("span_name", &req.operation),
    ] {
        if !value.is_empty() {
            sql.push_str(&format!(" AND {column} = ?"));
            args.push(value.clone());
        }
    }
    if !req.keep_reason.is_empty() {
        if source == "beyla" {
            if req.keep_reason != "beyla" {
                return None;
            }
        } else {
            sql.push_str(" AND keep_reason = ?");
            args.push(req.keep_reason.clone());
        }
    }
    Some((sql, args))
}

/// The query that ranks the matching traces: parameters as bound by
/// [`list_traces`]. Public so the schema test can run it on current
/// ClickHouse.
pub fn list_traces_sql(
    ch_tables: [&str; 2],
    conditions: &[Option<String>; 2],
    errors_only: bool,
    limit: u32,
) -> String {
    let hits: Vec<String> = ch_tables
        .iter()
        .zip(conditions)
        .filter_map(|(table, cond)| {
            cond.as_ref()
                .map(|c| format!("trace_id IN (SELECT trace_id FROM {table} FINAL WHERE {c})"))
        })
        .collect();
    let hit = if hits.is_empty() {
        "0".to_owned()
    } else {
        format!("({})", hits.join(" OR "))
    };
    let spans = ch_tables
        .iter()
        .map(|table| {
            format!(
                "SELECT trace_id, start_time_ns AS start_ns, \
                 start_time_ns + duration_us * 1000 AS end_ns, is_error \
                 FROM {table} FINAL WHERE {hit}"
            )
        })
        .collect::<Vec<_>>()
        .join(" UNION ALL ");
    let errors = if errors_only {
        " AND error_count > 0"
    } else {
        ""
    };
    format!(
        "SELECT trace_id, min(start_ns) AS first_ns, \
         toInt64(round((max(end_ns) - min(start_ns)) / 1000)) AS duration_us, \
         count() AS span_count, countIf(is_error != 0) AS error_count \
         FROM ({spans}) GROUP BY trace_id \
         HAVING (max(end_ns) - min(start_ns)) / 1000 >= ?{errors} \
         ORDER BY duration_us DESC, trace_id LIMIT {limit}"
    )
}

#[derive(Row, Deserialize)]
struct Ranked {
    trace_id: String,
    first_ns: i64,
    duration_us: i64,
    span_count: u64,
    error_count: u64,
}

#[derive(Row, Deserialize)]
struct Light {
    trace_id: String,
    service_name: String,
    span_name: String,
    parent_span_id: String,
    start_time_ns: i64,
    duration_us: i64,
}

/// `ListTraces` over ClickHouse for `[from_ms, to_ms)` (Unix ms): the same
/// answer as the embedded store's [`crate::store::traces::list_traces`].
pub async fn list_traces(
    ch: &ClickHouse,
    req: &ListTracesRequest,
    from_ms: i64,
    to_ms: i64,
) -> Result<ListTracesResponse, ClickHouseError> {
    let failed = ch.failed("trace list");
    let limit = match req.limit {
        0 => DEFAULT_LIST_LIMIT,
        n => n.min(MAX_LIST_LIMIT),
    };
    let tables = sources(ch);
    let matched = [matching("otlp", req), matching("beyla", req)];
    let conditions = [
        matched[0].as_ref().map(|(c, _)| c.clone()),
        matched[1].as_ref().map(|(c, _)| c.clone()),
    ];
    let sql = list_traces_sql(
        [tables[0].1.as_str(), tables[1].1.as_str()],
        &conditions,
        req.errors_only,
        limit + 1,
    );
    // The hit conditions appear once per span table (in its UNION branch).
    let mut query = ch.client().query(&sql);
    for _ in 0..2 {
        for (_, args) in matched.iter().flatten() {
            query = query.bind(from_ms * 1_000).bind(to_ms * 1_000);
            for a in args {
                query = query.bind(a);
            }
        }
    }
    let ranked: Vec<Ranked> = query
        .bind(req.min_duration_us.max(0))
        .fetch_all()
        .await
        .map_err(&failed)?;
    let truncated = ranked.len() > limit as usize;
    let ranked = &ranked[..ranked.len().min(limit as usize)];
    let mut spans: HashMap<String, Vec<(&'static str, Light)>> = HashMap::new();
    if !ranked.is_empty() {
        let ids = vec!["?"; ranked.len()].join(", ");
        for (source, table) in &tables {
            let mut query = ch.client().query(&format!(
                "SELECT trace_id, service_name, span_name, parent_span_id, start_time_ns, \
                 duration_us FROM {table} FINAL WHERE trace_id IN ({ids})"
            ));
            for r in ranked {
                query = query.bind(&r.trace_id);
            }
            let rows: Vec<Light> = query.fetch_all().await.map_err(&failed)?;
            for r in rows {
                spans
                    .entry(r.trace_id.clone())
                    .or_default()
                    .push((source, r));
            }
        }
    }
    let traces = ranked
        .iter()
        .map(|r| summary(r, spans.remove(&r.trace_id).unwrap_or_default()))
        .collect();
    Ok(ListTracesResponse {
        traces,
        truncated,
        start_time_unix_ms: from_ms,
        end_time_unix_ms: to_ms,
    })
}

/// A trace's summary: its root (the longest span without a parent, else the
/// earliest span), services by first appearance, sources.
fn summary(r: &Ranked, spans: Vec<(&'static str, Light)>) -> TraceSummary {
    let root = spans.iter().min_by_key(|(_, s)| {
        if s.parent_span_id.is_empty() {
            (0, -s.duration_us)
        } else {
            (1, s.start_time_ns)
        }
    });
    let mut first: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, s) in &spans {
        let t = first.entry(s.service_name.as_str()).or_insert(i64::MAX);
        *t = (*t).min(s.start_time_ns);
    }
    let mut services: Vec<(i64, &str)> = first.into_iter().map(|(s, t)| (t, s)).collect();
    services.sort();
    let mut sources: Vec<String> = spans.iter().map(|(s, _)| (*s).to_owned()).collect();
    sources.sort();
    sources.dedup();
    TraceSummary {
        trace_id: r.trace_id.clone(),
        root_service: root
            .map(|(_, s)| s.service_name.clone())
            .unwrap_or_default(),
        root_operation: root.map(|(_, s)| s.span_name.clone()).unwrap_or_default(),
        start_unix_nano: r.first_ns,
        duration_us: r.duration_us,
        span_count: u32::try_from(r.span_count).unwrap_or(u32::MAX),
        error_count: u32::try_from(r.error_count).unwrap_or(u32::MAX),
        services: services.into_iter().map(|(_, s)| s.to_owned()).collect(),
        sources,
    }
}
