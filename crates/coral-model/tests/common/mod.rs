//! Test helpers: a small deterministic PRNG and value distributions.

#![allow(dead_code)]

/// xorshift64* PRNG: deterministic, no dependencies.
pub struct Rng(u64);

impl Rng {
    /// A generator from a non-zero seed.
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// The test distributions of durations in milliseconds.
#[derive(Debug, Clone, Copy)]
pub enum Dist {
    /// Uniform 1..1000 ms.
    Uniform,
    /// exp(N(3, 1.5²)) ms.
    LogNormal,
    /// Always 42.5 ms.
    Constant,
    /// 90% 5..10 ms, 9% 100..200 ms, 1% Pareto tail capped at 60 s.
    TwoModeLongTail,
    /// Log-uniform over 0.01 ms .. 60 s.
    WideRange,
}

impl Dist {
    /// All distributions.
    pub const ALL: [Dist; 5] = [
        Dist::Uniform,
        Dist::LogNormal,
        Dist::Constant,
        Dist::TwoModeLongTail,
        Dist::WideRange,
    ];

    /// One value of the distribution.
    pub fn sample(self, rng: &mut Rng) -> f64 {
        match self {
            Dist::Uniform => rng.uniform(1.0, 1000.0),
            Dist::LogNormal => (3.0 + 1.5 * rng.normal()).exp(),
            Dist::Constant => 42.5,
            Dist::TwoModeLongTail => {
                let u = rng.unit();
                if u < 0.90 {
                    rng.uniform(5.0, 10.0)
                } else if u < 0.99 {
                    rng.uniform(100.0, 200.0)
                } else {
                    (500.0 / rng.unit().max(1e-9).powf(1.0 / 1.2)).min(60_000.0)
                }
            }
            Dist::WideRange => rng.uniform(0.01f64.ln(), 60_000f64.ln()).exp(),
        }
    }

    /// `n` values from a seed.
    pub fn values(self, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        (0..n).map(|_| self.sample(&mut rng)).collect()
    }
}

/// Relative error of `estimate` against `exact` (absolute when exact is 0).
pub fn rel_err(estimate: f64, exact: f64) -> f64 {
    if exact == 0.0 {
        estimate.abs()
    } else {
        (estimate - exact).abs() / exact.abs()
    }
}
