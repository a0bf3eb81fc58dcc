//! OTLP receivers. Both hand requests to the same [`crate::pipeline::Pipeline`].

pub mod grpc;
pub mod http;
