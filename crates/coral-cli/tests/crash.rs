//! `kill -9` under steady load with `agent.telemetry.ack: stored`: after a
//! restart, every acknowledged span is stored (kept) and counted (RED), and
//! nothing is counted twice.

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::agent_command;
use common::process::Process;

const SPANS_PER_REQUEST: usize = 50;
const CLIENTS: usize = 4;
/// Acknowledged requests before the kill: a few commits' worth.
const ACKED_BEFORE_KILL: usize = 40;

fn serve(home: &Path, config: &Path, signal: &'static str, log: &str) -> (Process, String) {
    let cmd = agent_command(home, "crash", Some(config));
    let mut agent = Process::spawn(cmd, signal, home.join(log));
    let banner = agent.banner(|line| line.contains("otlp-http="));
    let http = banner
        .iter()
        .flat_map(|line| line.split_whitespace())
        .find_map(|word| word.strip_prefix("otlp-http="))
        .expect("the banner names the OTLP/HTTP address")
        .to_owned();
    (agent, http)
}

/// One export of [`SPANS_PER_REQUEST`] spans with fresh trace ids.
fn export(client: usize, request: usize) -> (String, Vec<String>) {
    common::json_export("crash", "GET /pay", 2, SPANS_PER_REQUEST, client, request)
}

/// What one crash run sent, had acknowledged, and found afterwards.
struct Figures {
    sent: usize,
    acked: HashSet<String>,
    stored: HashSet<String>,
    counted: i64,
}

impl Figures {
    fn lost(&self) -> Vec<&String> {
        self.acked.difference(&self.stored).collect()
    }

    fn row(&self, ack: &str) -> String {
        format!(
            "| {ack} | {} | {} | {} | {} | {} | {} |",
            self.sent,
            self.acked.len(),
            self.stored.len(),
            self.counted,
            self.lost().len(),
            (self.acked.len() as i64 - self.counted).max(0),
        )
    }
}

#[test]
fn kill_9_loses_no_acknowledged_span_with_ack_stored() {
    let figures = crash("stored");
    let lost = figures.lost();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged spans not stored, e.g. {:?}",
        lost.len(),
        figures.acked.len(),
        lost.first()
    );
    let (acked, sent) = (figures.acked.len(), figures.sent);
    assert!(
        figures.stored.len() <= sent,
        "{} stored of {sent} sent",
        figures.stored.len()
    );
    assert!(
        (acked as i64..=sent as i64).contains(&figures.counted),
        "RED counted {} spans; {acked} acknowledged, {sent} sent",
        figures.counted
    );
}

/// The figures of RELIABILITY.md, both modes:
/// `cargo test --workspace --test crash -- --ignored --nocapture`.
#[test]
#[ignore = "prints the RELIABILITY.md table; run by hand"]
fn kill_9_figures() {
    println!(
        "| ack | sent | acknowledged | stored | counted | acknowledged, not stored | acknowledged, not counted |"
    );
    println!("|---|---|---|---|---|---|---|");
    for ack in ["received", "stored"] {
        println!("{}", crash(ack).row(ack));
    }
}

/// Runs an agent with `agent.telemetry.ack: <ack>` under load, kills it
/// with SIGKILL, restarts it, stops it cleanly and reads its database.
fn crash(ack: &str) -> Figures {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("agent.yaml");
    std::fs::write(
        &config,
        format!("agent:\n  telemetry:\n    ack: {ack}\n    filters:\n      - sample_rate: 1.0\n"),
    )
    .unwrap();
    let (mut agent, http) = serve(home.path(), &config, "-KILL", "agent-1.log");

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let acked_requests = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (acked, sent, acked_requests, stop) = (
                acked.clone(),
                sent.clone(),
                acked_requests.clone(),
                stop.clone(),
            );
            let url = format!("http://{http}/v1/traces");
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                for request in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let (body, ids) = export(client, request);
                    sent.fetch_add(ids.len(), Ordering::Relaxed);
                    let answer = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send();
                    match answer {
                        Ok(response) if response.status() == 200 => {
                            acked.lock().unwrap().extend(ids);
                            acked_requests.fetch_add(1, Ordering::Relaxed);
                        }
                        // Killed mid-request, or refused: not acknowledged.
                        _ => return,
                    }
                }
            })
        })
        .collect();
    common::wait_for(
        "acknowledged exports under load",
        Duration::from_secs(60),
        || acked_requests.load(Ordering::Relaxed) >= ACKED_BEFORE_KILL,
    );
    // The load is still running when the agent dies.
    agent.stop();
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let sent = sent.load(Ordering::Relaxed);
    assert!(acked.len() >= ACKED_BEFORE_KILL * SPANS_PER_REQUEST);

    // A restart reads the pending RED back; a clean stop writes it out.
    let (mut agent, _) = serve(home.path(), &config, "-TERM", "agent-2.log");
    let status = agent.stop();
    assert!(status.success(), "{status}");

    let db = duckdb::Connection::open(home.path().join("agent/agent.duckdb")).unwrap();
    let stored: HashSet<String> = db
        .prepare("SELECT trace_id FROM otel_spans_local WHERE service_name = 'crash'")
        .unwrap()
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let counted: i64 = db
        .query_row(
            "SELECT coalesce(sum(total_spans), 0) FROM otel_buckets_local \
             WHERE service_name = 'crash'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    Figures {
        sent,
        acked,
        stored,
        counted,
    }
}
