//! Error messages for invalid files: key path, line, and what is accepted.

mod common;

use common::{assert_contains_all, error_of};
use coral_config::{AgentConfig, AgentOverrides, ConfigError};

fn key_and_line(yaml: &str) -> (Option<String>, Option<u64>) {
    let err = AgentConfig::from_yaml_str(
        yaml,
        std::path::Path::new("x.yaml"),
        &common::home_env(),
        &AgentOverrides::default(),
    )
    .unwrap_err();
    (err.key().map(str::to_owned), err.line())
}

#[test]
fn scrub_regex_error_names_the_index() {
    let msg =
        error_of("agent:\n  telemetry:\n    scrub_attributes:\n      - email\n      - \"(ssn\"\n");
    assert_contains_all(
        &msg,
        &[
            "agent.yaml",
            "`agent.telemetry.scrub_attributes[1]`",
            "(line 5)",
            "\"(ssn\"",
            "not a valid regular expression",
        ],
    );
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn unknown_keys_at_every_level() {
    let cases = [
        ("agnet:\n  id: x\n", "agnet", 1),
        ("agent:\n  idd: x\n", "agent.idd", 2),
        (
            "agent:\n  telemetry:\n    aggregation:\n      max_service: 3\n",
            "agent.telemetry.aggregation.max_service",
            4,
        ),
        (
            "agent:\n  api:\n    endpont: \"127.0.0.1:1\"\n",
            "agent.api.endpont",
            3,
        ),
        ("agent:\n  admin:\n    port: 1\n", "agent.admin.port", 3),
        (
            "agent:\n  storage:\n    retain: 1h\n",
            "agent.storage.retain",
            3,
        ),
        ("agent:\n  log:\n    levle: debug\n", "agent.log.levle", 3),
    ];
    for (yaml, key, line) in cases {
        assert_eq!(
            key_and_line(yaml),
            (Some(key.to_owned()), Some(line)),
            "{yaml}"
        );
        assert_contains_all(
            &error_of(yaml),
            &[&format!("unknown key `{key}`"), "expected one of"],
        );
    }
}

#[test]
fn top_level_setting_hints_at_nesting_under_agent() {
    let msg = error_of("telemetry:\n  enabled: false\n");
    assert_contains_all(
        &msg,
        &[
            "unknown key `telemetry` (line 1)",
            "did you mean `agent.telemetry`?",
        ],
    );
}

#[test]
fn wrong_types_say_what_is_expected() {
    let cases = [
        (
            "agent:\n  telemetry:\n    enabled: yes\n",
            "agent.telemetry.enabled",
            "expected true or false, found the string \"yes\"",
        ),
        ("agent:\n  id: 42\n", "agent.id", "put it in quotes"),
        ("agent:\n  id:\n", "agent.id", "has no value"),
        (
            "agent:\n  mode: collector\n",
            "agent.mode",
            "agent, otel-collector, forwarder",
        ),
        (
            "agent:\n  telemetry: true\n",
            "agent.telemetry",
            "expected a mapping with keys enabled",
        ),
        (
            "agent:\n  telemetry:\n    queue_spans: 0\n",
            "agent.telemetry.queue_spans",
            "≥ 1",
        ),
        (
            "agent:\n  telemetry:\n    max_connections: 0\n",
            "agent.telemetry.max_connections",
            "≥ 1",
        ),
        (
            "agent:\n  telemetry:\n    ack: flushed\n",
            "agent.telemetry.ack",
            "expected one of: received, stored",
        ),
        (
            "agent:\n  telemetry:\n    aggregation:\n      max_services: many\n",
            "agent.telemetry.aggregation.max_services",
            "whole number",
        ),
        (
            "agent:\n  telemetry:\n    max_message_bytes: 4MB\n",
            "agent.telemetry.max_message_bytes",
            "KiB, MiB or GiB",
        ),
        (
            "agent:\n  telemetry:\n    max_message_bytes: 0\n",
            "agent.telemetry.max_message_bytes",
            "≥ 1",
        ),
        (
            "agent:\n  storage:\n    retention: 1.5h\n",
            "agent.storage.retention",
            "\"500ms\"",
        ),
        (
            "agent:\n  storage:\n    retention: 0s\n",
            "agent.storage.retention",
            "longer than 0",
        ),
        (
            "agent:\n  storage:\n    cleanup_interval: -5\n",
            "agent.storage.cleanup_interval",
            "whole number of seconds",
        ),
        (
            "agent:\n  log:\n    format: xml\n",
            "agent.log.format",
            "text, json",
        ),
        (
            "agent:\n  admin:\n    endpoint: \"127.0.0.1\"\n",
            "agent.admin.endpoint",
            "not a valid host:port",
        ),
        (
            "agent:\n  data_dir: \"\"\n",
            "agent.data_dir",
            "must not be empty",
        ),
        (
            "agent:\n  telemetry:\n    scrub_attributes: email\n",
            "agent.telemetry.scrub_attributes",
            "expected a list of regular expressions",
        ),
    ];
    for (yaml, key, expected) in cases {
        assert_contains_all(
            &error_of(yaml),
            &["agent.yaml", &format!("`{key}`"), expected],
        );
    }
}

#[test]
fn yaml_syntax_errors_give_line_and_column() {
    let err = AgentConfig::from_yaml_str(
        "agent:\n  telemetry:\n    filters: [\n",
        std::path::Path::new("broken.yaml"),
        &common::home_env(),
        &AgentOverrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    assert_contains_all(
        &err.to_string(),
        &["broken.yaml", "YAML syntax error at line 3"],
    );
}

#[test]
fn duplicate_keys_are_rejected() {
    let msg = error_of("agent:\n  id: a\n  id: b\n");
    assert_contains_all(&msg, &["agent.yaml", "line 3", "duplicate"]);
}

#[test]
fn deeply_nested_files_are_refused_before_they_exhaust_the_stack() {
    // Found by fuzzing: nesting within the parser's own limit overflowed a
    // test thread's stack in a debug build. Coral's keys are never this deep.
    let deep = format!(
        "agent:\n  telemetry: {}{}\n",
        "[".repeat(60),
        "]".repeat(60)
    );
    let err = AgentConfig::from_yaml_str(
        &deep,
        std::path::Path::new("deep.yaml"),
        &common::home_env(),
        &AgentOverrides::default(),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Syntax { .. }), "{err:?}");
    assert_contains_all(&err.to_string(), &["deep.yaml", "depth"]);
    // The deepest keys Coral has still parse.
    let ok = "beyla:\n  discovery:\n    services:\n      - k8s_pod_label: {app: payments}\n";
    assert!(
        AgentConfig::from_yaml_str(
            ok,
            std::path::Path::new("ok.yaml"),
            &common::home_env(),
            &AgentOverrides::default(),
        )
        .is_ok()
    );
}
