//! Whether the store can write, for admission, `/healthz` and `/status`.
//!
//! The writer marks the store failing when a commit fails (a full disk,
//! DuckDB's "database has been invalidated" after an I/O error) and healthy
//! again once a probe commit goes through, reopening the database first
//! when DuckDB invalidated it. While it fails the pipeline refuses new
//! exports (503 / `UNAVAILABLE` with the reason), so nothing is acknowledged
//! that cannot be stored; RED buckets that could not be written stay in
//! memory, bounded, and are written on recovery.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

/// How often a failing store is probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// Why the store is failing, and since when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failing {
    /// When the first failed commit happened.
    pub since: SystemTime,
    /// The error, on one line.
    pub reason: String,
}

/// The store's state, shared by the writer and the readers of health.
#[derive(Debug, Default)]
pub struct StoreHealth {
    failing: Mutex<Option<Failing>>,
    /// Mirrors `failing.is_some()`, so the ingest path reads one atomic per
    /// request instead of taking the lock.
    is_failing: AtomicBool,
}

impl StoreHealth {
    /// `None` while the store writes.
    pub fn failing(&self) -> Option<Failing> {
        if !self.is_failing.load(Ordering::Acquire) {
            return None;
        }
        self.lock().clone()
    }

    /// A commit failed with `reason`; returns whether the store was healthy
    /// until now.
    pub(crate) fn fail(&self, reason: &str) -> bool {
        let mut failing = self.lock();
        self.is_failing.store(true, Ordering::Release);
        let first = failing.is_none();
        match failing.as_mut() {
            Some(f) => f.reason = reason.to_owned(),
            None => {
                *failing = Some(Failing {
                    since: SystemTime::now(),
                    reason: reason.to_owned(),
                })
            }
        }
        first
    }

    /// A commit went through; returns whether the store was failing.
    pub(crate) fn recover(&self) -> bool {
        let mut failing = self.lock();
        self.is_failing.store(false, Ordering::Release);
        failing.take().is_some()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Failing>> {
        self.failing
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Whether DuckDB has invalidated the database (after a failed write), so
/// that only a new instance can write again.
pub(crate) fn invalidated(error: &dyn std::fmt::Display) -> bool {
    let text = error.to_string();
    text.contains("invalidated") || text.contains("FATAL")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_keeps_its_start_and_the_latest_reason() {
        let health = StoreHealth::default();
        assert!(health.fail("No space left on device"));
        let since = health.failing().unwrap().since;
        assert!(!health.fail("database has been invalidated"));
        let failing = health.failing().unwrap();
        assert_eq!(
            (failing.since, failing.reason.as_str()),
            (since, "database has been invalidated")
        );
        assert!(health.recover());
        assert!(health.failing().is_none());
        assert!(!health.recover());
    }
}
