//! OTLP/gRPC trace client that sends pre-encoded [`Template`]s.
//!
//! It calls the same method as the generated
//! `coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient`
//! (`/opentelemetry.proto.collector.trace.v1.TraceService/Export`) but with a
//! codec whose encoder copies the template bytes (re-stamping timestamps)
//! instead of encoding a prost message, so the harness spends its CPU on
//! I/O, not on protobuf encoding.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::client::Grpc;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::{Channel, Endpoint};
use tonic::{GrpcMethod, Status};

use coral_loadgen::payload::{Template, now_unix_nanos};

const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// One request to send: a template, stamped at encode time.
pub struct RawExport(pub Arc<Template>);

/// Encodes [`RawExport`] by copying, decodes the response with prost.
#[derive(Debug, Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = RawExport;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> Self::Encoder {
        RawEncoder
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = RawExport;
    type Error = Status;

    fn encode(&mut self, item: RawExport, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.reserve(item.0.len());
        item.0.render_into(now_unix_nanos(), dst);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        ExportTraceServiceResponse::decode(src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decoding response: {e}")))
    }
}

/// A trace-export client bound to one HTTP/2 connection.
#[derive(Clone)]
pub struct TraceClient {
    inner: Grpc<Channel>,
}

impl TraceClient {
    /// Opens a new HTTP/2 connection to `endpoint` (`host:port`).
    pub async fn connect(endpoint: &str, gzip: bool) -> Result<Self> {
        let channel = Endpoint::from_shared(format!("http://{endpoint}"))
            .context("invalid endpoint")?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("cannot open gRPC connection to {endpoint}"))?;
        let mut inner = Grpc::new(channel);
        if gzip {
            inner = inner.send_compressed(CompressionEncoding::Gzip);
        }
        Ok(Self { inner })
    }

    /// Sends one export request.
    pub async fn export(
        &mut self,
        template: Arc<Template>,
    ) -> Result<ExportTraceServiceResponse, Status> {
        self.inner
            .ready()
            .await
            .map_err(|e| Status::unavailable(format!("channel not ready: {e}")))?;
        let mut req = tonic::Request::new(RawExport(template));
        req.extensions_mut()
            .insert(GrpcMethod::new(SERVICE, "Export"));
        let path = PathAndQuery::from_static(EXPORT_PATH);
        self.inner
            .unary(req, path, RawCodec)
            .await
            .map(tonic::Response::into_inner)
    }
}
