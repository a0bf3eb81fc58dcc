//! Generates realistic `ExportTraceServiceRequest`s: one service per request
//! (as an SDK batch exporter would send), 100 HTTP server spans grouped into
//! traces of 5–10 spans, lognormal latencies with a 2 % slow tail and ~2 %
//! HTTP 500 errors.
//!
//! Timestamps are not absolute here: every span carries a *sentinel*
//! start/end value and the generator returns, for each sentinel, how long
//! before "now" that timestamp should be. [`crate::payload`] finds the
//! sentinels in the encoded bytes and patches real times in at send time.

use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value};
use coral_proto::otlp::resource::v1::Resource;
use coral_proto::otlp::trace::v1::{ResourceSpans, ScopeSpans, Span, Status, span, status};

use crate::catalog::{SERVICES, SLUGS, Service, USER_AGENTS};
use crate::rng::Rng;

/// Upper 44 bits of every sentinel timestamp; the low 20 bits hold
/// `span_index << 1 | is_end`.
pub const SENTINEL_MAGIC: u64 = 0xC0DA_1B5E_EDF0_0000;
/// Mask selecting the magic part of a sentinel.
pub const SENTINEL_MASK: u64 = 0xFFFF_FFFF_FFF0_0000;

const MS: u64 = 1_000_000;

/// A generated request plus the "nanoseconds before now" of each timestamp.
pub struct Generated {
    /// The request with sentinel timestamps.
    pub request: ExportTraceServiceRequest,
    /// `ago_ns[2*i]` = start of span `i`, `ago_ns[2*i+1]` = its end.
    pub ago_ns: Vec<u64>,
}

/// Sentinel value for timestamp `slot` (= `2 * span_index + is_end`).
pub fn sentinel(slot: usize) -> u64 {
    assert!(slot < (1 << 20), "too many spans per request");
    SENTINEL_MAGIC | slot as u64
}

fn kv(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn kv_str(key: &str, value: impl Into<String>) -> KeyValue {
    kv(key, any_value::Value::StringValue(value.into()))
}

fn kv_int(key: &str, value: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(value))
}

fn alnum(rng: &mut Rng, n: usize) -> String {
    const CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..n).map(|_| *rng.pick(CHARS) as char).collect()
}

fn resource(rng: &mut Rng, svc: &Service) -> Resource {
    let pod = format!("{}-{}-{}", svc.name, alnum(rng, 10), alnum(rng, 5));
    let host = format!(
        "ip-10-0-{}-{}.eu-west-1.compute.internal",
        rng.range(0, 63),
        rng.range(1, 254)
    );
    Resource {
        attributes: vec![
            kv_str("service.name", svc.name),
            kv_str("service.namespace", "shop"),
            kv_str("service.version", svc.version),
            kv_str("deployment.environment.name", "production"),
            kv_str("host.name", host),
            kv_str("k8s.namespace.name", "shop"),
            kv_str("k8s.pod.name", pod),
            kv_str("telemetry.sdk.name", "opentelemetry"),
            kv_str("telemetry.sdk.language", svc.language),
            kv_str("telemetry.sdk.version", svc.sdk_version),
        ],
        ..Default::default()
    }
}

/// Lognormal latency: median ~22 ms, ~95 % within 5–80 ms, plus a 2 % tail
/// of 0.5–3 s requests.
fn duration_ns(rng: &mut Rng) -> u64 {
    if rng.chance(0.02) {
        return rng.range(500, 3_000) * MS;
    }
    let ms = (22f64.ln() + 0.6 * rng.normal()).exp().clamp(0.8, 450.0);
    (ms * MS as f64) as u64
}

fn url_path(rng: &mut Rng, route: &str) -> String {
    let mut out = String::with_capacity(route.len() + 8);
    for seg in route.split('/').skip(1) {
        out.push('/');
        match seg {
            "{id}" | "{itemId}" => out.push_str(&rng.range(10_000, 9_999_999).to_string()),
            "{sku}" => out.push_str(&format!("SKU-{:06}", rng.range(0, 999_999))),
            "{slug}" => out.push_str(rng.pick::<&str>(SLUGS)),
            other => out.push_str(other),
        }
    }
    out
}

