//! The colony's view of its agents: identity (persisted in `agents`), when
//! each was last seen, how its last poll went, and its health.
//!
//! Health: an agent seen (registration, heartbeat, successful poll or push)
//! within `degraded_after` is healthy, within `unreachable_after` degraded,
//! later unreachable; one whose last poll failed is at best degraded; one
//! never seen since the colony started is unknown.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use crate::store::writer::AgentRecord;

/// What the colony knows about one agent.
#[derive(Debug, Clone, Default)]
pub struct AgentState {
    /// Identity and endpoint.
    pub record: AgentRecord,
    /// Last registration, heartbeat, successful poll or push.
    pub last_seen: Option<SystemTime>,
    /// Last poll attempt that finished.
    pub last_poll: Option<SystemTime>,
    /// Error of the last poll, if it failed.
    pub last_poll_error: Option<String>,
    /// The agent's store session as last reported.
    pub session_id: String,
    /// Newest seq_id the agent reported.
    pub agent_latest_seq: u64,
    /// Newest seq_id reported per recent store session, newest session
    /// last (at most [`SESSIONS_KEPT`]). When an agent's database is replaced,
    /// the old session's entry says how far it had got, so the rows the colony
    /// never read can be recorded as a gap.
    pub reported: Vec<(String, u64)>,
    /// Beyla on the agent, as last reported (registration or heartbeat).
    pub beyla: Option<coral_proto::common::BeylaCapabilities>,
    /// Newest Beyla seq_id the agent reported.
    pub beyla_latest_seq: u64,
    /// Times a store session that a newer one had replaced reported again,
    /// and when it last did: two live processes sharing one agent id.
    pub sessions_returned: u32,
    /// When a replaced session last reported again.
    pub session_returned_at: Option<SystemTime>,
}

/// How many store sessions per agent [`AgentState::reported`] remembers.
pub const SESSIONS_KEPT: usize = 4;

/// A replaced session that reports again this many times means two live
/// processes share the agent id (once can be a page read just before the
/// agent's database was replaced, stored just after).
const RETURNS_FOR_SHARED_ID: u32 = 2;

/// How long [`AgentState::shared_id`] keeps saying so after the last return.
const SHARED_ID_SHOWN_FOR: Duration = Duration::from_secs(600);

impl AgentState {
    /// Notes that the agent reported `latest_seq` in `session_id`.
    fn report(&mut self, session_id: &str, latest_seq: u64) {
        self.agent_latest_seq = latest_seq;
        if session_id.is_empty() {
            return;
        }
        let previous = std::mem::replace(&mut self.session_id, session_id.to_owned());
        match self.reported.iter().position(|(s, _)| s == session_id) {
            Some(i) => {
                if previous != session_id && !previous.is_empty() {
                    self.session_returned(&previous, session_id);
                }
                let (session, seq) = self.reported.remove(i);
                self.reported.push((session, seq.max(latest_seq)));
            }
            None => {
                if self.reported.len() == SESSIONS_KEPT {
                    self.reported.remove(0);
                }
                self.reported.push((session_id.to_owned(), latest_seq));
            }
        }
    }

    /// `returned`, which `current` had replaced, reported again.
    fn session_returned(&mut self, current: &str, returned: &str) {
        let now = SystemTime::now();
        let quiet = self
            .session_returned_at
            .is_none_or(|at| now.duration_since(at).unwrap_or_default() >= SHARED_ID_SHOWN_FOR);
        if quiet {
            self.sessions_returned = 0;
        }
        self.sessions_returned += 1;
        self.session_returned_at = Some(now);
        if self.sessions_returned == RETURNS_FOR_SHARED_ID {
            tracing::warn!(
                agent_id = %self.record.agent_id,
                sessions = %format!("{current}, {returned}"),
                "two agent processes report the same agent id: their store sessions alternate, so the colony re-reads each from the start; give each process its own agent.id"
            );
        }
    }

