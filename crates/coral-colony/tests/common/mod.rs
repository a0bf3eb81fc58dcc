//! Shared helpers for the colony's integration tests: a real colony and real
//! agents on port 0 with real DuckDB files, OpenTelemetry SDK clients, a
//! colony gRPC client and condition waits.

#![allow(dead_code)]

pub mod clickhouse;
pub mod pages;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use coral_agent::RunningAgent;
use coral_colony::RunningColony;
use coral_config::{AgentConfig, AgentOverrides, ColonyConfig, ColonyOverrides};
use coral_proto::colony::colony_service_client::ColonyServiceClient;
use coral_proto::colony::{ListAgentsRequest, QueryOtelSummariesRequest};
use coral_proto::transport::BearerToken;
use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Tracer, TracerProvider as _};
use opentelemetry_otlp::{SpanExporter, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Whether this test binary runs the colony on ClickHouse:
/// `tests/on_clickhouse.rs` compiles the engine-neutral test files again,
/// and there [`colony_config`] and [`engine_store`] put the colony's store
/// in a ClickHouse server the binary shares (one database per colony);
/// `tests/on_clickhouse_cluster.rs` does the same on a cluster of two
/// shards.
pub const ON_CLICKHOUSE: bool = matches!(
    env!("CARGO_CRATE_NAME").as_bytes(),
    b"on_clickhouse" | b"on_clickhouse_cluster"
);

/// A database name of its own for the colony whose data directory is `dir`
/// (the same again when the colony restarts on it).
fn database_for(dir: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    dir.hash(&mut hasher);
    format!("t{:016x}", hasher.finish())
}

/// Colony YAML on port 0 (its admin endpoint too) with `extra` lines under
/// `colony:`, right after `api:` (so they may continue it). In the
/// ClickHouse run ([`ON_CLICKHOUSE`]) the store is the shared server's,
/// unless `extra` names a storage itself.
pub fn colony_config(data_dir: &Path, address: &str, extra: &str) -> ColonyConfig {
    let mut extra = extra.to_owned();
    let mut storage = String::new();
    let own_engine = extra.contains("\n  engine:") || extra.starts_with("  engine:");
    if let Some(server) = clickhouse::shared_if(ON_CLICKHOUSE && !own_engine) {
        let section = server.storage_yaml(&database_for(data_dir));
        // Into the test's own `storage:` section (retention), or a new one.
        let body = section.strip_prefix("storage:\n").unwrap_or(&section);
        let own = extra
            .find("\nstorage:\n")
            .map(|at| at + 1)
            .or_else(|| extra.starts_with("storage:\n").then_some(0));
        match own {
            Some(at) => extra.insert_str(at + "storage:\n".len(), body),
            None => storage = section,
        }
    }
    let yaml = format!(
        "colony:\n  id: test-colony\n  data_dir: {dir}\n  admin:\n    endpoint: 127.0.0.1:0\n  api:\n    endpoint: \"{address}\"\n{extra}\n{storage}",
        dir = data_dir.display()
    );
    ColonyConfig::from_yaml_str(
        &yaml,
        Path::new("test-colony.yaml"),
        &HashMap::new(),
        &ColonyOverrides::default(),
    )
    .unwrap_or_else(|e| panic!("test colony config must be valid: {e}\n{yaml}"))
}

/// Agent YAML on port 0 that registers with `colony` (every span kept).
/// `extra` lines go under `agent:`.
pub fn agent_config(id: &str, data_dir: &Path, colony: SocketAddr, extra: &str) -> AgentConfig {
    let yaml = format!(
        "agent:\n  id: {id}\n  data_dir: {dir}\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n    filters:\n      - sample_rate: 1.0\n  api:\n    endpoint: 127.0.0.1:0\n  admin:\n    endpoint: 127.0.0.1:0\n  colony:\n    endpoint: \"{colony}\"\n    heartbeat_interval: 1s\n{extra}\n",
        dir = data_dir.display()
    );
    AgentConfig::from_yaml_str(
        &yaml,
        Path::new("test-agent.yaml"),
        &HashMap::new(),
        &AgentOverrides::default(),
    )
    .unwrap_or_else(|e| panic!("test agent config must be valid: {e}\n{yaml}"))
}

/// Starts a colony.
pub async fn start_colony(config: &ColonyConfig) -> RunningColony {
    coral_colony::start(config).await.expect("colony starts")
}

/// Starts a colony on port 0 with its data in `dir/colony` and `extra`
/// lines under `colony:`.
pub async fn colony_in(dir: &Path, extra: &str) -> RunningColony {
    start_colony(&colony_config(&dir.join("colony"), "127.0.0.1:0", extra)).await
}

/// Starts an agent.
pub async fn start_agent(config: &AgentConfig) -> RunningAgent {
    coral_agent::start(config).await.expect("agent starts")
}

/// A colony client, with an optional token.
pub async fn client(
    addr: SocketAddr,
    token: Option<&str>,
) -> ColonyServiceClient<InterceptedService<Channel, BearerToken>> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .expect("colony reachable");
    ColonyServiceClient::with_interceptor(channel, BearerToken::new(token))
}

