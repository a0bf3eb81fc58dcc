//! The colony's own metrics, declared once here, and the opt-in RED
//! exposition.
//!
//! - [`ColonyMetrics`]: counters of polls, pages, rows per table,
//!   duplicates, refusals, gaps, write failures and retention, and the poll
//!   duration histogram; the admin endpoint renders them with the agents'
//!   health and lag and the store's size ([`HealthGauges`]) at `/metrics`.
//! - [`red`]: RED per service, operation and span kind at `/metrics/red`.
//! - [`text`]: the Prometheus text format.

pub mod red;
pub mod text;

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::store::ingest::{Page, PageOutcome};
use red::Red;
use text::{BUCKETS_SECONDS, Exposition, Kind};

macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident ),* $(,)?) => {
        /// Monotonic counters of the colony.
        #[derive(Debug, Default)]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        impl Counters {
            fn render(&self, e: &mut Exposition) {
                $(
                    e.single(
                        concat!("coral_colony_", stringify!($name), "_total"),
                        Kind::Counter,
                        concat!($($doc),*).trim(),
                        self.$name.load(Ordering::Relaxed),
                    );
                )*
            }
        }
    };
}

counters! {
    /// Polls of agents that finished (drained, or failed).
    polls,
    /// Polls that failed (the agent did not answer, refused, or a page could not be stored).
    poll_failures,
    /// Pages of agent rows committed with their cursor (pulled or pushed).
    pages_stored,
    /// Rows at or below a cursor, already stored (a retried push, a re-read page).
    rows_duplicate,
    /// Rows refused as invalid.
    rows_rejected,
    /// Gaps recorded: ranges of rows an agent no longer had when the colony read it.
    gaps,
    /// Rows in the recorded gaps.
    gap_rows,
    /// Commits of pages that failed (their cursors did not move; they are read again).
    store_write_failures,
    /// Rows deleted by retention.
    rows_deleted_by_retention,
}

/// A per-agent gauge: name, help and how an agent's value is read.
type AgentFamily = (&'static str, &'static str, fn(&AgentGauges) -> Option<f64>);

/// The tables rows are counted by.
const TABLES: [&str; 4] = ["otel_spans", "trace_spans", "host_metrics", "beyla"];

/// The colony's metrics (shared by the writer, the poller and the admin
/// endpoint).
#[derive(Debug)]
pub struct ColonyMetrics {
    started: Instant,
    /// The counters.
    pub counters: Counters,
    rows_stored: [AtomicU64; TABLES.len()],
    polls: Mutex<PollHistogram>,
    red: Option<Mutex<Red>>,
}

#[derive(Debug, Default)]
struct PollHistogram {
    cumulative: [u64; BUCKETS_SECONDS.len()],
    count: u64,
    sum: f64,
}

impl Default for ColonyMetrics {
    fn default() -> Self {
        ColonyMetrics::new(false)
    }
}

/// What `/metrics` reads from outside the counters when it is scraped.
#[derive(Debug, Default, Clone)]
pub struct HealthGauges {
    /// Agents by health (`healthy`, `degraded`, `unreachable`, `unknown`).
    pub agents_by_health: Vec<(&'static str, u64)>,
    /// Per agent: id, rows not stored yet, gaps recorded, seconds since seen.
    pub agents: Vec<AgentGauges>,
    /// Bytes of the colony database on disk (on ClickHouse, the server's
    /// active parts of the colony's database).
    pub db_size_bytes: u64,
    /// Whether the store answered this scrape's reads.
    pub store_up: bool,
}

/// One agent's gauges.
#[derive(Debug, Default, Clone)]
pub struct AgentGauges {
    /// Agent id.
    pub agent_id: String,
    /// Rows the agent holds that the colony has not stored.
    pub lag_rows: u64,
    /// Gaps recorded for it (within gap retention).
    pub gaps: u64,
    /// Seconds since it was last seen; `None` when never since the start.
    pub seconds_since_seen: Option<f64>,
}

impl ColonyMetrics {
    /// Metrics with the RED exposition on (`red`) or off.
    pub fn new(red: bool) -> ColonyMetrics {
        ColonyMetrics {
            started: Instant::now(),
            counters: Counters::default(),
            rows_stored: Default::default(),
            polls: Mutex::default(),
            red: red.then(Mutex::default),
        }
    }