    /// Says so when two live processes seem to share this agent id (a
    /// replaced store session kept reporting within the last 10 minutes).
    pub fn shared_id(&self, now: SystemTime) -> Option<String> {
        let at = self.session_returned_at?;
        let recent = now.duration_since(at).unwrap_or_default() < SHARED_ID_SHOWN_FOR;
        (recent && self.sessions_returned >= RETURNS_FOR_SHARED_ID).then(|| {
            "two processes report this agent id (their store sessions alternate and \
             each is re-read from the start): give each its own agent.id"
                .to_owned()
        })
    }
}

/// Health of an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Seen recently, last poll fine.
    Healthy,
    /// Not seen for a while, or its last poll failed.
    Degraded,
    /// Not seen for longer than `unreachable_after`.
    Unreachable,
    /// Not seen since the colony started.
    Unknown,
}

impl Health {
    /// The name shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "healthy",
            Health::Degraded => "degraded",
            Health::Unreachable => "unreachable",
            Health::Unknown => "unknown",
        }
    }
}

/// Thresholds for [`Health`].
#[derive(Debug, Clone, Copy)]
pub struct HealthPolicy {
    /// Degraded after this long unseen.
    pub degraded_after: Duration,
    /// Unreachable after this long unseen.
    pub unreachable_after: Duration,
}

impl AgentState {
    /// Health at `now`.
    pub fn health(&self, policy: &HealthPolicy, now: SystemTime) -> Health {
        let Some(seen) = self.last_seen else {
            return Health::Unknown;
        };
        let age = now.duration_since(seen).unwrap_or_default();
        if age >= policy.unreachable_after {
            Health::Unreachable
        } else if age >= policy.degraded_after || self.last_poll_error.is_some() {
            Health::Degraded
        } else {
            Health::Healthy
        }
    }

    /// True when the poller should pull this agent.
    pub fn pollable(&self) -> bool {
        !self.record.endpoint.is_empty()
    }
}

