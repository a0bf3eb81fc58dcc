//! The row families from OpenTelemetry SDKs and the host: 1-minute buckets,
//! their operations, kept spans and host samples (ARCHITECTURE.md, "Agent
//! storage" and "Colony storage", describes what each holds).

use super::columns::{agent_only, col, colony_only, derived, merge, null};
use super::{AgentTable, Column, Kind, Side, Table, Ty};

/// The 1-minute bucket family (`TelemetryBucket`) and its operation
/// breakdown (`OperationSummary`), declared once each:
/// `bucket_columns!(then)` and `operation_columns!(then)` call `then!`
/// with
///
/// ```text
/// table: OTEL_SPANS, message: TelemetryBucket, row: BucketRow,
/// key: [column: Kind = field, ..],      // what identifies a row of an agent
/// columns: [column: Kind = field, ..],  // its counts and extremes
/// derived: [column: Kind = field, ..],  // percentiles, stored where rows
///                                       // are merged in place (DuckDB)
/// ```
///
/// and each ends with its duration sketch (`sketch` = field `sketch`, a
/// [`Ty::Sketch`]). Besides these, the agent's tables have their seq_id
/// (the operations their bucket's) and when a bucket was flushed; the
/// colony's have the agent, an operation its bucket's key, and a bucket its
/// sample trace ids and merge book-keeping. Unlike the other families, each
/// side's tables order these columns their own way on disk (below); rows
/// are appended by column name, so the order declared here is the
/// ClickHouse table's. A test holds these declarations and the tables
/// below to each other. The agent's append and page read, the colony's
/// merge, its ClickHouse rows and the migration are generated from them.
#[macro_export]
macro_rules! bucket_columns {
    ($then:ident) => {
        $then! {
            table: OTEL_SPANS,
            message: TelemetryBucket,
            row: BucketRow,
            key: [
                bucket_time: Secs = bucket_time,
                service_name: Text = service_name,
                span_kind: Text = span_kind,
            ],
            columns: [
                error_count: I64 = error_count,
                total_spans: I64 = total_spans,
                min_ms: F64 = min_ms,
                max_ms: F64 = max_ms,
                sum_ms: F64 = sum_ms,
                samples: Samples = samples,
            ],
            derived: [p50_ms: F64 = p50_ms, p95_ms: F64 = p95_ms, p99_ms: F64 = p99_ms],
        }
    };
}

/// The operation breakdown's declaration ([`crate::bucket_columns`]
/// describes the form).
#[macro_export]
macro_rules! operation_columns {
    ($then:ident) => {
        $then! {
            table: OTEL_OPERATIONS,
            message: OperationSummary,
            row: OperationRow,
            key: [operation: Text = operation],
            columns: [
                total_spans: I64 = total_spans,
                error_count: I64 = error_count,
                min_ms: F64 = min_ms,
                max_ms: F64 = max_ms,
                sum_ms: F64 = sum_ms,
                samples: Samples = samples,
            ],
            derived: [p50_ms: F64 = p50_ms, p95_ms: F64 = p95_ms, p99_ms: F64 = p99_ms],
        }
    };
}

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

