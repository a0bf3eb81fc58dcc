//! Host metrics from `/proc`: CPU %, memory used, network bytes per second and
//! load average, sampled once a minute (`agent.host_metrics.interval`) and
//! stored with a seq_id like any other row, so the colony pulls them with the
//! same cursor and joins them with span summaries by `(agent_id, bucket_time)`.
//!
//! CPU and network are rates over the time since the previous sample (the
//! sampler reads a baseline when it is created).
//!
//! Samples come from a [`HostSource`]: [`HostSampler`] reads `/proc`;
//! [`HostReplay`] hands over samples pushed to it (simulations and tests,
//! e.g. a host that saturates its CPU at a chosen minute). [`run`] is the
//! component `runtime.rs` wires: one tick per interval until stopped.

use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coral_proto::common::HostMetrics;
use tokio_util::sync::CancellationToken;

use crate::store::writer::{WriteOp, WriterSender};

/// Where host samples come from.
pub trait HostSource: Send + 'static {
    /// The samples to store at this tick (`now`): usually one.
    fn take(&mut self, now: SystemTime) -> io::Result<Vec<HostMetrics>>;
}

/// Samples pushed by their producer and stored at the next tick, with
/// their own bucket times: a stand-in for `/proc` in simulations and tests.
/// Clones share one queue.
#[derive(Debug, Clone, Default)]
pub struct HostReplay(Arc<Mutex<VecDeque<HostMetrics>>>);

impl HostReplay {
    /// An empty replay.
    pub fn new() -> HostReplay {
        HostReplay::default()
    }

    /// Queues a sample (its `bucket_time` and `hostname` are kept as given).
    pub fn push(&self, sample: HostMetrics) {
        self.0.lock().expect("host replay lock").push_back(sample);
    }

    /// Samples queued and not yet taken.
    pub fn pending(&self) -> usize {
        self.0.lock().expect("host replay lock").len()
    }
}

impl HostSource for HostReplay {
    fn take(&mut self, _now: SystemTime) -> io::Result<Vec<HostMetrics>> {
        Ok(self.0.lock().expect("host replay lock").drain(..).collect())
    }
}

impl HostSource for HostSampler {
    fn take(&mut self, now: SystemTime) -> io::Result<Vec<HostMetrics>> {
        Ok(vec![self.sample(now)?])
    }
}

/// Takes samples from `source` every `every` and hands them to the writer,
/// until `stop`.
pub(crate) async fn run(
    mut source: Box<dyn HostSource>,
    writer: WriterSender,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => match source.take(SystemTime::now()) {
                Ok(samples) => {
                    for sample in samples {
                        let _ = writer.send(WriteOp::Host(sample));
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot sample host metrics"),
            },
        }
    }
}

/// CPU jiffies from the `cpu` line of `/proc/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CpuTimes {
    /// All time.
    pub total: u64,
    /// Idle and iowait.
    pub idle: u64,
}

/// Parses the aggregate `cpu` line of `/proc/stat`.
pub fn parse_stat(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    if fields.len() < 4 {
        return None;
    }
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes { total, idle })
}

/// Parses `MemTotal` and `MemAvailable` (bytes) from `/proc/meminfo`.
pub fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    Some((field("MemTotal:")?, field("MemAvailable:")?))
}

/// Sums received and transmitted bytes over non-loopback interfaces of
/// `/proc/net/dev`.
pub fn parse_net_dev(text: &str) -> (u64, u64) {
    let mut rx = 0u64;
    let mut tx = 0u64;
    for line in text.lines().skip(2) {
        let Some((iface, counters)) = line.split_once(':') else {
            continue;
        };
        if iface.trim() == "lo" {
            continue;
        }
        let fields: Vec<u64> = counters
            .split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        if fields.len() >= 9 {
            rx = rx.saturating_add(fields[0]);
            tx = tx.saturating_add(fields[8]);
        }
    }
    (rx, tx)
}

