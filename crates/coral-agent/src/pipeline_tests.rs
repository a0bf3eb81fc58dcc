//! The pipeline on encoded exports: what is aggregated, kept and refused.

use std::sync::Arc;
use std::sync::mpsc::Receiver;

use coral_config::FilterConfig;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use coral_proto::otlp::resource::v1::Resource;
use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;

use super::*;
use crate::aggregate::Limits;

fn pipeline() -> (Pipeline, Receiver<WriteOp>) {
    let (tx, rx) = std::sync::mpsc::channel();
    let pipeline = Pipeline::new(
        Aggregator::new(Limits {
            max_operations_per_service: 10,
            max_services: 10,
            grace_secs: 0,
        }),
        StaticFilter::new(&FilterConfig {
            keep_errors: true,
            latency_threshold_ms: None,
            sample_rate: 0.0,
        }),
        RegexSet::new(["secret"]).unwrap(),
        1_000,
        tx,
        Arc::new(Counters::default()),
    );
    (pipeline, rx)
}

fn kv(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.into())),
        }),
        ..Default::default()
    }
}

fn span(n: u8, error: bool, value: &str) -> Span {
    Span {
        trace_id: vec![n; 16],
        span_id: vec![n; 8],
        name: format!("span {n}"),
        kind: 2,
        start_time_unix_nano: 1_700_000_000_000_000_000,
        end_time_unix_nano: 1_700_000_000_010_000_000,
        attributes: vec![kv("note", value)],
        status: error.then(|| Status {
            code: 2,
            message: "failed".into(),
        }),
        ..Default::default()
    }
}

fn encode(spans: Vec<Span>) -> Vec<u8> {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "cart"), kv("secret.token", "t")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

/// Replaces the first occurrence of `marker` with bytes that are not UTF-8.
fn corrupt(mut bytes: Vec<u8>, marker: &str) -> Vec<u8> {
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker.as_bytes())
        .expect("marker in the encoding");
    bytes[at] = 0xff;
    bytes
}

#[test]
fn kept_spans_are_decoded_whole_and_the_rest_only_counted() {
    let (pipeline, rx) = pipeline();
    let request = encode(vec![span(1, true, "kept"), span(2, false, "dropped")]);
    assert_eq!(
        pipeline.ingest_traces(&request),
        Ok(PartialOutcome::default())
    );
    let Ok(WriteOp::Spans(spans, _)) = rx.try_recv() else {
        panic!("kept spans go to the writer");
    };
    assert_eq!(spans.len(), 1);
    let kept = &spans[0];
    assert_eq!(kept.service_name, "cart");
    assert_eq!(kept.span_name, "span 1");
    assert_eq!(kept.keep_reason, "error");
    assert_eq!(kept.status_message, "failed");
    assert_eq!(kept.trace_id, "01".repeat(16));
    let resource: serde_json::Value = serde_json::from_str(&kept.resource_json).unwrap();
    assert_eq!(resource["service.name"], "cart");
    assert_eq!(resource["secret.token"], normalize::REDACTED);
    let c = pipeline.counters();
    assert_eq!(
        c.spans_accepted.load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    assert_eq!(
        c.spans_filtered.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

#[test]
fn a_span_nested_too_deeply_is_refused_saying_so() {
    let (pipeline, _rx) = pipeline();
    let mut value = AnyValue {
        value: Some(Value::StringValue("leaf".into())),
    };
    for _ in 0..100 {
        value = AnyValue {
            value: Some(Value::KvlistValue(
                coral_proto::otlp::common::v1::KeyValueList {
                    values: vec![KeyValue {
                        key: "k".into(),
                        value: Some(value),
                        ..Default::default()
                    }],
                },
            )),
        };
    }
    let mut deep = span(1, true, "x");
    deep.attributes.push(KeyValue {
        key: "deep".into(),
        value: Some(value),
        ..Default::default()
    });
    let outcome = pipeline.ingest_traces(&encode(vec![deep])).unwrap();
    assert_eq!(outcome.rejected, 1);
    assert!(
        outcome.message.contains("nested too deeply"),
        "{}",
        outcome.message
    );
}

#[test]
fn a_span_that_is_not_valid_protobuf_is_refused_alone_kept_or_not() {
    let (pipeline, rx) = pipeline();
    // Invalid UTF-8 in an attribute of a kept (error) span and of a span the
    // filters drop: both refused through partial success, neither counted
    // in RED; the valid spans go on.
    let request = corrupt(
        corrupt(
            encode(vec![
                span(1, true, "Xbad"),
                span(2, true, "fine"),
                span(3, false, "Ydropped"),
                span(4, false, "fine too"),
            ]),
            "Xbad",
        ),
        "Ydropped",
    );
    let outcome = pipeline.ingest_traces(&request).unwrap();
    assert_eq!(outcome.rejected, 2);
    assert!(
        outcome.message.contains("span \"span 1\""),
        "{}",
        outcome.message
    );
    assert!(
        outcome.message.contains("cannot be read: ") && outcome.message.contains("UTF-8"),
        "{}",
        outcome.message
    );
    let Ok(WriteOp::Spans(spans, _)) = rx.try_recv() else {
        panic!("the valid kept span goes to the writer");
    };
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].span_name, "span 2");
    let c = pipeline.counters();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&c.spans_received), 4);
    assert_eq!(load(&c.spans_accepted), 2);
    assert_eq!(load(&c.spans_filtered), 1);
}

