//! `coral ask` end to end with the built binary: `coral up`, then OTLP/JSON
//! of a small application sent to its agent over HTTP, and the questions.
//!
//! The application, every minute of two windows in the past (the agent
//! aggregates late spans into their own minutes):
//!
//! ```text
//! checkout SERVER GET /checkout           entry, 5 ms of its own
//! └ checkout CLIENT POST /pay             1 ms
//!   └ payments SERVER POST /pay           4 ms of its own
//!     └ payments CLIENT POST /validate    1 ms
//!       └ card-validator SERVER POST /validate   20-30 ms; +150 ms in the incident
//! catalog SERVER GET /items               12-18 ms, unchanged (the healthy control)
//! ```
//!
//! Baseline: 40 to 10 minutes ago; incident: the last 8 closed minutes; 20
//! checkout and 20 catalog requests a minute. The agent keeps every trace
//! (`sample_rate: 1.0`). `coral ask "why is checkout slow?"` must name
//! card-validator first with the chain checkout → payments →
//! card-validator, and every trace id it cites must open with `coral query
//! traces --trace-id`; catalog has `no_regression`; unreadable questions
//! and unknown services exit 2, an unreachable colony 1.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::{Process, value_after};
use common::{coral, json, run, up_command, wait_for};
use serde_json::Value;

const PER_MINUTE: u64 = 20;
const BASELINE_MINUTES: (i64, i64) = (40, 10);
const INCIDENT_MINUTES: i64 = 8;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [lo, hi).
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() % 10_000) as f64 / 10_000.0 * (hi - lo)
    }
}

