//! `coral query traces` and `coral query otel --by operation` as the built
//! binary against a real colony with nothing stored: bad trace ids are usage
//! errors (exit 2), a trace the colony does not hold exits 1 saying where
//! kept spans live, and empty windows are empty documents (exit 0).

mod common;

use std::net::TcpListener;
use std::process::Stdio;
use std::time::Duration;

use common::{coral, run, wait_for};

#[test]
fn trace_queries_say_what_is_wrong_and_empty_windows_are_empty() {
    // A usage error needs no colony.
    let (code, _, stderr) = run(&["query", "traces", "--trace-id", "xyz"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("not a trace id: expected 32 hex characters, 3 given"),
        "{stderr}"
    );

    let dir = tempfile::tempdir().unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut colony = coral()
        .args(["colony", "serve", "--api-endpoint", &addr, "--data-dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the colony to answer", Duration::from_secs(60), || {
        run(&["agents", "--colony", &addr]).0 == Some(0)
    });

    let (code, _, stderr) = run(&[
        "query",
        "traces",
        "--trace-id",
        &"AB".repeat(16),
        "--colony",
        &addr,
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "trace {} not found in the colony (kept spans live for storage.retention.trace_spans",
            "ab".repeat(16)
        )),
        "{stderr}"
    );

    let (code, stdout, stderr) = run(&[
        "query",
        "traces",
        "--service",
        "nothing",
        "--colony",
        &addr,
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["traces"], serde_json::json!([]));
    assert_eq!(v["truncated"], false);
    let (code, stdout, _) = run(&["query", "traces", "--service", "nothing", "--colony", &addr]);
    assert_eq!(code, Some(0));
    assert!(
        stdout.starts_with("No traces for nothing in this window."),
        "{stdout}"
    );

    let (code, stdout, stderr) = run(&[
        "query",
        "otel",
        "nothing",
        "--by",
        "operation",
        "--colony",
        &addr,
        "-o",
        "json",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["operations"], serde_json::json!([]));
    let (code, _, stderr) = run(&[
        "query",
        "otel",
        "x",
        "--by",
        "operation",
        "--operation",
        "y",
        "--colony",
        &addr,
    ]);
    assert_eq!(code, Some(2), "--by and --operation conflict: {stderr}");

    colony.kill().unwrap();
    colony.wait().unwrap();
}