/// Awaits `condition` every 50 ms until it holds, or panics after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Start of the minute two minutes ago: every span of a test lands in one
/// closed minute.
pub fn minute_start() -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    UNIX_EPOCH + Duration::from_secs((now / 60 - 2) * 60)
}

/// Sends `n` SERVER spans of `service` through the OpenTelemetry SDK (gRPC
/// exporter); every `error_every`-th is a 500. Durations 1..=n ms.
pub async fn send_spans(agent: &RunningAgent, service: &str, n: u64, error_every: u64) {
    send_spans_at(agent, service, n, error_every, minute_start()).await;
}

/// [`send_spans`] with spans starting at `t0` (+ i ms).
pub async fn send_spans_at(
    agent: &RunningAgent,
    service: &str,
    n: u64,
    error_every: u64,
    t0: SystemTime,
) {
    let grpc = agent.addrs.otlp_grpc.expect("otlp enabled");
    let exporter = SpanExporter::builder()
        .with_tonic()
        .with_endpoint(format!("http://{grpc}"))
        .build()
        .expect("exporter builds");
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder_empty()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("coral-colony-test");
    for i in 1..=n {
        let is_error = error_every > 0 && i % error_every == 0;
        let start = t0 + Duration::from_millis(i % 1_000);
        let mut span = tracer
            .span_builder("POST /checkout")
            .with_kind(SpanKind::Server)
            .with_start_time(start)
            .with_attributes(vec![
                KeyValue::new("http.request.method", "POST"),
                KeyValue::new(
                    "http.response.status_code",
                    if is_error { 500i64 } else { 200 },
                ),
            ])
            .start(&tracer);
        span.end_with_timestamp(start + Duration::from_millis(i));
    }
    tokio::task::spawn_blocking(move || {
        provider.force_flush().expect("spans exported");
        provider.shutdown().expect("provider shut down");
    })
    .await
    .expect("flush task");
}

/// Flushes the agent's open minutes and waits until `spans` spans and at least
/// one bucket are committed.
pub async fn flush_agent(agent: &RunningAgent, spans: u64) {
    agent.flush_all();
    let counters = agent.api.counters().clone();
    wait_for("agent stored the spans", Duration::from_secs(30), || {
        let c = counters.to_proto(0);
        async move { c.spans_stored >= spans && c.buckets_stored >= 1 }
    })
    .await;
}

/// (total_spans, error_count) of `service` at the colony over the last hour.
pub async fn totals(colony: SocketAddr, token: Option<&str>, service: &str) -> (i64, i64) {
    let mut c = client(colony, token).await;
    let r = c
        .query_otel_summaries(QueryOtelSummariesRequest {
            service_name: service.to_owned(),
            ..Default::default()
        })
        .await
        .expect("QueryOtelSummaries")
        .into_inner();
    r.totals.iter().fold((0, 0), |(t, e), row| {
        (t + row.total_spans, e + row.error_count)
    })
}

/// Waits until the colony knows `n` agents.
pub async fn wait_registered(colony: SocketAddr, token: Option<&str>, n: usize) {
    wait_for(
        "agents registered",
        Duration::from_secs(30),
        || async move {
            let mut c = client(colony, token).await;
            c.list_agents(ListAgentsRequest {})
                .await
                .map(|r| r.into_inner().agents.len() >= n)
                .unwrap_or(false)
        },
    )
    .await;
}

