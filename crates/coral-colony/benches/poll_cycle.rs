//! One poll cycle of the colony against simulated agents, next to DuckDB's raw
//! Appender rate on the same machine.
//!
//! Each simulated agent is a real `AgentService` gRPC server on 127.0.0.1:0
//! that holds `SPANS` kept spans and their buckets in memory (seq_ids 1..N)
//! and pages them like a real agent. The colony's poller drains every agent
//! (bounded concurrency, one transaction per page with its cursor) into a
//! fresh `colony.duckdb`. The baseline appends the same span rows into a
//! table of the same shape with one Appender and no gRPC, cursors or merging.
//! A transport-only pass first drains the same agents with plain clients and
//! stores nothing: what serving, encoding and decoding the pages cost on this
//! machine, the floor under any poll cycle here.
//!
//! With `CLICKHOUSE_URL` set, the same agents are drained again into
//! ClickHouse (a fresh database, dropped afterwards), with the CPU of this
//! process and of the server (`CLICKHOUSE_PID`); `scripts/bench-clickhouse.sh`
//! starts a server and runs both.
//!
//! ```sh
//! cargo bench --workspace --bench poll_cycle            # 100 agents x 60,000 spans
//! AGENTS=10 SPANS=6000 cargo bench --workspace --bench poll_cycle
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use coral_colony::poller::{PollSettings, Poller};
use coral_colony::registry::Registry;
use coral_colony::store::Database;
use coral_colony::store::writer::{AgentRecord, Writer};
use coral_model::{Bucket, BucketKey, SpanKind};
use coral_proto::agent::agent_service_client::AgentServiceClient;
use coral_proto::agent::agent_service_server::{AgentService, AgentServiceServer};
use coral_proto::agent::{
    GetStatusRequest, GetStatusResponse, QueryTelemetryRequest, QueryTelemetryResponse,
};
use coral_proto::common::{TelemetryBucket, TelemetrySpan};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

struct Data {
    spans: Vec<TelemetrySpan>,
    buckets: Vec<TelemetryBucket>,
}

impl Data {
    fn latest(&self) -> u64 {
        (self.spans.len() + self.buckets.len()) as u64
    }
}

fn build(spans: usize) -> Data {
    let services = ["checkout", "cart", "payments", "search", "auth"];
    let minute = 1_800_000_000 / 60 * 60;
    let mut out = Vec::with_capacity(spans);
    let mut buckets: Vec<Bucket> = Vec::new();
    for i in 0..spans {
        let service = services[i % services.len()];
        let m = minute + 60 * (i * 10 / spans) as i64;
        let duration_ms = 1.0 + (i % 997) as f64;
        let trace_id = format!("{:032x}", i as u128 * 7919);
        let key = BucketKey {
            minute: m,
            service: service.into(),
            kind: SpanKind::Server,
        };
        let bucket = match buckets.iter_mut().find(|b| b.key == key) {
            Some(b) => b,
            None => {
                buckets.push(Bucket::new(key));
                buckets.last_mut().unwrap()
            }
        };
        bucket.stats.record(duration_ms, i % 50 == 0, &trace_id);
        out.push(TelemetrySpan {
            seq_id: i as u64 + 1,
            trace_id,
            span_id: format!("{:016x}", i + 1),
            parent_span_id: String::new(),
            service_name: service.into(),
            span_name: "POST /api/v1/orders".into(),
            span_kind: "SERVER".into(),
            start_time_unix_nano: m * 1_000_000_000 + (i as i64 % 60_000) * 1_000_000,
            duration_us: (duration_ms * 1000.0) as i64,
            is_error: i % 50 == 0,
            status_code: "UNSET".into(),
            http_status_code: if i % 50 == 0 { 500 } else { 200 },
            http_method: "POST".into(),
            http_route: "/api/v1/orders".into(),
            keep_reason: "sampled".into(),
            attributes_json: r#"{"http.request.method":"POST","http.route":"/api/v1/orders","http.response.status_code":200,"server.address":"orders.internal","url.scheme":"https","user_agent.original":"okhttp/4.12.0"}"#.into(),
            resource_json: r#"{"service.name":"checkout","service.version":"1.42.0","host.name":"web-01","deployment.environment":"prod"}"#.into(),
            ..Default::default()
        });
    }
    let first = spans as u64 + 1;
    let buckets = buckets
        .iter()
        .enumerate()
        .map(|(i, b)| b.to_proto("", first + i as u64))
        .collect();
    Data {
        spans: out,
        buckets,
    }
}