    /// True when `/metrics/red` is served.
    pub fn red_enabled(&self) -> bool {
        self.red.is_some()
    }

    /// Counts a committed page: rows per table, duplicates, refusals, gaps,
    /// and (when on) its stored buckets into the RED series.
    pub fn page_stored(&self, page: &Page, outcome: &PageOutcome) {
        let c = &self.counters;
        let add = |counter: &AtomicU64, n: usize| {
            counter.fetch_add(n as u64, Ordering::Relaxed);
        };
        add(&c.pages_stored, 1);
        add(&c.rows_duplicate, outcome.duplicates);
        add(&c.rows_rejected, outcome.rejected);
        let gaps = outcome.gaps.iter().chain(&outcome.replaced_gap);
        add(&c.gaps, gaps.clone().count());
        add(
            &c.gap_rows,
            gaps.map(|(from, to)| (to - from + 1) as usize).sum(),
        );
        let by_table = &outcome.stored_by_table;
        for (slot, n) in self.rows_stored.iter().zip([
            by_table.otel_spans,
            by_table.trace_spans,
            by_table.host_metrics,
            by_table.beyla,
        ]) {
            add(slot, n);
        }
        if let Some(red) = &self.red {
            let mut red = red.lock().unwrap_or_else(|p| p.into_inner());
            for &i in &outcome.stored_buckets {
                if let Some(bucket) = page.buckets.get(i) {
                    red.add(bucket);
                }
            }
        }
    }

    /// Counts a failed commit.
    pub fn write_failed(&self) {
        self.counters
            .store_write_failures
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Counts rows deleted by retention.
    pub fn retention_deleted(&self, rows: u64) {
        self.counters
            .rows_deleted_by_retention
            .fetch_add(rows, Ordering::Relaxed);
    }

    /// Counts a finished poll of one agent that took `took`.
    pub fn poll_finished(&self, took: Duration, ok: bool) {
        self.counters.polls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.counters.poll_failures.fetch_add(1, Ordering::Relaxed);
        }
        let seconds = took.as_secs_f64();
        let mut h = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        for (slot, bound) in h.cumulative.iter_mut().zip(BUCKETS_SECONDS) {
            *slot += u64::from(seconds <= bound);
        }
        h.count += 1;
        h.sum += seconds;
    }

    /// Series in the RED exposition (0 when it is off).
    pub fn red_series(&self) -> usize {
        self.red
            .as_ref()
            .map_or(0, |red| red.lock().unwrap_or_else(|p| p.into_inner()).len())
    }

    /// `/metrics/red`, or `None` when the RED exposition is off.
    pub fn render_red(&self) -> Option<String> {
        self.red
            .as_ref()
            .map(|red| red.lock().unwrap_or_else(|p| p.into_inner()).render())
    }

