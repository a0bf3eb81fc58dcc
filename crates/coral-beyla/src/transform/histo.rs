//! OTLP histogram data points → [`Histogram`] in milliseconds, and the
//! difference of two cumulative histograms.
//!
//! Explicit-bucket points keep their bounds (scaled to ms), every bucket
//! count including +Inf, sum, min and max. Exponential points are converted
//! to explicit bounds exactly: bucket `i` of scale `s` is
//! `(base^i, base^(i+1)]` with `base = 2^(2^-s)`, so the bounds become
//! `[zero_threshold, base^offset, …, base^(offset+n)]` and the zero bucket
//! holds the values ≤ `zero_threshold`. Points with negative buckets, more
//! than [`MAX_EXPONENTIAL_BUCKETS`] buckets, or bounds that do not ascend are
//! not converted.

use coral_model::Histogram;
use coral_proto::otlp::metrics::v1::{ExponentialHistogramDataPoint, HistogramDataPoint};

use super::SkipReason;

/// Largest exponential histogram (positive buckets) that is converted.
pub const MAX_EXPONENTIAL_BUCKETS: usize = 320;

/// An explicit-bucket point in milliseconds (`scale` = ms per unit).
pub(crate) fn from_explicit(p: &HistogramDataPoint, scale: f64) -> Result<Histogram, SkipReason> {
    let bounds: Vec<f64> = p.explicit_bounds.iter().map(|b| b * scale).collect();
    let counts = if p.bucket_counts.is_empty() {
        // No buckets at all: everything is in the single +Inf bucket.
        if !bounds.is_empty() {
            return Err(SkipReason::BadHistogram(
                "bounds without bucket counts".into(),
            ));
        }
        vec![p.count]
    } else {
        p.bucket_counts.clone()
    };
    let h = Histogram::new(
        bounds,
        counts,
        p.sum.unwrap_or(0.0) * scale,
        p.min.map(|v| v * scale),
        p.max.map(|v| v * scale),
    )
    .map_err(|e| SkipReason::BadHistogram(e.to_string()))?;
    Ok(h)
}

/// An exponential point converted to explicit bounds in milliseconds.
pub(crate) fn from_exponential(
    p: &ExponentialHistogramDataPoint,
    scale: f64,
) -> Result<Histogram, SkipReason> {
    if p.negative
        .as_ref()
        .is_some_and(|n| n.bucket_counts.iter().any(|&c| c > 0))
    {
        return Err(SkipReason::Exponential("negative buckets".into()));
    }
    let (offset, buckets) = match &p.positive {
        Some(b) => (b.offset, b.bucket_counts.as_slice()),
        None => (0, &[][..]),
    };
    if buckets.len() > MAX_EXPONENTIAL_BUCKETS {
        return Err(SkipReason::Exponential(format!(
            "{} buckets",
            buckets.len()
        )));
    }
    let base = 2f64.powf(2f64.powi(-p.scale));
    let mut bounds = Vec::with_capacity(buckets.len() + 2);
    let mut counts = Vec::with_capacity(buckets.len() + 3);
    bounds.push(p.zero_threshold.max(0.0) * scale);
    counts.push(p.zero_count);
    if !buckets.is_empty() {
        bounds.push(base.powi(offset) * scale);
        counts.push(0);
        for (i, &c) in buckets.iter().enumerate() {
            bounds.push(base.powi(offset.saturating_add(i as i32 + 1)) * scale);
            counts.push(c);
        }
    }
    counts.push(0);
    Histogram::new(
        bounds,
        counts,
        p.sum.unwrap_or(0.0) * scale,
        p.min.map(|v| v * scale),
        p.max.map(|v| v * scale),
    )
    .map_err(|e| SkipReason::Exponential(e.to_string()))
}

