//! `coral colony migrate` as the built binary: a stopped colony's DuckDB
//! history copied into a real `clickhouse-server` (Debian's 18.16, started
//! on loopback ports) with the rows per table printed, a second run that
//! finds every row already there, and the errors that name what to fix (an
//! engine other than clickhouse, a server that does not answer, a wrong
//! password, a data directory without colony.duckdb, a colony still running
//! on the file).
//!
//! The server tests need `clickhouse-server` (a skip with a message where it
//! is missing, a failure with `CORAL_REQUIRE_CLICKHOUSE=1`).

#[allow(dead_code)]
#[path = "../../coral-colony/tests/common/clickhouse.rs"]
mod clickhouse;
mod common;

use std::path::Path;

use coral_colony::store::Database;
use coral_colony::store::ingest::{Page, Stream};
use coral_colony::store::writer::{AgentRecord, Writer};
use coral_model::{BeylaRows, Bucket, BucketKey, SpanKind, Stats};
use coral_proto::common::{HostMetrics, TelemetryBucket, TelemetrySpan};

use common::{free_port, run};

const MINUTE: i64 = 1_765_000_020 / 60 * 60;

fn bucket(seq: u64, kind: SpanKind, n: usize) -> TelemetryBucket {
    let mut b = Bucket::new(BucketKey {
        minute: MINUTE,
        service: "checkout".into(),
        kind,
    });
    let mut op = Stats::new();
    for i in 0..n {
        let trace = format!("{:032x}", seq * 1000 + i as u64);
        b.stats.record(i as f64 + 1.0, i == 0, &trace);
        op.record(i as f64 + 1.0, i == 0, &trace);
    }
    b.operations.push(("POST /pay".into(), op));
    b.to_proto("", seq)
}

fn span(seq: u64) -> TelemetrySpan {
    TelemetrySpan {
        seq_id: seq,
        trace_id: format!("{seq:032x}"),
        span_id: format!("{seq:016x}"),
        service_name: "checkout".into(),
        span_name: "POST /pay".into(),
        span_kind: "SERVER".into(),
        start_time_unix_nano: MINUTE * 1_000_000_000,
        duration_us: 1_500,
        ..Default::default()
    }
}

/// A stopped colony in `dir`: one agent with two buckets (2 operations), two
/// kept spans, a host sample and a gap (seq_id 5 never arrived).
async fn stopped_colony(dir: &Path) {
    let (db, conn) = Database::open(dir).unwrap();
    let (writer, tx) = Writer::start(conn, db.clone(), Default::default()).unwrap();
    tx.upsert_agent(AgentRecord {
        agent_id: "web-1".into(),
        hostname: "web-1.example".into(),
        source: "registered".into(),
        ..Default::default()
    });
    tx.store(Page {
        agent_id: "web-1".into(),
        stream: Stream::Pull,
        session_id: "web-1-s1".into(),
        start_seq: 0,
        max_seq: 6,
        buckets: vec![
            bucket(1, SpanKind::Server, 50),
            bucket(2, SpanKind::Client, 5),
        ],
        spans: vec![span(3), span(4)],
        hosts: vec![HostMetrics {
            seq_id: 6,
            bucket_time: MINUTE,
            hostname: "web-1.example".into(),
            cpu_percent: 12.0,
            ..Default::default()
        }],
        beyla: BeylaRows::default(),
        reported: Vec::new(),
    })
    .await
    .unwrap();
    tx.close();
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
    drop(db);
}

/// The (read, moved, already there) columns of `table`'s line.
fn counts(stdout: &str, table: &str) -> (u64, u64, u64) {
    let line = stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(table))
        .unwrap_or_else(|| panic!("no line for {table}:\n{stdout}"));
    let n: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().unwrap())
        .collect();
    (n[0], n[1], n[2])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_copies_a_stopped_colony_and_prints_what_each_table_moved() {
    let Some(bin) = clickhouse::binary() else {
        return;
    };
    let server = clickhouse::Server::start(&bin, "").await;
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("colony");
    stopped_colony(&data).await;
    let password = home.path().join("password");
    std::fs::write(&password, format!("{}\n", clickhouse::PASSWORD)).unwrap();
    let url = server.url();
    let args = |password: &Path| {
        vec![
            "colony".to_owned(),
            "migrate".into(),
            "--to".into(),
            "clickhouse".into(),
            url.clone(),
            "--data-dir".into(),
            data.display().to_string(),
            "--database".into(),
            "history".into(),
            "--user".into(),
            "coral".into(),
            "--password-file".into(),
            password.display().to_string(),
        ]
    };
    let migrate = |args: Vec<String>| {
        tokio::task::spawn_blocking(move || {
            run(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
    };

    let (code, stdout, stderr) = migrate(args(&password)).await.unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    let expected = [
        ("otel_spans", 2),
        ("otel_operations", 2),
        ("trace_spans", 2),
        ("host_metrics", 1),
        ("beyla_http_metrics", 0),
        ("beyla_traces", 0),
        ("gaps", 1),
        ("agents", 1),
        ("cursors", 1),
        ("total", 10),
    ];
    for (table, n) in expected {
        assert_eq!(counts(&stdout, table), (n, n, 0), "{table}:\n{stdout}");
    }
    assert!(
        stdout.contains("set `storage.engine: clickhouse`")
            && stdout.contains(&format!("url: {url}"))
            && stdout.contains("database: history")
            && stdout.contains("user: coral")
            && stdout.contains("restart the colony"),
        "{stdout}"
    );

    // Run again: every row was already there.
    let (code, stdout, stderr) = migrate(args(&password)).await.unwrap();
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");
    for (table, n) in expected {
        assert_eq!(counts(&stdout, table), (n, 0, n), "{table}:\n{stdout}");
    }

    // A wrong password names the flag to fix.
    let wrong = home.path().join("wrong-password");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let (code, _, stderr) = migrate(args(&wrong)).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("refused user \"coral\"") && stderr.contains("--password-file"),
        "{stderr}"
    );

    // A colony running on the file holds it: say so.
    let running = duckdb::Connection::open(data.join("colony.duckdb")).unwrap();
    let (code, _, stderr) = migrate(args(&password)).await.unwrap();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("is in use by another process")
            && stderr.contains("stop the colony that runs on it"),
        "{stderr}"
    );
    drop(running);
}

#[test]
fn migrate_names_what_to_fix() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().display().to_string();
    let (code, _, stderr) = run(&[
        "colony",
        "migrate",
        "--to",
        "postgres",
        "http://127.0.0.1:8123",
        "--data-dir",
        &dir,
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("unknown engine \"postgres\" in --to")
            && stderr.contains("--to clickhouse"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&[
        "colony",
        "migrate",
        "--to",
        "clickhouse",
        "http://127.0.0.1:8123",
        "--data-dir",
        &dir,
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no colony database at") && stderr.contains("--data-dir"),
        "{stderr}"
    );

    // A data directory with a colony, and no server at the URL.
    let data = home.path().join("colony");
    tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(stopped_colony(&data));
    let url = format!("http://127.0.0.1:{}", free_port());
    let (code, _, stderr) = run(&[
        "colony",
        "migrate",
        "--to",
        "clickhouse",
        &url,
        "--data-dir",
        &data.display().to_string(),
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("cannot reach ClickHouse at {url}"))
            && stderr.contains("HTTP port"),
        "{stderr}"
    );

    let (code, _, stderr) = run(&["colony", "migrate", "--to", "clickhouse", "ch:8123"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("is not a ClickHouse URL"), "{stderr}");
}
