//! OTLP/gRPC receiver: `TraceService`, `MetricsService` and `LogsService`.
//! Traces are served by [`super::grpc_traces`], which keeps each export as
//! bytes for the pipeline's in-place reading.
//!
//! gzip is accepted and offered; messages above `max_message_bytes` are refused
//! with `RESOURCE_EXHAUSTED`; a saturated pipeline answers `UNAVAILABLE` with a
//! `google.rpc.RetryInfo` detail, as the OTLP specification asks, so SDKs retry
//! with backoff. Each request's body is read whole first, admitted by the
//! bytes it has sent ([`super::grpc_buffer`]); then at most
//! [`MAX_CONCURRENT_REQUESTS`] exports are decoded at once across all
//! connections, further ones waiting for a slot, at most [`SLOT_WAIT`]: an
//! agent that cannot start an export within that is behind, and the export
//! is refused with `UNAVAILABLE` and a retry hint rather than answered after
//! the client's timeout. A stalled stream never holds a slot. Connections are bounded and closed when idle ([`super::conn`]).

use std::sync::Arc;
use std::time::Duration;

use coral_proto::otlp::collector::logs::v1::logs_service_server::{LogsService, LogsServiceServer};
use coral_proto::otlp::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use coral_proto::otlp::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use coral_proto::otlp::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use http::HeaderValue;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::transport::Server;
use tonic::{Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use super::ReceiverLimits;
use super::conn::{self, Connections};
use super::grpc_buffer::ReadWholeLayer;
use super::grpc_traces::RawTraceServer;
use crate::durable::{STORE_WAIT, Ticket};
use crate::metrics::Counters;
use crate::pipeline::{IngestError, OtlpSink, PartialOutcome};

/// Exports decoded concurrently, across all connections.
pub const MAX_CONCURRENT_REQUESTS: usize = 16;

/// How long an export waits for a decoding slot before it is refused as
/// throttled.
pub const SLOT_WAIT: Duration = Duration::from_secs(1);

/// Largest HTTP/2 frame the agent accepts (the protocol's default is 16 KiB).
const H2_MAX_FRAME: u32 = 1 << 20;
/// HTTP/2 receive window per stream.
const H2_STREAM_WINDOW: u32 = 2 << 20;
/// HTTP/2 receive window per connection.
const H2_CONNECTION_WINDOW: u32 = 4 << 20;

#[derive(Clone)]
struct Otlp {
    sink: Arc<dyn OtlpSink>,
    slots: Arc<Semaphore>,
}

/// Takes a decoding slot, waiting at most [`SLOT_WAIT`] (then the export is
/// refused as throttled, counted in `requests_throttled`); the slot is let
/// go before the request waits for its commit (`agent.telemetry.ack:
/// stored`).
pub(crate) async fn slot(
    slots: &Arc<Semaphore>,
    counters: &Counters,
) -> Result<OwnedSemaphorePermit, Status> {
    match tokio::time::timeout(SLOT_WAIT, slots.clone().acquire_owned()).await {
        Ok(Ok(slot)) => Ok(slot),
        Ok(Err(_)) => Err(Status::unavailable(
            "coral agent is shutting down; retry later",
        )),
        Err(_) => Err(refused(crate::pipeline::throttled(
            &counters.requests_throttled,
        ))),
    }
}

/// Waits for the commit of an accepted export, when the sink answers only
/// once stored.
pub(crate) async fn stored(sink: &dyn OtlpSink, ticket: Option<Ticket>) -> Result<(), Status> {
    match (ticket, sink.durability()) {
        (Some(ticket), Some(durability)) => {
            durability.wait(ticket, STORE_WAIT).await.map_err(|error| {
                Counters::add(&sink.counters().requests_not_stored, 1);
                refused(error)
            })
        }
        _ => Ok(()),
    }
}

pub(crate) fn refused(error: IngestError) -> Status {
    match error {
        IngestError::Throttled { retry_after_secs } => {
            let details =
                ErrorDetails::with_retry_info(Some(Duration::from_secs(retry_after_secs)));
            Status::with_error_details(
                tonic::Code::Unavailable,
                format!("coral agent is saturated; retry in {retry_after_secs}s"),
                details,
            )
        }
        IngestError::ShuttingDown => {
            Status::unavailable("coral agent is shutting down; retry later")
        }
        IngestError::NotStored(reason) => Status::with_error_details(
            tonic::Code::Unavailable,
            format!(
                "coral agent could not store the request ({reason}); it was not kept, retry later"
            ),
            ErrorDetails::with_retry_info(Some(Duration::from_secs(1))),
        ),
        IngestError::Malformed(reason) => Status::invalid_argument(reason),
    }
}

#[tonic::async_trait]
impl MetricsService for Otlp {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let slot = slot(&self.slots, self.sink.counters()).await?;
        let outcome = self
            .sink
            .export_metrics(request.get_ref())
            .map_err(refused)?;
        drop(slot);
        Ok(Response::new(ExportMetricsServiceResponse {
            partial_success: partial(outcome, |rejected, message| ExportMetricsPartialSuccess {
                rejected_data_points: rejected,
                error_message: message,
            }),
        }))
    }
}

