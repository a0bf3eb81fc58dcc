//! Bad input gets the OTLP specification's answer, and the agent keeps serving.

mod common;

use std::future::IntoFuture;
use std::io::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{SystemTime, UNIX_EPOCH};

use coral_agent::pipeline::OtlpSink;
use coral_agent::receiver;
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use coral_proto::otlp::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use coral_proto::otlp::trace::v1::Span;
use coral_proto::rpc::Status as RpcStatus;
use prost::Message;

use common::{config, start};

const LIMIT: usize = 64 * 1024;

fn span(trace_id: Vec<u8>, name: &str) -> Span {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Span {
        trace_id,
        span_id: vec![7; 8],
        name: name.into(),
        kind: 2,
        start_time_unix_nano: now - 5_000_000,
        end_time_unix_nano: now,
        ..Default::default()
    }
}

fn request(spans: Vec<Span>) -> ExportTraceServiceRequest {
    common::export_request("bad-input", spans)
}

fn big_request() -> ExportTraceServiceRequest {
    let spans = (0..2000u32)
        .map(|i| span(vec![1; 16], &format!("operation-number-{i:06}-padded-name")))
        .collect();
    request(spans)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_bad_input_gets_spec_statuses_and_the_agent_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let agent = start(&config(
        dir.path(),
        &format!("    max_message_bytes: {LIMIT}"),
    ))
    .await;
    let url = format!("http://{}/v1/traces", agent.addrs.otlp_http.unwrap());
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, content_type: &'static str| {
        http.post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };

    let garbage = post(vec![0xff, 0xff, 0xff, 0x01], "application/x-protobuf")
        .await
        .unwrap();
    assert_eq!(garbage.status(), 400);
    let status = RpcStatus::decode(garbage.bytes().await.unwrap()).unwrap();
    assert!(
        status
            .message
            .contains("cannot decode OTLP/protobuf traces"),
        "{}",
        status.message
    );

    let bad_json = post(b"{\"resourceSpans\": 7}".to_vec(), "application/json")
        .await
        .unwrap();
    assert_eq!(bad_json.status(), 400);
    assert_eq!(bad_json.headers()["content-type"], "application/json");
    let body: serde_json::Value = serde_json::from_slice(&bad_json.bytes().await.unwrap()).unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("OTLP/JSON"),
        "{body}"
    );

    let too_big = post(big_request().encode_to_vec(), "application/x-protobuf")
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);

    let bomb = gzip(&vec![0u8; 4 * LIMIT]);
    assert!(bomb.len() < LIMIT);
    let bomb = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(bomb.status(), 413, "decompressed size is limited too");

    let bad_gzip = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(vec![1, 2, 3, 4])
        .send()
        .await
        .unwrap();
    assert_eq!(bad_gzip.status(), 400);

    let text = post(b"hello".to_vec(), "text/plain").await.unwrap();
    assert_eq!(text.status(), 415);
    let get = http.get(&url).send().await.unwrap();
    assert_eq!(get.status(), 405);

    // One span with a 4-byte trace id among valid ones: partial success.
    let mixed = request(vec![
        span(vec![1; 16], "ok-1"),
        span(vec![9; 4], "short-id"),
        span(vec![2; 16], "ok-2"),
    ]);
    let response = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .body(gzip(&mixed.encode_to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let decoded = ExportTraceServiceResponse::decode(response.bytes().await.unwrap()).unwrap();
    let partial = decoded.partial_success.expect("partial success reported");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("short-id") && partial.error_message.contains("16 bytes")
    );

    // The same as OTLP/JSON: the answer is JSON too.
    let json = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "json-span", "kind": 2,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
        "attributes": [{"key": "http.response.status_code", "value": {"intValue": "503"}}]
    }]}]}]});
    let ok = post(json.to_string().into_bytes(), "application/json")
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/json");
    assert_eq!(ok.bytes().await.unwrap().as_ref(), b"{}");

    // A refused span in OTLP/JSON: the count is a string, as proto3 JSON
    // writes 64-bit integers.
    let mixed_json = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "7b8efff798038103d269b633813fc60c", "spanId": "aee19b7ec3c1b174",
         "name": "json-ok", "kind": 2,
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"},
        {"traceId": "00000000000000000000000000000000", "spanId": "bee19b7ec3c1b174",
         "name": "json-zero-trace", "kind": 2,
         "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000"}
    ]}]}]});
    let refused = post(mixed_json.to_string().into_bytes(), "application/json")
        .await
        .unwrap();
    assert_eq!(refused.status(), 200);
    let body: serde_json::Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(body["partialSuccess"]["rejectedSpans"], "1", "{body}");
    assert!(
        body["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("json-zero-trace")),
        "{body}"
    );

    // proto3 JSON leaves out empty lists: `{"arrayValue":{}}` is valid.
    let empty_list = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "6b8efff798038103d269b633813fc60c", "spanId": "fee19b7ec3c1b174",
        "name": "empty-list", "kind": 2,
        "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
        "attributes": [{"key": "tags", "value": {"arrayValue": {}}}]
    }]}]}]});
    let ok = post(empty_list.to_string().into_bytes(), "application/json")
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    let c = agent.api.counters().to_proto(0);
    assert_eq!(c.spans_accepted, 5);
    assert_eq!(c.spans_rejected, 2);
    assert_eq!(c.requests_rejected_invalid, 3);
    assert_eq!(c.requests_rejected_too_large, 2);
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_oversize_is_resource_exhausted_and_invalid_spans_are_partial() {
    let dir = tempfile::tempdir().unwrap();
    let agent = start(&config(
        dir.path(),
        &format!("    max_message_bytes: {LIMIT}"),
    ))
    .await;
    let mut client =
        TraceServiceClient::connect(format!("http://{}", agent.addrs.otlp_grpc.unwrap()))
            .await
            .unwrap();
    let error = client.export(big_request()).await.unwrap_err();
    assert_eq!(error.code(), tonic::Code::ResourceExhausted, "{error}");
    let garbage =
        common::export_raw_grpc(agent.addrs.otlp_grpc.unwrap(), vec![0xff, 0xff, 0xff, 0x01]).await;
    let error = garbage.unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument, "{error}");

    let mixed = request(vec![
        span(vec![1; 16], "ok"),
        span(vec![0; 16], "zero-trace"),
    ]);
    let response = client.export(mixed).await.unwrap().into_inner();
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(partial.error_message.contains("zero-trace"));
    let fine = client
        .export(request(vec![span(vec![3; 16], "fine")]))
        .await
        .unwrap()
        .into_inner();
    assert!(
        fine.partial_success.is_none(),
        "the agent keeps serving after bad input"
    );
    let c = agent.api.counters().to_proto(0);
    assert_eq!(
        (c.requests_rejected_too_large, c.requests_rejected_invalid),
        (1, 1)
    );
    agent.shutdown().await;
}

