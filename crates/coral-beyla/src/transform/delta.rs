//! Cumulative → delta conversion per series, with bounded memory.
//!
//! A series is (resource identity, metric name, every data point attribute);
//! the state kept per series is its last start time, point time and
//! cumulative histogram. The start time is compared rather than keyed on, so
//! one series holds one state whatever its restarts.
//!
//! The rule, for a cumulative point `p` of series `s`:
//!
//! 1. **First sighting** (no state for `s`): the full cumulative value is
//!    emitted when either
//!    - `p`'s resource was already seen in an earlier export: Beyla re-exports
//!      every live series in every cumulative export, so a series absent from
//!      the previous export had no data before it (a new route, a new peer); or
//!    - `p` started recently: `time − start ≤ fresh_series` (90 s by default,
//!      1.5 × Beyla's 60 s export interval), i.e. Beyla itself just started.
//!
//!    Otherwise the value is only recorded as a **baseline** and nothing is
//!    emitted: this is the agent restarting next to a Beyla that kept running,
//!    whose cumulative counts were already counted before the restart. The
//!    cost is at most one export interval of data lost on such a restart,
//!    never double counting.
//! 2. **Out of order**: a point older than the last one of its series (a
//!    retried export arriving late) is skipped. A duplicate of the last point
//!    yields a zero delta, so no row.
//! 3. **Reset**: when the start time changed, or the count or any bucket went
//!    down, the series restarted; its new cumulative value is the delta.
//! 4. Otherwise the delta is `p − state` (see `histo::delta`).
//!
//! Memory: states not updated for `series_ttl` (10 min by default, measured
//! on the points' own clock) are evicted, and at most `max_series` series are
//! tracked; points of further new series are skipped and reported.

use std::collections::HashMap;

use coral_model::Histogram;

use super::SkipReason;
use super::histo;

const NANOS: u64 = 1_000_000_000;

struct SeriesState {
    start: u64,
    time: u64,
    seen: u64,
    hist: Histogram,
}

/// What to do with one cumulative point.
#[derive(Debug)]
pub(crate) enum Step {
    /// Emit this delta; `reset` when the series restarted.
    Emit { delta: Histogram, reset: bool },
    /// First sighting recorded as a baseline only.
    Baseline,
    /// Skip the point.
    Skip(SkipReason),
}

pub(crate) struct DeltaTracker {
    series: HashMap<u64, SeriesState>,
    resources: HashMap<u64, u64>,
    max_series: usize,
    ttl_ns: u64,
    fresh_ns: u64,
    clock_ns: u64,
    last_sweep_ns: u64,
}

impl DeltaTracker {
    pub(crate) fn new(max_series: usize, ttl_secs: u64, fresh_secs: u64) -> DeltaTracker {
        DeltaTracker {
            series: HashMap::new(),
            resources: HashMap::new(),
            max_series,
            ttl_ns: ttl_secs.saturating_mul(NANOS),
            fresh_ns: fresh_secs.saturating_mul(NANOS),
            clock_ns: 0,
            last_sweep_ns: 0,
        }
    }

    /// Series currently tracked.
    pub(crate) fn len(&self) -> usize {
        self.series.len()
    }

    /// The latest point time seen (Unix nanoseconds).
    pub(crate) fn clock(&self) -> u64 {
        self.clock_ns
    }

    /// Advances the clock to a point's time.
    pub(crate) fn observe(&mut self, time: u64) {
        self.clock_ns = self.clock_ns.max(time);
    }

    /// Applies the rule of the module docs to one cumulative point.
    pub(crate) fn cumulative(
        &mut self,
        key: u64,
        resource: u64,
        start: u64,
        time: u64,
        cur: Histogram,
    ) -> Step {
        self.observe(time);
        let seen = self.clock_ns;
        let Some(st) = self.series.get_mut(&key) else {
            if self.series.len() >= self.max_series {
                return Step::Skip(SkipReason::SeriesCap(self.max_series));
            }
            let fresh = start > 0 && time >= start && time - start <= self.fresh_ns;
            let known = self.resources.contains_key(&resource);
            let step = if fresh || known {
                Step::Emit {
                    delta: cur.clone(),
                    reset: false,
                }
            } else {
                Step::Baseline
            };
            self.series.insert(
                key,
                SeriesState {
                    start,
                    time,
                    seen,
                    hist: cur,
                },
            );
            return step;
        };
        if time < st.time {
            return Step::Skip(SkipReason::OutOfOrder);
        }
        let restarted = start != 0 && start != st.start;
        let step = match (restarted, histo::delta(&st.hist, &cur)) {
            (false, Some(delta)) => Step::Emit {
                delta,
                reset: false,
            },
            _ => Step::Emit {
                delta: cur.clone(),
                reset: true,
            },
        };
        *st = SeriesState {
            start,
            time,
            seen,
            hist: cur,
        };
        step
    }

