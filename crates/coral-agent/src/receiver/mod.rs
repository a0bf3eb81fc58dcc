//! OTLP receivers. Both hand requests to the same [`crate::pipeline::Pipeline`].
//!
//! Both listeners share one defence against slow and idle clients, set by
//! [`ReceiverLimits`]: a bound on open connections with an idle timeout
//! ([`conn`]), and bodies read whole, admitted by the bytes they have sent,
//! before they take one of the few decoding slots ([`body`]).

use std::time::Duration;

mod body;
mod conn;
pub mod grpc;
mod grpc_buffer;
mod grpc_traces;
pub mod http;

/// How long a client may take to send one export, start to end. OpenTelemetry
/// SDKs give up on an export after 10 s by default.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a request body may go without a byte before it is refused
/// (HTTP 408, gRPC `CANCELLED`).
pub const READ_IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// How long a connection may move no byte at all (half-sent headers, an
/// idle keep-alive connection) before it is closed.
pub const CONNECTION_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// The limits one OTLP listener enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiverLimits {
    /// Largest request body, after decompression (`agent.telemetry.max_message_bytes`).
    pub max_message_bytes: usize,
    /// Longest time to receive one request ([`REQUEST_TIMEOUT`]).
    pub request_timeout: Duration,
    /// Longest pause within a request body ([`READ_IDLE_TIMEOUT`]).
    pub read_idle_timeout: Duration,
    /// Connections open at once (`agent.telemetry.max_connections`).
    pub max_connections: usize,
    /// Longest time a connection may move nothing ([`CONNECTION_IDLE_TIMEOUT`]).
    pub connection_idle_timeout: Duration,
    /// Body bytes held at once across the listener's requests.
    pub buffered_bytes: usize,
}

impl ReceiverLimits {
    /// The defaults for a message limit and a connection bound: body bytes
    /// held up to four maximal messages.
    pub fn new(max_message_bytes: usize, max_connections: usize) -> Self {
        ReceiverLimits {
            max_message_bytes,
            request_timeout: REQUEST_TIMEOUT,
            read_idle_timeout: READ_IDLE_TIMEOUT,
            max_connections,
            connection_idle_timeout: CONNECTION_IDLE_TIMEOUT,
            buffered_bytes: max_message_bytes.saturating_mul(4),
        }
    }
}
