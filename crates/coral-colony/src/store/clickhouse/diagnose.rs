//! The colony's ClickHouse as the diagnosis engine's data source
//! ([`coral_diagnose::DiagnosisData`]), behind `Diagnose` (`coral ask`):
//! the same rows, in the same order and with the same cuts, as the embedded
//! store's [`crate::store::diagnose::ColonyData`].
//!
//! Every read uses `FINAL` (a page stored twice counts once). OTLP RED rows
//! are `otel_operations` parts merged in the query (counts added, sketch
//! bins summed, see [`super::read`]); Beyla's histograms are merged per
//! series as [`super::beyla`] reads them; hostnames come from `agents`
//! (newest record). The trait is blocking: each method runs its queries on
//! the runtime behind a [`Handle`], so call it from a blocking thread (e.g.
//! `tokio::task::spawn_blocking`), never from async code.

mod traces;

use std::collections::HashMap;

use clickhouse::query::Query;
use clickhouse::{Client, Row};
use coral_diagnose::data::{
    AgentInfo, CoverageData, GapRow, HostMinute, Latency, RedRow, Source, TraceBatch, TraceFilter,
    TraceSelect,
};
use coral_diagnose::{DiagnosisData, Window};
use coral_model::{DurationSketch, Histogram, SpanKind};
use coral_proto::common::LatencyHistogram;
use serde::Deserialize;
use tokio::runtime::Handle;

use super::beyla::{self, Filter};
use super::read::merged;
use super::{ClickHouse, ClickHouseError};
use crate::catalogue;
use crate::catalogue::clickhouse::Target;
use crate::store::diagnose::{DataError, MAX_GAPS, merge_red};

/// The colony's ClickHouse store, read on the runtime behind a handle.
pub struct ClickHouseData {
    ch: ClickHouse,
    handle: Handle,
}

impl ClickHouseData {
    /// Reads `ch`, running each query on `handle`'s runtime (the caller's
    /// thread blocks until it is answered).
    pub fn new(ch: ClickHouse, handle: Handle) -> ClickHouseData {
        ClickHouseData { ch, handle }
    }

    /// Runs `read` to completion; its error is the `query`'s.
    fn run<T>(
        &self,
        query: &'static str,
        read: impl Future<Output = Result<T, ClickHouseError>>,
    ) -> Result<T, DataError> {
        self.handle.block_on(read).map_err(failed(query))
    }
}

/// A failed read as the engine sees it: undecodable data as
/// [`DataError::Corrupt`], anything else as the query's failure.
fn failed(query: &'static str) -> impl Fn(ClickHouseError) -> DataError {
    move |source| match source {
        ClickHouseError::Corrupt { what, detail } => DataError::Corrupt { what, detail },
        source => DataError::ClickHouse { query, source },
    }
}

/// Unix seconds as the tables' Unix microseconds.
fn micros(seconds: i64) -> i64 {
    seconds.saturating_mul(1_000_000)
}

/// Unix seconds of a microsecond timestamp as the embedded store reads them
/// (`epoch(t)::BIGINT`: a double rounded half to even).
fn epoch_seconds(micros: i64) -> i64 {
    (micros as f64 / 1_000_000.0).round_ties_even() as i64
}

/// Each agent's hostname (of its newest record).
async fn hostnames(ch: &ClickHouse) -> Result<HashMap<String, String>, ClickHouseError> {
    Ok(super::agents(ch)
        .await?
        .into_iter()
        .map(|a| (a.agent_id, a.hostname))
        .collect())
}

/// Services with an OTLP bucket or a Beyla histogram in `window`, sorted.
fn services_query(client: &Client, t: &Target, window: Window) -> Query {
    let sql = format!(
        "SELECT DISTINCT service_name FROM ( \
           SELECT service_name FROM {} FINAL WHERE bucket_time >= ? AND bucket_time < ? \
           UNION ALL SELECT service_name FROM {} FINAL WHERE minute >= ? AND minute < ? \
           UNION ALL SELECT service_name FROM {} FINAL WHERE minute >= ? AND minute < ? \
           UNION ALL SELECT service_name FROM {} FINAL WHERE minute >= ? AND minute < ?) \
         WHERE service_name != '' ORDER BY service_name",
        t.table(&catalogue::OTEL_SPANS),
        t.table(&catalogue::BEYLA_HTTP),
        t.table(&catalogue::BEYLA_GRPC),
        t.table(&catalogue::BEYLA_SQL),
    );
    let mut query = client.query(&sql);
    for _ in 0..4 {
        query = query.bind(micros(window.from)).bind(micros(window.to));
    }
    query
}

