//! Normalization of OTLP spans into Coral's model.
//!
//! Two levels, so the hot path stays cheap:
//!
//! - [`SpanFacts`] is computed for **every** span without allocating, from
//!   the borrowed [`SpanView`] of the export's bytes: the fields that
//!   aggregation and the static filters need (kind, start, duration,
//!   error-ness, trace id).
//! - [`to_telemetry_span`] builds the full, owned [`TelemetrySpan`] (hex ids,
//!   typed attribute JSON, semantic-convention fields) only for spans that the
//!   filters keep.
//!
//! Semantic conventions are read in both their current and older forms
//! (`http.request.method`/`http.method`, `http.response.status_code`/
//! `http.status_code`, `db.system.name`/`db.system`, ...). Attribute values
//! keep their OTLP types.

use coral_model::SpanKind;
use coral_proto::common::TelemetrySpan;
use coral_proto::otlp::trace::v1::status::StatusCode;
use coral_proto::otlp_wire::{KeyValueView, SpanDetail, SpanView, ValueView};
use regex::RegexSet;

/// The service name the OTLP specification prescribes when a resource has none.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Replacement written for attribute values whose key matches a scrub pattern.
pub const REDACTED: &str = "[REDACTED]";

/// Why a span could not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// The trace id is not 16 bytes, or is all zeros.
    TraceId,
    /// The span id is not 8 bytes, or is all zeros.
    SpanId,
    /// The parent span id is neither empty nor 8 bytes.
    ParentSpanId,
    /// The start time is missing or the end time precedes it.
    Times,
    /// A span (or its resource) holds a field that is not valid
    /// protobuf, such as a string that is not UTF-8, or attribute values
    /// nested deeper than the limit; the reader's reason.
    Encoding(&'static str),
}

impl Invalid {
    /// A human-readable reason, used in `partial_success.error_message`.
    pub fn reason(self) -> std::borrow::Cow<'static, str> {
        let fixed = match self {
            Invalid::TraceId => "trace_id must be 16 bytes and not all zero",
            Invalid::SpanId => "span_id must be 8 bytes and not all zero",
            Invalid::ParentSpanId => "parent_span_id must be empty or 8 bytes",
            Invalid::Times => {
                "start_time_unix_nano must be set and end_time_unix_nano must not precede it"
            }
            Invalid::Encoding(why) => {
                return format!("the span or its resource cannot be read: {why}").into();
            }
        };
        fixed.into()
    }
}

/// What aggregation and filtering need to know about one span.
#[derive(Debug, Clone, Copy)]
pub struct SpanFacts {
    /// The span kind.
    pub kind: SpanKind,
    /// Start time, Unix nanoseconds.
    pub start_ns: u64,
    /// Duration in milliseconds (nanosecond precision).
    pub duration_ms: f64,
    /// Whether the span counts as an error (see [`is_error`]).
    pub is_error: bool,
    /// The 16-byte trace id.
    pub trace_id: [u8; 16],
}

impl SpanFacts {
    /// Validates `span` and extracts its facts.
    pub fn of(span: &SpanView<'_>) -> Result<SpanFacts, Invalid> {
        let trace_id: [u8; 16] = span.trace_id.try_into().map_err(|_| Invalid::TraceId)?;
        if trace_id == [0; 16] {
            return Err(Invalid::TraceId);
        }
        if span.span_id.len() != 8 || span.span_id.iter().all(|b| *b == 0) {
            return Err(Invalid::SpanId);
        }
        if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
            return Err(Invalid::ParentSpanId);
        }
        if span.start_time_unix_nano == 0 || span.end_time_unix_nano < span.start_time_unix_nano {
            return Err(Invalid::Times);
        }
        let kind = SpanKind::from_otlp(span.kind);
        let duration_ms = (span.end_time_unix_nano - span.start_time_unix_nano) as f64 / 1e6;
        let status_error = span.status_code == StatusCode::Error as i32;
        Ok(SpanFacts {
            kind,
            start_ns: span.start_time_unix_nano,
            duration_ms,
            is_error: is_error(kind, status_error, span.http_status_code),
            trace_id,
        })
    }
}

