//! The other forms of question, thin data, and the renderers, on simulated
//! data.

use coral_diagnose::sim::eval::{ask, check_answer};
use coral_diagnose::sim::{App, Decoys, FaultKind, Scenario, SimConfig, simulate};
use coral_diagnose::{MemoryData, Request, Verdict, diagnose, render_json, render_text};

fn slow_leaf() -> coral_diagnose::sim::SimOutput {
    let scenario = Scenario {
        fault: FaultKind::SlowLeaf,
        magnitude: 150.0,
        seed: 42,
        decoys: Decoys::default(),
        fault_minutes: 10,
    };
    simulate(&App::shop(), &scenario, &SimConfig::default())
}

#[test]
fn other_forms_thin_data_and_renderers() {
    let sim = slow_leaf();

    let d = ask(&sim, "what's the slowest endpoint in checkout?");
    assert_eq!(d.endpoints[0].operation, "POST /api/checkout");
    assert!(d.endpoints[0].change_pct > 20.0);
    assert_eq!(d.target.operation.as_deref(), Some("POST /api/checkout"));
    assert_eq!(d.verdict, Verdict::Regression);
    assert_eq!(d.causes[0].service, "card-validator");
    assert!(check_answer(&d, &|t: &str| sim.data.has_trace(t)).is_empty());

    let d = ask(&sim, "what changed in checkout?");
    assert_eq!(d.target.symptom, "changes");
    assert!(
        d.changes.iter().any(|c| c.kind == "latency"),
        "{:?}",
        d.changes
    );
    assert!(d.causes.is_empty());

    let d = ask(&sim, "why is checkout slow?");
    let text = render_text(&d);
    assert!(text.starts_with("checkout: regression since"), "{text}");
    assert!(
        text.contains("checkout → payments → card-validator"),
        "{text}"
    );
    assert!(text.contains("reproduce: coral query"), "{text}");
    assert!(
        text.contains("ruled out:") && text.contains("coverage:"),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&render_json(&d)).unwrap();
    assert_eq!(json["version"], 1);
    assert_eq!(json["verdict"], "regression");
    assert_eq!(json["causes"][0]["chain"][2], "card-validator");
    assert!(
        json["evidence"][0]["reproduce"]
            .as_str()
            .unwrap()
            .starts_with("coral ")
    );

    // A healthy service in the same data: no cause.
    let d = ask(&sim, "why is recommendations slow?");
    assert_eq!(d.verdict, Verdict::NoRegression);
    assert!(d.causes.is_empty());
}

#[test]
fn thin_data_is_inconclusive_and_says_what_is_missing() {
    let empty = MemoryData::new();
    let d = diagnose(&empty, &Request::new("checkout", 1_795_003_200)).unwrap();
    assert_eq!(d.verdict, Verdict::Inconclusive);
    assert!(d.causes.is_empty());
    assert!(
        d.coverage
            .missing
            .iter()
            .any(|m| m.contains("requests of checkout"))
    );
    assert!(render_text(&d).contains("inconclusive"));
}

#[test]
fn the_json_document_reads_back_and_renders_the_same_text() {
    let sim = slow_leaf();
    for question in [
        "why is checkout slow?",
        "what's the slowest endpoint in checkout?",
        "what changed in checkout?",
    ] {
        let d = ask(&sim, question);
        let back: coral_diagnose::Diagnosis =
            serde_json::from_str(&render_json(&d)).unwrap_or_else(|e| panic!("{question}: {e}"));
        assert_eq!(render_text(&back), render_text(&d), "{question}");
        assert_eq!(render_json(&back), render_json(&d), "{question}");
    }
}
