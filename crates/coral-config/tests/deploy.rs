//! The files under `deploy/`: the configurations they ship load with the
//! real parser (the systemd examples, and those inside the Kubernetes
//! ConfigMaps, with the flags their units and manifests pass), and every
//! file passes `scripts/validate-deploy.py`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::home_env;
use coral_config::{AgentConfig, AgentMode, AgentOverrides, ColonyConfig, ColonyOverrides};

fn deploy(relative: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("../../deploy")
        .join(relative)
}

/// `text` with its token file pointed at a real one.
fn with_token(text: &str, token: &Path) -> String {
    text.replace("/etc/coral/token", token.to_str().unwrap())
}

fn agent(text: &str, origin: &str, mode: Option<AgentMode>) -> AgentConfig {
    let overrides = AgentOverrides {
        mode,
        ..AgentOverrides::default()
    };
    AgentConfig::from_yaml_str(text, Path::new(origin), &home_env(), &overrides)
        .unwrap_or_else(|e| panic!("{origin}: {e}"))
}

fn colony(text: &str, origin: &str) -> ColonyConfig {
    ColonyConfig::from_yaml_str(
        text,
        Path::new(origin),
        &home_env(),
        &ColonyOverrides::default(),
    )
    .unwrap_or_else(|e| panic!("{origin}: {e}"))
}

#[test]
fn the_systemd_examples_load() {
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret\n").unwrap();
    let read = |name: &str| with_token(&std::fs::read_to_string(deploy(name)).unwrap(), &token);

    let a = agent(&read("systemd/agent.yaml"), "agent.yaml", None);
    assert_eq!(a.mode, AgentMode::Agent);
    assert!(a.beyla.enabled);
    assert!(a.colony.is_some(), "the agent registers with a colony");

    let f = agent(
        &read("systemd/forwarder.yaml"),
        "forwarder.yaml",
        Some(AgentMode::Forwarder),
    );
    assert_eq!(f.mode, AgentMode::Forwarder);
    assert_eq!(f.data_dir, Path::new("/var/lib/coral/forwarder"));

    colony(&read("systemd/colony.yaml"), "colony.yaml");
}

/// One document of a manifest: only what a ConfigMap needs.
#[derive(serde::Deserialize)]
struct Manifest {
    kind: String,
    #[serde(default)]
    data: BTreeMap<String, String>,
}

fn config_maps(file: &str) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(deploy(file)).unwrap();
    let docs: Vec<Manifest> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    docs.into_iter()
        .filter(|d| d.kind == "ConfigMap")
        .flat_map(|d| d.data)
        .collect()
}

#[test]
fn the_kubernetes_config_maps_load() {
    let agent_maps = config_maps("kubernetes/agent-daemonset.yaml");
    let a = agent(&agent_maps["agent.yaml"], "agent-daemonset.yaml", None);
    assert!(a.beyla.enabled, "the DaemonSet's agents run Beyla");
    let colony_maps = config_maps("kubernetes/colony.yaml");
    colony(&colony_maps["colony.yaml"], "colony.yaml (ConfigMap)");
}

/// The Python `.ci/run` installs (`CORAL_PYTHON`, else its venv), when it
/// has the validator's packages; `None` skips with a message, unless
/// `CORAL_REQUIRE_PYTHON_INTEROP=1`.
fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("CORAL_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/coral/venv-interop/bin/python"))
        })?;
    let ok = std::process::Command::new(&candidate)
        .args(["-c", "import yaml, kubernetes_validate, check_jsonschema"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CORAL_REQUIRE_PYTHON_INTEROP").as_deref() != Ok("1"),
            "the deploy validator needs Python with kubernetes-validate and check-jsonschema: run .ci/run or set CORAL_PYTHON"
        );
        eprintln!("skipped: no Python with kubernetes-validate and check-jsonschema");
        return None;
    }
    Some(candidate)
}

/// Every file under `deploy/` passes `scripts/validate-deploy.py`: the
/// Kubernetes manifests against the schemas of every supported version,
/// the systemd units with `systemd-analyze verify`, the compose file
/// against the compose-spec schema, the collector snippet's pipelines, the
/// Dockerfile's stages, the Prometheus config, alert rules and their unit
/// tests with promtool, the Grafana dashboard, and Coral's wiring in each (a missing external tool
/// is a skip the script prints).
#[test]
fn the_deploy_files_validate() {
    let Some(python) = python() else {
        return;
    };
    let script = deploy("../scripts/validate-deploy.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "{}\n{stdout}\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(" 0 failed"), "{stdout}");
    // deploy/prometheus and the dashboard's queries need promtool, which CI
    // installs (Debian's prometheus package): there it must not be skipped.
    if std::env::var("CORAL_REQUIRE_PROMETHEUS").as_deref() == Ok("1") {
        let skipped: Vec<&str> = stdout
            .lines()
            .filter(|l| l.starts_with("SKIP") && l.contains("promtool"))
            .collect();
        assert!(skipped.is_empty(), "promtool is required: {skipped:?}");
    }
}
