//! [`Histogram`]: an explicit-bucket latency histogram in milliseconds, as
//! Beyla reports it, with exact merges and the percentile rule Coral uses
//! everywhere (Prometheus `histogram_quantile` interpolation, clamped to the
//! observed min and max).
//!
//! `counts` has one entry per bound plus the +Inf bucket: `counts[i]` holds
//! the values in `(bounds[i-1], bounds[i]]`, `counts[bounds.len()]` those
//! above the last bound.

use coral_proto::common::LatencyHistogram;

use crate::error::ModelError;

/// An explicit-bucket histogram of durations in milliseconds.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Histogram {
    /// Ascending upper bounds.
    pub bounds_ms: Vec<f64>,
    /// `bounds_ms.len() + 1` counts; the last is the +Inf bucket.
    pub counts: Vec<u64>,
    /// Total count (the sum of `counts`).
    pub count: u64,
    /// Sum of the values.
    pub sum_ms: f64,
    /// Smallest value, when reported.
    pub min_ms: Option<f64>,
    /// Largest value, when reported.
    pub max_ms: Option<f64>,
}

/// A percentile read from a histogram.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Quantile {
    /// The estimated value in milliseconds.
    Value(f64),
    /// The rank fell in the +Inf bucket and the maximum is unknown: the value
    /// is above this bound.
    Above(f64),
}

impl Quantile {
    /// The value, or the bound it is above.
    pub fn ms(self) -> f64 {
        match self {
            Quantile::Value(v) | Quantile::Above(v) => v,
        }
    }
}

impl Histogram {
    /// Builds a histogram, checking its shape: bounds strictly ascending and
    /// finite, one more count than bounds, `count` equal to their sum.
    pub fn new(
        bounds_ms: Vec<f64>,
        counts: Vec<u64>,
        sum_ms: f64,
        min_ms: Option<f64>,
        max_ms: Option<f64>,
    ) -> Result<Histogram, ModelError> {
        if counts.len() != bounds_ms.len() + 1 {
            return Err(ModelError::InvalidHistogram(format!(
                "{} counts for {} bounds (expected {})",
                counts.len(),
                bounds_ms.len(),
                bounds_ms.len() + 1
            )));
        }
        if bounds_ms.iter().any(|b| !b.is_finite()) || bounds_ms.windows(2).any(|w| w[0] >= w[1]) {
            return Err(ModelError::InvalidHistogram(
                "bounds must be finite and strictly ascending".into(),
            ));
        }
        // Counts come from outside (OTLP data points): a sum past u64 is
        // refused rather than wrapped.
        let count = counts
            .iter()
            .try_fold(0u64, |total, &c| total.checked_add(c))
            .ok_or_else(|| {
                ModelError::InvalidHistogram("bucket counts add up to more than 2^64".into())
            })?;
        Ok(Histogram {
            bounds_ms,
            counts,
            count,
            sum_ms,
            min_ms,
            max_ms,
        })
    }

    /// Adds `other` into `self`. Identical bounds merge exactly; otherwise
    /// each of `other`'s buckets is added to the bucket of `self` that holds
    /// its upper bound (a conservative, upward re-bucketing). The merged min
    /// (max) is known only when every non-empty side reported one.
    pub fn merge(&mut self, other: &Histogram) {
        if self.counts.is_empty() {
            *self = other.clone();
            return;
        }
        let (mine, theirs) = (self.count, other.count);
        // Saturating: merged counts of hostile input must not wrap.
        if self.bounds_ms == other.bounds_ms {
            for (a, b) in self.counts.iter_mut().zip(&other.counts) {
                *a = a.saturating_add(*b);
            }
        } else {
            for (i, &c) in other.counts.iter().enumerate() {
                let upper = other.bounds_ms.get(i).copied().unwrap_or(f64::INFINITY);
                let j = self.bounds_ms.partition_point(|&b| b < upper);
                self.counts[j] = self.counts[j].saturating_add(c);
            }
        }
        self.count = self.count.saturating_add(other.count);
        self.sum_ms += other.sum_ms;
        self.min_ms = merge_extreme((mine, self.min_ms), (theirs, other.min_ms), f64::min);
        self.max_ms = merge_extreme((mine, self.max_ms), (theirs, other.max_ms), f64::max);
    }

