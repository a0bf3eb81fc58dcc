//! Benchmarks of the hot paths: `Stats::record`, merging an hour of
//! one-minute sketches, sketch encoding/decoding and quantiles.

use std::hint::black_box;

use coral_model::{DurationSketch, Stats};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// xorshift64* PRNG.
struct Rng(u64);

impl Rng {
    fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Log-normal-ish latency in milliseconds: exp(N(3, 1.5²)).
    fn latency(&mut self) -> f64 {
        let u1 = self.unit().max(1e-300);
        let u2 = self.unit();
        (3.0 + 1.5 * (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()).exp()
    }
}

fn minute_sketches(n: usize, per_minute: usize) -> Vec<DurationSketch> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    (0..n)
        .map(|_| {
            let mut s = DurationSketch::new();
            (0..per_minute).for_each(|_| s.add(rng.latency()));
            s
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    const N: usize = 10_000;
    let mut rng = Rng(42);
    let spans: Vec<(f64, bool, String)> = (0..N)
        .map(|i| (rng.latency(), rng.unit() < 0.01, format!("{i:032x}")))
        .collect();
    let mut group = c.benchmark_group("stats");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("record_10k", |b| {
        b.iter(|| {
            let mut stats = Stats::new();
            for (d, err, trace) in &spans {
                stats.record(*d, *err, trace);
            }
            black_box(stats.total)
        })
    });
    group.finish();

    let minutes = minute_sketches(60, 1000);
    c.bench_function("sketch/merge_60_minutes", |b| {
        b.iter(|| {
            let mut hour = DurationSketch::new();
            for m in &minutes {
                hour.merge(black_box(m)).unwrap();
            }
            black_box(hour.count())
        })
    });

    let mut hour = DurationSketch::new();
    minutes.iter().for_each(|m| hour.merge(m).unwrap());
    let bytes = hour.encode();
    eprintln!(
        "hour sketch: {} bins, {} encoded bytes",
        hour.bins().1.len(),
        bytes.len()
    );
    c.bench_function("sketch/encode", |b| b.iter(|| black_box(&hour).encode()));
    c.bench_function("sketch/decode", |b| {
        b.iter(|| DurationSketch::decode(black_box(&bytes)).unwrap())
    });
    c.bench_function("sketch/quantile_p99", |b| {
        b.iter(|| black_box(&hour).quantile(black_box(0.99)))
    });
    let mut stats = Stats::new();
    spans.iter().for_each(|(d, e, t)| stats.record(*d, *e, t));
    c.bench_function("stats/percentiles", |b| {
        b.iter(|| black_box(&stats).percentiles())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
