//! Helpers shared by the config generation tests: loading the fixtures
//! and the run-time context of each golden case.

#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use coral_beyla::config_gen::GenContext;
use coral_config::{AgentConfig, AgentOverrides, BeylaConfig};
use serde_json::Value;

pub const ALL_PROTOCOLS: [&str; 5] = ["http", "grpc", "sql", "redis", "kafka"];

pub fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("tests/fixtures/config_gen")
}

pub fn load(case: &str) -> BeylaConfig {
    let path = dir().join(format!("{case}.agent.yaml"));
    let env = HashMap::from([("HOME".to_owned(), "/home/test".to_owned())]);
    AgentConfig::load(Some(&path), &env, &AgentOverrides::default())
        .unwrap_or_else(|e| panic!("{case}: {e}"))
        .beyla
}

pub fn ctx(
    protocols: &[&str],
    tracing: bool,
    ports: &[u16],
    exes: &[&str],
    id: &str,
) -> GenContext {
    GenContext {
        otlp_endpoint: "http://127.0.0.1:41234".to_owned(),
        exclude_exe_paths: exes.iter().map(|s| (*s).to_owned()).collect(),
        exclude_ports: ports.to_vec(),
        protocols: protocols.iter().map(|s| (*s).to_owned()).collect(),
        tracing,
        agent_id: id.to_owned(),
    }
}

/// The context each golden case is generated with.
pub fn case_ctx(case: &str) -> GenContext {
    let agent_ports = [4317, 4318, 9000, 9001, 9002, 41234];
    let exe = ["/usr/local/bin/coral"];
    match case {
        "full" => ctx(&ALL_PROTOCOLS, true, &agent_ports, &exe, "web-01"),
        "minimal" => ctx(&ALL_PROTOCOLS, true, &agent_ports, &exe, "web-01"),
        // A 4.18 kernel: HTTP and gRPC only, no traces.
        "limited" => ctx(&["http", "grpc"], false, &agent_ports, &exe, "rhel8-01"),
        "k8s" => ctx(
            &ALL_PROTOCOLS,
            true,
            &[],
            &["/usr/local/bin/coral-agent", "/coral/bin/coral"],
            "node-7",
        ),
        other => panic!("unknown case {other}"),
    }
}

/// Parses generated YAML into JSON values (also checks that it is YAML).
pub fn parse(yaml: &str) -> Value {
    serde_saphyr::from_str::<Value>(yaml).expect("generated YAML parses")
}
