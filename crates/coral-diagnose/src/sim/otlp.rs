//! The simulator's spans as OTLP: what each simulated service's
//! OpenTelemetry SDK would export (resource with `service.name`,
//! `service.version`, `k8s.pod.name` and `host.name`; `http.route`, the HTTP
//! status, `db.system` and `db.statement`; an ERROR status with its
//! message), gathered into export requests of a bounded size.
//!
//! Used by `coral demo`'s traffic and by the evaluation's real mode.

use std::collections::BTreeMap;

use coral_model::SpanKind;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use coral_proto::otlp::resource::v1::Resource;
use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use crate::sim::run::SimSpan;

/// (service, version, pod, host) of a span's resource.
type ResourceKey = (&'static str, String, String, &'static str);

/// Spans gathered into OTLP export requests of at most `max_spans` spans.
#[derive(Debug)]
pub struct OtlpBatches {
    max_spans: usize,
    open: BTreeMap<ResourceKey, Vec<Span>>,
    open_spans: usize,
    requests: Vec<ExportTraceServiceRequest>,
    spans: u64,
}

impl OtlpBatches {
    /// Empty, sealing a request every `max_spans` spans (at least 1).
    pub fn new(max_spans: usize) -> OtlpBatches {
        OtlpBatches {
            max_spans: max_spans.max(1),
            open: BTreeMap::new(),
            open_spans: 0,
            requests: Vec::new(),
            spans: 0,
        }
    }

    /// Adds every span of one trace (`trace_id` in hex, as the simulator
    /// gives it).
    pub fn add_trace(&mut self, trace_id: &str, spans: &[SimSpan]) {
        let id = hex_bytes(trace_id);
        for s in spans {
            self.open
                .entry((s.service, s.version.clone(), s.pod.clone(), s.agent))
                .or_default()
                .push(span(&id, s));
            self.open_spans += 1;
            self.spans += 1;
            if self.open_spans >= self.max_spans {
                self.seal();
            }
        }
    }

    /// Turns the spans not yet in a request into one.
    pub fn seal(&mut self) {
        if self.open_spans == 0 {
            return;
        }
        let resource_spans = std::mem::take(&mut self.open)
            .into_iter()
            .map(|((service, version, pod, host), spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        text("service.name", service),
                        text("service.version", &version),
                        text("k8s.pod.name", &pod),
                        text("host.name", host),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect();
        self.requests
            .push(ExportTraceServiceRequest { resource_spans });
        self.open_spans = 0;
    }

    /// The sealed requests so far (taken out).
    pub fn take_requests(&mut self) -> Vec<ExportTraceServiceRequest> {
        std::mem::take(&mut self.requests)
    }

    /// Spans added in all.
    pub fn spans(&self) -> u64 {
        self.spans
    }
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn text(key: &str, value: &str) -> KeyValue {
    kv(key, Value::StringValue(value.to_owned()))
}

/// The OTLP `SpanKind` number.
fn otlp_kind(kind: SpanKind) -> i32 {
    match kind {
        SpanKind::Unspecified => 0,
        SpanKind::Internal => 1,
        SpanKind::Server => 2,
        SpanKind::Client => 3,
        SpanKind::Producer => 4,
        SpanKind::Consumer => 5,
    }
}

/// Bytes of a hex id (the simulator's ids are lowercase hex).
fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// A simulated span as its service's OpenTelemetry SDK would export it.
pub fn span(trace_id: &[u8], s: &SimSpan) -> Span {
    let mut attributes = Vec::new();
    if let Some(route) = s.route {
        attributes.push(text("http.route", route));
    }
    if s.http_status() != 0 {
        attributes.push(kv(
            "http.response.status_code",
            Value::IntValue(i64::from(s.http_status())),
        ));
    }
    if let Some((system, statement)) = s.db {
        attributes.push(text("db.system", system));
        attributes.push(text("db.statement", statement));
    }
    Span {
        trace_id: trace_id.to_vec(),
        span_id: s.id.to_be_bytes().to_vec(),
        parent_span_id: if s.parent == 0 {
            Vec::new()
        } else {
            s.parent.to_be_bytes().to_vec()
        },
        name: s.name.to_owned(),
        kind: otlp_kind(s.kind),
        start_time_unix_nano: s.start as u64,
        end_time_unix_nano: s.end as u64,
        attributes,
        status: s.error.as_ref().map(|(message, _)| Status {
            code: 2,
            message: message.clone(),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::run::SimSpan;

    fn sim_span(id: u64, parent: u64, error: bool) -> SimSpan {
        SimSpan {
            id,
            parent,
            service: "checkout",
            name: "POST /checkout",
            kind: SpanKind::Server,
            start: 1_000,
            end: 5_000,
            error: error.then(|| ("card declined".to_owned(), 502)),
            db: None,
            agent: "host-a",
            version: "1.4.0".into(),
            pod: "checkout-1".into(),
            route: Some("/checkout"),
        }
    }

    #[test]
    fn traces_become_requests_by_resource_of_bounded_size() {
        let mut b = OtlpBatches::new(2);
        b.add_trace(
            "0af7651916cd43dd8448eb211c80319c",
            &[
                sim_span(1, 0, false),
                sim_span(2, 1, true),
                sim_span(3, 1, false),
            ],
        );
        b.seal();
        let requests = b.take_requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(b.spans(), 3);
        let first = &requests[0].resource_spans[0];
        let attrs: Vec<&str> = first
            .resource
            .as_ref()
            .unwrap()
            .attributes
            .iter()
            .map(|a| a.key.as_str())
            .collect();
        assert_eq!(
            attrs,
            [
                "service.name",
                "service.version",
                "k8s.pod.name",
                "host.name"
            ]
        );
        let spans = &first.scope_spans[0].spans;
        assert_eq!(spans[0].trace_id.len(), 16);
        assert!(spans[0].parent_span_id.is_empty());
        assert_eq!(spans[1].parent_span_id, 1u64.to_be_bytes());
        assert_eq!(spans[1].status.as_ref().unwrap().code, 2);
        assert_eq!(spans[0].kind, 2);
    }
}
