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
    /// The agent's recent store sessions, to tell two live processes that
    /// share its id.
    pub sessions: SessionWatch,
}

/// How many store sessions per agent [`AgentState::reported`] remembers.
pub const SESSIONS_KEPT: usize = 4;

/// Reports that switch back to a replaced session, within
/// [`SHARED_ID_WINDOW`], that mean two live processes share the agent id.
/// One is not enough: a page read just before an agent's database was
/// replaced can be stored just after the new session's heartbeat.
const RETURNS_FOR_SHARED_ID: u32 = 2;

/// How long sessions are remembered for [`SessionWatch`], and how long
/// [`AgentState::shared_id`] says so after the last return.
const SHARED_ID_WINDOW: Duration = Duration::from_secs(600);

/// Sessions per agent that [`SessionWatch`] remembers (a fleet that copied
/// one config can share an id many times over).
const SESSIONS_WATCHED: usize = 64;

fn within_window(now: SystemTime, at: SystemTime) -> bool {
    now.duration_since(at).unwrap_or_default() < SHARED_ID_WINDOW
}

/// Watches an agent's store sessions for two live processes sharing its id:
/// a session that a newer one replaced and that reports again.
#[derive(Debug, Clone, Default)]
pub struct SessionWatch {
    /// Sessions reported within the window, most recent last.
    seen: Vec<(String, SystemTime)>,
    /// The session seen for the first time most recently: the one that
    /// replaced the others.
    newest: String,
    /// Switches back to a replaced session within the window.
    returns: u32,
    last_return: Option<SystemTime>,
}

impl SessionWatch {
    /// Notes a report from `session` after one from `previous`; true when
    /// this report makes the id look shared (once, for the log).
    fn report(&mut self, previous: &str, session: &str, now: SystemTime) -> bool {
        self.seen.retain(|(_, at)| within_window(now, *at));
        let known = match self.seen.iter().position(|(s, _)| s == session) {
            Some(i) => {
                self.seen.remove(i);
                true
            }
            None => {
                self.newest = session.to_owned();
                false
            }
        };
        if self.seen.len() >= SESSIONS_WATCHED {
            self.seen.remove(0);
        }
        self.seen.push((session.to_owned(), now));
        let returned = known && session != self.newest && previous != session;
        if !returned {
            return false;
        }
        if !self.last_return.is_some_and(|at| within_window(now, at)) {
            self.returns = 0;
        }
        self.returns += 1;
        self.last_return = Some(now);
        self.returns == RETURNS_FOR_SHARED_ID
    }

    /// True while the id looks shared.
    fn shared(&self, now: SystemTime) -> bool {
        self.returns >= RETURNS_FOR_SHARED_ID
            && self.last_return.is_some_and(|at| within_window(now, at))
    }
}

/// What [`AgentState::shared_id`] says.
const SHARED_ID_WARNING: &str = "two processes report this agent id, and the colony keeps one \
     cursor per id: the rows of all but the last registered are not polled, and pushed rows are \
     re-read from the start at each switch; give each process its own agent.id";

impl AgentState {
    /// Notes that the agent reported `latest_seq` in `session_id`.
    fn report(&mut self, session_id: &str, latest_seq: u64) {
        self.agent_latest_seq = latest_seq;
        if session_id.is_empty() {
            return;
        }
        let previous = std::mem::replace(&mut self.session_id, session_id.to_owned());
        if self
            .sessions
            .report(&previous, session_id, SystemTime::now())
        {
            tracing::warn!(
                agent_id = %self.record.agent_id,
                sessions = %format!("{previous}, {session_id}"),
                "{SHARED_ID_WARNING}"
            );
        }
        match self.reported.iter().position(|(s, _)| s == session_id) {
            Some(i) => {
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

    /// Says so, and what to do, while two live processes seem to share
    /// this agent id (a replaced store session kept reporting within the
    /// last 10 minutes).
    pub fn shared_id(&self, now: SystemTime) -> Option<&'static str> {
        self.sessions.shared(now).then_some(SHARED_ID_WARNING)
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

    /// Marks an agent seen at `at` by another colony of the fleet (the one
    /// that polls it); kept when newer than what this colony saw itself.
    pub fn seen_elsewhere(&self, agent_id: &str, at: SystemTime) {
        let mut agents = self.lock();
        if let Some(state) = agents.get_mut(agent_id)
            && state.last_seen.is_none_or(|s| s < at)
        {
            state.last_seen = Some(at);
        }
    }

    /// Records how another colony's last poll of the agent went (the one
    /// that polls it); kept when newer than this colony's own last poll.
    pub fn polled_elsewhere(&self, agent_id: &str, at: SystemTime, error: Option<String>) {
        let mut agents = self.lock();
        if let Some(state) = agents.get_mut(agent_id)
            && state.last_poll.is_none_or(|p| p < at)
        {
            state.last_poll = Some(at);
            state.last_poll_error = error;
        }
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
        // A page of the old database read before it was replaced and stored
        // after the new one's heartbeat, with the poll's own report.
        state.report("old", 10);
        state.report("old", 10);
        state.report("new", 2);
        assert_eq!(
            state.shared_id(SystemTime::now()),
            None,
            "a database replaced once"
        );
        // The old process is still alive: it and the new one alternate.
        state.report("old", 11);
        let now = SystemTime::now();
        assert!(state.shared_id(now).unwrap().contains("agent.id"));
        // It stops being said once the sessions have stopped alternating.
        assert_eq!(state.shared_id(now + SHARED_ID_WINDOW), None);
    }

    #[test]
    fn many_processes_with_one_id_are_seen_too() {
        let mut state = AgentState::default();
        let sessions: Vec<String> = (0..8).map(|i| format!("s{i}")).collect();
        for round in 0..2 {
            for s in &sessions {
                state.report(s, round);
            }
        }
        assert!(state.shared_id(SystemTime::now()).is_some());
    }
}
