//! Clients that stall mid-body are cut off and give their decoding slot back;
//! gzip bodies of several members are read whole.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_agent::pipeline::OtlpSink;
use coral_agent::receiver;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use coral_proto::otlp::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Short, so that the test waits one second rather than thirty.
const BODY_TIMEOUT: Duration = Duration::from_secs(1);
/// Long enough for any answer; a hang fails the test instead of blocking it.
const PATIENCE: Duration = Duration::from_secs(30);

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

/// Both receivers with a one-second body timeout; the store queue has room
/// for every span sent.
async fn servers() -> common::Receivers {
    common::receivers(10_000, 1 << 20, BODY_TIMEOUT).await
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_http_body_is_refused_and_its_slot_comes_back() {
    let s = servers().await;
    let url = format!("http://{}/v1/traces", s.http);
    let http = reqwest::Client::new();
    let send = || {
        http.post(&url)
            .header("content-type", "application/x-protobuf")
            .body(request(2).encode_to_vec())
            .send()
    };

    let mut stalled = Vec::new();
    for _ in 0..receiver::http::MAX_CONCURRENT_REQUESTS {
        stalled.push(stalled_http(s.http).await);
    }
    // Once every stalled request holds a slot, a good one is turned away.
    tokio::time::timeout(PATIENCE, async {
        while send().await.unwrap().status() != 429 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the stalled requests take every slot");

    for mut stream in stalled {
        let mut answer = String::new();
        tokio::time::timeout(PATIENCE, stream.read_to_string(&mut answer))
            .await
            .expect("a stalled body is answered, not held")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains("did not arrive within 1s"), "{answer}");
    }
    assert_eq!(send().await.unwrap().status(), 200, "the slots came back");
    let c = s.pipeline.counters().to_proto(0);
    assert_eq!(
        c.requests_rejected_invalid,
        receiver::http::MAX_CONCURRENT_REQUESTS as u64
    );
    s.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_grpc_message_is_cancelled_and_exports_go_on() {
    let s = servers().await;
    let tcp = TcpStream::connect(s.grpc).await.unwrap();
    let (h2, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut h2 = h2.ready().await.unwrap();
    let mut stalled = Vec::new();
    // More than the receiver decodes at once, so later exports wait on them.
    for _ in 0..receiver::grpc::MAX_CONCURRENT_REQUESTS + 2 {
        let request = http::Request::post(format!(
            "http://{}/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            s.grpc
        ))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
        let (response, mut body) = h2.send_request(request, false).unwrap();
        // A gRPC frame header announcing 1,000 bytes, then 10 of them.
        let mut frame = vec![0, 0, 0, 0x03, 0xe8];
        frame.extend_from_slice(b"0123456789");
        body.send_data(frame.into(), false).unwrap();
        stalled.push((response, body));
        h2 = h2.ready().await.unwrap();
    }

    let mut client = TraceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .unwrap();
    let exported = tokio::time::timeout(PATIENCE, client.export(request(3)))
        .await
        .expect("an export does not wait behind stalled clients for ever");
    assert!(exported.is_ok(), "{exported:?}");

    for (response, _body) in stalled {
        let response = tokio::time::timeout(PATIENCE, response)
            .await
            .expect("a stalled message is answered, not held")
            .unwrap();
        assert_eq!(
            response.headers()["grpc-status"],
            (tonic::Code::Cancelled as i32).to_string(),
            "{response:?}"
        );
    }
    assert_eq!(s.pipeline.counters().to_proto(0).spans_accepted, 3);
    s.stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_body_of_several_members_is_read_whole() {
    let s = servers().await;
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
