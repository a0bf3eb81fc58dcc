//! Samples a process's CPU time and memory from `/proc`.
//!
//! CPU comes from `utime + stime` in `/proc/<pid>/stat` (clock ticks, converted
//! with `getconf CLK_TCK`), memory from `VmRSS` / `VmHWM` in
//! `/proc/<pid>/status`. Only the given pid is measured, not its children.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Clock ticks per second (`getconf CLK_TCK`, read once; 100 if unavailable).
pub fn clk_tck() -> u64 {
    static TCK: OnceLock<u64> = OnceLock::new();
    *TCK.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t| *t > 0)
            .unwrap_or(100)
    })
}

/// One reading of a process.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// When it was taken.
    pub at: Instant,
    /// `utime + stime` in clock ticks.
    pub cpu_ticks: u64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
    /// Peak resident set size (high-water mark) in KiB.
    pub hwm_kib: u64,
}

/// Reads `/proc/<pid>` (`pid` may be `"self"`).
pub fn read(pid: &str) -> Result<Sample> {
    let at = Instant::now();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the parenthesised command name; utime/stime are fields
    // 14/15 of the whole line, i.e. 12/13 after `comm`.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .context("malformed stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64> {
        fields
            .get(i)
            .context("short stat")?
            .parse()
            .context("bad stat field")
    };
    let cpu_ticks = tick(11)? + tick(12)?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(Sample {
        at,
        cpu_ticks,
        rss_kib: kib("VmRSS:"),
        hwm_kib: kib("VmHWM:"),
    })
}

/// CPU used between two samples as % of one core.
pub fn cpu_pct(first: &Sample, last: &Sample) -> f64 {
    let wall = last.at.duration_since(first.at).as_secs_f64();
    if wall <= 0.0 {
        return 0.0;
    }
    let secs = last.cpu_ticks.saturating_sub(first.cpu_ticks) as f64 / clk_tck() as f64;
    secs / wall * 100.0
}

/// What was observed over the measured window.
#[derive(Debug, Clone, Default)]
pub struct ProcSummary {
    /// CPU % of one core over the window.
    pub cpu_pct: f64,
    /// Mean sampled RSS in MiB.
    pub rss_avg_mib: f64,
    /// Max sampled RSS in MiB.
    pub rss_peak_mib: f64,
    /// Kernel high-water mark at the end (whole process lifetime) in MiB.
    pub vm_hwm_mib: f64,
    /// Number of samples taken.
    pub samples: usize,
    /// Set if the process vanished during the window.
    pub exited: bool,
}

/// A background sampler; stop it with [`Sampler::finish`].
pub struct Sampler {
    stop: watch::Sender<bool>,
    task: JoinHandle<ProcSummary>,
}

impl Sampler {
    /// Starts sampling `pid` every `every`, beginning immediately.
    pub fn start(pid: u32, every: Duration) -> Result<Self> {
        let pid = pid.to_string();
        let first = read(&pid)?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut samples = vec![first];
            let mut exited = false;
            let mut interval = tokio::time::interval(every);
            interval.tick().await;
            loop {
                let done = tokio::select! {
                    _ = interval.tick() => false,
                    _ = stopped.changed() => true,
                };
                match read(&pid) {
                    Ok(s) => samples.push(s),
                    Err(_) => {
                        exited = true;
                        break;
                    }
                }
                if done {
                    break;
                }
            }
            summarize(&samples, exited)
        });
        Ok(Self { stop, task })
    }

    /// Takes a final sample and returns the summary.
    pub async fn finish(self) -> ProcSummary {
        let _ = self.stop.send(true);
        self.task.await.unwrap_or_default()
    }
}

fn summarize(samples: &[Sample], exited: bool) -> ProcSummary {
    const MIB: f64 = 1024.0;
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return ProcSummary::default();
    };
    let n = samples.len();
    let rss_sum: u64 = samples.iter().map(|s| s.rss_kib).sum();
    let rss_max = samples.iter().map(|s| s.rss_kib).max().unwrap_or(0);
    ProcSummary {
        cpu_pct: cpu_pct(first, last),
        rss_avg_mib: rss_sum as f64 / n as f64 / MIB,
        rss_peak_mib: rss_max as f64 / MIB,
        vm_hwm_mib: last.hwm_kib as f64 / MIB,
        samples: n,
        exited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_self() {
        let s = read("self").unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.hwm_kib >= s.rss_kib);
        assert!(clk_tck() > 0);
    }
}
