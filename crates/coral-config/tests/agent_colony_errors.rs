//! Agent colony-link errors: value ranges and unknown keys in the new sections.

mod common;

use std::path::Path;

use common::{agent_err, assert_contains_all, env};
use coral_config::{AgentConfig, AgentOverrides, ConfigError};

fn load_with(
    yaml: &str,
    pairs: &[(&str, &str)],
    flags: &AgentOverrides,
) -> Result<AgentConfig, ConfigError> {
    AgentConfig::from_yaml_str(yaml, Path::new("agent.yaml"), &env(pairs), flags)
}

#[test]
fn value_ranges() {
    let base = "agent:\n  colony:\n    endpoint: \"c:1\"\n";
    let cases = [
        (
            "    heartbeat_interval: 500ms\n",
            "agent.colony.heartbeat_interval",
            "at least 1s",
        ),
        (
            "    push:\n      interval: 50ms\n",
            "agent.colony.push.interval",
            "at least 100ms",
        ),
        (
            "    push:\n      max_records: 0\n",
            "agent.colony.push.max_records",
            "from 1 to 50000",
        ),
        (
            "    push:\n      max_records: 50001\n",
            "agent.colony.push.max_records",
            "from 1 to 50000",
        ),
        (
            "    push:\n      max_backoff: 0s\n",
            "agent.colony.push.max_backoff",
            "at least 100ms",
        ),
        (
            "    tls:\n      server_name: \"\"\n",
            "agent.colony.tls.server_name",
            "not a valid TLS server name",
        ),
        (
            "  host_metrics:\n    interval: 500ms\n",
            "agent.host_metrics.interval",
            "at least 1s",
        ),
        (
            "  host_metrics:\n    enabled: yes\n",
            "agent.host_metrics.enabled",
            "true or false",
        ),
        (
            "  storage:\n    outbox_max_age: 0s\n",
            "agent.storage.outbox_max_age",
            "longer than 0",
        ),
    ];
    for (extra, key, expected) in cases {
        let yaml = format!("{base}{extra}");
        let err = agent_err(&yaml);
        assert_eq!(err.key(), Some(key), "{yaml}");
        assert_contains_all(
            &err.to_string(),
            &["agent.yaml", &format!("`{key}`"), expected],
        );
    }
    let err = load_with(
        "",
        &[("HOME", "/h"), ("CORAL_HOST_METRICS_INTERVAL", "500ms")],
        &AgentOverrides::default(),
    )
    .unwrap_err();
    assert_contains_all(
        &err.to_string(),
        &["CORAL_HOST_METRICS_INTERVAL", "at least 1s"],
    );
}

#[test]
fn unknown_keys_in_the_new_sections() {
    let cases = [
        (
            "agent:\n  colony:\n    endpont: \"c:1\"\n",
            "agent.colony.endpont",
            3,
            "endpoint",
        ),
        (
            "agent:\n  colony:\n    push:\n      intervall: 1s\n",
            "agent.colony.push.intervall",
            4,
            "interval",
        ),
        (
            "agent:\n  colony:\n    tls:\n      cafile: x\n",
            "agent.colony.tls.cafile",
            4,
            "ca_file",
        ),
        ("agent:\n  api:\n    tsl: {}\n", "agent.api.tsl", 3, "tls"),
        (
            "agent:\n  host_metric:\n    enabled: true\n",
            "agent.host_metric",
            2,
            "host_metrics",
        ),
        (
            "agent:\n  storage:\n    outbox_max_ag: 1h\n",
            "agent.storage.outbox_max_ag",
            3,
            "outbox_max_age",
        ),
        (
            "colony:\n  endpoint: \"c:1\"\n",
            "colony",
            1,
            "agent.colony",
        ),
    ];
    for (yaml, key, line, suggestion) in cases {
        let err = agent_err(yaml);
        assert!(
            matches!(err, ConfigError::UnknownKey { .. }),
            "{yaml}: {err:?}"
        );
        assert_eq!((err.key(), err.line()), (Some(key), Some(line)), "{yaml}");
        assert_contains_all(
            &err.to_string(),
            &[&format!("did you mean `{suggestion}`?")],
        );
    }
}
