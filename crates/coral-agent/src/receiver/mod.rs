//! OTLP receivers. Both hand requests to the same [`crate::pipeline::Pipeline`].

use std::time::Duration;

pub mod grpc;
mod grpc_traces;
pub mod http;
mod otlp_json;

/// How long a client may take to send one export. A client that stalls
/// mid-body is refused when it runs out (HTTP 408, gRPC `CANCELLED`), so it
/// cannot hold one of the few decoding slots for longer. OpenTelemetry SDKs
/// give up on an export after 10 s by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
