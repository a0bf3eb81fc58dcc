//! The declarations: every table the colony stores (ARCHITECTURE.md,
//! "Colony storage", describes what each holds).

use super::{Column, Kind, Table, Ty, col, derived, merge, null};

/// One row per 1-minute bucket of (agent, service, span kind): RED with the
/// duration sketch and sample traces.
pub const OTEL_SPANS: Table = Table {
    name: "otel_spans",
    columns: &[
        col("bucket_time", Ty::Timestamp),
        col("agent_id", Ty::Text),
        col("service_name", Ty::Text),
        col("span_kind", Ty::Text),
        derived("p50_ms", Ty::F64),
        derived("p95_ms", Ty::F64),
        derived("p99_ms", Ty::F64),
        col("error_count", Ty::I64),
        col("total_spans", Ty::I64),
        derived("sample_traces", Ty::TextList),
        col("min_ms", Ty::F64),
        col("max_ms", Ty::F64),
        col("sum_ms", Ty::F64),
        col("samples", Ty::Text),
        col("sketch", Ty::Sketch),
        merge("parts", Ty::I32),
        merge("updated_at", Ty::Timestamp),
    ],
    time: Some("bucket_time"),
    lookup: &["service_name", "bucket_time"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};

/// A bucket's RED per operation (span name, or HTTP method and route).
pub const OTEL_OPERATIONS: Table = Table {
    name: "otel_operations",
    columns: &[
        col("bucket_time", Ty::Timestamp),
        col("agent_id", Ty::Text),
        col("service_name", Ty::Text),
        col("span_kind", Ty::Text),
        col("operation", Ty::Text),
        col("total_spans", Ty::I64),
        col("error_count", Ty::I64),
        derived("p50_ms", Ty::F64),
        derived("p95_ms", Ty::F64),
        derived("p99_ms", Ty::F64),
        col("min_ms", Ty::F64),
        col("max_ms", Ty::F64),
        col("sum_ms", Ty::F64),
        col("samples", Ty::Text),
        col("sketch", Ty::Sketch),
    ],
    time: Some("bucket_time"),
    lookup: &["service_name", "bucket_time"],
    kind: Kind::AgentRows,
    part_key: &["operation"],
    version: None,
};

/// A kept span from an OpenTelemetry SDK, with its resource.
pub const TRACE_SPANS: Table = Table {
    name: "trace_spans",
    columns: &[
        col("agent_id", Ty::Text),
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
        col("is_error", Ty::Bool),
        col("status_code", Ty::Text),
        col("status_message", Ty::Text),
        null("http_status_code", Ty::I32),
        col("http_method", Ty::Text),
        col("http_route", Ty::Text),
        col("rpc_system", Ty::Text),
        col("rpc_service", Ty::Text),
        col("rpc_method", Ty::Text),
        null("grpc_status_code", Ty::I32),
        col("db_system", Ty::Text),
        col("db_operation", Ty::Text),
        col("db_collection", Ty::Text),
        col("keep_reason", Ty::Text),
        col("attributes", Ty::Text),
        col("resource", Ty::Text),
    ],
    time: Some("start_time"),
    lookup: &["trace_id"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};

/// A host sample (CPU, memory, network, load) of an agent's minute.
pub const HOST_METRICS: Table = Table {
    name: "host_metrics",
    columns: &[
        col("agent_id", Ty::Text),
        col("bucket_time", Ty::Timestamp),
        col("hostname", Ty::Text),
        col("cpu_percent", Ty::F64),
        col("memory_used_bytes", Ty::U64),
        col("memory_total_bytes", Ty::U64),
        col("net_rx_bytes_per_sec", Ty::F64),
        col("net_tx_bytes_per_sec", Ty::F64),
        col("load1", Ty::F64),
        col("load5", Ty::F64),
        col("load15", Ty::F64),
        col("interval_seconds", Ty::F64),
    ],
    time: Some("bucket_time"),
    lookup: &["agent_id", "bucket_time"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};

/// The columns every Beyla histogram family ends with.
macro_rules! beyla_histogram {
    ($name:literal, [$($series:expr),* $(,)?], [$($counts:expr),* $(,)?]) => {
        Table {
            name: $name,
            columns: &[
                col("minute", Ty::Timestamp),
                col("agent_id", Ty::Text),
                col("service_name", Ty::Text),
                $($series,)*
                col("count", Ty::U64),
                $($counts,)*
                col("sum_ms", Ty::F64),
                null("min_ms", Ty::F64),
                null("max_ms", Ty::F64),
                col("latency", Ty::Histogram),
                col("attributes", Ty::Text),
                merge("parts", Ty::I32),
                merge("updated_at", Ty::Timestamp),
            ],
            time: Some("minute"),
            lookup: &["service_name", "minute"],
            kind: Kind::AgentRows,
            part_key: &[],
            version: None,
        }
    };
}

/// Beyla's HTTP histograms, one row per minute and series.
pub const BEYLA_HTTP: Table = beyla_histogram!(
    "beyla_http_metrics",
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
    [
        col("db_system", Ty::Text),
        col("sql_operation", Ty::Text),
        col("table_name", Ty::Text),
    ],
    [col("error_count", Ty::U64)]
);

/// A Beyla span.
pub const BEYLA_TRACES: Table = Table {
    name: "beyla_traces",
    columns: &[
        col("agent_id", Ty::Text),
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
    ],
    time: Some("start_time"),
    lookup: &["trace_id"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};

/// A registered or configured agent.
pub const AGENTS: Table = Table {
    name: "agents",
    columns: &[
        col("agent_id", Ty::Text),
        col("endpoint", Ty::Text),
        col("version", Ty::Text),
        col("mode", Ty::Text),
        col("capabilities", Ty::Text),
        col("hostname", Ty::Text),
        col("source", Ty::Text),
        col("registered_at", Ty::Timestamp),
        null("last_seen", Ty::Timestamp),
    ],
    time: None,
    lookup: &[],
    kind: Kind::Records,
    part_key: &["agent_id"],
    version: Some("last_seen"),
};

/// Per (agent, stream): the agent store session and how far the colony has
/// stored its rows.
pub const CURSORS: Table = Table {
    name: "cursors",
    columns: &[
        col("agent_id", Ty::Text),
        col("stream", Ty::Text),
        col("session_id", Ty::Text),
        col("seq_id", Ty::U64),
        col("rows_received", Ty::U64),
        col("updated_at", Ty::Timestamp),
        Column {
            nullable: true,
            default: Some("0"),
            ..col("latest_seq_id", Ty::U64)
        },
    ],
    time: None,
    lookup: &[],
    kind: Kind::Records,
    part_key: &["agent_id", "stream"],
    version: Some("updated_at"),
};

/// Ranges of an agent's seq_ids the colony never received, and why.
pub const GAPS: Table = Table {
    name: "gaps",
    columns: &[
        col("agent_id", Ty::Text),
        col("stream", Ty::Text),
        col("session_id", Ty::Text),
        col("from_seq_id", Ty::U64),
        col("to_seq_id", Ty::U64),
        col("detected_at", Ty::Timestamp),
        col("reason", Ty::Text),
    ],
    time: Some("detected_at"),
    lookup: &[],
    kind: Kind::Records,
    part_key: &["agent_id", "stream", "session_id", "from_seq_id", "reason"],
    version: Some("detected_at"),
};

/// A colony's lease: colonies that share one ClickHouse renew it to say
/// they are alive (see [`crate::fleet`]).
pub const COLONIES: Table = Table {
    name: "colonies",
    columns: &[
        col("colony_id", Ty::Text),
        col("instance", Ty::Text),
        col("endpoint", Ty::Text),
        col("started_at", Ty::Timestamp),
        col("renewed_at", Ty::Timestamp),
    ],
    time: None,
    lookup: &[],
    kind: Kind::Records,
    part_key: &["colony_id", "instance"],
    version: Some("renewed_at"),
};

/// Tables only the ClickHouse store has (an embedded colony is alone).
pub const CLICKHOUSE_ONLY: &[Table] = &[COLONIES];

/// Every table, in the order they are created.
pub const TABLES: &[Table] = &[
    AGENTS,
    CURSORS,
    GAPS,
    OTEL_SPANS,
    OTEL_OPERATIONS,
    TRACE_SPANS,
    HOST_METRICS,
    BEYLA_HTTP,
    BEYLA_GRPC,
    BEYLA_SQL,
    BEYLA_TRACES,
];
