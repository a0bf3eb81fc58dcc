//! Defaults < file < environment < flags, and errors naming env vars and flags.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_contains_all, env};
use coral_config::{AgentConfig, AgentMode, AgentOverrides, ConfigError, ENV_VARS, LogFormat};

const FILE: &str = "\
agent:
  id: from-file
  data_dir: /file/data
  mode: forwarder
  telemetry:
    enabled: true
    endpoint: \"127.0.0.1:1001\"
    http_endpoint: \"127.0.0.1:1002\"
    filters:
      - always_capture: errors
      - sample_rate: 0.5
  api:
    endpoint: \"127.0.0.1:1003\"
  admin:
    endpoint: \"127.0.0.1:1004\"
  storage:
    retention: 2h
  log:
    format: text
    level: warn
";

fn full_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("HOME", "/home/test"),
        ("CORAL_HOME", "/coral-home"),
        ("CORAL_AGENT_ID", "from-env"),
        ("CORAL_DATA_DIR", "/env/data"),
        ("CORAL_MODE", "otel-collector"),
        ("CORAL_TELEMETRY_ENABLED", "0"),
        ("CORAL_OTLP_GRPC_ENDPOINT", "127.0.0.1:2001"),
        ("CORAL_OTLP_HTTP_ENDPOINT", "127.0.0.1:2002"),
        ("CORAL_AGENT_API_ENDPOINT", "127.0.0.1:2003"),
        ("CORAL_ADMIN_ENDPOINT", "127.0.0.1:2004"),
        ("CORAL_RETENTION", "30m"),
        ("CORAL_SAMPLE_RATE", "0.2"),
        ("CORAL_LOG_FORMAT", "json"),
        ("CORAL_LOG_LEVEL", "debug"),
    ]
}

fn load(pairs: &[(&str, &str)], flags: &AgentOverrides) -> Result<AgentConfig, ConfigError> {
    AgentConfig::from_yaml_str(FILE, Path::new("agent.yaml"), &env(pairs), flags)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn file_overrides_defaults() {
    let cfg = load(&[("HOME", "/home/test")], &AgentOverrides::default()).unwrap();
    assert_eq!(cfg.agent_id, "from-file");
    assert_eq!(
        cfg.data_dir,
        Path::new("/file/data"),
        "file beats CORAL_HOME default"
    );
    assert_eq!(cfg.mode, AgentMode::Forwarder);
    assert_eq!(cfg.telemetry.grpc_endpoint, addr("127.0.0.1:1001"));
    assert_eq!(cfg.storage.retention, Duration::from_secs(7200));
    assert_eq!(cfg.log.level, "warn");
}

#[test]
fn env_overrides_file() {
    let cfg = load(&full_env(), &AgentOverrides::default()).unwrap();
    assert_eq!(cfg.agent_id, "from-env");
    assert_eq!(cfg.data_dir, Path::new("/env/data"));
    assert_eq!(cfg.mode, AgentMode::OtelCollector);
    assert!(!cfg.telemetry.enabled);
    assert_eq!(cfg.telemetry.grpc_endpoint, addr("127.0.0.1:2001"));
    assert_eq!(cfg.telemetry.http_endpoint, addr("127.0.0.1:2002"));
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:2003"));
    assert_eq!(cfg.admin_endpoint, addr("127.0.0.1:2004"));
    assert_eq!(cfg.storage.retention, Duration::from_secs(1800));
    // CORAL_SAMPLE_RATE changes only the sample rate; the file's other rules stay.
    assert_eq!(cfg.telemetry.filters.sample_rate, 0.2);
    assert!(cfg.telemetry.filters.keep_errors);
    assert_eq!(cfg.telemetry.filters.latency_threshold_ms, None);
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.log.level, "debug");
}

#[test]
fn flags_override_env() {
    let flags = AgentOverrides {
        agent_id: Some("from-flag".into()),
        data_dir: Some(PathBuf::from("/flag/data")),
        mode: Some(AgentMode::Agent),
        grpc_endpoint: Some(addr("127.0.0.1:3001")),
        http_endpoint: Some(addr("127.0.0.1:3002")),
        api_endpoint: Some(addr("127.0.0.1:3003")),
        admin_endpoint: Some(addr("127.0.0.1:3004")),
        colony_endpoint: None,
        token: None,
        log_format: Some(LogFormat::Text),
        log_level: Some("trace".into()),
    };
    let cfg = load(&full_env(), &flags).unwrap();
    assert_eq!(cfg.agent_id, "from-flag");
    assert_eq!(cfg.data_dir, Path::new("/flag/data"));
    assert_eq!(cfg.mode, AgentMode::Agent);
    assert_eq!(cfg.telemetry.grpc_endpoint, addr("127.0.0.1:3001"));
    assert_eq!(cfg.telemetry.http_endpoint, addr("127.0.0.1:3002"));
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:3003"));
    assert_eq!(cfg.admin_endpoint, addr("127.0.0.1:3004"));
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.log.level, "trace");
    // Not flag-overridable: env still wins over the file.
    assert_eq!(cfg.storage.retention, Duration::from_secs(1800));
}