/// A Beyla histogram as a RED row (not yet merged with the operation's
/// other series).
fn beyla_row(
    (minute, agent_id, kind): (i64, String, &str),
    operation: String,
    latency: Option<LatencyHistogram>,
    failed: impl FnOnce(u64) -> u64,
) -> Result<RedRow, ClickHouseError> {
    let corrupt = |detail: String| ClickHouseError::Corrupt {
        what: "histogram",
        detail,
    };
    let proto = latency.ok_or_else(|| corrupt("no latency histogram".into()))?;
    let histogram = Histogram::from_proto(&proto).map_err(|e| corrupt(e.to_string()))?;
    Ok(RedRow {
        minute,
        agent_id,
        host: String::new(),
        span_kind: kind
            .to_ascii_uppercase()
            .parse()
            .unwrap_or(SpanKind::Unspecified),
        operation,
        source: Source::Beyla,
        requests: histogram.count,
        errors: failed(histogram.count),
        sum_ms: histogram.sum_ms,
        max_ms: histogram.max_ms.unwrap_or(0.0),
        latency: Latency::Histogram(histogram),
        sample_trace_ids: Vec::new(),
    })
}

/// `a b` without the space when either is empty (SQL's `trim(a || ' ' || b)`).
fn joined(a: &str, b: &str) -> String {
    format!("{a} {b}").trim_matches(' ').to_owned()
}

/// The service's RED rows of both sources, merged per (minute, agent,
/// kind, operation, source) as the embedded store merges them.
async fn red(
    ch: &ClickHouse,
    service: &str,
    window: Window,
) -> Result<Vec<RedRow>, ClickHouseError> {
    let filter = Filter {
        services: vec![service.to_owned()],
        from_ms: window.from.saturating_mul(1_000),
        to_ms: window.to.saturating_mul(1_000),
    };
    // Nothing precedes the epoch (and Beyla's filter reads 0 as open).
    if window.to <= 0 || window.from >= window.to {
        return Ok(Vec::new());
    }
    let range = (service, window.from, window.to);
    let (otlp, http, grpc, sql, hosts) = tokio::try_join!(
        merged(ch, &catalogue::OTEL_OPERATIONS, true, range, &[]),
        beyla::http(ch, &filter),
        beyla::grpc(ch, &filter),
        beyla::sql(ch, &filter),
        hostnames(ch),
    )?;
    let mut rows = Vec::with_capacity(otlp.len() + http.len() + grpc.len() + sql.len());
    for parts in otlp {
        let (agent_id, minute, kind, summary) = parts.into_summary("sketch")?;
        let sketch = match &summary.sketch {
            Some(p) => DurationSketch::from_proto(p).map_err(|e| ClickHouseError::Corrupt {
                what: "sketch",
                detail: e.to_string(),
            })?,
            None => DurationSketch::new(),
        };
        rows.push(RedRow {
            minute,
            agent_id,
            host: String::new(),
            span_kind: kind.parse().unwrap_or(SpanKind::Unspecified),
            operation: summary.operation,
            source: Source::Otlp,
            requests: summary.total_spans.max(0) as u64,
            errors: summary.error_count.max(0) as u64,
            sum_ms: summary.sum_ms,
            max_ms: summary.max_ms,
            latency: Latency::Sketch(sketch),
            sample_trace_ids: summary
                .samples
                .into_iter()
                .map(|s| s.trace_id)
                .filter(|id| !id.is_empty())
                .collect(),
        });
    }
    for m in http {
        let fails = m.http_status_code >= 500;
        let operation = joined(&m.http_method, &m.http_route);
        let at = (m.minute, m.agent_id, m.kind.as_str());
        rows.push(beyla_row(at, operation, m.latency, |n| {
            n * u64::from(fails)
        })?);
    }
    for m in grpc {
        let fails = m.grpc_status_code != 0;
        let at = (m.minute, m.agent_id, m.kind.as_str());
        rows.push(beyla_row(at, m.grpc_method, m.latency, |n| {
            n * u64::from(fails)
        })?);
    }
    for m in sql {
        let operation = joined(&m.sql_operation, &m.table_name);
        let errors = m.error_count;
        rows.push(beyla_row(
            (m.minute, m.agent_id, "CLIENT"),
            operation,
            m.latency,
            |_| errors,
        )?);
    }
    let mut rows = merge_red(rows);
    for r in &mut rows {
        r.host = hosts.get(&r.agent_id).cloned().unwrap_or_default();
    }
    Ok(rows)
}