/// One number (a count or a sum over colony tables) from the colony whose
/// data directory is `data_dir`, read after the colony has stopped: from
/// its DuckDB file, or in the ClickHouse run from its database, where each
/// row key counts once (`FINAL`) as in every colony read.
pub fn count(data_dir: &Path, sql: &str) -> i64 {
    if let Some(server) = clickhouse::shared_if(ON_CLICKHOUSE) {
        let query = clickhouse_sql(&database_for(data_dir), sql);
        let text = ureq::post(&server.url)
            .header("X-ClickHouse-User", "coral")
            .header("X-ClickHouse-Key", clickhouse::PASSWORD)
            .send(query.as_str())
            .unwrap_or_else(|e| panic!("{query}: {e}"))
            .body_mut()
            .read_to_string()
            .unwrap();
        return text
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("{query}: {e}: {text}"));
    }
    let conn = duckdb::Connection::open(data_dir.join("colony.duckdb")).expect("open colony db");
    conn.query_row(sql, [], |r| r.get(0)).expect("count query")
}

/// [`count`] on a running colony's store.
pub async fn store_count(store: &coral_colony::store::engine::Store, sql: &str) -> i64 {
    use coral_colony::store::engine::Store;
    match store {
        Store::DuckDb(db) => {
            let (db, sql) = (db.clone(), sql.to_owned());
            tokio::task::spawn_blocking(move || {
                let conn = db.reader().unwrap();
                conn.query_row(&sql, [], |r| r.get(0)).expect("count query")
            })
            .await
            .unwrap()
        }
        Store::ClickHouse(ch) => {
            let query = clickhouse_sql(&ch.target().database, sql);
            ch.client()
                .query(&query)
                .fetch_one::<i64>()
                .await
                .unwrap_or_else(|e| panic!("{query}: {e}"))
        }
    }
}

