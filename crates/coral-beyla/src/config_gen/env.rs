//! The environment Beyla runs with: what Coral sets, and which inherited
//! variables would override the generated file.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Resource attribute carrying the agent id on everything Beyla reports.
pub const AGENT_ID_ATTRIBUTE: &str = "coral.agent.id";

/// The variables Coral sets, sorted by name: delta temporality (Coral
/// merges deltas; Beyla's default is cumulative) and
/// `OTEL_RESOURCE_ATTRIBUTES` from `attributes` plus `coral.agent.id`.
pub(super) fn vars(attributes: &BTreeMap<String, String>, agent_id: &str) -> Vec<(String, String)> {
    let mut all: BTreeMap<&str, &str> = attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    all.insert(AGENT_ID_ATTRIBUTE, agent_id);
    let resource = all
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        (
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE".to_owned(),
            "delta".to_owned(),
        ),
        ("OTEL_RESOURCE_ATTRIBUTES".to_owned(), resource),
    ]
}

/// Percent-encodes every byte outside the URI unreserved set
/// (`A–Z a–z 0–9 - . _ ~`), as the OpenTelemetry specification requires
/// for `OTEL_RESOURCE_ATTRIBUTES` keys and values (so `,` `=` `%` and
/// spaces never break the list).
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Whether an inherited environment variable would override or alter the
/// generated configuration, so the supervisor must remove it from Beyla's
/// environment (before adding [`Generated::env`](super::Generated::env)).
///
/// Beyla reads environment variables after its config file, and copies
/// every `BEYLA_*` to `OTEL_EBPF_*`; an agent started with, say,
/// `OTEL_EXPORTER_OTLP_ENDPOINT` for its own use would otherwise send
/// Beyla's data elsewhere. Matches `BEYLA_*`, `OTEL_EBPF_*`,
/// `OTEL_EXPORTER_OTLP_*`, `OTEL_TRACES_SAMPLER*`, `OTEL_METRIC_EXPORT_*`,
/// `OTEL_METRICS_EXPORTER`, `OTEL_TRACES_EXPORTER`, `OTEL_SERVICE_NAME`,
/// `OTEL_RESOURCE_ATTRIBUTES` and `OTEL_GO_AUTO_TARGET_EXE`.
pub fn overrides_generated_config(var: &str) -> bool {
    const PREFIXES: [&str; 5] = [
        "BEYLA_",
        "OTEL_EBPF_",
        "OTEL_EXPORTER_OTLP_",
        "OTEL_TRACES_SAMPLER",
        "OTEL_METRIC_EXPORT_",
    ];
    const NAMES: [&str; 5] = [
        "OTEL_METRICS_EXPORTER",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SERVICE_NAME",
        "OTEL_RESOURCE_ATTRIBUTES",
        "OTEL_GO_AUTO_TARGET_EXE",
    ];
    PREFIXES.iter().any(|p| var.starts_with(p)) || NAMES.contains(&var)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_bytes_only() {
        assert_eq!(percent_encode("us-west-2"), "us-west-2");
        assert_eq!(percent_encode("a b,c=d%é"), "a%20b%2Cc%3Dd%25%C3%A9");
    }

    #[test]
    fn resource_attributes_are_sorted_and_include_the_agent_id() {
        let attrs = BTreeMap::from([
            ("zone".to_owned(), "b".to_owned()),
            ("env".to_owned(), "prod,eu".to_owned()),
        ]);
        let vars = vars(&attrs, "web 01");
        assert_eq!(vars[1].1, "coral.agent.id=web%2001,env=prod%2Ceu,zone=b");
        assert_eq!(
            vars[0].0,
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
        );
    }

    #[test]
    fn inherited_overrides_are_recognised() {
        for var in [
            "BEYLA_OPEN_PORT",
            "OTEL_EBPF_LOG_LEVEL",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "OTEL_TRACES_SAMPLER_ARG",
            "OTEL_METRIC_EXPORT_INTERVAL",
            "OTEL_SERVICE_NAME",
        ] {
            assert!(overrides_generated_config(var), "{var}");
        }
        for var in ["PATH", "HOME", "BEYLAX", "OTEL_LOG_LEVEL", "CORAL_HOME"] {
            assert!(!overrides_generated_config(var), "{var}");
        }
    }
}
