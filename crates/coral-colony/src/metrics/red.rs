//! The opt-in RED exposition (`/metrics/red`): request and error counters
//! and a duration histogram per service, operation and span kind, summed
//! fleet-wide from the 1-minute buckets the colony stores.
//!
//! Every bucket is folded in once, after its page committed (a page re-read
//! after a failed commit is not counted twice; duplicates below a cursor
//! never reach here), so the counters count each span once. They live in
//! memory and restart from 0 with the colony, which Prometheus' `rate()`
//! reads as a counter reset.
//!
//! Labels are bounded like the agents' buckets: operations beyond
//! [`MAX_OPERATIONS_PER_SERVICE`] of a service fold into
//! [`OVERFLOW_OPERATION`], services beyond [`MAX_SERVICES`] into
//! `__overflow__`.

use std::collections::HashMap;

use coral_model::{Bucket, OVERFLOW_OPERATION, SpanKind, Stats};
use coral_proto::common::TelemetryBucket;

use super::text::{BUCKETS_SECONDS, Exposition, Kind};

/// Operations per service with their own series (the agents' default cap).
pub const MAX_OPERATIONS_PER_SERVICE: usize = 200;
/// Services with their own series (the agents' default cap).
pub const MAX_SERVICES: usize = 1000;
/// The service label of everything beyond [`MAX_SERVICES`].
pub const OVERFLOW_SERVICE: &str = "__overflow__";

/// A family's name, help and how a series' value is read.
type Family<T> = (&'static str, &'static str, fn(&T) -> u64);

/// One series' totals.
#[derive(Debug, Default, Clone)]
struct Series {
    requests: u64,
    errors: u64,
    /// Durations at most each bound of [`BUCKETS_SECONDS`].
    cumulative: [u64; BUCKETS_SECONDS.len()],
    /// Durations counted in the histogram (the `+Inf` bucket).
    observed: u64,
    sum_seconds: f64,
}

/// Every series, by (service, operation, span kind).
#[derive(Debug, Default)]
pub struct Red {
    series: HashMap<(String, String, SpanKind), Series>,
    /// Distinct operations per service with their own series.
    operations: HashMap<String, usize>,
}

impl Red {
    /// Series held.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// True when nothing was folded in.
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// Adds a stored bucket (an undecodable one is skipped: the store
    /// refused it too).
    pub fn add(&mut self, proto: &TelemetryBucket) {
        let Ok(bucket) = Bucket::from_proto(proto) else {
            return;
        };
        let service = self.service_label(&bucket.key.service);
        if bucket.operations.is_empty() {
            self.add_stats(&service, "unknown", bucket.key.kind, &bucket.stats);
        }
        for (operation, stats) in &bucket.operations {
            self.add_stats(&service, operation, bucket.key.kind, stats);
        }
    }

    fn service_label(&mut self, service: &str) -> String {
        if self.operations.contains_key(service) || self.operations.len() < MAX_SERVICES {
            self.operations.entry(service.to_owned()).or_default();
            service.to_owned()
        } else {
            OVERFLOW_SERVICE.to_owned()
        }
    }

    fn add_stats(&mut self, service: &str, operation: &str, kind: SpanKind, stats: &Stats) {
        let key = (service.to_owned(), operation.to_owned(), kind);
        let key = if self.series.contains_key(&key) {
            key
        } else {
            let ops = self.operations.entry(service.to_owned()).or_default();
            if *ops < MAX_OPERATIONS_PER_SERVICE || operation == OVERFLOW_OPERATION {
                *ops += usize::from(operation != OVERFLOW_OPERATION);
                key
            } else {
                (service.to_owned(), OVERFLOW_OPERATION.to_owned(), kind)
            }
        };
        let series = self.series.entry(key).or_default();
        series.requests += stats.total;
        series.errors += stats.errors;
        let bounds_ms = BUCKETS_SECONDS.map(|s| s * 1000.0);
        for (total, n) in series
            .cumulative
            .iter_mut()
            .zip(stats.sketch.cumulative_counts(&bounds_ms))
        {
            *total += n;
        }
        series.observed += stats.sketch.count();
        series.sum_seconds += stats.sum_ms / 1000.0;
    }