#[derive(Clone)]
struct FakeAgent {
    data: Arc<Data>,
    session: String,
}

#[tonic::async_trait]
impl AgentService for FakeAgent {
    async fn query_beyla_metrics(
        &self,
        _request: Request<coral_proto::agent::QueryBeylaMetricsRequest>,
    ) -> Result<Response<coral_proto::agent::QueryBeylaMetricsResponse>, Status> {
        Err(Status::unimplemented("this fake agent has no Beyla"))
    }

    async fn query_telemetry(
        &self,
        request: Request<QueryTelemetryRequest>,
    ) -> Result<Response<QueryTelemetryResponse>, Status> {
        let r = request.into_inner();
        let latest = self.data.latest();
        let start = r.start_seq_id.min(latest);
        let end = (start + r.max_records.max(1) as u64).min(latest);
        let spans_len = self.data.spans.len() as u64;
        let spans =
            self.data.spans[start.min(spans_len) as usize..end.min(spans_len) as usize].to_vec();
        let b0 = start.saturating_sub(spans_len) as usize;
        let b1 = end.saturating_sub(spans_len) as usize;
        let buckets = self.data.buckets[b0..b1].to_vec();
        Ok(Response::new(QueryTelemetryResponse {
            buckets,
            spans,
            max_seq_id: end,
            session_id: self.session.clone(),
            has_more: end < latest,
            latest_seq_id: latest,
            host_metrics: Vec::new(),
        }))
    }

    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse::default()))
    }
}

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn raw_appender_rate(spans: &[TelemetrySpan], rows: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (_db, mut conn) = Database::open(dir.path()).unwrap();
    let start = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut app = tx.appender("trace_spans").unwrap();
        for i in 0..rows {
            let s = &spans[i % spans.len()];
            app.append_row(duckdb::params![
                "agent-0",
                i as u64,
                s.trace_id,
                s.span_id,
                s.parent_span_id,
                s.service_name,
                s.span_name,
                s.span_kind,
                duckdb::types::Value::Timestamp(
                    duckdb::types::TimeUnit::Microsecond,
                    s.start_time_unix_nano / 1000
                ),
                s.start_time_unix_nano,
                s.duration_us,
                s.is_error,
                s.status_code,
                s.status_message,
                Some(s.http_status_code),
                s.http_method,
                s.http_route,
                s.rpc_system,
                s.rpc_service,
                s.rpc_method,
                s.grpc_status_code,
                s.db_system,
                s.db_operation,
                s.db_collection,
                s.keep_reason,
                s.attributes_json,
                s.resource_json,
            ])
            .unwrap();
        }
        app.flush().unwrap();
    }
    tx.commit().unwrap();
    rows as f64 / start.elapsed().as_secs_f64()
}

/// The same rows appended as Arrow record batches of 10,000 (what the
/// colony's ingest does), one Appender, one transaction.
fn raw_arrow_rate(spans: &[TelemetrySpan], rows: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let (_db, mut conn) = Database::open(dir.path()).unwrap();
    let refs: Vec<&TelemetrySpan> = (0..10_000).map(|i| &spans[i % spans.len()]).collect();
    let start = Instant::now();
    let tx = conn.transaction().unwrap();
    {
        let mut app = tx.appender("trace_spans").unwrap();
        let mut done = 0;
        while done < rows {
            let n = (rows - done).min(refs.len());
            let batch = coral_colony::store::rows::spans_batch("agent-0", &refs[..n]).unwrap();
            app.append_record_batch(batch).unwrap();
            done += n;
        }
        app.flush().unwrap();
    }
    tx.commit().unwrap();
    rows as f64 / start.elapsed().as_secs_f64()
}

/// Drains every agent at `endpoints` with plain clients (`concurrency` at
/// once, pages of `page_size`), decoding each page and storing nothing.
/// Returns the rows read.
async fn transport_only(endpoints: &[String], page_size: usize, concurrency: usize) -> usize {
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for endpoint in endpoints {
        let (endpoint, gate) = (endpoint.clone(), gate.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let mut client = AgentServiceClient::connect(endpoint)
                .await
                .unwrap()
                .max_decoding_message_size(256 << 20);
            let (mut cursor, mut rows) = (0, 0);
            loop {
                let page = client
                    .query_telemetry(QueryTelemetryRequest {
                        service_names: Vec::new(),
                        start_seq_id: cursor,
                        max_records: page_size as i32,
                    })
                    .await
                    .unwrap()
                    .into_inner();
                rows += page.spans.len() + page.buckets.len();
                cursor = page.max_seq_id;
                if !page.has_more {
                    return rows;
                }
            }
        });
    }
    let mut rows = 0;
    while let Some(n) = tasks.join_next().await {
        rows += n.unwrap();
    }
    rows
}

