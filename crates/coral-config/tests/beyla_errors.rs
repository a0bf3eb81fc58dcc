//! Error messages of the `beyla:` section and the colony's `storage.beyla`
//! trace keys: key path, line, what is accepted, and the reason a setting
//! Beyla lacks is rejected.

mod common;

use common::{agent_err, assert_contains_all, colony_err, error_of, load_str};

#[test]
fn ring_buffer_size_and_header_capture_are_rejected_with_a_reason() {
    let err = agent_err("beyla:\n  limits:\n    ring_buffer_size: 65536\n");
    assert_eq!(
        (err.key(), err.line()),
        (Some("beyla.limits.ring_buffer_size"), Some(3))
    );
    assert_contains_all(
        &err.to_string(),
        &[
            "no ring-buffer size setting",
            "beyla.limits.wakeup_len",
            "ebpf.wakeup_len",
        ],
    );
    let err = agent_err("beyla:\n  protocols:\n    http:\n      capture_headers: true\n");
    assert_eq!(
        (err.key(), err.line()),
        (Some("beyla.protocols.http.capture_headers"), Some(4))
    );
    assert_contains_all(
        &err.to_string(),
        &["ebpf.payload_extraction.http.enrichment", "set it to false"],
    );
    // `false` is Beyla's default and is accepted.
    assert!(load_str("beyla:\n  protocols:\n    http:\n      capture_headers: false\n").is_ok());
}

#[test]
fn unknown_keys_at_every_level_suggest_the_right_one() {
    let cases = [
        (
            "beyla:\n  enable: true\n",
            "beyla.enable",
            2,
            Some("enabled"),
        ),
        (
            "beyla:\n  discovery:\n    service: []\n",
            "beyla.discovery.service",
            3,
            Some("services"),
        ),
        (
            "beyla:\n  discovery:\n    services:\n      - open_ports: 80\n",
            "beyla.discovery.services[0].open_ports",
            4,
            Some("open_port"),
        ),
        (
            "beyla:\n  protocols:\n    htpp: {}\n",
            "beyla.protocols.htpp",
            3,
            Some("http"),
        ),
        (
            "beyla:\n  protocols:\n    http:\n      route_pattern: []\n",
            "beyla.protocols.http.route_pattern",
            4,
            Some("route_patterns"),
        ),
        (
            "beyla:\n  protocols:\n    grpc:\n      enbled: true\n",
            "beyla.protocols.grpc.enbled",
            4,
            Some("enabled"),
        ),
        (
            "beyla:\n  protocols:\n    sql:\n      obfuscate_query: true\n",
            "beyla.protocols.sql.obfuscate_query",
            4,
            Some("obfuscate_queries"),
        ),
        (
            "beyla:\n  sampling:\n    ratio: 1\n",
            "beyla.sampling.ratio",
            3,
            None,
        ),
        (
            "beyla:\n  limits:\n    max_routes: 1\n",
            "beyla.limits.max_routes",
            3,
            None,
        ),
        (
            "beyla:\n  restart:\n    backof_max: 1s\n",
            "beyla.restart.backof_max",
            3,
            Some("backoff_max"),
        ),
        ("ebpf:\n  enabled: true\n", "ebpf", 1, None),
    ];
    for (yaml, key, line, suggestion) in cases {
        let err = agent_err(yaml);
        let msg = err.to_string();
        assert_eq!((err.key(), err.line()), (Some(key), Some(line)), "{msg}");
        assert_contains_all(
            &msg,
            &[
                "agent.yaml",
                &format!("unknown key `{key}`"),
                "expected one of",
            ],
        );
        if let Some(s) = suggestion {
            assert!(msg.contains(&format!("did you mean `{s}`?")), "{msg}");
        }
    }
    assert!(error_of("ebpf: {}\n").contains("expected one of: agent, beyla"));
}

