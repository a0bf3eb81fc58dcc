//! [`DurationSketch`]: a mergeable, relative-error sketch of durations in
//! milliseconds (DDSketch with a logarithmic index mapping).
//!
//! The serialized form (`coral.common.v1.DurationSketch`) is part of Coral's
//! wire contract, which is why this is our own implementation rather than a
//! third-party crate:
//!
//! - `gamma = (1 + α) / (1 - α)` where α is the relative accuracy
//!   ([`DEFAULT_RELATIVE_ACCURACY`] = 1%).
//! - A value `v > MIN_INDEXABLE_MS` is counted in bin `i = ceil(ln(v) / ln(gamma))`;
//!   bin `i` covers `(gamma^(i-1), gamma^i]` and is reported as
//!   `2 * gamma^i / (gamma + 1)`, which is within α of every value of the bin.
//! - Values `≤ MIN_INDEXABLE_MS` (1 ns), including 0 and negative values, are
//!   counted in `zero_count` and reported as 0. NaN and +∞ are ignored.
//! - Bins are a dense `Vec<u64>` starting at bin `offset`. At most
//!   [`max_bins`](DurationSketch::max_bins) bins are kept ([`MAX_BINS`] = 4096
//!   at α ≥ 1%, proportionally more at finer accuracies so that the covered
//!   dynamic range stays the same): if more would be needed, the lowest bins
//!   are collapsed into the lowest kept bin (DDSketch's "collapsing lowest"
//!   store), so only the smallest values lose accuracy (they are
//!   overestimated). 4096 bins at α = 1% span a ratio of about e^82 between
//!   the smallest and the largest value, far beyond 1 ns .. 1 year, so real
//!   durations never collapse.
//!
//! Sketches with the same relative accuracy merge exactly (bin by bin), and
//! the result does not depend on the order of values or merges.

use prost::Message;

use crate::error::ModelError;

/// Default relative accuracy α of a sketch (1%).
pub const DEFAULT_RELATIVE_ACCURACY: f64 = 0.01;
/// Values at or below this many milliseconds (1 ns) count as zero.
pub const MIN_INDEXABLE_MS: f64 = 1e-6;
/// Maximum number of bins a sketch with α ≥ 1% keeps (see the module docs
/// on collapsing and [`DurationSketch::max_bins`]).
pub const MAX_BINS: usize = 4096;
/// Smallest accepted relative accuracy (0.01%), which bounds the bin cap to
/// about 410,000 bins.
pub const MIN_RELATIVE_ACCURACY: f64 = 1e-4;

/// A mergeable DDSketch of durations in milliseconds; see the [module docs](self).
///
/// Invariant: `bins` is empty (and `offset` is 0) or its first and last
/// elements are non-zero, so structurally equal sketches compare equal.
#[derive(Debug, Clone, PartialEq)]
pub struct DurationSketch {
    relative_accuracy: f64,
    gamma: f64,
    ln_gamma: f64,
    max_bins: usize,
    zero_count: u64,
    offset: i32,
    bins: Vec<u64>,
    count: u64,
}

impl Default for DurationSketch {
    fn default() -> Self {
        Self::new()
    }
}

impl DurationSketch {
    /// An empty sketch with the default relative accuracy (1%).
    pub fn new() -> Self {
        Self::with_accuracy_unchecked(DEFAULT_RELATIVE_ACCURACY)
    }

    /// An empty sketch with relative accuracy `alpha`, which must be in
    /// `[MIN_RELATIVE_ACCURACY, 1)`.
    pub fn with_relative_accuracy(alpha: f64) -> Result<Self, ModelError> {
        if !(MIN_RELATIVE_ACCURACY..1.0).contains(&alpha) {
            return Err(ModelError::InvalidSketch(format!(
                "relative accuracy {alpha} outside [{MIN_RELATIVE_ACCURACY}, 1)"
            )));
        }
        Ok(Self::with_accuracy_unchecked(alpha))
    }

    fn with_accuracy_unchecked(alpha: f64) -> Self {
        let gamma = (1.0 + alpha) / (1.0 - alpha);
        let ln_gamma = gamma.ln();
        let default_gamma = (1.0 + DEFAULT_RELATIVE_ACCURACY) / (1.0 - DEFAULT_RELATIVE_ACCURACY);
        let range = MAX_BINS as f64 * default_gamma.ln();
        Self {
            relative_accuracy: alpha,
            gamma,
            ln_gamma,
            max_bins: ((range / ln_gamma).ceil() as usize).max(MAX_BINS),
            zero_count: 0,
            offset: 0,
            bins: Vec::new(),
            count: 0,
        }
    }

