//! The built `coral` binary: `coral agent serve` starts, reports its bound
//! addresses, accepts OTLP, shuts down cleanly on SIGTERM, and refuses a bad
//! configuration with a message naming the file and the key.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{agent_command, coral};

#[test]
fn misspelled_key_fails_naming_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(
        &file,
        "agent:\n  telemetry:\n    filtres:\n      - sample_rate: 0.1\n",
    )
    .unwrap();
    let out = coral()
        .args(["agent", "serve", "--config"])
        .arg(&file)
        .env("CORAL_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("agent.yaml"), "{stderr}");
    assert!(stderr.contains("agent.telemetry.filtres"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
}

#[test]
fn agent_serve_accepts_otlp_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = agent_command(dir.path(), "cli-test", None)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("otlp-http="))
        .unwrap_or_else(|| panic!("no otlp-http address in {line:?}"));
    let admin = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .unwrap();

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"cli"}}}}]}},"scopeSpans":[{{"spans":[{{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"GET /","kind":2,"startTimeUnixNano":"{now}","endTimeUnixNano":"{}"}}]}}]}}]}}"#,
        now + 1_000_000
    );
    let client = reqwest::blocking::Client::new();
    let response = client
        .post(format!("http://{http}/v1/traces"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().unwrap(), "{}");
    let metrics = client
        .get(format!("http://{admin}/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics.contains("coral_agent_spans_accepted_total 1"),
        "{metrics}"
    );

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "agent did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit: {status}");
    assert!(dir.path().join("agent/agent.duckdb").exists());
}