    /// The `q` quantile (0 ≤ q ≤ 1), `None` when the histogram is empty.
    ///
    /// The rank `q × count` is located in the first bucket whose cumulative
    /// count reaches it, and the value is interpolated linearly inside that
    /// bucket (the lower edge of the first bucket is 0, or its bound when that
    /// is ≤ 0), as Prometheus' `histogram_quantile` does. The result is then
    /// clamped to the observed min and max when known. A rank in the +Inf
    /// bucket reports the observed max, or [`Quantile::Above`] the last bound.
    pub fn quantile(&self, q: f64) -> Option<Quantile> {
        if self.count == 0 || self.counts.is_empty() {
            return None;
        }
        let q = q.clamp(0.0, 1.0);
        let rank = q * self.count as f64;
        let mut cumulative = 0u64;
        let mut bucket = self.counts.len() - 1;
        for (i, &c) in self.counts.iter().enumerate() {
            if c > 0 && (cumulative + c) as f64 >= rank {
                bucket = i;
                break;
            }
            cumulative += c;
        }
        if bucket == self.bounds_ms.len() {
            return Some(match (self.max_ms, self.bounds_ms.last()) {
                (Some(max), _) => Quantile::Value(max),
                (None, Some(&last)) => Quantile::Above(last),
                (None, None) => return None,
            });
        }
        let upper = self.bounds_ms[bucket];
        let lower = if bucket == 0 {
            if upper <= 0.0 {
                return Some(Quantile::Value(self.clamp(upper)));
            }
            0.0
        } else {
            self.bounds_ms[bucket - 1]
        };
        let in_bucket = self.counts[bucket] as f64;
        let fraction = ((rank - cumulative as f64) / in_bucket).clamp(0.0, 1.0);
        Some(Quantile::Value(
            self.clamp(lower + (upper - lower) * fraction),
        ))
    }

    fn clamp(&self, v: f64) -> f64 {
        let v = self.min_ms.map_or(v, |m| v.max(m));
        self.max_ms.map_or(v, |m| v.min(m))
    }

    /// The protobuf form.
    pub fn to_proto(&self) -> LatencyHistogram {
        LatencyHistogram {
            bounds_ms: self.bounds_ms.clone(),
            counts: self.counts.clone(),
            count: self.count,
            sum_ms: self.sum_ms,
            min_ms: self.min_ms,
            max_ms: self.max_ms,
        }
    }

    /// The encoded protobuf form (`coral.common.v1.LatencyHistogram`), as
    /// stored in DuckDB `latency` columns.
    pub fn encode(&self) -> Vec<u8> {
        use prost::Message;
        self.to_proto().encode_to_vec()
    }

    /// Decodes and validates [`Histogram::encode`]'s output.
    pub fn decode(bytes: &[u8]) -> Result<Histogram, ModelError> {
        use prost::Message;
        Histogram::from_proto(&LatencyHistogram::decode(bytes)?)
    }

    /// From the protobuf form, validated as by [`Histogram::new`]; `count`
    /// must equal the sum of `counts`.
    pub fn from_proto(p: &LatencyHistogram) -> Result<Histogram, ModelError> {
        let h = Histogram::new(
            p.bounds_ms.clone(),
            p.counts.clone(),
            p.sum_ms,
            p.min_ms,
            p.max_ms,
        )?;
        if h.count != p.count {
            return Err(ModelError::InvalidHistogram(format!(
                "count {} but bucket counts sum to {}",
                p.count, h.count
            )));
        }
        Ok(h)
    }
}

