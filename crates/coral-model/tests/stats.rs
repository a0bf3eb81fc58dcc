//! Tests of `Stats` and `Samples`.

mod common;

use common::{Dist, Rng, rel_err};
use coral_model::{DurationSketch, MAX_SAMPLES, ModelError, Samples, Stats};

fn tid(i: u64) -> String {
    format!("{i:032x}")
}

#[test]
fn record_accumulates_red_stats() {
    let mut s = Stats::new();
    assert_eq!(s.percentiles(), (0.0, 0.0, 0.0));
    assert_eq!(s.quantile(0.5), None);
    assert_eq!(s.mean_ms(), 0.0);
    assert_eq!(s.min_ms_or_zero(), 0.0);
    for (i, d) in [3.0, 1.0, 2.0, 5.0, 4.0].into_iter().enumerate() {
        s.record(d, i == 1, &tid(i as u64));
    }
    assert_eq!((s.total, s.errors), (5, 1));
    assert_eq!((s.min_ms, s.max_ms, s.sum_ms), (1.0, 5.0, 15.0));
    assert_eq!(s.mean_ms(), 3.0);
    assert_eq!(s.sketch.count(), 5);
    let (p50, p95, p99) = s.percentiles();
    assert!(rel_err(p50, 3.0) <= 0.01 && rel_err(p95, 4.0) <= 0.01 && rel_err(p99, 4.0) <= 0.01);
    // Quantiles are clamped to the exact extremes.
    assert_eq!(s.quantile(0.0), Some(1.0));
    assert_eq!(s.quantile(1.0), Some(5.0));
    // The error first, then the slowest.
    assert_eq!(s.samples.trace_ids(), [1, 3, 4, 0, 2].map(tid));
}

#[test]
fn odd_durations_count_as_zero() {
    let mut s = Stats::new();
    s.record(-1.0, false, "");
    s.record(f64::NAN, false, "");
    s.record(f64::INFINITY, true, "");
    assert_eq!((s.total, s.errors, s.sketch.count()), (3, 1, 3));
    assert_eq!((s.min_ms, s.max_ms, s.sum_ms), (0.0, 0.0, 0.0));
    assert!(s.samples.is_empty(), "empty trace ids are not sampled");
}

#[test]
fn single_value_percentiles_are_exact() {
    let mut s = Stats::new();
    s.record(42.0, false, &tid(1));
    assert_eq!(s.percentiles(), (42.0, 42.0, 42.0));
}

#[test]
fn merge_equals_recording_everything() {
    let values = Dist::TwoModeLongTail.values(10_000, 8);
    let mut rng = Rng::new(3);
    let mut whole = Stats::new();
    let mut parts = vec![Stats::new(); 4];
    for (i, &v) in values.iter().enumerate() {
        // Integer-valued durations keep the sums exact in any order.
        let v = v.round();
        let err = rng.below(50) == 0;
        whole.record(v, err, &tid(i as u64));
        parts[rng.below(4) as usize].record(v, err, &tid(i as u64));
    }
    let mut merged = Stats::new();
    for p in &parts {
        merged.merge(p).unwrap();
    }
    assert_eq!(merged, whole);
    let mut reversed = Stats::new();
    for p in parts.iter().rev() {
        reversed.merge(p).unwrap();
    }
    assert_eq!(reversed, whole);
}

#[test]
fn merge_rejects_incompatible_sketches_unchanged() {
    let mut a = Stats::new();
    a.record(1.0, false, &tid(1));
    let before = a.clone();
    let mut b = Stats::with_sketch(DurationSketch::with_relative_accuracy(0.05).unwrap());
    b.record(2.0, true, &tid(2));
    assert!(matches!(
        a.merge(&b),
        Err(ModelError::IncompatibleSketches { .. })
    ));
    assert_eq!(a, before);
}

#[test]
fn samples_rank_errors_first_then_slowest() {
    let mut s = Samples::new();
    s.offer(&tid(1), 10.0, false);
    s.offer(&tid(2), 1.0, true);
    s.offer(&tid(3), 20.0, false);
    s.offer(&tid(4), 5.0, true);
    s.offer(&tid(5), 15.0, false);
    s.offer(&tid(6), 12.0, false);
    s.offer(&tid(7), 11.0, false); // worse than all kept: dropped
    assert_eq!(s.len(), MAX_SAMPLES);
    assert_eq!(s.trace_ids(), [4, 2, 3, 5, 6].map(tid));
    let errors: Vec<bool> = s.iter().map(|x| x.is_error).collect();
    assert_eq!(errors, [true, true, false, false, false]);
}

#[test]
fn a_trace_is_kept_once_with_its_best_span() {
    let mut s = Samples::new();
    s.offer(&tid(1), 10.0, false);
    s.offer(&tid(1), 5.0, false); // worse: ignored
    assert_eq!(s.len(), 1);
    assert_eq!(s.iter().next().unwrap().duration_ms, 10.0);
    s.offer(&tid(2), 7.0, false);
    s.offer(&tid(1), 3.0, true); // an error ranks better
    assert_eq!(s.len(), 2);
    let first = s.iter().next().unwrap();
    assert_eq!(
        (first.trace_id.as_str(), first.duration_ms, first.is_error),
        (tid(1).as_str(), 3.0, true)
    );
    assert_eq!(s.trace_ids(), [tid(1), tid(2)]);
}

/// Reference: the best span per trace, then the best `MAX_SAMPLES` traces.
fn brute_force(offers: &[(u64, f64, bool)]) -> Vec<String> {
    let mut best: Vec<(u64, f64, bool)> = Vec::new();
    for &(t, d, e) in offers {
        match best.iter_mut().find(|b| b.0 == t) {
            Some(b) if (e, d) > (b.2, b.1) => *b = (t, d, e),
            Some(_) => {}
            None => best.push((t, d, e)),
        }
    }
    // Errors, then slowest, then the smaller trace id.
    best.sort_by(|a, b| {
        (b.2, b.1)
            .partial_cmp(&(a.2, a.1))
            .unwrap()
            .then(a.0.cmp(&b.0))
    });
    best.iter().take(MAX_SAMPLES).map(|b| tid(b.0)).collect()
}

#[test]
fn samples_match_a_brute_force_reference_and_merge_exactly() {
    let mut rng = Rng::new(17);
    for round in 0..300 {
        let n = 1 + rng.below(60) as usize;
        let pool = 1 + rng.below(20);
        let offers: Vec<(u64, f64, bool)> = (0..n)
            .map(|_| (rng.below(pool), rng.below(8) as f64, rng.below(4) == 0))
            .collect();
        let mut whole = Samples::new();
        let mut left = Samples::new();
        let mut right = Samples::new();
        for (i, &(t, d, e)) in offers.iter().enumerate() {
            whole.offer(&tid(t), d, e);
            if i % 3 == 0 { &mut left } else { &mut right }.offer(&tid(t), d, e);
        }
        let expected = brute_force(&offers);
        assert_eq!(whole.trace_ids(), expected, "round {round}");
        left.merge(&right);
        assert_eq!(left, whole, "round {round}");
        assert_eq!(Samples::from_proto(&whole.to_proto()), whole);
    }
}
