//! The agent's own counters, declared once here.
//!
//! They feed the `GetStatus` RPC and the admin endpoint's Prometheus text
//! (`GET /metrics`), named `coral_agent_<what>_total`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};

use coral_proto::agent::Counters as CountersProto;

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// Monotonic counters of the agent.
        #[derive(Debug, Default)]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        impl Counters {
            /// Renders every counter in the Prometheus text exposition format.
            pub fn render_prometheus(&self, extra_gauges: &[(&str, &str, u64)]) -> String {
                let mut out = String::new();
                $(
                    let help = concat!($($doc),*).trim();
                    let name = concat!("coral_agent_", stringify!($name), "_total");
                    let _ = writeln!(out, "# HELP {name} {help}");
                    let _ = writeln!(out, "# TYPE {name} counter");
                    let _ = writeln!(out, "{name} {}", self.$name.load(Ordering::Relaxed));
                )*
                for (name, help, value) in extra_gauges {
                    let _ = writeln!(out, "# HELP coral_agent_{name} {help}");
                    let _ = writeln!(out, "# TYPE coral_agent_{name} gauge");
                    let _ = writeln!(out, "coral_agent_{name} {value}");
                }
                out
            }

            /// Every counter of a `GetStatus` message as a JSON object, by
            /// name (the admin endpoint's `/status`), with `db_size_bytes`.
            pub fn json(c: &CountersProto) -> serde_json::Value {
                let mut map = serde_json::Map::new();
                $( map.insert(stringify!($name).into(), c.$name.into()); )*
                map.insert("db_size_bytes".into(), c.db_size_bytes.into());
                serde_json::Value::Object(map)
            }

            /// The counters as the `GetStatus` message (every counter has
            /// its field of the same name).
            pub fn to_proto(&self, db_size_bytes: u64) -> CountersProto {
                CountersProto {
                    $( $name: self.$name.load(Ordering::Relaxed), )*
                    db_size_bytes,
                }
            }
        }
    };
}

counters! {
    /// Spans received in OTLP requests.
    spans_received,
    /// Spans accepted (aggregated).
    spans_accepted,
    /// Individually invalid spans refused through partial_success.
    spans_rejected,
    /// Accepted spans lost before storage because a write failed.
    spans_dropped,
    /// Accepted spans that the static filters did not keep.
    spans_filtered,
    /// Kept spans written to the store.
    spans_stored,
    /// Kept spans whose attributes, status message or names were cut to the
    /// stored limits (string values 2 KiB, attributes 4 KiB, message and
    /// names 1 KiB) before they were handed to the store.
    spans_attributes_cut,
    /// One-minute buckets written to the store.
    buckets_stored,
    /// Buckets lost because a write failed.
    buckets_dropped,
    /// Requests refused as undecodable (400 / INVALID_ARGUMENT).
    requests_rejected_invalid,
    /// Requests refused as too large (413 / RESOURCE_EXHAUSTED).
    requests_rejected_too_large,
    /// Requests refused because the pipeline was saturated, or the listener
    /// held its budget of request body bytes (429 / UNAVAILABLE).
    requests_throttled,
    /// Exports recognised as a client's retry of one already taken (the
    /// same spans, ids and times, within 10 minutes): answered as the first
    /// copy was, counted and stored once.
    requests_retried,
    /// Spans in those retried exports, not counted again.
    spans_retried,
    /// Commits that failed (a full disk, an invalidated database); see
    /// `/healthz` and `/status`'s `store`.
    store_write_failures,
    /// Times a failing store wrote again (after a probe, or reopening it).
    store_recoveries,
    /// Exports answered 503 / UNAVAILABLE because the store could not write
    /// (`ack: stored`: their commit failed).
    requests_not_stored,
    /// OTLP connections closed to make room for a new one when the
    /// listener's table (`agent.telemetry.max_connections`) was full: the
    /// least recently active.
    connections_evicted,
    /// OTLP connections closed after moving no byte for two minutes.
    connections_timed_out,
    /// Metric data points received.
    metric_points_received,
    /// Log records received.
    log_records_received,
    /// Rows deleted by retention.
    rows_deleted_by_retention,
    /// Beyla metric data points received on the private receiver.
    beyla_points_received,
    /// Beyla data points not turned into rows (unknown metric, bad shape).
    beyla_points_skipped,
    /// Beyla spans received on the private receiver.
    beyla_spans_received,
    /// Beyla spans dropped by trace-id sampling (`beyla.sampling.rate`).
    beyla_spans_sampled_out,
    /// Beyla spans whose attributes or names were cut to the stored limits
    /// (the same as for `spans_attributes_cut`).
    beyla_spans_attributes_cut,
    /// Beyla trace exports refused because `agent.telemetry.queue_spans`
    /// Beyla spans were already waiting for the store (429 with
    /// `Retry-After`; Beyla retries them).
    beyla_requests_throttled,
    /// Beyla rows (histograms and spans) written to the store.
    beyla_rows_stored,
    /// Beyla rows lost because a write failed.
    beyla_rows_dropped,
}

impl Counters {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_value() {
        let c = Counters::default();
        Counters::add(&c.spans_received, 42);
        let text = c.render_prometheus(&[("db_size_bytes", "Database size.", 7)]);
        assert!(text.contains("# TYPE coral_agent_spans_received_total counter\n"));
        assert!(text.contains("coral_agent_spans_received_total 42\n"));
        assert!(text.contains(
            "# HELP coral_agent_spans_received_total Spans received in OTLP requests.\n"
        ));
        assert!(text.contains("coral_agent_db_size_bytes 7\n"));
    }

    #[test]
    fn the_status_json_names_every_counter() {
        let c = Counters::default();
        Counters::add(&c.connections_evicted, 4);
        let json = Counters::json(&c.to_proto(9));
        assert_eq!(json["connections_evicted"], 4);
        assert_eq!(json["beyla_rows_dropped"], 0);
        assert_eq!(json["db_size_bytes"], 9);
        let rendered = c.render_prometheus(&[]);
        for name in json
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| *k != "db_size_bytes")
        {
            assert!(
                rendered.contains(&format!("coral_agent_{name}_total ")),
                "{name}"
            );
        }
    }

    #[test]
    fn the_status_message_carries_every_counter() {
        let c = Counters::default();
        Counters::add(&c.beyla_rows_dropped, 3);
        Counters::add(&c.spans_attributes_cut, 2);
        let status = c.to_proto(9);
        assert_eq!(
            (
                status.beyla_rows_dropped,
                status.spans_attributes_cut,
                status.db_size_bytes
            ),
            (3, 2, 9)
        );
    }
}
