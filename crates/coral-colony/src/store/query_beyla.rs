//! Reads of the colony's Beyla tables for `QueryBeyla`. Blocking.
//!
//! Metrics come back one row per (minute, agent, series) as stored (parts
//! already merged); callers merge further (per route across minutes, agents
//! and status codes) with `coral_model::Histogram::merge`. Traces come back
//! whole: every span of each selected trace, from every agent.

use super::beyla_families::HistogramFamily;
use super::{StoreError, ts_micros};
use coral_proto::colony::{QueryBeylaRequest, QueryBeylaResponse};
use coral_proto::common::BeylaTraceSpan;
use duckdb::types::Value;
use duckdb::{Connection, Row, params_from_iter};

/// Default number of traces when `max_traces` is 0.
pub const DEFAULT_MAX_TRACES: u32 = 20;
/// Upper bound on traces per request.
pub const MAX_TRACES: u32 = 1_000;

/// `WHERE` conditions on service and time, with their arguments.
fn filters(req: &QueryBeylaRequest, time_col: &str) -> (String, Vec<Value>) {
    let mut sql = String::from("true");
    let mut args = Vec::new();
    if !req.service_names.is_empty() {
        sql.push_str(&format!(
            " AND service_name IN ({})",
            vec!["?"; req.service_names.len()].join(", ")
        ));
        args.extend(req.service_names.iter().map(|s| Value::Text(s.clone())));
    }
    if req.start_time_unix_ms > 0 {
        sql.push_str(&format!(" AND {time_col} >= ?"));
        args.push(ts_micros(req.start_time_unix_ms * 1_000));
    }
    if req.end_time_unix_ms > 0 {
        sql.push_str(&format!(" AND {time_col} < ?"));
        args.push(ts_micros(req.end_time_unix_ms * 1_000));
    }
    (sql, args)
}

/// Answers `QueryBeyla`.
pub fn query(conn: &Connection, req: &QueryBeylaRequest) -> Result<QueryBeylaResponse, StoreError> {
    let mut response = QueryBeylaResponse::default();
    let wants = |t: &str| req.metric_types.is_empty() || req.metric_types.iter().any(|m| m == t);
    if req.trace_id.is_empty() {
        let (where_, args) = filters(req, "minute");
        if wants("http") {
            response.http_metrics = histograms(conn, &where_, &args)?;
        }
        if wants("grpc") {
            response.grpc_metrics = histograms(conn, &where_, &args)?;
        }
        if wants("sql") {
            response.sql_metrics = histograms(conn, &where_, &args)?;
        }
    }
    if req.include_traces || !req.trace_id.is_empty() {
        response.trace_spans = traces(conn, req)?;
    }
    Ok(response)
}

/// Family `F`'s rows matching `where_`, one per (minute, agent, series).
fn histograms<F: HistogramFamily>(
    conn: &Connection,
    where_: &str,
    args: &[Value],
) -> Result<Vec<F>, StoreError> {
    let rows = conn
        .prepare(&format!(
            "SELECT {} FROM {} WHERE {where_} \
             ORDER BY minute, agent_id, service_name, {}",
            F::COLUMNS,
            F::FAMILY.name,
            F::SERIES
        ))?
        .query_map(params_from_iter(args.iter()), |r| F::read(r))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// A Beyla span's columns and its row read back, from its declaration
/// ([`coral_model::beyla_span_columns`]): agent, `seq_id`, then the
/// declared columns in order.
macro_rules! read_beyla_span {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        const SPAN_COLUMNS: &str = concat!(
            "agent_id, seq_id",
            $(", ", coral_model::duckdb_select!($k, stringify!($c)),)+
            $(", ", coral_model::duckdb_select!($ck, stringify!($cc)),)*
        );

        fn span_row(row: &Row<'_>) -> Result<BeylaTraceSpan, duckdb::Error> {
            let mut s = BeylaTraceSpan {
                agent_id: row.get(0)?,
                seq_id: row.get(1)?,
                ..Default::default()
            };
            let mut column = 1;
            $(coral_model::duckdb_set!($k, s.$f, row, { column += 1; column });)+
            $(coral_model::duckdb_set!($ck, s.$cf, row, { column += 1; column });)*
            Ok(s)
        }
    };
}

coral_model::beyla_span_columns!(read_beyla_span);

/// The spans of one trace, or of the slowest matching traces.
fn traces(conn: &Connection, req: &QueryBeylaRequest) -> Result<Vec<BeylaTraceSpan>, StoreError> {
    if !req.trace_id.is_empty() {
        let spans = conn
            .prepare(&format!(
                "SELECT {SPAN_COLUMNS} FROM beyla_traces t WHERE trace_id = ? \
                 ORDER BY start_time_ns, agent_id, span_id"
            ))?
            .query_map([req.trace_id.to_ascii_lowercase()], span_row)?
            .collect::<Result<_, _>>()?;
        return Ok(spans);
    }
    let max = match req.max_traces {
        0 => DEFAULT_MAX_TRACES,
        n => n.min(MAX_TRACES),
    };
    let (where_, mut args) = filters(req, "start_time");
    args.push(Value::BigInt(req.min_duration_us));
    let spans = conn
        .prepare(&format!(
            "WITH picked AS (SELECT trace_id, max(duration_us) AS longest FROM beyla_traces \
             WHERE {where_} GROUP BY trace_id HAVING max(duration_us) >= ? \
             ORDER BY longest DESC, trace_id LIMIT {max}) \
             SELECT {SPAN_COLUMNS} FROM beyla_traces t JOIN picked p USING (trace_id) \
             ORDER BY p.longest DESC, t.trace_id, t.start_time_ns, t.agent_id, t.span_id"
        ))?
        .query_map(params_from_iter(args.iter()), span_row)?
        .collect::<Result<_, _>>()?;
    Ok(spans)
}
