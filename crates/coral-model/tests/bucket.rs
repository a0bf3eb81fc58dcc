//! Tests of bucket keys, span kinds, bucket merges and the protobuf form.

mod common;

use common::Rng;
use coral_model::{
    Bucket, BucketKey, DurationSketch, ModelError, OVERFLOW_OPERATION, SpanKind, Stats, minute_of,
};
use coral_proto::common::TelemetryBucket;

fn key(service: &str) -> BucketKey {
    BucketKey {
        minute: 1_700_000_040,
        service: service.into(),
        kind: SpanKind::Server,
    }
}

/// A bucket over `n` spans spread over a few operations (integer durations).
fn bucket(seed: u64, n: usize) -> Bucket {
    let mut rng = Rng::new(seed);
    let mut b = Bucket::new(key("checkout"));
    for i in 0..n {
        let op = ["GET /cart", "POST /pay", OVERFLOW_OPERATION][rng.below(3) as usize];
        let d = (1 + rng.below(500)) as f64;
        let err = rng.below(20) == 0;
        let trace = format!("{:032x}", seed * 1_000_000 + i as u64);
        b.stats.record(d, err, &trace);
        let i = match b.operations.iter().position(|(n, _)| n == op) {
            Some(i) => i,
            None => {
                b.operations.push((op.to_owned(), Stats::new()));
                b.operations.len() - 1
            }
        };
        b.operations[i].1.record(d, err, &trace);
    }
    b
}

#[test]
fn minutes_are_aligned() {
    assert_eq!(minute_of(0), 0);
    assert_eq!(minute_of(59_999_999_999), 0);
    assert_eq!(minute_of(60_000_000_000), 60);
    assert_eq!(minute_of(1_700_000_099_123_456_789), 1_700_000_040);
    assert_eq!(minute_of(u64::MAX) % 60, 0);
}

#[test]
fn span_kinds_round_trip() {
    for (n, kind) in SpanKind::ALL.into_iter().enumerate() {
        assert_eq!(SpanKind::from_otlp(n as i32), kind);
        assert_eq!(kind.as_str().parse::<SpanKind>().unwrap(), kind);
        assert_eq!(kind.to_string(), kind.as_str());
    }
    assert_eq!(SpanKind::from_otlp(99), SpanKind::Unspecified);
    assert_eq!(
        "SPAN_KIND_CLIENT".parse::<SpanKind>().unwrap(),
        SpanKind::Client
    );
    assert_eq!("server".parse::<SpanKind>().unwrap(), SpanKind::Server);
    assert!(matches!(
        "bogus".parse::<SpanKind>(),
        Err(ModelError::UnknownSpanKind(_))
    ));
}

#[test]
fn proto_round_trip() {
    let b = bucket(1, 2000);
    let p = b.to_proto("agent-1", 77);
    assert_eq!(
        (p.agent_id.as_str(), p.seq_id, p.bucket_time),
        ("agent-1", 77, 1_700_000_040)
    );
    assert_eq!(
        (p.service_name.as_str(), p.span_kind.as_str()),
        ("checkout", "SERVER")
    );
    assert_eq!(p.total_spans, 2000);
    assert_eq!(p.error_count as u64, b.stats.errors);
    assert_eq!((p.p50_ms, p.p95_ms, p.p99_ms), b.stats.percentiles());
    assert_eq!(
        (p.min_ms, p.max_ms, p.sum_ms),
        (b.stats.min_ms, b.stats.max_ms, b.stats.sum_ms)
    );
    assert_eq!(p.sample_traces, b.stats.samples.trace_ids());
    assert_eq!(p.samples.len(), 5);
    assert!(p.samples[0].is_error);
    assert_eq!(p.operations.len(), 3);
    assert_eq!(
        p.operations.iter().map(|o| o.total_spans).sum::<i64>(),
        2000
    );
    let back = Bucket::from_proto(&p).unwrap();
    assert_eq!(back, b);
}

