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
    serde_json::to_value(TypedValue::new(view.as_ref())).unwrap_or(serde_json::Value::Null)
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
    otlp_attributes_json_within(attrs, redact, redacted, AttributeLimits::NONE).0
}

/// How much of an attribute list [`otlp_attributes_json_within`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttributeLimits {
    /// String values (and bytes, as hex) longer than this are cut at a
    /// character boundary, in nested lists too.
    pub value_bytes: usize,
    /// Attributes that would take the object past about this many bytes are
    /// left out (whole: an attribute is kept entire or not at all).
    pub total_bytes: usize,
}

impl AttributeLimits {
    /// Everything is kept.
    pub const NONE: AttributeLimits = AttributeLimits {
        value_bytes: usize::MAX,
        total_bytes: usize::MAX,
    };
}

/// What a kept span (from OTLP or from Beyla), and a resource, store of
/// their attributes: string values are cut to 2 KiB, and attributes past
/// 4 KiB of JSON are left out. DuckDB reads and checkpoints a column 2,048
/// rows at a time, so the widest rows bound the agent store's memory: within
/// these limits a column of kept spans stays within the store's 32 MB budget,
/// where rows of tens of KiB each made checkpoints fail and the database
/// unusable until a restart, and rows of 8 KiB made reads of freshly written
/// rows fail.
pub const KEPT_ATTRIBUTES: AttributeLimits = AttributeLimits {
    value_bytes: 2 * 1024,
    total_bytes: 4 * 1024,
};

/// A kept span's names (service, span, route, method, RPC and database
/// fields) are stored cut to this many bytes; aggregation uses them whole.
pub const MAX_NAME_BYTES: usize = 1024;

/// [`otlp_attributes_json`] within `limits`; the flag is true when a value
/// was cut or an attribute left out.
pub fn otlp_attributes_json_within(
    attrs: &[KeyValueView<'_>],
    redact: &dyn Fn(&str) -> bool,
    redacted: &str,
    limits: AttributeLimits,
) -> (String, bool) {
    let object = Attributes {
        attrs,
        redact,
        redacted,
        limits,
        cut: std::cell::Cell::new(false),
    };
    let text = serde_json::to_string(&object).unwrap_or_else(|_| "{}".into());
    (text, object.cut.get())
}

/// The JSON bytes `value` takes within `limit` per string, roughly.
fn json_len(value: Option<&ValueView<'_>>, limit: usize) -> usize {
    match value {
        Some(ValueView::String(v)) => v.len().min(limit) + 2,
        Some(ValueView::Bytes(b)) => (2 * b.len()).min(limit) + 2,
        Some(ValueView::Array(values)) => {
            values
                .iter()
                .map(|v| json_len(v.as_ref(), limit) + 1)
                .sum::<usize>()
                + 2
        }
        Some(ValueView::KvList(values)) => {
            values
                .iter()
                .map(|kv| kv.key.len() + 4 + json_len(kv.value.as_ref(), limit))
                .sum::<usize>()
                + 2
        }
        _ => 24,
    }
}

/// `text` cut to at most `limit` bytes, at a character boundary.
pub fn cut_to(text: &str, limit: usize) -> &str {
    if text.len() <= limit {
        return text;
    }
    let mut end = limit;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    limits: AttributeLimits,
    /// Set when something was cut or left out.
    cut: std::cell::Cell<bool>,
}

impl Serialize for Attributes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let AttributeLimits {
            value_bytes,
            total_bytes,
        } = self.limits;
        let mut map = s.serialize_map(None)?;
        let mut used = 2;
        for kv in last_of_each_key(self.attrs) {
            let redact = (self.redact)(kv.key);
            let len = kv.key.len()
                + 4
                + if redact {
                    self.redacted.len() + 2
                } else {
                    json_len(kv.value.as_ref(), value_bytes)
                };
            if used + len > total_bytes {
                self.cut.set(true);
                continue;
            }
            used += len;
            if redact {
                map.serialize_entry(kv.key, self.redacted)?;
            } else {
                let value = TypedValue::new(kv.value.as_ref()).within(value_bytes, &self.cut);
                map.serialize_entry(kv.key, &value)?;
            }
        }
        map.end()
    }
}

