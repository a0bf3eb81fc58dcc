//! Robust statistics against a baseline: median, MAD, robust z-scores and
//! the rounding every published number goes through (so a claim's numbers
//! are exactly the numbers in its evidence rows).

/// The median of `values` (0 when empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A baseline's center and robust spread (1.4826 × MAD, floored).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Robust {
    /// Median of the baseline values.
    pub center: f64,
    /// Robust standard deviation, never below `floor`.
    pub spread: f64,
}

impl Robust {
    /// Fits the baseline `values`; `floor` bounds the spread from below so a
    /// flat baseline does not make every wiggle significant.
    pub(crate) fn fit(values: &[f64], floor: f64) -> Robust {
        let center = median(values);
        let deviations: Vec<f64> = values.iter().map(|v| (v - center).abs()).collect();
        let spread = (1.4826 * median(&deviations)).max(floor).max(1e-9);
        Robust { center, spread }
    }

    /// The robust z-score of `x`.
    pub(crate) fn z(&self, x: f64) -> f64 {
        (x - self.center) / self.spread
    }
}

/// Mean and variance accumulator (for Welch-style z of two means).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Moments {
    /// Observations.
    pub n: f64,
    /// Σx.
    pub sum: f64,
    /// Σx².
    pub sum_sq: f64,
}

impl Moments {
    /// Adds one observation.
    pub(crate) fn add(&mut self, x: f64) {
        self.n += 1.0;
        self.sum += x;
        self.sum_sq += x * x;
    }

    /// Mean over `n` observations where the missing ones are 0.
    pub(crate) fn mean_over(&self, n: f64) -> f64 {
        if n <= 0.0 { 0.0 } else { self.sum / n }
    }

    /// Variance over `n` observations where the missing ones are 0.
    pub(crate) fn var_over(&self, n: f64) -> f64 {
        if n <= 1.0 {
            return 0.0;
        }
        let mean = self.sum / n;
        ((self.sum_sq - n * mean * mean) / (n - 1.0)).max(0.0)
    }
}

/// z of the difference of two means (each over `n` observations, missing
/// ones 0); large when the difference is unlikely to be sampling noise.
pub(crate) fn welch_z(base: &Moments, n_base: f64, inc: &Moments, n_inc: f64) -> f64 {
    if n_base < 2.0 || n_inc < 2.0 {
        return 0.0;
    }
    let diff = inc.mean_over(n_inc) - base.mean_over(n_base);
    let se = (base.var_over(n_base) / n_base + inc.var_over(n_inc) / n_inc).sqrt();
    diff / se.max(1e-9)
}

/// Rounds to one decimal (every published number).
pub(crate) fn r1(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10.0).round() / 10.0
    } else {
        0.0
    }
}

/// Rounds to four decimals (rates, fractions).
pub(crate) fn r4(x: f64) -> f64 {
    if x.is_finite() {
        (x * 10_000.0).round() / 10_000.0
    } else {
        0.0
    }
}

/// Relative change in percent, rounded to one decimal (0 when the base is 0
/// and the value too; 100 × value when only the base is 0).
pub(crate) fn change_pct(base: f64, value: f64) -> f64 {
    if base.abs() < 1e-12 {
        return if value.abs() < 1e-12 { 0.0 } else { 100.0 };
    }
    r1((value - base) / base * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_mad() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let r = Robust::fit(&[10.0, 11.0, 9.0, 10.0, 50.0], 0.1);
        assert_eq!(r.center, 10.0);
        assert!((r.spread - 1.4826).abs() < 1e-9);
        assert!(r.z(20.0) > 6.0);
    }

    #[test]
    fn welch_sees_a_shift_not_noise() {
        let mut a = Moments::default();
        let mut b = Moments::default();
        for i in 0..100 {
            a.add(10.0 + (i % 5) as f64);
            b.add(30.0 + (i % 5) as f64);
        }
        assert!(welch_z(&a, 100.0, &b, 100.0) > 10.0);
        assert!(welch_z(&a, 100.0, &a, 100.0).abs() < 1e-6);
    }

    #[test]
    fn rounding_and_changes() {
        assert_eq!(r1(12.345), 12.3);
        assert_eq!(change_pct(100.0, 150.0), 50.0);
        assert_eq!(change_pct(0.0, 0.0), 0.0);
    }
}
