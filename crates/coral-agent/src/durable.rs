//! Answering OTLP exports once they are stored (`agent.telemetry.ack: stored`).
//!
//! Every request records its RED in the aggregator's current *generation*
//! and, under the same lock, queues its kept spans for the writer. At each
//! commit the writer takes the aggregator's deltas (closing that
//! generation), drains the queue, and commits spans and deltas in one
//! transaction; then it marks the generation stored, or failed with the
//! reason. A request waits for its generation ([`Ticket`]) before it is
//! answered: 200 once stored, 503 / `UNAVAILABLE` when the commit failed (the
//! client retries; nothing it was told is stored is lost).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::pipeline::IngestError;

/// Failed generations remembered for requests still waiting on them.
const FAILURES_KEPT: usize = 1024;

/// How long a request waits for its commit before it is answered 503.
pub const STORE_WAIT: Duration = Duration::from_secs(30);

/// How long requests may wait without any commit being decided before new
/// exports are refused as throttled: the store is behind, and a client told
/// to retry in a second is better served than one answered after its
/// timeout (which it would send again).
pub const MAX_COMMIT_LAG: Duration = Duration::from_secs(5);

/// The generation a request's RED was recorded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(pub(crate) u64);

/// Bytes of kept spans (as the store counts them) queued for one generation
/// at most: its commit is one transaction, and a transaction much larger
/// than this, beside a checkpoint and the colony's reads, outgrew the
/// store's 32 MB memory budget under overload (a failed checkpoint, the
/// database invalidated and reopened; RELIABILITY.md, "Overload").
pub const MAX_GENERATION_BYTES: usize = 16 << 20;

/// How much the generation open now holds, so that exports beyond
/// [`MAX_GENERATION_BYTES`] wait for the next one (refused as throttled).
#[derive(Debug, Default)]
pub(crate) struct OpenGeneration {
    generation: u64,
    bytes: usize,
}

impl OpenGeneration {
    /// Whether `bytes` more fit in `generation` (a new generation starts
    /// empty, and an empty one takes any export, however large).
    pub(crate) fn fits(&mut self, generation: u64, bytes: usize) -> bool {
        if generation != self.generation {
            self.generation = generation;
            self.bytes = 0;
        }
        self.bytes == 0 || self.bytes.saturating_add(bytes) <= MAX_GENERATION_BYTES
    }

    /// Counts `bytes` in the generation last checked with [`Self::fits`].
    pub(crate) fn add(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes);
    }
}

#[derive(Debug)]
struct State {
    /// Every generation up to this one is committed or failed.
    decided_through: u64,
    /// Recent failed generations and why.
    failures: VecDeque<(u64, Arc<str>)>,
    /// The newest failed generation no longer in `failures`.
    forgotten_through: u64,
    /// When the latest generation was decided, or requests began to wait
    /// after none did (or the agent started).
    decided_at: Instant,
}

impl Default for State {
    fn default() -> Self {
        State {
            decided_through: 0,
            failures: VecDeque::new(),
            forgotten_through: 0,
            decided_at: Instant::now(),
        }
    }
}

/// Commit outcomes, published by the writer and awaited by requests.
#[derive(Clone)]
pub struct Durability {
    state: Arc<watch::Sender<State>>,
    /// Requests waiting for their commit now.
    waiting: Arc<AtomicUsize>,
}

impl Default for Durability {
    fn default() -> Self {
        Self::new()
    }
}