/// One span as OTLP/JSON.
#[allow(clippy::too_many_arguments)]
fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    kind: u8,
    start_ns: u64,
    end_ns: u64,
    route: Option<&str>,
) -> String {
    let attributes = route.map_or(String::new(), |r| {
        format!(r#","attributes":[{{"key":"http.route","value":{{"stringValue":"{r}"}}}}]"#)
    });
    format!(
        r#"{{"traceId":"{trace}","spanId":"{id}","parentSpanId":"{parent}","name":"{name}","kind":{kind},"startTimeUnixNano":"{start_ns}","endTimeUnixNano":"{end_ns}","status":{{"code":1}}{attributes}}}"#
    )
}

fn resource_spans(service: &str, spans: &[String]) -> String {
    format!(
        r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#,
        spans.join(",")
    )
}

const MS: u64 = 1_000_000;

/// The export of one minute starting at `minute` (Unix seconds); `slow`
/// adds 150 ms to card-validator.
fn minute_export(minute: i64, slow: bool, rng: &mut Rng, serial: &mut u64) -> String {
    let (mut checkout, mut payments, mut leaf, mut catalog) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..PER_MINUTE {
        *serial += 1;
        let n = *serial;
        // Spread over the minute, ending well before its end.
        let t0 = minute as u64 * 1_000_000_000 + i * 2_500 * MS;
        let trace = format!("{:016x}{:016x}", rng.next(), n);
        let id = |k: u64| format!("{:012x}{k:04x}", n);
        let leaf_ms = rng.between(20.0, 30.0) + if slow { 150.0 } else { 0.0 };
        let e_start = t0 + 8 * MS;
        let e_end = e_start + (leaf_ms * MS as f64) as u64;
        let d_end = e_end + MS;
        let c_end = d_end + 2 * MS;
        let b_end = c_end + MS;
        let a_end = b_end + 2 * MS;
        checkout.push(span(
            &trace,
            &id(1),
            "",
            "GET /checkout",
            2,
            t0,
            a_end,
            Some("/checkout"),
        ));
        checkout.push(span(
            &trace,
            &id(2),
            &id(1),
            "POST /pay",
            3,
            t0 + 3 * MS,
            b_end,
            None,
        ));
        payments.push(span(
            &trace,
            &id(3),
            &id(2),
            "POST /pay",
            2,
            t0 + 4 * MS,
            c_end,
            Some("/pay"),
        ));
        payments.push(span(
            &trace,
            &id(4),
            &id(3),
            "POST /validate",
            3,
            t0 + 7 * MS,
            d_end,
            None,
        ));
        leaf.push(span(
            &trace,
            &id(5),
            &id(4),
            "POST /validate",
            2,
            e_start,
            e_end,
            Some("/validate"),
        ));
        let c0 = t0 + 1_000 * MS;
        let c_ms = rng.between(12.0, 18.0);
        catalog.push(span(
            &format!("{:016x}{:016x}", rng.next(), n | 1 << 63),
            &id(6),
            "",
            "GET /items",
            2,
            c0,
            c0 + (c_ms * MS as f64) as u64,
            Some("/items"),
        ));
    }
    format!(
        r#"{{"resourceSpans":[{},{},{},{}]}}"#,
        resource_spans("checkout", &checkout),
        resource_spans("payments", &payments),
        resource_spans("card-validator", &leaf),
        resource_spans("catalog", &catalog)
    )
}

fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t as u64)).to_string()
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `coral ask question flags… --colony colony` from `cwd`.
fn ask(cwd: &Path, colony: &str, question: &str, flags: &[&str]) -> (Option<i32>, String, String) {
    let out = coral()
        .current_dir(cwd)
        .arg("ask")
        .arg(question)
        .args(flags)
        .args(["--colony", colony])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The trace ids an answer cites for its causes.
fn cited(answer: &Value) -> BTreeSet<String> {
    let ids: BTreeSet<&str> = answer["causes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["evidence"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    answer["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ids.contains(e["id"].as_str().unwrap()))
        .flat_map(|e| e["trace_ids"].as_array().unwrap())
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ask_names_the_slow_leaf_with_its_chain_and_traces_that_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.yaml");
    std::fs::write(
        &config,
        "agent:\n  telemetry:\n    filters:\n      - sample_rate: 1.0\n    aggregation:\n      flush_grace: 1s\n  host_metrics:\n    enabled: false\nbeyla:\n  enabled: false\n",
    )
    .unwrap();
    let mut cmd = up_command(
        &dir.path().join("home"),
        "ask-host",
        &dir.path().join("no-beyla"),
    );
    cmd.arg("--config").arg(&config);
    let mut up = Process::spawn(cmd, "-INT", dir.path().join("up.log"));
    let banner = up.banner(|l| l.contains("Ctrl-C"));
    let colony = value_after(&banner, "colony API:").to_owned();
    let http = value_after(&banner, "OTLP HTTP:").to_owned();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = now / 60 * 60;
    let incident = (end - INCIDENT_MINUTES * 60, end);
    let baseline = (end - BASELINE_MINUTES.0 * 60, end - BASELINE_MINUTES.1 * 60);
    let client = reqwest::blocking::Client::new();
    let (mut rng, mut serial) = (Rng(0x9e37_79b9_7f4a_7c15), 0u64);
    let mut minutes = 0u64;
    for minute in (baseline.0..baseline.1)
        .step_by(60)
        .chain((incident.0..incident.1).step_by(60))
    {
        let body = minute_export(minute, minute >= incident.0, &mut rng, &mut serial);
        let response = client
            .post(format!("{http}/v1/traces"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(response.status(), 200, "{:?}", response.text());
        minutes += 1;
    }
    let requests = minutes * PER_MINUTE;

    // Every request's RED and every kept trace at the colony.
    wait_for(
        "the colony to hold the data",
        Duration::from_secs(120),
        || {
            let (code, out, _) = run(&[
                "query", "services", "--since", "1h", "-o", "json", "--colony", &colony,
            ]);
            if code != Some(0) {
                return false;
            }
            let v: Value = serde_json::from_str(&out).unwrap();
            let all_red = ["checkout", "payments", "card-validator", "catalog"]
                .iter()
                .all(|s| {
                    v["services"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r["service"] == *s && r["requests"].as_u64() == Some(requests))
                });
            all_red && {
                let traces = json(&[
                    "query",
                    "traces",
                    "--service",
                    "card-validator",
                    "--since",
                    "1h",
                    "--limit",
                    "1000",
                    "-o",
                    "json",
                    "--colony",
                    &colony,
                ]);
                traces["traces"].as_array().unwrap().len() as u64 == requests
            }
        },
    );

    let windows = [
        "--from".to_owned(),
        rfc3339(incident.0),
        "--to".to_owned(),
        rfc3339(incident.1),
        "--baseline-from".to_owned(),
        rfc3339(baseline.0),
        "--baseline-to".to_owned(),
        rfc3339(baseline.1),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        windows
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| (*s).to_owned()))
            .collect()
    };

    // The slow leaf, first, with its chain; evidence saved where asked.
    let saved = dir.path().join("saved");
    let args = with(&["-o", "json", "--save", saved.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = ask(dir.path(), &colony, "why is checkout slow?", &args);
    assert_eq!(code, Some(0), "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(answer["version"], 1);
    assert_eq!(answer["verdict"], "regression", "{answer:#}");
    assert_eq!(answer["target"]["service"], "checkout");
    assert_eq!(answer["target"]["symptom"], "latency");
    assert_eq!(answer["windows"]["incident"]["from"], rfc3339(incident.0));
    assert_eq!(answer["windows"]["baseline"]["to"], rfc3339(baseline.1));
    let first = &answer["causes"][0];
    assert_eq!(first["service"], "card-validator", "{answer:#}");
    assert_eq!(first["operation"], "POST /validate");
    assert_eq!(
        first["chain"],
        serde_json::json!(["checkout", "payments", "card-validator"])
    );
    assert!(first["explains_pct"].as_f64().unwrap() >= 80.0, "{first}");
    for c in answer["causes"].as_array().unwrap() {
        assert_ne!(c["service"], "catalog", "the control is never a cause");
    }
    let traces = cited(&answer);
    assert!(!traces.is_empty(), "the causes cite traces: {answer:#}");
    for id in traces.iter().take(10) {
        let t = json(&[
            "query",
            "traces",
            "--trace-id",
            id,
            "-o",
            "json",
            "--colony",
            &colony,
        ]);
        assert_eq!(t["trace_id"], id.as_str());
        let services: BTreeSet<&str> = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["service"].as_str().unwrap())
            .collect();
        assert!(services.contains("card-validator"), "{t:#}");
    }
    let line = err.lines().last().unwrap_or_default();
    let path = line
        .strip_prefix("evidence saved to ")
        .unwrap_or_else(|| panic!("no evidence path in {err:?}"));
    assert!(
        Path::new(path).starts_with(&saved),
        "{path} is under --save"
    );
    let file = Path::new(path).file_name().unwrap().to_str().unwrap();
    assert!(
        file.starts_with("ask-checkout-") && file.ends_with("Z.json"),
        "{file}"
    );
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(stored, answer);

    // Text, with the evidence under ./evidence/ by default: the path last.
    let args = with(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = ask(dir.path(), &colony, "why is checkout slow?", &args);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("{out}");
    assert!(out.starts_with("checkout: regression"), "{out}");
    assert!(
        out.contains("checkout → payments → card-validator"),
        "{out}"
    );
    assert!(out.contains("1. card-validator POST /validate"), "{out}");
    assert!(out.contains("reproduce: coral query"), "{out}");
    let last = out.lines().last().unwrap();
    let path = last
        .strip_prefix("evidence saved to ")
        .unwrap_or_else(|| panic!("last line: {last:?}"));
    assert!(path.starts_with("./evidence/ask-checkout-"), "{path}");
    assert!(dir.path().join(path).is_file());

    // The healthy control: no regression, no cause.
    let args = with(&["-o", "json", "--no-save"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = ask(dir.path(), &colony, "why is catalog slow?", &args);
    assert_eq!(code, Some(0), "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["verdict"], "no_regression", "{answer:#}");
    assert_eq!(answer["causes"], serde_json::json!([]));
    assert!(err.is_empty(), "--no-save saves nothing: {err}");

    // Questions Coral cannot use: exit 2 with the candidates or the forms.
    let (code, _, err) = ask(dir.path(), &colony, "why is shipping slow?", &["--no-save"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no service named \"shipping\"") && err.contains("checkout"),
        "{err}"
    );
    let (code, _, err) = ask(dir.path(), &colony, "hello there", &["--no-save"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("why is <service> slow?"), "{err}");
    let (code, _, err) = ask(
        dir.path(),
        &colony,
        "why is it slow?",
        &["--service", "nope-nothing", "--no-save"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no service named \"nope-nothing\""), "{err}");

    let saved_by_default = std::fs::read_dir(dir.path().join("evidence"))
        .unwrap()
        .count();
    assert_eq!(saved_by_default, 1, "nothing saved for refused questions");
    up.stop();

    // No colony: exit 1, saying so.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = ask(
        dir.path(),
        &nowhere,
        "why is checkout slow?",
        &["--no-save"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot reach colony"), "{err}");
    // A usage error needs no colony.
    let (code, _, err) = ask(dir.path(), &nowhere, "q", &["--since", "soon"]);
    assert_eq!(code, Some(2), "{err}");
}
