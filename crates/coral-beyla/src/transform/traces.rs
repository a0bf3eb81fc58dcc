//! Beyla's OTLP spans → [`BeylaTraceSpan`] rows.
//!
//! Per span: ids as lowercase hex, the service from the resource's
//! `service.name` (else the span's, else `unknown_service`), the kind in
//! lowercase, start in Unix nanoseconds, duration in microseconds,
//! `status_code` = `http.response.status_code` (int) or, on RPC spans, the
//! canonical gRPC code (from `rpc.response.status_code` or
//! `rpc.grpc.status_code`), `is_error` when the span status is ERROR, and
//! `attributes_json`: the resource's attributes overlaid with the span's, as
//! one JSON object that keeps OTLP types (ints as JSON numbers; a key the
//! span shares with its resource takes the span's value). With
//! `obfuscate_queries`, `db.query.text` / `db.statement` (and the names of SQL
//! spans) go through [`obfuscate_sql`] or, for Redis, [`obfuscate_redis`].
//! What is stored is bounded as for the agent's own kept spans
//! ([`coral_model::json::KEPT_ATTRIBUTES`], [`MAX_NAME_BYTES`]): string values
//! are cut to 2 KiB, other values longer than that and attributes past about
//! 4 KiB of JSON are left out, and names are cut to 1 KiB.
//!
//! **Sampling** is decided from the trace id alone, with exactly the rule of
//! OpenTelemetry's `TraceIdRatioBased` sampler (Go SDK): with
//! `x = big-endian u64 of trace_id[8..16] >> 1`, a trace is kept iff
//! `x < (rate × 2^63) as u64`; a rate ≥ 1 keeps everything, ≤ 0 nothing. So
//! kept traces are whole across agents, and applying it after Beyla's own
//! `traceidratio` sampler at a rate ≥ Beyla's keeps exactly what Beyla kept
//! (the rule is idempotent and nested across rates).

use coral_proto::common::BeylaTraceSpan;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use coral_proto::otlp::trace::v1::{Span, span::SpanKind, status::StatusCode};

use coral_model::json::{KEPT_ATTRIBUTES, MAX_NAME_BYTES};

use super::attrs::{present, str_of, truncate};
use super::catalog::{http_status, rpc_status};
use super::sql::{obfuscate_redis, obfuscate_sql};

/// Options of [`traces()`].
#[derive(Debug, Clone, PartialEq)]
pub struct TracesOptions {
    /// Fraction of traces kept (trace-consistent); ≥ 1 keeps all.
    pub sample_rate: f64,
    /// Replace literals in query text with `?`.
    pub obfuscate_queries: bool,
}

impl Default for TracesOptions {
    fn default() -> Self {
        TracesOptions {
            sample_rate: 1.0,
            obfuscate_queries: true,
        }
    }
}

/// What one trace export gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TracesOutcome {
    /// The kept spans.
    pub spans: Vec<BeylaTraceSpan>,
    /// Spans dropped by sampling.
    pub sampled_out: u64,
    /// Spans dropped because their ids are malformed.
    pub invalid: u64,
    /// Kept spans whose attributes or names were cut to the stored limits.
    pub cut: u64,
    /// Why the first invalid span was dropped.
    pub invalid_reason: Option<String>,
}

/// OpenTelemetry's `TraceIdRatioBased` decision for a 16-byte trace id (see
/// the module docs). A NaN rate keeps everything.
pub fn keep_trace(trace_id: &[u8], rate: f64) -> bool {
    coral_model::sampling::keep_id(trace_id, coral_model::sampling::ratio_bound(rate))
}

/// Turns one trace export into span rows.
pub fn traces(req: &ExportTraceServiceRequest, opts: &TracesOptions) -> TracesOutcome {
    let mut out = TracesOutcome::default();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map_or(&[][..], |r| r.attributes.as_slice());
        let resource_service = str_of(resource, &["service.name"]).filter(|s| !s.is_empty());
        let resource_json = ResourceJson::new(resource);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                if let Err(reason) = check_ids(span) {
                    out.invalid += 1;
                    out.invalid_reason.get_or_insert(reason);
                    continue;
                }
                if !keep_trace(&span.trace_id, opts.sample_rate) {
                    out.sampled_out += 1;
                    continue;
                }
                let service = resource_service
                    .clone()
                    .or_else(|| {
                        str_of(&span.attributes, &["service.name"]).filter(|s| !s.is_empty())
                    })
                    .unwrap_or_else(|| "unknown_service".into());
                let (row, cut) = span_row(span, &resource_json, service, opts.obfuscate_queries);
                out.cut += u64::from(cut);
                out.spans.push(row);
            }
        }
    }
    out
}