#[test]
fn a_resource_that_is_not_valid_protobuf_refuses_its_spans_kept_or_not() {
    let (pipeline, _rx) = pipeline();
    // Only dropped spans: the resource is never stored, and still checked.
    let request = corrupt(
        encode(vec![span(1, false, "a"), span(2, false, "b")]),
        "secret.token",
    );
    let outcome = pipeline.ingest_traces(&request).unwrap();
    assert_eq!(outcome.rejected, 2);
    assert!(outcome.message.contains("UTF-8"), "{}", outcome.message);
}

#[test]
fn spans_with_ids_of_the_wrong_length_are_counted_not_kept_in_memory() {
    let (pipeline, rx) = pipeline();
    let mut spans: Vec<Span> = (0..1000)
        .map(|i| Span {
            trace_id: vec![1; 4],
            name: format!("short {i}"),
            ..Default::default()
        })
        .collect();
    spans.insert(500, span(7, true, "kept"));
    spans.push(Span::default());
    let bytes = encode(spans);

    let view = coral_proto::otlp_wire::TraceExportView::parse(&bytes).unwrap();
    assert_eq!(view.spans.len(), 2, "the valid span and the first bad one");
    assert_eq!(view.skipped_bad_ids, 1000);

    let outcome = pipeline.ingest_traces(&bytes).unwrap();
    assert_eq!(outcome.rejected, 1001);
    assert!(
        outcome.message.contains("span \"short 0\"") && outcome.message.contains("16 bytes"),
        "{}",
        outcome.message
    );
    let Ok(WriteOp::Spans(kept, _)) = rx.try_recv() else {
        panic!("the valid span goes to the writer");
    };
    assert_eq!(kept.len(), 1);
    let c = pipeline.counters();
    let get = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(get(&c.spans_received), 1002);
    assert_eq!(get(&c.spans_rejected), 1001);
    assert_eq!(get(&c.spans_accepted), 1);
}

#[test]
fn an_export_that_cannot_be_read_is_malformed() {
    let (pipeline, _rx) = pipeline();
    let Err(IngestError::Malformed(reason)) = pipeline.ingest_traces(&[0x0a, 0x05, 0x01]) else {
        panic!("a truncated export is malformed");
    };
    assert!(reason.contains("past the end"), "{reason}");
    assert!(matches!(
        TraceExport::Encoded(&[0x0a, 0x05]).decoded(),
        Err(IngestError::Malformed(_))
    ));
}

#[test]
fn json_decoded_exports_take_the_same_path() {
    let (pipeline, rx) = pipeline();
    let request =
        ExportTraceServiceRequest::decode(encode(vec![span(4, true, "x")]).as_slice()).unwrap();
    pipeline
        .export_traces(TraceExport::Decoded(&request))
        .unwrap();
    assert!(matches!(rx.try_recv(), Ok(WriteOp::Spans(spans, _)) if spans.len() == 1));
}

fn spans_of(rx: &Receiver<WriteOp>) -> usize {
    rx.try_iter()
        .map(|op| match op {
            WriteOp::Spans(spans, _) => spans.len(),
            _ => 0,
        })
        .sum()
}

