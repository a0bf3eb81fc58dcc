//! Reads of the agent's Beyla tables for `QueryBeylaMetrics`: by cursor (the
//! colony's pull, cut on a seq_id boundary across the four tables) or by time
//! range and trace (ad-hoc queries, traces returned whole). Blocking.

use coral_proto::agent::{BeylaMetricType, QueryBeylaMetricsRequest, QueryBeylaMetricsResponse};
use coral_proto::common::BeylaTraceSpan;
use duckdb::types::Value;
use duckdb::{Connection, params_from_iter};

use super::beyla::{HistogramFamily, ts};
use super::read::{MAX_PAGE_BYTES, Page, budget_end, framed_bytes, framed_len, page_limit};
use super::schema::{BEYLA_SPANS, local};
use super::{Database, StoreError};
use coral_model::catalogue::{BEYLA_GRPC, BEYLA_HTTP, BEYLA_SQL};

/// Which rows a read selects.
struct Selection {
    /// SQL conditions shared by the metric tables (after `WHERE seq_id > ?`).
    metric_where: String,
    metric_args: Vec<Value>,
    span_where: String,
    span_args: Vec<Value>,
    http: bool,
    grpc: bool,
    sql: bool,
    traces: bool,
}

fn selection(req: &QueryBeylaMetricsRequest) -> Selection {
    let mut metric_where = String::new();
    let mut metric_args = Vec::new();
    let mut span_where = String::new();
    let mut span_args = Vec::new();
    if !req.service_names.is_empty() {
        let marks = vec!["?"; req.service_names.len()].join(", ");
        let clause = format!(" AND service_name IN ({marks})");
        metric_where.push_str(&clause);
        span_where.push_str(&clause);
        for s in &req.service_names {
            metric_args.push(Value::Text(s.clone()));
            span_args.push(Value::Text(s.clone()));
        }
    }
    if req.start_time_unix_ms > 0 {
        metric_where.push_str(" AND minute >= ?");
        metric_args.push(ts(req.start_time_unix_ms * 1_000));
        span_where.push_str(" AND start_time >= ?");
        span_args.push(ts(req.start_time_unix_ms * 1_000));
    }
    if req.end_time_unix_ms > 0 {
        metric_where.push_str(" AND minute < ?");
        metric_args.push(ts(req.end_time_unix_ms * 1_000));
        span_where.push_str(" AND start_time < ?");
        span_args.push(ts(req.end_time_unix_ms * 1_000));
    }
    let types: Vec<BeylaMetricType> = req
        .metric_types
        .iter()
        .filter_map(|t| BeylaMetricType::try_from(*t).ok())
        .collect();
    let wants = |t| types.is_empty() || types.contains(&t);
    let by_trace = !req.trace_id.is_empty();
    if by_trace {
        span_where.push_str(" AND trace_id = ?");
        span_args.push(Value::Text(req.trace_id.to_ascii_lowercase()));
    }
    Selection {
        metric_where,
        metric_args,
        span_where,
        span_args,
        http: !by_trace && wants(BeylaMetricType::Http),
        grpc: !by_trace && wants(BeylaMetricType::Grpc),
        sql: !by_trace && wants(BeylaMetricType::Sql),
        traces: req.include_traces || by_trace,
    }
}

/// True when the request asks by time range or trace rather than by cursor.
fn time_mode(req: &QueryBeylaMetricsRequest) -> bool {
    req.start_time_unix_ms > 0 || req.end_time_unix_ms > 0 || !req.trace_id.is_empty()
}

