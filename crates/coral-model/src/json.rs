//! JSON forms shared by the agent and the colony:
//!
//! - sample traces in DuckDB `samples` columns:
//!   `[{"trace_id": "…", "duration_ms": 12.5, "is_error": false}, …]`;
//! - string maps (Beyla row attributes) as one object with sorted keys;
//! - OTLP attribute values with their types kept (ints stay numbers).
//!
//! Tables share these encodings, so a row can be read by SQL (`json_extract`)
//! as well as decoded back.

use std::collections::{BTreeMap, HashMap};

use coral_proto::common::SampleTrace;
use coral_proto::otlp::common::v1::AnyValue;
use coral_proto::otlp_wire::{KeyValueView, ValueView};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// A string map as a JSON object with sorted keys (stable column text).
pub fn string_map_to_json(map: &HashMap<String, String>) -> String {
    let sorted: BTreeMap<_, _> = map.iter().collect();
    serde_json::to_string(&sorted).unwrap_or_else(|_| "{}".into())
}

/// Decodes [`string_map_to_json`]'s output; anything else gives an empty map.
pub fn string_map_from_json(json: &str) -> HashMap<String, String> {
    serde_json::from_str(json).unwrap_or_default()
}

/// An OTLP attribute value as JSON with its type kept: ints and doubles as
/// numbers, bools as booleans, bytes as hex, arrays and key-value lists
/// nested. A value that is absent, not finite, or a dictionary index (only
/// used by profiles) is `null`.
pub fn otlp_value_to_json(v: Option<&AnyValue>) -> serde_json::Value {
    let view = v.and_then(ValueView::from_any);
    serde_json::to_value(Typed(view.as_ref())).unwrap_or(serde_json::Value::Null)
}

/// OTLP attributes (read in place from the wire, or borrowed from decoded
/// `KeyValue`s with [`KeyValueView::from_kv`]) as a JSON object, written
/// straight to text (no intermediate `serde_json::Value`): the typed values
/// of [`otlp_value_to_json`], keys in their original order, the last of
/// duplicated keys winning. `redact(key)` replaces a value with `redacted`.
pub fn otlp_attributes_json(
    attrs: &[KeyValueView<'_>],
    redact: &dyn Fn(&str) -> bool,
    redacted: &str,
) -> String {
    serde_json::to_string(&Attributes {
        attrs,
        redact,
        redacted,
    })
    .unwrap_or_else(|_| "{}".into())
}

/// Lists up to this long are de-duplicated by comparing keys pairwise (no
/// allocation); longer ones through a map of each key's last position, so
/// that a span with a million attributes costs a million lookups, not a
/// trillion comparisons.
const PAIRWISE_MAX: usize = 32;

/// Attributes that a later attribute with the same key does not override,
/// in their order.
fn last_of_each_key<'v, 'a>(
    attrs: &'v [KeyValueView<'a>],
) -> impl Iterator<Item = &'v KeyValueView<'a>> {
    // Collecting keeps the last position of a repeated key.
    let last: Option<HashMap<&str, usize>> = (attrs.len() > PAIRWISE_MAX).then(|| {
        attrs
            .iter()
            .enumerate()
            .map(|(i, kv)| (kv.key, i))
            .collect()
    });
    attrs
        .iter()
        .enumerate()
        .filter(move |(i, kv)| match &last {
            Some(last) => last[kv.key] == *i,
            None => !attrs[i + 1..].iter().any(|later| later.key == kv.key),
        })
        .map(|(_, kv)| kv)
}

struct Attributes<'a> {
    attrs: &'a [KeyValueView<'a>],
    redact: &'a dyn Fn(&str) -> bool,
    redacted: &'a str,
}

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        for kv in last_of_each_key(self.attrs) {
            if (self.redact)(kv.key) {
                map.serialize_entry(kv.key, self.redacted)?;
            } else {
                map.serialize_entry(kv.key, &Typed(kv.value.as_ref()))?;
            }
        }
        map.end()
    }
}

/// One OTLP value with its type kept (the one mapping behind both
/// [`otlp_value_to_json`] and [`otlp_attributes_json`]).
struct Typed<'v, 'a>(Option<&'v ValueView<'a>>);

impl Serialize for Typed<'_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            None | Some(ValueView::Strindex(_)) => s.serialize_unit(),
            Some(ValueView::String(v)) => s.serialize_str(v),
            Some(ValueView::Bool(b)) => s.serialize_bool(*b),
            Some(ValueView::Int(i)) => s.serialize_i64(*i),
            Some(ValueView::Double(d)) if d.is_finite() => s.serialize_f64(*d),
            Some(ValueView::Double(_)) => s.serialize_unit(),
            Some(ValueView::Bytes(b)) => s.serialize_str(&hex::encode(b)),
            Some(ValueView::Array(values)) => {
                let mut seq = s.serialize_seq(Some(values.len()))?;
                for v in values {
                    seq.serialize_element(&Typed(v.as_ref()))?;
                }
                seq.end()
            }
            Some(ValueView::KvList(values)) => {
                let mut map = s.serialize_map(None)?;
                for kv in last_of_each_key(values) {
                    map.serialize_entry(kv.key, &Typed(kv.value.as_ref()))?;
                }
                map.end()
            }
        }
    }
}

