//! The fault-injection simulator and the evaluation suite.
//!
//! - [`app`]: the simulated application (services, call graph, hosts).
//! - [`fault`]: the faults, their magnitudes and ground truth, and decoys.
//! - [`rng`]: the seeded PRNG.
//! - [`run`]: [`simulate`], which produces what the colony would hold.
//! - [`otlp`]: the simulated spans as OTLP export requests.
//! - [`eval`]: the suite, its scores and the markdown table.

pub mod app;
pub mod eval;
pub mod fault;
pub mod otlp;
pub mod rng;
pub mod run;

pub use app::App;
pub use fault::{Decoys, FaultKind, Scenario, Truth};
pub use run::{SimConfig, SimOutput, simulate};
