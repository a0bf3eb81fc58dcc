//! Kept traces for the diagnosis engine from `trace_spans` and
//! `beyla_traces`, picked, ordered and cut as the embedded store's trace
//! query does: first the matching traces (ranked and counted in one query),
//! then their earliest [`MAX_SPANS_PER_TRACE`] spans.

use std::collections::HashMap;

use clickhouse::query::Query;
use clickhouse::{Client, Row};
use coral_diagnose::data::{Trace, TraceBatch, TraceFilter, TraceSelect};
use serde::Deserialize;

use super::{hostnames, micros};
use crate::catalogue;
use crate::catalogue::clickhouse::Target;
use crate::store::clickhouse::{ClickHouse, ClickHouseError};
use crate::store::diagnose::{MAX_SPANS_PER_TRACE, MAX_TRACES, StoredSpan};

/// Trace ids bound in one span query, in bytes: well under the server's
/// `max_query_size` (256 KiB).
const IDS_PER_QUERY_BYTES: usize = 64 * 1024;

/// A value bound to a `?`.
enum Arg {
    Text(String),
    Int(i64),
}

/// `query` with `args` bound in order.
fn bind(mut query: Query, args: &[Arg]) -> Query {
    for arg in args {
        query = match arg {
            Arg::Text(s) => query.bind(s.as_str()),
            Arg::Int(i) => query.bind(*i),
        };
    }
    query
}

/// Ids of the traces with a span matching `f` (with repeats): its service,
/// start in the window and name; for a sample, only spans kept whole by the
/// trace-id sample (Beyla's all are). Appends its parameters to `args`.
fn hit_sql(t: &Target, f: &TraceFilter, args: &mut Vec<Arg>) -> String {
    let sources = [
        (
            t.table(&catalogue::TRACE_SPANS),
            f.select == TraceSelect::Sampled,
        ),
        (t.table(&catalogue::BEYLA_TRACES), false),
    ];
    let branches: Vec<String> = sources
        .into_iter()
        .map(|(table, sampled_only)| {
            let mut sql = format!(
                "SELECT trace_id FROM {table} FINAL \
                 WHERE service_name = ? AND start_time >= ? AND start_time < ?"
            );
            args.push(Arg::Text(f.service.clone()));
            args.push(Arg::Int(micros(f.window.from)));
            args.push(Arg::Int(micros(f.window.to)));
            if let Some(op) = &f.operation {
                sql.push_str(" AND span_name = ?");
                args.push(Arg::Text(op.clone()));
            }
            if sampled_only {
                sql.push_str(" AND keep_reason IN ('sampled', 'beyla')");
            }
            sql
        })
        .collect();
    branches.join(" UNION ALL ")
}

/// The picked traces: (`trace_id`, `longest`), one row per trace. A sample
/// is every hit trace; errors and any are ranked by their slowest span (of
/// all their spans), errors keeping only traces with a failed span.
fn picked_sql(t: &Target, f: &TraceFilter, args: &mut Vec<Arg>) -> String {
    if f.select == TraceSelect::Sampled {
        let hit = hit_sql(t, f, args);
        return format!("SELECT trace_id, toInt64(0) AS longest FROM ({hit}) GROUP BY trace_id");
    }
    let branches: Vec<String> = [
        t.table(&catalogue::TRACE_SPANS),
        t.table(&catalogue::BEYLA_TRACES),
    ]
    .into_iter()
    .map(|table| {
        let hit = hit_sql(t, f, args);
        format!(
            "SELECT trace_id, duration_us, is_error FROM {table} FINAL WHERE trace_id IN ({hit})"
        )
    })
    .collect();
    let failed = if f.select == TraceSelect::Errors {
        " HAVING max(is_error) = 1"
    } else {
        ""
    };
    format!(
        "SELECT trace_id, max(duration_us) AS longest FROM ({}) GROUP BY trace_id{failed}",
        branches.join(" UNION ALL ")
    )
}

/// A picked trace, with how many matched before the limit.
#[derive(Row, Deserialize)]
struct Picked {
    trace_id: String,
    matched: u64,
}

/// The first `limit` picked traces in the engine's order (a sample by trace
/// id, else slowest first), each with the count of all picked.
pub(super) fn pick_query(client: &Client, t: &Target, f: &TraceFilter, limit: usize) -> Query {
    let mut args = Vec::new();
    let counted = picked_sql(t, f, &mut args);
    let listed = picked_sql(t, f, &mut args);
    let order = match f.select {
        TraceSelect::Sampled => "trace_id",
        TraceSelect::Errors | TraceSelect::Any => "longest DESC, trace_id",
    };
    let sql = format!(
        "SELECT trace_id, (SELECT count() FROM ({counted})) AS matched \
         FROM ({listed}) ORDER BY {order} LIMIT {limit}"
    );
    bind(client.query(&sql), &args)
}

/// A kept span's columns, from either table.
#[derive(Row, Deserialize)]
struct SpanColumns {
    agent_id: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
    service_name: String,
    span_name: String,
    span_kind: String,
    start_time_ns: i64,
    duration_us: i64,
    is_error: u8,
    status_message: String,
    http_status: i32,
    grpc_status: Option<i32>,
    db_system: String,
    http_route: String,
    keep_reason: String,
    attributes: String,
    resource: String,
}

