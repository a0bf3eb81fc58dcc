//! The demo's traffic: the fault-injection simulator's shop (frontend,
//! checkout, cart, payments, fraud, card-validator, inventory, …) exported
//! as OTLP/gRPC to the agent, as its services' SDKs would.
//!
//! First the history (`history` minutes, the fault in the last
//! [`FAULT_MINUTES`] of it, so that `coral ask` has a baseline and an
//! incident at once), then live: each minute is generated when it starts
//! and every trace is sent once it has ended, so `coral tap` and the
//! per-minute tables move in real time. Generation runs on a blocking
//! thread; a bounded channel holds the exports waiting to be sent.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_diagnose::data::HostMinute;
use coral_diagnose::sim::otlp::OtlpBatches;
use coral_diagnose::sim::run::{SimSink, SimSpan, generate};
use coral_diagnose::sim::{App, Decoys, FaultKind, Scenario, SimConfig};
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The fault runs for the last this many minutes of the history (and on).
pub const FAULT_MINUTES: i64 = 10;
/// Spans per export request.
const SPANS_PER_REQUEST: usize = 1_000;
/// Export requests waiting to be sent, at most.
const QUEUED_REQUESTS: usize = 16;

/// What the traffic generator is asked for.
#[derive(Debug, Clone, Copy)]
pub struct Traffic {
    /// The injected fault (`Healthy`: none).
    pub fault: FaultKind,
    /// Minutes of history sent at the start.
    pub history_minutes: i64,
}

/// A magnitude that `coral ask` finds plainly (the middle of the
/// evaluation suite's three).
fn magnitude(fault: FaultKind) -> f64 {
    fault.magnitudes()[1]
}

fn scenario(fault: FaultKind, seed: u64, fault_minutes: i64) -> Scenario {
    Scenario {
        fault,
        magnitude: if fault == FaultKind::Healthy {
            0.0
        } else {
            magnitude(fault)
        },
        seed,
        decoys: Decoys::default(),
        fault_minutes,
    }
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Sends into a channel as requests fill up (the history).
struct Streaming {
    batches: OtlpBatches,
    tx: mpsc::Sender<ExportTraceServiceRequest>,
}

impl SimSink for Streaming {
    fn trace(&mut self, trace_id: &str, spans: &[SimSpan]) {
        self.batches.add_trace(trace_id, spans);
        for request in self.batches.take_requests() {
            // The receiver is gone only when the demo stops.
            let _ = self.tx.blocking_send(request);
        }
    }
    fn host(&mut self, _: HostMinute) {}
}

/// Keeps whole traces with their end time (a live minute).
#[derive(Default)]
struct Collected(Vec<(i64, String, Vec<SimSpan>)>);

impl SimSink for Collected {
    fn trace(&mut self, trace_id: &str, spans: &[SimSpan]) {
        let end = spans.iter().map(|s| s.end).max().unwrap_or_default();
        self.0.push((end, trace_id.to_owned(), spans.to_vec()));
    }
    fn host(&mut self, _: HostMinute) {}
}

/// Runs the traffic against the OTLP gRPC endpoint `endpoint` until `stop`.
pub async fn run(traffic: Traffic, endpoint: String, stop: CancellationToken) {
    let (tx, mut rx) = mpsc::channel::<ExportTraceServiceRequest>(QUEUED_REQUESTS);
    let sender = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut client = None;
            while let Some(request) = rx.recv().await {
                if stop.is_cancelled() {
                    return;
                }
                send(&mut client, &endpoint, request, &stop).await;
            }
        }
    });
    let start_minute = now_unix() / 60 * 60;
    let history = {
        let tx = tx.clone();
        tokio::task::spawn_blocking(move || {
            let cfg = SimConfig {
                end: start_minute,
                minutes: traffic.history_minutes,
                ..SimConfig::default()
            };
            let fault_minutes = FAULT_MINUTES.min(traffic.history_minutes);
            let mut sink = Streaming {
                batches: OtlpBatches::new(SPANS_PER_REQUEST),
                tx,
            };
            generate(
                &App::shop(),
                &scenario(traffic.fault, 1, fault_minutes),
                &cfg,
                &mut sink,
            );
            sink.batches.seal();
            for request in sink.batches.take_requests() {
                let _ = sink.tx.blocking_send(request);
            }
        })
    };
    tokio::select! {
        _ = stop.cancelled() => return,
        _ = history => {}
    }
    tracing::info!(
        minutes = traffic.history_minutes,
        "demo history sent; live traffic follows"
    );
    let mut minute = start_minute;
    loop {
        let seed = (minute / 60) as u64;
        let generated = tokio::task::spawn_blocking(move || {
            let cfg = SimConfig {
                end: minute + 60,
                minutes: 1,
                ..SimConfig::default()
            };
            let mut sink = Collected::default();
            generate(
                &App::shop(),
                &scenario(traffic.fault, seed, 1),
                &cfg,
                &mut sink,
            );
            sink.0.sort_by_key(|(end, _, _)| *end);
            sink.0
        })
        .await
        .unwrap_or_default();
        let mut pending = generated.into_iter().peekable();
        while pending.peek().is_some() {
            let now_ns = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as i64)
                .unwrap_or_default();
            let mut batches = OtlpBatches::new(SPANS_PER_REQUEST);
            while let Some((_, id, spans)) = pending.next_if(|(end, _, _)| *end <= now_ns) {
                batches.add_trace(&id, &spans);
            }
            batches.seal();
            for request in batches.take_requests() {
                if tx.send(request).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        minute += 60;
        let wait = (minute - now_unix()).max(0) as u64;
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
        }
    }
    drop(tx);
    let _ = sender.await;
}

/// Sends one export, connecting first when needed; a refusal is logged
/// and retried once a second (the agent sheds load with UNAVAILABLE).
async fn send(
    client: &mut Option<TraceServiceClient<tonic::transport::Channel>>,
    endpoint: &str,
    request: ExportTraceServiceRequest,
    stop: &CancellationToken,
) {
    while !stop.is_cancelled() {
        if client.is_none() {
            match TraceServiceClient::connect(endpoint.to_owned()).await {
                Ok(c) => *client = Some(c),
                Err(error) => {
                    tracing::warn!(%error, endpoint, "demo traffic cannot reach the agent; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            }
        }
        let Some(c) = client.as_mut() else { continue };
        match c.export(request.clone()).await {
            Ok(_) => return,
            Err(status) => {
                tracing::warn!(code = ?status.code(), message = status.message(), "demo traffic export refused; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}
