//! The Beyla histogram families (HTTP, gRPC, SQL) in ClickHouse, generated
//! from their declarations ([`coral_model::beyla_histogram_families`]):
//! each family's row (the columns every family has around the family's own
//! series and counts), built from a [`Part`] by the colony's store and by
//! the migration alike, and its [`Family`]: table, series, and the row read
//! back as the metric agents send and `QueryBeyla` returns.

use std::collections::HashMap;

use clickhouse::{Row, RowOwned, RowRead, RowWrite};
use coral_model::Histogram;
use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, LatencyHistogram};
use serde::{Deserialize, Serialize};

use crate::catalogue::{self, Table};

/// What every histogram row holds besides its family's own columns.
pub(crate) struct Part {
    pub agent_id: String,
    pub session_id: String,
    pub seq_id: u64,
    /// Unix microseconds.
    pub minute: i64,
    pub service_name: String,
    /// Stored as the row's `count`, `sum_ms`, `min_ms`, `max_ms`,
    /// `latency_bounds` and `latency_counts`.
    pub latency: Histogram,
    /// JSON.
    pub attributes: String,
}

/// What every family's metric carries besides its own columns.
pub(crate) struct Sent<'a> {
    pub seq_id: u64,
    /// Unix seconds.
    pub minute: i64,
    pub service_name: &'a str,
    pub latency: Option<&'a LatencyHistogram>,
    pub attributes: &'a HashMap<String, String>,
}

impl<'a> Sent<'a> {
    fn of(
        seq_id: u64,
        minute: i64,
        service_name: &'a str,
        latency: Option<&'a LatencyHistogram>,
        attributes: &'a HashMap<String, String>,
    ) -> Sent<'a> {
        Sent {
            seq_id,
            minute,
            service_name,
            latency,
            attributes,
        }
    }
}

/// A Beyla histogram family, as `family!` declares it.
pub(crate) trait Family: RowOwned + RowRead + RowWrite {
    /// The metric agents send and `QueryBeyla` returns.
    type Metric;
    /// The family's own columns: its series, then any count of its own.
    type Own;
    /// The table.
    const TABLE: &'static Table;
    /// The family in messages about a rejected row.
    const WHAT: &'static str;
    /// The family's read, in errors.
    const READ: &'static str;
    /// The series columns in the sort key's order, each followed by `, `.
    const SERIES: &'static str;

    /// The row of `part` with the family's own columns.
    fn row(part: Part, own: Self::Own) -> Self;
    /// What `m` carries, and its own columns.
    fn sent(m: &Self::Metric) -> (Sent<'_>, Self::Own);
    /// The row as a metric (seq_id 0: merged parts have none).
    fn into_metric(self) -> Self::Metric;
    /// `m`'s minute, agent, service and series: runs of equal ones merge.
    fn series(m: &Self::Metric) -> impl PartialEq + '_;
    /// Adds `b`, of `a`'s series, to `a`.
    fn add(a: &mut Self::Metric, b: Self::Metric);
}

/// A family's row and its [`Family`] impl, generated from the family's
/// declaration ([`coral_model::beyla_histogram_families`]): the columns
/// every family has around its series and own counts.
macro_rules! family {
    (
        $(#[$doc:meta])*
        table: $table:ident,
        tables: ($colony:literal, $agent:literal),
        metric: $metric:ident,
        row: $row:ident,
        what: $what:literal,
        series: [$($series:ident: $sk:ident = $sf:ident),+ $(,)?],
        counts: [$($count:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        #[doc = concat!("`", $colony, "`: one ", $what, " histogram part.")]
        #[derive(Debug, Clone, Row, Serialize, Deserialize)]
        pub(crate) struct $row {
            pub agent_id: String,
            pub session_id: String,
            pub seq_id: u64,
            pub minute: i64,
            pub service_name: String,
            $(pub $series: ch_ty!($sk),)+
            pub count: u64,
            $(pub $count: ch_ty!($ck),)*
            pub sum_ms: f64,
            pub min_ms: Option<f64>,
            pub max_ms: Option<f64>,
            pub latency_bounds: Vec<f64>,
            pub latency_counts: Vec<u64>,
            pub attributes: String,
        }

        impl $row {
            /// The stored histogram, as metrics carry it (its vectors taken).
            fn latency(&mut self) -> LatencyHistogram {
                LatencyHistogram {
                    bounds_ms: std::mem::take(&mut self.latency_bounds),
                    counts: std::mem::take(&mut self.latency_counts),
                    count: self.count,
                    sum_ms: self.sum_ms,
                    min_ms: self.min_ms,
                    max_ms: self.max_ms,
                }
            }
        }

        impl Family for $row {
            type Metric = $metric;
            type Own = ($(ch_ty!($sk),)+ $(ch_ty!($ck),)*);
            const TABLE: &'static Table = &catalogue::$table;
            const WHAT: &'static str = $what;
            const READ: &'static str = concat!("Beyla ", $what, " read");
            const SERIES: &'static str = concat!($(stringify!($series), ", ",)+);

            fn row(p: Part, ($($series,)+ $($count,)*): Self::Own) -> $row {
                $row {
                    agent_id: p.agent_id,
                    session_id: p.session_id,
                    seq_id: p.seq_id,
                    minute: p.minute,
                    service_name: p.service_name,
                    $($series,)+
                    count: p.latency.count,
                    $($count,)*
                    sum_ms: p.latency.sum_ms,
                    min_ms: p.latency.min_ms,
                    max_ms: p.latency.max_ms,
                    latency_bounds: p.latency.bounds_ms,
                    latency_counts: p.latency.counts,
                    attributes: p.attributes,
                }
            }

            fn sent(m: &$metric) -> (Sent<'_>, Self::Own) {
                let own = (
                    $(ch!($sk, m.$sf),)+
                    $(ch!($ck, m.$cf),)*
                );
                let latency = m.latency.as_ref();
                let sent = Sent::of(m.seq_id, m.minute, &m.service_name, latency, &m.attributes);
                (sent, own)
            }

            fn into_metric(mut self) -> $metric {
                let mut m = $metric {
                    latency: Some(self.latency()),
                    minute: self.minute / 1_000_000,
                    attributes: coral_model::string_map_from_json(&self.attributes),
                    seq_id: 0,
                    ..Default::default()
                };
                $(from_ch!($sk, m.$sf, self.$series);)+
                $(from_ch!($ck, m.$cf, self.$count);)*
                m.agent_id = self.agent_id;
                m.service_name = self.service_name;
                m
            }

            fn series(m: &Self::Metric) -> impl PartialEq + '_ {
                (m.minute, &m.agent_id, &m.service_name, ($(&m.$sf,)+))
            }

            fn add(a: &mut $metric, b: $metric) {
                $(a.$cf += b.$cf;)*
                add_latency(&mut a.latency, b.latency);
            }
        }
    };
}

coral_model::beyla_histogram_families!(family);

/// Adds `b`'s histogram to `a`'s (extremes, counts and sum).
fn add_latency(a: &mut Option<LatencyHistogram>, b: Option<LatencyHistogram>) {
    let (Some(ha), Some(hb)) = (a.as_ref(), b.as_ref()) else {
        return;
    };
    if let (Ok(mut merged), Ok(other)) = (Histogram::from_proto(ha), Histogram::from_proto(hb)) {
        merged.merge(&other);
        *a = Some(merged.to_proto());
    }
}
