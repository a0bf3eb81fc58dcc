//! Every committed fixture loads, or fails naming the file and the key path.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::{assert_contains_all, fixture, home_env};
use coral_config::{AgentConfig, AgentMode, AgentOverrides, ConfigError, FilterConfig, LogFormat};

fn load_fixture(name: &str) -> Result<AgentConfig, ConfigError> {
    AgentConfig::load(
        Some(&fixture(name)),
        &home_env(),
        &AgentOverrides::default(),
    )
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[test]
fn full_fixture_sets_every_field() {
    let cfg = load_fixture("agent-full.yaml").expect("agent-full.yaml loads");
    assert_eq!(cfg.agent_id, "web-01");
    assert_eq!(cfg.data_dir, Path::new("/var/lib/coral/agent"));
    assert_eq!(cfg.mode, AgentMode::OtelCollector);
    let t = &cfg.telemetry;
    assert!(t.enabled);
    assert_eq!(t.grpc_endpoint, addr("0.0.0.0:14317"));
    assert_eq!(t.http_endpoint, addr("0.0.0.0:14318"));
    assert_eq!(t.max_message_bytes, 8 * 1024 * 1024);
    assert_eq!(
        t.filters,
        FilterConfig {
            keep_errors: true,
            latency_threshold_ms: Some(250.5),
            sample_rate: 0.25
        }
    );
    let patterns: Vec<&str> = t.scrub_attributes.iter().map(|r| r.as_str()).collect();
    assert_eq!(patterns, ["email|ssn", "^password$"]);
    assert!(t.scrub_attributes[0].is_match("user.email"));
    assert!(!t.scrub_attributes[1].is_match("password_hint"));
    assert_eq!(t.flush_grace, Duration::from_secs(15));
    assert_eq!(t.max_operations_per_service, 50);
    assert_eq!(t.max_services, 300);
    assert_eq!(t.queue_spans, 50_000);
    assert_eq!(t.max_connections, 300);
    assert_eq!(t.ack, coral_config::AckMode::Stored);
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:19001"));
    assert_eq!(cfg.admin_endpoint, addr("[::1]:19002"));
    assert_eq!(cfg.storage.retention, Duration::from_secs(2 * 86_400));
    assert_eq!(cfg.storage.cleanup_interval, Duration::from_secs(300));
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.log.level, "coral=debug,info");
    assert_eq!(
        cfg.source.as_deref(),
        Some(fixture("agent-full.yaml").as_path())
    );
}

#[test]
fn minimal_fixture_is_the_seed_example() {
    let cfg = load_fixture("agent-minimal.yaml").expect("agent-minimal.yaml loads");
    assert!(!cfg.telemetry.enabled);
    assert_eq!(cfg.telemetry.grpc_endpoint, addr("127.0.0.1:4317"));
    assert_eq!(cfg.telemetry.filters, FilterConfig::DEFAULT);
    assert_eq!(cfg.telemetry.filters.sample_rate, 0.10);
    // Everything else is defaulted.
    assert_eq!(cfg.mode, AgentMode::Agent);
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:9001"));
    assert_eq!(cfg.data_dir, Path::new("/home/test/.coral/agent"));
}

#[test]
fn misspelled_key_fixture_names_file_key_line_and_suggestion() {
    let err = load_fixture("agent-misspelled-key.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    assert_eq!(err.key(), Some("agent.telemetry.filtres"));
    assert_eq!(err.line(), Some(5));
    assert_contains_all(
        &err.to_string(),
        &[
            "agent-misspelled-key.yaml",
            "unknown key `agent.telemetry.filtres`",
            "(line 5)",
            "did you mean `filters`?",
            "expected one of: enabled, endpoint, http_endpoint",
            "fix the spelling or remove it",
        ],
    );
}

#[test]
fn bad_filter_fixture_names_the_list_item() {
    let err = load_fixture("agent-bad-filter.yaml").unwrap_err();
    assert_eq!(err.key(), Some("agent.telemetry.filters[1]"));
    assert_eq!(err.line(), Some(5));
    assert_contains_all(
        &err.to_string(),
        &[
            "agent-bad-filter.yaml",
            "`agent.telemetry.filters[1]`",
            "\"warnings\"",
            "`always_capture: errors`",
            "latency_gt_ms",
            "sample_rate",
        ],
    );
}

#[test]
fn bad_endpoint_fixture_names_the_key_and_value() {
    let err = load_fixture("agent-bad-endpoint.yaml").unwrap_err();
    assert_eq!(err.key(), Some("agent.telemetry.endpoint"));
    assert_eq!(err.line(), Some(3));
    assert_contains_all(
        &err.to_string(),
        &[
            "agent-bad-endpoint.yaml",
            "`agent.telemetry.endpoint`",
            "\"localhost:99999\"",
            "not a valid host:port socket address",
        ],
    );
}

#[test]
fn missing_file_is_a_read_error_with_the_path() {
    let path = fixture("does-not-exist.yaml");
    let err = AgentConfig::load(Some(&path), &home_env(), &AgentOverrides::default()).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
    assert_contains_all(
        &err.to_string(),
        &["does-not-exist.yaml", "cannot read config file"],
    );
}

#[test]
fn empty_and_comment_only_files_give_defaults() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [
        ("empty.yaml", ""),
        ("comments.yaml", "# agent:\n#   id: x\n"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let cfg = AgentConfig::load(Some(&path), &home_env(), &AgentOverrides::default())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(cfg.source.as_deref(), Some(path.as_path()));
        assert_eq!(cfg.telemetry.filters, FilterConfig::DEFAULT);
        assert_eq!(cfg.storage.retention, Duration::from_secs(3600));
    }
}

#[test]
fn no_file_uses_defaults_and_has_no_source() {
    let cfg = AgentConfig::load(None, &home_env(), &AgentOverrides::default()).unwrap();
    assert_eq!(cfg.source, None);
    assert_eq!(cfg.telemetry.grpc_endpoint, addr("127.0.0.1:4317"));
}
