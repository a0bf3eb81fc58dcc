//! Cost of the Beyla transform: per metric data point (a realistic cumulative
//! export of 1,000 HTTP series over 10 services, in steady state: every
//! series advanced by one export interval) and per span (1,000 Beyla v3
//! server spans with their resource attributes, query obfuscation on).
//!
//! `cargo bench -p coral-beyla --bench transform`; criterion reports the
//! time per export, and with `Throughput::Elements` the points (spans) per
//! second.

use std::time::Duration;

use coral_beyla::transform::{TracesOptions, TransformOptions, Transformer, obfuscate_sql, traces};
use coral_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use coral_proto::otlp::metrics::v1::{
    AggregationTemporality, Histogram, HistogramDataPoint, Metric, ResourceMetrics, ScopeMetrics,
    metric::Data,
};
use coral_proto::otlp::resource::v1::Resource;
use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

const BOUNDS: [f64; 15] = [
    0.0, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];
const T0: u64 = 1_767_225_600_000_000_000;
const MIN: u64 = 60_000_000_000;

fn kv(key: &str, v: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
        ..Default::default()
    }
}

fn s(key: &str, v: &str) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn resource(service: &str) -> Resource {
    Resource {
        attributes: vec![
            s("service.name", service),
            s("telemetry.sdk.language", "go"),
            s("telemetry.sdk.name", "beyla"),
            s("telemetry.sdk.version", "v1.45.0"),
            s(
                "telemetry.distro.name",
                "opentelemetry-ebpf-instrumentation",
            ),
            s("host.name", "node-1"),
            s("host.id", "4f1c0a9e"),
            s("os.type", "linux"),
            s(
                "service.instance.id",
                &format!("node-1:{}", service.len() * 1000),
            ),
        ],
        ..Default::default()
    }
}

/// 10 services × 25 routes × 2 methods × 2 statuses = 1,000 series.
fn metrics_export() -> ExportMetricsServiceRequest {
    let resource_metrics = (0..10)
        .map(|svc| {
            let service = format!("service-{svc}");
            let mut points = Vec::new();
            for route in 0..25 {
                for method in ["GET", "POST"] {
                    for status in [200, 500] {
                        let mut counts = vec![0u64; 16];
                        counts[4] = 10;
                        counts[7] = 2;
                        points.push(HistogramDataPoint {
                            attributes: vec![
                                s("http.request.method", method),
                                kv("http.response.status_code", Value::IntValue(status)),
                                s("http.route", &format!("/api/v1/resource-{route}/*")),
                                s("url.scheme", "http"),
                                s("server.address", "node-1"),
                                kv("server.port", Value::IntValue(8080)),
                                s("service.name", &service),
                                s("service.namespace", ""),
                            ],
                            start_time_unix_nano: T0,
                            time_unix_nano: T0 + MIN,
                            count: 12,
                            sum: Some(0.9),
                            bucket_counts: counts,
                            explicit_bounds: BOUNDS.to_vec(),
                            min: Some(0.03),
                            max: Some(0.2),
                            ..Default::default()
                        });
                    }
                }
            }
            ResourceMetrics {
                resource: Some(resource(&service)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(InstrumentationScope {
                        name: "go.opentelemetry.io/obi".into(),
                        ..Default::default()
                    }),
                    metrics: vec![Metric {
                        name: "http.server.request.duration".into(),
                        unit: "s".into(),
                        data: Some(Data::Histogram(Histogram {
                            data_points: points,
                            aggregation_temporality: AggregationTemporality::Cumulative as i32,
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// The next cumulative export: one interval later, a few more requests.
fn advance(req: &mut ExportMetricsServiceRequest) {
    for rm in &mut req.resource_metrics {
        for sm in &mut rm.scope_metrics {
            for m in &mut sm.metrics {
                if let Some(Data::Histogram(h)) = &mut m.data {
                    for p in &mut h.data_points {
                        p.time_unix_nano += MIN;
                        p.bucket_counts[4] += 3;
                        p.bucket_counts[6] += 1;
                        p.count += 4;
                        p.sum = p.sum.map(|s| s + 0.2);
                    }
                }
            }
        }
    }
}

fn traces_export() -> ExportTraceServiceRequest {
    let spans = (0..1000u64)
        .map(|i| {
            let mut trace_id = [0u8; 16];
            trace_id[..8].copy_from_slice(&i.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_be_bytes());
            trace_id[8..]
                .copy_from_slice(&(i + 1).wrapping_mul(0xD1B5_4A32_D192_ED03).to_be_bytes());
            let attributes = if i % 5 == 0 {
                vec![
                    s("db.system.name", "postgresql"),
                    s("db.operation.name", "SELECT"),
                    s("db.collection.name", "accounting.contacts"),
                    s("server.address", "db.internal"),
                    kv("server.port", Value::IntValue(5432)),
                    s(
                        "db.query.text",
                        &format!("SELECT * FROM accounting.contacts WHERE id = {i} AND kind = 'x'"),
                    ),
                ]
            } else {
                vec![
                    kv("http.response.status_code", Value::IntValue(200)),
                    s("client.address", "10.244.2.144"),
                    s("server.address", "checkout"),
                    kv("server.port", Value::IntValue(8080)),
                    kv("http.request.body.size", Value::IntValue(0)),
                    kv("http.response.body.size", Value::IntValue(178)),
                    s("http.request.method", "GET"),
                    s("url.path", &format!("/api/users/{i}")),
                    s("url.scheme", "http"),
                    s("http.route", "/api/users/*"),
                ]
            };
            ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: (i + 1).to_be_bytes().to_vec(),
                    parent_span_id: vec![0xcc; 8],
                    name: "GET /api/users/*".into(),
                    kind: 2,
                    start_time_unix_nano: T0 + i * 1_000_000,
                    end_time_unix_nano: T0 + i * 1_000_000 + 35_120_000,
                    attributes,
                    status: Some(Status::default()),
                    ..Default::default()
                }],
                ..Default::default()
            }
        })
        .collect();
    let mut res = resource("checkout");
    res.attributes
        .push(s("otel.scope.name", "github.com/grafana/beyla"));
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(res),
            scope_spans: spans,
            ..Default::default()
        }],
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("transform");
    g.throughput(Throughput::Elements(1000));

    let mut next = metrics_export();
    let mut t = Transformer::new(TransformOptions::default());
    // The first export of a fresh series set is counted in full; from then
    // on every export is a steady-state delta.
    let first = t.metrics(&next);
    assert_eq!(first.points_used, 1000);
    g.bench_function("metrics_1000_http_series_cumulative", |b| {
        b.iter_batched(
            || {
                advance(&mut next);
                next.clone()
            },
            |req| {
                let out = t.metrics(&req);
                debug_assert_eq!(out.rows.http.len(), 1000);
                out
            },
            BatchSize::LargeInput,
        )
    });

    let spans = traces_export();
    let opts = TracesOptions::default();
    g.bench_function("traces_1000_spans", |b| b.iter(|| traces(&spans, &opts)));
    g.finish();

    c.bench_function("obfuscate_sql", |b| {
        b.iter(|| obfuscate_sql("SELECT * FROM accounting.contacts WHERE id = 42 AND email = 'a@b.c' AND x IN (1, 2, 3)"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .sample_size(20);
    targets = bench
}
criterion_main!(benches);
