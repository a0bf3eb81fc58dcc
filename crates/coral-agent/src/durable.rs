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
use std::time::Duration;

use tokio::sync::watch;

use crate::pipeline::IngestError;

/// Failed generations remembered for requests still waiting on them.
const FAILURES_KEPT: usize = 1024;

/// How long a request waits for its commit before it is answered 503.
pub const STORE_WAIT: Duration = Duration::from_secs(30);

/// The generation a request's RED was recorded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(pub(crate) u64);

#[derive(Debug, Default)]
struct State {
    /// Every generation up to this one is committed or failed.
    decided_through: u64,
    /// Recent failed generations and why.
    failures: VecDeque<(u64, Arc<str>)>,
}

/// Commit outcomes, published by the writer and awaited by requests.
#[derive(Clone)]
pub struct Durability {
    state: Arc<watch::Sender<State>>,
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
        }
    }

    /// Generation `generation` (and every earlier one not failed) is on disk.
    pub(crate) fn stored(&self, generation: u64) {
        self.state
            .send_modify(|s| s.decided_through = s.decided_through.max(generation));
    }

    /// Generation `generation` could not be committed.
    pub(crate) fn failed(&self, generation: u64, reason: &str) {
        self.state.send_modify(|s| {
            s.decided_through = s.decided_through.max(generation);
            s.failures.push_back((generation, reason.into()));
            if s.failures.len() > FAILURES_KEPT {
                s.failures.pop_front();
            }
        });
    }

    /// Waits until `ticket`'s generation is decided (at most `patience`).
    pub async fn wait(&self, ticket: Ticket, patience: Duration) -> Result<(), IngestError> {
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
