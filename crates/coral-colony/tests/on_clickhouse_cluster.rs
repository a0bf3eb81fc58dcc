//! The colony's engine-neutral tests a third time, with the colony's store
//! on a ClickHouse cluster: two servers, each a shard of one
//! `remote_servers` cluster, and the ZooKeeper their `ON CLUSTER`
//! statements need (`storage.cluster` set). Each colony's tables are
//! `*_local` tables on both shards behind `Distributed` tables sharded by
//! agent id; the tests must give the same answers as on one server and on
//! the embedded DuckDB. The same files as `tests/on_clickhouse.rs`; the
//! shards themselves are checked in `tests/clickhouse_cluster.rs`.
//!
//! Skipped, with a message, when `clickhouse-server` or ZooKeeper (Debian's
//! `zookeeper`) is missing; a failure with `CORAL_REQUIRE_CLICKHOUSE=1`, as
//! in CI.

// Each file declares `mod common;`, so each has its own copy of the
// helpers (and starts its own shared cluster on first use).
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
