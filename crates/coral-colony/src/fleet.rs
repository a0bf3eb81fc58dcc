//! Several colonies over one fleet. Colonies that share one ClickHouse
//! share its registry, cursors and gaps; each agent is polled by one of
//! them, chosen by rendezvous hashing of the agent id over the live
//! colonies. Each colony renews a lease row every `colony.poll.lease_interval`;
//! one that misses three renewals is taken for dead and its agents move to
//! the others (only its share moves: the others keep theirs). A hand-over
//! that polls an agent twice is harmless, since a page stored twice
//! collapses in the store. Each renewal also loads the agents registered at
//! the other colonies, so every colony lists the whole fleet and polls its
//! share of it, and records when this colony last saw the agents it polls
//! and how its last poll of each went, so the others show their health and
//! last poll error too.
//!
//! An embedded (DuckDB) colony is alone and owns every agent.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::registry::Registry;
use crate::store::clickhouse::leases::{self, LeaseRow, PollRow};
use crate::store::clickhouse::{self, ClickHouse};
use crate::store::writer::AgentRecord;
use crate::store::{micros, now_micros};

/// Renewals a colony may miss before the others take its agents.
pub const MISSED_RENEWALS: u32 = 3;

/// What a colony needs to take part in a fleet.
#[derive(Debug, Clone)]
pub struct FleetSettings {
    /// `colony.id`: unique per colony.
    pub colony_id: String,
    /// Its API endpoint, shown to the others.
    pub endpoint: String,
    /// How often the lease is renewed.
    pub lease_interval: Duration,
}

/// This colony's view of the colonies sharing its store.
pub struct Fleet {
    settings: FleetSettings,
    instance: String,
    started_at: i64,
    store: ClickHouse,
    registry: Arc<Registry>,
    /// Live colony ids, sorted; empty until the first renewal.
    members: RwLock<Vec<String>>,
}

impl Fleet {
    /// A fleet member on `store` (its first renewal is [`Fleet::renew`]).
    pub fn new(settings: FleetSettings, store: ClickHouse, registry: Arc<Registry>) -> Arc<Fleet> {
        Arc::new(Fleet {
            instance: uuid::Uuid::new_v4().to_string(),
            started_at: now_micros(),
            settings,
            store,
            registry,
            members: RwLock::default(),
        })
    }

    /// The live colonies, this one included.
    pub fn members(&self) -> Vec<String> {
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
        if members.is_empty() {
            vec![self.settings.colony_id.clone()]
        } else {
            members.clone()
        }
    }

    /// Whether this colony polls `agent_id`.
    pub fn owns(&self, agent_id: &str) -> bool {
        owner(agent_id, &self.members()) == Some(self.settings.colony_id.as_str())
    }

    /// The colony that polls `agent_id`.
    pub fn owner_of(&self, agent_id: &str) -> String {
        owner(agent_id, &self.members())
            .unwrap_or(&self.settings.colony_id)
            .to_owned()
    }

