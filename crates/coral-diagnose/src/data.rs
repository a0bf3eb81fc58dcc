//! The data the engine reads, behind [`DiagnosisData`]: one method per
//! simple query over the colony's tables, each with a `coral query …`
//! command that shows the same rows (see [`crate::reproduce`]).
//!
//! | method | colony tables | reproduce |
//! |---|---|---|
//! | [`services`](DiagnosisData::services) | `otel_spans`, Beyla RED | `coral query services` |
//! | [`red`](DiagnosisData::red) | `otel_operations`, Beyla RED | `coral query otel S --by operation` |
//! | [`traces`](DiagnosisData::traces) | `trace_spans`, `beyla_traces` | `coral query traces --service S …` |
//! | [`hosts`](DiagnosisData::hosts) | `host_metrics`, `agents` | `coral query host S` |
//! | [`coverage`](DiagnosisData::coverage) | `agents`, `gaps` | `coral agents` |

use std::collections::BTreeMap;

use coral_model::{DurationSketch, Histogram, SpanKind};

use crate::time::Window;

/// Read access to the colony's data. Implementations answer each call with
/// one query; the engine never asks for unbounded data (trace queries carry
/// a limit and say when they cut).
pub trait DiagnosisData {
    /// The error of the underlying store.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Services with any RED row in `window`, sorted.
    fn services(&self, window: Window) -> Result<Vec<String>, Self::Error>;

    /// The service's RED rows in `window`: one per (minute, agent, span
    /// kind, operation, source), from 100 % of spans.
    fn red(&self, service: &str, window: Window) -> Result<Vec<RedRow>, Self::Error>;

    /// Kept traces that match `filter`, whole as stored (a trace kept span by
    /// span for latency or errors is partial), at most `filter.limit`.
    fn traces(&self, filter: &TraceFilter) -> Result<TraceBatch, Self::Error>;

    /// Host samples of these agents in `window`, one per (agent, minute).
    fn hosts(&self, agent_ids: &[String], window: Window) -> Result<Vec<HostMinute>, Self::Error>;

    /// Agents known to the colony and the gaps it recorded in `window`.
    fn coverage(&self, window: Window) -> Result<CoverageData, Self::Error>;
}

/// Where a RED row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// OpenTelemetry SDK spans (`otel_operations`).
    Otlp,
    /// Beyla RED histograms (HTTP, gRPC, SQL).
    Beyla,
}

/// A latency distribution as stored: a DDSketch (OTLP) or an explicit-bucket
/// histogram (Beyla).
#[derive(Debug, Clone, PartialEq)]
pub enum Latency {
    /// OTLP spans' sketch.
    Sketch(DurationSketch),
    /// Beyla's histogram.
    Histogram(Histogram),
}

/// One RED row: a minute of one operation of a service on one agent.
#[derive(Debug, Clone, PartialEq)]
pub struct RedRow {
    /// Minute start, Unix seconds.
    pub minute: i64,
    /// The agent that measured it.
    pub agent_id: String,
    /// The agent's hostname.
    pub host: String,
    /// Span kind (Beyla: SERVER or CLIENT).
    pub span_kind: SpanKind,
    /// Operation: the span name (OTLP), `METHOD route` (Beyla HTTP), the
    /// gRPC method or `OPERATION table` (Beyla SQL).
    pub operation: String,
    /// Where the row comes from.
    pub source: Source,
    /// Requests (spans).
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Sum of durations, ms.
    pub sum_ms: f64,
    /// Slowest request, ms.
    pub max_ms: f64,
    /// Distribution of durations.
    pub latency: Latency,
    /// Sample trace ids (kept traces, best first).
    pub sample_trace_ids: Vec<String>,
}

/// Why a span was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeepReason {
    /// Its whole trace was kept by the trace-id sample (unbiased).
    #[default]
    Sampled,
    /// Kept on its own for being slow.
    Latency,
    /// Kept on its own for failing.
    Error,
    /// A Beyla span (kept with its trace).
    Beyla,
}

impl KeepReason {
    /// The CLI's name (`--keep-reason`).
    pub fn as_str(self) -> &'static str {
        match self {
            KeepReason::Sampled => "sampled",
            KeepReason::Latency => "latency",
            KeepReason::Error => "error",
            KeepReason::Beyla => "beyla",
        }
    }
}

