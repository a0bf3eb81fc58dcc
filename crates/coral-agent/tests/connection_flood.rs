//! More connections than the bound, each sending part of its request
//! headers and then nothing: new HTTP and gRPC clients are still served,
//! and the listener's table never holds more than the bound.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_agent::pipeline::OtlpSink;
use coral_agent::receiver::ReceiverLimits;
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use coral_proto::otlp::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const BOUND: usize = 64;
const FLOOD: usize = 4 * BOUND;
const PATIENCE: Duration = Duration::from_secs(30);

fn request() -> coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    common::export_request(
        "flood",
        vec![Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            name: "GET /".into(),
            kind: 2,
            start_time_unix_nano: now - 1_000_000,
            end_time_unix_nano: now,
            ..Default::default()
        }],
    )
}

/// Opens a connection and sends the first bytes of a request: half a
/// request line for HTTP/1.1, part of the connection preface for HTTP/2.
async fn half_headers(addr: std::net::SocketAddr, start: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(start).await.unwrap();
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_open_connections_leaves_room_for_real_clients() {
    coral_agent::fds::raise_open_file_limit();
    let limits = ReceiverLimits::new(1 << 20, BOUND);
    let s = common::receivers_within(10_000, limits).await;
    let mut flood = Vec::new();
    for _ in 0..FLOOD {
        flood.push(half_headers(s.http, b"POST /v1/tra").await);
        flood.push(half_headers(s.grpc, b"PRI * HTTP/2.0\r\n").await);
    }

    // The flood's connections are quiet; real clients take their places.
    let http = reqwest::Client::new();
    let mut grpc = tokio::time::timeout(
        PATIENCE,
        TraceServiceClient::connect(format!("http://{}", s.grpc)),
    )
    .await
    .expect("a gRPC client connects during the flood")
    .unwrap();
    for _ in 0..5 {
        let status = tokio::time::timeout(
            PATIENCE,
            http.post(format!("http://{}/v1/traces", s.http))
                .header("content-type", "application/x-protobuf")
                .body(request().encode_to_vec())
                .send(),
        )
        .await
        .expect("an HTTP export is answered during the flood")
        .unwrap()
        .status();
        assert_eq!(status, 200);
        let exported = tokio::time::timeout(PATIENCE, grpc.export(request()))
            .await
            .expect("a gRPC export is answered during the flood");
        assert!(exported.is_ok(), "{exported:?}");
    }

    // Past the bound, the oldest flood connections were closed by the agent.
    // (The gRPC listener sends its HTTP/2 settings first: read to the end.)
    let mut closed = 0;
    for stream in flood.iter_mut().take(BOUND) {
        let mut rest = Vec::new();
        if tokio::time::timeout(PATIENCE, stream.read_to_end(&mut rest))
            .await
            .is_ok()
        {
            closed += 1;
        }
    }
    assert_eq!(
        closed, BOUND,
        "the first connections made room for later ones"
    );
    let c = s.pipeline.counters().to_proto(0);
    assert_eq!(c.spans_accepted, 10);
    assert!(c.connections_evicted >= 2 * (FLOOD - BOUND) as u64, "{c:?}");
    s.stop.cancel();
}