    /// Renews the lease, reads who is alive and loads agents registered at
    /// the other colonies.
    pub async fn renew(&self) -> Result<(), crate::store::StoreError> {
        let now = now_micros();
        let lease = LeaseRow {
            colony_id: self.settings.colony_id.clone(),
            instance: self.instance.clone(),
            endpoint: self.settings.endpoint.clone(),
            started_at: self.started_at,
            renewed_at: now,
        };
        leases::renew(&self.store, &lease).await?;
        let window = self.settings.lease_interval * MISSED_RENEWALS;
        let since = now - window.as_micros() as i64;
        let live = leases::live(&self.store, since).await?;
        let mut members: Vec<String> = live.iter().map(|l| l.colony_id.clone()).collect();
        members.push(self.settings.colony_id.clone());
        members.sort();
        members.dedup();
        for twin in live
            .iter()
            .filter(|l| l.colony_id == self.settings.colony_id && l.instance != self.instance)
        {
            tracing::warn!(colony_id = %twin.colony_id, other = %twin.endpoint, "another running colony has this colony.id: give each colony its own id, or they poll the same agents");
        }
        let changed = {
            let mut current = self.members.write().unwrap_or_else(|p| p.into_inner());
            let changed = *current != members;
            *current = members.clone();
            changed
        };
        if changed {
            tracing::info!(colonies = ?members, "colonies sharing the store");
        }
        // When this colony last saw the agents it polls and how its last
        // poll of each went, for the others.
        let mine: Vec<_> = self
            .registry
            .snapshot()
            .into_iter()
            .filter(|a| self.owns(&a.record.agent_id))
            .collect();
        let polls: Vec<PollRow> = mine
            .iter()
            .filter_map(|a| {
                Some(PollRow {
                    last_poll: micros(a.last_poll?),
                    agent_id: a.record.agent_id.clone(),
                    polled_by: self.settings.colony_id.clone(),
                    last_poll_error: a.last_poll_error.clone().unwrap_or_default(),
                })
            })
            .collect();
        let owned: Vec<(AgentRecord, i64)> = mine
            .into_iter()
            .filter_map(|a| Some((a.record, micros(a.last_seen?))))
            .collect();
        clickhouse::record_seen(&self.store, &owned).await?;
        leases::record_polls(&self.store, &polls).await?;
        // The others' polls, for the agents this colony does not poll.
        for poll in leases::polls(&self.store).await? {
            if poll.polled_by != self.settings.colony_id && !self.owns(&poll.agent_id) {
                let at =
                    std::time::UNIX_EPOCH + Duration::from_micros(poll.last_poll.max(0) as u64);
                let error = (!poll.last_poll_error.is_empty()).then_some(poll.last_poll_error);
                self.registry.polled_elsewhere(&poll.agent_id, at, error);
            }
        }
        for (record, seen) in clickhouse::agents_seen(&self.store).await? {
            let known = self.registry.get(&record.agent_id);
            let id = record.agent_id.clone();
            if known.is_none_or(|k| k.record.endpoint != record.endpoint) {
                self.registry.upsert(record, false);
            }
            let at = std::time::UNIX_EPOCH + Duration::from_micros(seen.max(0) as u64);
            self.registry.seen_elsewhere(&id, at);
        }
        Ok(())
    }

    /// Renews every lease interval until `stop`.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.lease_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if let Err(error) = self.renew().await {
                        tracing::warn!(%error, "cannot renew this colony's lease; will retry");
                    }
                }
            }
        }
    }
}

/// The colony that polls `agent_id` among `members`: the one with the
/// highest hash of (colony, agent), so that a colony leaving or joining
/// moves only its own share of agents.
pub fn owner<'a>(agent_id: &str, members: &'a [String]) -> Option<&'a str> {
    members
        .iter()
        .max_by_key(|m| (score(m, agent_id), m.as_str()))
        .map(String::as_str)
}

/// A stable 64-bit hash of (colony, agent): FNV-1a, then a finalising mix
/// so that similar ids spread. The same in every colony and every build.
fn score(colony: &str, agent: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in colony.bytes().chain([0]).chain(agent.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize, prefix: &str) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}-{i}")).collect()
    }

    #[test]
    fn every_agent_has_one_owner_and_shares_are_even() {
        let colonies = ids(3, "colony");
        let agents = ids(3_000, "agent");
        let mut share = std::collections::HashMap::new();
        for a in &agents {
            *share.entry(owner(a, &colonies).unwrap()).or_insert(0) += 1;
        }
        assert_eq!(share.len(), 3);
        for (colony, n) in share {
            assert!((800..=1_200).contains(&n), "{colony} polls {n} of 3000");
        }
        assert_eq!(owner("a", &[]), None);
    }

    #[test]
    fn a_colony_leaving_moves_only_its_own_agents() {
        let three = ids(3, "colony");
        let two: Vec<String> = three[..2].to_vec();
        for a in ids(2_000, "agent") {
            let before = owner(&a, &three).unwrap();
            let after = owner(&a, &two).unwrap();
            if before != "colony-2" {
                assert_eq!(before, after, "{a} moved although its colony lives");
            }
        }
    }

    #[test]
    fn the_hash_is_pinned_so_every_build_agrees() {
        // Colonies of different versions must agree on owners.
        assert_eq!(score("colony-a", "web-1"), 0x3d72_b505_de47_7c24);
        assert_eq!(score("colony-b", "web-1"), 0x6ce4_b4a0_c62c_464b);
        let both = ["colony-a".to_owned(), "colony-b".to_owned()];
        assert_eq!(owner("web-1", &both), Some("colony-b"));
    }
}
