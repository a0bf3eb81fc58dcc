//! `coral up` with a stand-in Beyla found through `BEYLA_PATH`, and the
//! Beyla query commands run as the built binary: exact request and error
//! counts, histogram percentiles, trace trees.
//!
//! The stand-in (`coral-agent/tests/fixtures/beyla-standin`) needs Python with
//! the OpenTelemetry SDK and PyYAML (`.ci/run` makes a venv under
//! `$HOME/.cache/coral/venv-interop`; `CORAL_PYTHON` names another). Without
//! one the test says so and passes, unless `CORAL_REQUIRE_PYTHON_INTEROP=1`.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{json, python, repo_file, run, standin_beyla, up_command, wait_for};

#[test]
fn up_runs_beyla_from_beyla_path_and_the_queries_show_exact_numbers() {
    let Some(python) =
        python("yaml, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http.metric_exporter")
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let beyla = standin_beyla(dir.path(), &python, "STANDIN_PERIODIC=0 STANDIN_EXPORTS=1");

    let mut child = up_command(&dir.path().join("home"), "beyla-host", &beyla)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut colony, mut banner) = (String::new(), String::new());
    let (mut grpc, mut http) = (String::new(), String::new());
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(v) = line.trim().strip_prefix("colony API:") {
            colony = v.trim().to_owned();
        }
        if let Some(v) = line.trim().strip_prefix("OTLP gRPC:") {
            grpc = v.trim().to_owned();
        }
        if let Some(v) = line.trim().strip_prefix("OTLP HTTP:") {
            http = v.trim().trim_start_matches("http://").to_owned();
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    assert!(
        banner.contains(&format!("({})", beyla.display())),
        "the banner names the Beyla binary found through BEYLA_PATH:\n{banner}"
    );

    // An application instrumented with the OpenTelemetry Python SDK, next to
    // Beyla: 50 SERVER spans per exporter, every 10th an error.
    let sdk = repo_file("../coral-agent/tests/interop/export_spans.py");
    let out = Command::new(&python)
        .arg(&sdk)
        .args([&grpc, &http, "50"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The stand-in exports one round; its minute is written once it closes.
    let q = |what: &str| {
        json(&[
            "query", "beyla", what, "checkout", "--colony", &colony, "-o", "json", "--since", "10m",
        ])
    };
    wait_for(
        "Beyla HTTP metrics at the colony",
        Duration::from_secs(150),
        || q("http")["overall"]["requests"] == 120,
    );
    let http = q("http");
    assert_eq!(http["service"], "checkout");
    let routes = http["routes"].as_array().unwrap();
    assert_eq!(routes[0]["method"], "GET");
    assert_eq!(routes[0]["route"], "/api/users/:id");
    assert_eq!(routes[0]["requests"], 100);
    assert_eq!(routes[0]["errors"], 10);
    assert_eq!(routes[0]["error_rate"], 0.1);
    // 90 values of 28–32 ms and 10 of 280–320 ms: p95 is in (250, 500] and
    // clamped to the observed max.
    let p95 = routes[0]["p95_ms"].as_f64().unwrap();
    assert!((250.0..=320.0).contains(&p95), "{p95}");
    assert_eq!(routes[1]["route"], "/api/orders");
    assert_eq!(routes[1]["requests"], 20);
    assert_eq!(routes[1]["errors"], 0);
    assert_eq!(http["overall"]["errors"], 10);

    let (code, table, _) = run(&[
        "query", "beyla", "http", "checkout", "--colony", &colony, "--since", "10m",
    ]);
    assert_eq!(code, Some(0));
    assert!(
        table.starts_with("Service: checkout (last 10 minutes, Beyla HTTP metrics)"),
        "{table}"
    );
    assert!(table.contains("GET /api/users/:id | 100 "), "{table}");
    assert!(table.contains("Overall: 120 requests"), "{table}");

    let (_, errors_only, _) = run(&[
        "query", "beyla", "http", "checkout", "--colony", &colony, "--since", "10m", "--status",
        "5xx", "-o", "csv",
    ]);
    assert!(
        errors_only.contains("\nGET,/api/users/:id,10,10,1,"),
        "{errors_only}"
    );

    let grpc = q("grpc");
    assert_eq!(
        grpc["methods"][0]["method"],
        "/payments.PaymentService/Charge"
    );
    assert_eq!(grpc["methods"][0]["requests"], 45);
    assert_eq!(grpc["methods"][0]["errors"], 5);
    let sql = q("sql");
    assert_eq!(sql["operations"][0]["operation"], "SELECT");
    assert_eq!(sql["operations"][0]["table"], "orders");
    assert_eq!(sql["operations"][0]["queries"], 50);

    let services = json(&[
        "query", "services", "--colony", &colony, "-o", "json", "--since", "10m",
    ]);
    let checkout = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "checkout" && s["source"] == "beyla")
        .expect("checkout from Beyla");
    assert_eq!(checkout["requests"], 165, "120 HTTP + 45 gRPC");
    wait_for(
        "the SDK's spans at the colony",
        Duration::from_secs(60),
        || {
            let services = json(&[
                "query", "services", "--colony", &colony, "-o", "json", "--since", "10m",
            ]);
            services["services"].as_array().unwrap().iter().any(|s| {
                s["service"] == "py-grpc"
                    && s["source"] == "otlp"
                    && s["requests"] == 50
                    && s["errors"] == 5
            })
        },
    );
    let (code, table, _) = run(&["query", "services", "--colony", &colony, "--since", "10m"]);
    assert_eq!(code, Some(0));
    assert!(table.contains("checkout  beyla"), "{table}");
    assert!(table.contains("py-http   otlp    50"), "{table}");

    let list = json(&[
        "query",
        "beyla",
        "traces",
        "--service",
        "checkout",
        "--since",
        "10m",
        "--colony",
        &colony,
        "--format",
        "json",
    ]);
    let traces = list["traces"].as_array().unwrap();
    assert_eq!(traces.len(), 8);
    assert!(
        traces
            .iter()
            .all(|t| t["sources"] == serde_json::json!(["beyla"]))
    );
    let (code, tree, stderr) = run(&[
        "query",
        "beyla",
        "traces",
        "--trace-id",
        "eba013aab682694f4d679cb66b6e7306",
        "--colony",
        &colony,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        tree.contains(
            "Trace eba013aab682694f4d679cb66b6e7306\nDuration 28ms, critical path 28ms; 2 spans from beyla on 1 agent\n"
        ),
        "{tree}"
    );
    // The query (4 ms, centred) is on the critical path; the server span's
    // own time is the other 24 ms.
    let line = |needle: &str| {
        tree.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in:\n{tree}"))
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert!(
        line("GET /api/users/:id").ends_with("◆ 28ms 24ms 100% beyla beyla-host"),
        "{tree}"
    );
    assert!(
        line("SELECT orders").ends_with("◆ 4.00ms 4.00ms 14% beyla beyla-host"),
        "{tree}"
    );

    let agents = json(&["agents", "--colony", &colony, "-o", "json"]);
    assert_eq!(agents["agents"][0]["beyla"]["state"], "running");

    // A short tap: plain output when piped, and the session saved as JSON.
    let sessions = dir.path().join("sessions");
    let (code, tap, stderr) = run(&[
        "tap",
        "checkout",
        "--duration",
        "2s",
        "--interval",
        "1s",
        "--window",
        "10m",
        "--colony",
        &colony,
        "--out-dir",
        sessions.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(tap.contains("  GET /api/users/:id: "), "{tap}");
    assert!(tap.contains("10.0% errors"), "{tap}");
    assert!(!tap.contains('\x1b'), "no escape codes when piped: {tap}");
    let saved: Vec<_> = std::fs::read_dir(&sessions)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(saved.len(), 1);
    assert!(
        saved[0]
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("tap-")
    );
    let session: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(saved[0].join("session.json")).unwrap())
            .unwrap();
    assert_eq!(session["service"], "checkout");
    let last = session["snapshots"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    let get = last["http"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["route"] == "/api/users/:id")
        .unwrap()
        .clone();
    assert_eq!(get["requests"], 100);
    assert_eq!(get["errors"], 10);
    assert_eq!(
        last["traces"].as_array().unwrap().len(),
        5,
        "the five slowest of 8"
    );

    let (code, completion, _) = run(&["completions", "bash"]);
    assert_eq!(code, Some(0));
    assert!(completion.contains("coral"), "{completion}");
    let (code, _, usage) = run(&["query", "beyla", "http"]);
    assert_eq!(code, Some(2), "usage errors exit 2: {usage}");

    let ok = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    assert!(child.wait().unwrap().success());
}
