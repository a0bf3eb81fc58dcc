//! The targets (see the crate docs).

use std::collections::HashMap;
use std::path::Path;

use coral_beyla::transform::{TracesOptions, TransformOptions, Transformer, traces};
use coral_config::{AgentConfig, AgentOverrides, ColonyConfig, ColonyOverrides};
use coral_model::{Bucket, DurationSketch};
use coral_proto::agent::QueryTelemetryResponse;
use coral_proto::colony::IngestTelemetryRequest;
use coral_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use coral_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::trace::v1::Span;
use coral_proto::otlp_wire::{TraceExportView, check_resource, resource_attributes, span_detail};
use prost::Message;

/// The in-place reader agrees with `prost`: an export `prost` decodes, it
/// reads too, with the same spans (ids, name, kind, times, status code);
/// one it refuses, `prost` refuses. (It may read an export that `prost`
/// refuses: it skips the fields it does not use by their wire type, as the
/// agent needs no more.) Whatever it reads, the per-span detail and the
/// resource readers handle without panicking, and a span it does not call
/// malformed has a readable detail.
pub fn otlp_wire(data: &[u8]) {
    let view = TraceExportView::parse(data);
    let reference = ExportTraceServiceRequest::decode(data);
    if let Ok(view) = &view {
        for span in &view.spans {
            let detail = span_detail(span.raw);
            if span.malformed.is_none() {
                assert!(
                    detail.is_ok(),
                    "span not called malformed has no detail: {detail:?}"
                );
            }
        }
        for resource in &view.resources {
            if let Some(raw) = resource.raw {
                let _ = check_resource(raw);
                let _ = resource_attributes(raw);
            }
        }
    }
    let Ok(reference) = reference else {
        return;
    };
    let view = view.unwrap_or_else(|e| panic!("prost decodes what otlp_wire refuses: {e}"));
    let valid = |trace: &[u8], span: &[u8]| trace.len() == 16 && span.len() == 8;
    let expected: Vec<&Span> = reference
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .filter(|s| valid(&s.trace_id, &s.span_id))
        .collect();
    let read: Vec<_> = view
        .spans
        .iter()
        .filter(|s| valid(s.trace_id, s.span_id))
        .collect();
    assert_eq!(read.len(), expected.len(), "spans with valid ids");
    for (view, span) in read.iter().zip(expected) {
        assert_eq!(view.trace_id, span.trace_id.as_slice());
        assert_eq!(view.span_id, span.span_id.as_slice());
        assert_eq!(view.parent_span_id, span.parent_span_id.as_slice());
        assert_eq!(view.name, span.name);
        assert_eq!(view.kind, span.kind);
        assert_eq!(view.start_time_unix_nano, span.start_time_unix_nano);
        assert_eq!(view.end_time_unix_nano, span.end_time_unix_nano);
        assert_eq!(
            view.status_code,
            span.status.as_ref().map_or(0, |s| s.code),
            "status code"
        );
    }
}

/// OTLP/JSON bodies of the three signals decode or are refused; a trace
/// export that decodes reads in place once encoded.
pub fn otlp_json(data: &[u8]) {
    if let Ok(request) = coral_proto::otlp_json::decode::<ExportTraceServiceRequest>(data) {
        let bytes = request.encode_to_vec();
        TraceExportView::parse(&bytes).expect("an export prost encoded reads in place");
        let _ = traces(&request, &TracesOptions::default());
    }
    let _ = coral_proto::otlp_json::decode::<ExportMetricsServiceRequest>(data);
    let _ = coral_proto::otlp_json::decode::<ExportLogsServiceRequest>(data);
}

/// Gzip bodies inflate within the bound or are refused; any bytes, gzipped
/// as a client does, inflate back to themselves, and one byte under their
/// length is refused as too large.
pub fn gzip_body(data: &[u8]) {
    use std::io::Write;

    use coral_proto::gzip::{GzipError, decompress};

    const LIMIT: usize = 1 << 20;
    if let Ok(out) = decompress(data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).expect("gzip into memory");
    let body = encoder.finish().expect("gzip into memory");
    assert_eq!(
        decompress(&body, data.len()).expect("a whole gzip body"),
        data
    );
    if !data.is_empty() {
        assert!(matches!(
            decompress(&body, data.len() - 1),
            Err(GzipError::TooLarge { .. })
        ));
    }
}

/// Metrics and logs exports decode or are refused; Beyla's transform takes
/// any metrics or trace export that decodes (two rounds, so cumulative
/// series meet their previous values).
pub fn otlp_exports(data: &[u8]) {
    if let Ok(request) = ExportMetricsServiceRequest::decode(data) {
        let mut transformer = Transformer::new(TransformOptions::default());
        let _ = transformer.metrics(&request);
        let _ = transformer.metrics(&request);
    }
    if let Ok(request) = ExportTraceServiceRequest::decode(data) {
        let _ = traces(&request, &TracesOptions::default());
        let _ = traces(
            &request,
            &TracesOptions {
                sample_rate: 0.5,
                obfuscate_queries: false,
            },
        );
    }
    let _ = ExportLogsServiceRequest::decode(data);
}

/// What the colony reads from an agent: a `QueryTelemetry` page or an
/// `IngestTelemetry` push, its buckets and sketches. Buckets are decoded,
/// merged with each other and summarised as the colony does; a sketch is
/// refused or usable.
pub fn colony_page(data: &[u8]) {
    let mut buckets = Vec::new();
    if let Ok(page) = QueryTelemetryResponse::decode(data) {
        buckets.extend(page.buckets);
    }
    if let Ok(push) = IngestTelemetryRequest::decode(data) {
        buckets.extend(push.buckets);
    }
    let mut merged: Option<Bucket> = None;
    for proto in &buckets {
        let Ok(bucket) = Bucket::from_proto(proto) else {
            continue;
        };
        let _ = bucket.to_proto("fuzz", 1);
        for (_, stats) in &bucket.operations {
            let _ = stats.sketch.quantile(0.99);
            let _ = stats.sketch.cumulative_counts(&[5.0, 50.0, 500.0]);
        }
        match &mut merged {
            Some(m) if m.key == bucket.key => {
                let _ = m.merge(&bucket);
            }
            _ => merged = Some(bucket),
        }
    }
    if let Ok(sketch) = DurationSketch::decode(data) {
        let _ = sketch.quantile(0.5);
        let round = DurationSketch::decode(&sketch.encode()).expect("a decoded sketch re-encodes");
        assert_eq!(round, sketch);
    }
}

/// Agent and colony configuration files are read or refused with an error.
pub fn config_yaml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env: HashMap<String, String> = [("HOME".to_owned(), "/nonexistent".to_owned())].into();
    let origin = Path::new("fuzz.yaml");
    let _ = AgentConfig::from_yaml_str(text, origin, &env, &AgentOverrides::default());
    let _ = ColonyConfig::from_yaml_str(text, origin, &env, &ColonyOverrides::default());
}

/// Any question is read or refused with an error.
pub fn ask_question(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let known = ["checkout", "payments", "card-validator", "frontend"].map(str::to_owned);
    let _ = coral_diagnose::question::parse_question(&text, &known, 1_795_003_200);
}
