//! `coral mcp` driven by the official MCP Python SDK (`mcp` on PyPI), over
//! stdio and over Streamable HTTP, against `coral up` fed over OTLP/HTTP:
//! the small application of `common::shop`, one 10,000-span trace (a root
//! and 9,999 sequential steps, all on its critical path), and a few spans
//! in the current minute next to the host's metrics.
//!
//! Every tool is called and its result checked, with its bounds: no result
//! over 20,000 characters (about 5,000 tokens), the big trace cut and
//! saying so, at most 50 trace summaries; a misspelt service is a tool
//! error that suggests the right name. The tool definitions together stay
//! under 2,000 tokens. Over HTTP a request without the token gets 401.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::process::Process;
use common::shop::{self, MS, rfc3339};
use common::{coral, json, post_traces, python, repo_file, run, wait_for};
use serde_json::{Value, json};

/// The big trace's spans.
const BIG: usize = 10_000;
const BIG_TRACE: &str = "0000000000000000000000000000b16b";

/// Result budget of every tool, in characters.
const BUDGET: usize = 20_000;

fn now_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The 10,000-span trace of service `batch`, ten minutes ago, in exports of
/// 1,000 spans.
fn send_big_trace(http: &str) {
    let t0 = (now_s() - 600) as u64 * 1_000_000_000;
    let end = t0 + (BIG as u64 + 1) * MS;
    let mut spans = vec![shop::span(
        BIG_TRACE,
        "00000000000b0000",
        "",
        "nightly-job",
        2,
        t0,
        end,
        None,
    )];
    for i in 1..BIG as u64 {
        spans.push(shop::span(
            BIG_TRACE,
            &format!("{:016x}", 0xb0000 + i),
            "00000000000b0000",
            &format!("step-{}", i % 20),
            1,
            t0 + i * MS,
            t0 + (i + 1) * MS,
            None,
        ));
    }
    for chunk in spans.chunks(1_000) {
        post_traces(
            http,
            format!(
                r#"{{"resourceSpans":[{}]}}"#,
                shop::resource_spans("batch", chunk)
            ),
        );
    }
}

/// Five spans of service `cron` now, so that this minute has RED next to
/// the host's metrics.
fn send_cron(http: &str) {
    let t0 = now_s() as u64 * 1_000_000_000;
    let spans: Vec<String> = (0..5u64)
        .map(|i| {
            shop::span(
                &format!("{:032x}", 0xc0 + i),
                &format!("{:016x}", 0xc0 + i),
                "",
                "tick",
                2,
                t0 + i * MS,
                t0 + (i + 3) * MS,
                None,
            )
        })
        .collect();
    post_traces(
        http,
        format!(
            r#"{{"resourceSpans":[{}]}}"#,
            shop::resource_spans("cron", &spans)
        ),
    );
}

