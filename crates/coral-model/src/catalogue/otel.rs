//! The row families from OpenTelemetry SDKs and the host: 1-minute buckets,
//! their operations, kept spans and host samples (ARCHITECTURE.md, "Agent
//! storage" and "Colony storage", describes what each holds).

use super::columns::{agent_only, col, colony_only, derived, merge, null};
use super::{AgentTable, Column, Kind, Side, Table, Ty};

/// A bucket's columns. The agent counts spans and errors before the
/// percentiles, the colony after them; both orders are on disk, so those
/// two columns are declared at each side's place.
const BUCKET: &[Column] = &[
    agent_only(col("seq_id", Ty::U64)),
    col("bucket_time", Ty::Timestamp),
    colony_only(col("agent_id", Ty::Text)),
    col("service_name", Ty::Text),
    col("span_kind", Ty::Text),
    agent_only(col("total_spans", Ty::I64)),
    agent_only(col("error_count", Ty::I64)),
    derived("p50_ms", Ty::F64),
    derived("p95_ms", Ty::F64),
    derived("p99_ms", Ty::F64),
    colony_only(col("error_count", Ty::I64)),
    colony_only(col("total_spans", Ty::I64)),
    colony_only(derived("sample_traces", Ty::TextList)),
    col("min_ms", Ty::F64),
    col("max_ms", Ty::F64),
    col("sum_ms", Ty::F64),
    col("samples", Ty::Text),
    col("sketch", Ty::Sketch),
    agent_only(col("flushed_at", Ty::Timestamp)),
    colony_only(merge("parts", Ty::I32)),
    colony_only(merge("updated_at", Ty::Timestamp)),
];

/// One row per 1-minute bucket of (agent, service, span kind): RED with the
/// duration sketch and sample traces.
pub const OTEL_SPANS: Table = Table {
    name: "otel_spans",
    columns: side!(Side::Colony, BUCKET),
    agent: Some(AgentTable {
        name: "otel_buckets_local",
        columns: side!(Side::Agent, BUCKET),
    }),
    time: Some("bucket_time"),
    lookup: &["service_name", "bucket_time"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};

/// An operation's columns: the agent's refer to their bucket by its seq_id,
/// the colony's carry the bucket's key.
const OPERATION: &[Column] = &[
    agent_only(col("bucket_seq_id", Ty::U64)),
    colony_only(col("bucket_time", Ty::Timestamp)),
    colony_only(col("agent_id", Ty::Text)),
    colony_only(col("service_name", Ty::Text)),
    colony_only(col("span_kind", Ty::Text)),
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
];

/// A bucket's RED per operation (span name, or HTTP method and route).
pub const OTEL_OPERATIONS: Table = Table {
    name: "otel_operations",
    columns: side!(Side::Colony, OPERATION),
    agent: Some(AgentTable {
        name: "otel_operations_local",
        columns: side!(Side::Agent, OPERATION),
    }),
    time: Some("bucket_time"),
    lookup: &["service_name", "bucket_time"],
    kind: Kind::AgentRows,
    part_key: &["operation"],
    version: None,
};

/// A kept span's columns: the agent stores each resource once and refers
/// to it by id, the colony stores it with the span.
const KEPT_SPAN: &[Column] = &[
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
    agent_only(col("resource_id", Ty::U64)),
    colony_only(col("resource", Ty::Text)),
];

/// A kept span from an OpenTelemetry SDK, with its resource.
pub const TRACE_SPANS: Table = Table {
    name: "trace_spans",
    columns: side!(Side::Colony, KEPT_SPAN),
    agent: Some(AgentTable {
        name: "otel_spans_local",
        columns: side!(Side::Agent, KEPT_SPAN),
    }),
    time: Some("start_time"),
    lookup: &["trace_id"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};

/// A host sample's columns: the agent numbers them, the colony says whose
/// host they describe.
const HOST_SAMPLE: &[Column] = &[
    colony_only(col("agent_id", Ty::Text)),
    agent_only(col("seq_id", Ty::U64)),
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
];

/// A host sample (CPU, memory, network, load) of an agent's minute.
pub const HOST_METRICS: Table = Table {
    name: "host_metrics",
    columns: side!(Side::Colony, HOST_SAMPLE),
    agent: Some(AgentTable {
        name: "host_metrics_local",
        columns: side!(Side::Agent, HOST_SAMPLE),
    }),
    time: Some("bucket_time"),
    lookup: &["agent_id", "bucket_time"],
    kind: Kind::AgentRows,
    part_key: &[],
    version: None,
};