    /// `/metrics`: the counters, the poll histogram and `gauges`.
    pub fn render(&self, gauges: &HealthGauges) -> String {
        let mut e = Exposition::default();
        self.counters.render(&mut e);
        let name = "coral_colony_rows_stored_total";
        e.family(
            name,
            Kind::Counter,
            "Rows stored, by table (otel_spans counts 1-minute buckets; beyla every Beyla row).",
        );
        for (table, n) in TABLES.iter().zip(&self.rows_stored) {
            e.sample(name, &[("table", table)], n.load(Ordering::Relaxed));
        }
        let name = "coral_colony_poll_duration_seconds";
        e.family(
            name,
            Kind::Histogram,
            "Time to poll one agent: drain its telemetry and Beyla streams.",
        );
        {
            let h = self.polls.lock().unwrap_or_else(|p| p.into_inner());
            e.histogram(name, &[], &h.cumulative, h.count, h.sum);
        }
        let name = "coral_colony_agents";
        e.family(name, Kind::Gauge, "Agents by health.");
        for (health, n) in &gauges.agents_by_health {
            e.sample(name, &[("health", health)], n);
        }
        let per_agent: [AgentFamily; 3] = [
            (
                "coral_colony_agent_lag_rows",
                "Rows the agent holds that the colony has not stored yet.",
                |a| Some(a.lag_rows as f64),
            ),
            (
                "coral_colony_agent_gaps",
                "Gaps recorded for the agent (within gap retention).",
                |a| Some(a.gaps as f64),
            ),
            (
                "coral_colony_agent_seconds_since_seen",
                "Seconds since the agent registered, sent a heartbeat, was polled or pushed.",
                |a| a.seconds_since_seen,
            ),
        ];
        for (name, help, value) in per_agent {
            e.family(name, Kind::Gauge, help);
            for agent in &gauges.agents {
                if let Some(v) = value(agent) {
                    e.sample(name, &[("agent", &agent.agent_id)], v);
                }
            }
        }
        e.single(
            "coral_colony_db_size_bytes",
            Kind::Gauge,
            "Bytes used by the colony database on disk.",
            gauges.db_size_bytes,
        );
        e.single(
            "coral_colony_store_up",
            Kind::Gauge,
            "1 when the colony's store (its DuckDB file or ClickHouse) answered this scrape's reads, 0 when not: polls pause until it answers, and agents keep their rows meanwhile.",
            u64::from(gauges.store_up),
        );
        e.single(
            "coral_colony_uptime_seconds",
            Kind::Gauge,
            "Seconds since the colony started.",
            self.started.elapsed().as_secs(),
        );
        e.single(
            "coral_colony_red_series",
            Kind::Gauge,
            "Series in the RED exposition at /metrics/red (0 when it is off).",
            self.red_series(),
        );
        e.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::ingest::{StoredRows, Stream};

    fn page() -> Page {
        Page {
            agent_id: "a1".into(),
            stream: Stream::Pull,
            session_id: "s".into(),
            start_seq: 0,
            max_seq: 10,
            buckets: Vec::new(),
            spans: Vec::new(),
            hosts: Vec::new(),
            beyla: Default::default(),
            reported: Vec::new(),
        }
    }

    #[test]
    fn pages_polls_and_gauges_render_as_prometheus_text() {
        let m = ColonyMetrics::new(false);
        let outcome = PageOutcome {
            stored: 7,
            duplicates: 2,
            gaps: vec![(3, 4)],
            replaced_gap: Some((1, 1)),
            stored_by_table: StoredRows {
                otel_spans: 1,
                trace_spans: 5,
                host_metrics: 1,
                beyla: 0,
            },
            ..Default::default()
        };
        m.page_stored(&page(), &outcome);
        m.poll_finished(Duration::from_millis(30), true);
        m.poll_finished(Duration::from_secs(20), false);
        let text = m.render(&HealthGauges {
            agents_by_health: vec![("healthy", 1)],
            agents: vec![AgentGauges {
                agent_id: "a1".into(),
                lag_rows: 12,
                gaps: 2,
                seconds_since_seen: None,
            }],
            db_size_bytes: 4096,
            store_up: true,
        });
        for line in [
            "coral_colony_pages_stored_total 1\n",
            "coral_colony_rows_duplicate_total 2\n",
            "coral_colony_gaps_total 2\n",
            "coral_colony_gap_rows_total 3\n",
            "coral_colony_rows_stored_total{table=\"trace_spans\"} 5\n",
            "coral_colony_polls_total 2\n",
            "coral_colony_poll_failures_total 1\n",
            "coral_colony_poll_duration_seconds_bucket{le=\"0.05\"} 1\n",
            "coral_colony_poll_duration_seconds_bucket{le=\"+Inf\"} 2\n",
            "coral_colony_agents{health=\"healthy\"} 1\n",
            "coral_colony_agent_lag_rows{agent=\"a1\"} 12\n",
            "coral_colony_db_size_bytes 4096\n",
            "coral_colony_store_up 1\n",
            "coral_colony_red_series 0\n",
        ] {
            assert!(text.contains(line), "{line}in\n{text}");
        }
        assert!(!text.contains("coral_colony_agent_seconds_since_seen{"));
        assert_eq!(m.render_red(), None);
    }
}
