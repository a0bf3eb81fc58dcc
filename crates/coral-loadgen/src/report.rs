//! The run's result: a human-readable table on stdout and an optional JSON
//! file for scripts (`scripts/bench-load.sh` merges several into a table).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// Everything measured in one run. Field names are the JSON schema.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Label of the target (e.g. `rotel-blackhole`).
    pub target: String,
    /// OTLP/gRPC endpoint used.
    pub endpoint: String,
    /// Requested spans/s (0 = saturate).
    pub rate_target: u64,
    /// Spans issued during the measured window.
    pub spans_sent: u64,
    /// Spans acknowledged (OK minus partial-success rejections).
    pub spans_ok: u64,
    /// Spans rejected via `partial_success`.
    pub spans_rejected: u64,
    /// Spans in failed requests.
    pub spans_failed: u64,
    /// `spans_ok / duration_s`.
    pub spans_per_sec: f64,
    /// Target CPU, % of one core (null without a target pid).
    pub cpu_pct_one_core: Option<f64>,
    /// Target CPU % of one core per 10k spans/s.
    pub cpu_pct_per_10k_spans: Option<f64>,
    /// At saturation (`rate_target == 0`): spans/s one full core would handle.
    pub spans_per_sec_per_core: Option<f64>,
    /// Mean sampled target RSS, MiB.
    pub rss_avg_mib: Option<f64>,
    /// Max sampled target RSS during the window, MiB.
    pub rss_peak_mib: Option<f64>,
    /// Target's kernel RSS high-water mark (whole lifetime), MiB.
    pub vm_hwm_mib: Option<f64>,
    /// Average encoded bytes per span (incl. resource overhead).
    pub bytes_per_span: f64,
    /// Spans per request.
    pub spans_per_request: usize,
    /// Failed requests by gRPC code.
    pub errors_by_code: BTreeMap<String, u64>,
    /// Request latency p50, ms.
    pub latency_p50_ms: Option<f64>,
    /// Request latency p99, ms.
    pub latency_p99_ms: Option<f64>,
    /// The harness's own CPU, % of one core.
    pub harness_cpu_pct: f64,
    /// Times the pacer dropped >1 s of backlog (target too slow for the rate).
    pub pacer_lag_events: u64,
    /// Measured window length, s (warm-up excluded).
    pub duration_s: f64,
    /// Warm-up length, s.
    pub warmup_s: f64,
    /// gRPC connections.
    pub connections: usize,
    /// Max in-flight requests.
    pub concurrency: usize,
    /// Whether requests were gzip-compressed.
    pub gzip: bool,
    /// Number of `/proc` samples of the target.
    pub proc_samples: usize,
    /// True if the target process disappeared during the window.
    pub target_exited: bool,
}

fn opt(v: Option<f64>, decimals: usize, unit: &str) -> String {
    v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.decimals$}{unit}"))
}

impl Report {
    /// Prints the human-readable table.
    pub fn print(&self) {
        let rate = if self.rate_target == 0 {
            "saturate (unthrottled)".to_owned()
        } else {
            format!("{} spans/s", self.rate_target)
        };
        let errors = if self.errors_by_code.is_empty() {
            "none".to_owned()
        } else {
            self.errors_by_code
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let rows: Vec<(&str, String)> = vec![
            ("target", format!("{} ({})", self.target, self.endpoint)),
            ("rate target", rate),
            (
                "window",
                format!(
                    "{:.1} s (after {:.0} s warm-up)",
                    self.duration_s, self.warmup_s
                ),
            ),
            (
                "load shape",
                format!(
                    "{} spans/request, {} connections, {} in flight{}",
                    self.spans_per_request,
                    self.connections,
                    self.concurrency,
                    if self.gzip { ", gzip" } else { "" }
                ),
            ),
            ("bytes/span", format!("{:.1}", self.bytes_per_span)),
            ("spans sent", self.spans_sent.to_string()),
            (
                "spans ok",
                format!(
                    "{} (rejected {}, failed {})",
                    self.spans_ok, self.spans_rejected, self.spans_failed
                ),
            ),
            ("spans/s", format!("{:.0}", self.spans_per_sec)),
            ("errors", errors),
            (
                "latency p50 / p99",
                format!(
                    "{} / {}",
                    opt(self.latency_p50_ms, 2, " ms"),
                    opt(self.latency_p99_ms, 2, " ms")
                ),
            ),
            (
                "target CPU",
                opt(self.cpu_pct_one_core, 1, " % of one core"),
            ),
            (
                "CPU per 10k spans/s",
                opt(self.cpu_pct_per_10k_spans, 2, " %"),
            ),
            (
                "target RSS avg / peak",
                format!(
                    "{} / {} (lifetime HWM {})",
                    opt(self.rss_avg_mib, 1, " MiB"),
                    opt(self.rss_peak_mib, 1, " MiB"),
                    opt(self.vm_hwm_mib, 1, " MiB")
                ),
            ),
            (
                "harness CPU",
                format!("{:.1} % of one core", self.harness_cpu_pct),
            ),
        ];
        let mut rows = rows;
        if let Some(per_core) = self.spans_per_sec_per_core {
            rows.push(("spans/s per core (sat.)", format!("{per_core:.0}")));
        }
        if self.target_exited {
            rows.push((
                "WARNING",
                "target process exited during the window".to_owned(),
            ));
        }
        if self.pacer_lag_events > 0 {
            rows.push((
                "pacer lag events",
                format!("{} (could not sustain the rate)", self.pacer_lag_events),
            ));
        }
        let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        println!();
        for (k, v) in rows {
            println!("  {k:<width$}  {v}");
        }
        println!();
    }

    /// Writes the report as pretty JSON.
    pub fn write_json(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }
}
