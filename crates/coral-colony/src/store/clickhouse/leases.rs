//! Colonies' leases in ClickHouse (`colonies`): each colony that shares the
//! store inserts a new version of its row at every renewal; the live
//! colonies are those renewed recently.

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