/// `cur − prev` for two cumulative histograms of one series, or `None` when
/// `cur` cannot follow `prev` (a counter reset: a count went down).
///
/// When the bounds differ (an exponential histogram that changed scale),
/// `prev` is first re-bucketed into `cur`'s bounds, which is exact when
/// `cur`'s buckets are unions of `prev`'s. The interval's min (max) is known
/// only when the cumulative min went down (max went up), or when `prev` was
/// empty; otherwise it is left unknown.
pub(crate) fn delta(prev: &Histogram, cur: &Histogram) -> Option<Histogram> {
    if cur.count < prev.count {
        return None;
    }
    let rebucketed;
    let base = if prev.bounds_ms == cur.bounds_ms {
        prev
    } else {
        let mut h = Histogram {
            bounds_ms: cur.bounds_ms.clone(),
            counts: vec![0; cur.counts.len()],
            ..Histogram::default()
        };
        h.merge(prev);
        rebucketed = h;
        &rebucketed
    };
    let counts = cur
        .counts
        .iter()
        .zip(&base.counts)
        .map(|(c, p)| c.checked_sub(*p))
        .collect::<Option<Vec<u64>>>()?;
    let (min_ms, max_ms) = if prev.count == 0 {
        (cur.min_ms, cur.max_ms)
    } else {
        (
            cur.min_ms.filter(|c| prev.min_ms.is_some_and(|p| c < &p)),
            cur.max_ms.filter(|c| prev.max_ms.is_some_and(|p| c > &p)),
        )
    };
    Some(Histogram {
        bounds_ms: cur.bounds_ms.clone(),
        count: counts.iter().sum(),
        counts,
        sum_ms: (cur.sum_ms - prev.sum_ms).max(0.0),
        min_ms,
        max_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_proto::otlp::metrics::v1::exponential_histogram_data_point::Buckets;

    fn point(counts: &[u64], sum: f64, min: f64, max: f64) -> HistogramDataPoint {
        HistogramDataPoint {
            explicit_bounds: vec![0.0, 0.005, 0.01, 0.025],
            bucket_counts: counts.to_vec(),
            count: counts.iter().sum(),
            sum: Some(sum),
            min: Some(min),
            max: Some(max),
            ..Default::default()
        }
    }

    #[test]
    fn seconds_become_milliseconds_and_inf_is_kept() {
        let h = from_explicit(&point(&[0, 1, 0, 2, 1], 0.1, 0.004, 0.05), 1000.0).unwrap();
        assert_eq!(h.bounds_ms, vec![0.0, 5.0, 10.0, 25.0]);
        assert_eq!(h.counts, vec![0, 1, 0, 2, 1]);
        assert_eq!(h.count, 4);
        assert!((h.sum_ms - 100.0).abs() < 1e-9);
        assert_eq!((h.min_ms, h.max_ms), (Some(4.0), Some(50.0)));
        assert!(from_explicit(&point(&[1, 2], 0.0, 0.0, 0.0), 1000.0).is_err());
    }

    #[test]
    fn cumulative_differences() {
        let a = from_explicit(&point(&[0, 1, 0, 2, 1], 0.1, 0.004, 0.05), 1000.0).unwrap();
        let b = from_explicit(&point(&[0, 3, 0, 2, 1], 0.11, 0.001, 0.05), 1000.0).unwrap();
        let d = delta(&a, &b).unwrap();
        assert_eq!(d.counts, vec![0, 2, 0, 0, 0]);
        assert_eq!(d.count, 2);
        assert!((d.sum_ms - 10.0).abs() < 1e-9);
        assert_eq!((d.min_ms, d.max_ms), (Some(1.0), None));
        assert!(delta(&b, &a).is_none());
    }

    #[test]
    fn exponential_to_explicit() {
        let p = ExponentialHistogramDataPoint {
            scale: 0,
            zero_count: 1,
            positive: Some(Buckets {
                offset: -3,
                bucket_counts: vec![2, 0, 1],
            }),
            count: 4,
            sum: Some(0.5),
            ..Default::default()
        };
        let h = from_exponential(&p, 1000.0).unwrap();
        // base 2: (1/8, 1/4], (1/4, 1/2], (1/2, 1] seconds.
        assert_eq!(h.bounds_ms, vec![0.0, 125.0, 250.0, 500.0, 1000.0]);
        assert_eq!(h.counts, vec![1, 0, 2, 0, 1, 0]);
        assert_eq!(h.count, 4);
        let mut neg = p.clone();
        neg.negative = Some(Buckets {
            offset: 0,
            bucket_counts: vec![1],
        });
        assert!(from_exponential(&neg, 1000.0).is_err());
    }
}
