//! Clients that stall mid-body hold only the bytes they sent: valid exports
//! are served while they stall, and a stalled body is refused once it stops
//! arriving. Gzip bodies of several members are read whole.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_agent::pipeline::OtlpSink;
use coral_agent::receiver::{self, ReceiverLimits};
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use coral_proto::otlp::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for any answer; a hang fails the test instead of blocking it.
const PATIENCE: Duration = Duration::from_secs(30);
/// How long OpenTelemetry SDKs wait for an export by default.
const SDK_TIMEOUT: Duration = Duration::from_secs(10);

fn request(spans: usize) -> ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let spans = (0..spans)
        .map(|i| Span {
            trace_id: vec![i as u8 + 1; 16],
            span_id: vec![7; 8],
            name: format!("span-{i}"),
            kind: 2,
            start_time_unix_nano: now - 5_000_000,
            end_time_unix_nano: now,
            ..Default::default()
        })
        .collect();
    common::export_request("slow-clients", spans)
}

/// Both receivers, stalled bodies refused after `read_idle`; the store queue
/// has room for every span sent.
async fn servers(read_idle: Duration) -> common::Receivers {
    coral_agent::fds::raise_open_file_limit();
    let limits = ReceiverLimits {
        read_idle_timeout: read_idle,
        ..ReceiverLimits::new(1 << 20, 4096)
    };
    common::receivers_within(10_000, limits).await
}

/// An HTTP export that promises 1,000 bytes and sends 10.
async fn stalled_http(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream
        .write_all(
            b"POST /v1/traces HTTP/1.1\r\nhost: agent\r\ncontent-type: application/x-protobuf\r\n\
              content-length: 1000\r\n\r\n0123456789",
        )
        .await
        .unwrap();
    stream
}

async fn send_http(url: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(request(2).encode_to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// 16 stalled bodies (as many as there are decoding slots) and then 1,000:
/// while they stall, valid exports are answered 200, never 429.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_http_bodies_do_not_hold_back_valid_exports() {
    // The stalled bodies stay open for the whole test.
    let s = servers(Duration::from_secs(600)).await;
    let url = format!("http://{}/v1/traces", s.http);
    let mut stalled = Vec::new();
    for total in [receiver::http::MAX_CONCURRENT_REQUESTS, 1_000] {
        while stalled.len() < total {
            stalled.push(stalled_http(s.http).await);
        }
        for _ in 0..20 {
            let status = tokio::time::timeout(SDK_TIMEOUT, send_http(&url))
                .await
                .expect("a valid export is answered while others stall");
            assert_eq!(status, 200, "with {total} stalled bodies");
        }
    }
    let c = s.pipeline.counters().to_proto(0);
    assert_eq!((c.spans_accepted, c.requests_throttled), (80, 0));
    s.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http_body_is_refused_once_it_stops_arriving() {
    let s = servers(Duration::from_secs(1)).await;
    let mut stream = stalled_http(s.http).await;
    let mut answer = String::new();
    tokio::time::timeout(PATIENCE, stream.read_to_string(&mut answer))
        .await
        .expect("a stalled body is answered, not held")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("stopped arriving: no bytes for 1s"),
        "{answer}"
    );
    assert_eq!(
        send_http(&format!("http://{}/v1/traces", s.http)).await,
        200
    );
    let c = s.pipeline.counters().to_proto(0);
    assert_eq!(c.requests_rejected_invalid, 1);
    s.stop.cancel();
}

/// Opens `n` gRPC exports on one HTTP/2 connection, each announcing a
/// 1,000-byte message and sending 10 bytes of it.
async fn stalled_grpc(
    addr: SocketAddr,
    n: usize,
) -> Vec<(h2::client::ResponseFuture, h2::SendStream<bytes::Bytes>)> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    let mut stalled = Vec::new();
    for _ in 0..n {
        let request = http::Request::post(format!(
            "http://{addr}/opentelemetry.proto.collector.trace.v1.TraceService/Export"
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let (response, mut body) = h2.send_request(request, false).unwrap();
        let mut frame = vec![0, 0, 0, 0x03, 0xe8];
        frame.extend_from_slice(b"0123456789");
        body.send_data(frame.into(), false).unwrap();
        stalled.push((response, body));
        h2 = h2.ready().await.unwrap();
    }
    stalled
}

/// 16 stalled gRPC streams, then 100 more: an export is answered at once
/// each time, not after the stalled ones are cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_grpc_messages_do_not_hold_back_valid_exports() {
    let s = servers(Duration::from_secs(600)).await;
    let mut stalled = stalled_grpc(s.grpc, receiver::grpc::MAX_CONCURRENT_REQUESTS).await;
    let mut client = TraceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .unwrap();
    for round in 0..2 {
        for _ in 0..10 {
            let exported = tokio::time::timeout(SDK_TIMEOUT, client.export(request(3)))
                .await
                .expect("an export does not wait behind stalled clients");
            assert!(exported.is_ok(), "round {round}: {exported:?}");
        }
        stalled.extend(stalled_grpc(s.grpc, 100).await);
    }
    assert_eq!(s.pipeline.counters().to_proto(0).spans_accepted, 60);
    s.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_grpc_message_is_cancelled_once_it_stops_arriving() {
    let s = servers(Duration::from_secs(1)).await;
    for (response, _body) in stalled_grpc(s.grpc, 2).await {
        let response = tokio::time::timeout(PATIENCE, response)
            .await
            .expect("a stalled message is answered, not held")
            .unwrap();
        assert_eq!(
            response.headers()["grpc-status"],
            (tonic::Code::Cancelled as i32).to_string(),
            "{response:?}"
        );
        let message = response.headers()["grpc-message"].to_str().unwrap();
        assert!(
            message.contains("stopped%20arriving") || message.contains("stopped arriving"),
            "{message}"
        );
    }
    assert_eq!(
        s.pipeline.counters().to_proto(0).requests_rejected_invalid,
        2
    );
    s.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_body_of_several_members_is_read_whole() {
    let s = servers(receiver::READ_IDLE_TIMEOUT).await;
    let body = request(40).encode_to_vec();
    // Cut in the middle of a span: reading only the first member would leave
    // a truncated message.
    let (head, tail) = body.split_at(body.len() / 2);
    let mut members = gzip(head);
    members.extend(gzip(tail));
    let response = reqwest::Client::new()
        .post(format!("http://{}/v1/traces", s.http))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(members)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(s.pipeline.counters().to_proto(0).spans_accepted, 40);
    s.stop.cancel();
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}
