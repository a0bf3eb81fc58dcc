//! One trace model across sources, end to end with the built binary: an
//! application instrumented with the OpenTelemetry Python SDK sends spans to
//! one agent (`sdk-host`), and the service it calls is seen only by Beyla on
//! another (`beyla-host`, the agent of `coral up`, running the Beyla
//! stand-in). The colony merges both into one tree by trace id; the test
//! checks parent links, sources, agents, self times on the critical path,
//! a span whose parent the agent did not keep, the trace list and RED per
//! operation, against numbers worked out by hand below.
//!
//! Needs Python with the OpenTelemetry SDK, both OTLP exporters and PyYAML
//! (`.ci/run` makes a venv under `$HOME/.cache/coral/venv-interop`;
//! `CORAL_PYTHON` names another). Without one the test says so and passes,
//! unless `CORAL_REQUIRE_PYTHON_INTEROP=1`.
//!
//! The spans (`coral-agent/tests/interop/export_trace.py` has the same table),
//! times in ms after `base`, the start of the minute two minutes ago (closed,
//! so its RED buckets are flushed at once):
//!
//! Trace `0af7651916cd43dd8448eb211c80319c`:
//!
//! ```text
//! A f00d000000000001 frontend SERVER   GET /checkout              0–100  otlp, root
//! B f00d000000000002 frontend CLIENT   POST /api/checkout        10–90   otlp, parent A
//! C 0d10dd7b515339d7 checkout SERVER   POST /api/checkout        15–85   beyla, parent B (traceparent)
//! F f00d000000000003 frontend CLIENT   GET /api/recommendations  20–60   otlp, parent A
//! D 808996114c4a69b6 checkout CLIENT   SELECT orders             35–65   beyla, parent C (centred child)
//! E f00d000000000004 frontend INTERNAL render                    92–125  otlp, parent A (outlives A)
//! ```
//!
//! (C and D's ids are the stand-in's: sha256 of
//! `coral-traces-test/1/checkout/0/0/span` and `…/child`, see its README.)
//!
//! Critical path (CRISP, back from A's end at 100; children clipped to
//! their parent; at each point the child that finished last by then):
//!
//! * A, cursor 100. E ends at 125, clipped to 92–100: A 0 ms there; into E
//!   (no children): **E self 8**. Cursor 92. B (10–90) ended by 92: A 92–90
//!   = 2 ms; into B. Cursor 10. F (20–60) had not started by 10: off the
//!   path. A 10–0 = 10 ms. **A self 12.**
//! * B on 10–90: C (15–85): B 90–85 = 5 ms; into C; cursor 15; B 15–10 =
//!   5 ms. **B self 10.**
//! * C on 15–85: D (35–65): C 85–65 = 20 ms; into D (**D self 30**); cursor
//!   35; C 35–15 = 20 ms. **C self 40.**
//! * **F self 0**, off the path.
//! * 12 + 8 + 10 + 40 + 30 = 100 = A's duration = critical_path_ms.
//!   duration_ms = 0 → 125 (E's end) = 125. 6 spans.
//!
//! No child overlaps the point the walk has reached when it is chosen (B
//! ends at 90, before E starts at 92), so the numbers are the same whether a
//! child still running at that point is clipped to it or passed over.
//!
//! Trace `ca000000000000000000000000000002` (`sdk-host` keeps only errors
//! and spans slower than 30 ms, no sampling):
//!
//! ```text
//! G ca00000000000001 frontend SERVER GET /cart      1000–1300  kept (latency)
//! H ca00000000000002 frontend CLIENT GET /api/cart  1100–1105  parent G; 5 ms, OK: not kept
//! I ca00000000000003 cart     SERVER GET /api/cart  1101–1104  parent H; HTTP 500: kept (error)
//! ```
//!
//! Stored: G and I; I's parent H is missing. 2 spans, duration 300, the
//! path is G alone (self 300), I is off it.
//!
//! RED per operation of `frontend` (every span counts, kept or not; the batch
//! adds single-span traces to `GET /checkout` and `GET /health`).
//! Percentiles are the sketch's: the value at 0-based rank ⌊q·(n−1)⌋ of the
//! sorted durations, within 1 %:
//!
//! ```text
//! operation                 kind      n    err  values (ms)                                   p50  p95  p99  min  max  total
//! GET /checkout             SERVER    100  3    10×45 20×45 30×6 100 (A) 250×3 (errors)       20   30   250  10   250  2380
//!                                             ranks: 10 at 0–44, 20 at 45–89, 30 at 90–95, 100 at 96, 250 at 97–99;
//!                                             p50 rank 49, p95 rank 94, p99 rank 98
//! GET /cart                 SERVER    1    0    300 (G)                                       300  300  300  300  300  300
//! GET /health               SERVER    50   0    1×20 2×25 5×5                                 2    5    5    1    5    95
//!                                             ranks: 1 at 0–19, 2 at 20–44, 5 at 45–49; p50 rank 24, p95 46, p99 48
//! POST /api/checkout        CLIENT    1    0    80 (B)                                        80   80   80   80   80   80
//! GET /api/recommendations  CLIENT    1    0    40 (F)                                        40   40   40   40   40   40
//! render                    INTERNAL  1    0    33 (E)                                        33   33   33   33   33   33
//! GET /api/cart             CLIENT    1    0    5 (H)                                         5    5    5    5    5    5
//! ```
//!
//! (sorted by total time, as the command prints them). The batch's three
//! 250 ms errors are kept as traces of their own, so `--service frontend`
//! lists 5 traces: G's (300 ms), the three errors (250 ms), A's (125 ms).

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::{Process, value_after, word_after};
use common::{coral, json, python, repo_file, run, standin_beyla, up_command, wait_for};
use serde_json::Value;

