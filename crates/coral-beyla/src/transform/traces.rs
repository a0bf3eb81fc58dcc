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
//! What is stored is bounded as for the agent's own kept spans, by the same
//! [`coral_model::otlp_attributes_json_within`]: string values are cut to
//! 2 KiB ([`KEPT_ATTRIBUTES`]), attributes past about 4 KiB of JSON are left
//! out (the span's own go first), and names are cut to [`MAX_NAME_BYTES`].
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
use coral_proto::otlp::common::v1::{KeyValue, any_value::Value};
use coral_proto::otlp::trace::v1::{Span, span::SpanKind, status::StatusCode};
use coral_proto::otlp_wire::{KeyValueView, ValueView};

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
        // Borrowed once per resource, not per span.
        let resource_views: Vec<KeyValueView<'_>> =
            resource.iter().map(KeyValueView::from_kv).collect();
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
                let (row, cut) = span_row(span, &resource_views, service, opts.obfuscate_queries);
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
    resource: &[KeyValueView<'_>],
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
    let statement = |kv: &KeyValue| match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
        Some(Value::StringValue(s))
            if obfuscate && matches!(kv.key.as_str(), "db.query.text" | "db.statement") =>
        {
            Some(scrub(s))
        }
        _ => None,
    };
    let scrubbed: Vec<Option<String>> = attrs.iter().map(statement).collect();
    let views: Vec<KeyValueView<'_>> = attrs
        .iter()
        .zip(&scrubbed)
        .map(|(kv, text)| match text {
            Some(text) => KeyValueView {
                key: &kv.key,
                value: Some(ValueView::String(text)),
            },
            None => KeyValueView::from_kv(kv),
        })
        .chain(
            resource
                .iter()
                .filter(|r| !attrs.iter().any(|a| a.key == r.key))
                .cloned(),
        )
        .collect();
    let (attributes_json, cut) =
        coral_model::otlp_attributes_json_within(&views, &|_| false, "", KEPT_ATTRIBUTES);
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
        attributes_json,
        ..Default::default()
    };
    (row, cut || long_names)
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
    use coral_proto::otlp::common::v1::AnyValue;

    fn id(low: u64) -> Vec<u8> {
        let mut v = vec![0xab; 8];
        v.extend_from_slice(&low.to_be_bytes());
        v
    }

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    /// One export: `spans` under one resource with `resource` attributes.
    fn export(resource: Vec<KeyValue>, spans: Vec<Span>) -> ExportTraceServiceRequest {
        use coral_proto::otlp::resource::v1::Resource;
        use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans};
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
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
        let req = export(
            vec![
                kv("service.name", Value::StringValue("shop".into())),
                kv("host.name", Value::StringValue("node".into())),
                kv("ok", Value::BoolValue(true)),
            ],
            vec![span],
        );
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
        let req = export(
            vec![
                kv("service.name", Value::StringValue("shop".into())),
                kv("big", Value::StringValue(huge.clone())),
            ],
            vec![
                span("x".repeat(5_000), attributes),
                span("GET /".into(), vec![kv("status", Value::IntValue(200))]),
                span(
                    "GET /b".into(),
                    vec![kv("big", Value::StringValue("small".into()))],
                ),
            ],
        );
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
        let alone = export(
            Vec::new(),
            vec![span(
                "GET".into(),
                vec![kv("url.full", Value::StringValue(huge))],
            )],
        );
        let out = traces(&alone, &TracesOptions::default());
        let json: serde_json::Value = serde_json::from_str(&out.spans[0].attributes_json).unwrap();
        assert_eq!(
            json["url.full"].as_str().unwrap().len(),
            KEPT_ATTRIBUTES.value_bytes
        );
        assert_eq!(out.cut, 1);
    }
}
