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

/// Beyla's histogram families (HTTP, gRPC, SQL), declared once.
///
/// `beyla_histogram_families!(then)` calls the macro `then!` once per
/// family with its declaration:
///
/// ```text
/// $(#[doc])*
/// table: BEYLA_HTTP,                     // the catalogue's Table constant
/// tables: ("colony_table", "agent_table_local"),
/// metric: BeylaHttpMetric,               // coral_proto::common's message
/// row: HttpRow,                          // the name of a typed row, where an engine needs one
/// what: "HTTP",                          // the family in messages
/// series: [column: Kind = field, ..],    // the series columns
/// counts: [column: U64 = field, ..],     // counts of the family's own, summed when rows merge
/// ```
///
/// Every column a family has besides these (minute, service, the latency
/// histogram and its scalars, attributes) is common to all three. Each
/// column holds the message field it names, stored as its kind says
/// ([`super::kinds`]). The catalogue's tables below, the agent's
/// append and page read, the colony's DuckDB merge and read, its ClickHouse
/// rows and the migration are all generated from this list: a series
/// column added here (and to the message) reaches every one of them.
#[macro_export]
macro_rules! beyla_histogram_families {
    ($then:ident) => {
        $then! {
            /// Beyla's HTTP histograms, one row per minute and series.
            table: BEYLA_HTTP,
            tables: ("beyla_http_metrics", "beyla_http_metrics_local"),
            metric: BeylaHttpMetric,
            row: HttpRow,
            what: "HTTP",
            series: [
                kind: Text = kind,
                http_method: Text = http_method,
                http_route: Text = http_route,
                http_status_code: Code = http_status_code,
            ],
            counts: [],
        }
        $then! {
            /// Beyla's gRPC histograms.
            table: BEYLA_GRPC,
            tables: ("beyla_grpc_metrics", "beyla_grpc_metrics_local"),
            metric: BeylaGrpcMetric,
            row: GrpcRow,
            what: "RPC",
            series: [
                kind: Text = kind,
                rpc_system: Text = rpc_system,
                grpc_method: Text = grpc_method,
                grpc_status_code: Code = grpc_status_code,
            ],
            counts: [],
        }
        $then! {
            /// Beyla's SQL client histograms.
            table: BEYLA_SQL,
            tables: ("beyla_sql_metrics", "beyla_sql_metrics_local"),
            metric: BeylaSqlMetric,
            row: SqlRow,
            what: "SQL",
            series: [
                db_system: Text = db_system,
                sql_operation: Text = sql_operation,
                table_name: Text = table_name,
            ],
            counts: [error_count: U64 = error_count],
        }
    };
}

/// A family's catalogue table.
macro_rules! histogram_table {
    (
        $(#[$doc:meta])*
        table: $table:ident,
        tables: ($colony:literal, $agent:literal),
        metric: $metric:ident,
        row: $row:ident,
        what: $what:literal,
        series: [$($series:ident: $sk:ident = $sf:ident),+ $(,)?],
        counts: [$($count:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        $(#[$doc])*
        pub const $table: Table = beyla_histogram!(
            $colony,
            $agent,
            [$(kind_column!(stringify!($series), $sk)),+],
            [$(kind_column!(stringify!($count), $ck)),*]
        );
    };
}

crate::beyla_histogram_families!(histogram_table);

/// The Beyla span family (`BeylaTraceSpan`), declared once, as the kept
/// span is ([`crate::kept_span_columns`] describes the form):
/// `beyla_span_columns!(then)` calls `then!` with it;
/// `beyla_span_columns!(then, args…)` puts `args…;` before it. The catalogue's table,
/// the agent's append and page read, the colony's DuckDB append and read,
/// its ClickHouse row and the migration are generated from this list.
#[macro_export]
macro_rules! beyla_span_columns {
    ($then:ident $(, $($args:tt)+)?) => {
        $then! {
            $($($args)+;)?
            table: BEYLA_TRACES,
            message: BeylaTraceSpan,
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
                status_code: Code = status_code,
                is_error: Bool = is_error,
                attributes: Text = attributes_json,
            ],
            colony: [],
        }
    };
}

/// The Beyla span's columns, from its declaration.
macro_rules! beyla_span_table {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        /// A Beyla span's columns.
        const SPAN: &[Column] = &[
            colony_only(col("agent_id", Ty::Text)),
            col("seq_id", Ty::U64),
            $(kind_column!(stringify!($c), $k),)+
            $(colony_only(kind_column!(stringify!($cc), $ck)),)*
        ];
    };
}

crate::beyla_span_columns!(beyla_span_table);

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
