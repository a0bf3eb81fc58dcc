//! The agent driven by the real OpenTelemetry SDK's OTLP exporters (gRPC,
//! HTTP/protobuf, HTTP/JSON), read back through `QueryTelemetry`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_agent::filter::StaticFilter;
use coral_config::FilterConfig;
use opentelemetry::trace::{Span as _, SpanKind, TraceContextExt, Tracer, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;

use common::{assert_within_1pct, config, exact_quantile, flush_and_wait, query_all, start};

#[derive(Clone, Copy, Debug)]
enum Transport {
    Grpc,
    HttpProtobuf,
    HttpJson,
}

fn provider(
    transport: Transport,
    agent: &coral_agent::RunningAgent,
    service: &str,
) -> SdkTracerProvider {
    let grpc = agent.addrs.otlp_grpc.expect("otlp enabled");
    let http = agent.addrs.otlp_http.expect("otlp enabled");
    let exporter = match transport {
        Transport::Grpc => SpanExporter::builder()
            .with_tonic()
            .with_endpoint(format!("http://{grpc}"))
            .build(),
        Transport::HttpProtobuf | Transport::HttpJson => SpanExporter::builder()
            .with_http()
            .with_protocol(match transport {
                Transport::HttpJson => Protocol::HttpJson,
                _ => Protocol::HttpBinary,
            })
            .with_endpoint(format!("http://{http}/v1/traces"))
            .build(),
    }
    .expect("exporter builds");
    SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build()
}

async fn flush(provider: SdkTracerProvider) {
    tokio::task::spawn_blocking(move || {
        provider.force_flush().expect("spans exported");
        provider.shutdown().expect("provider shut down");
    })
    .await
    .expect("flush task");
}

/// Start of the minute two minutes ago, so every span lands in one closed minute.
fn minute_start() -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs((now / 60 - 2) * 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transport_gives_exact_red_numbers_and_filters() {
    let dir = tempfile::tempdir().unwrap();
    let filters = "    filters:\n      - always_capture: errors\n      - always_capture: latency_gt_ms:900\n      - sample_rate: 0.0";
    let agent = start(&config(dir.path(), filters)).await;
    let t0 = minute_start();

    let transports = [
        Transport::Grpc,
        Transport::HttpProtobuf,
        Transport::HttpJson,
    ];
    let mut expected_samples = BTreeMap::new();
    let mut expected_kept = BTreeMap::new();
    for transport in transports {
        let service = format!("{transport:?}").to_lowercase();
        let provider = provider(transport, &agent, &service);
        let tracer = provider.tracer("coral-test");
        let mut errors_by_duration = Vec::new();
        let mut kept = BTreeSet::new();
        for ms in 1..=1000u64 {
            let is_error = ms % 20 == 0;
            let status = if is_error { 500i64 } else { 200 };
            let start = t0 + Duration::from_millis(ms * 10);
            let mut span = tracer
                .span_builder(if ms % 2 == 0 { "GET /even" } else { "GET /odd" })
                .with_kind(SpanKind::Server)
                .with_start_time(start)
                .with_attributes(vec![
                    KeyValue::new("http.request.method", "GET"),
                    KeyValue::new("http.response.status_code", status),
                ])
                .start(&tracer);
            let trace_id = span.span_context().trace_id().to_string();
            if is_error {
                errors_by_duration.push((ms, trace_id.clone()));
            }
            if is_error || ms > 900 {
                kept.insert(trace_id);
            }
            span.end_with_timestamp(start + Duration::from_millis(ms));
        }
        flush(provider).await;
        errors_by_duration.sort_by_key(|b| std::cmp::Reverse(b.0));
        let samples: Vec<String> = errors_by_duration
            .iter()
            .take(5)
            .map(|(_, t)| t.clone())
            .collect();
        expected_samples.insert(service.clone(), samples);
        expected_kept.insert(service, kept);
    }
    // 3 services x 1 kind; kept: 50 errors + 100 slow - 5 both = 145 each.
    flush_and_wait(&agent, 3, 3 * 145).await;
    let (buckets, spans, _, _) = query_all(&agent, 0, 100).await;

    let sorted: Vec<f64> = (1..=1000).map(|ms| ms as f64).collect();
    for (service, samples) in &expected_samples {
        let mine: Vec<_> = buckets
            .iter()
            .filter(|b| &b.service_name == service)
            .collect();
        assert_eq!(
            mine.len(),
            1,
            "{service}: one bucket for one minute and kind"
        );
        let b = mine[0];
        assert_eq!(b.span_kind, "SERVER");
        assert_eq!(b.total_spans, 1000, "{service}: 100% of spans counted");
        assert_eq!(b.error_count, 50, "{service}");
        assert_eq!(
            b.bucket_time as u64,
            t0.duration_since(UNIX_EPOCH).unwrap().as_secs()
        );
        assert_within_1pct("p50", b.p50_ms, exact_quantile(&sorted, 0.50));
        assert_within_1pct("p95", b.p95_ms, exact_quantile(&sorted, 0.95));
        assert_within_1pct("p99", b.p99_ms, exact_quantile(&sorted, 0.99));
        assert_eq!((b.min_ms, b.max_ms), (1.0, 1000.0));
        assert!((b.sum_ms - 500_500.0).abs() < 1e-6);
        assert_eq!(
            &b.sample_traces, samples,
            "{service}: errors first, slowest first"
        );
        let ops: Vec<_> = b
            .operations
            .iter()
            .map(|o| (o.operation.as_str(), o.total_spans))
            .collect();
        assert_eq!(ops, vec![("GET /even", 500), ("GET /odd", 500)]);

        let kept: BTreeSet<String> = spans
            .iter()
            .filter(|s| &s.service_name == service)
            .map(|s| s.trace_id.clone())
            .collect();
        assert_eq!(
            &kept, &expected_kept[service],
            "{service}: filters keep exactly errors and slow spans"
        );
    }
    let slow_ok = spans
        .iter()
        .find(|s| s.duration_us == 901_000)
        .expect("901 ms span kept");
    assert_eq!(slow_ok.keep_reason, "latency");
    assert_eq!(slow_ok.http_status_code, 200);
    let attrs: serde_json::Value = serde_json::from_str(&slow_ok.attributes_json).unwrap();
    assert!(
        attrs["http.response.status_code"].is_i64(),
        "int attributes stay ints: {attrs}"
    );
    let error = spans
        .iter()
        .find(|s| s.duration_us == 20_000)
        .expect("20 ms error kept");
    assert_eq!(
        (error.keep_reason.as_str(), error.is_error),
        ("error", true)
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_id_sampling_keeps_whole_traces() {
    let dir = tempfile::tempdir().unwrap();
    let agent = start(&config(
        dir.path(),
        "    filters:\n      - sample_rate: 0.25",
    ))
    .await;
    let provider = provider(Transport::Grpc, &agent, "cart");
    let tracer = provider.tracer("coral-test");
    let t0 = minute_start();
    let mut all_traces = BTreeSet::new();
    for i in 0..200u64 {
        let start = t0 + Duration::from_millis(i * 100);
        let root = tracer
            .span_builder("POST /cart")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .start(&tracer);
        let parent = Context::new().with_remote_span_context(root.span_context().clone());
        all_traces.insert(root.span_context().trace_id().to_bytes());
        for child in 0..4u64 {
            let mut span = tracer
                .span_builder("SELECT cart")
                .with_kind(SpanKind::Client)
                .with_start_time(start + Duration::from_millis(child))
                .start_with_context(&tracer, &parent);
            span.end_with_timestamp(start + Duration::from_millis(child + 2));
        }
        let mut root = root;
        root.end_with_timestamp(start + Duration::from_millis(10));
    }
    flush(provider).await;

    let filter = StaticFilter::new(&FilterConfig {
        keep_errors: false,
        latency_threshold_ms: None,
        sample_rate: 0.25,
    });
    let expected: BTreeSet<String> = all_traces
        .iter()
        .filter(|t| filter.trace_sampled(t))
        .map(hex_id)
        .collect();
    assert!(!expected.is_empty() && expected.len() < 200);
    flush_and_wait(&agent, 2, expected.len() as u64 * 5).await;
    let (buckets, spans, _, _) = query_all(&agent, 0, 0).await;

    let mut per_trace: BTreeMap<String, usize> = BTreeMap::new();
    for span in &spans {
        *per_trace.entry(span.trace_id.clone()).or_default() += 1;
        assert_eq!(span.keep_reason, "sampled");
    }
    assert_eq!(per_trace.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(
        per_trace.values().all(|n| *n == 5),
        "every kept trace is whole"
    );
    let total: i64 = buckets.iter().map(|b| b.total_spans).sum();
    assert_eq!(
        total, 1000,
        "RED counts come from all spans, not the sample"
    );
    agent.shutdown().await;
}

fn hex_id(bytes: &[u8; 16]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
