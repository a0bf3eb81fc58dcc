//! `QueryHostCorrelation` over ClickHouse: per minute and agent, the
//! service's requests and p99 next to the host's sample, counted as the
//! embedded store's [`crate::store::query::CORRELATION_SQL`] counts them.

use std::collections::{BTreeMap, HashMap};

use clickhouse::Row;
use coral_proto::colony::{HostCorrelationRow, QueryHostCorrelationResponse};
use serde::Deserialize;

use super::read::merged;
use super::{ClickHouse, ClickHouseError};
use crate::catalogue;

/// A host sample's columns the correlation shows.
#[derive(Row, Deserialize)]
struct Sample {
    agent_id: String,
    minute: i64,
    cpu_percent: f64,
    memory_used_bytes: u64,
    net_rx_bytes_per_sec: f64,
    net_tx_bytes_per_sec: f64,
    load1: f64,
}

/// The host sample query: parameters from and to (Unix microseconds).
pub fn host_samples_sql(ch_table: &str) -> String {
    format!(
        "SELECT agent_id, intDiv(bucket_time, 1000000) AS minute, any(cpu_percent) AS cpu_percent, \
         any(memory_used_bytes) AS memory_used_bytes, \
         any(net_rx_bytes_per_sec) AS net_rx_bytes_per_sec, \
         any(net_tx_bytes_per_sec) AS net_tx_bytes_per_sec, any(load1) AS load1 \
         FROM {ch_table} FINAL WHERE bucket_time >= ? AND bucket_time < ? \
         GROUP BY agent_id, minute"
    )
}

/// Answers `QueryHostCorrelation` for `service` in `[from, to)` (Unix
/// seconds).
pub async fn host_correlation(
    ch: &ClickHouse,
    service: &str,
    from: i64,
    to: i64,
) -> Result<QueryHostCorrelationResponse, ClickHouseError> {
    let parts = merged(ch, &catalogue::OTEL_SPANS, false, (service, from, to), &[]).await?;
    // SERVER and CONSUMER buckets are the requests; a service with neither
    // in the window counts every kind, as `ListServices` does.
    let entry = |kind: &str| kind == "SERVER" || kind == "CONSUMER";
    let any_entry = parts.iter().any(|p| entry(&p.span_kind));
    let mut rows: BTreeMap<(i64, String), HostCorrelationRow> = BTreeMap::new();
    for p in parts {
        if any_entry && !entry(&p.span_kind) {
            continue;
        }
        let (agent, minute, _, summary) = p.into_summary("bucket")?;
        let (_, _, p99) = coral_model::operation_from_proto(&summary)
            .map_err(|e| ClickHouseError::Corrupt {
                what: "bucket",
                detail: e.to_string(),
            })?
            .percentiles();
        let row = rows
            .entry((minute, agent.clone()))
            .or_insert_with(|| HostCorrelationRow {
                bucket_time: minute,
                agent_id: agent,
                service_name: service.to_owned(),
                p99_ms: f64::NEG_INFINITY,
                ..Default::default()
            });
        row.total_spans += summary.total_spans;
        row.error_count += summary.error_count;
        row.p99_ms = row.p99_ms.max(p99);
    }
    let samples: Vec<Sample> = ch
        .client()
        .query(&host_samples_sql(
            &ch.target().table(&catalogue::HOST_METRICS),
        ))
        .bind(from * 1_000_000)
        .bind(to * 1_000_000)
        .fetch_all()
        .await
        .map_err(ch.failed("host sample read"))?;
    let samples: HashMap<(i64, String), Sample> = samples
        .into_iter()
        .map(|s| ((s.minute, s.agent_id.clone()), s))
        .collect();
    let rows = rows
        .into_iter()
        .map(|(key, mut row)| {
            if let Some(s) = samples.get(&key) {
                row.cpu_percent = Some(s.cpu_percent);
                row.memory_used_bytes = Some(s.memory_used_bytes);
                row.net_rx_bytes_per_sec = Some(s.net_rx_bytes_per_sec);
                row.net_tx_bytes_per_sec = Some(s.net_tx_bytes_per_sec);
                row.load1 = Some(s.load1);
            }
            row
        })
        .collect();
    Ok(QueryHostCorrelationResponse {
        rows,
        from_unix: from,
        to_unix: to,
    })
}