/// An agent's host in one minute.
#[derive(Row, Deserialize)]
struct HostSample {
    minute: i64,
    agent_id: String,
    hostname: String,
    cpu_percent: f64,
    memory_used_bytes: u64,
    memory_total_bytes: u64,
    net_rx_bytes_per_sec: f64,
    net_tx_bytes_per_sec: f64,
    load1: f64,
}

/// Host samples of `agent_ids` (not empty) in `window`, one per (agent,
/// minute), by agent then minute. Of several samples of a minute the newest
/// (highest seq_id) counts, as the embedded store keeps only the newest
/// (whose averages then average the one sample).
fn hosts_query(client: &Client, t: &Target, agent_ids: &[String], window: Window) -> Query {
    let sql = format!(
        "SELECT intDiv(bucket_time, 1000000) AS minute, agent_id, \
                argMax(hostname, seq_id), argMax(cpu_percent, seq_id), \
                argMax(memory_used_bytes, seq_id), argMax(memory_total_bytes, seq_id), \
                argMax(net_rx_bytes_per_sec, seq_id), argMax(net_tx_bytes_per_sec, seq_id), \
                argMax(load1, seq_id) \
         FROM {} FINAL WHERE bucket_time >= ? AND bucket_time < ? AND has(?, agent_id) \
         GROUP BY minute, agent_id ORDER BY agent_id, minute",
        t.table(&catalogue::HOST_METRICS)
    );
    client
        .query(&sql)
        .bind(micros(window.from))
        .bind(micros(window.to))
        .bind(agent_ids)
}

/// A host sample as the engine reads it.
fn host_minute(h: HostSample) -> HostMinute {
    HostMinute {
        minute: h.minute,
        agent_id: h.agent_id,
        hostname: h.hostname,
        cpu_percent: Some(h.cpu_percent),
        memory_used_bytes: Some(h.memory_used_bytes),
        memory_total_bytes: Some(h.memory_total_bytes),
        net_rx_bytes_per_sec: Some(h.net_rx_bytes_per_sec),
        net_tx_bytes_per_sec: Some(h.net_tx_bytes_per_sec),
        load1: Some(h.load1),
    }
}

/// A gap as the coverage reads it.
#[derive(Row, Deserialize)]
struct Gap {
    agent_id: String,
    from_seq_id: u64,
    to_seq_id: u64,
    detected_at: i64,
    reason: String,
}

/// The newest [`MAX_GAPS`] gaps detected in `window`.
fn gaps_query(client: &Client, t: &Target, window: Window) -> Query {
    let sql = format!(
        "SELECT agent_id, from_seq_id, to_seq_id, detected_at, reason FROM {} FINAL \
         WHERE detected_at >= ? AND detected_at < ? \
         ORDER BY detected_at DESC, agent_id LIMIT {MAX_GAPS}",
        t.table(&catalogue::GAPS)
    );
    client
        .query(&sql)
        .bind(micros(window.from))
        .bind(micros(window.to))
}

