//! Shared helpers for the `coral` binary's tests: run it, read its JSON,
//! await a condition.

#![allow(dead_code)]

pub mod llm;
pub mod process;
pub mod shop;

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The built `coral` (or `CORAL_TEST_BINARY`, a copy that a long run keeps
/// while the build moves on), with the environment a user's shell might
/// carry (log filters, a colony address or token) removed and colour off.
pub fn coral() -> Command {
    let binary =
        std::env::var_os("CORAL_TEST_BINARY").unwrap_or_else(|| env!("CARGO_BIN_EXE_coral").into());
    let mut cmd = Command::new(binary);
    cmd.env_remove("RUST_LOG")
        .env_remove("CORAL_TOKEN")
        .env_remove("CORAL_COLONY")
        .env_remove("CORAL_MCP_TOKEN")
        .env_remove("CORAL_LLM_BASE_URL")
        .env_remove("CORAL_LLM_MODEL")
        .env_remove("CORAL_LLM_API_KEY")
        .env_remove("CORAL_LLM_TIMEOUT")
        .env_remove("CORAL_RED_METRICS")
        // Every colony a test starts serves /metrics on a port of its own.
        .env("CORAL_COLONY_ADMIN_ENDPOINT", "127.0.0.1:0")
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

/// POSTs an OTLP/JSON trace export to the agent's OTLP/HTTP endpoint
/// `http`, which must accept it (200).
pub fn post_traces(http: &str, body: String) {
    let response = reqwest::blocking::Client::new()
        .post(format!("{http}/v1/traces"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .unwrap();
    assert_eq!(response.status(), 200, "{:?}", response.text());
}

/// A loopback port free a moment ago, for a listener that must be started
/// on a known port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// OTLP/JSON with `n` SERVER spans `GET /items` of `service` two minutes ago
/// (a closed minute); every `error_every`-th has status ERROR. Ids start at
/// `first`.
pub fn spans_json(service: &str, first: u64, n: u64, error_every: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t0 = (now / 60 - 2) * 60 * 1_000_000_000;
    let spans: Vec<String> = (first..first + n)
        .map(|i| {
            let start = t0 + (i % 50_000) * 1_000_000;
            let status = if error_every > 0 && i % error_every == 0 { 2 } else { 1 };
            format!(
                r#"{{"traceId":"{i:032x}","spanId":"{:016x}","name":"GET /items","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{}","status":{{"code":{status}}}}}"#,
                i + 1,
                start + (i % 1000 + 1) * 1_000_000
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
}

/// Kept traces of `service` in the last hour that the colony at `colony`
/// lists (up to 1,000); `None`, saying why on stderr, when the query fails.
pub fn kept_traces(colony: &str, service: &str) -> Option<usize> {
    let (code, stdout, stderr) = run(&[
        "query",
        "traces",
        "--service",
        service,
        "--since",
        "1h",
        "--limit",
        "1000",
        "-o",
        "json",
        "--colony",
        colony,
    ]);
    if code != Some(0) {
        eprintln!("{stderr}");
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&stdout).ok()?;
    Some(v["traces"].as_array()?.len())
}

/// Fills the file system holding `path` until it has no space left.
pub fn fill(path: &Path) {
    use std::io::Write as _;
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0x5a_u8; 64 << 10];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
}

/// Polls `condition` every 200 ms until it holds, or panics after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The Python that the interop and stand-in tests run: `CORAL_PYTHON`, else
/// the venv `.ci/run` makes, when it can import `modules` (comma-separated,
/// as in a Python `import`). `None` skips the test with a message, unless
/// `CORAL_REQUIRE_PYTHON_INTEROP=1`, where it fails.
pub fn python(modules: &str) -> Option<PathBuf> {
    let candidate = std::env::var_os("CORAL_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/coral/venv-interop/bin/python"))
        });
    let found = candidate.filter(|python| {
        Command::new(python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|out| out.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CORAL_REQUIRE_PYTHON_INTEROP").as_deref() != Ok("1"),
            "the test needs Python with {modules}: set CORAL_PYTHON or run .ci/run"
        );
        eprintln!("skipped: no Python with {modules}");
    }
    found
}

/// A file of this repository, from the `coral-cli` crate's directory.
pub fn repo_file(relative: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test")).join(relative)
}

/// Writes an executable `beyla` into `dir` that runs the Beyla stand-in
/// with `python` and the `STANDIN_*` settings in `env` (`NAME=value ...`),
/// and returns its path.
pub fn standin_beyla(dir: &Path, python: &Path, env: &str) -> PathBuf {
    let beyla = dir.join("beyla");
    std::fs::write(
        &beyla,
        format!(
            "#!/bin/sh\n{env} exec {} {} \"$@\"\n",
            python.display(),
            repo_file("../coral-agent/tests/fixtures/beyla-standin/beyla_standin.py").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&beyla, std::fs::Permissions::from_mode(0o755)).unwrap();
    beyla
}

/// An agent's listeners (OTLP gRPC and HTTP, API, admin), each on a port
/// the system picks.
const AGENT_PORTS: [&str; 8] = [
    "--otlp-grpc-endpoint",
    "127.0.0.1:0",
    "--otlp-http-endpoint",
    "127.0.0.1:0",
    "--api-endpoint",
    "127.0.0.1:0",
    "--admin-endpoint",
    "127.0.0.1:0",
];

/// `coral agent serve` with every port picked by the system, agent id
/// `agent_id`, data under `home`, and the configuration file `config` when
/// one is given.
pub fn agent_command(home: &Path, agent_id: &str, config: Option<&Path>) -> Command {
    let mut cmd = coral();
    cmd.args(["agent", "serve"]);
    if let Some(config) = config {
        cmd.arg("--config").arg(config);
    }
    cmd.args(AGENT_PORTS)
        .args(["--agent-id", agent_id])
        .env("CORAL_HOME", home);
    cmd
}

/// `coral up` with every port picked by the system, agent id `agent_id`,
/// data under `home`, polling every second, and `beyla` as its Beyla.
pub fn up_command(home: &Path, agent_id: &str, beyla: &Path) -> Command {
    all_in_one("up", home, agent_id, beyla)
}

/// `coral demo`, set up as [`up_command`].
pub fn demo_command(home: &Path, agent_id: &str, beyla: &Path) -> Command {
    all_in_one("demo", home, agent_id, beyla)
}

fn all_in_one(subcommand: &str, home: &Path, agent_id: &str, beyla: &Path) -> Command {
    let mut cmd = coral();
    cmd.arg(subcommand)
        .args(AGENT_PORTS)
        .args([
            "--colony-api-endpoint",
            "127.0.0.1:0",
            "--agent-id",
            agent_id,
        ])
        .env("CORAL_HOME", home)
        .env("CORAL_POLL_INTERVAL", "1s")
        .env("BEYLA_PATH", beyla);
    cmd
}

/// One OTLP/JSON export of `spans` server spans of `service`, each named
/// `name`, lasting `duration_ms` and starting now, with trace ids unique per
/// (`client`, `request`, span); returns the body and the trace ids.
pub fn json_export(
    service: &str,
    name: &str,
    duration_ms: u128,
    spans: usize,
    client: usize,
    request: usize,
) -> (String, Vec<String>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let ids: Vec<String> = (0..spans)
        .map(|span| format!("{:08x}{:016x}{:08x}", client + 1, request + 1, span + 1))
        .collect();
    let spans: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                r#"{{"traceId":"{id}","spanId":"00000000000000a1","name":"{name}","kind":2,"startTimeUnixNano":"{now}","endTimeUnixNano":"{}"}}"#,
                now + duration_ms * 1_000_000
            )
        })
        .collect();
    let body = format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    );
    (body, ids)
}
