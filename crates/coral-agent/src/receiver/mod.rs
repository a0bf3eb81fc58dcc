//! OTLP receivers. Both hand requests to the same [`crate::pipeline::Pipeline`].

pub mod grpc;
mod grpc_traces;
pub mod http;
