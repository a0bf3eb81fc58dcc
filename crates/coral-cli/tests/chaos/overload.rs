//! Overload: ten times an agent's measured saturation rate, for minutes.
//!
//! Two cores cannot offer ten times what an agent on two cores takes, so
//! the agent runs in a CPU cgroup capped at `CORAL_OVERLOAD_CPU_PCT` % of one
//! core (default 20); its saturation is measured under that cap with
//! `coral-loadgen` (OTLP/gRPC, unthrottled), then ten times that rate is
//! offered for `CORAL_OVERLOAD` (default 5m) while the host's SDK client
//! (`client.py`, 50 spans/s, retrying every refused batch) keeps sending.
//! Afterwards: the client's spans reconcile exactly at the colony, and every
//! span the agent accepted from either sender is counted once there.
//!
//! Ignored in `cargo test` (minutes of load): `scripts/overload.sh` builds
//! the release binaries and runs it (`CORAL_TEST_BINARY`, `CORAL_LOADGEN`).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::fleet::{Fleet, Proc, status_kb};
use crate::{conclude, three_agents};

fn overload() -> Duration {
    std::env::var("CORAL_OVERLOAD")
        .ok()
        .map(|v| humantime::parse_duration(&v).expect("CORAL_OVERLOAD, e.g. 5m"))
        .unwrap_or(Duration::from_secs(300))
}

fn cpu_pct() -> u64 {
    std::env::var("CORAL_OVERLOAD_CPU_PCT")
        .ok()
        .map(|v| v.parse().expect("CORAL_OVERLOAD_CPU_PCT, e.g. 20"))
        .unwrap_or(20)
}

/// The `coral-loadgen` binary: `CORAL_LOADGEN`, else beside `coral`.
fn loadgen() -> PathBuf {
    if let Some(path) = std::env::var_os("CORAL_LOADGEN") {
        return path.into();
    }
    let coral = std::env::var_os("CORAL_TEST_BINARY")
        .map(PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_coral").into());
    let beside = coral.with_file_name("coral-loadgen");
    assert!(
        beside.exists(),
        "no coral-loadgen at {}: build it (cargo build -p coral-loadgen) or set CORAL_LOADGEN",
        beside.display()
    );
    beside
}

/// A CPU cgroup (v1 `cpu` controller, or v2) holding one process.
struct CpuCap(PathBuf);

impl CpuCap {
    fn new(pid: u32, pct: u64) -> CpuCap {
        let name = format!("coral-overload-{}", std::process::id());
        let v1 = PathBuf::from("/sys/fs/cgroup/cpu");
        let (dir, limits) = if v1.join("cpu.cfs_quota_us").exists() {
            let dir = v1.join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.cfs_period_us"), "100000").unwrap();
            std::fs::write(dir.join("cpu.cfs_quota_us"), (pct * 1000).to_string()).unwrap();
            (dir, "cpu.cfs_quota_us")
        } else {
            let dir = PathBuf::from("/sys/fs/cgroup").join(&name);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("cpu.max"), format!("{} 100000", pct * 1000)).unwrap();
            (dir, "cpu.max")
        };
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .unwrap_or_else(|e| panic!("move the agent into {}: {e}", dir.display()));
        eprintln!("agent {pid} capped at {pct} % of a core ({limits})");
        CpuCap(dir)
    }
}