const CHECKOUT_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
const CART_TRACE: &str = "ca000000000000000000000000000002";
const A: &str = "f00d000000000001";
const B: &str = "f00d000000000002";
const F: &str = "f00d000000000003";
const E: &str = "f00d000000000004";
/// The stand-in's server span and its SQL child (seed `coral-traces-test`).
const C: &str = "0d10dd7b515339d7";
const D: &str = "808996114c4a69b6";
const G: &str = "ca00000000000001";
const H: &str = "ca00000000000002";
const I: &str = "ca00000000000003";

fn approx(v: &Value, expected: f64, tolerance: f64, what: &str) {
    let got = v
        .as_f64()
        .unwrap_or_else(|| panic!("{what}: not a number: {v}"));
    assert!(
        (got - expected).abs() <= tolerance,
        "{what}: {got}, expected {expected} ± {tolerance}"
    );
}

/// `coral query traces --trace-id id -o json`, or `None` while the colony
/// does not have it (exit 1).
fn trace(colony: &str, id: &str) -> Option<Value> {
    let (code, out, _) = run(&[
        "query",
        "traces",
        "--trace-id",
        id,
        "--colony",
        colony,
        "-o",
        "json",
    ]);
    if code != Some(0) {
        return None;
    }
    Some(serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}")))
}

fn span<'a>(trace: &'a Value, id: &str) -> &'a Value {
    trace["spans"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["span_id"] == id)
        .unwrap_or_else(|| panic!("no span {id} in {trace:#}"))
}

/// What the test knows of a span, from the table at the top.
struct Expected<'a> {
    id: &'static str,
    parent: &'static str,
    service: &'static str,
    operation: &'static str,
    kind: &'static str,
    start_ms: u64,
    duration_ms: f64,
    self_ms: f64,
    on_path: bool,
    source: &'static str,
    agent: &'static str,
    host: &'a str,
    keep_reason: &'static str,
}

fn check_span(trace: &Value, base: SystemTime, e: &Expected<'_>) {
    let s = span(trace, e.id);
    let what = |field: &str| format!("span {} ({}) {field}", e.id, e.operation);
    assert_eq!(s["parent_span_id"], e.parent, "{}", what("parent_span_id"));
    assert_eq!(s["service"], e.service, "{}", what("service"));
    assert_eq!(s["operation"], e.operation, "{}", what("operation"));
    assert_eq!(s["kind"], e.kind, "{}", what("kind"));
    assert_eq!(s["source"], e.source, "{}", what("source"));
    assert_eq!(s["agent_id"], e.agent, "{}", what("agent_id"));
    assert_eq!(s["host"], e.host, "{}", what("host"));
    assert_eq!(s["keep_reason"], e.keep_reason, "{}", what("keep_reason"));
    assert_eq!(
        s["on_critical_path"],
        e.on_path,
        "{}",
        what("on_critical_path")
    );
    approx(&s["duration_ms"], e.duration_ms, 1e-6, &what("duration_ms"));
    approx(&s["self_time_ms"], e.self_ms, 1e-6, &what("self_time_ms"));
    let start = humantime::parse_rfc3339_weak(s["start"].as_str().unwrap())
        .unwrap_or_else(|err| panic!("{}: {err}: {}", what("start"), s["start"]));
    assert_eq!(
        start,
        base + Duration::from_millis(e.start_ms),
        "{}",
        what("start")
    );
}

