//! One-minute buckets: [`BucketKey`] `(minute, service, kind)`, [`Bucket`]
//! (totals plus a per-operation breakdown) and their protobuf form
//! (`coral.common.v1.TelemetryBucket`).

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use coral_proto::common::{OperationSummary, TelemetryBucket};

use crate::error::ModelError;
use crate::sketch::DurationSketch;
use crate::stats::{Samples, Stats};

/// Operation name that collects operations beyond the per-service cap.
pub const OVERFLOW_OPERATION: &str = "__overflow__";

/// Minute-aligned UTC bucket start in Unix seconds.
pub fn minute_of(unix_nanos: u64) -> i64 {
    let secs = unix_nanos / 1_000_000_000;
    (secs - secs % 60) as i64
}

/// Span kind, as in OTLP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum SpanKind {
    /// `SPAN_KIND_UNSPECIFIED` (0), also used for unknown values.
    #[default]
    Unspecified,
    /// `SPAN_KIND_INTERNAL` (1).
    Internal,
    /// `SPAN_KIND_SERVER` (2).
    Server,
    /// `SPAN_KIND_CLIENT` (3).
    Client,
    /// `SPAN_KIND_PRODUCER` (4).
    Producer,
    /// `SPAN_KIND_CONSUMER` (5).
    Consumer,
}

impl SpanKind {
    /// All kinds, in OTLP enum order.
    pub const ALL: [SpanKind; 6] = [
        SpanKind::Unspecified,
        SpanKind::Internal,
        SpanKind::Server,
        SpanKind::Client,
        SpanKind::Producer,
        SpanKind::Consumer,
    ];

    /// The wire name: `"UNSPECIFIED"`, `"INTERNAL"`, `"SERVER"`, `"CLIENT"`,
    /// `"PRODUCER"` or `"CONSUMER"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpanKind::Unspecified => "UNSPECIFIED",
            SpanKind::Internal => "INTERNAL",
            SpanKind::Server => "SERVER",
            SpanKind::Client => "CLIENT",
            SpanKind::Producer => "PRODUCER",
            SpanKind::Consumer => "CONSUMER",
        }
    }

    /// From the OTLP enum number (0..=5); other numbers map to `Unspecified`.
    pub fn from_otlp(kind: i32) -> SpanKind {
        match kind {
            1 => SpanKind::Internal,
            2 => SpanKind::Server,
            3 => SpanKind::Client,
            4 => SpanKind::Producer,
            5 => SpanKind::Consumer,
            _ => SpanKind::Unspecified,
        }
    }
}

impl fmt::Display for SpanKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SpanKind {
    type Err = ModelError;

    /// Parses a wire name, case-insensitively, with or without the OTLP
    /// `SPAN_KIND_` prefix.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        let name = upper.strip_prefix("SPAN_KIND_").unwrap_or(&upper);
        SpanKind::ALL
            .into_iter()
            .find(|k| k.as_str() == name)
            .ok_or_else(|| ModelError::UnknownSpanKind(s.to_owned()))
    }
}

/// Key of a bucket: minute (Unix seconds), service name and span kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    /// Minute-aligned UTC start in Unix seconds (see [`minute_of`]).
    pub minute: i64,
    /// Service name.
    pub service: String,
    /// Span kind.
    pub kind: SpanKind,
}

impl fmt::Display for BucketKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.minute, self.service, self.kind)
    }
}

/// A flushed bucket: totals for (minute, service, kind) plus per-operation breakdown.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// The bucket's key.
    pub key: BucketKey,
    /// Totals over all operations.
    pub stats: Stats,
    /// Per-operation statistics, by span name (at most one entry per name).
    pub operations: Vec<(String, Stats)>,
}