/// Encodes samples as a JSON array.
pub fn samples_to_json(samples: &[SampleTrace]) -> String {
    let list: Vec<_> = samples
        .iter()
        .map(|s| {
            serde_json::json!({
                "trace_id": s.trace_id,
                "duration_ms": s.duration_ms,
                "is_error": s.is_error,
            })
        })
        .collect();
    serde_json::Value::Array(list).to_string()
}

/// Decodes [`samples_to_json`]'s output; anything else gives no samples.
pub fn samples_from_json(json: &str) -> Vec<SampleTrace> {
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str(json) else {
        return Vec::new();
    };
    items
        .iter()
        .map(|item| SampleTrace {
            trace_id: item["trace_id"].as_str().unwrap_or_default().to_owned(),
            duration_ms: item["duration_ms"].as_f64().unwrap_or_default(),
            is_error: item["is_error"].as_bool().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_proto::otlp::common::v1::any_value::Value;
    use coral_proto::otlp::common::v1::{ArrayValue, KeyValue, KeyValueList};

    fn kv(key: &str, value: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(value) }),
            ..Default::default()
        }
    }

    #[test]
    fn streamed_attributes_match_the_value_form() {
        let attrs = vec![
            kv("s", Value::StringValue("a \"quoted\" \u{1F600}\n".into())),
            kv("i", Value::IntValue(-7)),
            kv("d", Value::DoubleValue(0.25)),
            kv("nan", Value::DoubleValue(f64::NAN)),
            kv("b", Value::BoolValue(true)),
            kv("bytes", Value::BytesValue(vec![0xde, 0xad])),
            kv(
                "arr",
                Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::IntValue(1)),
                    }],
                }),
            ),
            kv(
                "map",
                Value::KvlistValue(KeyValueList {
                    values: vec![kv("x", Value::IntValue(1)), kv("x", Value::IntValue(2))],
                }),
            ),
            KeyValue {
                key: "unset".into(),
                ..Default::default()
            },
            kv("user.email", Value::StringValue("a@b.c".into())),
            kv("i", Value::IntValue(8)),
        ];
        let views: Vec<_> = attrs.iter().map(KeyValueView::from_kv).collect();
        let text = otlp_attributes_json(&views, &|k| k.contains("email"), "[REDACTED]");
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut expected = serde_json::Map::new();
        for kv in &attrs {
            let value = if kv.key.contains("email") {
                serde_json::Value::String("[REDACTED]".into())
            } else {
                otlp_value_to_json(kv.value.as_ref())
            };
            expected.insert(kv.key.clone(), value);
        }
        assert_eq!(parsed, serde_json::Value::Object(expected));
        assert_eq!(parsed["i"], 8, "the last duplicate wins");
        assert_eq!(parsed["map"]["x"], 2);
        assert!(text.starts_with(r#"{"s":"#), "original key order: {text}");
    }

    #[test]
    fn long_lists_keep_the_last_of_each_key_in_order() {
        // 100 attributes over 40 keys: past the pairwise limit, so the set path.
        let attrs: Vec<KeyValue> = (0..100)
            .map(|i| kv(&format!("k{}", i % 40), Value::IntValue(i)))
            .collect();
        assert!(attrs.len() > PAIRWISE_MAX);
        let views: Vec<_> = attrs.iter().map(KeyValueView::from_kv).collect();
        let text = otlp_attributes_json(&views, &|_| false, "");
        // Keys 20..39 last appear at 60..79, keys 0..19 at 80..99.
        let expected: Vec<String> = (60..100).map(|i| format!("\"k{}\":{i}", i % 40)).collect();
        assert_eq!(text, format!("{{{}}}", expected.join(",")));
    }

    #[test]
    fn round_trips() {
        let samples = vec![
            SampleTrace {
                trace_id: "ab".repeat(16),
                duration_ms: 12.5,
                is_error: true,
            },
            SampleTrace {
                trace_id: "cd".repeat(16),
                duration_ms: 3.0,
                is_error: false,
            },
        ];
        assert_eq!(samples_from_json(&samples_to_json(&samples)), samples);
        assert!(samples_from_json("not json").is_empty());
        assert_eq!(samples_to_json(&[]), "[]");
    }
}