#[test]
fn empty_env_values_count_as_unset() {
    let cfg = load(
        &[
            ("HOME", "/h"),
            ("CORAL_AGENT_ID", ""),
            ("CORAL_LOG_LEVEL", "  "),
        ],
        &AgentOverrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.agent_id, "from-file");
    assert_eq!(cfg.log.level, "warn");
}

#[test]
fn bad_env_values_name_the_variable() {
    let cases = [
        ("CORAL_AGENT_ID", "has space", "whitespace"),
        ("CORAL_MODE", "collector", "otel-collector"),
        ("CORAL_TELEMETRY_ENABLED", "yes", "true, false, 1 or 0"),
        (
            "CORAL_OTLP_GRPC_ENDPOINT",
            "localhost:4317",
            "not a valid host:port",
        ),
        (
            "CORAL_OTLP_HTTP_ENDPOINT",
            "1.2.3.4",
            "not a valid host:port",
        ),
        ("CORAL_AGENT_API_ENDPOINT", "x", "not a valid host:port"),
        (
            "CORAL_ADMIN_ENDPOINT",
            "127.0.0.1:70000",
            "not a valid host:port",
        ),
        ("CORAL_RETENTION", "1 week", "\"500ms\""),
        ("CORAL_RETENTION", "0s", "longer than 0"),
        ("CORAL_SAMPLE_RATE", "1.5", "0.0"),
        ("CORAL_LOG_FORMAT", "xml", "text, json"),
    ];
    for (var, value, expected) in cases {
        let err = load(&[("HOME", "/h"), (var, value)], &AgentOverrides::default()).unwrap_err();
        assert!(matches!(err, ConfigError::Env { .. }), "{var}: {err:?}");
        assert_contains_all(
            &err.to_string(),
            &["environment variable", var, &format!("{value:?}"), expected],
        );
    }
}

#[test]
fn bad_flag_values_name_the_flag() {
    let flags = AgentOverrides {
        log_level: Some(" ".into()),
        ..AgentOverrides::default()
    };
    let err = load(&[("HOME", "/h")], &flags).unwrap_err();
    assert_contains_all(&err.to_string(), &["flag --log-level", "must not be empty"]);

    let flags = AgentOverrides {
        agent_id: Some(String::new()),
        ..AgentOverrides::default()
    };
    let err = load(&[("HOME", "/h")], &flags).unwrap_err();
    assert_contains_all(&err.to_string(), &["flag --agent-id", "must not be empty"]);
}

#[test]
fn endpoint_conflicts_name_both_sources() {
    let pairs = [("HOME", "/h"), ("CORAL_ADMIN_ENDPOINT", "127.0.0.1:1003")];
    let err = load(&pairs, &AgentOverrides::default()).unwrap_err();
    assert!(
        matches!(err, ConfigError::EndpointConflict { .. }),
        "{err:?}"
    );
    assert_contains_all(
        &err.to_string(),
        &[
            "`agent.api.endpoint` (set in agent.yaml line 13)",
            "`agent.admin.endpoint` (set by environment variable CORAL_ADMIN_ENDPOINT)",
            "127.0.0.1:1003",
        ],
    );

    let flags = AgentOverrides {
        http_endpoint: Some(addr("0.0.0.0:1001")),
        ..AgentOverrides::default()
    };
    let err = load(&[("HOME", "/h")], &flags).unwrap_err();
    assert_contains_all(&err.to_string(), &["set by flag --otlp-http-endpoint"]);
}

#[test]
fn disabled_telemetry_and_port_zero_do_not_conflict() {
    let pairs = [
        ("HOME", "/h"),
        ("CORAL_TELEMETRY_ENABLED", "false"),
        ("CORAL_OTLP_GRPC_ENDPOINT", "127.0.0.1:1003"),
        ("CORAL_AGENT_API_ENDPOINT", "127.0.0.1:0"),
        ("CORAL_ADMIN_ENDPOINT", "127.0.0.1:0"),
    ];
    let cfg = load(&pairs, &AgentOverrides::default()).unwrap();
    assert_eq!(cfg.api_endpoint.port(), 0);
    assert_eq!(cfg.admin_endpoint.port(), 0);
}

#[test]
fn env_var_list_is_complete() {
    assert_eq!(ENV_VARS.len(), 19);
    for var in [
        "CORAL_HOME",
        "HOME",
        "CORAL_SAMPLE_RATE",
        "CORAL_ACK",
        "CORAL_LOG_LEVEL",
    ] {
        assert!(ENV_VARS.contains(&var), "{var}");
    }
}
