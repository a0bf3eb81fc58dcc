//! Beyla's OTLP → Coral rows.
//!
//! - [`Transformer`] (one per agent, stateful): OTLP metrics of every Beyla
//!   generation → per-minute, per-series [`BeylaRows`] (HTTP, RPC, database
//!   and messaging latency histograms in milliseconds). Cumulative
//!   temporality becomes deltas per series (the rule is in `delta`), routes
//!   are capped per service, and [`MetricsOutcome`] says what was used and
//!   what was skipped and why.
//! - [`MinuteWindow`]: merges rows of the same (minute, series) across exports
//!   and hands back closed minutes.
//! - [`traces()`]: OTLP spans → [`BeylaTraceSpan`](coral_proto::common::BeylaTraceSpan) rows, with
//!   trace-consistent sampling ([`keep_trace`]) and query obfuscation.
//! - [`obfuscate_sql`], [`obfuscate_redis`]: literals in query text → `?`.
//!
//! Submodules: `catalog` (metric names, attribute aliases, row keys),
//! `attrs` (typed attribute readers), `histo` (OTLP points → histograms and
//! cumulative differences), `delta` (temporality), `window`, `metrics`,
//! `traces`, `sql`.
//!
//! **Messaging.** Kafka, MQTT, NATS and AMQP durations
//! (`messaging.client.operation.duration`, `messaging.publish.duration`,
//! `messaging.process.duration`) have no table of their own: they become
//! `BeylaSqlMetric` rows with `db_system` = `messaging.system` (`kafka`, …),
//! `sql_operation` = `publish` | `process` and `table_name` = the destination
//! (topic or queue). A topic is "the table" of a broker, and the RED view of
//! "service → dependency, operation, object" is the same; the `db_system`
//! value tells them apart.

mod attrs;
mod catalog;
mod delta;
mod histo;
mod metrics;
mod sql;
mod traces;
mod window;

pub use catalog::grpc_code;
pub use metrics::{MetricsOutcome, Transformer};
pub use sql::{obfuscate_redis, obfuscate_sql};
pub use traces::{TracesOptions, TracesOutcome, keep_trace, traces};
pub use window::{BeylaRows, DEFAULT_MAX_PENDING, MinuteWindow};

/// Options of the [`Transformer`].
#[derive(Debug, Clone, PartialEq)]
pub struct TransformOptions {
    /// Distinct HTTP routes kept per service; further routes are counted
    /// under [`coral_model::OVERFLOW_OPERATION`] (`"__overflow__"`).
    pub max_routes_per_service: usize,
    /// Replace literals in query text (routes, operations) with `?`.
    pub obfuscate_queries: bool,
    /// Most cumulative series tracked at once.
    pub max_series: usize,
    /// Series (and routes) not seen for this long are forgotten.
    pub series_ttl_secs: u64,
    /// A cumulative series first seen at most this long after its start
    /// time is counted in full (see the temporality rule).
    pub fresh_series_secs: u64,
}

impl Default for TransformOptions {
    fn default() -> Self {
        TransformOptions {
            max_routes_per_service: 200,
            obfuscate_queries: true,
            max_series: 50_000,
            series_ttl_secs: 600,
            fresh_series_secs: 90,
        }
    }
}

/// Why data points could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SkipReason {
    /// Neither the resource nor the data point names the service.
    #[error("no service.name on the resource or the data point")]
    NoService,
    /// A RED duration metric that is not a histogram.
    #[error("metric {0} is not a histogram")]
    NotHistogram(String),
    /// A metric without data.
    #[error("metric {0} has no data")]
    NoData(String),
    /// A duration metric with a unit that is not a duration.
    #[error("unit {unit:?} of {metric} is not a duration")]
    Unit {
        /// The metric.
        metric: String,
        /// Its unit.
        unit: String,
    },
    /// A malformed histogram point.
    #[error("bad histogram: {0}")]
    BadHistogram(String),
    /// An exponential histogram that is not converted.
    #[error("exponential histogram not converted: {0}")]
    Exponential(String),
    /// Too many cumulative series are tracked.
    #[error("cumulative series cap ({0}) reached")]
    SeriesCap(usize),
    /// A point older than the last one of its series.
    #[error("point older than the last one of its series")]
    OutOfOrder,
}
