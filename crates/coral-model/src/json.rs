//! The JSON form of sample traces stored in DuckDB `samples` columns:
//! `[{"trace_id": "…", "duration_ms": 12.5, "is_error": false}, …]`.
//!
//! Agent and colony tables share this encoding, so a row can be read by SQL
//! (`json_extract`) as well as decoded back into protobuf samples.

use coral_proto::common::SampleTrace;

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
