//! `coral-loadgen`: an end-to-end OTLP/gRPC load harness.
//!
//! Replays realistic, pre-encoded trace exports (HTTP server spans from a
//! synthetic "shop") at a target span rate against an OTLP/gRPC endpoint and
//! reports the spans/s achieved together with the target process's CPU (% of
//! one core) and RSS, sampled from `/proc` over the measured window.
//!
//! ```text
//! coral-loadgen --spawn "rotel-agent start --exporter blackhole \
//!     --otlp-grpc-endpoint 127.0.0.1:4327" --endpoint 127.0.0.1:4327 \
//!     --rate 10000 --duration 30 --json bench-results/rotel-10k.json
//! ```

mod client;
mod load;
mod proc_stats;
mod report;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;

use crate::client::TraceClient;
use crate::load::{Load, LoadConfig, Stats};
use crate::report::Report;
use crate::target::Spawned;
use coral_loadgen::payload::Payloads;

/// Replays realistic OTLP trace exports over gRPC at a target rate and
/// measures the receiving process's CPU and memory.
#[derive(Debug, Parser)]
#[command(name = "coral-loadgen", version)]
struct Cli {
    /// OTLP/gRPC endpoint (host:port).
    #[arg(long, default_value = "127.0.0.1:4317")]
    endpoint: String,
    /// Target spans per second; 0 = unthrottled (saturate).
    #[arg(long, default_value_t = 10_000)]
    rate: u64,
    /// Number of gRPC (HTTP/2) connections; requests are spread round-robin.
    #[arg(long, default_value_t = 2)]
    connections: usize,
    /// Maximum in-flight export requests.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Measured duration in seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Warm-up in seconds (load is sent, nothing is counted).
    #[arg(long, default_value_t = 5.0)]
    warmup: f64,
    /// Gzip-compress requests.
    #[arg(long)]
    gzip: bool,
    /// Pid of an already-running target to measure.
    #[arg(long, conflicts_with = "spawn")]
    target_pid: Option<u32>,
    /// Command line to start the target (split like a shell, no expansion).
    #[arg(long)]
    spawn: Option<String>,
    /// Extra environment for --spawn, `K=V` (repeatable).
    #[arg(long = "spawn-env", value_name = "K=V", requires = "spawn")]
    spawn_env: Vec<String>,
    /// File for the spawned target's stdout/stderr (default: discarded).
    #[arg(long, requires = "spawn")]
    spawn_log: Option<PathBuf>,
    /// Seconds to wait for a spawned target to accept connections.
    #[arg(long, default_value_t = 30.0)]
    startup_timeout: f64,
    /// Label for the target in the report (default: program name or pid).
    #[arg(long)]
    label: Option<String>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Number of distinct pre-encoded requests.
    #[arg(long, default_value_t = 64)]
    variants: usize,
    /// Spans per export request.
    #[arg(long, default_value_t = 100)]
    spans_per_request: usize,
    /// Seed for the payload generator.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// /proc sampling interval in milliseconds.
    #[arg(long, default_value_t = 500)]
    sample_interval_ms: u64,
    /// Harness runtime worker threads (0 = one per CPU).
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Print one span's size and JSON rendering, then exit.
    #[arg(long)]
    print_sample: bool,
}