fn check_ids(span: &Span) -> Result<(), String> {
    if span.trace_id.len() != 16 || span.trace_id.iter().all(|&b| b == 0) {
        return Err(format!("invalid trace id ({} bytes)", span.trace_id.len()));
    }
    if span.span_id.len() != 8 || span.span_id.iter().all(|&b| b == 0) {
        return Err(format!("invalid span id ({} bytes)", span.span_id.len()));
    }
    Ok(())
}

fn span_row(
    span: &Span,
    resource: &ResourceJson<'_>,
    service: String,
    obfuscate: bool,
) -> (BeylaTraceSpan, bool) {
    let attrs = &span.attributes;
    let redis = str_of(attrs, &["db.system.name", "db.system"]).is_some_and(|s| s == "redis");
    let is_db = present(attrs, "db.system.name") || present(attrs, "db.system");
    let scrub = |text: &str| {
        if redis {
            obfuscate_redis(text)
        } else {
            obfuscate_sql(text)
        }
    };
    // One JSON object: the span's attributes (the last of duplicated keys
    // wins), then the resource's that the span does not override. The
    // span's come first because they say the most about it: when the size
    // limit leaves something out, it is a resource attribute.
    let mut json = Vec::with_capacity(64 * (resource.fragments.len() + attrs.len()));
    let mut cut = false;
    json.push(b'{');
    let mut fragment = Vec::with_capacity(64);
    for (i, kv) in attrs.iter().enumerate() {
        if attrs[i + 1..].iter().any(|a| a.key == kv.key) {
            continue;
        }
        fragment.clear();
        cut |= match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s))
                if obfuscate && matches!(kv.key.as_str(), "db.query.text" | "db.statement") =>
            {
                write_entry(&mut fragment, &kv.key, None, Some(&scrub(s)))
            }
            _ => write_entry(&mut fragment, &kv.key, kv.value.as_ref(), None),
        };
        cut |= !push_within(&mut json, &fragment);
    }
    for (key, fragment, was_cut) in &resource.fragments {
        if !attrs.iter().any(|a| a.key == *key) {
            let kept = push_within(&mut json, fragment);
            cut |= *was_cut || !kept;
        }
    }
    if json.len() > 1 {
        json.pop();
    }
    json.push(b'}');
    let status_code = match http_status(attrs) {
        0 if is_rpc(attrs) => rpc_status(attrs),
        code => code,
    };
    let name = if obfuscate && is_db && !redis {
        obfuscate_sql(&span.name)
    } else {
        span.name.clone()
    };
    let long_names = name.len() > MAX_NAME_BYTES || service.len() > MAX_NAME_BYTES;
    let row = BeylaTraceSpan {
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: hex::encode(&span.parent_span_id),
        service_name: truncate(service, MAX_NAME_BYTES),
        span_name: truncate(name, MAX_NAME_BYTES),
        span_kind: kind_name(span.kind).into(),
        start_time_unix_nano: i64::try_from(span.start_time_unix_nano).unwrap_or(i64::MAX),
        duration_us: i64::try_from(
            span.end_time_unix_nano
                .saturating_sub(span.start_time_unix_nano)
                / 1_000,
        )
        .unwrap_or(i64::MAX),
        status_code,
        is_error: span
            .status
            .as_ref()
            .is_some_and(|s| s.code == StatusCode::Error as i32),
        attributes_json: String::from_utf8(json)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
        ..Default::default()
    };
    (row, cut || long_names)
}

/// Appends `"key":value,` to the object being built in `json` when it stays
/// within [`KEPT_ATTRIBUTES`]; false when it was left out for want of room.
/// An empty fragment (a value [`write_entry`] left out) adds nothing.
fn push_within(json: &mut Vec<u8>, fragment: &[u8]) -> bool {
    if fragment.is_empty() {
        return true;
    }
    if json.len() + fragment.len() + 2 > KEPT_ATTRIBUTES.total_bytes {
        return false;
    }
    json.extend_from_slice(fragment);
    json.push(b',');
    true
}

