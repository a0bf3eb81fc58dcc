//! The agent's DuckDB store across restarts, paging and retention.

mod common;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_agent::metrics::Counters;
use coral_agent::store::Database;
use coral_agent::store::beyla::BeylaRows;
use coral_agent::store::writer::{WriteOp, Writer};
use coral_proto::agent::QueryBeylaMetricsRequest;
use coral_proto::common::{BeylaHttpMetric, BeylaTraceSpan};

use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use coral_proto::otlp::trace::v1::Span;

use common::{config, flush_and_wait, query_all, start, wait_until};

fn spans(service: &str, start_ns: u64, n: u8) -> ExportTraceServiceRequest {
    let spans = (1..=n)
        .map(|i| Span {
            trace_id: vec![i; 16],
            span_id: vec![i; 8],
            name: "op".into(),
            kind: 2,
            start_time_unix_nano: start_ns + u64::from(i) * 1_000_000,
            end_time_unix_nano: start_ns + u64::from(i) * 2_000_000,
            ..Default::default()
        })
        .collect();
    common::export_request(service, spans)
}

async fn send(agent: &coral_agent::RunningAgent, request: ExportTraceServiceRequest) {
    let mut client =
        TraceServiceClient::connect(format!("http://{}", agent.addrs.otlp_grpc.unwrap()))
            .await
            .unwrap();
    client.export(request).await.expect("export accepted");
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_data_session_and_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let keep_all = "    filters:\n      - sample_rate: 1.0";
    let agent = start(&config(dir.path(), keep_all)).await;
    send(&agent, spans("alpha", now_ns() - 120_000_000_000, 10)).await;
    flush_and_wait(&agent, 1, 10).await;
    let (buckets, kept, cursor, session) = query_all(&agent, 0, 3).await;
    assert_eq!((buckets.len(), kept.len()), (1, 10));
    let mut ids: Vec<u64> = kept
        .iter()
        .map(|s| s.seq_id)
        .chain(buckets.iter().map(|b| b.seq_id))
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=11).collect::<Vec<_>>(),
        "paged by 3, no gaps, no duplicates"
    );
    assert_eq!(cursor, 11);
    agent.shutdown().await;

    let agent = start(&config(dir.path(), keep_all)).await;
    let (buckets, kept, _, same_session) = query_all(&agent, 0, 0).await;
    assert_eq!(same_session, session, "session survives a restart");
    assert_eq!(
        (buckets.len(), kept.len()),
        (1, 10),
        "data survives a restart"
    );
    send(&agent, spans("beta", now_ns() - 120_000_000_000, 2)).await;
    flush_and_wait(&agent, 1, 2).await;
    let (buckets, kept, next_cursor, _) = query_all(&agent, cursor, 0).await;
    assert_eq!(
        (buckets.len(), kept.len()),
        (1, 2),
        "only rows after the cursor"
    );
    assert!(
        kept.iter().all(|s| s.seq_id > 11),
        "sequence continues after restart"
    );
    assert_eq!(next_cursor, 14);
    agent.shutdown().await;

    let other = tempfile::tempdir().unwrap();
    let fresh = start(&config(other.path(), keep_all)).await;
    let (_, _, _, new_session) = query_all(&fresh, 0, 0).await;
    assert_ne!(new_session, session, "a new database has a new session");
    fresh.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_filter_and_cursor_past_other_services() {
    let dir = tempfile::tempdir().unwrap();
    let agent = start(&config(
        dir.path(),
        "    filters:\n      - sample_rate: 1.0",
    ))
    .await;
    send(&agent, spans("alpha", now_ns() - 120_000_000_000, 3)).await;
    send(&agent, spans("beta", now_ns() - 120_000_000_000, 4)).await;
    flush_and_wait(&agent, 2, 7).await;
    let mut client = coral_proto::agent::agent_service_client::AgentServiceClient::connect(
        format!("http://{}", agent.addrs.api),
    )
    .await
    .unwrap();
    let response = client
        .query_telemetry(coral_proto::agent::QueryTelemetryRequest {
            service_names: vec!["beta".into()],
            start_seq_id: 0,
            max_records: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.spans.len(), 4);
    assert!(response.spans.iter().all(|s| s.service_name == "beta"));
    assert_eq!(response.buckets.len(), 1);
    assert!(!response.has_more);
    assert_eq!(
        response.max_seq_id, response.latest_seq_id,
        "cursor covers skipped rows too"
    );
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_old_rows_and_keeps_recent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), "    filters:\n      - sample_rate: 1.0");
    cfg.storage.retention = Duration::from_secs(3600);
    cfg.storage.cleanup_interval = Duration::from_millis(200);
    let agent = start(&cfg).await;
    send(&agent, spans("old", now_ns() - 3 * 3600 * 1_000_000_000, 5)).await;
    send(&agent, spans("new", now_ns() - 120_000_000_000, 5)).await;
    flush_and_wait(&agent, 2, 10).await;
    let counters = agent.api.counters().clone();
    wait_until(
        "retention deleted the old rows",
        Duration::from_secs(20),
        || counters.to_proto(0).rows_deleted_by_retention >= 6,
    )
    .await;
    let (buckets, kept, _, _) = query_all(&agent, 0, 0).await;
    assert!(buckets.iter().all(|b| b.service_name == "new"));
    assert_eq!(buckets.len(), 1);
    assert_eq!(kept.len(), 5);
    assert!(kept.iter().all(|s| s.service_name == "new"));
    assert!(kept[0].resource_json.contains(r#""service.name":"new""#));
    agent.shutdown().await;

    // The expired spans' resource went with them.
    let conn = duckdb::Connection::open(dir.path().join(coral_agent::store::DB_FILE)).unwrap();
    let resources: Vec<String> = conn
        .prepare("SELECT resource FROM otel_resources_local")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(resources.len(), 1, "{resources:?}");
    assert!(resources[0].contains(r#""service.name":"new""#));
}

/// `n` Beyla HTTP histograms of `shop` for the current minute, with routes
/// `/{prefix}/0`, `/{prefix}/1`, ….
fn beyla_histograms(n: usize, prefix: &str) -> Vec<BeylaHttpMetric> {
    let minute = (now_ns() / 60_000_000_000 * 60) as i64;
    (0..n)
        .map(|i| BeylaHttpMetric {
            minute,
            service_name: "shop".into(),
            kind: "server".into(),
            http_method: "GET".into(),
            http_route: format!("/{prefix}/{i}"),
            http_status_code: 200,
            ..Default::default()
        })
        .collect()
}

/// `n` Beyla server spans of `shop` starting now, trace and span ids 1..=n.
fn beyla_spans(n: u64) -> Vec<BeylaTraceSpan> {
    (1..=n)
        .map(|i| BeylaTraceSpan {
            trace_id: format!("{i:032x}"),
            span_id: format!("{i:016x}"),
            service_name: "shop".into(),
            span_name: "GET /r".into(),
            span_kind: "server".into(),
            start_time_unix_nano: now_ns() as i64,
            attributes_json: "{}".into(),
            ..Default::default()
        })
        .collect()
}

/// Beyla rows are read in windows too: pages that span several windows and
/// mix metric rows with spans come back whole, in seq_id order, and a page
/// cut in the middle of a window ends exactly at its boundary.
#[test]
fn beyla_pages_across_read_windows_are_whole_and_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let (writer, tx) = Writer::start(conn, db.clone(), Arc::new(Counters::default())).unwrap();
    let rows = BeylaRows {
        http: beyla_histograms(5_000, "r"),
        spans: beyla_spans(5_000),
        ..Default::default()
    };
    tx.send(WriteOp::Beyla(rows, None)).unwrap();
    drop(tx);
    writer.join();

    let page = |start_seq_id, max_records| {
        coral_agent::store::beyla::query(
            &db,
            &QueryBeylaMetricsRequest {
                include_traces: true,
                start_seq_id,
                max_records,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let seqs = |r: &coral_proto::agent::QueryBeylaMetricsResponse| -> Vec<u64> {
        let mut all: Vec<u64> = r.http_metrics.iter().map(|m| m.seq_id).collect();
        all.extend(r.trace_spans.iter().map(|s| s.seq_id));
        all
    };
    let whole = page(0, 50_000);
    assert!(!whole.has_more);
    assert_eq!(seqs(&whole), (1..=10_000).collect::<Vec<_>>());

    let first = page(0, 6_000);
    assert!(first.has_more);
    assert_eq!(first.max_seq_id, 6_000);
    assert_eq!(
        (first.http_metrics.len(), first.trace_spans.len()),
        (5_000, 1_000)
    );
    let rest = page(first.max_seq_id, 50_000);
    assert_eq!(seqs(&rest), (6_001..=10_000).collect::<Vec<_>>());
}

/// Every column of Beyla's histogram families (generated in the agent's
/// append and read from one declaration,
/// `coral_model::beyla_histogram_families`): an HTTP, a gRPC and an SQL row
/// whose every field differs from the others' come back as they were sent,
/// numbered.
#[test]
fn every_field_of_every_beyla_histogram_family_reads_back_as_sent() {
    use coral_model::Histogram;
    use coral_proto::common::{BeylaGrpcMetric, BeylaSqlMetric};
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let (writer, tx) = Writer::start(conn, db.clone(), Arc::new(Counters::default())).unwrap();
    let minute = (now_ns() / 60_000_000_000 * 60) as i64;
    let latency = |counts: Vec<u64>, max: f64| {
        Some(
            Histogram::new(vec![10.0, 100.0], counts, 250.5, Some(1.5), Some(max))
                .unwrap()
                .to_proto(),
        )
    };
    let attributes = |v: &str| std::collections::HashMap::from([("k".to_owned(), v.to_owned())]);
    let http = BeylaHttpMetric {
        minute,
        service_name: "storefront".into(),
        kind: "server".into(),
        http_method: "PATCH".into(),
        http_route: "/carts/{id}".into(),
        http_status_code: 418,
        latency: latency(vec![1, 2, 0], 99.0),
        attributes: attributes("h"),
        seq_id: 0,
        agent_id: String::new(),
    };
    let grpc = BeylaGrpcMetric {
        minute: minute - 60,
        service_name: "payments".into(),
        kind: "client".into(),
        rpc_system: "grpc".into(),
        grpc_method: "/bank.Pay/Refund".into(),
        grpc_status_code: 7,
        latency: latency(vec![0, 1, 0], 50.0),
        attributes: attributes("g"),
        seq_id: 0,
        agent_id: String::new(),
    };
    let sql = BeylaSqlMetric {
        minute: minute - 120,
        service_name: "ledger".into(),
        db_system: "mysql".into(),
        sql_operation: "UPDATE".into(),
        table_name: "balances".into(),
        error_count: 3,
        latency: latency(vec![0, 0, 4], 700.0),
        attributes: attributes("s"),
        seq_id: 0,
        agent_id: String::new(),
    };
    let rows = BeylaRows {
        http: vec![http.clone()],
        grpc: vec![grpc.clone()],
        sql: vec![sql.clone()],
        spans: Vec::new(),
    };
    tx.send(WriteOp::Beyla(rows, None)).unwrap();
    drop(tx);
    writer.join();

    let page = coral_agent::store::beyla::query(
        &db,
        &QueryBeylaMetricsRequest {
            max_records: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        page.http_metrics,
        vec![BeylaHttpMetric { seq_id: 1, ..http }]
    );
    assert_eq!(
        page.grpc_metrics,
        vec![BeylaGrpcMetric { seq_id: 2, ..grpc }]
    );
    assert_eq!(page.sql_metrics, vec![BeylaSqlMetric { seq_id: 3, ..sql }]);
}

/// A file written before a column was declared gets the column at open:
/// added at the table's end, rows already there read its default, and new
/// rows are written to it (appended by column name, wherever it is).
#[test]
fn a_column_an_older_file_lacks_is_added_and_filled() {
    let dir = tempfile::tempdir().unwrap();
    let store = |prefix: &str| {
        let (db, conn) = Database::open(dir.path()).unwrap();
        let (writer, tx) = Writer::start(conn, db.clone(), Arc::new(Counters::default())).unwrap();
        let rows = BeylaRows {
            http: beyla_histograms(1, prefix),
            ..Default::default()
        };
        tx.send(WriteOp::Beyla(rows, None)).unwrap();
        drop(tx);
        writer.join();
        db
    };
    drop(store("before"));
    {
        let conn = duckdb::Connection::open(dir.path().join("agent.duckdb")).unwrap();
        conn.execute_batch("ALTER TABLE beyla_http_metrics_local DROP COLUMN http_method")
            .unwrap();
    }
    let db = store("after");
    let page = coral_agent::store::beyla::query(
        &db,
        &QueryBeylaMetricsRequest {
            max_records: 10,
            ..Default::default()
        },
    )
    .unwrap();
    let stored: Vec<(&str, &str)> = page
        .http_metrics
        .iter()
        .map(|m| (m.http_route.as_str(), m.http_method.as_str()))
        .collect();
    assert_eq!(stored, vec![("/before/0", ""), ("/after/0", "GET")]);
}

/// A Beyla transaction that fails loses only its own spans: the histograms
/// that went with it are written again on their own, the counters say what
/// was lost, and the Beyla sequence goes on without a hole.
#[test]
fn a_failed_beyla_write_loses_only_its_spans() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    // Every span append now fails; histogram appends do not.
    conn.execute_batch("DROP TABLE beyla_traces_local").unwrap();
    let counters = Arc::new(Counters::default());
    let (writer, tx) = Writer::start(conn, db.clone(), counters.clone()).unwrap();
    let rows = BeylaRows {
        http: beyla_histograms(5, "first"),
        spans: beyla_spans(3),
        ..Default::default()
    };
    tx.send(WriteOp::Beyla(rows, None)).unwrap();
    let later = BeylaRows {
        http: beyla_histograms(2, "later"),
        ..Default::default()
    };
    tx.send(WriteOp::Beyla(later, None)).unwrap();
    drop(tx);
    writer.join();

    let load = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(load(&counters.beyla_rows_stored), 7);
    assert_eq!(
        load(&counters.beyla_rows_dropped),
        3,
        "the spans of the failed transaction, and nothing else"
    );
    assert_eq!(db.latest_beyla_seq(), 7);
    let page = coral_agent::store::beyla::query(
        &db,
        &QueryBeylaMetricsRequest {
            start_seq_id: 0,
            max_records: 100,
            ..Default::default()
        },
    )
    .unwrap();
    let stored: Vec<(u64, &str)> = page
        .http_metrics
        .iter()
        .map(|m| (m.seq_id, m.http_route.as_str()))
        .collect();
    assert_eq!(
        stored,
        vec![
            (1, "/first/0"),
            (2, "/first/1"),
            (3, "/first/2"),
            (4, "/first/3"),
            (5, "/first/4"),
            (6, "/later/0"),
            (7, "/later/1"),
        ]
    );
    // The next Beyla seq_id was persisted with the last commit.
    drop(db);
    let (db, _conn) = Database::open(dir.path()).unwrap();
    assert_eq!(db.latest_beyla_seq(), 7);
}

/// Beyla spans hold the permits that admitted them until the writer has
/// committed them, as OTLP spans do: the bound covers rows up to disk.
#[test]
fn beyla_permits_are_held_until_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let counters = Arc::new(Counters::default());
    let (writer, tx) = Writer::start(conn, db.clone(), counters.clone()).unwrap();
    let admission = coral_agent::pipeline::Admission::new(2);
    let permit = admission
        .admit(2, &counters.beyla_requests_throttled)
        .unwrap();
    let rows = BeylaRows {
        spans: beyla_spans(2),
        ..Default::default()
    };
    tx.send(WriteOp::Beyla(rows, permit)).unwrap();
    // The writer gathers for a second before it commits. Until the commit
    // shows, the bound must stay full: room first, then the sequence read
    // after it, so a permit given back early is caught in that second.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let room = admission
            .admit(1, &counters.beyla_requests_throttled)
            .is_ok();
        let committed = db.latest_beyla_seq() == 2;
        assert!(
            !room || committed,
            "a permit came back before its spans were committed"
        );
        if committed {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no commit in 30 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(tx);
    writer.join();
    assert_eq!(db.latest_beyla_seq(), 2);
    assert!(
        admission
            .admit(2, &counters.beyla_requests_throttled)
            .is_ok(),
        "the commit gives the room back"
    );
}

/// A database written by schema version 1 (each kept span holding its
/// resource JSON) is upgraded in place at start: rows, seq_ids and the session
/// survive, resources are stored once, and new rows continue the sequence.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(coral_agent::store::DB_FILE);
    {
        let conn = duckdb::Connection::open(&file).unwrap();
        conn.execute_batch(include_str!("fixtures/agent-schema-v1.sql"))
            .unwrap();
    }
    let keep_all = "    filters:\n      - sample_rate: 1.0";
    let agent = start(&config(dir.path(), keep_all)).await;
    let (buckets, kept, cursor, session) = query_all(&agent, 0, 2).await;
    assert_eq!(session, "session-of-a-version-1-agent");
    assert_eq!((buckets.len(), cursor), (1, 4));
    let resources: Vec<(u64, &str)> = kept
        .iter()
        .map(|s| (s.seq_id, s.resource_json.as_str()))
        .collect();
    let web1 = r#"{"service.name":"checkout","host.name":"web-1"}"#;
    let web2 = r#"{"service.name":"payments","host.name":"web-2"}"#;
    assert_eq!(resources, vec![(1, web1), (2, web1), (3, web2)]);
    assert_eq!(kept[2].status_message, "card declined");
    assert_eq!(kept[2].attributes_json, r#"{"http.route":"/pay"}"#);

    send(&agent, spans("beta", now_ns() - 120_000_000_000, 2)).await;
    flush_and_wait(&agent, 1, 2).await;
    let (_, new, _, _) = query_all(&agent, cursor, 0).await;
    assert_eq!(new.len(), 2);
    assert!(new.iter().all(|s| s.seq_id > 4));
    assert!(
        new.iter()
            .all(|s| s.resource_json.contains(r#""service.name":"beta""#)),
        "{:?}",
        new[0].resource_json
    );
    agent.shutdown().await;

    let conn = duckdb::Connection::open(&file).unwrap();
    let (version, resources, spans): (String, u64, u64) = conn
        .query_row(
            "SELECT (SELECT value FROM coral_metadata WHERE key = 'schema_version'), \
             (SELECT count(*) FROM otel_resources_local), (SELECT count(*) FROM otel_spans_local)",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (version.as_str(), resources, spans),
        (coral_agent::store::schema::SCHEMA_VERSION, 3, 5),
        "one row per resource"
    );
}