/// Which kept traces a query selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TraceSelect {
    /// Traces kept whole by the trace-id sample (and Beyla's): an unbiased
    /// sample, ordered by trace id so a cut keeps it unbiased.
    Sampled,
    /// Traces with an error span, any keep reason, slowest first.
    Errors,
    /// Any kept trace, slowest first.
    Any,
}

/// A query for kept traces.
#[derive(Debug, Clone, PartialEq)]
pub struct TraceFilter {
    /// A matching span starts in this window.
    pub window: Window,
    /// A matching span is of this service.
    pub service: String,
    /// A matching span has this name.
    pub operation: Option<String>,
    /// Which traces.
    pub select: TraceSelect,
    /// At most this many traces.
    pub limit: usize,
}

/// Traces returned by a query.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceBatch {
    /// The traces.
    pub traces: Vec<Trace>,
    /// How many traces matched before the limit.
    pub matched: usize,
    /// More matched than were returned.
    pub truncated: bool,
}

/// The kept spans of one trace.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Trace id, 32 lowercase hex characters.
    pub trace_id: String,
    /// Its kept spans.
    pub spans: Vec<TraceSpan>,
}

/// One kept span.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceSpan {
    /// Span id.
    pub span_id: String,
    /// Parent span id; empty for a root.
    pub parent_span_id: String,
    /// Service name.
    pub service: String,
    /// Span name.
    pub operation: String,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// Duration, microseconds.
    pub duration_us: i64,
    /// Failed.
    pub is_error: bool,
    /// Status message.
    pub status_message: String,
    /// HTTP status, 0 when none.
    pub http_status_code: u16,
    /// gRPC status, when a gRPC span.
    pub grpc_status_code: Option<i32>,
    /// `db.system`, when a database span.
    pub db_system: Option<String>,
    /// `db.statement`, when known.
    pub db_statement: Option<String>,
    /// Why it was kept.
    pub keep_reason: KeepReason,
    /// The agent that kept it.
    pub agent_id: String,
    /// `host.name`, else the agent's hostname.
    pub host: String,
    /// `service.version`, empty when unknown.
    pub service_version: String,
    /// `k8s.pod.name`, empty when unknown.
    pub pod: String,
    /// Other attributes (e.g. `http.route`, `cloud.region`), as text.
    pub attributes: BTreeMap<String, String>,
}

impl TraceSpan {
    /// End, Unix nanoseconds.
    pub fn end_ns(&self) -> i64 {
        self.start_ns + self.duration_us.max(0) * 1000
    }

    /// Duration, ms.
    pub fn duration_ms(&self) -> f64 {
        self.duration_us as f64 / 1000.0
    }

    /// The HTTP status, else the gRPC code, else 0 (as `coral query traces`).
    pub fn status_code(&self) -> i64 {
        if self.http_status_code != 0 {
            i64::from(self.http_status_code)
        } else {
            i64::from(self.grpc_status_code.unwrap_or(0))
        }
    }
}

/// One host sample: an agent's host in one minute.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostMinute {
    /// Minute start, Unix seconds.
    pub minute: i64,
    /// The agent.
    pub agent_id: String,
    /// Its hostname.
    pub hostname: String,
    /// CPU busy, percent of all cores.
    pub cpu_percent: Option<f64>,
    /// Memory in use, bytes.
    pub memory_used_bytes: Option<u64>,
    /// Memory installed, bytes.
    pub memory_total_bytes: Option<u64>,
    /// Network received, bytes per second.
    pub net_rx_bytes_per_sec: Option<f64>,
    /// Network sent, bytes per second.
    pub net_tx_bytes_per_sec: Option<f64>,
    /// One-minute load average.
    pub load1: Option<f64>,
}

/// An agent known to the colony.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentInfo {
    /// Agent id.
    pub agent_id: String,
    /// Hostname.
    pub hostname: String,
}

/// A gap the colony proved in an agent's data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GapRow {
    /// The agent.
    pub agent_id: String,
    /// First missing sequence number.
    pub from_seq: u64,
    /// Last missing sequence number.
    pub to_seq: u64,
    /// When the colony noticed, Unix seconds.
    pub detected_at: i64,
    /// Why (e.g. agent retention passed).
    pub reason: String,
}

/// Agents and gaps.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CoverageData {
    /// Agents known to the colony.
    pub agents: Vec<AgentInfo>,
    /// Gaps detected in the window.
    pub gaps: Vec<GapRow>,
}
