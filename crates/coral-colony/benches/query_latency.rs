//! Query latency over a day of a fleet, on the embedded DuckDB and on
//! ClickHouse: `AGENTS` agents (200 by default) × 24 hours of 1-minute
//! buckets (two services, SERVER, two operations each) and one kept trace of
//! three spans per agent and minute, stored through the colony's own write
//! paths; then the reads behind `coral query otel` (one service, 24 h),
//! `coral query services` (24 h), `coral query traces` (the last hour) and
//! one trace (`GetTrace`), each timed `RUNS` times (median and slowest).
//!
//! With `CLICKHOUSE_URL` set, the same rows go into ClickHouse too (a fresh
//! database, dropped afterwards); `BENCH=query_latency
//! scripts/bench-clickhouse.sh` starts a server and runs both.
//!
//! ```sh
//! cargo bench --workspace --bench query_latency               # 200 agents x 24 h
//! AGENTS=20 HOURS=2 cargo bench --workspace --bench query_latency
//! ```

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coral_colony::store::Database;
use coral_colony::store::beyla::BeylaRows;
use coral_colony::store::clickhouse::{ClickHouse, Settings};
use coral_colony::store::engine::Store;
use coral_colony::store::ingest::{Page, Stream};
use coral_colony::store::writer::{Writer, WriterSender};
use coral_model::{Bucket, BucketKey, SpanKind};
use coral_proto::colony::{ListServicesRequest, ListTracesRequest};
use coral_proto::common::{TelemetryBucket, TelemetrySpan};

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

const SERVICES: [&str; 2] = ["checkout", "cart"];

/// One hour of one agent: a page of buckets and kept spans.
fn hour_page(agent: usize, hour: usize, first_minute: i64) -> Page {
    let mut buckets: Vec<TelemetryBucket> = Vec::new();
    let mut spans: Vec<TelemetrySpan> = Vec::new();
    let mut seq = (hour * 60 * 5) as u64;
    for m in 0..60 {
        let minute = first_minute + ((hour * 60 + m) as i64) * 60;
        let trace = format!("{:016x}{:016x}", agent, hour * 60 + m);
        for (s, service) in SERVICES.iter().enumerate() {
            let mut b = Bucket::new(BucketKey {
                minute,
                service: (*service).into(),
                kind: SpanKind::Server,
            });
            for (o, op) in ["GET /items", "POST /pay"].iter().enumerate() {
                let mut stats = coral_model::Stats::new();
                for i in 0..10 {
                    let d = 5.0 + ((agent + m + i + o + s) % 97) as f64 * 3.1;
                    b.stats.record(d, i == 0 && m % 7 == 0, &trace);
                    stats.record(d, i == 0 && m % 7 == 0, &trace);
                }
                b.operations.push(((*op).into(), stats));
            }
            seq += 1;
            buckets.push(b.to_proto("", seq));
        }
        for i in 0..3u64 {
            seq += 1;
            spans.push(TelemetrySpan {
                seq_id: seq,
                trace_id: trace.clone(),
                span_id: format!("{:016x}", (seq << 2) | i),
                parent_span_id: if i == 0 {
                    String::new()
                } else {
                    format!("{:016x}", seq << 2)
                },
                service_name: SERVICES[(i as usize) % 2].into(),
                span_name: "GET /items".into(),
                span_kind: "SERVER".into(),
                start_time_unix_nano: minute * 1_000_000_000 + (i as i64) * 1_000_000,
                duration_us: 40_000 - (i as i64) * 10_000,
                keep_reason: "sampled".into(),
                attributes_json: r#"{"http.route":"/items"}"#.into(),
                resource_json: r#"{"host.name":"bench"}"#.into(),
                ..Default::default()
            });
        }
    }
    Page {
        agent_id: format!("agent-{agent:03}"),
        stream: Stream::Pull,
        session_id: format!("agent-{agent:03}-session"),
        start_seq: (hour * 60 * 5) as u64,
        max_seq: seq,
        buckets,
        spans,
        hosts: Vec::new(),
        beyla: BeylaRows::default(),
        reported: Vec::new(),
    }
}

/// Stores every agent's hours through `tx`, `parallel` pages at once.
async fn load(
    tx: &WriterSender,
    agents: usize,
    hours: usize,
    first: i64,
    parallel: usize,
) -> usize {
    let mut rows = 0;
    for hour in 0..hours {
        for chunk in (0..agents).collect::<Vec<_>>().chunks(parallel) {
            let pages: Vec<Page> = chunk.iter().map(|&a| hour_page(a, hour, first)).collect();
            let stored = futures::future::join_all(pages.into_iter().map(|p| tx.store(p))).await;
            for outcome in stored {
                rows += outcome.expect("page stored").stored;
            }
        }
    }
    rows
}