/// Merges an extreme of two sides given as (count, extreme): an empty side
/// does not count; a non-empty side without the extreme makes it unknown.
fn merge_extreme(
    a: (u64, Option<f64>),
    b: (u64, Option<f64>),
    f: fn(f64, f64) -> f64,
) -> Option<f64> {
    match (a, b) {
        ((0, _), (_, b)) => b,
        ((_, a), (0, _)) => a,
        ((_, Some(a)), (_, Some(b))) => Some(f(a, b)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Beyla's duration bounds, converted to milliseconds.
    fn beyla_bounds() -> Vec<f64> {
        [
            0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0,
            7500.0, 10000.0,
        ]
        .to_vec()
    }

    fn hist(counts: &[(usize, u64)], min: Option<f64>, max: Option<f64>) -> Histogram {
        let bounds = beyla_bounds();
        let mut c = vec![0; bounds.len() + 1];
        for &(i, n) in counts {
            c[i] = n;
        }
        Histogram::new(bounds, c, 0.0, min, max).unwrap()
    }

    #[test]
    fn interpolates_inside_the_bucket_like_prometheus() {
        // 100 values in (25, 50]: p50 is halfway, p95 at 95%.
        let h = hist(&[(4, 100)], None, None);
        assert_eq!(h.quantile(0.5), Some(Quantile::Value(37.5)));
        assert_eq!(h.quantile(0.95), Some(Quantile::Value(48.75)));
        // 90 in (5,10], 10 in (250,500]: p50 = 5 + 5*(50/90), p95 = 250 + 250*(5/10).
        let h = hist(&[(2, 90), (8, 10)], None, None);
        let p50 = h.quantile(0.5).unwrap().ms();
        assert!((p50 - (5.0 + 5.0 * 50.0 / 90.0)).abs() < 1e-9, "{p50}");
        assert_eq!(h.quantile(0.95), Some(Quantile::Value(375.0)));
        assert_eq!(h.quantile(0.99), Some(Quantile::Value(475.0)));
    }

    #[test]
    fn clamps_to_observed_min_and_max() {
        // 3 values in (25, 50] observed between 31 and 40 ms.
        let h = hist(&[(4, 3)], Some(31.0), Some(40.0));
        assert_eq!(h.quantile(0.5), Some(Quantile::Value(37.5)));
        assert_eq!(h.quantile(0.99), Some(Quantile::Value(40.0)));
        assert_eq!(h.quantile(0.0), Some(Quantile::Value(31.0)));
    }

    #[test]
    fn the_inf_bucket_reports_max_or_above_the_last_bound() {
        let h = hist(&[(3, 1), (15, 1)], None, Some(12_345.0));
        assert_eq!(h.quantile(0.99), Some(Quantile::Value(12_345.0)));
        let h = hist(&[(3, 1), (15, 1)], None, None);
        assert_eq!(h.quantile(0.99), Some(Quantile::Above(10_000.0)));
    }

    #[test]
    fn a_single_request_and_the_zero_bucket() {
        let h = hist(&[(1, 1)], Some(3.2), Some(3.2));
        assert_eq!(h.quantile(0.5), Some(Quantile::Value(3.2)));
        let h = hist(&[(0, 4)], None, None);
        assert_eq!(h.quantile(0.5), Some(Quantile::Value(0.0)));
        assert_eq!(hist(&[], None, None).quantile(0.5), None);
    }

    #[test]
    fn merges_add_counts_and_keep_extremes() {
        let mut a = hist(&[(4, 3)], Some(31.0), Some(40.0));
        let b = hist(&[(4, 1), (7, 2)], Some(26.0), Some(200.0));
        a.merge(&b);
        assert_eq!(a.count, 6);
        assert_eq!(a.counts[4], 4);
        assert_eq!(a.counts[7], 2);
        assert_eq!((a.min_ms, a.max_ms), (Some(26.0), Some(200.0)));
        let mut empty = Histogram::default();
        empty.merge(&b);
        assert_eq!(empty, b);
        // A side with values but no reported max makes the max unknown; an
        // empty side does not.
        let mut c = hist(&[(4, 1)], Some(30.0), Some(40.0));
        c.merge(&hist(&[(15, 1)], None, None));
        assert_eq!((c.min_ms, c.max_ms), (None, None));
        let mut d = hist(&[(4, 1)], Some(30.0), Some(40.0));
        d.merge(&hist(&[], None, None));
        assert_eq!((d.min_ms, d.max_ms), (Some(30.0), Some(40.0)));
    }

    #[test]
    fn different_bounds_rebucket_upward() {
        let mut a = Histogram::new(vec![10.0, 100.0], vec![0, 0, 0], 0.0, None, None).unwrap();
        let b = Histogram::new(vec![5.0, 50.0, 500.0], vec![1, 2, 3, 4], 0.0, None, None).unwrap();
        a.merge(&b);
        assert_eq!(a.counts, vec![1, 2, 7]);
        assert_eq!(a.count, 10);
    }

    #[test]
    fn rejects_bad_shapes_and_round_trips() {
        assert!(Histogram::new(vec![1.0, 2.0], vec![1, 2], 0.0, None, None).is_err());
        assert!(Histogram::new(vec![2.0, 1.0], vec![1, 2, 3], 0.0, None, None).is_err());
        let h = hist(&[(4, 3)], Some(31.0), Some(40.0));
        assert_eq!(Histogram::from_proto(&h.to_proto()).unwrap(), h);
        assert_eq!(Histogram::decode(&h.encode()).unwrap(), h);
        assert!(Histogram::decode(b"\xff\xff").is_err());
        let mut p = h.to_proto();
        p.count = 4;
        assert!(Histogram::from_proto(&p).is_err());
    }

    #[test]
    fn counts_that_overflow_are_refused_and_merges_saturate() {
        // Found by fuzzing Beyla's transform: bucket counts from an OTLP data
        // point that add up past u64 wrapped (or panicked in a debug build).
        let err = Histogram::new(vec![1.0], vec![u64::MAX, 1], 0.0, None, None).unwrap_err();
        assert!(err.to_string().contains("2^64"), "{err}");
        let mut a = Histogram::new(vec![1.0], vec![u64::MAX - 1, 0], 0.0, None, None).unwrap();
        let b = Histogram::new(vec![1.0], vec![5, 0], 0.0, None, None).unwrap();
        a.merge(&b);
        assert_eq!((a.counts[0], a.count), (u64::MAX, u64::MAX));
        let c = Histogram::new(vec![2.0], vec![5, 0], 0.0, None, None).unwrap();
        a.merge(&c);
        assert_eq!(a.count, u64::MAX);
    }
}
