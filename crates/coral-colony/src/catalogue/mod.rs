//! The colony's stored tables: the declarations shared with the agent
//! ([`coral_model::catalogue`], re-exported here), rendered by each storage
//! engine.
//!
//! [`duckdb`] renders them to the embedded store's DDL (the tables `coral
//! up` has always written), [`clickhouse`] to MergeTree tables whose rows
//! carry the key that makes a page stored twice count once (agent, store
//! session, seq_id). A column added to a declaration reaches both engines,
//! and the agent's table of the same rows.

pub mod clickhouse;
pub mod duckdb;

pub use coral_model::catalogue::*;
