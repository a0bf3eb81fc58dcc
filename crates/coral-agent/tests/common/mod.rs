//! Shared helpers for the agent's integration tests: a real agent on port 0
//! with a real DuckDB file, an AgentService client, and condition waits.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use coral_agent::RunningAgent;
use coral_config::{AgentConfig, AgentOverrides};
use coral_proto::agent::QueryTelemetryRequest;
use coral_proto::agent::agent_service_client::AgentServiceClient;
use coral_proto::common::{TelemetryBucket, TelemetrySpan};

/// Agent YAML with every listener on port 0 and the given telemetry extras
/// (indented under `agent.telemetry`).
pub fn config(data_dir: &Path, telemetry_extra: &str) -> AgentConfig {
    let yaml = format!(
        "agent:\n  id: test-agent\n  data_dir: {dir}\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n{telemetry_extra}\n  api:\n    endpoint: 127.0.0.1:0\n  admin:\n    endpoint: 127.0.0.1:0\n",
        dir = data_dir.display()
    );
    AgentConfig::from_yaml_str(
        &yaml,
        Path::new("test-agent.yaml"),
        &HashMap::new(),
        &AgentOverrides::default(),
    )
    .unwrap_or_else(|e| panic!("test config must be valid: {e}\n{yaml}"))
}

/// Starts an agent.
pub async fn start(config: &AgentConfig) -> RunningAgent {
    coral_agent::start(config).await.expect("agent starts")
}

/// Polls `condition` every 20 ms until it holds, or panics after `timeout`.
pub async fn wait_until(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Flushes every open minute and waits until the writer has committed at
/// least `buckets` buckets and `spans` spans in total.
pub async fn flush_and_wait(agent: &RunningAgent, buckets: u64, spans: u64) {
    agent.flush_all();
    let counters = agent.api.counters().clone();
    wait_until("buckets and spans stored", Duration::from_secs(20), || {
        let c = counters.to_proto(0);
        c.buckets_stored >= buckets && c.spans_stored >= spans
    })
    .await;
}

/// Pages through `QueryTelemetry` from `start` until `has_more` is false.
pub async fn query_all(
    agent: &RunningAgent,
    start: u64,
    page: i32,
) -> (Vec<TelemetryBucket>, Vec<TelemetrySpan>, u64, String) {
    let mut client = AgentServiceClient::connect(format!("http://{}", agent.addrs.api))
        .await
        .expect("agent api reachable");
    let mut cursor = start;
    let (mut buckets, mut spans) = (Vec::new(), Vec::new());
    loop {
        let response = client
            .query_telemetry(QueryTelemetryRequest {
                service_names: vec![],
                start_seq_id: cursor,
                max_records: page,
            })
            .await
            .expect("QueryTelemetry")
            .into_inner();
        buckets.extend(response.buckets);
        spans.extend(response.spans);
        assert!(response.max_seq_id >= cursor, "cursor never goes back");
        cursor = response.max_seq_id;
        if !response.has_more {
            return (buckets, spans, cursor, response.session_id);
        }
    }
}

/// Exact order statistic at rank floor(q * (n - 1)) of sorted `values`.
pub fn exact_quantile(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
}

/// Asserts `actual` is within 1% of `expected`.
pub fn assert_within_1pct(what: &str, actual: f64, expected: f64) {
    let err = (actual - expected).abs() / expected;
    assert!(
        err <= 0.01,
        "{what}: {actual} vs exact {expected} ({:.3}% off)",
        err * 100.0
    );
}

/// Sends raw bytes as an OTLP/gRPC trace export (for undecodable bodies).
pub async fn export_raw_grpc(
    endpoint: std::net::SocketAddr,
    body: Vec<u8>,
) -> Result<coral_proto::otlp::collector::trace::v1::ExportTraceServiceResponse, tonic::Status> {
    use coral_proto::otlp::collector::trace::v1::ExportTraceServiceResponse;
    use prost::Message;
    use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

    struct Raw;
    struct RawEncoder;
    struct RawDecoder;
    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = ExportTraceServiceResponse;
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }
    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = tonic::Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
            bytes::BufMut::put_slice(dst, &item);
            Ok(())
        }
    }
    impl Decoder for RawDecoder {
        type Item = ExportTraceServiceResponse;
        type Error = tonic::Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, tonic::Status> {
            ExportTraceServiceResponse::decode(src)
                .map(Some)
                .map_err(|e| tonic::Status::internal(e.to_string()))
        }
    }

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{endpoint}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    );
    grpc.unary(tonic::Request::new(body), path, Raw)
        .await
        .map(tonic::Response::into_inner)
}

/// One export request with `spans` from `service`.
pub fn export_request(
    service: &str,
    spans: Vec<coral_proto::otlp::trace::v1::Span>,
) -> coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest {
    use coral_proto::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
    use coral_proto::otlp::resource::v1::Resource;
    use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans};
    coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(Value::StringValue(service.into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Both OTLP receivers on port 0, in front of a pipeline whose store queue
/// holds `queue_spans` kept spans and is never drained (the receiver end is
/// held here), so tests see exactly what the receivers admit.
pub struct Receivers {
    pub pipeline: std::sync::Arc<coral_agent::pipeline::Pipeline>,
    pub http: std::net::SocketAddr,
    pub grpc: std::net::SocketAddr,
    pub stop: tokio_util::sync::CancellationToken,
    _writer: std::sync::mpsc::Receiver<coral_agent::store::writer::WriteOp>,
}

/// Starts [`Receivers`] with a message limit and the default limits.
pub async fn receivers(queue_spans: usize, max_bytes: usize) -> Receivers {
    receivers_within(
        queue_spans,
        coral_agent::receiver::ReceiverLimits::new(max_bytes, 1024),
    )
    .await
}

/// Starts [`Receivers`] within `limits`.
pub async fn receivers_within(
    queue_spans: usize,
    limits: coral_agent::receiver::ReceiverLimits,
) -> Receivers {
    use coral_agent::aggregate::{Aggregator, Limits};
    use coral_agent::filter::StaticFilter;
    use coral_agent::pipeline::Pipeline;
    use coral_agent::receiver;

    let (writer, rx) = std::sync::mpsc::channel();
    let pipeline = std::sync::Arc::new(Pipeline::new(
        Aggregator::new(Limits {
            max_operations_per_service: 10,
            max_services: 10,
            grace_secs: 0,
        }),
        StaticFilter::new(&coral_config::FilterConfig {
            keep_errors: true,
            latency_threshold_ms: None,
            sample_rate: 1.0,
        }),
        regex::RegexSet::empty(),
        queue_spans,
        writer,
        std::sync::Arc::new(coral_agent::metrics::Counters::default()),
    ));
    let stop = tokio_util::sync::CancellationToken::new();
    let http = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let grpc = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (http_addr, grpc_addr) = (http.local_addr().unwrap(), grpc.local_addr().unwrap());
    let (p, s) = (pipeline.clone(), stop.clone());
    tokio::spawn(receiver::http::serve(http, p, limits, s));
    let (p, s) = (pipeline.clone(), stop.clone());
    tokio::spawn(receiver::grpc::serve(grpc, p, limits, s));
    Receivers {
        pipeline,
        http: http_addr,
        grpc: grpc_addr,
        stop,
        _writer: rx,
    }
}
