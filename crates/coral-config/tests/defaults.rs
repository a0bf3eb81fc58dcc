//! Built-in defaults and how the data directory and agent id are derived.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{env, load_str};
use coral_config::{
    AgentConfig, AgentMode, AgentOverrides, ConfigError, FilterConfig, LogFormat, default_agent_id,
};

#[test]
fn every_default() {
    let cfg = load_str("").unwrap();
    assert_eq!(cfg.agent_id, default_agent_id());
    assert_eq!(cfg.data_dir, Path::new("/home/test/.coral/agent"));
    assert_eq!(cfg.mode, AgentMode::Agent);
    let t = &cfg.telemetry;
    assert!(t.enabled);
    assert_eq!(t.grpc_endpoint.to_string(), "127.0.0.1:4317");
    assert_eq!(t.http_endpoint.to_string(), "127.0.0.1:4318");
    assert_eq!(t.max_message_bytes, 16 * 1024 * 1024);
    assert_eq!(
        t.filters,
        FilterConfig {
            keep_errors: true,
            latency_threshold_ms: Some(500.0),
            sample_rate: 0.10
        }
    );
    assert!(t.scrub_attributes.is_empty());
    assert_eq!(t.flush_grace, Duration::from_secs(10));
    assert_eq!(t.max_operations_per_service, 200);
    assert_eq!(t.max_services, 1000);
    assert_eq!(t.queue_spans, 200_000);
    assert_eq!(t.max_connections, coral_config::DEFAULT_MAX_CONNECTIONS);
    assert_eq!(t.ack, coral_config::AckMode::Received);
    assert_eq!(cfg.api_endpoint.to_string(), "127.0.0.1:9001");
    assert_eq!(cfg.admin_endpoint.to_string(), "127.0.0.1:9002");
    assert_eq!(cfg.storage.retention, Duration::from_secs(3600));
    assert_eq!(cfg.storage.cleanup_interval, Duration::from_secs(60));
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.log.level, "info");
    assert_eq!(cfg.source.as_deref(), Some(Path::new("agent.yaml")));
}

#[test]
fn empty_sections_are_defaults() {
    let cfg = load_str("agent:\n  telemetry:\n  storage:\n  log:\n").unwrap();
    assert_eq!(cfg.telemetry.filters, FilterConfig::DEFAULT);
    assert_eq!(cfg.log.level, "info");
}

#[test]
fn data_dir_comes_from_coral_home_then_home() {
    let none = AgentOverrides::default();
    let with_home = env(&[("CORAL_HOME", "/opt/coral"), ("HOME", "/home/x")]);
    let cfg = AgentConfig::load(None, &with_home, &none).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/opt/coral/agent"));

    let home_only = env(&[("HOME", "/home/x")]);
    let cfg = AgentConfig::load(None, &home_only, &none).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/home/x/.coral/agent"));
}

#[test]
fn missing_home_is_an_error_only_when_data_dir_is_not_set() {
    let none = AgentOverrides::default();
    let err = AgentConfig::load(None, &env(&[]), &none).unwrap_err();
    assert!(matches!(err, ConfigError::NoDataDir), "{err:?}");
    assert!(err.to_string().contains("CORAL_DATA_DIR"), "{err}");

    let cfg = AgentConfig::load(None, &env(&[("CORAL_DATA_DIR", "/data")]), &none).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/data"));
}

#[test]
fn byte_sizes_and_durations_in_the_file() {
    let yaml = "agent:\n  telemetry:\n    max_message_bytes: 512KiB\n    aggregation:\n      flush_grace: 0\n  storage:\n    retention: 90\n    cleanup_interval: 500ms\n";
    let cfg = load_str(yaml).unwrap();
    assert_eq!(cfg.telemetry.max_message_bytes, 512 * 1024);
    assert_eq!(cfg.telemetry.flush_grace, Duration::ZERO);
    assert_eq!(cfg.storage.retention, Duration::from_secs(90));
    assert_eq!(cfg.storage.cleanup_interval, Duration::from_millis(500));

    let cfg = load_str("agent:\n  telemetry:\n    max_message_bytes: 1048576\n").unwrap();
    assert_eq!(cfg.telemetry.max_message_bytes, 1 << 20);
}

#[test]
fn parse_duration_is_public_for_the_cli() {
    assert_eq!(
        coral_config::parse_duration("1h"),
        Ok(Duration::from_secs(3600))
    );
    assert_eq!(
        coral_config::parse_duration("2d"),
        Ok(Duration::from_secs(172_800))
    );
    assert_eq!(
        coral_config::parse_duration("500ms"),
        Ok(Duration::from_millis(500))
    );
    assert_eq!(
        coral_config::parse_duration("30"),
        Ok(Duration::from_secs(30))
    );
    let err = coral_config::parse_duration("1 hour").unwrap_err();
    assert!(
        err.contains("\"1 hour\"") && err.contains("ms, s, m, h, d"),
        "{err}"
    );
}