/// The colony's poller over the simulated agents at `endpoints`
/// (`agent-0`, `agent-1`, …), storing through `store` and `writer`.
fn poller(
    endpoints: &[String],
    store: coral_colony::store::engine::Store,
    writer: coral_colony::store::writer::WriterSender,
    page_size: usize,
    concurrency: usize,
) -> Arc<Poller> {
    let registry = Arc::new(Registry::default());
    for (i, endpoint) in endpoints.iter().enumerate() {
        registry.upsert(
            AgentRecord {
                agent_id: format!("agent-{i}"),
                endpoint: endpoint.clone(),
                source: "static".into(),
                ..Default::default()
            },
            true,
        );
    }
    Poller::new(
        PollSettings {
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(60),
            max_concurrent: concurrency,
            page_size,
            token: None,
            tls: None,
        },
        registry,
        store,
        writer,
        None,
    )
}

/// Polls every agent once (each its own task, the poller's concurrency
/// bound applies); returns the rows stored and the time taken.
async fn cycle(poller: &Arc<Poller>, agents: usize) -> (usize, Duration) {
    let stop = CancellationToken::new();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..agents {
        let (p, s) = (poller.clone(), stop.clone());
        tasks.spawn(async move { p.poll_agent(&format!("agent-{i}"), &s).await });
    }
    let mut stored = 0;
    while let Some(result) = tasks.join_next().await {
        stored += result.unwrap().expect("poll succeeds").rows;
    }
    (stored, started.elapsed())
}

/// CPU seconds used by this process (colony and simulated agents) and,
/// when given, another one (the ClickHouse server) since `start`.
struct Cpu {
    own: f64,
    other: Option<(u32, f64)>,
}

/// User plus system CPU seconds of a process, from `/proc/<pid>/stat`
/// (clock ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

impl Cpu {
    fn start(other: Option<u32>) -> Cpu {
        Cpu {
            own: cpu_seconds("self"),
            other: other.map(|pid| (pid, cpu_seconds(&pid.to_string()))),
        }
    }

    fn seconds(&self) -> (f64, Option<f64>) {
        (
            cpu_seconds("self") - self.own,
            self.other
                .map(|(pid, at)| cpu_seconds(&pid.to_string()) - at),
        )
    }
}