#[test]
fn invalid_values_name_the_key_and_what_is_accepted() {
    let svc = |body: &str| format!("beyla:\n  discovery:\n    services:\n      - {body}\n");
    let cases: Vec<(String, &str, &[&str])> = vec![
        (
            "beyla:\n  enabled: yes\n".into(),
            "beyla.enabled",
            &["true or false"],
        ),
        (
            "beyla:\n  binary: \"\"\n".into(),
            "beyla.binary",
            &["must not be empty"],
        ),
        (
            svc("name: x"),
            "beyla.discovery.services[0]",
            &["has no selector", "open_port"],
        ),
        (
            svc("open_port: 0"),
            "beyla.discovery.services[0].open_port",
            &["out of range"],
        ),
        (
            svc("open_port: \"80,x\""),
            "beyla.discovery.services[0].open_port",
            &["\"x\"", "8000-8999"],
        ),
        (
            svc("open_port: \"90-80\""),
            "beyla.discovery.services[0].open_port",
            &["reversed"],
        ),
        (
            svc("open_port: 8.5"),
            "beyla.discovery.services[0].open_port",
            &["expected a port"],
        ),
        (
            svc("exe_path: \"app[1\""),
            "beyla.discovery.services[0].exe_path",
            &["unbalanced"],
        ),
        (
            svc("process_name: /bin/x"),
            "beyla.discovery.services[0].process_name",
            &["use `exe_path`"],
        ),
        (
            svc("{exe_path: \"*a*\", process_name: a}"),
            "beyla.discovery.services[0].process_name",
            &["`exe_path` and `process_name`", "keep only one"],
        ),
        (
            svc("{k8s_pod_label: {a: b}, k8s_pod_labels: {a: b}}"),
            "beyla.discovery.services[0].k8s_pod_labels",
            &["same setting"],
        ),
        (
            svc("k8s_pod_label: {}"),
            "beyla.discovery.services[0].k8s_pod_label",
            &["is empty"],
        ),
        (
            svc("{k8s_pod_label: {\"a b\": x}}"),
            "beyla.discovery.services[0].k8s_pod_label.a b",
            &["label name"],
        ),
        (
            svc("k8s_namespace: 5"),
            "beyla.discovery.services[0].k8s_namespace",
            &["put it in quotes"],
        ),
        (
            "beyla:\n  discovery:\n    services: {}\n".into(),
            "beyla.discovery.services",
            &["expected a list"],
        ),
        (
            "beyla:\n  protocols:\n    http:\n      route_patterns: [\"api/x\"]\n".into(),
            "beyla.protocols.http.route_patterns[0]",
            &["start with `/`"],
        ),
        (
            "beyla:\n  protocols:\n    http:\n      unmatched_routes: smart\n".into(),
            "beyla.protocols.http.unmatched_routes",
            &["low-cardinality"],
        ),
        (
            "beyla:\n  attributes:\n    service.name: x\n".into(),
            "beyla.attributes.service.name",
            &["discovery.services[].name"],
        ),
        (
            "beyla:\n  attributes:\n    coral.agent.id: x\n".into(),
            "beyla.attributes.coral.agent.id",
            &["agent.id"],
        ),
        (
            "beyla:\n  attributes:\n    \"a=b\": x\n".into(),
            "beyla.attributes.a=b",
            &["not a valid attribute name"],
        ),
        (
            "beyla:\n  attributes: [a]\n".into(),
            "beyla.attributes",
            &["expected a mapping"],
        ),
        (
            "beyla:\n  sampling:\n    rate: 0\n".into(),
            "beyla.sampling.rate",
            &["greater than 0"],
        ),
        (
            "beyla:\n  sampling:\n    rate: 1.5\n".into(),
            "beyla.sampling.rate",
            &["at most 1"],
        ),
        (
            "beyla:\n  sampling:\n    rate: all\n".into(),
            "beyla.sampling.rate",
            &["expected a number"],
        ),
        (
            "beyla:\n  limits:\n    max_routes_per_service: 0\n".into(),
            "beyla.limits.max_routes_per_service",
            &["≥ 1"],
        ),
        (
            "beyla:\n  limits:\n    wakeup_len: 0\n".into(),
            "beyla.limits.wakeup_len",
            &["from 1 to"],
        ),
        (
            "beyla:\n  storage_retention_hours: 0.5\n".into(),
            "beyla.storage_retention_hours",
            &["whole number"],
        ),
        (
            "beyla:\n  storage_retention_hours: 0\n".into(),
            "beyla.storage_retention_hours",
            &["out of range"],
        ),
        (
            "beyla:\n  export_interval: 500ms\n".into(),
            "beyla.export_interval",
            &["at least 1s"],
        ),
        (
            "beyla:\n  export_interval: 2m\n".into(),
            "beyla.export_interval",
            &["at most 1m", "1-minute buckets"],
        ),
        (
            "beyla:\n  restart:\n    max_rapid_failures: 0\n".into(),
            "beyla.restart.max_rapid_failures",
            &["from 1 to 1000"],
        ),
        (
            "beyla:\n  restart:\n    backoff_initial: 10s\n    backoff_max: 5s\n".into(),
            "beyla.restart.backoff_max",
            &["shorter than `beyla.restart.backoff_initial` (10s)"],
        ),
        (
            "beyla:\n  restart:\n    backoff_initial: 2m\n".into(),
            "beyla.restart.backoff_initial",
            &["backoff_max` (1m)"],
        ),
        (
            "beyla:\n  restart:\n    stable_after: 100ms\n".into(),
            "beyla.restart.stable_after",
            &["at least 1s"],
        ),
        (
            "beyla:\n  restart:\n    stop_timeout: 0s\n".into(),
            "beyla.restart.stop_timeout",
            &["at least 100ms"],
        ),
        (
            "beyla:\n  log_level: trace\n".into(),
            "beyla.log_level",
            &["debug, info, warn, error"],
        ),
    ];
    for (yaml, key, needles) in &cases {
        let err = agent_err(yaml);
        let msg = err.to_string();
        assert_eq!(err.key(), Some(*key), "{yaml}\n{msg}");
        assert!(err.line().is_some(), "{msg}");
        assert_contains_all(&msg, needles);
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

#[test]
fn colony_trace_keys_are_validated() {
    let cases = [
        (
            "storage:\n  beyla:\n    trace_sampling_rate: 0\n",
            "storage.beyla.trace_sampling_rate",
            "greater than 0",
        ),
        (
            "storage:\n  beyla:\n    trace_sampling_rate: 2\n",
            "storage.beyla.trace_sampling_rate",
            "at most 1",
        ),
        (
            "storage:\n  beyla:\n    trace_slow_threshold: 0s\n",
            "storage.beyla.trace_slow_threshold",
            "longer than 0",
        ),
        (
            "storage:\n  beyla:\n    trace_slow_threshold: slow\n",
            "storage.beyla.trace_slow_threshold",
            "\"500ms\"",
        ),
        (
            "storage:\n  beyla:\n    trace_sample_rate: 0.1\n",
            "storage.beyla.trace_sample_rate",
            "did you mean `trace_sampling_rate`?",
        ),
    ];
    for (yaml, key, needle) in cases {
        let err = colony_err(yaml);
        assert_eq!(err.key(), Some(key), "{err}");
        assert_eq!(err.line(), Some(3), "{err}");
        assert_contains_all(&err.to_string(), &["colony.yaml", needle]);
    }
    let cfg = common::load_colony_str("storage:\n  beyla:\n    trace_sampling_rate: 1\n").unwrap();
    assert_eq!(cfg.beyla_traces.rate, 1.0);
}