/// A test's one-number DuckDB query for ClickHouse: each table after
/// `FROM` in `database` and read `FINAL`, DuckDB casts left out, the result
/// an Int64.
fn clickhouse_sql(database: &str, sql: &str) -> String {
    let sql = sql.replace("::BIGINT", "");
    let mut out = String::new();
    let mut rest = sql.as_str();
    while let Some(at) = rest.find("FROM ") {
        out.push_str(&rest[..at + 5]);
        rest = &rest[at + 5..];
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        out.push_str(&format!("`{database}`.`{}` FINAL", &rest[..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    format!("SELECT toInt64(({out}))")
}

/// A kept span as an agent pages it: only its seq_id, ids and service set.
pub fn kept_span(seq_id: u64, service: &str) -> coral_proto::common::TelemetrySpan {
    coral_proto::common::TelemetrySpan {
        seq_id,
        trace_id: format!("{seq_id:032x}"),
        span_id: format!("{seq_id:016x}"),
        service_name: service.into(),
        ..Default::default()
    }
}

/// A listener on 127.0.0.1:0, as the stream of connections a fake gRPC server
/// serves (`serve_with_incoming`), and its address.
pub async fn incoming() -> (
    SocketAddr,
    impl futures::Stream<Item = std::io::Result<tokio::net::TcpStream>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stream = futures::stream::unfold(listener, |l| async move {
        Some((l.accept().await.map(|(s, _)| s), l))
    });
    (addr, stream)
}

/// A colony store on a fresh DuckDB file and its writer, kept alive together.
pub struct Store {
    _dir: tempfile::TempDir,
    pub db: std::sync::Arc<coral_colony::store::Database>,
    _writer: coral_colony::store::writer::Writer,
    pub tx: coral_colony::store::writer::WriterSender,
}

/// A [`Store`] with the default trace sampling.
pub fn store() -> Store {
    use coral_colony::store::Database;
    use coral_colony::store::writer::Writer;
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let (writer, tx) = Writer::start(conn, db.clone(), Default::default()).unwrap();
    Store {
        _dir: dir,
        db,
        _writer: writer,
        tx,
    }
}

/// A colony store and its writer on this run's engine ([`ON_CLICKHOUSE`]):
/// a fresh DuckDB file, or a fresh database on the shared ClickHouse.
pub struct EngineStore {
    /// What the colony reads through.
    pub reads: coral_colony::store::engine::Store,
    /// What the colony writes through.
    pub tx: coral_colony::store::writer::WriterSender,
    _duckdb: Option<Store>,
}

/// An [`EngineStore`] with the default trace sampling.
pub async fn engine_store() -> EngineStore {
    use coral_colony::store::clickhouse::ClickHouse;
    use coral_colony::store::engine;
    use coral_colony::store::writer::WriterSender;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if let Some(server) = clickhouse::shared_if(ON_CLICKHOUSE) {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let database = format!("s{}_{n}", std::process::id());
        let ch = ClickHouse::open(&server.settings(&database))
            .await
            .expect("the shared ClickHouse opens");
        return EngineStore {
            reads: engine::Store::ClickHouse(ch.clone()),
            tx: WriterSender::clickhouse(ch, Default::default(), Default::default()),
            _duckdb: None,
        };
    }
    let duckdb = store();
    EngineStore {
        reads: engine::Store::DuckDb(duckdb.db.clone()),
        tx: duckdb.tx.clone(),
        _duckdb: Some(duckdb),
    }
}

/// A simulated host minute as the agent's host sampler stores it (load5
/// and load15 = load1; `seq_id` 0, set by the store).
pub fn host_sample(h: &coral_diagnose::data::HostMinute) -> coral_proto::common::HostMetrics {
    let load1 = h.load1.unwrap_or_default();
    coral_proto::common::HostMetrics {
        seq_id: 0,
        bucket_time: h.minute,
        cpu_percent: h.cpu_percent.unwrap_or_default(),
        memory_used_bytes: h.memory_used_bytes.unwrap_or_default(),
        memory_total_bytes: h.memory_total_bytes.unwrap_or_default(),
        net_rx_bytes_per_sec: h.net_rx_bytes_per_sec.unwrap_or_default(),
        net_tx_bytes_per_sec: h.net_tx_bytes_per_sec.unwrap_or_default(),
        load1,
        load5: load1,
        load15: load1,
        interval_seconds: 60.0,
        hostname: h.hostname.clone(),
    }
}

/// The interop Python (`CORAL_PYTHON`, else `$HOME/.cache/coral/venv-interop`)
/// when it imports `modules` (comma-separated); otherwise a skip with a
/// message, or a failure with `CORAL_REQUIRE_PYTHON_INTEROP=1` (set by CI).
pub fn interop_python_with(modules: &str) -> Option<std::path::PathBuf> {
    let candidate = std::env::var_os("CORAL_PYTHON")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| std::path::PathBuf::from(h).join(".cache/coral/venv-interop/bin/python"))
        });
    let found = candidate.filter(|python| {
        std::process::Command::new(python)
            .args(["-c", &format!("import {modules}")])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        assert!(
            std::env::var("CORAL_REQUIRE_PYTHON_INTEROP").as_deref() != Ok("1"),
            "this test needs Python with {modules} (CORAL_REQUIRE_PYTHON_INTEROP=1): set CORAL_PYTHON or run .ci/run"
        );
        eprintln!("skipped: no Python with {modules} (set CORAL_PYTHON or run .ci/run)");
    }
    found
}

/// Runs `script` with `args` under `python`, `stdin` on its input; its
/// standard output (a failure shows its standard error).
pub fn run_python(python: &Path, script: &str, args: &[&str], stdin: &str) -> String {
    use std::io::Write as _;
    let mut child = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `duck`'s file as a stopped colony leaves it, copied into `dir` as
/// `colony.duckdb` (replacing an earlier copy): the test keeps its own store
/// open to read.
pub fn stopped_copy(duck: &Store, dir: &Path) {
    duck.db
        .reader()
        .unwrap()
        .execute_batch("CHECKPOINT")
        .unwrap();
    let file = duck.db.path();
    std::fs::copy(file, dir.join("colony.duckdb")).unwrap();
    let wal = file.with_extension("duckdb.wal");
    let copied_wal = dir.join("colony.duckdb.wal");
    if wal.exists() {
        std::fs::copy(&wal, &copied_wal).unwrap();
    } else {
        let _ = std::fs::remove_file(&copied_wal);
    }
}
