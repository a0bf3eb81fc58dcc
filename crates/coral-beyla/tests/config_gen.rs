//! Golden tests of the generated Beyla configuration (the rule that every
//! `beyla:` key reaches Beyla or Coral is in `config_gen_keys.rs`).
//!
//! Inputs are `tests/fixtures/config_gen/<case>.agent.yaml`; the expected
//! outputs are `<case>.beyla.yaml` (the file) and `<case>.env` (the
//! environment, one `NAME=value` per line). `CORAL_BLESS=1 cargo test -p
//! coral-beyla --test config_gen` rewrites the expected outputs.

mod common;

use std::path::Path;

use common::{case_ctx, dir, load, parse};
use coral_beyla::config_gen::{GenError, Generated, generate, overrides_generated_config};
use serde_json::json;

fn env_text(g: &Generated) -> String {
    g.env.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

fn check_golden(path: &Path, actual: &str) {
    if std::env::var_os("CORAL_BLESS").is_some() {
        std::fs::write(path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with CORAL_BLESS=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs (run with CORAL_BLESS=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}

#[test]
fn golden_files() {
    for case in ["full", "minimal", "limited", "k8s"] {
        let g = generate(&load(case), &case_ctx(case)).unwrap_or_else(|e| panic!("{case}: {e}"));
        check_golden(&dir().join(format!("{case}.beyla.yaml")), &g.yaml);
        check_golden(&dir().join(format!("{case}.env")), &env_text(&g));
        // Deterministic and valid YAML; inherited values of every variable
        // Coral sets are stripped by the supervisor before Coral's are added.
        assert_eq!(generate(&load(case), &case_ctx(case)).unwrap(), g, "{case}");
        assert!(parse(&g.yaml).is_object(), "{case}");
        for (name, _) in &g.env {
            assert!(overrides_generated_config(name), "{name}");
        }
    }
}

#[test]
fn structure_of_the_full_example() {
    let g = generate(&load("full"), &case_ctx("full")).unwrap();
    let doc = parse(&g.yaml);
    let at = |p: &str| {
        doc.pointer(p)
            .unwrap_or_else(|| panic!("{p} missing:\n{}", g.yaml))
            .clone()
    };
    // Strings that look like numbers stay strings.
    assert_eq!(at("/discovery/instrument/0/open_ports"), json!("8080"));
    assert_eq!(at("/discovery/instrument/3/exe_path"), json!("*/billing"));
    assert_eq!(
        at("/discovery/exclude_instrument"),
        json!([
            {"exe_path": "/usr/local/bin/coral"},
            {"exe_path": "*beyla"},
            {"exe_path": "*coral*"},
            {"open_ports": "4317-4318,9000-9002,41234"},
        ])
    );
    assert_eq!(at("/otel_metrics_export/protocol"), json!("http/protobuf"));
    assert_eq!(
        at("/otel_metrics_export/endpoint"),
        json!("http://127.0.0.1:41234")
    );
    assert_eq!(
        at("/otel_traces_export/sampler"),
        json!({"name": "traceidratio", "arg": "0.25"})
    );
    assert_eq!(
        at("/attributes/select/traces/include"),
        json!(["db.query.text"])
    );
    assert!(
        doc.pointer("/otel_metrics_export/buckets").is_none(),
        "Beyla's buckets"
    );
}

#[test]
fn limited_kernel_intersects_protocols_and_drops_traces() {
    let g = generate(&load("limited"), &case_ctx("limited")).unwrap();
    let doc = parse(&g.yaml);
    assert_eq!(
        doc["otel_metrics_export"]["instrumentations"],
        json!(["http", "grpc"])
    );
    assert!(doc.get("otel_traces_export").is_none());
    assert!(
        doc.get("attributes").is_none(),
        "no db.query.text without sql and traces"
    );
    // Nothing enabled is allowed: a clear error, not an empty Beyla.
    let mut cfg = load("limited");
    cfg.protocols.http.enabled = false;
    cfg.protocols.grpc = false;
    let err = generate(&cfg, &case_ctx("limited")).unwrap_err();
    assert!(matches!(err, GenError::NoProtocols { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("[sql, redis]") && msg.contains("[http, grpc]"),
        "{msg}"
    );
}

#[test]
fn defaults_instrument_every_listening_process_with_always_on() {
    let doc = parse(
        &generate(&load("minimal"), &case_ctx("minimal"))
            .unwrap()
            .yaml,
    );
    assert_eq!(
        doc["discovery"]["instrument"],
        json!([{"open_ports": "1-65535"}])
    );
    assert_eq!(
        doc["otel_traces_export"]["sampler"],
        json!({"name": "always_on"})
    );
    assert_eq!(doc["routes"], json!({"unmatched": "low-cardinality"}));
    assert_eq!(doc["otel_metrics_export"]["interval"], json!("15s"));
    assert_eq!(doc["log_level"], json!("INFO"));
}

#[test]
fn context_errors() {
    let cfg = load("full");
    let mut c = case_ctx("full");
    c.otlp_endpoint = "127.0.0.1:41234".into();
    assert!(matches!(
        generate(&cfg, &c),
        Err(GenError::InvalidEndpoint { .. })
    ));
    c.otlp_endpoint = "http://127.0.0.1:41234/v1/metrics".into();
    assert!(
        generate(&cfg, &c)
            .unwrap_err()
            .to_string()
            .contains("without a path")
    );
    let mut disabled = cfg.clone();
    disabled.enabled = false;
    assert!(matches!(
        generate(&disabled, &case_ctx("full")),
        Err(GenError::Disabled)
    ));
    // A selector whose only port is Coral's can never match.
    let mut c = case_ctx("full");
    c.exclude_ports.push(8080);
    let err = generate(&cfg, &c).unwrap_err();
    assert!(
        matches!(err, GenError::OnlyCoralPorts { index: 0, .. }),
        "{err}"
    );
    assert!(
        err.to_string().contains("services[0]` selects ports 8080"),
        "{err}"
    );
}