    /// The relative accuracy α.
    pub fn relative_accuracy(&self) -> f64 {
        self.relative_accuracy
    }

    /// The maximum number of bins before the lowest bins collapse:
    /// [`MAX_BINS`] for α ≥ 1%, else enough bins to cover the same ratio
    /// (about e^82) between the smallest and the largest value.
    pub fn max_bins(&self) -> usize {
        self.max_bins
    }

    /// Number of values added (including merged sketches).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// True when no value was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Number of values counted as zero (`≤ MIN_INDEXABLE_MS`).
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// Index of the first bin and the bin counts (no zero bins at either end).
    pub fn bins(&self) -> (i32, &[u64]) {
        (self.offset, &self.bins)
    }

    /// Adds one value in milliseconds. Negative values count as 0; NaN and +∞
    /// are ignored.
    #[inline]
    pub fn add(&mut self, v_ms: f64) {
        self.add_n(v_ms, 1);
    }

    /// Adds `n` occurrences of a value in milliseconds (same rules as [`add`](Self::add)).
    #[inline]
    pub fn add_n(&mut self, v_ms: f64, n: u64) {
        if n == 0 || v_ms.is_nan() || v_ms == f64::INFINITY {
            return;
        }
        self.count = self.count.saturating_add(n);
        if v_ms <= MIN_INDEXABLE_MS {
            self.zero_count = self.zero_count.saturating_add(n);
            return;
        }
        let index = self.index_of(v_ms);
        let rel = i64::from(index) - i64::from(self.offset);
        if rel < 0 || rel >= self.bins.len() as i64 {
            self.ensure_range(index, index);
        }
        // After ensure_range, indexes below the (possibly collapsed) lowest
        // bin land in the lowest bin.
        let slot = (index.max(self.offset) - self.offset) as usize;
        self.bins[slot] = self.bins[slot].saturating_add(n);
    }

    /// Bin index of a value `v > MIN_INDEXABLE_MS`.
    #[inline]
    fn index_of(&self, v: f64) -> i32 {
        // With α ≥ MIN_RELATIVE_ACCURACY and finite v the result fits in i32
        // (|index| < 4e6); `as` saturates anyway.
        (v.ln() / self.ln_gamma).ceil() as i32
    }

    /// The value reported for bin `index`: `2 * gamma^index / (gamma + 1)`.
    fn value_of(&self, index: i32) -> f64 {
        2.0 * (f64::from(index) * self.ln_gamma).exp() / (self.gamma + 1.0)
    }

