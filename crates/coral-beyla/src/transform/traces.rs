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

use super::attrs::{present, str_of};
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
                out.spans.push(span_row(
                    span,
                    &resource_json,
                    service,
                    opts.obfuscate_queries,
                ));
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
) -> BeylaTraceSpan {
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
    // One JSON object: the resource's attributes not overridden by the
    // span, then the span's (the last of duplicated keys wins).
    let mut json = Vec::with_capacity(64 * (resource.fragments.len() + attrs.len()));
    json.push(b'{');
    for (key, fragment) in &resource.fragments {
        if !attrs.iter().any(|a| a.key == *key) {
            json.extend_from_slice(fragment);
            json.push(b',');
        }
    }
    for (i, kv) in attrs.iter().enumerate() {
        if attrs[i + 1..].iter().any(|a| a.key == kv.key) {
            continue;
        }
        match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
            Some(Value::StringValue(s))
                if obfuscate && matches!(kv.key.as_str(), "db.query.text" | "db.statement") =>
            {
                write_entry(&mut json, &kv.key, None, Some(&scrub(s)));
            }
            _ => write_entry(&mut json, &kv.key, kv.value.as_ref(), None),
        }
        json.push(b',');
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
    BeylaTraceSpan {
        trace_id: hex::encode(&span.trace_id),
        span_id: hex::encode(&span.span_id),
        parent_span_id: hex::encode(&span.parent_span_id),
        service_name: service,
        span_name: name,
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
    }
}

/// A resource's attributes, each already written as a `"key":value` JSON
/// fragment (done once per `ResourceSpans`, not per span).
struct ResourceJson<'a> {
    fragments: Vec<(&'a str, Vec<u8>)>,
}

impl<'a> ResourceJson<'a> {
    fn new(resource: &'a [KeyValue]) -> ResourceJson<'a> {
        let mut fragments: Vec<(&'a str, Vec<u8>)> = Vec::with_capacity(resource.len());
        for kv in resource {
            let mut f = Vec::with_capacity(48);
            write_entry(&mut f, &kv.key, kv.value.as_ref(), None);
            match fragments.iter_mut().find(|(k, _)| *k == kv.key) {
                Some(existing) => existing.1 = f,
                None => fragments.push((&kv.key, f)),
            }
        }
        ResourceJson { fragments }
    }
}

/// Writes `"key":value`: the text `text` when given, else the typed value.
fn write_entry(out: &mut Vec<u8>, key: &str, value: Option<&AnyValue>, text: Option<&str>) {
    // Serializing a str or a serde_json::Value into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, key);
    out.push(b':');
    let _ = match (text, value.and_then(|v| v.value.as_ref())) {
        (Some(t), _) => serde_json::to_writer(&mut *out, t),
        (None, Some(Value::StringValue(s))) => serde_json::to_writer(&mut *out, s),
        (None, Some(Value::IntValue(i))) => serde_json::to_writer(&mut *out, i),
        (None, Some(Value::BoolValue(b))) => serde_json::to_writer(&mut *out, b),
        (None, _) => serde_json::to_writer(&mut *out, &coral_model::otlp_value_to_json(value)),
    };
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
}
