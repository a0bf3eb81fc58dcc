//! One-minute RED aggregation, from 100% of spans.
//!
//! Spans are grouped by (minute of their start time in UTC, service, span
//! kind), with a per-operation (span name) breakdown. Each group is a
//! [`Stats`]: counts, errors, a mergeable duration sketch, min/max/sum and
//! sample trace ids.
//!
//! A minute is flushed once it has closed and the grace period has passed. A
//! span that arrives later still lands in its own minute: it opens a new,
//! partial group for that minute which is flushed at the next tick and merged
//! by readers. Nothing is dropped and nothing is counted twice.
//!
//! Memory is bounded: operations beyond `max_operations_per_service` fold into
//! [`OVERFLOW_OPERATION`], services beyond `max_services` into
//! [`OVERFLOW_SERVICE`], and if more than [`MAX_OPEN_MINUTES`] minutes are open
//! (clients with skewed clocks) the oldest is flushed early as a partial bucket.

use std::collections::{BTreeMap, HashMap};

use coral_model::{Bucket, BucketKey, OVERFLOW_OPERATION, SpanKind, Stats, minute_of};

use crate::normalize::SpanFacts;

/// Service name that collects services beyond the per-agent cap.
pub const OVERFLOW_SERVICE: &str = "__overflow__";

/// Open minutes kept before the oldest is flushed early.
pub const MAX_OPEN_MINUTES: usize = 128;

const KINDS: usize = 6;

#[derive(Default)]
struct KindGroup {
    stats: Stats,
    operations: HashMap<String, Stats>,
}

#[derive(Default)]
struct ServiceGroup {
    kinds: [Option<Box<KindGroup>>; KINDS],
    operation_count: usize,
}

#[derive(Default)]
struct MinuteGroup {
    services: HashMap<String, ServiceGroup>,
}

/// Aggregation limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Distinct operations per service and minute before overflow.
    pub max_operations_per_service: usize,
    /// Distinct services per minute before overflow.
    pub max_services: usize,
    /// Seconds after a minute closes before it is flushed.
    pub grace_secs: i64,
}

/// The in-memory aggregator. Synchronous and pure: the caller owns the clock.
pub struct Aggregator {
    minutes: BTreeMap<i64, MinuteGroup>,
    /// Minutes pushed out early by the open-minute cap, returned by the next flush.
    early: Vec<(i64, MinuteGroup)>,
    limits: Limits,
    /// The generation spans are recorded in now (`agent.telemetry.ack:
    /// stored`): [`Aggregator::take_deltas`] closes it.
    generation: u64,
}

impl Aggregator {
    /// An empty aggregator.
    pub fn new(limits: Limits) -> Aggregator {
        Aggregator {
            minutes: BTreeMap::new(),
            early: Vec::new(),
            limits,
            generation: 1,
        }
    }

    /// The generation spans are recorded in now.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Everything recorded since the last call, as (partial) buckets, and
    /// the generation that this closes; later spans go to the next one.
    pub fn take_deltas(&mut self) -> (Vec<Bucket>, u64) {
        let closed = self.generation;
        self.generation += 1;
        (self.flush(0, true), closed)
    }

    /// Records one span. Only a `kept` span (one the filters store) offers
    /// its trace as a sample, so every sample trace id opens at the colony.
    pub fn record(&mut self, service: &str, operation: &str, facts: &SpanFacts, kept: bool) {
        let minute = minute_of(facts.start_ns);
        if !self.minutes.contains_key(&minute) && self.minutes.len() >= MAX_OPEN_MINUTES {
            // Bounded memory: the caller collects this in the next flush.
            self.limits_exceeded_minute();
        }
        let group = self.minutes.entry(minute).or_default();
        let service = if group.services.contains_key(service)
            || group.services.len() < self.limits.max_services
        {
            service
        } else {
            OVERFLOW_SERVICE
        };
        if !group.services.contains_key(service) {
            group
                .services
                .insert(service.to_owned(), ServiceGroup::default());
        }
        let service_group = group.services.get_mut(service).expect("inserted above");

        let mut hex = [0u8; 32];
        hex::encode_to_slice(facts.trace_id, &mut hex).expect("32-byte buffer for 16 bytes");
        let trace = kept.then(|| std::str::from_utf8(&hex).expect("hex is ascii"));

        let kind_group = service_group.kinds[facts.kind as usize].get_or_insert_with(Box::default);
        kind_group
            .stats
            .record_as(facts.duration_ms, facts.is_error, trace);
        let operation = if kind_group.operations.contains_key(operation) {
            operation
        } else if service_group.operation_count < self.limits.max_operations_per_service {
            service_group.operation_count += 1;
            operation
        } else {
            OVERFLOW_OPERATION
        };
        if !kind_group.operations.contains_key(operation) {
            kind_group
                .operations
                .insert(operation.to_owned(), Stats::default());
        }
        let op_stats = kind_group
            .operations
            .get_mut(operation)
            .expect("inserted above");
        op_stats.record_as(facts.duration_ms, facts.is_error, trace);
    }