/// Median and slowest of `runs` timed calls of `read`.
async fn time<F, Fut, T>(runs: usize, mut read: F) -> (Duration, Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let started = Instant::now();
        last = Some(read().await);
        times.push(started.elapsed());
    }
    times.sort();
    (
        times[runs / 2],
        times[runs - 1],
        last.expect("at least one run"),
    )
}

async fn queries(
    engine: &str,
    store: &Store,
    first: i64,
    hours: usize,
    agents: usize,
    runs: usize,
) {
    let (from, to) = (first, first + hours as i64 * 3600);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    // Warm the caches once (as a colony that has been answering).
    let _ = store.services(ListServicesRequest::default()).await;

    let (median, max, r) = time(runs, || {
        store.otel_summaries("checkout".into(), from, to, String::new(), String::new())
    })
    .await;
    let r = r.expect("summaries");
    assert_eq!(r.rows.len(), hours * 60, "one row per minute");
    let total: i64 = r.rows.iter().map(|row| row.total_spans).sum();
    println!(
        "{engine}: coral query otel --service checkout, {hours} h: median {:.1} ms, slowest {:.1} ms ({} minutes, {total} spans)",
        ms(median),
        ms(max),
        r.rows.len()
    );
    let req = ListServicesRequest {
        start_time_unix_ms: from * 1000,
        end_time_unix_ms: to * 1000,
    };
    let (median, max, r) = time(runs, || store.services(req)).await;
    let r = r.expect("services");
    assert_eq!(r.len(), SERVICES.len());
    println!(
        "{engine}: coral query services, {hours} h: median {:.1} ms, slowest {:.1} ms ({} services, {} agents each)",
        ms(median),
        ms(max),
        r.len(),
        r[0].agents.len()
    );
    let list = ListTracesRequest {
        limit: 20,
        ..Default::default()
    };
    let (median, max, r) = time(runs, || {
        store.traces(list.clone(), (to - 3600) * 1000, to * 1000)
    })
    .await;
    let r = r.expect("trace list");
    assert_eq!(r.traces.len(), 20);
    println!(
        "{engine}: coral query traces (slowest 20 of the last hour): median {:.1} ms, slowest {:.1} ms",
        ms(median),
        ms(max)
    );
    let id = format!("{:016x}{:016x}", agents / 2, hours * 30);
    let (median, max, r) = time(runs, || store.trace(id.clone(), 0)).await;
    let r = r.expect("trace");
    assert_eq!(r.span_count, 3);
    println!(
        "{engine}: one trace (GetTrace): median {:.1} ms, slowest {:.1} ms",
        ms(median),
        ms(max)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let agents = env("AGENTS", 200);
    let hours = env("HOURS", 24);
    let runs = env("RUNS", 7);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let first = (now / 60) * 60 - hours as i64 * 3600;
    let rows_per_agent = hours * 60 * 5;

    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let (writer, tx) = Writer::start(conn, db.clone(), Default::default()).unwrap();
    println!("loading {agents} agents x {hours} h ({rows_per_agent} rows each) into DuckDB…");
    let started = Instant::now();
    let rows = load(&tx, agents, hours, first, 8).await;
    println!(
        "DuckDB: {rows} rows in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    queries("DuckDB", &Store::DuckDb(db), first, hours, agents, runs).await;
    tx.close();
    tokio::task::block_in_place(|| writer.join());

    if let Ok(url) = std::env::var("CLICKHOUSE_URL") {
        let database = format!("query_latency_{}", std::process::id());
        let ch = ClickHouse::open(&Settings {
            url,
            database: database.clone(),
            user: "default".into(),
            password: String::new(),
            cluster: None,
        })
        .await
        .expect("ClickHouse at CLICKHOUSE_URL");
        let tx = WriterSender::clickhouse(ch.clone(), Default::default(), Default::default());
        println!("loading the same rows into ClickHouse…");
        let started = Instant::now();
        let rows = load(&tx, agents, hours, first, 8).await;
        println!(
            "ClickHouse: {rows} rows in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        queries(
            "ClickHouse",
            &Store::ClickHouse(ch.clone()),
            first,
            hours,
            agents,
            runs,
        )
        .await;
        ch.client()
            .query(&format!("DROP DATABASE `{database}`"))
            .execute()
            .await
            .unwrap();
    }
}
