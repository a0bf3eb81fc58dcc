//! The load generator: paces whole requests at the target span rate over a
//! pool of connections with bounded concurrency, and counts outcomes while
//! the measurement window is open.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

use crate::client::TraceClient;
use coral_loadgen::payload::Payloads;

/// Pacing tick.
const TICK: Duration = Duration::from_millis(10);
/// How long a sender waits after UNAVAILABLE / RESOURCE_EXHAUSTED.
const THROTTLE_BACKOFF: Duration = Duration::from_millis(100);

/// Outcome counters; only requests issued while `measuring` is set count.
#[derive(Default)]
pub struct Stats {
    measuring: AtomicBool,
    /// Requests issued.
    pub requests_sent: AtomicU64,
    /// Spans issued.
    pub spans_sent: AtomicU64,
    /// Requests answered OK.
    pub requests_ok: AtomicU64,
    /// Spans in OK requests, minus partial-success rejections.
    pub spans_ok: AtomicU64,
    /// `partial_success.rejected_spans` summed.
    pub spans_rejected: AtomicU64,
    /// Spans in failed requests.
    pub spans_failed: AtomicU64,
    /// Requests throttled (UNAVAILABLE / RESOURCE_EXHAUSTED).
    pub requests_throttled: AtomicU64,
    /// Times the pacer fell more than one second behind and dropped backlog.
    pub pacer_lag_events: AtomicU64,
    /// Failed requests by gRPC code name (e.g. `UNAVAILABLE`).
    pub errors_by_code: Mutex<BTreeMap<String, u64>>,
    /// Request latencies in microseconds.
    pub latencies_us: Mutex<Vec<u32>>,
}

impl Stats {
    /// Opens or closes the measurement window.
    pub fn set_measuring(&self, on: bool) {
        self.measuring.store(on, Relaxed);
    }

    /// Whether the measurement window is open.
    fn on(&self) -> bool {
        self.measuring.load(Relaxed)
    }

    /// Latency percentile in milliseconds (`q` in 0..=1).
    pub fn latency_ms(&self, q: f64) -> Option<f64> {
        let mut v = self.latencies_us.lock().ok()?.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let idx = ((v.len() - 1) as f64 * q).round() as usize;
        Some(f64::from(v[idx]) / 1000.0)
    }
}

/// `Code::DeadlineExceeded` → `DEADLINE_EXCEEDED`.
pub fn code_name(code: tonic::Code) -> String {
    let mut out = String::new();
    for (i, c) in format!("{code:?}").chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// Load parameters.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Target spans/s; 0 = as fast as `concurrency` allows.
    pub rate: u64,
    /// Max in-flight requests.
    pub concurrency: usize,
}

/// A running load generator.
pub struct Load {
    stop: watch::Sender<bool>,
    pacer: JoinHandle<()>,
    inflight: Arc<Semaphore>,
    concurrency: usize,
}

impl Load {
    /// Starts sending immediately.
    pub fn start(
        clients: Vec<TraceClient>,
        payloads: Arc<Payloads>,
        config: LoadConfig,
        stats: Arc<Stats>,
    ) -> Self {
        let inflight = Arc::new(Semaphore::new(config.concurrency));
        let (stop, stopped) = watch::channel(false);
        let pacer = tokio::spawn(pace(
            clients,
            payloads,
            config.clone(),
            stats,
            inflight.clone(),
            stopped,
        ));
        Self {
            stop,
            pacer,
            inflight,
            concurrency: config.concurrency,
        }
    }

    /// Stops issuing requests and waits up to `drain` for in-flight ones.
    pub async fn stop(self, drain: Duration) {
        let _ = self.stop.send(true);
        let _ = self.pacer.await;
        let all = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = tokio::time::timeout(drain, self.inflight.acquire_many(all)).await;
    }
}

