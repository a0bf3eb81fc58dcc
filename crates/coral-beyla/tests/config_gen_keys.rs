//! The rule that every `beyla:` key reaches Beyla, is enforced by Coral
//! ([`CORAL_SIDE_KEYS`]), or is rejected when the file is loaded — none is
//! silently ignored. The input is `tests/fixtures/config_gen/full.agent.yaml`.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use common::{case_ctx, dir, load, parse};
use coral_beyla::config_gen::{CORAL_SIDE_KEYS, generate};
use coral_config::{AgentConfig, AgentOverrides};
use serde_json::{Value, json};

/// Where a user key of `full.agent.yaml` ends up.
enum Dest {
    /// The generated file has this value at this JSON pointer.
    Yaml(&'static str, Value),
    /// The array at this pointer contains this value.
    YamlHas(&'static str, Value),
    /// This environment variable contains this text.
    Env(&'static str, &'static str),
    /// Accepted only with Beyla's default value, so nothing is written.
    BeylaDefault,
}

#[test]
fn every_user_key_reaches_beyla_or_coral() {
    use Dest::*;
    let table: Vec<(&str, Dest)> = vec![
        (
            "beyla.discovery.services[0].name",
            Yaml("/discovery/instrument/0/name", json!("checkout-api")),
        ),
        (
            "beyla.discovery.services[0].open_port",
            Yaml("/discovery/instrument/0/open_ports", json!("8080")),
        ),
        (
            "beyla.discovery.services[0].k8s_pod_name",
            Yaml("/discovery/instrument/0/k8s_pod_name", json!("checkout-*")),
        ),
        (
            "beyla.discovery.services[1].name",
            Yaml("/discovery/instrument/1/name", json!("payments-api")),
        ),
        (
            "beyla.discovery.services[1].k8s_namespace",
            Yaml("/discovery/instrument/1/k8s_namespace", json!("prod")),
        ),
        (
            "beyla.discovery.services[1].k8s_pod_label.app",
            Yaml(
                "/discovery/instrument/1/k8s_pod_labels/app",
                json!("payments"),
            ),
        ),
        (
            "beyla.discovery.services[2].name",
            Yaml("/discovery/instrument/2/name", json!("inventory")),
        ),
        (
            "beyla.discovery.services[2].exe_path",
            Yaml("/discovery/instrument/2/exe_path", json!("*inventory*")),
        ),
        (
            "beyla.discovery.services[2].open_port",
            Yaml(
                "/discovery/instrument/2/open_ports",
                json!("9000-9010,9100"),
            ),
        ),
        (
            "beyla.discovery.services[3].process_name",
            Yaml("/discovery/instrument/3/exe_path", json!("*/billing")),
        ),
        (
            "beyla.protocols.http.enabled",
            YamlHas("/otel_metrics_export/instrumentations", json!("http")),
        ),
        ("beyla.protocols.http.capture_headers", BeylaDefault),
        (
            "beyla.protocols.http.route_patterns[0]",
            Yaml("/routes/patterns/0", json!("/api/v1/users/:id")),
        ),
        (
            "beyla.protocols.http.route_patterns[1]",
            Yaml("/routes/patterns/1", json!("/api/v1/orders/{id}")),
        ),
        (
            "beyla.protocols.http.unmatched_routes",
            Yaml("/routes/unmatched", json!("heuristic")),
        ),
        (
            "beyla.protocols.grpc.enabled",
            YamlHas("/otel_traces_export/instrumentations", json!("grpc")),
        ),
        (
            "beyla.protocols.sql.enabled",
            YamlHas("/attributes/select/traces/include", json!("db.query.text")),
        ),
        (
            "beyla.protocols.kafka.enabled",
            YamlHas("/otel_metrics_export/instrumentations", json!("kafka")),
        ),
        (
            "beyla.protocols.redis.enabled",
            YamlHas("/otel_traces_export/instrumentations", json!("redis")),
        ),
        (
            "beyla.attributes.environment",
            Env("OTEL_RESOURCE_ATTRIBUTES", "environment=production"),
        ),
        (
            "beyla.attributes.cluster",
            Env("OTEL_RESOURCE_ATTRIBUTES", "cluster=us-west-2"),
        ),
        (
            "beyla.attributes.colony_id",
            Env("OTEL_RESOURCE_ATTRIBUTES", "colony_id=colony-abc123"),
        ),
        (
            "beyla.attributes.team",
            Env("OTEL_RESOURCE_ATTRIBUTES", "team=payments%20%26%20billing"),
        ),
        (
            "beyla.sampling.rate",
            Yaml("/otel_traces_export/sampler/arg", json!("0.25")),
        ),
        (
            "beyla.limits.wakeup_len",
            Yaml("/ebpf/wakeup_len", json!(64)),
        ),
        (
            "beyla.export_interval",
            Yaml("/otel_metrics_export/interval", json!("30s")),
        ),
        ("beyla.log_level", Yaml("/log_level", json!("DEBUG"))),
    ];
    let text = std::fs::read_to_string(dir().join("full.agent.yaml")).unwrap();
    let mut leaves = BTreeMap::new();
    flatten("", &parse(&text)["beyla"], &mut leaves);
    let g = generate(&load("full"), &case_ctx("full")).unwrap();
    let doc = parse(&g.yaml);
    let env: HashMap<_, _> = g.env.iter().cloned().collect();
    for path in leaves.keys().map(|p| format!("beyla{p}")) {
        let coral_side = CORAL_SIDE_KEYS
            .iter()
            .any(|(k, _)| path == *k || path.starts_with(&format!("{k}.")));
        let mapped = table.iter().find(|(k, _)| *k == path);
        assert!(
            coral_side ^ mapped.is_some(),
            "{path}: must be either mapped to Beyla (table) or enforced by Coral (CORAL_SIDE_KEYS)"
        );
        let Some((_, dest)) = mapped else { continue };
        match dest {
            Yaml(p, v) => assert_eq!(doc.pointer(p), Some(v), "{path} → {p}"),
            YamlHas(p, v) => {
                let list = doc.pointer(p).and_then(Value::as_array);
                assert!(list.is_some_and(|l| l.contains(v)), "{path} → {p} has {v}")
            }
            Env(var, needle) => assert!(env[*var].contains(needle), "{path} → {var}"),
            BeylaDefault => assert!(!g.yaml.contains("payload_extraction"), "{path}"),
        }
    }
    // No table entry is stale.
    for (k, _) in &table {
        assert!(
            leaves.contains_key(&k["beyla".len()..]),
            "{k} is not in full.agent.yaml"
        );
    }
    // The rest is rejected when loaded (with a reason), never ignored.
    for yaml in [
        "beyla:\n  limits:\n    max_traced_connections: 1000\n",
        "beyla:\n  limits:\n    ring_buffer_size: 65536\n",
        "beyla:\n  protocols:\n    http:\n      capture_headers: true\n",
    ] {
        let env = HashMap::from([("HOME".to_owned(), "/h".to_owned())]);
        let err =
            AgentConfig::from_yaml_str(yaml, Path::new("a.yaml"), &env, &AgentOverrides::default())
                .unwrap_err();
        assert!(err.to_string().contains("—"), "{err}");
    }
}

/// Dotted leaf paths (`.a.b[0].c`) of a parsed YAML value.
fn flatten(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                flatten(&format!("{prefix}.{k}"), v, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{i}]"), v, out);
            }
        }
        leaf => {
            out.insert(prefix.to_owned(), leaf.clone());
        }
    }
}
