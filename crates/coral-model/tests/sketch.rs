//! Property-style tests of `DurationSketch`: accuracy, exact merges,
//! serialization and validation.

mod common;

use common::{Dist, Rng, rel_err};
use coral_model::{DurationSketch, MAX_BINS, MIN_INDEXABLE_MS, ModelError};

const QUANTILES: [f64; 9] = [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0];
const SIZES: [usize; 5] = [1, 2, 10, 1000, 100_000];
/// α plus a little floating-point slack at bin boundaries.
const TOLERANCE: f64 = 0.01 + 1e-9;

fn sketch_of(values: &[f64]) -> DurationSketch {
    let mut s = DurationSketch::new();
    values.iter().for_each(|&v| s.add(v));
    s
}

#[test]
fn quantiles_are_within_one_percent_of_exact_order_statistics() {
    let mut worst = 0.0f64;
    for dist in Dist::ALL {
        for (i, &n) in SIZES.iter().enumerate() {
            let values = dist.values(n, 0x5eed + i as u64);
            let sketch = sketch_of(&values);
            assert_eq!(sketch.count(), n as u64);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in QUANTILES {
                let rank = (q * (n - 1) as f64).floor() as usize;
                let exact = sorted[rank];
                let estimate = sketch.quantile(q).unwrap();
                let err = rel_err(estimate, exact);
                worst = worst.max(err);
                assert!(
                    err <= TOLERANCE,
                    "{dist:?} n={n} q={q}: estimate {estimate} exact {exact} error {err}"
                );
            }
        }
    }
    eprintln!("max relative error: {worst:.6}");
}

#[test]
fn hand_computed_small_cases() {
    let s = sketch_of(&[1.0, 2.0, 3.0, 4.0, 5.0]);
    let close = |v: Option<f64>, exact: f64| rel_err(v.unwrap(), exact) <= TOLERANCE;
    assert!(close(s.quantile(0.5), 3.0));
    assert!(close(s.quantile(0.0), 1.0));
    assert!(close(s.quantile(1.0), 5.0));
    assert!(close(s.quantile(0.25), 2.0));
    // Rank floor(0.5 * 3) = 1: the second value.
    let s = sketch_of(&[1.0, 2.0, 3.0, 4.0]);
    assert!(close(s.quantile(0.5), 2.0));
    assert!(close(s.quantile(0.99), 3.0));
    // Zeros report 0; the bin value of 1.0 is 2/(gamma+1) = 0.99.
    let s = sketch_of(&[0.0, 0.0, 1.0]);
    assert_eq!(s.quantile(0.5), Some(0.0));
    assert!((s.quantile(1.0).unwrap() - 0.99).abs() < 1e-12);
}

#[test]
fn empty_and_out_of_range_quantiles() {
    let mut s = DurationSketch::new();
    assert!(s.is_empty());
    assert_eq!(s.quantile(0.5), None);
    s.add(10.0);
    assert!(!s.is_empty());
    assert_eq!(s.quantile(-0.1), None);
    assert_eq!(s.quantile(1.1), None);
    assert_eq!(s.quantile(f64::NAN), None);
    s.add_n(20.0, 0);
    assert_eq!(s.count(), 1);
    s.add_n(20.0, 9);
    assert_eq!(s.count(), 10);
    assert!(rel_err(s.quantile(0.5).unwrap(), 20.0) <= TOLERANCE);
}

#[test]
fn merging_split_streams_equals_the_whole_stream() {
    for dist in Dist::ALL {
        let values = dist.values(20_000, 99);
        let whole = sketch_of(&values);
        let mut rng = Rng::new(7);
        let mut parts: Vec<Vec<f64>> = vec![Vec::new(); 7];
        for &v in &values {
            parts[rng.below(7) as usize].push(v);
        }
        let sketches: Vec<DurationSketch> = parts.iter().map(|p| sketch_of(p)).collect();
        let mut forward = DurationSketch::new();
        for s in &sketches {
            forward.merge(s).unwrap();
        }
        assert_eq!(forward, whole, "{dist:?}");
        let mut backward = DurationSketch::new();
        for s in sketches.iter().rev() {
            backward.merge(s).unwrap();
        }
        assert_eq!(backward, whole, "{dist:?}");
        // Merging through the wire form is exact too.
        let mut wire = DurationSketch::decode(&sketches[0].encode()).unwrap();
        for s in &sketches[1..] {
            wire.merge(&DurationSketch::decode(&s.encode()).unwrap())
                .unwrap();
        }
        assert_eq!(wire, whole, "{dist:?}");
    }
}

#[test]
fn merge_rejects_different_accuracies_without_changes() {
    let mut a = sketch_of(&[1.0, 2.0]);
    let before = a.clone();
    let mut b = DurationSketch::with_relative_accuracy(0.02).unwrap();
    b.add(3.0);
    let err = a.merge(&b).unwrap_err();
    assert!(
        matches!(err, ModelError::IncompatibleSketches { left, right } if left == 0.01 && right == 0.02)
    );
    assert_eq!(a, before);
    a.merge(&DurationSketch::new()).unwrap();
    assert_eq!(a, before);
}

