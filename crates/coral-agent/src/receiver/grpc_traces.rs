//! OTLP/gRPC `TraceService` that hands the pipeline the request's bytes.
//!
//! tonic's generated server decodes every export into owned `prost` structs
//! before the handler runs. The trace pipeline reads exports in place
//! ([`coral_proto::otlp_wire`]), so this service keeps the message as
//! [`Bytes`] (after tonic's framing, gzip and size checks) and encodes the
//! usual `ExportTraceServiceResponse`. It answers exactly what the generated
//! server answers: the one `Export` method, `UNIMPLEMENTED` for anything else.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use coral_proto::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceResponse,
};
use tokio::sync::Semaphore;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic::codegen::{
    BoxFuture, Context, EnabledCompressionEncodings, Poll, Service, StdError, http,
};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstEncoder;

use super::grpc::{partial, refused, slot, stored};
use crate::pipeline::{OtlpSink, TraceExport};

const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// The trace service over raw request bytes.
#[derive(Clone)]
pub(crate) struct RawTraceServer {
    sink: Arc<dyn OtlpSink>,
    slots: Arc<Semaphore>,
    compression: EnabledCompressionEncodings,
    max_decoding_message_size: usize,
}

impl RawTraceServer {
    /// Accepts and offers `compression`; refuses messages over `max_bytes`.
    pub(crate) fn new(
        sink: Arc<dyn OtlpSink>,
        slots: Arc<Semaphore>,
        compression: tonic::codec::CompressionEncoding,
        max_bytes: usize,
    ) -> Self {
        let mut enabled = EnabledCompressionEncodings::default();
        enabled.enable(compression);
        RawTraceServer {
            sink,
            slots,
            compression: enabled,
            max_decoding_message_size: max_bytes,
        }
    }
}

impl NamedService for RawTraceServer {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for RawTraceServer
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if request.uri().path() != EXPORT_PATH {
            return Box::pin(async {
                Ok(Status::unimplemented("unknown method of TraceService").into_http())
            });
        }
        let server = self.clone();
        Box::pin(async move {
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(server.compression, server.compression)
                .apply_max_message_size_config(Some(server.max_decoding_message_size), None);
            let export = Export(server.sink, server.slots);
            Ok(grpc.unary(export, request).await)
        })
    }
}

/// The `Export` handler, with the receiver's decoding slots.
struct Export(Arc<dyn OtlpSink>, Arc<Semaphore>);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<Self::Response>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let (sink, slots) = (self.0.clone(), self.1.clone());
        Box::pin(async move {
            let slot = slot(&slots, sink.counters()).await?;
            let outcome = sink
                .export_traces(TraceExport::Encoded(request.get_ref()))
                .map_err(refused)?;
            drop((slot, request));
            stored(sink.as_ref(), outcome.stored).await?;
            Ok(Response::new(ExportTraceServiceResponse {
                partial_success: partial(outcome, |rejected, message| ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message,
                }),
            }))
        })
    }
}

/// Requests stay bytes; responses are encoded with prost.
struct RawCodec;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ProstEncoder<ExportTraceServiceResponse>;
    type Decoder = BytesDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        BytesDecoder
    }
}

/// Takes the whole (already de-framed and decompressed) message.
struct BytesDecoder;

impl Decoder for BytesDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}
