//! Shared helpers for the `coral` binary's tests: run it, read its JSON,
//! await a condition.

#![allow(dead_code)]

use std::process::Command;
use std::time::{Duration, Instant};

/// The built `coral`, with the environment a user's shell might carry
/// (log filters, a colony address or token) removed and colour off.
pub fn coral() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_coral"));
    cmd.env_remove("RUST_LOG")
        .env_remove("CORAL_TOKEN")
        .env_remove("CORAL_COLONY")
        .env("NO_COLOR", "1");
    cmd
}

/// Runs `coral args…`; returns (exit code, stdout, stderr).
pub fn run(args: &[&str]) -> (Option<i32>, String, String) {
    let out = coral().args(args).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `coral args…`, which must succeed, and parses its stdout as JSON.
pub fn json(args: &[&str]) -> serde_json::Value {
    let (code, stdout, stderr) = run(args);
    assert_eq!(code, Some(0), "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Polls `condition` every 200 ms until it holds, or panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}