    /// The exposition, series sorted by labels.
    pub fn render(&self) -> String {
        let mut keys: Vec<_> = self.series.keys().collect();
        keys.sort();
        let labels = |(service, operation, kind): &(String, String, SpanKind)| {
            [
                ("service", service.clone()),
                ("operation", operation.clone()),
                ("span_kind", kind.as_str().to_owned()),
            ]
        };
        let mut e = Exposition::default();
        let counters: [Family<Series>; 2] = [
            (
                "coral_red_requests_total",
                "Spans per service, operation and span kind, from 100 % of spans.",
                |s| s.requests,
            ),
            (
                "coral_red_errors_total",
                "Error spans per service, operation and span kind.",
                |s| s.errors,
            ),
        ];
        for (name, help, value) in counters {
            e.family(name, Kind::Counter, help);
            for key in &keys {
                let l = labels(key);
                let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
                e.sample(name, &l, value(&self.series[*key]));
            }
        }
        let name = "coral_red_duration_seconds";
        e.family(
            name,
            Kind::Histogram,
            "Span durations per service, operation and span kind (from the buckets' sketches, within 1 % of each bound).",
        );
        for key in &keys {
            let s = &self.series[*key];
            let l = labels(key);
            let l: Vec<(&str, &str)> = l.iter().map(|(k, v)| (*k, v.as_str())).collect();
            e.histogram(name, &l, &s.cumulative, s.observed, s.sum_seconds);
        }
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_model::BucketKey;

    fn bucket(service: &str, ops: &[(&str, &[f64], u64)]) -> TelemetryBucket {
        let mut b = Bucket::new(BucketKey {
            minute: 1_800_000_000,
            service: service.into(),
            kind: SpanKind::Server,
        });
        for (name, durations, errors) in ops {
            let mut stats = Stats::new();
            for (i, d) in durations.iter().enumerate() {
                stats.record(*d, (i as u64) < *errors, "0af7651916cd43dd8448eb211c80319c");
            }
            b.stats.merge(&stats).unwrap();
            b.operations.push(((*name).into(), stats));
        }
        b.to_proto("a1", 1)
    }

    #[test]
    fn buckets_add_up_per_series_with_histogram_counts() {
        let mut red = Red::default();
        red.add(&bucket("checkout", &[("GET /cart", &[3.0, 40.0], 1)]));
        red.add(&bucket("checkout", &[("GET /cart", &[2_000.0], 0)]));
        let text = red.render();
        let labels = "service=\"checkout\",operation=\"GET /cart\",span_kind=\"SERVER\"";
        assert!(
            text.contains(&format!("coral_red_requests_total{{{labels}}} 3\n")),
            "{text}"
        );
        assert!(text.contains(&format!("coral_red_errors_total{{{labels}}} 1\n")));
        assert!(text.contains(&format!(
            "coral_red_duration_seconds_bucket{{{labels},le=\"0.005\"}} 1\n"
        )));
        assert!(text.contains(&format!(
            "coral_red_duration_seconds_bucket{{{labels},le=\"0.05\"}} 2\n"
        )));
        assert!(text.contains(&format!(
            "coral_red_duration_seconds_bucket{{{labels},le=\"2.5\"}} 3\n"
        )));
        assert!(text.contains(&format!("coral_red_duration_seconds_count{{{labels}}} 3\n")));
    }

    #[test]
    fn operations_beyond_the_cap_fold_into_overflow() {
        let mut red = Red::default();
        for i in 0..MAX_OPERATIONS_PER_SERVICE + 5 {
            red.add(&bucket("api", &[(&format!("op{i}"), &[1.0], 0)]));
        }
        assert_eq!(red.len(), MAX_OPERATIONS_PER_SERVICE + 1);
        let text = red.render();
        assert!(text.contains(
            "coral_red_requests_total{service=\"api\",operation=\"__overflow__\",span_kind=\"SERVER\"} 5\n"
        ));
        // A known operation keeps its series after the cap is reached.
        red.add(&bucket("api", &[("op0", &[1.0], 0)]));
        assert!(red.render().contains(
            "coral_red_requests_total{service=\"api\",operation=\"op0\",span_kind=\"SERVER\"} 2\n"
        ));
    }
}