    /// Records the resources of a finished export (so that their new series
    /// are known to be new) and evicts stale state about once a minute.
    pub(crate) fn end_export(&mut self, resources: impl IntoIterator<Item = u64>) {
        let now = self.clock_ns;
        for r in resources {
            self.resources.insert(r, now);
        }
        if now.saturating_sub(self.last_sweep_ns) >= 60 * NANOS {
            self.last_sweep_ns = now;
            let horizon = now.saturating_sub(self.ttl_ns);
            self.series.retain(|_, s| s.seen >= horizon);
            self.resources.retain(|_, seen| *seen >= horizon);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60 * NANOS;
    const T0: u64 = 1_750_000_000 * NANOS;

    fn h(n: u64) -> Histogram {
        Histogram::new(vec![10.0], vec![n, 0], n as f64, None, None).unwrap()
    }

    fn count(step: Step) -> Option<(u64, bool)> {
        match step {
            Step::Emit { delta, reset } => Some((delta.count, reset)),
            _ => None,
        }
    }

    #[test]
    fn agent_restart_next_to_a_running_beyla_is_a_baseline() {
        let mut t = DeltaTracker::new(100, 600, 90);
        // Beyla started an hour ago: first sighting is a baseline.
        assert!(matches!(
            t.cumulative(1, 7, T0, T0 + 60 * MIN, h(500)),
            Step::Baseline
        ));
        t.end_export([7]);
        assert_eq!(
            count(t.cumulative(1, 7, T0, T0 + 61 * MIN, h(530))),
            Some((30, false))
        );
        // A new series of a known resource: all of it is new.
        assert_eq!(
            count(t.cumulative(2, 7, T0, T0 + 61 * MIN, h(4))),
            Some((4, false))
        );
    }

    #[test]
    fn fresh_starts_resets_and_retries() {
        let mut t = DeltaTracker::new(100, 600, 90);
        assert_eq!(
            count(t.cumulative(1, 7, T0, T0 + MIN, h(5))),
            Some((5, false))
        );
        t.end_export([7]);
        // A retry of the same export: zero delta.
        assert_eq!(
            count(t.cumulative(1, 7, T0, T0 + MIN, h(5))),
            Some((0, false))
        );
        // Beyla restarted: new start, the new cumulative value is the delta.
        assert_eq!(
            count(t.cumulative(1, 7, T0 + 2 * MIN, T0 + 3 * MIN, h(2))),
            Some((2, true))
        );
        // Count went down without a new start: also a reset.
        assert_eq!(
            count(t.cumulative(1, 7, T0 + 2 * MIN, T0 + 4 * MIN, h(1))),
            Some((1, true))
        );
        // Late, older point.
        assert!(matches!(
            t.cumulative(1, 7, T0, T0 + MIN, h(5)),
            Step::Skip(SkipReason::OutOfOrder)
        ));
    }

    #[test]
    fn bounded_and_evicted() {
        let mut t = DeltaTracker::new(1, 600, 90);
        assert!(matches!(
            t.cumulative(1, 7, T0, T0 + MIN, h(1)),
            Step::Emit { .. }
        ));
        assert!(matches!(
            t.cumulative(2, 7, T0, T0 + MIN, h(1)),
            Step::Skip(SkipReason::SeriesCap(1))
        ));
        t.end_export([7]);
        t.observe(T0 + 20 * MIN);
        t.end_export([]);
        assert_eq!(t.len(), 0);
        assert_eq!(t.clock(), T0 + 20 * MIN);
    }
}
