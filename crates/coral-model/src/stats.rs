//! [`Stats`]: the mergeable RED (rate, errors, duration) accumulator of a
//! bucket or of one operation, and [`Samples`], its ranked sample traces.

use std::cmp::Ordering;

use crate::error::ModelError;
use crate::sketch::DurationSketch;

/// Maximum number of sample traces kept per [`Samples`].
pub const MAX_SAMPLES: usize = 5;

/// A sample trace: the trace of one span kept as an example.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Trace id (lowercase hex, 32 characters).
    pub trace_id: String,
    /// Duration of the span in milliseconds.
    pub duration_ms: f64,
    /// Whether the span was an error.
    pub is_error: bool,
}

/// Rank order: errors first, then the slowest, then the smaller trace id.
/// `Greater` means "better".
#[inline]
fn rank(a: (bool, f64, &str), b: (bool, f64, &str)) -> Ordering {
    a.0.cmp(&b.0)
        .then(a.1.total_cmp(&b.1))
        .then_with(|| b.2.cmp(a.2))
}

/// Up to [`MAX_SAMPLES`] sample traces, best first: errors first, then the
/// slowest; exact ties go to the smaller trace id, so the kept samples do
/// not depend on the order of offers and merges. A trace id appears at most
/// once (with its best-ranked span). Empty trace ids are never kept.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    items: Vec<Sample>,
}

impl Samples {
    /// No samples.
    pub fn new() -> Self {
        Self::default()
    }

    /// Offers a span as a sample. Cheap when it does not qualify: it is
    /// compared with the worst kept sample before anything is allocated.
    #[inline]
    pub fn offer(&mut self, trace_id: &str, duration_ms: f64, is_error: bool) {
        if let Some(worst) = self.items.last()
            && self.items.len() >= MAX_SAMPLES
            && rank(
                (is_error, duration_ms, trace_id),
                (worst.is_error, worst.duration_ms, &worst.trace_id),
            ) != Ordering::Greater
        {
            // Not better than the worst kept sample; if the trace is already
            // kept, its entry ranks at least as well.
            return;
        }
        self.offer_slow(trace_id, duration_ms, is_error);
    }

    fn offer_slow(&mut self, trace_id: &str, duration_ms: f64, is_error: bool) {
        if trace_id.is_empty() {
            return;
        }
        let better_than = |s: &Sample| {
            rank(
                (is_error, duration_ms, trace_id),
                (s.is_error, s.duration_ms, &s.trace_id),
            ) == Ordering::Greater
        };
        if let Some(pos) = self.items.iter().position(|s| s.trace_id == trace_id) {
            if !better_than(&self.items[pos]) {
                return;
            }
            let mut sample = self.items.remove(pos);
            sample.duration_ms = duration_ms;
            sample.is_error = is_error;
            let at = self.items.partition_point(|s| !better_than(s));
            self.items.insert(at, sample);
            return;
        }
        let at = self.items.partition_point(|s| !better_than(s));
        if at >= MAX_SAMPLES {
            return;
        }
        if self.items.len() >= MAX_SAMPLES {
            self.items.pop();
        }
        self.items.insert(
            at,
            Sample {
                trace_id: trace_id.to_owned(),
                duration_ms,
                is_error,
            },
        );
    }

    /// Keeps the best samples of both.
    pub fn merge(&mut self, other: &Samples) {
        for s in &other.items {
            self.offer(&s.trace_id, s.duration_ms, s.is_error);
        }
    }

    /// The samples, best first.
    pub fn iter(&self) -> std::slice::Iter<'_, Sample> {
        self.items.iter()
    }

    /// The trace ids, best first.
    pub fn trace_ids(&self) -> Vec<String> {
        self.items.iter().map(|s| s.trace_id.clone()).collect()
    }

    /// Number of samples kept.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no sample is kept.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The protobuf form, best first.
    pub fn to_proto(&self) -> Vec<coral_proto::common::SampleTrace> {
        self.items
            .iter()
            .map(|s| coral_proto::common::SampleTrace {
                trace_id: s.trace_id.clone(),
                duration_ms: s.duration_ms,
                is_error: s.is_error,
            })
            .collect()
    }

    /// Rebuilds samples from their protobuf form (re-ranked, deduplicated,
    /// at most [`MAX_SAMPLES`]).
    pub fn from_proto(samples: &[coral_proto::common::SampleTrace]) -> Self {
        let mut out = Self::new();
        for s in samples {
            out.offer(&s.trace_id, s.duration_ms, s.is_error);
        }
        out
    }
}

