//! Input from outside is data all the way through `coral up`: a service and
//! an operation named with SQL and terminal escape sequences are stored as
//! sent, counted, and printed escaped (they cannot clear the screen or set
//! the window title of whoever reads them); a `coral ask` question made of
//! SQL is only a question; and an attribute value that `scrub_attributes`
//! names never reaches the agent's or the colony's DuckDB file.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::process::{Process, value_after};
use common::{json, run, up_command, wait_for};

const SERVICE: &str = "pay'); DROP TABLE otel_spans;--\u{1b}[2J\u{1b}]0;owned\u{7}";
/// How `SERVICE` prints on a terminal.
const SERVICE_SHOWN: &str = "pay'); DROP TABLE otel_spans;--\\u{1b}[2J\\u{1b}]0;owned\\u{7}";
const OPERATION: &str = "GET /x\u{1b}[1A\r' OR '1'='1";
const SECRET: &str = "leak-7f3a9c@example.com";
/// Stored like `SECRET`, but not scrubbed: proves the files can be searched.
const KEPT: &str = "kept-51b2e8-visible";
const SPANS: usize = 20;

fn body() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let attr =
        |key: &str, value: &str| serde_json::json!({"key": key, "value": {"stringValue": value}});
    let spans: Vec<serde_json::Value> = (0..SPANS)
        .map(|i| {
            serde_json::json!({
                "traceId": format!("{:032x}", 0xb0_0000 + i),
                "spanId": format!("{:016x}", 0xa1 + i),
                "name": OPERATION,
                "kind": 2,
                "startTimeUnixNano": now.to_string(),
                "endTimeUnixNano": (now + 3_000_000).to_string(),
                "attributes": [attr("user.email", SECRET), attr("note", KEPT)],
            })
        })
        .collect();
    serde_json::json!({"resourceSpans": [{
        "resource": {"attributes": [attr("service.name", SERVICE), attr("owner.email", SECRET)]},
        "scopeSpans": [{"spans": spans}],
    }]})
    .to_string()
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[test]
fn hostile_names_are_data_and_scrubbed_values_never_reach_disk() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("agent.yaml");
    std::fs::write(
        &config,
        "agent:\n  telemetry:\n    scrub_attributes: [\"email\"]\n    filters:\n      - sample_rate: 1.0\n",
    )
    .unwrap();
    let mut cmd = up_command(home.path(), "hostile", Path::new("/nonexistent/beyla"));
    cmd.args(["--config", config.to_str().unwrap()]);
    let mut up = Process::spawn(cmd, "-TERM", home.path().join("up.log"));
    let banner = up.banner(|line| line.contains("agent API"));
    let http = value_after(&banner, "OTLP HTTP:").to_owned();
    let colony = value_after(&banner, "colony API:").to_owned();
    common::post_traces(&http, body());

    // Stored as sent and counted, once its minute closes.
    let requests = || {
        let v = json(&["query", "services", "-o", "json", "--colony", &colony]);
        v["services"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["service"] == SERVICE)
            .and_then(|s| s["requests"].as_u64())
    };
    wait_for(
        "the colony to count the service",
        Duration::from_secs(150),
        || requests().is_some(),
    );
    assert_eq!(requests(), Some(SPANS as u64));

    // Printed escaped, in every format a terminal shows.
    let shows = |args: &[&str], expect: &str| {
        let mut all = args.to_vec();
        all.extend(["--colony", &colony]);
        let (code, stdout, stderr) = run(&all);
        assert_eq!(code, Some(0), "{args:?}: {stderr}");
        for out in [&stdout, &stderr] {
            assert!(
                !out.contains(|c: char| c.is_control() && c != '\n'),
                "{args:?} printed a control character: {out:?}"
            );
        }
        assert!(stdout.contains(expect), "{args:?}: {stdout}");
    };
    shows(&["query", "services"], SERVICE_SHOWN);
    shows(&["query", "services", "-o", "csv"], SERVICE_SHOWN);
    shows(
        &["query", "otel", SERVICE, "--by", "operation"],
        "GET /x\\u{1b}[1A\\r' OR '1'='1",
    );
    shows(&["query", "traces", "--service", SERVICE], "0000b00000");
    let trace = format!("{:032x}", 0xb0_0000);
    shows(&["query", "traces", "--trace-id", &trace], SERVICE_SHOWN);

    // A question made of SQL and escapes is a question: answered or
    // refused, printed escaped, and the tables are all still there.
    for question in [
        "why is pay'); DROP TABLE otel_spans;-- slow?",
        "why is \u{1b}[2J\u{1b}]0;owned\u{7} failing?",
    ] {
        let (code, stdout, stderr) = run(&["ask", question, "--no-save", "--colony", &colony]);
        assert!(matches!(code, Some(0..=2)), "{question:?}: {stderr}");
        for out in [&stdout, &stderr] {
            assert!(
                !out.contains(|c: char| c.is_control() && c != '\n'),
                "coral ask {question:?} printed a control character: {out:?}"
            );
        }
    }
    assert_eq!(requests(), Some(SPANS as u64));

    assert!(up.stop().success());
    drop(up);

    // The scrubbed value is in no file of either store (databases and
    // write-ahead logs), where the value beside it is.
    let stores = [home.path().join("agent"), home.path().join("colony")];
    let mut searched = 0;
    for store in &stores {
        let mut kept = false;
        for file in files(store) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                !contains(&bytes, SECRET),
                "{} holds the scrubbed value",
                file.display()
            );
            kept |= contains(&bytes, KEPT);
            searched += 1;
        }
        assert!(kept, "no file under {} holds {KEPT}", store.display());
    }
    assert!(searched >= 2);
    let db = duckdb::Connection::open(home.path().join("colony/colony.duckdb")).unwrap();
    let (spans, redacted): (i64, i64) = db
        .query_row(
            "SELECT count(*), count(*) FILTER (WHERE attributes LIKE '%[REDACTED]%') \
             FROM trace_spans WHERE service_name = ?",
            [SERVICE],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((spans, redacted), (SPANS as i64, SPANS as i64));
}