fn recorded(pipeline: &Pipeline) -> u64 {
    pipeline
        .aggregator()
        .lock()
        .unwrap()
        .flush(0, true)
        .iter()
        .map(|b| b.stats.total)
        .sum()
}

#[test]
fn a_retried_export_is_answered_and_counted_once() {
    let (pipeline, rx) = pipeline();
    let request = encode(vec![span(1, true, "kept"), span(2, false, "dropped")]);
    assert_eq!(
        pipeline.ingest_traces(&request),
        Ok(PartialOutcome::default())
    );
    assert_eq!(
        pipeline.ingest_traces(&request),
        Ok(PartialOutcome::default()),
        "a retry is answered as the first copy was"
    );
    assert_eq!(spans_of(&rx), 1, "the kept span is stored once");
    assert_eq!(recorded(&pipeline), 2, "each span is counted once");
    let c = pipeline.counters();
    let load = |n: &std::sync::atomic::AtomicU64| n.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        (
            load(&c.spans_received),
            load(&c.spans_accepted),
            load(&c.requests_retried),
            load(&c.spans_retried)
        ),
        (4, 2, 1, 2)
    );
    // The same spans at other times are other spans.
    let mut later = span(1, true, "kept");
    later.start_time_unix_nano += 1;
    assert_eq!(
        pipeline.ingest_traces(&encode(vec![later])),
        Ok(PartialOutcome::default())
    );
    assert_eq!(spans_of(&rx), 1);
}

#[test]
fn a_retry_waits_for_the_first_copys_commit_and_is_taken_again_if_it_failed() {
    let (pipeline, rx) = pipeline();
    let durability = Durability::new();
    let pipeline = pipeline.with_stored_ack(durability.clone());
    let request = encode(vec![span(1, true, "kept")]);
    let first = pipeline.ingest_traces(&request).unwrap().stored.unwrap();
    // The retry arrives while the first copy's commit is open: it is told
    // to wait for that same commit and counts nothing.
    let retry = pipeline.ingest_traces(&request).unwrap().stored.unwrap();
    assert_eq!(retry, first);
    assert_eq!(spans_of(&rx), 1);
    // That commit fails (both copies are answered 503): the next retry is
    // a new export, in a later generation.
    let (_, generation) = pipeline.aggregator().lock().unwrap().take_deltas();
    assert_eq!(Ticket(generation), first);
    durability.failed(generation, "No space left on device");
    let again = pipeline.ingest_traces(&request).unwrap().stored.unwrap();
    assert_ne!(again, first);
    assert_eq!(spans_of(&rx), 1, "taken again");
    assert_eq!(recorded(&pipeline), 1);
    // Once that commit is stored, a retry is answered at once.
    let (_, generation) = pipeline.aggregator().lock().unwrap().take_deltas();
    durability.stored(generation);
    assert_eq!(
        pipeline.ingest_traces(&request).unwrap().stored,
        Some(again)
    );
    assert_eq!(spans_of(&rx), 0);
}

#[test]
fn one_generation_holds_a_bounded_commit_and_the_next_export_waits() {
    let (pipeline, rx) = pipeline();
    let pipeline = pipeline.with_stored_ack(Durability::new());
    // About 9 MB of kept spans each (errors are kept; 4 KB of attributes).
    let wide = "x".repeat(2_000);
    let export = |first: u8| {
        let spans = (0..2_100u32)
            .map(|i| {
                let mut s = span(first, true, &wide);
                s.span_id = [&i.to_be_bytes()[..], &[first; 4]].concat();
                s.attributes.push(kv("more", &wide));
                s
            })
            .collect();
        encode(spans)
    };
    assert!(pipeline.ingest_traces(&export(1)).is_ok());
    assert_eq!(spans_of(&rx), 2_100);
    assert_eq!(
        pipeline.ingest_traces(&export(2)),
        Err(IngestError::Throttled {
            retry_after_secs: RETRY_AFTER_SECS
        }),
        "the open generation is full"
    );
    assert_eq!(
        recorded(&pipeline),
        2_100,
        "the refused export counted nothing"
    );
    // The writer takes the generation: the export fits in the next one.
    pipeline.aggregator().lock().unwrap().take_deltas();
    assert!(pipeline.ingest_traces(&export(2)).is_ok());
    assert_eq!(spans_of(&rx), 2_100);
}