impl Drop for CpuCap {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// Runs `coral-loadgen` in the agent's host against its OTLP/gRPC listener
/// and returns its JSON report, sampling the agent's RSS meanwhile.
fn load(
    fleet: &Fleet,
    pid: u32,
    label: &str,
    args: &[String],
    peak_rss_kb: &mut u64,
) -> serde_json::Value {
    let report = fleet.dir.path().join(format!("loadgen-{label}.json"));
    let mut cmd = Command::new(loadgen());
    cmd.args([
        "--endpoint",
        "127.0.0.1:4317",
        "--target-pid",
        &pid.to_string(),
    ])
    .args(["--label", label])
    .args(args)
    .arg("--json")
    .arg(&report);
    let cmd = fleet.lab.host("a1").wrap(&cmd);
    let log = fleet.dir.path().join(format!("loadgen-{label}.log"));
    let mut proc = Proc::spawn(cmd, log.clone());
    while !proc.exited() {
        *peak_rss_kb = (*peak_rss_kb).max(status_kb(pid, "VmRSS"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let body = std::fs::read(&report).unwrap_or_else(|e| {
        panic!(
            "coral-loadgen wrote no report ({e}): {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        )
    });
    serde_json::from_slice(&body).unwrap()
}

fn percentile(mut values: Vec<f64>, q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}

#[test]
#[ignore = "minutes of load on a capped agent: scripts/overload.sh runs it"]
fn ten_times_the_agents_saturation() {
    let specs = three_agents();
    let Some(fleet) = Fleet::start(&specs, 1000) else {
        return;
    };
    let pid = fleet.agents[0].proc.as_ref().unwrap().pid();
    let _cap = CpuCap::new(pid, cpu_pct());
    let mut peak_rss_kb = 0;
    fleet.wait_acked(0, 100);

    let saturation = load(
        &fleet,
        pid,
        "saturation",
        &[
            "--rate",
            "0",
            "--duration",
            "20",
            "--warmup",
            "5",
            "--connections",
            "4",
            "--concurrency",
            "64",
        ]
        .map(str::to_owned),
        &mut peak_rss_kb,
    );
    let saturated = saturation["spans_per_sec"].as_f64().unwrap();
    assert!(saturated > 0.0, "{saturation}");
    let offered = (saturated * 10.0).round() as u64;
    eprintln!("saturation under the cap: {saturated:.0} spans/s; offering {offered} spans/s");

    let before = fleet.client(0);
    let started = Instant::now();
    let over = load(
        &fleet,
        pid,
        "overload",
        &[
            "--rate".into(),
            offered.to_string(),
            "--duration".into(),
            overload().as_secs().to_string(),
            "--warmup".into(),
            "0".into(),
            "--connections".into(),
            "8".into(),
            "--concurrency".into(),
            "2048".into(),
        ],
        &mut peak_rss_kb,
    );
    let during = fleet.client(0);
    let lasted = started.elapsed();
    eprintln!("overload report: {over}");

    // Load drops: the SDK client's refused batches go through, once.
    let recovery = fleet.wait_caught_up(0, Duration::from_secs(600));
    fleet.wait_acked(0, 100);
    fleet.stop_clients();
    let counters = fleet.agent_status(0)["counters"].clone();
    eprintln!("the overloaded agent's counters: {counters}");
    let log = std::fs::read_to_string(fleet.dir.path().join("a1-1.log")).unwrap_or_default();
    for line in log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .take(10)
    {
        eprintln!("agent log: {line}");
    }
    let accepted = counters["spans_accepted"].as_u64().unwrap();
    let retried = counters["spans_retried"].as_u64();
    let healthy_acked = during.acked - before.acked;
    let healthy_sent = during.sent - before.sent;
    let healthy_p99 = percentile(during.deliver_ms.clone(), 0.99);
    let figures = conclude(
        fleet,
        &format!(
            "10× saturation ({offered} spans/s offered to an agent capped at {} % of a core) for {}",
            cpu_pct(),
            humantime::format_duration(overload())
        ),
        Some(recovery),
    );
    let counted_a1 = figures.counted_by_agent.get("a1").copied().unwrap_or(0);
    eprintln!(
        "overload: {lasted:?}; offered {} spans, accepted {} ({:.0}/s), refused {} requests {:?}; \
         agent RSS peak {} MB (sampled), export p99 {} ms at the load generator; \
         SDK client during the overload: {healthy_acked} of {healthy_sent} spans acknowledged, \
         {} failed attempts, p99 from a batch's first attempt to its acknowledgement {healthy_p99} ms; agent accepted {accepted} spans in all, \
         the colony counts {counted_a1} for it; {retried:?} spans recognised as retries",
        over["spans_sent"],
        over["spans_ok"],
        over["spans_per_sec"].as_f64().unwrap_or(0.0),
        over["errors_by_code"]
            .as_object()
            .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum::<u64>()),
        over["errors_by_code"],
        peak_rss_kb / 1024,
        over["latency_p99_ms"],
        during.failed_attempts - before.failed_attempts,
    );
    figures.assert_exact();
    assert_eq!(
        counters["store_write_failures"], 0,
        "the overloaded agent's store kept writing: {counters}"
    );
    assert_eq!(
        counted_a1, accepted,
        "every span the overloaded agent accepted is counted once at the colony"
    );
    assert!(
        over["errors_by_code"]["UNAVAILABLE"].as_u64().unwrap_or(0) > 0,
        "an overloaded agent refuses with UNAVAILABLE: {over}"
    );
    assert!(
        healthy_acked > 0,
        "the SDK client on the overloaded agent keeps being served"
    );
}