impl Durability {
    /// Nothing decided yet.
    pub fn new() -> Self {
        Durability {
            state: Arc::new(watch::Sender::new(State::default())),
            waiting: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Generation `generation` (and every earlier one not failed) is on disk.
    pub(crate) fn stored(&self, generation: u64) {
        self.state.send_modify(|s| {
            s.decided_through = s.decided_through.max(generation);
            s.decided_at = Instant::now();
        });
    }

    /// Generation `generation` could not be committed.
    pub(crate) fn failed(&self, generation: u64, reason: &str) {
        self.state.send_modify(|s| {
            s.decided_through = s.decided_through.max(generation);
            s.decided_at = Instant::now();
            s.failures.push_back((generation, reason.into()));
            if s.failures.len() > FAILURES_KEPT
                && let Some((forgotten, _)) = s.failures.pop_front()
            {
                s.forgotten_through = forgotten;
            }
        });
    }

    /// Whether `generation`'s commit failed, or may have: a generation older
    /// than the failures still remembered counts as failed, so that an
    /// export it held is taken again rather than lost ([`crate::dedup`]).
    pub(crate) fn may_have_failed(&self, generation: u64) -> bool {
        let s = self.state.borrow();
        generation <= s.forgotten_through || s.failures.iter().any(|(g, _)| *g == generation)
    }

    /// Whether the store is behind: requests are waiting for their commit
    /// and none has been decided for longer than `lag`.
    pub(crate) fn behind(&self, lag: Duration) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0 && self.state.borrow().decided_at.elapsed() > lag
    }

    /// Waits until `ticket`'s generation is decided (at most `patience`).
    pub async fn wait(&self, ticket: Ticket, patience: Duration) -> Result<(), IngestError> {
        struct Waiting<'a>(&'a AtomicUsize);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, Ordering::Relaxed);
            }
        }
        if self.waiting.fetch_add(1, Ordering::Relaxed) == 0 {
            // An idle store is not behind: its lag counts from now.
            self.state.send_if_modified(|s| {
                s.decided_at = Instant::now();
                false
            });
        }
        let _waiting = Waiting(&self.waiting);
        let mut rx = self.state.subscribe();
        let decided =
            tokio::time::timeout(patience, rx.wait_for(|s| s.decided_through >= ticket.0)).await;
        let state = match decided {
            Ok(Ok(state)) => state,
            Ok(Err(_)) => return Err(IngestError::ShuttingDown),
            Err(_) => {
                return Err(IngestError::NotStored(format!(
                    "the store did not commit within {}s",
                    patience.as_secs()
                )));
            }
        };
        match state.failures.iter().find(|(g, _)| *g == ticket.0) {
            Some((_, reason)) => Err(IngestError::NotStored(reason.to_string())),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_request_learns_whether_its_generation_was_stored() {
        let durability = Durability::new();
        let waiting = tokio::spawn({
            let d = durability.clone();
            async move { d.wait(Ticket(2), STORE_WAIT).await }
        });
        durability.stored(1);
        durability.failed(2, "No space left on device");
        durability.stored(3);
        let outcome = waiting.await.unwrap();
        assert_eq!(
            outcome,
            Err(IngestError::NotStored("No space left on device".into()))
        );
        assert_eq!(durability.wait(Ticket(3), STORE_WAIT).await, Ok(()));
        assert_eq!(durability.wait(Ticket(1), STORE_WAIT).await, Ok(()));
        assert!(durability.may_have_failed(2));
        assert!(!durability.may_have_failed(3));
        assert!(!durability.may_have_failed(4), "not decided yet");
    }

    #[tokio::test]
    async fn the_store_is_behind_when_requests_wait_and_nothing_is_decided() {
        let durability = Durability::new();
        assert!(!durability.behind(Duration::ZERO), "nobody waits");
        let waiting = tokio::spawn({
            let d = durability.clone();
            async move { d.wait(Ticket(1), STORE_WAIT).await }
        });
        while durability.waiting.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        assert!(durability.behind(Duration::ZERO));
        assert!(!durability.behind(MAX_COMMIT_LAG), "decided at the start");
        durability.stored(1);
        assert_eq!(waiting.await.unwrap(), Ok(()));
        assert!(!durability.behind(Duration::ZERO), "nobody waits any more");
    }

    #[test]
    fn a_generation_takes_exports_up_to_its_bound() {
        let mut open = OpenGeneration::default();
        assert!(
            open.fits(1, MAX_GENERATION_BYTES * 2),
            "an empty one takes any"
        );
        open.add(MAX_GENERATION_BYTES - 10);
        assert!(open.fits(1, 10));
        open.add(10);
        assert!(!open.fits(1, 1), "full");
        assert!(open.fits(2, 1), "the next generation starts empty");
    }

    #[test]
    fn failures_no_longer_remembered_may_have_happened() {
        let durability = Durability::new();
        let first = 10;
        for g in first..first + FAILURES_KEPT as u64 + 1 {
            durability.failed(g, "disk full");
        }
        assert!(durability.may_have_failed(first));
        assert!(
            durability.may_have_failed(first - 1),
            "older than any remembered"
        );
        durability.stored(2_000);
        assert!(!durability.may_have_failed(1_999));
    }

    #[tokio::test]
    async fn a_commit_that_never_comes_is_answered_after_the_wait() {
        let durability = Durability::new();
        let outcome = durability.wait(Ticket(1), Duration::from_millis(10)).await;
        assert!(
            matches!(outcome, Err(IngestError::NotStored(_))),
            "{outcome:?}"
        );
    }
}