/// One OTLP value with its type kept (the one mapping behind both
/// [`otlp_value_to_json`] and [`otlp_attributes_json`]), strings cut to
/// `limit` bytes (recording the cut in `cut`).
struct TypedValue<'v, 'a, 'c> {
    value: Option<&'v ValueView<'a>>,
    limit: usize,
    cut: Option<&'c std::cell::Cell<bool>>,
}

impl<'v, 'a> TypedValue<'v, 'a, 'static> {
    /// `value` whole.
    fn new(value: Option<&'v ValueView<'a>>) -> Self {
        TypedValue {
            value,
            limit: usize::MAX,
            cut: None,
        }
    }
}

impl<'v, 'a> TypedValue<'v, 'a, '_> {
    fn within<'c>(self, limit: usize, cut: &'c std::cell::Cell<bool>) -> TypedValue<'v, 'a, 'c> {
        TypedValue {
            value: self.value,
            limit,
            cut: Some(cut),
        }
    }

    fn nested<'w, 'b>(&self, value: Option<&'w ValueView<'b>>) -> TypedValue<'w, 'b, '_> {
        TypedValue {
            value,
            limit: self.limit,
            cut: self.cut,
        }
    }

    fn cut_str<'t>(&self, text: &'t str) -> &'t str {
        let kept = cut_to(text, self.limit);
        if let Some(cut) = self.cut.filter(|_| kept.len() < text.len()) {
            cut.set(true);
        }
        kept
    }
}

impl Serialize for TypedValue<'_, '_, '_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.value {
            None | Some(ValueView::Strindex(_)) => s.serialize_unit(),
            Some(ValueView::String(v)) => s.serialize_str(self.cut_str(v)),
            Some(ValueView::Bool(b)) => s.serialize_bool(*b),
            Some(ValueView::Int(i)) => s.serialize_i64(*i),
            Some(ValueView::Double(d)) if d.is_finite() => s.serialize_f64(*d),
            Some(ValueView::Double(_)) => s.serialize_unit(),
            Some(ValueView::Bytes(b)) => s.serialize_str(self.cut_str(&hex::encode(b))),
            Some(ValueView::Array(values)) => {
                let mut seq = s.serialize_seq(Some(values.len()))?;
                for v in values {
                    seq.serialize_element(&self.nested(v.as_ref()))?;
                }
                seq.end()
            }
            Some(ValueView::KvList(values)) => {
                let mut map = s.serialize_map(None)?;
                for kv in last_of_each_key(values) {
                    map.serialize_entry(kv.key, &self.nested(kv.value.as_ref()))?;
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
    fn limits_cut_long_values_and_leave_out_what_does_not_fit() {
        let limits = AttributeLimits {
            value_bytes: 10,
            total_bytes: 60,
        };
        let within = |attrs: &[KeyValue]| {
            let views: Vec<_> = attrs.iter().map(KeyValueView::from_kv).collect();
            let (text, cut) = otlp_attributes_json_within(&views, &|_| false, "", limits);
            (
                serde_json::from_str::<serde_json::Value>(&text).unwrap(),
                cut,
            )
        };
        // Nothing over the limits: untouched, and not flagged.
        let (small, cut) = within(&[kv("a", Value::StringValue("short".into()))]);
        assert_eq!((small["a"].as_str(), cut), (Some("short"), false));
        // A long value is cut at a character boundary (é is 2 bytes), in
        // nested lists too.
        let nested = Value::ArrayValue(ArrayValue {
            values: vec![AnyValue {
                value: Some(Value::StringValue("y".repeat(40))),
            }],
        });
        let (json, cut) = within(&[
            kv(
                "s",
                Value::StringValue(format!("abcdefghi{}", "é".repeat(5))),
            ),
            kv("arr", nested),
        ]);
        assert!(cut);
        assert_eq!(json["s"], "abcdefghi");
        assert_eq!(json["arr"][0], "y".repeat(10));
        // Attributes past the total are left out whole; a later one that
        // still fits is kept.
        let (json, cut) = within(&[
            kv("first", Value::StringValue("0123456789".into())),
            kv("second", Value::StringValue("0123456789".into())),
            kv("third", Value::StringValue("0123456789".into())),
            kv("e", Value::StringValue("z".into())),
        ]);
        assert!(cut);
        assert_eq!(json.as_object().unwrap().len(), 3, "{json}");
        assert!(json.get("third").is_none(), "{json}");
        assert_eq!(json["e"], "z");
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