    /// Moves the oldest open minute to the list that the next flush returns.
    fn limits_exceeded_minute(&mut self) {
        if let Some((minute, group)) = self.minutes.pop_first() {
            self.early.push((minute, group));
        }
    }

    /// Removes and returns every bucket whose minute closed at least
    /// `grace_secs` before `now_unix_secs`; with `force`, every bucket.
    pub fn flush(&mut self, now_unix_secs: i64, force: bool) -> Vec<Bucket> {
        let mut out = Vec::new();
        for (minute, group) in std::mem::take(&mut self.early) {
            emit(minute, group, &mut out);
        }
        let cutoff = now_unix_secs - 60 - self.limits.grace_secs;
        while let Some((&minute, _)) = self.minutes.first_key_value() {
            if !force && minute > cutoff {
                break;
            }
            let group = self.minutes.remove(&minute).expect("key just seen");
            emit(minute, group, &mut out);
        }
        out
    }

    /// Number of minutes currently open.
    pub fn open_minutes(&self) -> usize {
        self.minutes.len()
    }
}

fn emit(minute: i64, group: MinuteGroup, out: &mut Vec<Bucket>) {
    for (service, service_group) in group.services {
        for (index, kind_group) in service_group.kinds.into_iter().enumerate() {
            let Some(kind_group) = kind_group else {
                continue;
            };
            let mut operations: Vec<(String, Stats)> = kind_group.operations.into_iter().collect();
            operations.sort_by(|a, b| a.0.cmp(&b.0));
            out.push(Bucket {
                key: BucketKey {
                    minute,
                    service: service.clone(),
                    kind: SpanKind::from_otlp(index as i32),
                },
                stats: kind_group.stats,
                operations,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE_NS: u64 = 60_000_000_000;
    const T0: u64 = 1_700_000_040 * 1_000_000_000; // 2023-11-14T22:14:00Z, minute aligned

    fn facts(start_ns: u64, ms: f64, is_error: bool, trace: u8, kind: SpanKind) -> SpanFacts {
        SpanFacts {
            kind,
            start_ns,
            duration_ms: ms,
            is_error,
            trace_id: [trace; 16],
        }
    }

    fn limits() -> Limits {
        Limits {
            max_operations_per_service: 2,
            max_services: 2,
            grace_secs: 10,
        }
    }

    #[test]
    fn groups_by_minute_service_kind_and_operation() {
        let mut agg = Aggregator::new(limits());
        agg.record(
            "checkout",
            "GET /a",
            &facts(T0, 10.0, false, 1, SpanKind::Server),
            true,
        );
        agg.record(
            "checkout",
            "GET /a",
            &facts(T0 + 5, 30.0, true, 2, SpanKind::Server),
            true,
        );
        agg.record(
            "checkout",
            "call db",
            &facts(T0, 5.0, false, 3, SpanKind::Client),
            true,
        );
        agg.record(
            "checkout",
            "GET /b",
            &facts(T0 + MINUTE_NS, 1.0, false, 4, SpanKind::Server),
            true,
        );
        let now = (T0 / 1_000_000_000) as i64;
        assert!(agg.flush(now + 69, false).is_empty(), "grace not over yet");
        let mut buckets = agg.flush(now + 70, false);
        buckets.sort_by_key(|b| b.key.kind as usize);
        assert_eq!(buckets.len(), 2, "second minute still open");
        let server = &buckets[0];
        assert_eq!(server.key.kind, SpanKind::Server);
        assert_eq!(server.key.minute, now);
        assert_eq!((server.stats.total, server.stats.errors), (2, 1));
        assert_eq!(server.operations.len(), 1);
        assert_eq!(
            server.stats.samples.trace_ids()[0],
            "02".repeat(16),
            "errors first"
        );
        assert_eq!(buckets[1].key.kind, SpanKind::Client);
        assert_eq!(agg.open_minutes(), 1);
        assert_eq!(agg.flush(now, true).len(), 1);
    }

    #[test]
    fn late_span_lands_in_its_own_minute_as_a_partial_bucket() {
        let mut agg = Aggregator::new(limits());
        let now = (T0 / 1_000_000_000) as i64;
        agg.record(
            "cart",
            "op",
            &facts(T0, 10.0, false, 1, SpanKind::Server),
            true,
        );
        assert_eq!(agg.flush(now + 200, false).len(), 1);
        agg.record(
            "cart",
            "op",
            &facts(T0 + 7, 20.0, false, 2, SpanKind::Server),
            true,
        );
        let late = agg.flush(now + 201, false);
        assert_eq!(late.len(), 1);
        assert_eq!(late[0].key.minute, now);
        assert_eq!(late[0].stats.total, 1);
    }

    #[test]
    fn cardinality_caps_fold_into_overflow_rows() {
        let mut agg = Aggregator::new(limits());
        for (i, op) in ["a", "b", "c", "d"].iter().enumerate() {
            agg.record(
                "svc",
                op,
                &facts(T0, 1.0 + i as f64, false, 1, SpanKind::Server),
                true,
            );
        }
        for svc in ["s2", "s3", "s4"] {
            agg.record(svc, "x", &facts(T0, 1.0, false, 1, SpanKind::Server), true);
        }
        let buckets = agg.flush(0, true);
        let svc = buckets.iter().find(|b| b.key.service == "svc").unwrap();
        let names: Vec<_> = svc.operations.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, vec![OVERFLOW_OPERATION, "a", "b"]);
        assert_eq!(svc.operations[0].1.total, 2);
        assert_eq!(svc.stats.total, 4);
        let services: Vec<_> = buckets.iter().map(|b| b.key.service.as_str()).collect();
        assert!(services.contains(&OVERFLOW_SERVICE));
        assert_eq!(buckets.iter().map(|b| b.stats.total).sum::<u64>(), 7);
    }

    #[test]
    fn open_minutes_are_bounded_without_losing_spans() {
        let mut agg = Aggregator::new(limits());
        let n = MAX_OPEN_MINUTES as u64 + 10;
        for i in 0..n {
            agg.record(
                "svc",
                "op",
                &facts(T0 + i * MINUTE_NS, 1.0, false, 1, SpanKind::Server),
                true,
            );
        }
        assert!(agg.open_minutes() <= MAX_OPEN_MINUTES);
        let total: u64 = agg.flush(0, true).iter().map(|b| b.stats.total).sum();
        assert_eq!(total, n);
    }

    #[test]
    fn only_kept_spans_offer_their_trace_as_a_sample() {
        let mut agg = Aggregator::new(limits());
        // The slowest span and the error were not kept: they count, but
        // their traces would not open at the colony.
        agg.record(
            "svc",
            "op",
            &facts(T0, 900.0, false, 1, SpanKind::Server),
            false,
        );
        agg.record(
            "svc",
            "op",
            &facts(T0, 50.0, true, 2, SpanKind::Server),
            false,
        );
        agg.record(
            "svc",
            "op",
            &facts(T0, 10.0, false, 3, SpanKind::Server),
            true,
        );
        let buckets = agg.flush(0, true);
        assert_eq!(buckets.len(), 1);
        let b = &buckets[0];
        assert_eq!((b.stats.total, b.stats.errors), (3, 1));
        assert_eq!(b.stats.max_ms, 900.0);
        assert_eq!(b.stats.samples.trace_ids(), vec!["03".repeat(16)]);
        assert_eq!(b.operations[0].1.samples.trace_ids(), vec!["03".repeat(16)]);
    }
}
