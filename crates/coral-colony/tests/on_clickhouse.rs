//! The colony's engine-neutral tests again, with the colony's store on
//! ClickHouse: each file below is compiled a second time into this binary,
//! where `common::ON_CLICKHOUSE` holds, so the colonies they start and the
//! stores they open use a ClickHouse server this binary shares (one
//! database per colony or store). They must give the same answers as on
//! the embedded DuckDB. Skipped, with a message, when no `clickhouse-server`
//! is installed (a failure with `CORAL_REQUIRE_CLICKHOUSE=1`, as in CI).
//!
//! Files left out test what only one engine has: the DuckDB file itself
//! (`shared_cursor.rs`, `busy_agent.rs`, `beyla_store.rs`), or
//! ClickHouse directly (`clickhouse.rs`), or no store at all
//! (`push_state.rs`).

// Each file declares `mod common;`, so each has its own copy of the
// helpers (and starts its own shared server on first use).
#![allow(clippy::duplicate_mod)]

#[path = "beyla.rs"]
mod beyla;
#[path = "beyla_rows.rs"]
mod beyla_rows;
#[path = "host.rs"]
mod host;
#[path = "prometheus.rs"]
mod prometheus;
#[path = "pull.rs"]
mod pull;
#[path = "push.rs"]
mod push;
#[path = "security.rs"]
mod security;
#[path = "sim_agents.rs"]
mod sim_agents;
#[path = "trace_model.rs"]
mod trace_model;
