//! Reading OTLP attributes with their real types.
//!
//! Beyla sends `http.response.status_code` and `server.port` as `intValue`
//! and everything else of interest as `stringValue`; other exporters (and
//! OTLP/JSON written by hand) sometimes send numbers as strings or doubles, so
//! the readers here accept those forms too. Also here: the order-independent
//! series hash used by the delta tracker, the bounded identity-attribute map
//! put on metric rows, and the typed JSON form of span attributes.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use coral_proto::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};

/// Most identity attributes kept on one row.
pub const MAX_ROW_ATTRIBUTES: usize = 16;
/// Longest identity attribute value kept on a row (longer values are cut).
pub const MAX_ATTRIBUTE_VALUE: usize = 256;

/// Identity attributes copied to rows when present (data point first, then
/// resource). They describe where the series came from and are not part of
/// any row key.
pub const IDENTITY_KEYS: &[&str] = &[
    "service.namespace",
    "service.version",
    "deployment.environment.name",
    "deployment.environment",
    "host.name",
    "telemetry.sdk.language",
    "k8s.cluster.name",
    "k8s.namespace.name",
    "k8s.node.name",
    "k8s.deployment.name",
    "k8s.statefulset.name",
    "k8s.daemonset.name",
    "k8s.pod.name",
    "container.name",
    "server.address",
    "server.port",
];

/// The value of `key`, if present.
pub fn find<'a>(attrs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    attrs
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// The first of `keys` present with a string value (non-string scalars are
/// rendered as text).
pub fn str_of(attrs: &[KeyValue], keys: &[&str]) -> Option<String> {
    keys.iter()
        .filter_map(|k| find(attrs, k))
        .find_map(scalar_text)
}

/// A scalar value as text: strings as they are, numbers and booleans printed.
pub fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::DoubleValue(d) if d.is_finite() => Some(if d.fract() == 0.0 {
            format!("{}", *d as i64)
        } else {
            d.to_string()
        }),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The first of `keys` present as an integer: `intValue`, or defensively a
/// whole `doubleValue` or a decimal `stringValue`.
pub fn int_of(attrs: &[KeyValue], keys: &[&str]) -> Option<i64> {
    keys.iter()
        .filter_map(|k| find(attrs, k))
        .find_map(|v| match v {
            Value::IntValue(i) => Some(*i),
            Value::DoubleValue(d) if d.is_finite() && d.fract() == 0.0 => Some(*d as i64),
            Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        })
}

/// Whether `key` is present with a non-empty value.
pub fn present(attrs: &[KeyValue], key: &str) -> bool {
    match find(attrs, key) {
        None => false,
        Some(Value::StringValue(s)) => !s.is_empty(),
        Some(_) => true,
    }
}

/// An order-independent hash of an attribute list: the wrapping sum of the
/// hashes of each key/value pair, so a reordered list hashes the same.
pub fn hash_attrs(attrs: &[KeyValue]) -> u64 {
    attrs.iter().fold(0u64, |acc, kv| {
        let mut h = DefaultHasher::new();
        kv.key.hash(&mut h);
        hash_value(kv.value.as_ref(), &mut h);
        acc.wrapping_add(h.finish())
    })
}

fn hash_value(v: Option<&AnyValue>, h: &mut DefaultHasher) {
    match v.and_then(|v| v.value.as_ref()) {
        None => 0u8.hash(h),
        Some(Value::StringValue(s)) => (1u8, s).hash(h),
        Some(Value::BoolValue(b)) => (2u8, b).hash(h),
        Some(Value::IntValue(i)) => (3u8, i).hash(h),
        Some(Value::DoubleValue(d)) => (4u8, d.to_bits()).hash(h),
        Some(Value::BytesValue(b)) => (5u8, b).hash(h),
        Some(Value::StringValueStrindex(i)) => (6u8, i).hash(h),
        Some(Value::ArrayValue(a)) => {
            7u8.hash(h);
            for v in &a.values {
                hash_value(Some(v), h);
            }
        }
        Some(Value::KvlistValue(l)) => (8u8, hash_attrs(&l.values)).hash(h),
    }
}

/// The identity attributes of a row: [`IDENTITY_KEYS`] found on the data
/// point or else the resource, without empty values, values cut to
/// [`MAX_ATTRIBUTE_VALUE`] bytes, at most [`MAX_ROW_ATTRIBUTES`] entries.
pub fn identity(point: &[KeyValue], resource: &[KeyValue]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for key in IDENTITY_KEYS {
        if out.len() >= MAX_ROW_ATTRIBUTES {
            break;
        }
        let value = find(point, key)
            .and_then(scalar_text)
            .filter(|s| !s.is_empty())
            .or_else(|| find(resource, key).and_then(scalar_text))
            .filter(|s| !s.is_empty());
        if let Some(v) = value {
            out.insert((*key).to_string(), truncate(v, MAX_ATTRIBUTE_VALUE));
        }
    }
    out
}

/// `s` cut to at most `max` bytes on a character boundary.
pub fn truncate(mut s: String, max: usize) -> String {
    let end = coral_model::cut_to(&s, max).len();
    s.truncate(end);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn ints_are_read_in_every_form() {
        let a = [
            kv("a", Value::IntValue(200)),
            kv("b", Value::StringValue("404".into())),
            kv("c", Value::DoubleValue(503.0)),
            kv("d", Value::DoubleValue(1.5)),
        ];
        assert_eq!(int_of(&a, &["a"]), Some(200));
        assert_eq!(int_of(&a, &["b"]), Some(404));
        assert_eq!(int_of(&a, &["c"]), Some(503));
        assert_eq!(int_of(&a, &["d"]), None);
        assert_eq!(int_of(&a, &["x", "a"]), Some(200));
        assert_eq!(str_of(&a, &["a"]).as_deref(), Some("200"));
    }

    #[test]
    fn hash_ignores_order_but_not_values() {
        let a = [
            kv("x", Value::IntValue(1)),
            kv("y", Value::StringValue("1".into())),
        ];
        let b = [a[1].clone(), a[0].clone()];
        let c = [
            kv("x", Value::StringValue("1".into())),
            kv("y", Value::IntValue(1)),
        ];
        assert_eq!(hash_attrs(&a), hash_attrs(&b));
        assert_ne!(hash_attrs(&a), hash_attrs(&c));
    }

    #[test]
    fn identity_prefers_the_point_and_drops_empty_values() {
        let point = [
            kv("service.namespace", Value::StringValue(String::new())),
            kv("server.port", Value::IntValue(8080)),
            kv("http.route", Value::StringValue("/x".into())),
        ];
        let resource = [
            kv("service.namespace", Value::StringValue("shop".into())),
            kv("host.name", Value::StringValue("node-1".into())),
        ];
        let id = identity(&point, &resource);
        assert_eq!(
            id.get("service.namespace").map(String::as_str),
            Some("shop")
        );
        assert_eq!(id.get("server.port").map(String::as_str), Some("8080"));
        assert_eq!(id.get("host.name").map(String::as_str), Some("node-1"));
        assert!(!id.contains_key("http.route"));
        assert_eq!(truncate("héllo".into(), 2), "h");
    }
}