/// The kept span family (`TelemetrySpan`), declared once.
///
/// `kept_span_columns!(then)` calls the macro `then!` with the declaration:
///
/// ```text
/// table: TRACE_SPANS,        // the catalogue's Table constant
/// message: TelemetrySpan,    // coral_proto::common's message
/// row: SpanRow,              // the name of a typed row, where an engine needs one
/// columns: [column: Kind = field, ..],  // both sides, in the tables' order
/// colony: [column: Kind = field, ..],   // the colony's only, at its table's end
/// ```
///
/// Each kind ([`super::kinds`]) says how the field is stored. The agent's
/// table numbers spans (`seq_id`) and refers to their resource by id
/// (`resource_id`, last); the colony's says which agent sent them
/// (`agent_id`, first) and holds the resource itself. The catalogue's
/// table, the agent's append and page read, the colony's Arrow batch, its
/// ClickHouse row and the migration are generated from this list: a
/// column added here (and to the message) reaches every one of them.
#[macro_export]
macro_rules! kept_span_columns {
    ($then:ident) => {
        $then! {
            table: TRACE_SPANS,
            message: TelemetrySpan,
            row: SpanRow,
            columns: [
                trace_id: Text = trace_id,
                span_id: Text = span_id,
                parent_span_id: Text = parent_span_id,
                service_name: Text = service_name,
                span_name: Text = span_name,
                span_kind: Text = span_kind,
                start_time: Nanos = start_time_unix_nano,
                start_time_ns: I64 = start_time_unix_nano,
                duration_us: I64 = duration_us,
                is_error: Bool = is_error,
                status_code: Text = status_code,
                status_message: Text = status_message,
                http_status_code: ZeroNull = http_status_code,
                http_method: Text = http_method,
                http_route: Text = http_route,
                rpc_system: Text = rpc_system,
                rpc_service: Text = rpc_service,
                rpc_method: Text = rpc_method,
                grpc_status_code: OptI32 = grpc_status_code,
                db_system: Text = db_system,
                db_operation: Text = db_operation,
                db_collection: Text = db_collection,
                keep_reason: Text = keep_reason,
                attributes: Text = attributes_json,
            ],
            colony: [resource: Text = resource_json],
        }
    };
}

/// The kept span's columns, from its declaration.
macro_rules! kept_span_table {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        /// A kept span's columns: the agent stores each resource once and
        /// refers to it by id, the colony stores it with the span.
        const KEPT_SPAN: &[Column] = &[
            colony_only(col("agent_id", Ty::Text)),
            col("seq_id", Ty::U64),
            $(kind_column!(stringify!($c), $k),)+
            agent_only(col("resource_id", Ty::U64)),
            $(colony_only(kind_column!(stringify!($cc), $ck)),)*
        ];
    };
}

crate::kept_span_columns!(kept_span_table);

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

/// The host sample family (`HostMetrics`), declared once, as the kept span
/// is ([`crate::kept_span_columns`] describes the form):
/// `host_sample_columns!(then)` calls `then!` with it;
/// `host_sample_columns!(then, args…)` puts `args…;` before it. The catalogue's
/// table, the agent's append and page read, the colony's DuckDB append,
/// its ClickHouse row and the migration are generated from this list.
#[macro_export]
macro_rules! host_sample_columns {
    ($then:ident $(, $($args:tt)+)?) => {
        $then! {
            $($($args)+;)?
            table: HOST_METRICS,
            message: HostMetrics,
            row: HostRow,
            columns: [
                bucket_time: Secs = bucket_time,
                hostname: Text = hostname,
                cpu_percent: F64 = cpu_percent,
                memory_used_bytes: U64 = memory_used_bytes,
                memory_total_bytes: U64 = memory_total_bytes,
                net_rx_bytes_per_sec: F64 = net_rx_bytes_per_sec,
                net_tx_bytes_per_sec: F64 = net_tx_bytes_per_sec,
                load1: F64 = load1,
                load5: F64 = load5,
                load15: F64 = load15,
                interval_seconds: F64 = interval_seconds,
            ],
            colony: [],
        }
    };
}

/// The host sample's columns, from its declaration.
macro_rules! host_sample_table {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        /// A host sample's columns: the agent numbers them, the colony says
        /// whose host they describe.
        const HOST_SAMPLE: &[Column] = &[
            colony_only(col("agent_id", Ty::Text)),
            agent_only(col("seq_id", Ty::U64)),
            $(kind_column!(stringify!($c), $k),)+
            $(colony_only(kind_column!(stringify!($cc), $ck)),)*
        ];
    };
}

crate::host_sample_columns!(host_sample_table);

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
