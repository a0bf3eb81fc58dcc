//! The Coral colony: it knows every agent, pulls their rows with cursors,
//! accepts pushes from agents that cannot be polled, keeps the history in
//! DuckDB, and answers the CLI's queries.
//!
//! - [`ask`]: `Diagnose` (`coral ask`): the question read, the diagnosis
//!   engine run over the store.
//! - [`catalogue`]: every stored table declared once, rendered for DuckDB
//!   and ClickHouse.
//! - [`store`]: `colony.duckdb` (schema, the single writer, page ingest
//!   with cursors and gaps, bucket merging, queries) or ClickHouse, behind
//!   one interface.
//! - [`fleet`]: colonies sharing one ClickHouse: leases, and which colony
//!   polls which agent.
//! - [`registry`]: agents, when they were last seen, their health.
//! - [`poller`]: the pull loop (bounded concurrency, timeouts, draining).
//! - [`service`]: the `coral.colony.v1.ColonyService` gRPC API.
//! - [`metrics`]: the colony's own counters and the opt-in RED exposition.
//! - [`admin`]: the admin HTTP endpoint (`/metrics`, `/metrics/red`,
//!   `/healthz`).
//! - [`runtime`]: start and orderly shutdown.

pub mod admin;
pub mod ask;
pub mod catalogue;
pub mod fleet;
pub mod metrics;
pub mod migrate;
pub mod poller;
pub mod registry;
pub mod runtime;
pub mod service;
pub mod store;

pub use runtime::{RunningColony, StartError, start};