/// A pipeline whose writer never drains holds its permits: saturation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saturation_gets_429_with_retry_after_and_unavailable() {
    let receivers = common::receivers(2, LIMIT).await;
    let (http_addr, grpc_addr) = (receivers.http, receivers.grpc);
    let pipeline = &receivers.pipeline;

    let body = request(vec![span(vec![1; 16], "a"), span(vec![2; 16], "b")]).encode_to_vec();
    let http = reqwest::Client::new();
    let send = || {
        http.post(format!("http://{http_addr}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(body.clone())
            .send()
    };
    assert_eq!(
        send().await.unwrap().status(),
        200,
        "first batch fills the queue"
    );
    let throttled = send().await.unwrap();
    assert_eq!(throttled.status(), 429);
    assert_eq!(throttled.headers()["retry-after"], "1");

    let mut client = TraceServiceClient::connect(format!("http://{grpc_addr}"))
        .await
        .unwrap();
    let error = client
        .export(request(vec![span(vec![5; 16], "c")]))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable);
    let counters = pipeline.counters().to_proto(0);
    assert_eq!(
        counters.spans_accepted, 2,
        "throttled requests leave no trace in the counts"
    );
    assert_eq!(counters.requests_throttled, 2);
    receivers.stop.cancel();
}

/// Beyla's spans are admitted by a bound of their own: while
/// `queue_spans` of them wait for the store, Beyla's private receiver
/// answers 429 with `Retry-After` (Beyla's exporter retries), and a commit
/// frees the room again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyla_spans_waiting_for_the_store_are_bounded() {
    use coral_agent::beyla::BeylaSink;
    use coral_agent::store::writer::WriteOp;

    let (writer, queue) = std::sync::mpsc::channel();
    let counters = std::sync::Arc::new(coral_agent::metrics::Counters::default());
    let cfg = coral_config::BeylaConfig::default();
    let sink = std::sync::Arc::new(BeylaSink::new(&cfg, 3, writer, counters.clone()));
    let router = receiver::http::router(sink, receiver::ReceiverLimits::new(LIMIT, 16));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
    );

    let http = reqwest::Client::new();
    let send = |spans: Vec<Span>| {
        http.post(format!("http://{addr}/v1/traces"))
            .header("content-type", "application/x-protobuf")
            .body(request(spans).encode_to_vec())
            .send()
    };
    let two = || vec![span(vec![1; 16], "GET /a"), span(vec![2; 16], "GET /b")];
    assert_eq!(send(two()).await.unwrap().status(), 200);
    let refused = send(two()).await.unwrap();
    assert_eq!(
        refused.status(),
        429,
        "3 spans at most may wait for the store"
    );
    assert_eq!(refused.headers()["retry-after"], "1");
    assert_eq!(
        send(vec![span(vec![3; 16], "GET /c")])
            .await
            .unwrap()
            .status(),
        200,
        "a smaller export still fits"
    );
    assert_eq!(counters.beyla_requests_throttled.load(Relaxed), 1);
    assert_eq!(
        counters.beyla_spans_received.load(Relaxed),
        3,
        "a refused export is not counted as received: it comes again"
    );

    // The writer takes both batches (the permits go with them when they are
    // committed, here when they are dropped): there is room again.
    let mut queued = 0;
    while let Ok(op) = queue.try_recv() {
        let WriteOp::Beyla(rows, permit) = op else {
            panic!("only Beyla rows are written here");
        };
        assert!(permit.is_some(), "every batch of spans holds its permits");
        queued += rows.spans.len();
    }
    assert_eq!(queued, 3);
    assert_eq!(send(two()).await.unwrap().status(), 200);
    stop.cancel();
    server.await.unwrap().unwrap();
}

/// A client that writes its whole (too large) body before reading reads the
/// 413, not a reset connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversize_body_written_whole_first_still_reads_its_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let receivers = common::receivers(2, LIMIT).await;
    // Far more than the socket buffers hold, so unread it would block.
    let body = vec![b'x'; 16 << 20];
    let mut stream = tokio::net::TcpStream::connect(receivers.http)
        .await
        .unwrap();
    let head = format!(
        "POST /v1/traces HTTP/1.1\r\nhost: agent\r\ncontent-type: application/x-protobuf\r\n\
         content-length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = vec![0; 4096];
    let n = stream
        .read(&mut answer)
        .await
        .expect("the answer, not a reset");
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    receivers.stop.cancel();
}