/// Every agent, and the newest [`MAX_GAPS`] gaps detected in `window`, by
/// agent and time.
async fn coverage(ch: &ClickHouse, window: Window) -> Result<CoverageData, ClickHouseError> {
    let gaps = async {
        gaps_query(ch.client(), ch.target(), window)
            .fetch_all::<Gap>()
            .await
            .map_err(ClickHouseError::query("gaps read"))
    };
    let (agents, gaps) = tokio::try_join!(super::agents(ch), gaps)?;
    let mut gaps: Vec<GapRow> = gaps
        .into_iter()
        .map(|g| GapRow {
            agent_id: g.agent_id,
            from_seq: g.from_seq_id,
            to_seq: g.to_seq_id,
            detected_at: epoch_seconds(g.detected_at),
            reason: g.reason,
        })
        .collect();
    gaps.sort_by(|a, b| (&a.agent_id, a.detected_at).cmp(&(&b.agent_id, b.detected_at)));
    Ok(CoverageData {
        agents: agents
            .into_iter()
            .map(|a| AgentInfo {
                agent_id: a.agent_id,
                hostname: a.hostname,
            })
            .collect(),
        gaps,
    })
}

/// The text of each of this module's own queries for typical arguments
/// (values bound), for checking them on other ClickHouse versions. (Its
/// RED rows are [`super::operations_sql`]'s and Beyla's reads.)
pub fn sql_examples(target: &Target) -> Vec<String> {
    let client = Client::default();
    let window = Window::new(1_795_000_000, 1_795_003_600);
    let mut queries = vec![
        services_query(&client, target, window),
        hosts_query(&client, target, &["node-a".into(), "node-b".into()], window),
        gaps_query(&client, target, window),
    ];
    for select in [TraceSelect::Sampled, TraceSelect::Errors, TraceSelect::Any] {
        for operation in [None, Some("GET /a".to_owned())] {
            let filter = TraceFilter {
                window,
                service: "checkout".into(),
                operation,
                select,
                limit: 40,
            };
            queries.push(traces::pick_query(&client, target, &filter, 40));
        }
    }
    let ids = [
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "0af7651916cd43dd8448eb211c80319c",
    ];
    queries.extend(traces::span_queries(&client, target, &ids));
    queries
        .iter()
        .map(|q| q.sql_display().to_string())
        .collect()
}

impl DiagnosisData for ClickHouseData {
    type Error = DataError;

    fn services(&self, window: Window) -> Result<Vec<String>, DataError> {
        let query = services_query(self.ch.client(), self.ch.target(), window);
        self.run("services", async move {
            query
                .fetch_all::<String>()
                .await
                .map_err(ClickHouseError::query("service read"))
        })
    }

    fn red(&self, service: &str, window: Window) -> Result<Vec<RedRow>, DataError> {
        self.run("red", red(&self.ch, service, window))
    }

    fn traces(&self, filter: &TraceFilter) -> Result<TraceBatch, DataError> {
        self.run("traces", traces::traces(&self.ch, filter))
    }

    fn hosts(&self, agent_ids: &[String], window: Window) -> Result<Vec<HostMinute>, DataError> {
        if agent_ids.is_empty() {
            return Ok(Vec::new());
        }
        let query = hosts_query(self.ch.client(), self.ch.target(), agent_ids, window);
        let rows = self.run("hosts", async move {
            query
                .fetch_all::<HostSample>()
                .await
                .map_err(ClickHouseError::query("host sample read"))
        })?;
        Ok(rows.into_iter().map(host_minute).collect())
    }

    fn coverage(&self, window: Window) -> Result<CoverageData, DataError> {
        self.run("coverage", coverage(&self.ch, window))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_round_as_the_embedded_stores_epoch_cast() {
        assert_eq!(epoch_seconds(1_765_000_000_000_000), 1_765_000_000);
        assert_eq!(epoch_seconds(1_765_000_000_400_000), 1_765_000_000);
        assert_eq!(epoch_seconds(1_765_000_000_600_000), 1_765_000_001);
        // Halves go to the even second, as C's nearbyint.
        assert_eq!(epoch_seconds(1_765_000_000_500_000), 1_765_000_000);
        assert_eq!(epoch_seconds(1_765_000_001_500_000), 1_765_000_002);
    }

    #[test]
    fn beyla_operations_join_as_sql_trims() {
        assert_eq!(joined("GET", "/a"), "GET /a");
        assert_eq!(joined("", "/a"), "/a");
        assert_eq!(joined("SELECT", ""), "SELECT");
        assert_eq!(joined("", ""), "");
    }
}
