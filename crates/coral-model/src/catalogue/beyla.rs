//! Beyla's row families: one-minute HTTP, gRPC and SQL histograms and
//! spans, numbered by the agent's Beyla sequence.

use super::columns::{agent_only, col, colony_only, merge, null};
use super::{AgentTable, Column, Kind, Side, Table, Ty};

/// A Beyla histogram family: the agent's table `$agent` and the colony's
/// `$colony`, each series' columns, then the counts every family has plus
/// the family's own (`$counts`).
macro_rules! beyla_histogram {
    ($colony:literal, $agent:literal, [$($series:expr),* $(,)?], [$($counts:expr),* $(,)?]) => {{
        const COLUMNS: &[Column] = &[
            agent_only(col("seq_id", Ty::U64)),
            col("minute", Ty::Timestamp),
            colony_only(col("agent_id", Ty::Text)),
            col("service_name", Ty::Text),
            $($series,)*
            col("count", Ty::U64),
            $($counts,)*
            col("sum_ms", Ty::F64),
            null("min_ms", Ty::F64),
            null("max_ms", Ty::F64),
            col("latency", Ty::Histogram),
            col("attributes", Ty::Text),
            colony_only(merge("parts", Ty::I32)),
            colony_only(merge("updated_at", Ty::Timestamp)),
        ];
        Table {
            name: $colony,
            columns: side!(Side::Colony, COLUMNS),
            agent: Some(AgentTable {
                name: $agent,
                columns: side!(Side::Agent, COLUMNS),
            }),
            time: Some("minute"),
            lookup: &["service_name", "minute"],
            kind: Kind::AgentRows,
            part_key: &[],
            version: None,
        }
    }};
}

/// Beyla's HTTP histograms, one row per minute and series.
pub const BEYLA_HTTP: Table = beyla_histogram!(
    "beyla_http_metrics",
    "beyla_http_metrics_local",
    [
        col("kind", Ty::Text),
        col("http_method", Ty::Text),
        col("http_route", Ty::Text),
        col("http_status_code", Ty::I32),
    ],
    []
);

/// Beyla's gRPC histograms.
pub const BEYLA_GRPC: Table = beyla_histogram!(
    "beyla_grpc_metrics",
    "beyla_grpc_metrics_local",
    [
        col("kind", Ty::Text),
        col("rpc_system", Ty::Text),
        col("grpc_method", Ty::Text),
        col("grpc_status_code", Ty::I32),
    ],
    []
);

/// Beyla's SQL client histograms.
pub const BEYLA_SQL: Table = beyla_histogram!(
    "beyla_sql_metrics",
    "beyla_sql_metrics_local",
    [
        col("db_system", Ty::Text),
        col("sql_operation", Ty::Text),
        col("table_name", Ty::Text),
    ],
    [col("error_count", Ty::U64)]
);

/// A Beyla span's columns.
const SPAN: &[Column] = &[
    colony_only(col("agent_id", Ty::Text)),
    col("seq_id", Ty::U64),
    col("trace_id", Ty::Text),
    col("span_id", Ty::Text),
    col("parent_span_id", Ty::Text),
    col("service_name", Ty::Text),
    col("span_name", Ty::Text),
    col("span_kind", Ty::Text),
    col("start_time", Ty::Timestamp),
    col("start_time_ns", Ty::I64),
    col("duration_us", Ty::I64),
    col("status_code", Ty::I32),
    col("is_error", Ty::Bool),
    col("attributes", Ty::Text),
];

/// A Beyla span.
pub const BEYLA_TRACES: Table = Table {
    name: "beyla_traces",
    columns: side!(Side::Colony, SPAN),
    agent: Some(AgentTable {
        name: "beyla_traces_local",
        columns: side!(Side::Agent, SPAN),
    }),
    time: Some("start_time"),
    lookup: &["trace_id"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};
