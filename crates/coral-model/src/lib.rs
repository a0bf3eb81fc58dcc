//! Coral's shared data model, used by both the agent and the colony.
//!
//! - [`sketch`]: [`DurationSketch`], our DDSketch of durations in milliseconds
//!   (1% relative accuracy, exact merges, protobuf wire form).
//! - [`stats`]: [`Stats`], the mergeable RED accumulator (counts, sketch,
//!   min/max/sum, up to [`MAX_SAMPLES`] sample traces).
//! - [`bucket`]: one-minute [`Bucket`]s keyed by [`BucketKey`]
//!   `(minute, service, kind)`, with a per-operation breakdown, and their
//!   conversion to and from `coral.common.v1.TelemetryBucket`.
//! - [`beyla`]: [`BeylaRows`], a batch of Beyla histograms and spans.
//! - [`catalogue`]: every stored table declared once (columns, types, which
//!   side holds them), rendered by the agent's and the colony's stores.
//! - [`histogram`]: [`Histogram`], the explicit-bucket latency histogram of
//!   Beyla metrics, with exact merges and Coral's percentile rule.
//! - [`json`]: the JSON form of sample traces in DuckDB columns.
//! - [`sampling`]: trace-consistent sampling from the trace id.
//! - [`trace`]: [`TraceShape`], one trace's parent links and critical path
//!   with each span's self time on it.
//! - [`error`]: the error type, [`ModelError`].
//!
//! Durations are milliseconds (`f64`); bucket minutes are Unix seconds.

pub mod beyla;
pub mod bucket;
pub mod catalogue;
pub mod error;
pub mod histogram;
pub mod json;
pub mod sampling;
pub mod sketch;
pub mod stats;
pub mod trace;

pub use beyla::BeylaRows;
pub use bucket::{
    Bucket, BucketKey, OVERFLOW_OPERATION, SpanKind, minute_of, operation_from_proto,
};
pub use error::ModelError;
pub use histogram::{Histogram, Quantile};
pub use json::{
    AttributeLimits, cut_to, otlp_attributes_json, otlp_attributes_json_within, otlp_value_to_json,
    samples_from_json, samples_to_json, string_map_from_json, string_map_to_json,
};
pub use sketch::{DEFAULT_RELATIVE_ACCURACY, DurationSketch, MAX_BINS, MIN_INDEXABLE_MS};
pub use stats::{MAX_SAMPLES, Sample, Samples, Stats};
pub use trace::{SpanTiming, TraceShape};
