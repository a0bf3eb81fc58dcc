//! Colonies' leases in ClickHouse (`colonies`): each colony that shares the
//! store inserts a new version of its row at every renewal; the live
//! colonies are those renewed recently. With each renewal a colony also
//! records how its last poll of each of its agents went (`agent_polls`).

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::write::insert;
use super::{ClickHouse, ClickHouseError};
use crate::catalogue;

/// One renewal of a colony's lease.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub struct LeaseRow {
    /// `colony.id`.
    pub colony_id: String,
    /// This run of the colony (a new one at each start).
    pub instance: String,
    /// Its API endpoint, as configured.
    pub endpoint: String,
    /// When this run started (Unix µs).
    pub started_at: i64,
    /// When the lease was renewed (Unix µs).
    pub renewed_at: i64,
}

/// Renews `lease`.
pub async fn renew(ch: &ClickHouse, lease: &LeaseRow) -> Result<(), ClickHouseError> {
    insert(ch, &catalogue::COLONIES, std::slice::from_ref(lease)).await
}

/// The newest lease of every colony run renewed at or after `since` (Unix
/// µs).
pub async fn live(ch: &ClickHouse, since: i64) -> Result<Vec<LeaseRow>, ClickHouseError> {
    ch.client()
        .query(&format!(
            "SELECT ?fields FROM {} FINAL WHERE renewed_at >= ? ORDER BY colony_id, instance",
            ch.target().table(&catalogue::COLONIES)
        ))
        .bind(since)
        .fetch_all()
        .await
        .map_err(ch.failed("colony leases read"))
}

/// How a colony's last poll of an agent went.
#[derive(Debug, Clone, PartialEq, Eq, Row, Serialize, Deserialize)]
pub struct PollRow {
    /// The agent.
    pub agent_id: String,
    /// The colony that polled it (`colony.id`).
    pub polled_by: String,
    /// When the poll finished (Unix µs).
    pub last_poll: i64,
    /// Why it failed; empty when it succeeded.
    pub last_poll_error: String,
}

/// Records the last polls of a colony's agents.
pub async fn record_polls(ch: &ClickHouse, polls: &[PollRow]) -> Result<(), ClickHouseError> {
    if polls.is_empty() {
        return Ok(());
    }
    insert(ch, &catalogue::AGENT_POLLS, polls).await
}

/// The newest poll of every agent, by whichever colony polled it.
pub async fn polls(ch: &ClickHouse) -> Result<Vec<PollRow>, ClickHouseError> {
    ch.client()
        .query(&format!(
            "SELECT ?fields FROM {} FINAL ORDER BY agent_id",
            ch.target().table(&catalogue::AGENT_POLLS)
        ))
        .fetch_all()
        .await
        .map_err(ch.failed("agent polls read"))
}