/// A span is an error when its status is ERROR, or it is a SERVER span with an
/// HTTP status ≥ 500, or a CLIENT span with an HTTP status ≥ 400.
pub fn is_error(kind: SpanKind, status_error: bool, http_status: Option<i64>) -> bool {
    if status_error {
        return true;
    }
    match (kind, http_status) {
        (SpanKind::Server, Some(code)) => code >= 500,
        (SpanKind::Client, Some(code)) => code >= 400,
        _ => false,
    }
}

/// The value of the first of `keys` present (first occurrence), if set.
fn find<'v, 'a>(attrs: &'v [KeyValueView<'a>], keys: &[&str]) -> Option<&'v ValueView<'a>> {
    keys.iter().find_map(|key| {
        attrs
            .iter()
            .find(|kv| kv.key == *key)
            .and_then(|kv| kv.value.as_ref())
    })
}

fn string_of(attrs: &[KeyValueView<'_>], keys: &[&str]) -> String {
    find(attrs, keys)
        .map(|v| match v {
            ValueView::String(s) => (*s).to_owned(),
            ValueView::Int(i) => i.to_string(),
            _ => String::new(),
        })
        .unwrap_or_default()
}

/// Builds the stored form of a kept span from its view and its
/// [`SpanDetail`]. `seq_id` and `keep_reason` are set by the caller;
/// `resource_json` is [`attributes_json`] of the span's resource, computed
/// once per resource. The flag is true when the span's attributes, status
/// message or names were cut to the stored limits ([`KEPT_ATTRIBUTES`],
/// [`MAX_STATUS_MESSAGE_BYTES`], [`MAX_NAME_BYTES`]).
pub fn to_telemetry_span(
    service: &str,
    resource_json: &str,
    span: &SpanView<'_>,
    detail: &SpanDetail<'_>,
    facts: &SpanFacts,
    scrub: &RegexSet,
) -> (TelemetrySpan, bool) {
    let attrs = &detail.attributes;
    let (status_code, status_message) = match span.status_code {
        c if c == StatusCode::Error as i32 => ("ERROR", detail.status_message),
        c if c == StatusCode::Ok as i32 => ("OK", detail.status_message),
        _ => ("UNSET", ""),
    };
    let stored_message = coral_model::cut_to(status_message, MAX_STATUS_MESSAGE_BYTES);
    let message_cut = stored_message.len() < status_message.len();
    let (attributes_json, attributes_cut) = attributes_json(attrs, scrub);
    let http_route = string_of(attrs, &["http.route"]);
    let http_route = if http_route.is_empty() {
        string_of(attrs, &["url.path", "http.target"])
    } else {
        http_route
    };
    let names_cut = std::cell::Cell::new(false);
    let short = |text: String| {
        let kept = coral_model::cut_to(&text, MAX_NAME_BYTES);
        if kept.len() == text.len() {
            return text;
        }
        names_cut.set(true);
        kept.to_owned()
    };
    let span = TelemetrySpan {
        seq_id: 0,
        trace_id: hex::encode(facts.trace_id),
        span_id: hex::encode(span.span_id),
        parent_span_id: hex::encode(span.parent_span_id),
        service_name: short(service.to_owned()),
        span_name: short(span.name.to_owned()),
        span_kind: facts.kind.as_str().to_owned(),
        start_time_unix_nano: facts.start_ns as i64,
        duration_us: ((span.end_time_unix_nano - span.start_time_unix_nano) / 1_000) as i64,
        is_error: facts.is_error,
        status_code: status_code.to_owned(),
        status_message: stored_message.to_owned(),
        http_status_code: span
            .http_status_code
            .and_then(|c| i32::try_from(c).ok())
            .unwrap_or(0),
        http_method: short(string_of(attrs, &["http.request.method", "http.method"])),
        http_route: short(http_route),
        keep_reason: String::new(),
        attributes_json,
        resource_json: resource_json.to_owned(),
        rpc_system: short(string_of(attrs, &["rpc.system.name", "rpc.system"])),
        rpc_service: short(string_of(attrs, &["rpc.service"])),
        rpc_method: short(string_of(attrs, &["rpc.method"])),
        grpc_status_code: find(attrs, &["rpc.grpc.status_code", "rpc.response.status_code"])
            .and_then(ValueView::as_int)
            .and_then(|c| i32::try_from(c).ok()),
        db_system: short(string_of(attrs, &["db.system.name", "db.system"])),
        db_operation: short(string_of(attrs, &["db.operation.name", "db.operation"])),
        db_collection: short(string_of(
            attrs,
            &[
                "db.collection.name",
                "db.sql.table",
                "db.mongodb.collection",
            ],
        )),
    };
    (span, message_cut || attributes_cut || names_cut.get())
}

pub use coral_model::json::{KEPT_ATTRIBUTES, MAX_NAME_BYTES};

/// A kept span's status message is cut to this many bytes.
pub const MAX_STATUS_MESSAGE_BYTES: usize = 1024;

/// Encodes attributes (a span's or a resource's) as a JSON object whose
/// values keep their OTLP types, within [`KEPT_ATTRIBUTES`]; values of keys
/// matching `scrub` are replaced by [`REDACTED`]. The flag is true when
/// something was cut or left out.
pub fn attributes_json(attrs: &[KeyValueView<'_>], scrub: &RegexSet) -> (String, bool) {
    let redact = |key: &str| !scrub.is_empty() && scrub.is_match(key);
    coral_model::otlp_attributes_json_within(attrs, &redact, REDACTED, KEPT_ATTRIBUTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use coral_proto::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
    use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};
    use coral_proto::otlp_wire::TraceExportView;
    use prost::Message;

    /// `span` in an export of its own, encoded.
    fn export(span: &Span) -> Vec<u8> {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span.clone()],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
        .encode_to_vec()
    }

    /// Facts of `span` as the pipeline computes them: from its encoded form.
    fn facts(span: &Span) -> Result<SpanFacts, Invalid> {
        SpanFacts::of(&TraceExportView::parse(&export(span)).unwrap().spans[0])
    }

    /// The stored form of `span`, built as the pipeline builds it.
    fn stored(span: &Span, scrub: &RegexSet) -> TelemetrySpan {
        let bytes = export(span);
        let view = TraceExportView::parse(&bytes).unwrap();
        let detail = coral_proto::otlp_wire::span_detail(view.spans[0].raw).unwrap();
        let facts = SpanFacts::of(&view.spans[0]).unwrap();
        to_telemetry_span("checkout", "{}", &view.spans[0], &detail, &facts, scrub).0
    }

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn span(kind: i32, attrs: Vec<KeyValue>, status: Option<i32>) -> Span {
        Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            kind,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            attributes: attrs,
            status: status.map(|code| Status {
                code,
                message: "boom".into(),
            }),
            name: "GET /x".into(),
            ..Default::default()
        }
    }

    #[test]
    fn error_rules_follow_kind_and_status() {
        let server_500 = span(
            2,
            vec![kv("http.response.status_code", Value::IntValue(500))],
            None,
        );
        assert!(facts(&server_500).unwrap().is_error);
        let server_404 = span(
            2,
            vec![kv("http.status_code", Value::StringValue("404".into()))],
            None,
        );
        assert!(!facts(&server_404).unwrap().is_error);
        let client_404 = span(3, vec![kv("http.status_code", Value::IntValue(404))], None);
        assert!(facts(&client_404).unwrap().is_error);
        let internal_status_error = span(1, vec![], Some(StatusCode::Error as i32));
        assert!(facts(&internal_status_error).unwrap().is_error);
        let ok = span(
            2,
            vec![kv("http.response.status_code", Value::IntValue(200))],
            None,
        );
        let ok_facts = facts(&ok).unwrap();
        assert!(!ok_facts.is_error);
        assert_eq!(ok_facts.duration_ms, 250.0);
        assert_eq!(ok_facts.kind, SpanKind::Server);
    }

    #[test]
    fn invalid_ids_and_times_are_named() {
        let mut s = span(2, vec![], None);
        s.trace_id = vec![1; 4];
        assert_eq!(facts(&s).unwrap_err(), Invalid::TraceId);
        let mut s = span(2, vec![], None);
        s.span_id = vec![0; 8];
        assert_eq!(facts(&s).unwrap_err(), Invalid::SpanId);
        let mut s = span(2, vec![], None);
        s.parent_span_id = vec![1; 3];
        assert_eq!(facts(&s).unwrap_err(), Invalid::ParentSpanId);
        let mut s = span(2, vec![], None);
        s.end_time_unix_nano = s.start_time_unix_nano - 1;
        assert_eq!(facts(&s).unwrap_err(), Invalid::Times);
    }

    #[test]
    fn old_and_new_conventions_and_types_are_kept() {
        let s = span(
            2,
            vec![
                kv("http.method", Value::StringValue("POST".into())),
                kv("http.status_code", Value::IntValue(201)),
                kv("url.path", Value::StringValue("/orders/7".into())),
                kv("db.system", Value::StringValue("postgresql".into())),
                kv("rpc.grpc.status_code", Value::IntValue(5)),
                kv("user.email", Value::StringValue("a@b.c".into())),
                kv("ratio", Value::DoubleValue(0.5)),
                kv("flag", Value::BoolValue(true)),
            ],
            Some(StatusCode::Ok as i32),
        );
        let scrub = RegexSet::new(["email|ssn"]).unwrap();
        let t = stored(&s, &scrub);
        assert_eq!(t.http_method, "POST");
        assert_eq!(t.http_status_code, 201);
        assert_eq!(t.http_route, "/orders/7");
        assert_eq!(t.db_system, "postgresql");
        assert_eq!(t.grpc_status_code, Some(5));
        assert_eq!(t.status_code, "OK");
        assert_eq!(t.status_message, "boom");
        assert_eq!(t.duration_us, 250_000);
        assert_eq!(t.trace_id, "01".repeat(16));
        assert_eq!(t.parent_span_id, "");
        let attrs: serde_json::Value = serde_json::from_str(&t.attributes_json).unwrap();
        assert_eq!(attrs["http.status_code"], serde_json::json!(201));
        assert!(attrs["http.status_code"].is_i64());
        assert_eq!(attrs["user.email"], REDACTED);
        assert_eq!(attrs["ratio"], 0.5);
        assert_eq!(attrs["flag"], true);
    }

    #[test]
    fn long_attributes_and_messages_are_cut_and_flagged() {
        let mut long = span(
            2,
            vec![
                kv("db.statement", Value::StringValue("x".repeat(10_000))),
                kv("small", Value::IntValue(1)),
                kv(
                    "url.path",
                    Value::StringValue(format!("/{}", "p".repeat(5_000))),
                ),
            ],
            Some(StatusCode::Error as i32),
        );
        long.status.as_mut().unwrap().message = "m".repeat(5_000);
        let bytes = export(&long);
        let view = TraceExportView::parse(&bytes).unwrap();
        let detail = coral_proto::otlp_wire::span_detail(view.spans[0].raw).unwrap();
        let facts = SpanFacts::of(&view.spans[0]).unwrap();
        let none = RegexSet::empty();
        let (stored, cut) =
            to_telemetry_span("checkout", "{}", &view.spans[0], &detail, &facts, &none);
        assert!(cut);
        assert_eq!(stored.status_message.len(), MAX_STATUS_MESSAGE_BYTES);
        assert_eq!(stored.http_route.len(), MAX_NAME_BYTES);
        let attrs: serde_json::Value = serde_json::from_str(&stored.attributes_json).unwrap();
        assert_eq!(
            attrs["db.statement"].as_str().unwrap().len(),
            KEPT_ATTRIBUTES.value_bytes
        );
        assert_eq!(attrs["small"], 1);

        let plain = span(2, vec![kv("small", Value::IntValue(1))], None);
        let bytes = export(&plain);
        let view = TraceExportView::parse(&bytes).unwrap();
        let detail = coral_proto::otlp_wire::span_detail(view.spans[0].raw).unwrap();
        let facts = SpanFacts::of(&view.spans[0]).unwrap();
        let (_, cut) = to_telemetry_span("checkout", "{}", &view.spans[0], &detail, &facts, &none);
        assert!(!cut);
    }
}
