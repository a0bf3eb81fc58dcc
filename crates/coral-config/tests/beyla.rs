//! The agent's `beyla:` section: defaults, the fixtures and the
//! environment override (errors are in `beyla_errors.rs`).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_contains_all, env, fixture, load_str};
use coral_config::{
    AgentConfig, AgentOverrides, BeylaConfig, BeylaLimits, BeylaLogLevel, BeylaProtocols,
    BeylaRestart, BeylaService, ENV_VARS, HttpProtocol, PortSet, SqlProtocol, UnmatchedRoutes,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn load_fixture(name: &str) -> Result<AgentConfig, coral_config::ConfigError> {
    AgentConfig::load(
        Some(&fixture(name)),
        &common::home_env(),
        &AgentOverrides::default(),
    )
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn ports(ranges: &[(u16, u16)]) -> Option<PortSet> {
    Some(PortSet::new(ranges.iter().copied()).unwrap())
}

#[test]
fn every_default() {
    let b = load_str("").unwrap().beyla;
    assert_eq!(b, BeylaConfig::default());
    assert!(b.enabled);
    assert_eq!(b.binary, None);
    assert!(b.services.is_empty());
    assert_eq!(b.protocols.enabled(), ["http", "grpc", "sql"]);
    assert!(b.protocols.sql.obfuscate_queries);
    assert!(b.protocols.http.route_patterns.is_empty());
    assert_eq!(
        b.protocols.http.unmatched_routes,
        UnmatchedRoutes::LowCardinality
    );
    assert!(b.attributes.is_empty());
    assert_eq!(b.sampling_rate, 1.0);
    assert_eq!(b.limits.max_routes_per_service, 200);
    assert_eq!(b.limits.wakeup_len, None);
    assert_eq!(b.storage_retention, secs(3600));
    assert_eq!(b.export_interval, secs(15));
    assert_eq!(
        b.restart,
        BeylaRestart {
            max_rapid_failures: 5,
            backoff_initial: secs(1),
            backoff_max: secs(60),
            stable_after: secs(60),
            stop_timeout: secs(10),
        }
    );
    assert_eq!(b.log_level, BeylaLogLevel::Info);
    // Empty sections are defaults too.
    let empty = "beyla:\n  discovery:\n  protocols:\n    http:\n  limits:\n  restart:\n";
    assert_eq!(load_str(empty).unwrap().beyla, BeylaConfig::default());
}

#[test]
fn full_fixture_sets_every_field() {
    let cfg = load_fixture("agent-beyla-full.yaml").expect("agent-beyla-full.yaml loads");
    let expected = BeylaConfig {
        enabled: false,
        binary: Some(PathBuf::from("/opt/beyla/beyla")),
        services: vec![
            BeylaService {
                name: Some("checkout-api".into()),
                open_ports: ports(&[(8080, 8080)]),
                k8s_pod_name: Some("checkout-*".into()),
                ..BeylaService::default()
            },
            BeylaService {
                name: Some("payments-api".into()),
                k8s_namespace: Some("prod".into()),
                k8s_pod_labels: labels(&[("app", "payments")]),
                ..BeylaService::default()
            },
            BeylaService {
                exe_path: Some("*inventory*".into()),
                open_ports: ports(&[(9000, 9010), (9100, 9100)]),
                ..BeylaService::default()
            },
            BeylaService {
                exe_path: Some("*/billing".into()),
                ..BeylaService::default()
            },
        ],
        protocols: BeylaProtocols {
            http: HttpProtocol {
                enabled: false,
                route_patterns: vec!["/api/v1/users/:id".into(), "/api/v1/orders/{id}".into()],
                unmatched_routes: UnmatchedRoutes::Heuristic,
            },
            grpc: false,
            sql: SqlProtocol {
                enabled: false,
                obfuscate_queries: false,
            },
            kafka: true,
            redis: true,
        },
        attributes: labels(&[
            ("environment", "production"),
            ("cluster", "us-west-2"),
            ("colony_id", "colony-abc123"),
        ]),
        sampling_rate: 0.25,
        limits: BeylaLimits {
            max_routes_per_service: 50,
            wakeup_len: Some(64),
        },
        storage_retention: secs(3 * 3600),
        export_interval: secs(30),
        restart: BeylaRestart {
            max_rapid_failures: 3,
            backoff_initial: Duration::from_millis(500),
            backoff_max: secs(120),
            stable_after: secs(300),
            stop_timeout: secs(20),
        },
        log_level: BeylaLogLevel::Debug,
    };
    assert_eq!(cfg.beyla, expected);
    assert_eq!(
        cfg.beyla.services[2]
            .open_ports
            .as_ref()
            .unwrap()
            .to_string(),
        "9000-9010,9100"
    );
    assert_eq!(cfg.beyla.protocols.enabled(), ["redis", "kafka"]);
    assert!(format!("{cfg:?}").contains("beyla: BeylaConfig"));
}

#[test]
fn seed_example_is_rejected_only_for_settings_beyla_lacks() {
    let err = load_fixture("agent-beyla-seed.yaml").unwrap_err();
    assert_eq!(err.key(), Some("beyla.limits.max_traced_connections"));
    assert_eq!(err.line(), Some(46));
    assert_contains_all(
        &err.to_string(),
        &[
            "agent-beyla-seed.yaml",
            "Beyla has no setting that caps traced connections",
            "remove it",
            "beyla.discovery.services",
        ],
    );
    // Without the two limits it loads, and matches the seed.
    let text = std::fs::read_to_string(fixture("agent-beyla-seed.yaml")).unwrap();
    let trimmed: String = text.lines().take(44).map(|l| format!("{l}\n")).collect();
    let b = load_str(&trimmed).unwrap().beyla;
    assert!(b.enabled);
    assert_eq!(b.services.len(), 2);
    assert_eq!(
        b.services[0].open_ports.as_ref().unwrap().to_string(),
        "8080"
    );
    assert_eq!(b.services[1].k8s_pod_labels, labels(&[("app", "payments")]));
    assert_eq!(b.protocols.http.route_patterns.len(), 2);
    assert_eq!(b.attributes.len(), 3);
    assert_eq!(b.storage_retention, secs(3600));
}

#[test]
fn open_port_forms_and_process_name() {
    let b = load_str(
        "beyla:\n  discovery:\n    services:\n      - open_port: [443, \"8000-8999\", 80]\n      \
         - open_port: \" 9000 , 9001 \"\n      - process_name: checkout\n",
    )
    .unwrap()
    .beyla;
    assert_eq!(
        b.services[0].open_ports.as_ref().unwrap().to_string(),
        "80,443,8000-8999"
    );
    assert_eq!(
        b.services[1].open_ports.as_ref().unwrap().to_string(),
        "9000-9001"
    );
    assert_eq!(b.services[2].exe_path.as_deref(), Some("*/checkout"));
    let b = load_str("beyla:\n  log_level: WARN\n").unwrap().beyla;
    assert_eq!(b.log_level.beyla_name(), "WARN");
}

#[test]
fn coral_beyla_enabled_overrides_the_file() {
    assert!(ENV_VARS.contains(&"CORAL_BEYLA_ENABLED"));
    let load = |pairs: &[(&str, &str)]| {
        let mut e = env(pairs);
        e.insert("HOME".into(), "/home/test".into());
        AgentConfig::from_yaml_str(
            "beyla:\n  enabled: true\n",
            Path::new("agent.yaml"),
            &e,
            &AgentOverrides::default(),
        )
    };
    assert!(
        !load(&[("CORAL_BEYLA_ENABLED", "false")])
            .unwrap()
            .beyla
            .enabled
    );
    assert!(load(&[("CORAL_BEYLA_ENABLED", "")]).unwrap().beyla.enabled);
    let err = load(&[("CORAL_BEYLA_ENABLED", "off")])
        .unwrap_err()
        .to_string();
    assert_contains_all(
        &err,
        &["CORAL_BEYLA_ENABLED", "\"off\"", "true, false, 1 or 0"],
    );
}
