//! Host metrics: agents sample `/proc`, the colony pulls the samples into
//! `host_metrics`, and the correlation query joins them with span summaries
//! by (agent_id, bucket_time).

mod common;

use std::time::{Duration, SystemTime};

use common::*;
use coral_proto::colony::QueryHostCorrelationRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_samples_reach_the_colony_and_join_span_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1s").await;
    let addr = colony.addr;
    let agent = start_agent(&agent_config(
        "h1",
        &dir.path().join("h1"),
        addr,
        "  host_metrics:\n    interval: 1s",
    ))
    .await;
    // Spans in the current minute, where the sampler keeps adding samples.
    send_spans_at(&agent, "api", 25, 5, SystemTime::now()).await;
    flush_agent(&agent, 25).await;

    wait_for(
        "a correlated minute",
        Duration::from_secs(60),
        || async move {
            let mut c = client(addr, None).await;
            let rows = c
                .query_host_correlation(QueryHostCorrelationRequest {
                    service_name: "api".into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .rows;
            rows.iter().any(|r| r.cpu_percent.is_some())
        },
    )
    .await;
    let mut c = client(addr, None).await;
    let rows = c
        .query_host_correlation(QueryHostCorrelationRequest {
            service_name: "api".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .rows;
    let row = rows.iter().find(|r| r.cpu_percent.is_some()).unwrap();
    assert_eq!(row.agent_id, "h1");
    assert_eq!(row.total_spans, 25);
    assert_eq!(row.error_count, 5);
    let cpu = row.cpu_percent.unwrap();
    assert!((0.0..=100.0).contains(&cpu), "{cpu}");
    assert!(row.memory_used_bytes.unwrap() > 0);
    assert!(row.net_rx_bytes_per_sec.unwrap() >= 0.0);
    assert!(row.load1.unwrap() >= 0.0);
    agent.shutdown().await;
    colony.shutdown().await;
    assert!(
        count(
            &dir.path().join("colony"),
            "SELECT count(*) FROM host_metrics"
        ) >= 1
    );
}