/// Answers `QueryBeylaMetrics`. Blocking: call from a blocking context.
///
/// Cursor mode (no time range, no trace id): rows with `seq_id` after
/// `start_seq_id`, oldest first, cut at `max_records` on a seq_id boundary
/// across the four tables, exactly like `QueryTelemetry`. Time mode: rows
/// whose minute (metrics) or start (spans) is in the range; spans are
/// returned as whole traces, the `max_traces` most recent.
pub fn query(
    db: &Database,
    req: &QueryBeylaMetricsRequest,
) -> Result<QueryBeylaMetricsResponse, StoreError> {
    let conn = db.reader()?;
    let latest = db.latest_beyla_seq();
    let limit = page_limit(req.max_records);
    let sel = selection(req);
    let mut response = QueryBeylaMetricsResponse {
        session_id: db.session_id().to_owned(),
        latest_seq_id: latest,
        ..Default::default()
    };
    if time_mode(req) {
        let range = (0u64, u64::MAX);
        if sel.http {
            response.http_metrics = read_metrics(&conn, range, &sel, Some(limit))?;
        }
        if sel.grpc {
            response.grpc_metrics = read_metrics(&conn, range, &sel, Some(limit))?;
        }
        if sel.sql {
            response.sql_metrics = read_metrics(&conn, range, &sel, Some(limit))?;
        }
        if sel.traces {
            let max_traces = if req.max_traces == 0 {
                100
            } else {
                req.max_traces
            };
            response.trace_spans = read_traces_by_time(&conn, &sel, max_traces, limit)?;
        }
        response.max_seq_id = latest;
        return Ok(response);
    }
    // Cursor mode: pick the page boundary over the union of seq_ids.
    let start = req.start_seq_id;
    let mut parts = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    for (on, table, where_, extra) in [
        (
            sel.http,
            local(&BEYLA_HTTP).name,
            &sel.metric_where,
            &sel.metric_args,
        ),
        (
            sel.grpc,
            local(&BEYLA_GRPC).name,
            &sel.metric_where,
            &sel.metric_args,
        ),
        (
            sel.sql,
            local(&BEYLA_SQL).name,
            &sel.metric_where,
            &sel.metric_args,
        ),
        (sel.traces, BEYLA_SPANS, &sel.span_where, &sel.span_args),
    ] {
        if on {
            parts.push(format!(
                "SELECT seq_id FROM {table} WHERE seq_id > ?{where_}"
            ));
            args.push(Value::UBigInt(start));
            args.extend(extra.iter().cloned());
        }
    }
    if parts.is_empty() {
        response.max_seq_id = start.max(latest);
        return Ok(response);
    }
    let sql = format!(
        "SELECT seq_id FROM ({}) ORDER BY seq_id LIMIT {}",
        parts.join(" UNION ALL "),
        limit + 1
    );
    let ids: Vec<u64> = conn
        .prepare(&sql)?
        .query_map(params_from_iter(args.iter()), |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let page = Page::new(ids, start, latest, limit);
    response.has_more = page.has_more;
    response.max_seq_id = page.max_seq;
    if page.is_empty() {
        return Ok(response);
    }
    // Rows carry attribute maps: a window at a time and no further than the
    // byte budget, as `QueryTelemetry`.
    let mut bytes = 0;
    for range in page.windows() {
        if sel.http {
            let rows = read_metrics(&conn, range, &sel, None)?;
            bytes += framed_bytes(&rows);
            response.http_metrics.extend(rows);
        }
        if sel.grpc {
            let rows = read_metrics(&conn, range, &sel, None)?;
            bytes += framed_bytes(&rows);
            response.grpc_metrics.extend(rows);
        }
        if sel.sql {
            let rows = read_metrics(&conn, range, &sel, None)?;
            bytes += framed_bytes(&rows);
            response.sql_metrics.extend(rows);
        }
        if sel.traces {
            let rows = read_spans(&conn, range, &sel.span_where, &sel.span_args, None)?;
            bytes += framed_bytes(&rows);
            response.trace_spans.extend(rows);
        }
        if bytes > MAX_PAGE_BYTES {
            end_within_budget(&mut response, range.1);
            break;
        }
    }
    Ok(response)
}

/// Ends a cursor-mode `page`, whose rows up to `read_to` are all read and
/// over [`MAX_PAGE_BYTES`], at [`budget_end`].
fn end_within_budget(page: &mut QueryBeylaMetricsResponse, read_to: u64) {
    let rows: Vec<(u64, usize)> = page
        .http_metrics
        .iter()
        .map(|r| (r.seq_id, framed_len(r)))
        .chain(page.grpc_metrics.iter().map(|r| (r.seq_id, framed_len(r))))
        .chain(page.sql_metrics.iter().map(|r| (r.seq_id, framed_len(r))))
        .chain(page.trace_spans.iter().map(|r| (r.seq_id, framed_len(r))))
        .collect();
    let end = budget_end(rows, read_to);
    page.http_metrics.retain(|r| r.seq_id <= end);
    page.grpc_metrics.retain(|r| r.seq_id <= end);
    page.sql_metrics.retain(|r| r.seq_id <= end);
    page.trace_spans.retain(|r| r.seq_id <= end);
    page.max_seq_id = end;
    page.has_more = true;
}

fn range_args(range: (u64, u64), extra: &[Value]) -> Vec<Value> {
    let mut args = vec![Value::UBigInt(range.0), Value::UBigInt(range.1)];
    args.extend(extra.iter().cloned());
    args
}

fn limit_clause(limit: Option<usize>) -> String {
    limit.map(|n| format!(" LIMIT {n}")).unwrap_or_default()
}

/// Rows of one Beyla histogram family in the seq_id `range`, filtered by
/// `sel`.
fn read_metrics<F: HistogramFamily>(
    conn: &Connection,
    range: (u64, u64),
    sel: &Selection,
    limit: Option<usize>,
) -> Result<Vec<F>, StoreError> {
    let sql = format!(
        "SELECT seq_id, epoch(minute)::BIGINT, {} FROM {} \
         WHERE seq_id > ? AND seq_id <= ?{} ORDER BY seq_id{}",
        F::COLUMNS,
        super::schema::local(F::FAMILY).name,
        sel.metric_where,
        limit_clause(limit)
    );
    let rows = conn
        .prepare(&sql)?
        .query_map(params_from_iter(range_args(range, &sel.metric_args)), |r| {
            F::read(r)
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn read_spans(
    conn: &Connection,
    range: (u64, u64),
    where_: &str,
    extra: &[Value],
    limit: Option<usize>,
) -> Result<Vec<BeylaTraceSpan>, StoreError> {
    let sql = format!(
        "SELECT {SPAN_COLUMNS} FROM {BEYLA_SPANS} \
         WHERE seq_id > ? AND seq_id <= ?{where_} ORDER BY seq_id{}",
        limit_clause(limit)
    );
    let rows = conn
        .prepare(&sql)?
        .query_map(params_from_iter(range_args(range, extra)), span_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

// `SPAN_COLUMNS` and `span_row`, from the Beyla span's declaration.
coral_model::beyla_span_columns!(read_numbered_row, SPAN_COLUMNS, span_row);

/// Time mode: the `max_traces` most recently started traces with a span in
/// the selection, each returned whole (all its spans, whatever the filters).
fn read_traces_by_time(
    conn: &Connection,
    sel: &Selection,
    max_traces: u32,
    limit: usize,
) -> Result<Vec<BeylaTraceSpan>, StoreError> {
    let sql = format!(
        "WITH picked AS (SELECT trace_id, max(start_time) AS last FROM {BEYLA_SPANS} \
         WHERE true{} GROUP BY trace_id ORDER BY last DESC LIMIT {max_traces}) \
         SELECT {SPAN_COLUMNS} FROM {BEYLA_SPANS} t JOIN picked p USING (trace_id) \
         ORDER BY p.last DESC, t.trace_id, t.start_time_ns, t.seq_id LIMIT {limit}",
        sel.span_where
    );
    let rows = conn
        .prepare(&sql)?
        .query_map(params_from_iter(sel.span_args.iter()), span_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}