#[test]
fn sdk_and_beyla_spans_of_one_trace_open_as_one_tree_with_its_critical_path() {
    let Some(python) = python(
        "yaml, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http.trace_exporter, \
         opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let interop = repo_file("../coral-agent/tests");

    // Two minutes ago, aligned: every span lies in one minute that has closed.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let base_secs = (now / 60 - 2) * 60;
    let base = UNIX_EPOCH + Duration::from_secs(base_secs);
    let base_ns = base_secs * 1_000_000_000;

    // The Beyla-instrumented callee: one traced POST /api/checkout of 70 ms
    // at base + 15 ms, continuing the SDK's CLIENT span B, with a 30 ms SQL
    // child centred in it (35–65).
    let scenario = dir.path().join("scenario.json");
    std::fs::write(
        &scenario,
        serde_json::to_string_pretty(&serde_json::json!({
            "description": "checkout called by frontend (export_trace.py): continues its trace",
            "seed": "coral-traces-test",
            "services": [{
                "name": "checkout",
                "traffic": [{
                    "protocol": "http", "method": "POST", "route": "/api/checkout",
                    "status": 200, "count": 1, "duration_ms": 70, "traces": 1,
                    "traceparent": format!("00-{CHECKOUT_TRACE}-{B}-01"),
                    "start_unix_nano": base_ns + 15_000_000,
                    "child": {"system": "postgresql", "operation": "SELECT",
                              "table": "orders", "duration_ms": 30}
                }]
            }]
        }))
        .unwrap(),
    )
    .unwrap();
    let beyla = standin_beyla(
        dir.path(),
        &python,
        &format!(
            "STANDIN_PERIODIC=0 STANDIN_EXPORTS=1 STANDIN_SCENARIO={}",
            scenario.display()
        ),
    );
    let up_cmd = up_command(&dir.path().join("home"), "beyla-host", &beyla);
    let mut up = Process::spawn(up_cmd, "-INT", dir.path().join("up.log"));
    let banner = up.banner(|l| l.contains("Ctrl-C"));
    let colony = value_after(&banner, "colony API:").to_owned();
    assert!(
        banner
            .iter()
            .any(|l| l.contains(&format!("({})", beyla.display()))),
        "coral up runs the stand-in: {banner:?}"
    );

    // The SDK's host: its own agent, registered with the same colony. Only
    // errors and spans slower than 30 ms are kept; minutes flush 1 s after
    // they close.
    let config = dir.path().join("sdk-agent.yaml");
    std::fs::write(
        &config,
        format!(
            "agent:\n  id: sdk-host\n  data_dir: {}\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n    filters:\n      - always_capture: errors\n      - always_capture: latency_gt_ms:30\n    aggregation:\n      flush_grace: 1s\n  api:\n    endpoint: 127.0.0.1:0\n  admin:\n    endpoint: 127.0.0.1:0\n  host_metrics:\n    enabled: false\nbeyla:\n  enabled: false\n",
            dir.path().join("sdk-agent").display()
        ),
    )
    .unwrap();
    let mut agent_cmd = coral();
    agent_cmd
        .args(["agent", "serve", "--config"])
        .arg(&config)
        .args(["--colony-endpoint", &format!("http://{colony}")])
        .env("CORAL_HOME", dir.path().join("sdk-home"))
        .env_remove("BEYLA_PATH");
    let mut agent = Process::spawn(agent_cmd, "-TERM", dir.path().join("sdk-agent.log"));
    let listening = agent.banner(|l| l.contains(" listening: ")).pop().unwrap();
    let (grpc, http) = (
        word_after(&listening, "otlp-grpc=").to_owned(),
        word_after(&listening, "otlp-http=").to_owned(),
    );

    let out = Command::new(&python)
        .arg(interop.join("interop/export_trace.py"))
        .args([&grpc, &http, &base_ns.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "exported 156 spans"
    );

    // --- The cross-source trace: one tree. ---------------------------------
    let mut checkout = Value::Null;
    wait_for(
        "both agents' spans of the checkout trace at the colony",
        Duration::from_secs(150),
        || match trace(&colony, CHECKOUT_TRACE) {
            Some(t) if t["span_count"] == 6 => {
                checkout = t;
                true
            }
            _ => false,
        },
    );
    let t = &checkout;
    // Beyla's spans report the host Beyla runs on: the stand-in's host.name
    // is this machine's name, as is the agent's.
    let agents = json(&["agents", "--colony", &colony, "-o", "json"]);
    let beyla_host = agents["agents"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["agent_id"] == "beyla-host")
        .map(|a| a["hostname"].as_str().unwrap().to_owned())
        .unwrap_or_else(|| panic!("beyla-host in {agents:#}"));
    eprintln!("{t:#}");
    assert_eq!(t["trace_id"], CHECKOUT_TRACE);
    assert_eq!(t["truncated"], false);
    assert_eq!(t["spans"].as_array().unwrap().len(), 6);
    approx(&t["duration_ms"], 125.0, 1e-6, "duration_ms: 0 → 125");
    approx(
        &t["critical_path_ms"],
        100.0,
        1e-6,
        "critical_path_ms: A's duration",
    );
    let sdk = |id, parent, operation, kind, start_ms, duration_ms, self_ms, on_path| Expected {
        id,
        parent,
        service: "frontend",
        operation,
        kind,
        start_ms,
        duration_ms,
        self_ms,
        on_path,
        source: "otlp",
        agent: "sdk-host",
        host: "web-1",
        keep_reason: "latency",
    };
    let beyla_span = |id, parent, operation, kind, start_ms, duration_ms, self_ms| Expected {
        id,
        parent,
        service: "checkout",
        operation,
        kind,
        start_ms,
        duration_ms,
        self_ms,
        on_path: true,
        source: "beyla",
        agent: "beyla-host",
        host: &beyla_host,
        keep_reason: "beyla",
    };
    for e in [
        sdk(A, "", "GET /checkout", "server", 0, 100.0, 12.0, true),
        sdk(B, A, "POST /api/checkout", "client", 10, 80.0, 10.0, true),
        beyla_span(C, B, "POST /api/checkout", "server", 15, 70.0, 40.0),
        sdk(
            F,
            A,
            "GET /api/recommendations",
            "client",
            20,
            40.0,
            0.0,
            false,
        ),
        beyla_span(D, C, "SELECT orders", "client", 35, 30.0, 30.0),
        sdk(E, A, "render", "internal", 92, 33.0, 8.0, true),
    ] {
        check_span(t, base, &e);
    }
    let mut path_total = 0.0;
    for s in t["spans"].as_array().unwrap() {
        assert_eq!(s["missing_parent"], false, "{s}");
        assert_eq!(s["error"], false, "{s}");
        path_total += s["self_time_ms"].as_f64().unwrap();
    }
    approx(
        &Value::from(path_total),
        100.0,
        1e-6,
        "self times add up to the critical path",
    );
    assert_eq!(span(t, A)["status"], "ok");
    assert_eq!(span(t, B)["status"], "unset");
    assert_eq!(span(t, C)["attributes"]["http.route"], "/api/checkout");

    let (code, tree, stderr) = run(&[
        "query",
        "traces",
        "--trace-id",
        CHECKOUT_TRACE,
        "--colony",
        &colony,
        "-o",
        "tree",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    for text in [
        CHECKOUT_TRACE,
        "frontend",
        "checkout",
        "GET /checkout",
        "SELECT orders",
    ] {
        assert!(tree.contains(text), "{text:?} in\n{tree}");
    }
    assert!(!tree.contains("[missing parent"), "{tree}");

    // --- The trace whose middle span was not kept. -------------------------
    let mut cart = Value::Null;
    wait_for(
        "the cart trace at the colony",
        Duration::from_secs(60),
        || match trace(&colony, CART_TRACE) {
            Some(t) if t["span_count"] == 2 => {
                cart = t;
                true
            }
            _ => false,
        },
    );
    eprintln!("{cart:#}");
    approx(&cart["duration_ms"], 300.0, 1e-6, "cart duration_ms");
    approx(
        &cart["critical_path_ms"],
        300.0,
        1e-6,
        "cart critical_path_ms",
    );
    check_span(
        &cart,
        base,
        &Expected {
            id: G,
            parent: "",
            service: "frontend",
            operation: "GET /cart",
            kind: "server",
            start_ms: 1000,
            duration_ms: 300.0,
            self_ms: 300.0,
            on_path: true,
            source: "otlp",
            agent: "sdk-host",
            host: "web-1",
            keep_reason: "latency",
        },
    );
    check_span(
        &cart,
        base,
        &Expected {
            id: I,
            parent: H,
            service: "cart",
            operation: "GET /api/cart",
            kind: "server",
            start_ms: 1101,
            duration_ms: 3.0,
            self_ms: 0.0,
            on_path: false,
            source: "otlp",
            agent: "sdk-host",
            host: "web-1",
            keep_reason: "error",
        },
    );
    assert_eq!(span(&cart, I)["missing_parent"], true);
    assert_eq!(span(&cart, I)["error"], true);
    assert_eq!(span(&cart, I)["status"], "error");
    assert_eq!(span(&cart, G)["missing_parent"], false);
    let (code, tree, stderr) = run(&[
        "query",
        "traces",
        "--trace-id",
        CART_TRACE,
        "--colony",
        &colony,
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let marker = tree
        .lines()
        .position(|l| {
            l.trim_start_matches(|c: char| c.is_whitespace() || "│├└─".contains(c))
                .starts_with(&format!("[missing parent {H}"))
        })
        .unwrap_or_else(|| panic!("a [missing parent {H} line in\n{tree}"));
    assert!(
        tree.lines().skip(marker + 1).any(|l| l.contains("cart")),
        "the leaf under the marker:\n{tree}"
    );

    let (code, _, stderr) = run(&[
        "query",
        "traces",
        "--trace-id",
        "00000000000000000000000000000abc",
        "--colony",
        &colony,
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(1), "a trace the colony does not have: {stderr}");

    // --- The trace list. ----------------------------------------------------
    let list = |extra: &[&str]| {
        let mut args = vec![
            "query",
            "traces",
            "--colony",
            colony.as_str(),
            "--since",
            "10m",
            "--limit",
            "100",
            "-o",
            "json",
        ];
        args.extend_from_slice(extra);
        json(&args)
    };
    let batch_errors: Vec<String> = (97..=99).map(|n| format!("b0{n:030x}")).collect();
    wait_for(
        "frontend's five kept traces",
        Duration::from_secs(60),
        || {
            list(&["--service", "frontend"])["traces"]
                .as_array()
                .unwrap()
                .len()
                == 5
        },
    );
    let frontend = list(&["--service", "frontend"]);
    assert_eq!(frontend["truncated"], false);
    let traces = frontend["traces"].as_array().unwrap();
    let ids: Vec<&str> = traces
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    // Slowest first: G's 300 ms, the three 250 ms errors (any order), A's 125.
    assert_eq!(ids[0], CART_TRACE, "{frontend:#}");
    let mut middle: Vec<&str> = ids[1..4].to_vec();
    middle.sort_unstable();
    assert_eq!(middle, batch_errors, "{frontend:#}");
    assert_eq!(ids[4], CHECKOUT_TRACE, "{frontend:#}");
    for (t, ms) in traces.iter().zip([300.0, 250.0, 250.0, 250.0, 125.0]) {
        approx(
            &t["duration_ms"],
            ms,
            1e-6,
            &format!("{} duration_ms", t["trace_id"]),
        );
    }
    let summary = &traces[4];
    assert_eq!(summary["root_service"], "frontend");
    assert_eq!(summary["root_operation"], "GET /checkout");
    assert_eq!(summary["span_count"], 6);
    assert_eq!(summary["error_count"], 0);
    assert_eq!(
        summary["services"],
        serde_json::json!(["frontend", "checkout"])
    );
    let mut sources: Vec<&str> = summary["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    sources.sort_unstable();
    assert_eq!(sources, ["beyla", "otlp"]);
    assert_eq!(
        humantime::parse_rfc3339_weak(summary["start"].as_str().unwrap()).unwrap(),
        base
    );
    let cart_summary = &traces[0];
    assert_eq!(cart_summary["root_operation"], "GET /cart");
    assert_eq!(cart_summary["span_count"], 2);
    assert_eq!(cart_summary["error_count"], 1);
    assert_eq!(
        cart_summary["services"],
        serde_json::json!(["frontend", "cart"])
    );

    // The callee's service finds the same trace through its Beyla spans.
    let by_callee = list(&["--service", "checkout"]);
    assert_eq!(
        by_callee["traces"].as_array().unwrap().len(),
        1,
        "{by_callee:#}"
    );
    assert_eq!(by_callee["traces"][0]["trace_id"], CHECKOUT_TRACE);
    // Filters: an operation, errors only, a minimum duration.
    let only = |extra: &[&str]| -> Vec<String> {
        let mut ids: Vec<String> = list(extra)["traces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["trace_id"].as_str().unwrap().to_owned())
            .collect();
        ids.sort_unstable();
        ids
    };
    assert_eq!(
        only(&["--service", "frontend", "--operation", "render"]),
        [CHECKOUT_TRACE]
    );
    let mut errors = batch_errors.clone();
    errors.push(CART_TRACE.to_owned());
    errors.sort_unstable();
    assert_eq!(only(&["--service", "frontend", "--errors"]), errors);
    assert_eq!(
        only(&["--service", "frontend", "--min-duration", "260ms"]),
        [CART_TRACE]
    );

    // --- RED per operation (all spans, kept or not). ------------------------
    let operations = || {
        json(&[
            "query",
            "otel",
            "frontend",
            "--by",
            "operation",
            "--colony",
            &colony,
            "--since",
            "10m",
            "-o",
            "json",
        ])
    };
    wait_for(
        "frontend's RED per operation at the colony",
        Duration::from_secs(120),
        || {
            let ops = operations();
            let ops = ops["operations"].as_array().unwrap();
            ops.len() == 7
                && ops
                    .iter()
                    .map(|o| o["total_spans"].as_i64().unwrap())
                    .sum::<i64>()
                    == 155
        },
    );
    let red = operations();
    assert_eq!(red["service"], "frontend");
    let ops = red["operations"].as_array().unwrap();
    // (operation, kind, spans, errors, [p50, p95, p99, min, max], total ms), by total time.
    #[rustfmt::skip]
    let expected = [
        ("GET /checkout",            "SERVER",   100, 3, [20.0, 30.0, 250.0, 10.0, 250.0],   2380.0),
        ("GET /cart",                "SERVER",   1,   0, [300.0, 300.0, 300.0, 300.0, 300.0], 300.0),
        ("GET /health",              "SERVER",   50,  0, [2.0, 5.0, 5.0, 1.0, 5.0],           95.0),
        ("POST /api/checkout",       "CLIENT",   1,   0, [80.0, 80.0, 80.0, 80.0, 80.0],      80.0),
        ("GET /api/recommendations", "CLIENT",   1,   0, [40.0, 40.0, 40.0, 40.0, 40.0],      40.0),
        ("render",                   "INTERNAL", 1,   0, [33.0, 33.0, 33.0, 33.0, 33.0],      33.0),
        ("GET /api/cart",            "CLIENT",   1,   0, [5.0, 5.0, 5.0, 5.0, 5.0],           5.0),
    ];
    for (op, (name, kind, spans, errors, [p50, p95, p99, min, max], total)) in
        ops.iter().zip(expected)
    {
        let what = |f: &str| format!("{name} {f}");
        assert_eq!(op["operation"], name, "sorted by total time: {red:#}");
        assert!(
            op["span_kind"].as_str().unwrap().eq_ignore_ascii_case(kind),
            "{}: {}",
            what("span_kind"),
            op["span_kind"]
        );
        assert_eq!(op["total_spans"], spans, "{}", what("total_spans"));
        assert_eq!(op["error_count"], errors, "{}", what("error_count"));
        approx(
            &op["error_rate"],
            errors as f64 / spans as f64,
            1e-9,
            &what("error_rate"),
        );
        approx(&op["p50_ms"], p50, p50 * 0.01, &what("p50_ms"));
        approx(&op["p95_ms"], p95, p95 * 0.01, &what("p95_ms"));
        approx(&op["p99_ms"], p99, p99 * 0.01, &what("p99_ms"));
        approx(&op["min_ms"], min, 1e-6, &what("min_ms"));
        approx(&op["max_ms"], max, 1e-6, &what("max_ms"));
        approx(&op["total_ms"], total, 1e-6, &what("total_ms"));
        assert_eq!(op["agents"], 1, "{}", what("agents"));
    }
    // Samples: errors first, then the slowest.
    let samples: Vec<&str> = ops[0]["sample_traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for id in batch_errors
        .iter()
        .map(String::as_str)
        .chain([CHECKOUT_TRACE])
    {
        assert!(samples.contains(&id), "{id} in {samples:?}");
    }

    assert!(agent.stop().success());
    assert!(up.stop().success());
}
