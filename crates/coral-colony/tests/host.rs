//! Host metrics: agents sample `/proc`, the colony pulls the samples into
//! `host_metrics`, and the correlation query joins them with span summaries
//! by (agent_id, bucket_time), counting requests (SERVER and CONSUMER spans,
//! every kind for a service with neither).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use coral_agent::RunningAgent;
use coral_proto::colony::{HostCorrelationRow, QueryHostCorrelationRequest};
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_samples_reach_the_colony_and_join_span_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1s").await;
    let addr = colony.addr;
    let agent = start_agent(&agent_config(
        "h1",
        &dir.path().join("h1"),
        addr,
        "  host_metrics:\n    interval: 1s",
    ))
    .await;
    // Spans in the current minute, where the sampler keeps adding samples.
    send_spans_at(&agent, "api", 25, 5, SystemTime::now()).await;
    flush_agent(&agent, 25).await;

    wait_for(
        "a correlated minute",
        Duration::from_secs(60),
        || async move {
            let mut c = client(addr, None).await;
            let rows = c
                .query_host_correlation(QueryHostCorrelationRequest {
                    service_name: "api".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .rows;
            rows.iter().any(|r| r.cpu_percent.is_some())
        },
    )
    .await;
    let mut c = client(addr, None).await;
    let rows = c
        .query_host_correlation(QueryHostCorrelationRequest {
            service_name: "api".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let row = rows.iter().find(|r| r.cpu_percent.is_some()).unwrap();
    assert_eq!(row.agent_id, "h1");
    assert_eq!(row.total_spans, 25);
    assert_eq!(row.error_count, 5);
    let cpu = row.cpu_percent.unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    assert!(row.memory_used_bytes.unwrap() > 0);
    assert!(row.net_rx_bytes_per_sec.unwrap() >= 0.0);
    assert!(row.load1.unwrap() >= 0.0);
    agent.shutdown().await;
    colony.shutdown().await;
    assert!(
        count(
            &dir.path().join("colony"),
            "SELECT count(*) FROM host_metrics"
        ) >= 1
    );
}

/// Sends `n` spans of `kind` for `service` starting at `t0` through the
/// OpenTelemetry SDK, lasting `base_ms` + 1..=n ms; every `error_every`-th
/// has HTTP status 500 (an error for SERVER and CLIENT spans alike).
async fn send_kind(
    agent: &RunningAgent,
    service: &str,
    (kind, base_ms): (SpanKind, u64),
    n: u64,
    error_every: u64,
    t0: SystemTime,
) {
    let grpc = agent.addrs.otlp_grpc.expect("otlp enabled");
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{grpc}"))
        .build()
        .expect("exporter builds");
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("coral-colony-host-test");
    for i in 1..=n {
        let status: i64 = if error_every > 0 && i % error_every == 0 {
            500
        } else {
            200
        };
        let start = t0 + Duration::from_millis(i);
        let mut span = tracer
            .span_builder("GET /items")
            .with_kind(kind.clone())
            .with_start_time(start)
            .with_attributes(vec![KeyValue::new("http.response.status_code", status)])
            .start(&tracer);
        span.end_with_timestamp(start + Duration::from_millis(base_ms + i));
    }
    tokio::task::spawn_blocking(move || {
        provider.force_flush().expect("spans exported");
        provider.shutdown().expect("provider shut down");
    })
    .await
    .expect("flush task");
}

async fn correlation(addr: std::net::SocketAddr, service: &str) -> Vec<HostCorrelationRow> {
    let mut c = client(addr, None).await;
    c.query_host_correlation(QueryHostCorrelationRequest {
        service_name: service.into(),
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
    .rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_seen_as_server_and_client_span_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1s").await;
    let addr = colony.addr;
    let agent = start_agent(&agent_config("h2", &dir.path().join("h2"), addr, "")).await;
    let t0 = minute_start();
    // "shop": 10 requests, each a SERVER span and a (slower) CLIENT span in
    // the same minute; 2 failed (both spans are errors).
    send_kind(&agent, "shop", (SpanKind::Server, 0), 10, 5, t0).await;
    send_kind(&agent, "shop", (SpanKind::Client, 1000), 10, 5, t0).await;
    // "batch": no SERVER or CONSUMER spans, so every kind counts.
    send_kind(&agent, "batch", (SpanKind::Internal, 0), 4, 0, t0).await;
    send_kind(&agent, "batch", (SpanKind::Client, 0), 3, 3, t0).await;
    flush_agent(&agent, 27).await;
    wait_for(
        "every span kind at the colony",
        Duration::from_secs(60),
        || async move {
            totals(addr, None, "shop").await == (20, 4)
                && totals(addr, None, "batch").await == (7, 1)
        },
    )
    .await;

    let shop = correlation(addr, "shop").await;
    assert_eq!(shop.len(), 1, "{shop:?}");
    assert_eq!((shop[0].total_spans, shop[0].error_count), (10, 2));
    assert_eq!(shop[0].agent_id, "h2");
    // The SERVER spans' p99 (they last 1..=10 ms), not the CLIENT spans'.
    assert!(shop[0].p99_ms <= 10.5, "{}", shop[0].p99_ms);
    let batch = correlation(addr, "batch").await;
    assert_eq!(batch.len(), 1, "{batch:?}");
    assert_eq!((batch[0].total_spans, batch[0].error_count), (7, 1));
    agent.shutdown().await;
    colony.shutdown().await;
}