fn http_span(rng: &mut Rng, svc: &Service, slot: usize) -> Span {
    let (method, route) = *rng.pick(svc.routes);
    let failed = rng.chance(0.02);
    let status_code: i64 = if failed {
        500
    } else if rng.chance(0.03) {
        404
    } else if method == "POST" {
        201
    } else {
        200
    };
    let client = format!("10.0.{}.{}", rng.range(0, 63), rng.range(1, 254));
    let mut attributes = vec![
        kv_str("http.request.method", method),
        kv_str("http.route", route),
        kv_str("url.path", url_path(rng, route)),
        kv_str("url.scheme", "http"),
        kv_int("http.response.status_code", status_code),
        kv_str(
            "server.address",
            format!("{}.shop.svc.cluster.local", svc.name),
        ),
        kv_int("server.port", 8080),
        kv_str("client.address", client.clone()),
        kv_str("network.peer.address", client),
        kv_int("network.peer.port", rng.range(32_768, 60_999) as i64),
        kv_str("user_agent.original", *rng.pick(USER_AGENTS)),
        kv_str(
            "network.protocol.version",
            if rng.chance(0.3) { "2" } else { "1.1" },
        ),
    ];
    let status = if failed {
        attributes.push(kv_str("error.type", "500"));
        Some(Status {
            message: String::new(),
            code: status::StatusCode::Error as i32,
        })
    } else {
        None
    };
    Span {
        name: format!("{method} {route}"),
        kind: span::SpanKind::Server as i32,
        // Sampled trace flag + SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, as recent
        // SDKs send; the caller adds IS_REMOTE for spans with a parent.
        flags: 0x100 | 0x01,
        start_time_unix_nano: sentinel(2 * slot),
        end_time_unix_nano: sentinel(2 * slot + 1),
        attributes,
        status,
        ..Default::default()
    }
}

/// Generates one request of `spans` spans for service `SERVICES[variant % n]`.
pub fn request(rng: &mut Rng, variant: usize, spans: usize) -> Generated {
    let svc = &SERVICES[variant % SERVICES.len()];
    let mut out = Vec::with_capacity(spans);
    let mut ago_ns = Vec::with_capacity(spans * 2);
    while out.len() < spans {
        let trace_len = (rng.range(5, 10) as usize).min(spans - out.len());
        let trace_id = rng.id_bytes(16);
        // The root ended up to 2 s ago (batch-processor delay).
        let root_dur = duration_ns(rng);
        let root_end_ago = rng.range(0, 2_000) * MS;
        // (span_id, start_ago, end_ago) of spans in this trace so far.
        let mut parents: Vec<(Vec<u8>, u64, u64)> = Vec::with_capacity(trace_len);
        for i in 0..trace_len {
            let slot = out.len();
            let span_id = rng.id_bytes(8);
            let (parent_id, start_ago, end_ago) = if i == 0 {
                (Vec::new(), root_end_ago + root_dur, root_end_ago)
            } else {
                let (pid, p_start, p_end) = rng.pick(&parents).clone();
                let p_dur = p_start - p_end;
                let start_ago = p_start - (rng.f64() * 0.3 * p_dur as f64) as u64;
                let dur = duration_ns(rng).min(start_ago - p_end);
                (pid, start_ago, start_ago - dur)
            };
            let mut span = http_span(rng, svc, slot);
            span.trace_id = trace_id.clone();
            span.span_id = span_id.clone();
            if !parent_id.is_empty() {
                span.parent_span_id = parent_id;
                span.flags |= 0x200;
            }
            ago_ns.push(start_ago);
            ago_ns.push(end_ago);
            parents.push((span_id, start_ago, end_ago));
            out.push(span);
        }
    }
    let request = ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(resource(rng, svc)),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: svc.scope_name.to_owned(),
                    version: svc.scope_version.to_owned(),
                    ..Default::default()
                }),
                spans: out,
                schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
            }],
            schema_url: "https://opentelemetry.io/schemas/1.26.0".to_owned(),
        }],
    };
    Generated { request, ago_ns }
}
