//! Per-span cost of the agent's hot path on realistic payloads (100 HTTP
//! server spans of ~556 bytes per request, from `coral-loadgen`):
//!
//! - `prost_decode`: a full `prost` decode of `ExportTraceServiceRequest`
//!   into owned structs, for comparison (the agent no longer does this);
//! - `view`: the agent's in-place read of the same bytes
//!   (`coral_proto::otlp_wire`);
//! - `decode_normalize_aggregate`: the whole pipeline: read in place →
//!   validate → aggregate 100% of spans → static filters (10% sampling,
//!   errors, > 500 ms) → read the kept spans' attributes in place, normalize
//!   them and hand them to the writer channel (drained by a thread; DuckDB is
//!   measured separately by the load harness).
//!
//! Run: `cargo bench -p coral-agent --bench ingest`.

use std::sync::Arc;

use bytes::Bytes;
use coral_agent::aggregate::{Aggregator, Limits};
use coral_agent::filter::StaticFilter;
use coral_agent::metrics::Counters;
use coral_agent::pipeline::Pipeline;
use coral_config::FilterConfig;
use coral_loadgen::payload::{Payloads, now_unix_nanos};
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp_wire::TraceExportView;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;

fn requests() -> (Vec<Bytes>, u64) {
    let payloads = Payloads::build(64, 100, 42).expect("payloads");
    let now = now_unix_nanos();
    let encoded: Vec<Bytes> = payloads
        .templates
        .iter()
        .map(|t| {
            let mut buf = Vec::with_capacity(t.len());
            t.render_into(now, &mut buf);
            Bytes::from(buf)
        })
        .collect();
    (encoded, payloads.spans_per_request() as u64)
}

fn pipeline() -> Pipeline {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || while rx.recv().is_ok() {});
    Pipeline::new(
        Aggregator::new(Limits {
            max_operations_per_service: 200,
            max_services: 1000,
            grace_secs: 10,
        }),
        StaticFilter::new(&FilterConfig {
            keep_errors: true,
            latency_threshold_ms: Some(500.0),
            sample_rate: 0.10,
        }),
        regex::RegexSet::empty(),
        1_000_000,
        tx,
        Arc::new(Counters::default()),
    )
}

fn bench(c: &mut Criterion) {
    let (encoded, spans) = requests();
    let mut group = c.benchmark_group("ingest");
    group.throughput(Throughput::Elements(spans));
    let mut i = 0;
    group.bench_function("prost_decode", |b| {
        b.iter(|| {
            i = (i + 1) % encoded.len();
            ExportTraceServiceRequest::decode(encoded[i].clone()).expect("decodes")
        })
    });
    group.bench_function("view", |b| {
        b.iter(|| {
            i = (i + 1) % encoded.len();
            TraceExportView::parse(&encoded[i])
                .expect("parses")
                .spans
                .len()
        })
    });
    let pipeline = pipeline();
    let mut i = 0;
    group.bench_function("decode_normalize_aggregate", |b| {
        b.iter(|| {
            i = (i + 1) % encoded.len();
            pipeline.ingest_traces(&encoded[i]).expect("admitted")
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