/// The same cycle into ClickHouse at `url` (user `CLICKHOUSE_USER`,
/// password `CLICKHOUSE_PASSWORD`, a fresh database), the server's CPU
/// measured when `CLICKHOUSE_PID` names its process.
async fn clickhouse_cycle(
    url: &str,
    endpoints: &[String],
    page_size: usize,
    concurrency: usize,
    rows_per_agent: usize,
) {
    use coral_colony::store::clickhouse::{ClickHouse, Settings};
    let settings = Settings {
        url: url.to_owned(),
        database: format!("coral_bench_{}", std::process::id()),
        user: std::env::var("CLICKHOUSE_USER").unwrap_or_else(|_| "default".into()),
        password: std::env::var("CLICKHOUSE_PASSWORD").unwrap_or_default(),
        cluster: None,
    };
    let ch = ClickHouse::open(&settings).await.expect("ClickHouse opens");
    let poller = poller(
        endpoints,
        coral_colony::store::engine::Store::ClickHouse(ch.clone()),
        coral_colony::store::writer::WriterSender::clickhouse(
            ch.clone(),
            Default::default(),
            Default::default(),
        ),
        page_size,
        concurrency,
    );
    let agents = endpoints.len();
    println!("polling {agents} agents x {rows_per_agent} rows into ClickHouse at {url}…");
    let server = std::env::var("CLICKHOUSE_PID")
        .ok()
        .and_then(|p| p.parse().ok());
    let cpu = Cpu::start(server);
    let (stored, elapsed) = cycle(&poller, agents).await;
    let (colony_cpu, server_cpu) = cpu.seconds();
    assert_eq!(stored, agents * rows_per_agent, "every row stored once");
    let rate = stored as f64 / elapsed.as_secs_f64();
    let server_cpu = server_cpu.map_or("not measured (set CLICKHOUSE_PID)".into(), |s| {
        format!("{s:.1} s")
    });
    println!(
        "poll cycle into ClickHouse: {stored} rows from {agents} agents in {:.2} s = {rate:.0} rows/s; process CPU {colony_cpu:.1} s, server CPU {server_cpu}",
        elapsed.as_secs_f64()
    );
    ch.client()
        .query(&format!("DROP DATABASE `{}`", settings.database))
        .execute()
        .await
        .expect("bench database dropped");
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let agents = env("AGENTS", 100);
    let spans = env("SPANS", 60_000);
    let page_size = env("PAGE_SIZE", 10_000);
    let concurrency = env("MAX_CONCURRENT", 32);
    println!("building {spans} spans per agent…");
    let data = Arc::new(build(spans));
    let rows_per_agent = data.latest() as usize;

    let baseline_rows = (agents * spans).min(2_000_000);
    let raw = tokio::task::block_in_place(|| raw_appender_rate(&data.spans, baseline_rows));
    println!("raw Appender: {baseline_rows} span rows at {raw:.0} rows/s");
    let raw_arrow = tokio::task::block_in_place(|| raw_arrow_rate(&data.spans, baseline_rows));
    println!(
        "raw Appender, Arrow batches of 10,000: {baseline_rows} span rows at {raw_arrow:.0} rows/s"
    );

    let mut endpoints = Vec::with_capacity(agents);
    for i in 0..agents {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let agent = FakeAgent {
            data: data.clone(),
            session: format!("session-{i}"),
        };
        tokio::spawn(async move {
            let incoming = futures::stream::unfold(listener, |l| async move {
                Some((l.accept().await.map(|(s, _)| s), l))
            });
            tonic::transport::Server::builder()
                .add_service(AgentServiceServer::new(agent).max_encoding_message_size(256 << 20))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
        endpoints.push(format!("http://{addr}"));
    }
    println!("transport only: draining {agents} agents, storing nothing…");
    let started = Instant::now();
    let read = transport_only(&endpoints, page_size, concurrency).await;
    let transport = started.elapsed();
    assert_eq!(read, agents * rows_per_agent, "every row read once");
    println!(
        "transport only: {read} rows in {:.2} s = {:.0} rows/s (gRPC, protobuf and the simulated agents, no store)",
        transport.as_secs_f64(),
        read as f64 / transport.as_secs_f64()
    );

    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let (writer, writer_tx) = Writer::start(conn, db.clone(), Default::default()).unwrap();
    let poller = poller(
        &endpoints,
        coral_colony::store::engine::Store::DuckDb(db),
        writer_tx.clone(),
        page_size,
        concurrency,
    );
    println!(
        "polling {agents} agents x {rows_per_agent} rows into DuckDB (page {page_size}, {concurrency} at once)…"
    );
    let cpu = Cpu::start(None);
    let (stored, elapsed) = cycle(&poller, agents).await;
    let (colony_cpu, _) = cpu.seconds();
    let rate = stored as f64 / elapsed.as_secs_f64();
    writer_tx.close();
    tokio::task::block_in_place(|| writer.join());
    assert_eq!(stored, agents * rows_per_agent, "every row stored once");
    println!(
        "poll cycle: {stored} rows from {agents} agents in {:.2} s = {rate:.0} rows/s ({:.0}% of the raw row Appender rate, {:.0}% of the raw Arrow Appender rate); process CPU {colony_cpu:.1} s",
        elapsed.as_secs_f64(),
        100.0 * rate / raw,
        100.0 * rate / raw_arrow
    );
    if let Ok(url) = std::env::var("CLICKHOUSE_URL") {
        clickhouse_cycle(&url, &endpoints, page_size, concurrency, rows_per_agent).await;
    }
    println!(
        "{{\"agents\":{agents},\"rows_per_agent\":{rows_per_agent},\"cycle_seconds\":{:.3},\"transport_only_seconds\":{:.3},\"rows_per_second\":{rate:.0},\"raw_appender_rows_per_second\":{raw:.0},\"raw_arrow_appender_rows_per_second\":{raw_arrow:.0}}}",
        elapsed.as_secs_f64(),
        transport.as_secs_f64()
    );
}