impl<'a> IntoIterator for &'a Samples {
    type Item = &'a Sample;
    type IntoIter = std::slice::Iter<'a, Sample>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Mergeable RED statistics: counts, duration sketch, exact min/max/sum and
/// sample traces.
///
/// When empty, `min_ms` is +∞ and `max_ms` is 0 (protobuf output writes 0
/// for both).
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Number of spans.
    pub total: u64,
    /// Number of error spans.
    pub errors: u64,
    /// Distribution of durations.
    pub sketch: DurationSketch,
    /// Smallest duration in milliseconds (+∞ when empty).
    pub min_ms: f64,
    /// Largest duration in milliseconds (0 when empty).
    pub max_ms: f64,
    /// Sum of durations in milliseconds.
    pub sum_ms: f64,
    /// Sample traces: errors first, then the slowest.
    pub samples: Samples,
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

impl Stats {
    /// Empty statistics with a default sketch (1% relative accuracy).
    pub fn new() -> Self {
        Self::with_sketch(DurationSketch::new())
    }

    /// Empty statistics around an (empty) sketch, e.g. one with a custom
    /// relative accuracy.
    pub fn with_sketch(sketch: DurationSketch) -> Self {
        Self {
            total: 0,
            errors: 0,
            sketch,
            min_ms: f64::INFINITY,
            max_ms: 0.0,
            sum_ms: 0.0,
            samples: Samples::new(),
        }
    }

    /// Records one span. A negative or non-finite duration counts as 0 ms,
    /// so that `sketch.count() == total`. Allocates only when the span
    /// becomes a sample.
    #[inline]
    pub fn record(&mut self, duration_ms: f64, is_error: bool, trace_id: &str) {
        self.record_as(duration_ms, is_error, Some(trace_id));
    }

    /// Records one span, offering its trace as a sample only when `sample`
    /// names it (the agent offers only traces it keeps, so every sample
    /// trace id can be opened at the colony).
    #[inline]
    pub fn record_as(&mut self, duration_ms: f64, is_error: bool, sample: Option<&str>) {
        let d = if duration_ms.is_finite() && duration_ms > 0.0 {
            duration_ms
        } else {
            0.0
        };
        self.total += 1;
        self.errors += u64::from(is_error);
        self.sketch.add(d);
        self.min_ms = self.min_ms.min(d);
        self.max_ms = self.max_ms.max(d);
        self.sum_ms += d;
        if let Some(trace_id) = sample {
            self.samples.offer(trace_id, d, is_error);
        }
    }

    /// Adds `other` into `self`. Fails, leaving `self` unchanged, when the
    /// sketches are incompatible.
    pub fn merge(&mut self, other: &Stats) -> Result<(), ModelError> {
        self.sketch.merge(&other.sketch)?;
        self.total = self.total.saturating_add(other.total);
        self.errors = self.errors.saturating_add(other.errors);
        self.min_ms = self.min_ms.min(other.min_ms);
        self.max_ms = self.max_ms.max(other.max_ms);
        self.sum_ms += other.sum_ms;
        self.samples.merge(&other.samples);
        Ok(())
    }

    /// The estimated `q`-quantile of durations (see
    /// [`DurationSketch::quantile`]), clamped to the exact `[min, max]`.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let v = self.sketch.quantile(q)?;
        Some(if self.min_ms <= self.max_ms {
            v.clamp(self.min_ms, self.max_ms)
        } else {
            v
        })
    }

    /// p50, p95 and p99 in milliseconds; 0.0 when empty.
    pub fn percentiles(&self) -> (f64, f64, f64) {
        let q = |q| self.quantile(q).unwrap_or(0.0);
        (q(0.5), q(0.95), q(0.99))
    }

    /// Mean duration in milliseconds; 0.0 when empty.
    pub fn mean_ms(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.sum_ms / self.total as f64
        }
    }

    /// `min_ms` as written to protobuf: 0 when empty.
    pub fn min_ms_or_zero(&self) -> f64 {
        if self.min_ms.is_finite() {
            self.min_ms
        } else {
            0.0
        }
    }
}