fn saturating_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl Bucket {
    /// An empty bucket for `key`.
    pub fn new(key: BucketKey) -> Self {
        Self {
            key,
            stats: Stats::new(),
            operations: Vec::new(),
        }
    }

    /// The protobuf form: percentiles from the sketch, min/max/sum (min is 0
    /// when empty), sketch, samples (as ids and in full) and operations.
    pub fn to_proto(&self, agent_id: &str, seq_id: u64) -> TelemetryBucket {
        let s = &self.stats;
        let (p50_ms, p95_ms, p99_ms) = s.percentiles();
        TelemetryBucket {
            agent_id: agent_id.to_owned(),
            bucket_time: self.key.minute,
            service_name: self.key.service.clone(),
            span_kind: self.key.kind.as_str().to_owned(),
            p50_ms,
            p95_ms,
            p99_ms,
            error_count: saturating_i64(s.errors),
            total_spans: saturating_i64(s.total),
            sample_traces: s.samples.trace_ids(),
            min_ms: s.min_ms_or_zero(),
            max_ms: s.max_ms,
            sum_ms: s.sum_ms,
            sketch: Some(s.sketch.to_proto()),
            operations: self
                .operations
                .iter()
                .map(|(name, stats)| operation_to_proto(name, stats))
                .collect(),
            seq_id,
            samples: s.samples.to_proto(),
        }
    }

    /// Decodes and validates a protobuf bucket (agent id and seq id are not
    /// part of [`Bucket`]). Operations with the same name are merged.
    pub fn from_proto(p: &TelemetryBucket) -> Result<Bucket, ModelError> {
        let key = BucketKey {
            minute: p.bucket_time,
            service: p.service_name.clone(),
            kind: p.span_kind.parse()?,
        };
        let stats = stats_from_proto(
            p.total_spans,
            p.error_count,
            p.min_ms,
            p.max_ms,
            p.sum_ms,
            p.sketch.as_ref(),
            &p.samples,
        )
        .map_err(|e| context(e, &format!("bucket {key}")))?;
        let mut bucket = Bucket::new(key);
        bucket.stats = stats;
        for op in &p.operations {
            let stats = operation_from_proto(op)
                .map_err(|e| context(e, &format!("operation {:?}", op.operation)))?;
            match bucket
                .operations
                .iter_mut()
                .find(|(n, _)| *n == op.operation)
            {
                Some((_, existing)) => existing.merge(&stats)?,
                None => bucket.operations.push((op.operation.clone(), stats)),
            }
        }
        Ok(bucket)
    }

    /// Adds `other` into `self`: totals and sketches merge, operations merge
    /// by name (new names are appended). Fails, leaving `self` unchanged,
    /// when the keys differ or sketches are incompatible.
    pub fn merge(&mut self, other: &Bucket) -> Result<(), ModelError> {
        if self.key != other.key {
            return Err(ModelError::KeyMismatch {
                left: self.key.to_string(),
                right: other.key.to_string(),
            });
        }
        let index: HashMap<&str, usize> = self
            .operations
            .iter()
            .enumerate()
            .map(|(i, (name, _))| (name.as_str(), i))
            .collect();
        let targets: Vec<Option<usize>> = other
            .operations
            .iter()
            .map(|(name, _)| index.get(name.as_str()).copied())
            .collect();
        drop(index);
        // Check every merge first so that a failure changes nothing.
        let check = |left: &DurationSketch, right: &DurationSketch| {
            if left.relative_accuracy() == right.relative_accuracy() {
                Ok(())
            } else {
                Err(ModelError::IncompatibleSketches {
                    left: left.relative_accuracy(),
                    right: right.relative_accuracy(),
                })
            }
        };
        check(&self.stats.sketch, &other.stats.sketch)?;
        for (target, (_, stats)) in targets.iter().zip(&other.operations) {
            if let Some(i) = *target {
                check(&self.operations[i].1.sketch, &stats.sketch)?;
            }
        }
        self.stats.merge(&other.stats)?;
        for (target, (name, stats)) in targets.into_iter().zip(&other.operations) {
            match target {
                Some(i) => self.operations[i].1.merge(stats)?,
                None => self.operations.push((name.clone(), stats.clone())),
            }
        }
        Ok(())
    }

    /// The statistics of operation `name`, if present.
    pub fn operation(&self, name: &str) -> Option<&Stats> {
        self.operations
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, s)| s)
    }
}

fn context(e: ModelError, what: &str) -> ModelError {
    match e {
        ModelError::InvalidSketch(m) => ModelError::InvalidSketch(format!("{what}: {m}")),
        ModelError::InvalidBucket(m) => ModelError::InvalidBucket(format!("{what}: {m}")),
        other => other,
    }
}

fn operation_to_proto(name: &str, s: &Stats) -> OperationSummary {
    let (p50_ms, p95_ms, p99_ms) = s.percentiles();
    OperationSummary {
        operation: name.to_owned(),
        total_spans: saturating_i64(s.total),
        error_count: saturating_i64(s.errors),
        p50_ms,
        p95_ms,
        p99_ms,
        min_ms: s.min_ms_or_zero(),
        max_ms: s.max_ms,
        sum_ms: s.sum_ms,
        sketch: Some(s.sketch.to_proto()),
        samples: s.samples.to_proto(),
    }
}

/// The statistics of one operation summary, validated like a bucket's.
pub fn operation_from_proto(op: &OperationSummary) -> Result<Stats, ModelError> {
    stats_from_proto(
        op.total_spans,
        op.error_count,
        op.min_ms,
        op.max_ms,
        op.sum_ms,
        op.sketch.as_ref(),
        &op.samples,
    )
}

/// Validates counts against each other and the sketch: counts must be
/// non-negative, errors ≤ total, and the sketch (required unless total is 0)
/// must hold exactly `total` values.
fn stats_from_proto(
    total: i64,
    errors: i64,
    min_ms: f64,
    max_ms: f64,
    sum_ms: f64,
    sketch: Option<&coral_proto::common::DurationSketch>,
    samples: &[coral_proto::common::SampleTrace],
) -> Result<Stats, ModelError> {
    let invalid = |m: String| ModelError::InvalidBucket(m);
    let total = u64::try_from(total).map_err(|_| invalid(format!("total_spans {total} < 0")))?;
    let errors = u64::try_from(errors).map_err(|_| invalid(format!("error_count {errors} < 0")))?;
    if errors > total {
        return Err(invalid(format!(
            "error_count {errors} > total_spans {total}"
        )));
    }
    let sketch = match sketch {
        Some(p) => DurationSketch::from_proto(p)?,
        None if total == 0 => DurationSketch::new(),
        None => return Err(invalid(format!("missing sketch for {total} spans"))),
    };
    if sketch.count() != total {
        return Err(invalid(format!(
            "sketch holds {} values, total_spans is {total}",
            sketch.count()
        )));
    }
    let mut stats = Stats::with_sketch(sketch);
    stats.total = total;
    stats.errors = errors;
    if total > 0 {
        stats.min_ms = min_ms;
        stats.max_ms = max_ms;
        stats.sum_ms = sum_ms;
    }
    stats.samples = Samples::from_proto(samples);
    Ok(stats)
}
