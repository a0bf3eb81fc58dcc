//! Realistic OTLP trace payloads, shared by the `coral-loadgen` harness and the
//! agent's benchmarks: 100 HTTP server spans of about 550 bytes per request,
//! encoded once, with start/end times stamped at send time.

pub mod catalog;
pub mod generate;
pub mod payload;
pub mod rng;
