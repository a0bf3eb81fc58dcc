//! The Coral agent.
//!
//! An OTLP endpoint (gRPC and HTTP) that turns every span into one-minute RED
//! buckets, keeps the spans its static filters select, and stores both in a
//! local DuckDB file that the colony pulls from through `AgentService`.
//!
//! Data flow (see `ARCHITECTURE.md`):
//!
//! ```text
//! OTLP gRPC/HTTP ─▶ receiver ─▶ pipeline: validate ─▶ aggregate (100%) ─▶ filter
//!                                                          │                 │ kept spans
//!                                              flush tick ─┘ buckets         ▼
//!                                                          └──────▶ store writer ─▶ agent.duckdb
//!                                                                                      │
//!                                           colony ◀── AgentService.QueryTelemetry ◀───┘
//! ```
//!
//! Modules: [`receiver`] (OTLP servers), [`normalize`], [`aggregate`],
//! [`filter`], [`pipeline`] (admission and hand-off), [`store`] (DuckDB),
//! [`api`] (AgentService), [`admin`] (Prometheus metrics), [`host`] (host
//! metrics from `/proc`), [`link`] (colony registration and heartbeats),
//! [`push`] (the outbox of push modes), [`runtime`] (wiring and shutdown);
//! [`durable`] answers exports once stored (`agent.telemetry.ack: stored`);
//! [`fds`] keeps file descriptors for the store under a connection flood.

pub mod admin;
pub mod aggregate;
pub mod api;
pub mod beyla;
pub(crate) mod dedup;
pub mod durable;
pub mod fds;
pub mod filter;
pub mod host;
pub mod link;
pub mod metrics;
pub mod normalize;
pub mod pipeline;
pub mod push;
pub mod receiver;
pub mod runtime;
pub mod store;

pub use runtime::{AgentOptions, BoundAddrs, RunningAgent, StartError, start, start_with};