/// Parses the three load averages of `/proc/loadavg`.
pub fn parse_loadavg(text: &str) -> Option<(f64, f64, f64)> {
    let mut it = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

#[derive(Debug, Clone, Copy)]
struct Baseline {
    at: Instant,
    cpu: CpuTimes,
    net: (u64, u64),
}

/// Samples a `/proc` tree (the real one, or a fixture in tests).
pub struct HostSampler {
    root: PathBuf,
    hostname: String,
    last: Option<Baseline>,
}

impl HostSampler {
    /// A sampler of `root` (normally `/proc`); reads the baseline now.
    pub fn new(root: impl Into<PathBuf>, hostname: String) -> Self {
        let mut sampler = HostSampler {
            root: root.into(),
            hostname,
            last: None,
        };
        sampler.last = sampler.baseline().ok();
        sampler
    }

    fn read(&self, name: &str) -> io::Result<String> {
        std::fs::read_to_string(self.root.join(name))
    }

    fn baseline(&self) -> io::Result<Baseline> {
        let cpu = parse_stat(&self.read("stat")?).ok_or_else(|| bad(&self.root, "stat"))?;
        let net = self
            .read("net/dev")
            .map(|t| parse_net_dev(&t))
            .unwrap_or_default();
        Ok(Baseline {
            at: Instant::now(),
            cpu,
            net,
        })
    }

    /// Takes a sample: rates since the previous sample, memory and load now.
    pub fn sample(&mut self, now: SystemTime) -> io::Result<HostMetrics> {
        let current = self.baseline()?;
        let (total, available) =
            parse_meminfo(&self.read("meminfo")?).ok_or_else(|| bad(&self.root, "meminfo"))?;
        let (load1, load5, load15) =
            parse_loadavg(&self.read("loadavg")?).ok_or_else(|| bad(&self.root, "loadavg"))?;
        let previous = self.last.replace(current);
        let (cpu_percent, rx, tx, seconds) = match previous {
            Some(p) => {
                let seconds = current.at.duration_since(p.at).as_secs_f64();
                let total = current.cpu.total.saturating_sub(p.cpu.total);
                let idle = current.cpu.idle.saturating_sub(p.cpu.idle);
                let cpu = if total == 0 {
                    0.0
                } else {
                    100.0 * (total - idle.min(total)) as f64 / total as f64
                };
                let per_sec = |now: u64, before: u64| {
                    if seconds > 0.0 {
                        now.saturating_sub(before) as f64 / seconds
                    } else {
                        0.0
                    }
                };
                (
                    cpu,
                    per_sec(current.net.0, p.net.0),
                    per_sec(current.net.1, p.net.1),
                    seconds,
                )
            }
            None => (0.0, 0.0, 0.0, 0.0),
        };
        let unix = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs() as i64;
        Ok(HostMetrics {
            seq_id: 0,
            bucket_time: unix - unix.rem_euclid(60),
            cpu_percent,
            memory_used_bytes: total.saturating_sub(available),
            memory_total_bytes: total,
            net_rx_bytes_per_sec: rx,
            net_tx_bytes_per_sec: tx,
            load1,
            load5,
            load15,
            interval_seconds: seconds,
            hostname: self.hostname.clone(),
        })
    }
}

fn bad(root: &Path, name: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("unexpected format in {}", root.join(name).display()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        let stat = "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\n";
        assert_eq!(
            parse_stat(stat),
            Some(CpuTimes {
                total: 1000,
                idle: 850
            })
        );
        let mem = "MemTotal:       16000 kB\nMemFree:  1000 kB\nMemAvailable:    4000 kB\n";
        assert_eq!(parse_meminfo(mem), Some((16000 * 1024, 4000 * 1024)));
        let net = "Inter-|   Receive |  Transmit\n face |bytes packets errs drop fifo frame compressed multicast|bytes\n    lo: 999 1 0 0 0 0 0 0 999 1 0 0 0 0 0 0\n  eth0: 1000 10 0 0 0 0 0 0 2000 20 0 0 0 0 0 0\n  eth1: 5 1 0 0 0 0 0 0 7 1 0 0 0 0 0 0\n";
        assert_eq!(parse_net_dev(net), (1005, 2007));
        assert_eq!(
            parse_loadavg("0.50 0.25 0.10 1/300 4242\n"),
            Some((0.5, 0.25, 0.1))
        );
    }

    #[test]
    fn rates_come_from_the_previous_sample() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("net")).unwrap();
        let write = |cpu: &str, rx: u64| {
            std::fs::write(root.join("stat"), format!("cpu  {cpu}\n")).unwrap();
            std::fs::write(
                root.join("net/dev"),
                format!("h\nh\n  eth0: {rx} 0 0 0 0 0 0 0 {rx} 0 0 0 0 0 0 0\n"),
            )
            .unwrap();
        };
        std::fs::write(
            root.join("meminfo"),
            "MemTotal: 100 kB\nMemAvailable: 40 kB\n",
        )
        .unwrap();
        std::fs::write(root.join("loadavg"), "1.00 2.00 3.00 1/1 1\n").unwrap();
        write("100 0 0 900 0 0 0 0", 0);
        let mut sampler = HostSampler::new(root, "h1".into());
        // 300 more jiffies, 150 of them busy: 50 %.
        write("200 0 50 1050 0 0 0 0", 1_000_000);
        let s = sampler
            .sample(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(125))
            .unwrap();
        assert!((s.cpu_percent - 50.0).abs() < 1e-9, "{}", s.cpu_percent);
        assert_eq!(s.memory_used_bytes, 60 * 1024);
        assert_eq!(s.memory_total_bytes, 100 * 1024);
        assert_eq!(s.bucket_time, 120);
        assert!(s.net_rx_bytes_per_sec > 0.0);
        assert_eq!(s.net_rx_bytes_per_sec, s.net_tx_bytes_per_sec);
        assert_eq!((s.load1, s.load5, s.load15), (1.0, 2.0, 3.0));
        assert_eq!(s.hostname, "h1");
    }
}