fn main() {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if cli.threads > 0 {
        rt.worker_threads(cli.threads);
    }
    let result = rt
        .build()
        .context("building tokio runtime")
        .and_then(|rt| rt.block_on(run(cli)));
    if let Err(e) = result {
        eprintln!("coral-loadgen: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    if cli.concurrency == 0 || cli.connections == 0 {
        bail!("--concurrency and --connections must be at least 1");
    }
    if !(cli.duration > 0.0 && cli.warmup >= 0.0) {
        bail!("--duration must be > 0 and --warmup >= 0");
    }
    let payloads = Arc::new(Payloads::build(
        cli.variants,
        cli.spans_per_request,
        cli.seed,
    )?);
    if cli.print_sample {
        return payloads.print_sample();
    }

    let mut spawned = match &cli.spawn {
        Some(cmd) => {
            target::check_free(&cli.endpoint)?;
            let mut child = Spawned::start(cmd, &cli.spawn_env, cli.spawn_log.as_deref())?;
            let timeout = Duration::from_secs_f64(cli.startup_timeout);
            match child.wait_ready(&cli.endpoint, timeout) {
                Ok(took) => eprintln!(
                    "coral-loadgen: spawned pid {} listening on {} after {:.0} ms",
                    child.pid(),
                    cli.endpoint,
                    took.as_secs_f64() * 1000.0
                ),
                Err(e) => {
                    eprintln!(
                        "coral-loadgen: target {}",
                        child.terminate(Duration::from_secs(5))
                    );
                    return Err(e);
                }
            }
            Some(child)
        }
        None => {
            target::check_reachable(&cli.endpoint)?;
            None
        }
    };
    let pid = cli.target_pid.or(spawned.as_ref().map(Spawned::pid));
    if let Some(pid) = cli.target_pid {
        proc_stats::read(&pid.to_string()).with_context(|| format!("no process with pid {pid}"))?;
    }
    if pid.is_none() {
        eprintln!("coral-loadgen: no --target-pid/--spawn: measuring throughput only");
    }

    let outcome = drive(&cli, payloads.clone(), pid).await;
    let target_ended = match spawned.take() {
        Some(mut child) => {
            let died = child.has_exited();
            let how = child.terminate(Duration::from_secs(10));
            eprintln!("coral-loadgen: target {how}");
            died
        }
        None => false,
    };
    let report = outcome?;
    report.print();
    if let Some(path) = &cli.json {
        report.write_json(path)?;
        eprintln!("coral-loadgen: wrote {}", path.display());
    }
    if target_ended || report.target_exited {
        bail!("the target exited during the run");
    }
    if report.spans_ok == 0 && report.spans_sent > 0 {
        bail!(
            "the target accepted none of the {} spans sent",
            report.spans_sent
        );
    }
    Ok(())
}

/// Connects, runs warm-up and the measured window, and builds the report.
async fn drive(cli: &Cli, payloads: Arc<Payloads>, pid: Option<u32>) -> Result<Report> {
    let mut clients = Vec::with_capacity(cli.connections);
    for _ in 0..cli.connections {
        clients.push(TraceClient::connect(&cli.endpoint, cli.gzip).await?);
    }
    let stats = Arc::new(Stats::default());
    let config = LoadConfig {
        rate: cli.rate,
        concurrency: cli.concurrency,
    };
    let load = Load::start(clients, payloads.clone(), config, stats.clone());
    tokio::time::sleep(Duration::from_secs_f64(cli.warmup)).await;

    let every = Duration::from_millis(cli.sample_interval_ms.max(10));
    let sampler = pid
        .map(|p| proc_stats::Sampler::start(p, every))
        .transpose()?;
    let harness_start = proc_stats::read("self")?;
    stats.set_measuring(true);
    let window_start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(cli.duration)).await;
    stats.set_measuring(false);
    let window = window_start.elapsed().as_secs_f64();
    let proc = match sampler {
        Some(s) => Some(s.finish().await),
        None => None,
    };
    let harness_end = proc_stats::read("self")?;
    load.stop(Duration::from_secs(5)).await;

    let spans_ok = stats.spans_ok.load(Relaxed);
    let spans_per_sec = spans_ok as f64 / window;
    let cpu = proc.as_ref().map(|p| p.cpu_pct);
    let label = cli.label.clone().unwrap_or_else(|| default_label(cli));
    Ok(Report {
        target: label,
        endpoint: cli.endpoint.clone(),
        rate_target: cli.rate,
        spans_sent: stats.spans_sent.load(Relaxed),
        spans_ok,
        spans_rejected: stats.spans_rejected.load(Relaxed),
        spans_failed: stats.spans_failed.load(Relaxed),
        spans_per_sec,
        cpu_pct_one_core: cpu,
        cpu_pct_per_10k_spans: cpu
            .filter(|_| spans_per_sec > 0.0)
            .map(|c| c / (spans_per_sec / 10_000.0)),
        spans_per_sec_per_core: cpu
            .filter(|c| cli.rate == 0 && *c > 0.0)
            .map(|c| spans_per_sec / (c / 100.0)),
        rss_avg_mib: proc.as_ref().map(|p| p.rss_avg_mib),
        rss_peak_mib: proc.as_ref().map(|p| p.rss_peak_mib),
        vm_hwm_mib: proc.as_ref().map(|p| p.vm_hwm_mib),
        bytes_per_span: payloads.bytes_per_span(),
        spans_per_request: payloads.spans_per_request(),
        errors_by_code: stats
            .errors_by_code
            .lock()
            .map(|m| m.clone())
            .unwrap_or_default(),
        latency_p50_ms: stats.latency_ms(0.50),
        latency_p99_ms: stats.latency_ms(0.99),
        harness_cpu_pct: proc_stats::cpu_pct(&harness_start, &harness_end),
        pacer_lag_events: stats.pacer_lag_events.load(Relaxed),
        duration_s: window,
        warmup_s: cli.warmup,
        connections: cli.connections,
        concurrency: cli.concurrency,
        gzip: cli.gzip,
        proc_samples: proc.as_ref().map_or(0, |p| p.samples),
        target_exited: proc.as_ref().is_some_and(|p| p.exited),
    })
}

fn default_label(cli: &Cli) -> String {
    if let Some(cmd) = &cli.spawn {
        let program = target::shell_split(cmd)
            .ok()
            .and_then(|w| w.into_iter().next())
            .unwrap_or_default();
        return std::path::Path::new(&program)
            .file_name()
            .map_or(program.clone(), |f| f.to_string_lossy().into_owned());
    }
    match cli.target_pid {
        Some(pid) => std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|c| c.trim().to_owned())
            .unwrap_or_else(|_| format!("pid {pid}")),
        None => cli.endpoint.clone(),
    }
}