#[test]
fn custom_accuracy_holds() {
    for alpha in [0.0001, 0.001, 0.05] {
        let mut s = DurationSketch::with_relative_accuracy(alpha).unwrap();
        let values = Dist::WideRange.values(5000, 3);
        values.iter().for_each(|&v| s.add(v));
        let mut sorted = values.clone();
        sorted.sort_by(f64::total_cmp);
        for q in QUANTILES {
            let exact = sorted[(q * 4999.0).floor() as usize];
            let est = s.quantile(q).unwrap();
            let err = rel_err(est, exact);
            assert!(
                err <= alpha + 1e-9,
                "alpha {alpha} q {q}: {est} vs {exact}: {err}"
            );
        }
        assert_eq!(DurationSketch::decode(&s.encode()).unwrap(), s);
    }
    for bad in [0.0, -0.1, 1.0, 2.0, f64::NAN, 1e-5] {
        assert!(
            DurationSketch::with_relative_accuracy(bad).is_err(),
            "{bad}"
        );
    }
}

#[test]
fn encode_decode_round_trip() {
    let empty = DurationSketch::new();
    assert_eq!(DurationSketch::decode(&empty.encode()).unwrap(), empty);
    for dist in Dist::ALL {
        let mut s = sketch_of(&dist.values(1000, 11));
        s.add(0.0);
        let back = DurationSketch::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.quantile(0.5), s.quantile(0.5));
    }
}

#[test]
fn wire_form_is_trimmed_and_documented() {
    let s = sketch_of(&[1.0, 1.0, 0.0]);
    let p = s.to_proto();
    assert_eq!(p.relative_accuracy, 0.01);
    assert_eq!(p.zero_count, 1);
    assert_eq!(p.offset, 0);
    assert_eq!(p.bin_counts, vec![2]);
    assert_eq!(p.min_indexable_ms, MIN_INDEXABLE_MS);
    // Untrimmed input is accepted and trimmed.
    let mut p = p;
    p.offset = 5;
    p.bin_counts = vec![0, 0, 3, 0, 4, 0];
    p.min_indexable_ms = 0.0;
    let s = DurationSketch::from_proto(&p).unwrap();
    assert_eq!(s.bins(), (7, &[3u64, 0, 4][..]));
    assert_eq!(s.count(), 8);
    p.bin_counts = vec![0, 0];
    let s = DurationSketch::from_proto(&p).unwrap();
    assert_eq!(s.bins(), (0, &[][..]));
    assert_eq!(s, {
        let mut e = DurationSketch::new();
        e.add(0.0);
        e
    });
}

#[test]
fn invalid_protos_are_rejected() {
    let good = sketch_of(&[1.0, 5.0]).to_proto();
    let mut cases = Vec::new();
    for ra in [0.0, -0.01, 1.0, f64::NAN, f64::INFINITY] {
        cases.push(coral_proto::common::DurationSketch {
            relative_accuracy: ra,
            ..good.clone()
        });
    }
    cases.push(coral_proto::common::DurationSketch {
        min_indexable_ms: 1e-3,
        ..good.clone()
    });
    cases.push(coral_proto::common::DurationSketch {
        bin_counts: vec![1; MAX_BINS + 1],
        ..good.clone()
    });
    cases.push(coral_proto::common::DurationSketch {
        offset: i32::MAX,
        ..good.clone()
    });
    cases.push(coral_proto::common::DurationSketch {
        offset: i32::MIN,
        ..good.clone()
    });
    cases.push(coral_proto::common::DurationSketch {
        offset: -1000,
        ..good.clone()
    });
    cases.push(coral_proto::common::DurationSketch {
        bin_counts: vec![u64::MAX, 1],
        ..good.clone()
    });
    cases.push(coral_proto::common::DurationSketch {
        zero_count: u64::MAX,
        ..good.clone()
    });
    for (i, p) in cases.iter().enumerate() {
        assert!(
            matches!(
                DurationSketch::from_proto(p),
                Err(ModelError::InvalidSketch(_))
            ),
            "case {i}: {p:?}"
        );
    }
}

#[test]
fn decoding_garbage_never_panics() {
    assert!(matches!(
        DurationSketch::decode(&[0xff, 0xff, 0xff]),
        Err(ModelError::Decode(_))
    ));
    // An empty message has relative_accuracy 0: invalid.
    assert!(DurationSketch::decode(&[]).is_err());
    let valid = sketch_of(&Dist::LogNormal.values(100, 5)).encode();
    let mut rng = Rng::new(42);
    let mut ok = 0;
    for i in 0..20_000 {
        let bytes: Vec<u8> = if i % 2 == 0 {
            let len = rng.below(64) as usize;
            (0..len).map(|_| rng.next_u64() as u8).collect()
        } else {
            // Corrupt a few bytes of a valid encoding.
            let mut b = valid.clone();
            for _ in 0..=rng.below(3) {
                let at = rng.below(b.len() as u64) as usize;
                b[at] = rng.next_u64() as u8;
            }
            b
        };
        if let Ok(s) = DurationSketch::decode(&bytes) {
            ok += 1;
            let _ = s.quantile(0.5);
            let mut m = DurationSketch::new();
            let _ = m.merge(&s);
            assert_eq!(DurationSketch::decode(&s.encode()).unwrap(), s);
        }
    }
    eprintln!("{ok} of 20000 garbage inputs decoded to a valid sketch");
}
