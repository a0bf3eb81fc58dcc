//! Push ingest: the colony merges bucket parts and deduplicates retries, and
//! a forwarder agent's outbox survives a colony outage and an agent restart,
//! arriving exactly once.

mod common;

use std::time::Duration;

use common::*;
use coral_model::{Bucket, BucketKey, SpanKind};
use coral_proto::colony::{IngestTelemetryRequest, QueryOtelSummariesRequest};
use coral_proto::common::TelemetryBucket;

fn part(values: impl Iterator<Item = f64>, seq: u64) -> TelemetryBucket {
    let mut bucket = Bucket::new(BucketKey {
        minute: 1_800_000_000 / 60 * 60,
        service: "search".into(),
        kind: SpanKind::Server,
    });
    for (i, v) in values.enumerate() {
        bucket.stats.record(
            v,
            i % 4 == 0,
            &format!("{:032x}", seq * 1_000_000 + i as u64),
        );
    }
    bucket.to_proto("pusher", seq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bucket_parts_merge_and_retries_never_double_count() {
    let dir = tempfile::tempdir().unwrap();
    let colony = start_colony(&colony_config(dir.path(), "127.0.0.1:0", "")).await;
    let mut c = client(colony.addr, None).await;
    // Two parts of the same minute: 1..=100 ms and 101..=1000 ms.
    let first = part((1..=100).map(f64::from), 1);
    let second = part((101..=1000).map(f64::from), 2);
    let request = |bucket: TelemetryBucket, start: u64| IngestTelemetryRequest {
        agent_id: "pusher".into(),
        session_id: "s1".into(),
        buckets: vec![bucket],
        start_seq_id: start,
        max_seq_id: start + 1,
        ..Default::default()
    };
    let r = c
        .ingest_telemetry(request(first.clone(), 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted, r.rejected, r.acked_seq_id), (1, 0, 1));
    let r = c
        .ingest_telemetry(request(second, 1))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted, r.acked_seq_id), (1, 2));
    // A retry of the first part (its answer was "lost"): accepted, not stored.
    let r = c
        .ingest_telemetry(request(first, 0))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.accepted, r.acked_seq_id), (1, 2));
    assert!(r.message.contains("already stored"), "{}", r.message);

    let minute = 1_800_000_000 / 60 * 60;
    let summary = c
        .query_otel_summaries(QueryOtelSummariesRequest {
            service_name: "search".into(),
            from_unix: minute,
            to_unix: minute + 60,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(summary.rows.len(), 1);
    let row = &summary.rows[0];
    assert_eq!(row.total_spans, 1000);
    assert_eq!(row.error_count, 25 + 225);
    assert_eq!((row.min_ms, row.max_ms), (1.0, 1000.0));
    // Percentiles come from the merged sketch: within 1% of the exact ones.
    for (got, exact) in [
        (row.p50_ms, 500.0),
        (row.p95_ms, 950.0),
        (row.p99_ms, 990.0),
    ] {
        assert!((got - exact).abs() / exact <= 0.011, "{got} vs {exact}");
    }
    assert_eq!(row.sample_traces.len(), 5);
    colony.shutdown().await;
    if common::ON_CLICKHOUSE {
        // ClickHouse keeps each part as a row, merged when read; the retried
        // part is one row key, counted once.
        assert_eq!(count(dir.path(), "SELECT count(*) FROM otel_spans"), 2);
    } else {
        assert_eq!(
            count(dir.path(), "SELECT max(parts) FROM otel_spans"),
            2,
            "one row, merged from two parts"
        );
        assert_eq!(count(dir.path(), "SELECT count(*) FROM otel_spans"), 1);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarder_outbox_waits_for_the_colony_and_arrives_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    // A free port for a colony that is not running yet.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let extra = "    push:\n      interval: 200ms\n      max_records: 40\n      max_backoff: 500ms\n  mode: forwarder\n  host_metrics:\n    enabled: false";
    let cfg = agent_config("fwd", &dir.path().join("fwd"), addr, extra);
    let agent = start_agent(&cfg).await;
    send_spans(&agent, "lambda", 120, 12).await;
    flush_agent(&agent, 120).await;
    assert_eq!(agent.api.status().push_acked_seq_id, 0, "colony is down");
    // The agent restarts during the outage: the outbox is in its database.
    agent.shutdown().await;
    let agent = start_agent(&cfg).await;
    send_spans(&agent, "lambda", 30, 0).await;
    flush_agent(&agent, 30).await;

    let colony = start_colony(&colony_config(
        &dir.path().join("colony"),
        &addr.to_string(),
        "",
    ))
    .await;
    wait_for("the outbox drained", Duration::from_secs(60), || {
        let status = agent.api.status();
        async move { status.push_acked_seq_id >= status.latest_seq_id }
    })
    .await;
    assert_eq!(totals(addr, None, "lambda").await, (150, 10));
    // Registration retries with its own backoff while the colony is away, so
    // it may land after the outbox has drained.
    let list = || async move {
        let mut c = client(addr, None).await;
        c.list_agents(coral_proto::colony::ListAgentsRequest {})
            .await
            .unwrap()
            .into_inner()
            .agents
            .into_iter()
            .find(|a| a.agent_id == "fwd")
    };
    wait_for(
        "the forwarder registered",
        Duration::from_secs(90),
        || async move { list().await.is_some_and(|a| a.mode == "forwarder") },
    )
    .await;
    let fwd = list().await.unwrap();
    assert!(fwd.endpoint.is_empty(), "push agents are not polled");
    agent.shutdown().await;
    colony.shutdown().await;
    let db = dir.path().join("colony");
    assert_eq!(count(&db, "SELECT count(*) FROM trace_spans"), 150);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT seq_id) FROM trace_spans"),
        150
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_summaries_older_than_configured() {
    let dir = tempfile::tempdir().unwrap();
    // Summaries are kept 1 s, cleaned every second; the pushed minute is old.
    let extra = "storage:\n  retention:\n    otel_spans: 1s\n    otel_operations: 1s\n  cleanup_interval: 1s";
    let colony = start_colony(&colony_config(dir.path(), "127.0.0.1:0", extra)).await;
    let mut c = client(colony.addr, None).await;
    let mut bucket = part((1..=10).map(f64::from), 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Two days back: ClickHouse drops whole days, the embedded store rows.
    bucket.bucket_time = (now / 60 - 2 * 24 * 60) * 60;
    let minute = bucket.bucket_time;
    let r = c
        .ingest_telemetry(IngestTelemetryRequest {
            agent_id: "pusher".into(),
            session_id: "s1".into(),
            buckets: vec![bucket],
            start_seq_id: 0,
            max_seq_id: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.accepted, 1);
    let query = QueryOtelSummariesRequest {
        service_name: "search".into(),
        from_unix: minute,
        to_unix: minute + 60,
        ..Default::default()
    };
    wait_for("retention", Duration::from_secs(30), || {
        let (mut c, q) = (c.clone(), query.clone());
        async move {
            c.query_otel_summaries(q)
                .await
                .unwrap()
                .into_inner()
                .rows
                .is_empty()
        }
    })
    .await;
    colony.shutdown().await;
    assert_eq!(count(dir.path(), "SELECT count(*) FROM otel_operations"), 0);
}
