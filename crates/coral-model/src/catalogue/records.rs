//! The colony's own records: agents, cursors, gaps and leases. Agents have
//! no table of them.

use super::columns::{col, null};
use super::{Column, Kind, Table, Ty};

/// A registered or configured agent.
pub const AGENTS: Table = Table {
    name: "agents",
    columns: &[
        col("agent_id", Ty::Text),
        col("endpoint", Ty::Text),
        col("version", Ty::Text),
        col("mode", Ty::Text),
        col("capabilities", Ty::Text),
        col("hostname", Ty::Text),
        col("source", Ty::Text),
        col("registered_at", Ty::Timestamp),
        null("last_seen", Ty::Timestamp),
    ],
    agent: None,
    time: None,
    lookup: &[],
    kind: Kind::Records,
    part_key: &["agent_id"],
    version: Some("last_seen"),
};

/// Per (agent, stream): the agent store session and how far the colony has
/// stored its rows.
pub const CURSORS: Table = Table {
    name: "cursors",
    columns: &[
        col("agent_id", Ty::Text),
        col("stream", Ty::Text),
        col("session_id", Ty::Text),
        col("seq_id", Ty::U64),
        col("rows_received", Ty::U64),
        col("updated_at", Ty::Timestamp),
        Column {
            nullable: true,
            default: Some("0"),
            ..col("latest_seq_id", Ty::U64)
        },
    ],
    agent: None,
    time: None,
    lookup: &[],
    kind: Kind::Records,
    part_key: &["agent_id", "stream"],
    version: Some("updated_at"),
};

/// Ranges of an agent's seq_ids the colony never received, and why.
pub const GAPS: Table = Table {
    name: "gaps",
    columns: &[
        col("agent_id", Ty::Text),
        col("stream", Ty::Text),
        col("session_id", Ty::Text),
        col("from_seq_id", Ty::U64),
        col("to_seq_id", Ty::U64),
        col("detected_at", Ty::Timestamp),
        col("reason", Ty::Text),
    ],
    agent: None,
    time: Some("detected_at"),
    lookup: &[],
    kind: Kind::Records,
    part_key: &["agent_id", "stream", "session_id", "from_seq_id", "reason"],
    version: Some("detected_at"),
};

/// A colony's lease: colonies that share one ClickHouse renew it to say
/// they are alive (the colony's `fleet`).
pub const COLONIES: Table = Table {
    name: "colonies",
    columns: &[
        col("colony_id", Ty::Text),
        col("instance", Ty::Text),
        col("endpoint", Ty::Text),
        col("started_at", Ty::Timestamp),
        col("renewed_at", Ty::Timestamp),
    ],
    agent: None,
    time: None,
    lookup: &[],
    kind: Kind::Records,
    part_key: &["colony_id", "instance"],
    version: Some("renewed_at"),
};

/// How the last poll of an agent went, as the colony that polls it saw it:
/// the other colonies of the fleet show it (the newest poll wins).
pub const AGENT_POLLS: Table = Table {
    name: "agent_polls",
    columns: &[
        col("agent_id", Ty::Text),
        col("polled_by", Ty::Text),
        col("last_poll", Ty::Timestamp),
        col("last_poll_error", Ty::Text),
    ],
    agent: None,
    time: None,
    lookup: &[],
    kind: Kind::Records,
    part_key: &["agent_id"],
    version: Some("last_poll"),
};