impl SpanColumns {
    /// The trace id and the span as both engines convert it, on the host
    /// `hosts` names for its agent.
    fn into_stored(self, hosts: &HashMap<String, String>) -> (String, StoredSpan) {
        let span = StoredSpan {
            agent_host: hosts.get(&self.agent_id).cloned().unwrap_or_default(),
            agent_id: self.agent_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            service_name: self.service_name,
            span_name: self.span_name,
            span_kind: self.span_kind,
            start_time_ns: self.start_time_ns,
            duration_us: self.duration_us,
            is_error: self.is_error != 0,
            status_message: self.status_message,
            http_status: self.http_status,
            grpc_status: self.grpc_status,
            db_system: self.db_system,
            http_route: self.http_route,
            keep_reason: self.keep_reason,
            attributes: self.attributes,
            resource: self.resource,
        };
        (self.trace_id, span)
    }
}

/// The columns of [`SpanColumns`] from `trace_spans`.
const OTLP_COLUMNS: &str = "agent_id, trace_id, span_id, parent_span_id, service_name, \
     span_name, span_kind, start_time_ns, duration_us, is_error, status_message, \
     toInt32(ifNull(http_status_code, 0)) AS http_status, grpc_status_code, db_system, \
     http_route, keep_reason, attributes, resource";

/// The columns of [`SpanColumns`] from `beyla_traces` (its one status
/// column as the HTTP status; no resource).
const BEYLA_COLUMNS: &str = "agent_id, trace_id, span_id, parent_span_id, service_name, \
     span_name, upper(span_kind) AS kind, start_time_ns, duration_us, is_error, \
     '' AS message, status_code, CAST(NULL AS Nullable(Int32)) AS grpc, '' AS db, \
     '' AS route, 'beyla' AS reason, attributes, '' AS res";

/// The spans of `ids` (not empty) from each table, each trace's earliest
/// [`MAX_SPANS_PER_TRACE`] of the table.
pub(super) fn span_queries(client: &Client, t: &Target, ids: &[&str]) -> [Query; 2] {
    [
        (t.table(&catalogue::TRACE_SPANS), OTLP_COLUMNS),
        (t.table(&catalogue::BEYLA_TRACES), BEYLA_COLUMNS),
    ]
    .map(|(table, columns)| {
        let sql = format!(
            "SELECT {columns} FROM {table} FINAL WHERE trace_id IN (SELECT arrayJoin(?)) \
             ORDER BY trace_id, start_time_ns, span_id LIMIT {MAX_SPANS_PER_TRACE} BY trace_id"
        );
        client.query(&sql).bind(ids)
    })
}

/// `ids` in runs of at most [`IDS_PER_QUERY_BYTES`] (at least one id each).
fn runs<'a>(ids: &[&'a str]) -> Vec<Vec<&'a str>> {
    let mut out: Vec<Vec<&str>> = Vec::new();
    let mut size = 0;
    for &id in ids {
        // Quoted and separated.
        let cost = id.len() + 3;
        match out.last_mut() {
            Some(run) if size + cost <= IDS_PER_QUERY_BYTES => {
                run.push(id);
                size += cost;
            }
            _ => {
                out.push(vec![id]);
                size = cost;
            }
        }
    }
    out
}

/// Kept traces as the filter asks (see the [module docs](self)).
pub(super) async fn traces(
    ch: &ClickHouse,
    f: &TraceFilter,
) -> Result<TraceBatch, ClickHouseError> {
    let limit = f.limit.min(MAX_TRACES);
    if limit == 0 {
        return Ok(TraceBatch::default());
    }
    let pick = async {
        pick_query(ch.client(), ch.target(), f, limit)
            .fetch_all::<Picked>()
            .await
            .map_err(ClickHouseError::query("trace pick"))
    };
    let (picked, hosts) = tokio::try_join!(pick, hostnames(ch))?;
    let ids: Vec<&str> = picked.iter().map(|p| p.trace_id.as_str()).collect();
    let mut by_trace: HashMap<String, Vec<StoredSpan>> = HashMap::new();
    for run in runs(&ids) {
        for query in span_queries(ch.client(), ch.target(), &run) {
            let rows = query
                .fetch_all::<SpanColumns>()
                .await
                .map_err(ClickHouseError::query("trace span read"))?;
            for row in rows {
                let (trace_id, span) = row.into_stored(&hosts);
                by_trace.entry(trace_id).or_default().push(span);
            }
        }
    }
    let mut batch = TraceBatch {
        matched: picked.first().map_or(0, |p| p.matched as usize),
        ..TraceBatch::default()
    };
    for p in picked {
        let Some(mut spans) = by_trace.remove(&p.trace_id) else {
            continue;
        };
        // Both tables' earliest spans, the earliest of all kept.
        spans.sort_by(|a, b| (a.start_time_ns, &a.span_id).cmp(&(b.start_time_ns, &b.span_id)));
        spans.truncate(MAX_SPANS_PER_TRACE);
        batch.traces.push(Trace {
            trace_id: p.trace_id,
            spans: spans.into_iter().map(StoredSpan::into_span).collect(),
        });
    }
    batch.truncated = batch.matched > batch.traces.len();
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_run_in_bounded_queries() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        let ids = vec![id; 5_000];
        let runs = runs(&ids);
        assert!(runs.len() > 1);
        assert_eq!(runs.iter().map(Vec::len).sum::<usize>(), 5_000);
        assert!(
            runs.iter()
                .all(|r| r.len() * (id.len() + 3) <= IDS_PER_QUERY_BYTES)
        );
        assert!(super::runs(&[]).is_empty());
    }
}