#[tonic::async_trait]
impl LogsService for Otlp {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let slot = slot(&self.slots, self.sink.counters()).await?;
        let outcome = self.sink.export_logs(request.get_ref());
        drop(slot);
        Ok(Response::new(ExportLogsServiceResponse {
            partial_success: partial(outcome, |rejected, message| ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        }))
    }
}

/// `partial_success` is set only when something was refused.
pub(crate) fn partial<T>(
    outcome: PartialOutcome,
    make: impl FnOnce(i64, String) -> T,
) -> Option<T> {
    (outcome.rejected > 0).then(|| make(outcome.rejected as i64, outcome.message))
}

/// tonic reports an over-limit message as `OUT_OF_RANGE` and an undecodable
/// one as `INTERNAL`; the OTLP specification asks for `RESOURCE_EXHAUSTED` and
/// `INVALID_ARGUMENT`. Our handlers never return either code themselves, so
/// every such status is the decoder's. Refusals are counted here too.
fn map_oversize<B>(mut response: http::Response<B>, counters: &Counters) -> http::Response<B> {
    let headers = response.headers_mut();
    match headers.get("grpc-status").map(|v| v.as_bytes()) {
        Some(b"11") | Some(b"8") => {
            headers.insert("grpc-status", HeaderValue::from_static("8"));
            Counters::add(&counters.requests_rejected_too_large, 1);
        }
        Some(b"3") | Some(b"13") => {
            headers.insert("grpc-status", HeaderValue::from_static("3"));
            Counters::add(&counters.requests_rejected_invalid, 1);
        }
        _ => {}
    }
    response
}

/// Serves OTLP/gRPC on `listener` until `shutdown` is cancelled, within
/// `limits`.
pub async fn serve(
    listener: TcpListener,
    sink: Arc<dyn OtlpSink>,
    limits: ReceiverLimits,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let max_message_bytes = limits.max_message_bytes;
    let counters = sink.counters().clone();
    let connections = Connections::new(
        limits.max_connections,
        limits.connection_idle_timeout,
        counters.clone(),
    );
    let read_whole = ReadWholeLayer::new(limits, counters.clone());
    let slots = Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS));
    let traces = RawTraceServer::new(
        sink.clone(),
        slots.clone(),
        CompressionEncoding::Gzip,
        max_message_bytes,
    );
    let otlp = Otlp { sink, slots };
    let metrics = MetricsServiceServer::new(otlp.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    let logs = LogsServiceServer::new(otlp)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_message_bytes);
    let layers = tower::ServiceBuilder::new()
        .map_response(move |r| map_oversize(r, &counters))
        .layer(read_whole);
    Server::builder()
        // A request that takes longer than this in all is cancelled.
        .timeout(limits.request_timeout)
        // An export is ~50-500 KB: take it in a few large frames without a
        // WINDOW_UPDATE round per 64 KB. The receive windows bound what one
        // connection can have buffered before the handler reads it.
        .max_frame_size(Some(H2_MAX_FRAME))
        .initial_stream_window_size(Some(H2_STREAM_WINDOW))
        .initial_connection_window_size(Some(H2_CONNECTION_WINDOW))
        .layer(layers)
        .add_service(traces)
        .add_service(metrics)
        .add_service(logs)
        .serve_with_incoming_shutdown(
            conn::incoming(listener, connections),
            shutdown.cancelled_owned(),
        )
        .await
}

/// Adapts a bound listener to the stream tonic serves from.
pub(crate) fn tokio_stream_listener(
    listener: TcpListener,
) -> impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    futures::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| {
            let _ = stream.set_nodelay(true);
            stream
        });
        Some((accepted, listener))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_export_that_waits_too_long_for_a_slot_is_told_to_retry() {
        let slots = Arc::new(Semaphore::new(1));
        let counters = Counters::default();
        let held = slot(&slots, &counters).await.unwrap();
        let refused = slot(&slots, &counters).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::Unavailable);
        let retry = refused.get_details_retry_info().and_then(|r| r.retry_delay);
        assert_eq!(retry, Some(Duration::from_secs(1)), "{refused:?}");
        assert_eq!(
            counters
                .requests_throttled
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
        drop(held);
        assert!(slot(&slots, &counters).await.is_ok());
    }
}
