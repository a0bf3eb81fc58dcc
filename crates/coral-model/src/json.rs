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
use coral_proto::otlp::common::v1::any_value::Value;

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
    use serde_json::Value as J;
    match v.and_then(|v| v.value.as_ref()) {
        None | Some(Value::StringValueStrindex(_)) => J::Null,
        Some(Value::StringValue(s)) => J::String(s.clone()),
        Some(Value::BoolValue(b)) => J::Bool(*b),
        Some(Value::IntValue(i)) => J::from(*i),
        Some(Value::DoubleValue(d)) => serde_json::Number::from_f64(*d).map_or(J::Null, J::Number),
        Some(Value::BytesValue(b)) => J::String(hex::encode(b)),
        Some(Value::ArrayValue(a)) => J::Array(
            a.values
                .iter()
                .map(|v| otlp_value_to_json(Some(v)))
                .collect(),
        ),
        Some(Value::KvlistValue(l)) => J::Object(
            l.values
                .iter()
                .map(|kv| (kv.key.clone(), otlp_value_to_json(kv.value.as_ref())))
                .collect(),
        ),
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