#[test]
fn empty_bucket_writes_zero_min() {
    let b = Bucket::new(key("idle"));
    let p = b.to_proto("a", 1);
    assert_eq!(
        (p.min_ms, p.max_ms, p.p50_ms, p.total_spans),
        (0.0, 0.0, 0.0, 0)
    );
    assert_eq!(Bucket::from_proto(&p).unwrap(), b);
    // A bucket without a sketch is fine when it has no spans.
    let p = TelemetryBucket { sketch: None, ..p };
    assert_eq!(Bucket::from_proto(&p).unwrap(), b);
}

#[test]
fn merge_equals_the_bucket_of_all_spans() {
    let a = bucket(1, 500);
    let b = bucket(2, 700);
    let mut merged = a.clone();
    merged.merge(&b).unwrap();
    assert_eq!(merged.stats.total, 1200);
    let mut stats = a.stats.clone();
    stats.merge(&b.stats).unwrap();
    assert_eq!(merged.stats, stats);
    for (name, s) in &merged.operations {
        let mut expected = a.operation(name).cloned().unwrap_or_default();
        expected
            .merge(b.operation(name).unwrap_or(&Stats::new()))
            .unwrap();
        assert_eq!(s, &expected, "{name}");
    }
    // Through the wire form, as the colony does.
    let mut wire = Bucket::from_proto(&a.to_proto("x", 1)).unwrap();
    wire.merge(&Bucket::from_proto(&b.to_proto("x", 2)).unwrap())
        .unwrap();
    assert_eq!(wire, merged);
}

#[test]
fn merge_appends_new_operations() {
    let mut a = Bucket::new(key("s"));
    a.operations.push(("x".into(), Stats::new()));
    let mut b = Bucket::new(key("s"));
    b.operations.push(("y".into(), Stats::new()));
    b.operations[0].1.record(1.0, false, "");
    a.merge(&b).unwrap();
    let names: Vec<&str> = a.operations.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x", "y"]);
    assert_eq!(a.operation("y").unwrap().total, 1);
}

#[test]
fn merge_errors_leave_the_bucket_unchanged() {
    let mut a = bucket(1, 50);
    let before = a.clone();
    assert!(matches!(
        a.merge(&Bucket::new(key("other"))),
        Err(ModelError::KeyMismatch { .. })
    ));
    let mut b = bucket(2, 50);
    b.operations[1].1 = Stats::with_sketch(DurationSketch::with_relative_accuracy(0.02).unwrap());
    assert!(matches!(
        a.merge(&b),
        Err(ModelError::IncompatibleSketches { .. })
    ));
    assert_eq!(a, before);
}

#[test]
fn invalid_protos_are_rejected() {
    let good = bucket(3, 100).to_proto("a", 1);
    let with = |f: fn(&mut TelemetryBucket)| {
        let mut p = good.clone();
        f(&mut p);
        p
    };
    let mut bad = vec![
        with(|p| p.span_kind = "SIDEWAYS".into()),
        with(|p| p.total_spans = -1),
        with(|p| p.error_count = 101),
        with(|p| p.total_spans = 99),
        with(|p| p.sketch = None),
    ];
    let mut p = good.clone();
    p.sketch.as_mut().unwrap().relative_accuracy = 0.0;
    bad.push(p);
    let mut p = good.clone();
    p.operations[0].total_spans += 1;
    bad.push(p);
    for (i, p) in bad.iter().enumerate() {
        assert!(Bucket::from_proto(p).is_err(), "case {i}");
    }
}

#[test]
fn duplicate_operations_in_a_proto_are_merged() {
    let b = bucket(4, 300);
    let mut p = b.to_proto("a", 1);
    let dup = p.operations[0].clone();
    p.operations.push(dup);
    let back = Bucket::from_proto(&p).unwrap();
    assert_eq!(back.operations.len(), b.operations.len());
    let (name, stats) = &b.operations[0];
    assert_eq!(back.operation(name).unwrap().total, 2 * stats.total);
}