/// A resource's attributes, each already written as a `"key":value` JSON
/// fragment (done once per `ResourceSpans`, not per span).
struct ResourceJson<'a> {
    /// Key, fragment, and whether its value was cut or left out.
    fragments: Vec<(&'a str, Vec<u8>, bool)>,
}

impl<'a> ResourceJson<'a> {
    fn new(resource: &'a [KeyValue]) -> ResourceJson<'a> {
        let mut fragments: Vec<(&'a str, Vec<u8>, bool)> = Vec::with_capacity(resource.len());
        for kv in resource {
            let mut f = Vec::with_capacity(48);
            let cut = write_entry(&mut f, &kv.key, kv.value.as_ref(), None);
            match fragments.iter_mut().find(|(k, ..)| *k == kv.key) {
                Some(existing) => (existing.1, existing.2) = (f, cut),
                None => fragments.push((&kv.key, f, cut)),
            }
        }
        ResourceJson { fragments }
    }
}

/// Writes `"key":value`: the text `text` when given, else the typed value,
/// strings cut to [`KEPT_ATTRIBUTES`]' value limit. Any other value whose JSON
/// is longer than that limit is left out: nothing is written. True when the
/// value was cut or left out.
fn write_entry(out: &mut Vec<u8>, key: &str, value: Option<&AnyValue>, text: Option<&str>) -> bool {
    let limit = KEPT_ATTRIBUTES.value_bytes;
    let start = out.len();
    // Serializing a str or a serde_json::Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let (text, other) = match (text, value.and_then(|v| v.value.as_ref())) {
        (Some(t), _) => (Some(t), None),
        (None, Some(Value::StringValue(s))) => (Some(s.as_str()), None),
        (None, v) => (None, v),
    };
    if let Some(t) = text {
        let kept = coral_model::cut_to(t, limit);
        let _ = serde_json::to_writer(&mut *out, kept);
        return kept.len() < t.len();
    }
    let value_start = out.len();
    let _ = match other {
        Some(Value::IntValue(i)) => serde_json::to_writer(&mut *out, i),
        Some(Value::BoolValue(b)) => serde_json::to_writer(&mut *out, b),
        _ => serde_json::to_writer(&mut *out, &coral_model::otlp_value_to_json(value)),
    };
    if out.len() - value_start > limit {
        out.truncate(start);
        return true;
    }
    false
}

fn is_rpc(attrs: &[KeyValue]) -> bool {
    [
        "rpc.system.name",
        "rpc.system",
        "rpc.grpc.status_code",
        "rpc.response.status_code",
    ]
    .iter()
    .any(|k| present(attrs, k))
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(low: u64) -> Vec<u8> {
        let mut v = vec![0xab; 8];
        v.extend_from_slice(&low.to_be_bytes());
        v
    }

    #[test]
    fn ratio_rule_matches_the_go_sdk() {
        // x = low >> 1; bound(0.5) = 2^62.
        assert!(keep_trace(&id((1u64 << 63) - 2), 0.5));
        assert!(!keep_trace(&id(1u64 << 63), 0.5));
        assert!(keep_trace(&id(u64::MAX), 1.0));
        assert!(!keep_trace(&id(0), 0.0));
        assert!(keep_trace(&id(0), 1e-12));
    }

    #[test]
    fn sampling_is_idempotent_and_nested() {
        let ids: Vec<Vec<u8>> = (0..2000u64)
            .map(|i| id(i.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
            .collect();
        let kept = |r: f64, set: &[Vec<u8>]| -> Vec<Vec<u8>> {
            set.iter().filter(|t| keep_trace(t, r)).cloned().collect()
        };
        let a = kept(0.25, &ids);
        assert_eq!(kept(0.25, &a), a);
        assert_eq!(kept(0.5, &a), a);
        let b = kept(0.1, &ids);
        assert!(b.iter().all(|t| a.contains(t)));
        assert!((a.len() as f64 / 2000.0 - 0.25).abs() < 0.05, "{}", a.len());
    }

    #[test]
    fn one_typed_object_with_the_span_winning() {
        use coral_proto::otlp::resource::v1::Resource;
        use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans};
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let span = Span {
            trace_id: id(7),
            span_id: vec![1; 8],
            attributes: vec![
                kv("host.name", Value::StringValue("span-host".into())),
                kv("a", Value::IntValue(1)),
                kv("a", Value::DoubleValue(2.5)),
                kv("db.statement", Value::StringValue("SELECT 1".into())),
                kv("db.system", Value::StringValue("mysql".into())),
            ],
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("shop".into())),
                        kv("host.name", Value::StringValue("node".into())),
                        kv("ok", Value::BoolValue(true)),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![span],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = traces(&req, &TracesOptions::default());
        let json: serde_json::Value = serde_json::from_str(&out.spans[0].attributes_json).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"service.name": "shop", "host.name": "span-host", "ok": true,
                               "a": 2.5, "db.statement": "SELECT ?", "db.system": "mysql"})
        );
        assert_eq!(out.spans[0].span_kind, "unspecified");
        assert_eq!(out.spans[0].parent_span_id, "");
    }

    #[test]
    fn stored_attributes_and_names_are_bounded() {
        use coral_proto::otlp::common::v1::ArrayValue;
        use coral_proto::otlp::resource::v1::Resource;
        use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans};
        let kv = |k: &str, v: Value| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        };
        let huge = "é".repeat(300_000);
        let list = ArrayValue {
            values: (0..1_000)
                .map(|i| AnyValue {
                    value: Some(Value::IntValue(i)),
                })
                .collect(),
        };
        let mut attributes = vec![
            kv("url.full", Value::StringValue(huge.clone())),
            kv("list", Value::ArrayValue(list)),
            kv("status", Value::IntValue(200)),
        ];
        attributes
            .extend((0..200).map(|i| kv(&format!("k{i}"), Value::StringValue("v".repeat(100)))));
        let span = |name: String, attributes| Span {
            trace_id: id(9),
            span_id: vec![2; 8],
            name,
            attributes,
            ..Default::default()
        };
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        kv("service.name", Value::StringValue("shop".into())),
                        kv("big", Value::StringValue(huge.clone())),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        span("x".repeat(5_000), attributes),
                        span("GET /".into(), vec![kv("status", Value::IntValue(200))]),
                        span(
                            "GET /b".into(),
                            vec![kv("big", Value::StringValue("small".into()))],
                        ),
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = traces(&req, &TracesOptions::default());
        assert_eq!(
            (out.spans.len(), out.cut),
            (3, 2),
            "the first is cut, the second gets the cut resource value, the third overrides it"
        );
        let wide = &out.spans[0];
        assert!(
            wide.attributes_json.len() <= KEPT_ATTRIBUTES.total_bytes,
            "{}",
            wide.attributes_json.len()
        );
        let json: serde_json::Value = serde_json::from_str(&wide.attributes_json).unwrap();
        assert_eq!(
            json["url.full"].as_str().unwrap().len(),
            KEPT_ATTRIBUTES.value_bytes
        );
        assert!(
            json.get("list").is_none(),
            "a list over the value limit is left out"
        );
        assert_eq!(json["status"], 200);
        assert!(json.get("k0").is_some() && json.get("k199").is_none());
        assert!(json.get("big").is_none(), "the span's attributes go first");
        assert_eq!(wide.span_name.len(), MAX_NAME_BYTES);
        let small: serde_json::Value = serde_json::from_str(&out.spans[1].attributes_json).unwrap();
        assert_eq!(small["status"], 200);
        assert_eq!(
            small["big"].as_str().unwrap().len(),
            KEPT_ATTRIBUTES.value_bytes
        );

        // Without the resource, the span's own long value is cut, not left out.
        let alone = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![span(
                        "GET".into(),
                        vec![kv("url.full", Value::StringValue(huge))],
                    )],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let out = traces(&alone, &TracesOptions::default());
        let json: serde_json::Value = serde_json::from_str(&out.spans[0].attributes_json).unwrap();
        assert_eq!(
            json["url.full"].as_str().unwrap().len(),
            KEPT_ATTRIBUTES.value_bytes
        );
        assert_eq!(out.cut, 1);
    }
}