/// Runs the MCP client with `steps` over `transport` (its arguments after
/// the script) and returns its document.
fn session(python: &Path, transport: &[&str], steps: &Value) -> Value {
    let mut child = Command::new(python)
        .arg(repo_file("tests/fixtures/mcp/mcp_client.py"))
        .args(transport)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(steps.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "MCP client failed: {stderr}");
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// A tool's result: its text parsed as JSON, after checking it is no tool
/// error and within the budget.
fn doc(result: &Value) -> Value {
    assert_eq!(result["is_error"], false, "{result}");
    let text = result["text"].as_str().unwrap();
    assert!(text.len() <= BUDGET, "{} characters", text.len());
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// A tool error's message.
fn error(result: &Value) -> &str {
    assert_eq!(result["is_error"], true, "{result}");
    result["text"].as_str().unwrap()
}

#[test]
fn assistants_get_bounded_answers_over_stdio_and_http() {
    let Some(python) = python("mcp") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (mut up, colony, http) = shop::up(dir.path(), "mcp-host", true);

    send_cron(&http);
    send_big_trace(&http);
    let shop = shop::feed(&http, &colony);
    wait_for("the 10,000-span trace", Duration::from_secs(120), || {
        let (code, out, _) = run(&[
            "query",
            "traces",
            "--trace-id",
            BIG_TRACE,
            "--max-spans",
            "1",
            "-o",
            "json",
            "--colony",
            &colony,
        ]);
        code == Some(0)
            && serde_json::from_str::<Value>(&out)
                .is_ok_and(|t| t["span_count"].as_u64() == Some(BIG as u64))
    });

    let window = |w: (i64, i64)| format!("{}/{}", rfc3339(w.0), rfc3339(w.1));
    let (incident, baseline) = (window(shop.incident), window(shop.baseline));
    let steps = json!([
        {"tool": "list_services", "args": {}},
        {"tool": "service_red", "args": {"service": "checkout", "window": "1h"}},
        {"tool": "service_red", "args": {"service": "card-validator", "by": "operation"}},
        {"tool": "service_red", "args": {"service": "checkout", "by": "route"}},
        {"tool": "compare_windows", "args": {"service": "card-validator", "incident": incident, "baseline": baseline}},
        {"tool": "list_traces", "args": {"service": "checkout", "limit": 500}},
        {"tool": "get_trace", "args": {"trace_id": BIG_TRACE, "detail": "spans", "max_spans": 200}},
        {"tool": "get_trace", "args": {"trace_id": BIG_TRACE}},
        {"tool": "get_trace", "args": {"trace_id": BIG_TRACE, "detail": "summary"}},
        {"tool": "get_trace", "args": {"trace_id": "not-a-trace"}},
        {"tool": "coral_ask", "args": {"question": "why is checkout slow?", "incident": incident, "baseline": baseline}},
        {"tool": "coral_ask", "args": {"question": "why is it slow?", "service": "chekout"}},
        {"tool": "coral_ask", "args": {"question": "why is shipping slow?"}},
        {"tool": "service_red", "args": {"service": "chekout"}},
        {"resources": true},
        {"resource": "coral://asks/1"},
        {"resource": "coral://services"},
        {"prompt": "diagnose_service", "args": {"service": "checkout"}},
    ]);
    let coral_bin = env!("CARGO_BIN_EXE_coral");
    let out = session(
        &python,
        &["stdio", coral_bin, "mcp", "--colony", &colony],
        &steps,
    );
    assert_eq!(out["server"]["name"], "coral");
    let tools: Vec<&str> = out["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(tools.len(), 7, "{tools:?}");
    let chars = out["tools_chars"].as_u64().unwrap();
    for t in out["tools"].as_array().unwrap() {
        eprintln!(
            "tool {}: {} characters",
            t["name"],
            serde_json::to_string(t).unwrap().len()
        );
    }
    eprintln!("tool definitions: {chars} characters");
    assert!(
        (chars as f64 / 3.5) < 2000.0,
        "tool definitions: {chars} characters"
    );
    let r = out["results"].as_array().unwrap();

    // list_services: every service, nothing cut.
    let services = doc(&r[0]);
    let names: Vec<&str> = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["service"].as_str().unwrap())
        .collect();
    for s in ["checkout", "payments", "card-validator", "catalog", "batch"] {
        assert!(names.contains(&s), "{s} in {names:?}");
    }
    assert_eq!(services["truncated"], false);

    // service_red by minute: every request, a row a minute.
    let red = doc(&r[1]);
    let rows = red["rows"].as_array().unwrap();
    let requests: u64 = rows.iter().map(|x| x["requests"].as_u64().unwrap()).sum();
    assert_eq!(requests, shop.requests, "{red}");
    assert_eq!(
        rows.len() as i64,
        shop::INCIDENT_MINUTES + shop::BASELINE_MINUTES.0 - shop::BASELINE_MINUTES.1
    );
    assert_eq!(red["truncated"], false);
    // by operation; by route needs Beyla, and says so.
    let ops = doc(&r[2]);
    assert_eq!(ops["rows"][0]["operation"], "POST /validate", "{ops}");
    assert!(error(&r[3]).contains("Beyla"), "{}", r[3]);

    // compare_windows: the slow operation first, p95 up more than 100 %.
    let cmp = doc(&r[4]);
    let first = &cmp["operations"][0];
    assert_eq!(first["operation"], "POST /validate", "{cmp}");
    assert!(first["p95_change_pct"].as_f64().unwrap() > 100.0, "{first}");

    // list_traces: 50 at most, and it says more matched.
    let traces = doc(&r[5]);
    assert_eq!(traces["traces"].as_array().unwrap().len(), 50);
    assert_eq!(traces["limit"], 50);
    assert_eq!(traces["truncated"], true);
    assert!(
        traces["traces"][0].get("spans").unwrap().is_u64(),
        "a count, never spans"
    );

    // get_trace of 10,000 spans: cut, counted, within budget.
    for (i, detail, most) in [(6, "spans", 200), (7, "critical_path", 50)] {
        let t = doc(&r[i]);
        assert_eq!(t["detail"], detail);
        assert_eq!(t["span_count"], BIG as u64);
        assert_eq!(t["truncated"], true, "{detail}");
        let shown = t["spans"].as_array().unwrap().len();
        assert!(shown > 0 && shown <= most, "{detail}: {shown}");
        assert_eq!(t["spans_shown"], shown as u64);
    }
    let summary = doc(&r[8]);
    assert_eq!(summary["spans"], json!([]));
    assert_eq!(summary["services"][0]["service"], "batch");
    assert_eq!(summary["services"][0]["spans"], BIG as u64);
    assert!(error(&r[9]).contains("not 32 hex characters"));

    // coral_ask: the `coral ask` document, the slow leaf first.
    let answer = doc(&r[10]);
    assert_eq!(answer["version"], 1);
    assert_eq!(answer["verdict"], "regression", "{answer}");
    assert_eq!(answer["causes"][0]["service"], "card-validator");
    assert_eq!(
        error(&r[11]),
        "service 'chekout' not found; did you mean 'checkout'?"
    );
    let unknown = error(&r[12]);
    assert!(
        unknown.contains("no service named \"shipping\"") && unknown.contains("checkout"),
        "{unknown}"
    );
    assert_eq!(
        error(&r[13]),
        "service 'chekout' not found; did you mean 'checkout'?"
    );

    // Resources: the services, and the answer just given.
    let listed: Vec<&str> = r[14]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["uri"].as_str().unwrap().trim_end_matches('/'))
        .collect();
    assert_eq!(listed, ["coral://services", "coral://asks/1"]);
    let kept: Value = serde_json::from_str(r[15]["contents"][0].as_str().unwrap()).unwrap();
    assert_eq!(kept, answer);
    let listed: Value = serde_json::from_str(r[16]["contents"][0].as_str().unwrap()).unwrap();
    assert!(listed["total"].as_u64().unwrap() >= 5, "{listed}");
    let prompt = r[17]["messages"][0]["content"]["text"].as_str().unwrap();
    assert!(
        prompt.contains("coral_ask") && prompt.contains("get_trace"),
        "{prompt}"
    );

    // Streamable HTTP: the token is required; the host's metrics.
    let mut mcp = coral();
    mcp.args([
        "mcp",
        "--http",
        "127.0.0.1:0",
        "--http-token",
        "s3cret",
        "--colony",
        &colony,
    ]);
    let mut server = Process::spawn(mcp, "-TERM", dir.path().join("mcp.log"));
    let banner = server.banner(|l| l.contains("Streamable HTTP at"));
    let url = banner
        .last()
        .unwrap()
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap()
        .to_owned();
    let refused = reqwest::blocking::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 401);
    // With the token, a Host the server does not serve (DNS rebinding) is
    // refused too.
    let rebound = reqwest::blocking::Client::new()
        .post(&url)
        .bearer_auth("s3cret")
        .header("host", "evil.example")
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#)
        .send()
        .unwrap();
    assert_eq!(rebound.status(), 403);
    // No token, an address other than loopback: it will not start.
    let (code, _, err) = run(&["mcp", "--http", "0.0.0.0:0", "--colony", &colony]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("refusing to serve MCP on 0.0.0.0:0 without a token"),
        "{err}"
    );

    wait_for(
        "this minute's RED next to the host's metrics",
        Duration::from_secs(150),
        || {
            let h = json(&["query", "host", "cron", "-o", "json", "--colony", &colony]);
            h["rows"]
                .as_array()
                .is_some_and(|rows| rows.iter().any(|x| !x["cpu_percent"].is_null()))
        },
    );
    let steps = json!([
        {"tool": "host_metrics", "args": {"service": "cron", "window": "15m"}},
        {"tool": "host_metrics", "args": {"agent": "mcp-host"}},
        {"tool": "get_trace", "args": {"trace_id": BIG_TRACE, "detail": "spans", "max_spans": 200}},
        {"tool": "host_metrics", "args": {"service": "chekout"}},
    ]);
    let out = session(&python, &["http", &url, "s3cret"], &steps);
    let r = out["results"].as_array().unwrap();
    let hosts = doc(&r[0]);
    let row = hosts["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| !x["cpu_pct"].is_null())
        .unwrap_or_else(|| panic!("a row with the host's CPU: {hosts}"));
    assert_eq!(row["agent"], "mcp-host");
    assert_eq!(row["requests"], 5);
    let by_agent = doc(&r[1]);
    assert!(
        !by_agent["rows"].as_array().unwrap().is_empty(),
        "{by_agent}"
    );
    assert!(by_agent["rows"][0].get("requests").is_none());
    assert_eq!(doc(&r[2])["truncated"], true);
    assert_eq!(
        error(&r[3]),
        "service 'chekout' not found; did you mean 'checkout'?"
    );
    server.stop();
    up.stop();
}