async fn pace(
    clients: Vec<TraceClient>,
    payloads: Arc<Payloads>,
    config: LoadConfig,
    stats: Arc<Stats>,
    inflight: Arc<Semaphore>,
    mut stopped: watch::Receiver<bool>,
) {
    let per_request = payloads.spans_per_request() as u64;
    let start = Instant::now();
    let mut interval = tokio::time::interval(TICK);
    interval.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut issued_spans: u64 = 0;
    let mut seq: usize = 0;
    loop {
        if config.rate > 0 {
            tokio::select! {
                _ = interval.tick() => {}
                _ = stopped.changed() => return,
            }
            // Whole requests owed so far; the remainder carries over.
            let due = (config.rate as f64 * start.elapsed().as_secs_f64()) as u64;
            if due > issued_spans + config.rate {
                // More than 1 s behind (target or harness saturated): drop the
                // backlog rather than bursting it later.
                stats.pacer_lag_events.fetch_add(1, Relaxed);
                issued_spans = due - config.rate;
            }
            while issued_spans + per_request <= due {
                let permit = tokio::select! {
                    p = inflight.clone().acquire_owned() => p,
                    _ = stopped.changed() => return,
                };
                let Ok(permit) = permit else { return };
                issue(&clients, &payloads, &stats, seq, permit);
                seq += 1;
                issued_spans += per_request;
            }
        } else {
            let permit = tokio::select! {
                p = inflight.clone().acquire_owned() => p,
                _ = stopped.changed() => return,
            };
            let Ok(permit) = permit else { return };
            issue(&clients, &payloads, &stats, seq, permit);
            seq += 1;
        }
    }
}

fn issue(
    clients: &[TraceClient],
    payloads: &Payloads,
    stats: &Arc<Stats>,
    seq: usize,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let mut client = clients[seq % clients.len()].clone();
    let template = payloads.templates[seq % payloads.templates.len()].clone();
    let spans = template.spans() as u64;
    let stats = stats.clone();
    // Outcomes are attributed to the window the request was *issued* in, so
    // `spans_ok <= spans_sent`; requests still in flight when the window
    // closes are drained and counted by [`Load::stop`].
    let counted = stats.on();
    if counted {
        stats.requests_sent.fetch_add(1, Relaxed);
        stats.spans_sent.fetch_add(spans, Relaxed);
    }
    tokio::spawn(async move {
        let _permit = permit;
        let t0 = Instant::now();
        let result = client.export(template).await;
        let elapsed_us = u32::try_from(t0.elapsed().as_micros()).unwrap_or(u32::MAX);
        match result {
            Ok(resp) => {
                let rejected = resp
                    .partial_success
                    .map_or(0, |p| u64::try_from(p.rejected_spans).unwrap_or(0))
                    .min(spans);
                if counted {
                    stats.requests_ok.fetch_add(1, Relaxed);
                    stats.spans_ok.fetch_add(spans - rejected, Relaxed);
                    stats.spans_rejected.fetch_add(rejected, Relaxed);
                    if let Ok(mut l) = stats.latencies_us.lock() {
                        l.push(elapsed_us);
                    }
                }
            }
            Err(status) => {
                let throttled = matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::ResourceExhausted
                );
                if counted {
                    stats.spans_failed.fetch_add(spans, Relaxed);
                    if throttled {
                        stats.requests_throttled.fetch_add(1, Relaxed);
                    }
                    if let Ok(mut m) = stats.errors_by_code.lock() {
                        *m.entry(code_name(status.code())).or_default() += 1;
                    }
                }
                if throttled {
                    // Hold the in-flight slot while backing off.
                    tokio::time::sleep(THROTTLE_BACKOFF).await;
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_names() {
        assert_eq!(code_name(tonic::Code::Unavailable), "UNAVAILABLE");
        assert_eq!(
            code_name(tonic::Code::ResourceExhausted),
            "RESOURCE_EXHAUSTED"
        );
        assert_eq!(code_name(tonic::Code::Ok), "OK");
    }
}
