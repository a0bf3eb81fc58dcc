//! Coral's wire types.
//!
//! - [`common`]: telemetry shared by agent and colony (`TelemetryBucket`,
//!   `TelemetrySpan`, `DurationSketch`).
//! - [`agent`]: the agent's `AgentService` (`QueryTelemetry`, `GetStatus`).
//! - [`colony`]: the colony's `ColonyService` (registration, push ingest,
//!   queries).
//! - [`rpc`]: the `google.rpc.Status` body of OTLP/HTTP error responses.
//! - [`transport`]: the shared token and TLS for gRPC peers.
//! - [`otlp_json`]: OTLP/JSON bodies, including what proto3 JSON leaves out.
//! - [`gzip`]: gzip request bodies, inflated with a bound.
//! - [`otlp`]: the OpenTelemetry protocol types, re-exported so that every crate
//!   uses one version.

#![allow(missing_docs)]

/// `coral.common.v1`.
pub mod common {
    /// Generated from `proto/coral/common/v1/telemetry.proto`.
    pub mod v1 {
        tonic::include_proto!("coral.common.v1");
    }
    pub use v1::*;
}

/// `coral.agent.v1`.
pub mod agent {
    /// Generated from `proto/coral/agent/v1/agent.proto`.
    pub mod v1 {
        tonic::include_proto!("coral.agent.v1");
    }
    pub use v1::*;
}

/// `coral.colony.v1`.
pub mod colony {
    /// Generated from `proto/coral/colony/v1/colony.proto`.
    pub mod v1 {
        tonic::include_proto!("coral.colony.v1");
    }
    pub use v1::*;
}

/// `google.rpc`.
pub mod rpc {
    tonic::include_proto!("google.rpc");
}

pub mod gzip;
pub mod otlp_json;
pub mod otlp_wire;
pub mod transport;

/// The OpenTelemetry protocol (OTLP) types and gRPC services.
pub use opentelemetry_proto::tonic as otlp;
