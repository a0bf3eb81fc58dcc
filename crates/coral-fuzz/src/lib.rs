//! The bodies of Coral's fuzz targets: every decoder that takes bytes from
//! outside. Each function takes arbitrary bytes and must neither panic nor
//! hang; where a reference decoder exists, it also checks that Coral's
//! decoder agrees with it.
//!
//! `fuzz/` (cargo fuzz, libFuzzer) calls them with generated inputs; the
//! corpus replay in `tests/corpus.rs` calls them with every committed corpus
//! file and regression, so that `cargo test` fails on a regression.
//!
//! - [`otlp_wire`]: the agent's in-place OTLP trace reader against `prost`.
//! - [`otlp_json`]: OTLP/JSON trace, metrics and logs bodies.
//! - [`gzip_body`]: gzip request bodies, inflated with a bound.
//! - [`otlp_exports`]: metrics and logs exports, and Beyla's transform of
//!   metrics and traces.
//! - [`colony_page`]: what an agent (or something posing as one) sends the
//!   colony: pages of buckets and sketches.
//! - [`config_yaml`]: agent and colony configuration files.
//! - [`ask_question`]: the question `coral ask` reads.

mod targets;

pub use targets::{
    ask_question, colony_page, config_yaml, gzip_body, otlp_exports, otlp_json, otlp_wire,
};

/// A target: the name of its `fuzz/fuzz_targets/<name>.rs` and corpus
/// directory, and its body.
pub type Target = (&'static str, fn(&[u8]));

/// Every target.
pub const TARGETS: [Target; 7] = [
    ("otlp_wire", otlp_wire),
    ("otlp_json", otlp_json),
    ("gzip_body", gzip_body),
    ("otlp_exports", otlp_exports),
    ("colony_page", colony_page),
    ("config_yaml", config_yaml),
    ("ask_question", ask_question),
];