/// Every known agent, by id.
#[derive(Default)]
pub struct Registry {
    agents: Mutex<HashMap<String, AgentState>>,
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AgentState>> {
        self.agents.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces an agent's identity; keeps its observed state.
    /// Returns the record as stored (first registration time kept).
    pub fn upsert(&self, mut record: AgentRecord, seen: bool) -> AgentRecord {
        let mut agents = self.lock();
        let state = agents.entry(record.agent_id.clone()).or_default();
        if state.record.registered_at_us != 0 {
            record.registered_at_us = state.record.registered_at_us;
        }
        state.record = record.clone();
        if seen {
            state.last_seen = Some(SystemTime::now());
        }
        record
    }

    /// Marks an agent seen; false when unknown.
    pub fn seen(&self, agent_id: &str, session_id: &str, latest_seq: Option<u64>) -> bool {
        let mut agents = self.lock();
        let Some(state) = agents.get_mut(agent_id) else {
            return false;
        };
        state.last_seen = Some(SystemTime::now());
        match latest_seq {
            Some(seq) => state.report(session_id, seq),
            None if !session_id.is_empty() => state.session_id = session_id.to_owned(),
            None => {}
        }
        true
    }

    /// Records what a page said about the agent (during a drain).
    pub fn progress(&self, agent_id: &str, session_id: &str, latest_seq: u64) {
        let mut agents = self.lock();
        if let Some(state) = agents.get_mut(agent_id) {
            state.last_seen = Some(SystemTime::now());
            state.report(session_id, latest_seq);
        }
    }

    /// The newest seq_id the agent reported per recent store session
    /// (registration, heartbeats, pages), for [`crate::store::ingest::Page`].
    pub fn reported(&self, agent_id: &str) -> Vec<(String, u64)> {
        self.lock()
            .get(agent_id)
            .map(|s| s.reported.clone())
            .unwrap_or_default()
    }

    /// Records the agent's Beyla status.
    pub fn set_beyla(&self, agent_id: &str, beyla: coral_proto::common::BeylaCapabilities) {
        if let Some(state) = self.lock().get_mut(agent_id) {
            state.beyla = Some(beyla);
        }
    }

    /// Records the agent's newest Beyla seq_id (during a Beyla drain).
    pub fn beyla_progress(&self, agent_id: &str, latest_seq: u64) {
        if let Some(state) = self.lock().get_mut(agent_id) {
            state.beyla_latest_seq = latest_seq;
        }
    }

    /// Records the end of a poll.
    pub fn poll_finished(&self, agent_id: &str, result: Result<(String, u64), String>) {
        let mut agents = self.lock();
        let Some(state) = agents.get_mut(agent_id) else {
            return;
        };
        let now = SystemTime::now();
        state.last_poll = Some(now);
        match result {
            Ok((session, latest)) => {
                state.last_seen = Some(now);
                state.last_poll_error = None;
                state.report(&session, latest);
            }
            Err(error) => state.last_poll_error = Some(error),
        }
    }

    /// A copy of every agent's state, sorted by id.
    pub fn snapshot(&self) -> Vec<AgentState> {
        let mut all: Vec<_> = self.lock().values().cloned().collect();
        all.sort_by(|a, b| a.record.agent_id.cmp(&b.record.agent_id));
        all
    }

    /// One agent's state.
    pub fn get(&self, agent_id: &str) -> Option<AgentState> {
        self.lock().get(agent_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_follows_last_seen_and_poll_errors() {
        let policy = HealthPolicy {
            degraded_after: Duration::from_secs(45),
            unreachable_after: Duration::from_secs(120),
        };
        let now = SystemTime::now();
        let mut state = AgentState::default();
        assert_eq!(state.health(&policy, now), Health::Unknown);
        state.last_seen = Some(now - Duration::from_secs(10));
        assert_eq!(state.health(&policy, now), Health::Healthy);
        state.last_poll_error = Some("refused".into());
        assert_eq!(state.health(&policy, now), Health::Degraded);
        state.last_poll_error = None;
        state.last_seen = Some(now - Duration::from_secs(60));
        assert_eq!(state.health(&policy, now), Health::Degraded);
        state.last_seen = Some(now - Duration::from_secs(600));
        assert_eq!(state.health(&policy, now), Health::Unreachable);
    }

    #[test]
    fn reported_keeps_the_newest_seq_of_recent_sessions() {
        let mut state = AgentState::default();
        state.report("a", 10);
        state.report("a", 7);
        state.report("b", 3);
        assert_eq!(state.reported, [("a".into(), 10), ("b".into(), 3)]);
        assert_eq!(
            (state.session_id.as_str(), state.agent_latest_seq),
            ("b", 3)
        );
        // A late report from the old session does not lower what it reached.
        state.report("a", 9);
        assert_eq!(state.reported, [("b".into(), 3), ("a".into(), 10)]);
        for (i, s) in ["c", "d", "e"].into_iter().enumerate() {
            state.report(s, i as u64);
        }
        assert_eq!(state.reported.len(), SESSIONS_KEPT);
        assert_eq!(state.reported[0].0, "a");
        assert_eq!(
            state.shared_id(SystemTime::now()),
            None,
            "one return is not enough"
        );
        // An agent that names no session still reports how far it got.
        state.report("", 99);
        assert_eq!(state.reported.len(), SESSIONS_KEPT);
        assert_eq!(
            (state.session_id.as_str(), state.agent_latest_seq),
            ("e", 99)
        );
    }

    #[test]
    fn alternating_sessions_mean_a_shared_agent_id() {
        let mut state = AgentState::default();
        state.report("old", 10);
        state.report("new", 1);
        assert_eq!(
            state.shared_id(SystemTime::now()),
            None,
            "a database replaced once"
        );
        // The old process is still alive: it and the new one alternate.
        state.report("old", 11);
        assert_eq!(state.shared_id(SystemTime::now()), None);
        state.report("new", 2);
        let now = SystemTime::now();
        assert!(state.shared_id(now).unwrap().contains("agent.id"));
        // Reports from the current session alone do not count.
        state.report("new", 3);
        assert_eq!(state.sessions_returned, 2);
        // It stops being shown once the sessions have stopped alternating.
        assert_eq!(state.shared_id(now + SHARED_ID_SHOWN_FOR), None);
    }
}
