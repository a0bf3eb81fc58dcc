//! OTLP/JSON bodies, including the fields proto3 JSON leaves out.
//!
//! The `opentelemetry-proto` serde types require `values` in `arrayValue` and
//! `kvlistValue` and `key` in a `KeyValue`, but proto3 JSON (protojson, the
//! Collector's pdata) omits empty repeated fields and empty strings: an empty
//! array attribute arrives as `{"arrayValue":{}}`. A body that does not decode
//! as sent is decoded once more with those fields filled in; only a body
//! that fails both ways is refused, with the first error.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Decodes an OTLP/JSON body.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, serde_json::Error> {
    // serde reads a struct from an array too (`[]` would be an empty export).
    if bytes.trim_ascii_start().first() != Some(&b'{') {
        return Err(serde::de::Error::custom(
            "an OTLP/JSON request is a JSON object, such as {\"resourceSpans\": [...]}",
        ));
    }
    serde_json::from_slice(bytes).or_else(|error| {
        let Ok(mut value) = serde_json::from_slice::<Value>(bytes) else {
            return Err(error);
        };
        fill(&mut value, Within::Other);
        serde_json::from_value(value).map_err(|_| error)
    })
}

/// What the value being filled is.
#[derive(Clone, Copy, PartialEq)]
enum Within {
    /// A `KeyValue`, or a list of them.
    KeyValues,
    /// A `KeyValueList` (the object under `kvlistValue`).
    KvList,
    /// Anything else.
    Other,
}

fn fill(value: &mut Value, within: Within) {
    match value {
        Value::Array(items) => items.iter_mut().for_each(|item| fill(item, within)),
        Value::Object(map) => {
            if within == Within::KeyValues {
                map.entry("key")
                    .or_insert_with(|| Value::String(String::new()));
            }
            for list in ["arrayValue", "kvlistValue"] {
                if let Some(Value::Object(inner)) = map.get_mut(list) {
                    inner
                        .entry("values")
                        .or_insert_with(|| Value::Array(Vec::new()));
                }
            }
            fill_children(map, within);
        }
        _ => {}
    }
}

fn fill_children(map: &mut Map<String, Value>, within: Within) {
    for (key, child) in map.iter_mut() {
        let child_within = match key.as_str() {
            "attributes" => Within::KeyValues,
            "kvlistValue" => Within::KvList,
            "values" if within == Within::KvList => Within::KeyValues,
            _ => Within::Other,
        };
        fill(child, child_within);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::otlp::collector::trace::v1::ExportTraceServiceRequest;
    use crate::otlp::common::v1::any_value::Value as V;

    #[test]
    fn a_body_that_is_not_an_object_is_refused() {
        for body in ["[]", " [[]]", "7", "\"x\""] {
            let error = decode::<ExportTraceServiceRequest>(body.as_bytes()).unwrap_err();
            assert!(
                error.to_string().contains("is a JSON object"),
                "{body}: {error}"
            );
        }
        assert!(decode::<ExportTraceServiceRequest>(b" {}").is_ok());
    }

    #[test]
    fn empty_lists_and_keys_left_out_by_proto3_json_decode() {
        let body = serde_json::json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "cart"}}]},
            "scopeSpans": [{"spans": [{
                "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                "name": "s", "kind": 2,
                "startTimeUnixNano": "1700000000000000000", "endTimeUnixNano": "1700000000100000000",
                "attributes": [
                    {"key": "tags", "value": {"arrayValue": {}}},
                    {"key": "labels", "value": {"kvlistValue": {}}},
                    {"key": "nested", "value": {"kvlistValue": {"values": [
                        {"value": {"arrayValue": {}}}
                    ]}}},
                    {"value": {"intValue": "1"}}
                ]
            }]}]
        }]});
        let bytes = body.to_string().into_bytes();
        assert!(serde_json::from_slice::<ExportTraceServiceRequest>(&bytes).is_err());
        let request: ExportTraceServiceRequest = decode(&bytes).unwrap();
        let attrs = &request.resource_spans[0].scope_spans[0].spans[0].attributes;
        let value = |i: usize| attrs[i].value.as_ref().unwrap().value.clone().unwrap();
        assert!(matches!(value(0), V::ArrayValue(a) if a.values.is_empty()));
        assert!(matches!(value(1), V::KvlistValue(l) if l.values.is_empty()));
        let V::KvlistValue(nested) = value(2) else {
            panic!("nested list")
        };
        assert_eq!(nested.values[0].key, "");
        assert_eq!(attrs[3].key, "");
    }

    #[test]
    fn a_body_that_fails_both_ways_keeps_the_first_error() {
        let error = decode::<ExportTraceServiceRequest>(br#"{"resourceSpans": 7}"#).unwrap_err();
        assert!(error.to_string().contains("invalid type"), "{error}");
    }
}