    /// Grows the store so that bins `lo..=hi` exist, collapsing the lowest bins
    /// when the range would exceed `max_bins`. Afterwards, indexes below
    /// `self.offset` must be counted in the lowest bin.
    fn ensure_range(&mut self, lo: i32, hi: i32) {
        let span = self.max_bins as i32 - 1;
        if self.bins.is_empty() {
            self.offset = lo.max(hi - span);
            self.bins = vec![0; (hi - self.offset + 1) as usize];
            return;
        }
        let cur_lo = self.offset;
        let cur_hi = self.offset + self.bins.len() as i32 - 1;
        let new_hi = hi.max(cur_hi);
        let new_lo = lo.min(cur_lo).max(new_hi - span);
        if new_hi > cur_hi {
            self.bins.resize((new_hi - cur_lo + 1) as usize, 0);
        }
        if new_lo > cur_lo {
            let k = (new_lo - cur_lo) as usize;
            let collapsed = self.bins[..k]
                .iter()
                .fold(0u64, |acc, &c| acc.saturating_add(c));
            self.bins.drain(..k);
            self.bins[0] = self.bins[0].saturating_add(collapsed);
        } else if new_lo < cur_lo {
            let k = (cur_lo - new_lo) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, k));
        }
        self.offset = new_lo;
    }

    /// Adds all values of `other` to this sketch. Fails, leaving `self`
    /// unchanged, when the relative accuracies differ.
    pub fn merge(&mut self, other: &DurationSketch) -> Result<(), ModelError> {
        if self.relative_accuracy != other.relative_accuracy {
            return Err(ModelError::IncompatibleSketches {
                left: self.relative_accuracy,
                right: other.relative_accuracy,
            });
        }
        self.count = self.count.saturating_add(other.count);
        self.zero_count = self.zero_count.saturating_add(other.zero_count);
        if other.bins.is_empty() {
            return Ok(());
        }
        let lo = other.offset;
        let hi = other.offset + other.bins.len() as i32 - 1;
        self.ensure_range(lo, hi);
        for (k, &c) in other.bins.iter().enumerate() {
            let index = (lo + k as i32).max(self.offset);
            let slot = (index - self.offset) as usize;
            self.bins[slot] = self.bins[slot].saturating_add(c);
        }
        Ok(())
    }

    /// The estimated `q`-quantile, `q` in `[0, 1]`, within relative error α of
    /// the exact order statistic of rank `floor(q * (count - 1))` (0-based).
    /// `None` when the sketch is empty or `q` is outside `[0, 1]` or NaN.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        // DDSketch convention: the first bin whose cumulative count exceeds
        // the rank. Cumulative counts are integers, so comparing with the
        // floor of the rank is exact.
        let rank = (q * (self.count - 1) as f64).floor() as u64;
        let mut cumulative = self.zero_count;
        if cumulative > rank {
            return Some(0.0);
        }
        for (k, &c) in self.bins.iter().enumerate() {
            cumulative = cumulative.saturating_add(c);
            if cumulative > rank {
                return Some(self.value_of(self.offset + k as i32));
            }
        }
        // Unreachable for a consistent sketch (count = zero_count + Σ bins).
        let last = self.offset + self.bins.len().saturating_sub(1) as i32;
        Some(if self.bins.is_empty() {
            0.0
        } else {
            self.value_of(last)
        })
    }

    /// Cumulative counts at each upper bound of `bounds_ms` (ascending), as a
    /// Prometheus histogram's `le` buckets: a value counts below a bound when
    /// its bin's reported value is at most the bound, so each count is exact
    /// for values farther than α from the bound.
    pub fn cumulative_counts(&self, bounds_ms: &[f64]) -> Vec<u64> {
        let mut counts = Vec::with_capacity(bounds_ms.len());
        let mut cumulative = self.zero_count;
        let mut bins = self.bins.iter().enumerate().peekable();
        for &bound in bounds_ms {
            while let Some(&(k, &c)) = bins.peek() {
                if self.value_of(self.offset + k as i32) > bound {
                    break;
                }
                cumulative = cumulative.saturating_add(c);
                bins.next();
            }
            counts.push(cumulative);
        }
        counts
    }

    /// The protobuf form; zero bins at both ends are never stored.
    pub fn to_proto(&self) -> coral_proto::common::DurationSketch {
        coral_proto::common::DurationSketch {
            relative_accuracy: self.relative_accuracy,
            zero_count: self.zero_count,
            offset: self.offset,
            bin_counts: self.bins.clone(),
            min_indexable_ms: MIN_INDEXABLE_MS,
        }
    }

    /// Validates and converts the protobuf form: the relative accuracy must be
    /// in `[MIN_RELATIVE_ACCURACY, 1)`, `min_indexable_ms` must be 1e-6 (or
    /// unset), at most [`max_bins`](Self::max_bins) bins, bin indexes within the range reachable
    /// by finite values above `MIN_INDEXABLE_MS`, and the total count must fit
    /// in a `u64`. Zero bins at both ends are trimmed.
    pub fn from_proto(p: &coral_proto::common::DurationSketch) -> Result<Self, ModelError> {
        let mut sketch = Self::with_relative_accuracy(p.relative_accuracy)?;
        let mi = p.min_indexable_ms;
        let min_indexable_ok =
            mi == 0.0 || (mi - MIN_INDEXABLE_MS).abs() <= 1e-9 * MIN_INDEXABLE_MS;
        if !min_indexable_ok {
            return Err(ModelError::InvalidSketch(format!(
                "min_indexable_ms {mi} != {MIN_INDEXABLE_MS}"
            )));
        }
        if p.bin_counts.len() > sketch.max_bins {
            return Err(ModelError::InvalidSketch(format!(
                "{} bins exceed the maximum of {}",
                p.bin_counts.len(),
                sketch.max_bins
            )));
        }
        let first = p.bin_counts.iter().position(|&c| c != 0);
        let last = p.bin_counts.iter().rposition(|&c| c != 0);
        let mut count = p.zero_count;
        if let (Some(first), Some(last)) = (first, last) {
            let lo = i64::from(p.offset) + first as i64;
            let hi = i64::from(p.offset) + last as i64;
            let min_index = (MIN_INDEXABLE_MS.ln() / sketch.ln_gamma).floor() as i64;
            let max_index = (f64::MAX.ln() / sketch.ln_gamma).ceil() as i64 + 1;
            if lo < min_index || hi > max_index {
                return Err(ModelError::InvalidSketch(format!(
                    "bins {lo}..={hi} outside the valid range {min_index}..={max_index}"
                )));
            }
            let bins = &p.bin_counts[first..=last];
            for &c in bins {
                count = count
                    .checked_add(c)
                    .ok_or_else(|| ModelError::InvalidSketch("count overflows u64".into()))?;
            }
            sketch.offset = lo as i32;
            sketch.bins = bins.to_vec();
        }
        sketch.zero_count = p.zero_count;
        sketch.count = count;
        Ok(sketch)
    }

    /// Protobuf encoding of [`to_proto`](Self::to_proto).
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    /// Decodes and validates bytes produced by [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Self, ModelError> {
        let p = coral_proto::common::DurationSketch::decode(bytes)?;
        Self::from_proto(&p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_follow_the_documented_mapping() {
        let gamma: f64 = 1.01 / 0.99;
        let mut s = DurationSketch::new();
        s.add(1.0); // ln(1) = 0 -> bin 0
        assert_eq!(s.bins(), (0, &[1u64][..]));
        s.add(gamma * 1.000_001); // just above gamma^1 -> bin 2
        assert_eq!(s.bins(), (0, &[1u64, 0, 1][..]));
        s.add(1.0 / gamma / 1.000_001); // just below gamma^-1 -> bin -1
        assert_eq!(s.bins(), (-1, &[1u64, 1, 0, 1][..]));
        s.add(0.0);
        s.add(-3.0);
        s.add(MIN_INDEXABLE_MS);
        s.add(f64::NAN);
        s.add(f64::INFINITY);
        assert_eq!(s.zero_count(), 3);
        assert_eq!(s.count(), 6);
        let v = s.value_of(2);
        assert!((v - 2.0 * gamma * gamma / (gamma + 1.0)).abs() < 1e-12);
    }

    #[test]
    fn collapses_lowest_bins_beyond_max_bins() {
        let mut s = DurationSketch::new();
        s.add(1e-5);
        s.add(1.0);
        let (lo, bins) = s.bins();
        let low_index = lo;
        assert_eq!(bins.len() as i32, 1 - low_index);
        // A huge value forces the range past MAX_BINS.
        let huge = 1e300;
        s.add(huge);
        let (lo, bins) = s.bins();
        assert_eq!(bins.len(), MAX_BINS);
        assert_eq!(bins[0], 2, "both small values collapse into the lowest bin");
        assert_eq!(*bins.last().unwrap(), 1);
        assert_eq!(lo + MAX_BINS as i32 - 1, s.index_of(huge));
        // A value below the collapsed range lands in the lowest bin.
        s.add(1e-3);
        assert_eq!(s.bins().1[0], 3);
        assert_eq!(s.count(), 4);
    }

    #[test]
    fn collapse_is_order_independent() {
        let values = [1e-5, 1.0, 1e300, 3.0, 1e200, 1e-3];
        let mut a = DurationSketch::new();
        values.iter().for_each(|&v| a.add(v));
        let mut b = DurationSketch::new();
        values.iter().rev().for_each(|&v| b.add(v));
        assert_eq!(a, b);
        let mut c = DurationSketch::new();
        let mut d = DurationSketch::new();
        values[..3].iter().for_each(|&v| c.add(v));
        values[3..].iter().for_each(|&v| d.add(v));
        d.merge(&c).unwrap();
        assert_eq!(a, d);
    }

    #[test]
    fn cumulative_counts_follow_prometheus_le_buckets() {
        let mut s = DurationSketch::new();
        for v in [0.0, 3.0, 7.0, 7.0, 40.0, 900.0, 20_000.0] {
            s.add(v);
        }
        let le = [5.0, 10.0, 50.0, 1_000.0, 10_000.0];
        assert_eq!(s.cumulative_counts(&le), vec![2, 4, 5, 6, 6]);
        assert_eq!(DurationSketch::new().cumulative_counts(&le), vec![0; 5]);
    }
}
