//! Reads from ClickHouse: each key counted once (`FINAL`), bucket parts and
//! their sketches merged in the query (`sumMap` over the bins), then the
//! same merge across agents as the embedded store's reads.

use std::collections::HashMap;

use clickhouse::Row;
use coral_model::{Samples, samples_from_json};
use coral_proto::colony::{
    Gap, ListServicesRequest, QueryOperationsRequest, QueryOperationsResponse,
    QueryOtelSummariesResponse, ServiceSummary,
};
use coral_proto::common::{OperationSummary, TelemetryBucket};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::rows::{self, Bins};
use super::{ClickHouse, ClickHouseError};
use crate::catalogue;
use crate::store::operations::Operations;
use crate::store::query::{CursorRow, Summaries};
use crate::store::services::{self, Otlp};
use crate::store::writer::AgentRecord;

/// The aggregates of a merged read: a minute's parts (of one agent, span
/// kind and operation) merged, counts added and sketch bins summed.
const MERGED_PARTS: &str = "sum(total_spans) AS total_spans, sum(error_count) AS error_count, \
     min(min_ms) AS min_ms, max(max_ms) AS max_ms, sum(sum_ms) AS sum_ms, \
     groupArray(samples) AS samples, any(sketch_accuracy) AS accuracy, \
     sum(sketch_zero) AS zero, \
     (sumMap(sketch_index, sketch_count) AS bins).1 AS bin_index, bins.2 AS bin_count";

/// The agent column of a merged read: the agent, for a read per agent
/// (`String`), or the agents whose parts were merged, for a read over all
/// agents (`Vec<String>`).
trait Agents: DeserializeOwned + 'static {
    /// The column.
    const COLUMN: &'static str;
    /// The read's grouping by agent (empty over all agents).
    const GROUP: &'static str;
}

impl Agents for String {
    const COLUMN: &'static str = "agent_id";
    const GROUP: &'static str = "agent_id, ";
}

impl Agents for Vec<String> {
    const COLUMN: &'static str = "groupUniqArray(agent_id) AS agents";
    const GROUP: &'static str = "";
}

/// One minute of one span kind (and operation) of one agent, or of all
/// agents ([`Agents`]), its parts merged by ClickHouse ([`MERGED_PARTS`]).
#[derive(Debug, Row, Deserialize)]
pub(super) struct MergedParts<A = String> {
    /// The agent, or the agents.
    agent_id: A,
    minute: i64,
    operation: String,
    pub(super) span_kind: String,
    total_spans: i64,
    error_count: i64,
    min_ms: f64,
    max_ms: f64,
    sum_ms: f64,
    samples: Vec<String>,
    accuracy: f64,
    zero: u64,
    bin_index: Vec<i32>,
    bin_count: Vec<u64>,
}

impl<A> MergedParts<A> {
    /// The merged RED as an operation summary (the operation is empty for
    /// buckets), with the agent (or agents), the minute and the span kind.
    pub(super) fn into_summary(
        self,
        what: &'static str,
    ) -> Result<(A, i64, String, OperationSummary), ClickHouseError> {
        let sketch = Bins {
            accuracy: self.accuracy,
            zero: self.zero,
            index: self.bin_index,
            count: self.bin_count,
        }
        .sketch()
        .map_err(|e| ClickHouseError::Corrupt {
            what,
            detail: e.to_string(),
        })?;
        let mut samples = Samples::default();
        for json in &self.samples {
            samples.merge(&Samples::from_proto(&samples_from_json(json)));
        }
        let summary = OperationSummary {
            operation: self.operation,
            total_spans: self.total_spans,
            error_count: self.error_count,
            min_ms: self.min_ms,
            max_ms: self.max_ms,
            sum_ms: self.sum_ms,
            samples: samples.to_proto(),
            sketch: Some(sketch.to_proto()),
            ..Default::default()
        };
        Ok((self.agent_id, self.minute, self.span_kind, summary))
    }
}

/// A merged read of `ch_table` per agent ([`Agents`]), minute and span kind
/// (and operation, when `by_operation`): parameters service, from and to
/// (Unix microseconds), then one per column of `filters`.
fn merged_sql<A: Agents>(ch_table: &str, by_operation: bool, filters: &[&str]) -> String {
    let operation = if by_operation {
        "operation"
    } else {
        "'' AS operation"
    };
    let mut sql = format!(
        "SELECT {}, intDiv(bucket_time, 1000000) AS minute, {operation}, span_kind, \
         {MERGED_PARTS} FROM {ch_table} FINAL \
         WHERE service_name = ? AND bucket_time >= ? AND bucket_time < ?",
        A::COLUMN
    );
    for column in filters {
        sql.push_str(&format!(" AND {column} = ?"));
    }
    let operation = if by_operation { "operation, " } else { "" };
    sql.push_str(&format!(
        " GROUP BY {}minute, {operation}span_kind",
        A::GROUP
    ));
    sql
}

/// Runs the merged read of `table` for `service` in `[from, to)` (Unix
/// seconds), with the non-empty `filters` (column, value).
pub(super) async fn merged(
    ch: &ClickHouse,
    table: &catalogue::Table,
    by_operation: bool,
    range: (&str, i64, i64),
    filters: &[(&str, &str)],
) -> Result<Vec<MergedParts>, ClickHouseError> {
    merged_read(ch, table, by_operation, range, filters, "merged read").await
}

/// [`merged`], per agent or over all agents ([`Agents`]); `what` names the
/// read in errors.
async fn merged_read<A: Agents>(
    ch: &ClickHouse,
    table: &catalogue::Table,
    by_operation: bool,
    (service, from, to): (&str, i64, i64),
    filters: &[(&str, &str)],
    what: &'static str,
) -> Result<Vec<MergedParts<A>>, ClickHouseError> {
    let used: Vec<(&str, &str)> = filters
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let columns: Vec<&str> = used.iter().map(|(c, _)| *c).collect();
    let sql = merged_sql::<A>(&ch.target().table(table), by_operation, &columns);
    let mut query = ch
        .client()
        .query(&sql)
        .bind(service)
        .bind(from * 1_000_000)
        .bind(to * 1_000_000);
    for (_, value) in used {
        query = query.bind(value);
    }
    query.fetch_all().await.map_err(ch.failed(what))
}

/// The query behind [`summaries`]: each minute and span kind of the
/// service, every agent's parts merged in the query (counts added, sketch
/// bins summed), with the agents that sent them. Parameters: service, from
/// and to (Unix microseconds), then the optional span kind and agent.
pub fn summaries_sql(ch_table: &str, span_kind: bool, agent: bool) -> String {
    let filters: Vec<&str> = [("span_kind", span_kind), ("agent_id", agent)]
        .into_iter()
        .filter_map(|(column, used)| used.then_some(column))
        .collect();
    merged_sql::<Vec<String>>(ch_table, false, &filters)
}

/// `QueryOtelSummaries` over ClickHouse: the same answer as the embedded
/// store's [`crate::store::query::otel_summaries`] for the same pages. The
/// agents' buckets of a minute are merged by ClickHouse, so a day of a fleet
/// comes back as one row per minute.
pub async fn summaries(
    ch: &ClickHouse,
    service: &str,
    from: i64,
    to: i64,
    span_kind: &str,
    agent_id: &str,
) -> Result<QueryOtelSummariesResponse, ClickHouseError> {
    let filters = [("span_kind", span_kind), ("agent_id", agent_id)];
    let range = (service, from, to);
    let rows: Vec<MergedParts<Vec<String>>> = merged_read(
        ch,
        &catalogue::OTEL_SPANS,
        false,
        range,
        &filters,
        "summaries read",
    )
    .await?;
    let mut out = Summaries::default();
    for r in rows {
        let (agents, minute, span_kind, summary) = r.into_summary("bucket")?;
        let proto = TelemetryBucket {
            bucket_time: minute,
            service_name: service.to_owned(),
            span_kind,
            total_spans: summary.total_spans,
            error_count: summary.error_count,
            min_ms: summary.min_ms,
            max_ms: summary.max_ms,
            sum_ms: summary.sum_ms,
            samples: summary.samples,
            sketch: summary.sketch,
            ..Default::default()
        };
        out.add_from(&agents, &proto)
            .map_err(|e| ClickHouseError::Corrupt {
                what: "bucket",
                detail: e.to_string(),
            })?;
    }
    Ok(out.finish(from, to))
}

/// The query behind [`operations`]: parameters service, from and to (Unix
/// microseconds), then one per column of `filters`.
pub fn operations_sql(ch_table: &str, filters: &[&str]) -> String {
    merged_sql::<String>(ch_table, true, filters)
}

/// `QueryOperations` over ClickHouse: the same answer as the embedded
/// store's [`crate::store::operations::query`] for the same pages.
pub async fn operations(
    ch: &ClickHouse,
    req: &QueryOperationsRequest,
    from: i64,
    to: i64,
) -> Result<QueryOperationsResponse, ClickHouseError> {
    let kind = req.span_kind.to_ascii_uppercase();
    let filters = [
        ("span_kind", kind.as_str()),
        ("operation", req.operation.as_str()),
        ("agent_id", req.agent_id.as_str()),
    ];
    let range = (req.service_name.as_str(), from, to);
    let rows = merged(ch, &catalogue::OTEL_OPERATIONS, true, range, &filters).await?;
    let mut out = Operations::default();
    for r in rows {
        let (agent, minute, span_kind, summary) = r.into_summary("operation")?;
        out.add(&agent, minute, span_kind, &summary)
            .map_err(|e| ClickHouseError::Corrupt {
                what: "operation",
                detail: e.to_string(),
            })?;
    }
    Ok(out.finish(from, to))
}

/// Every cursor (newest version), by (agent_id, stream).
pub async fn cursors(
    ch: &ClickHouse,
) -> Result<HashMap<(String, String), CursorRow>, ClickHouseError> {
    let sql = format!(
        "SELECT ?fields FROM {} FINAL",
        ch.target().table(&catalogue::CURSORS)
    );
    let rows: Vec<rows::CursorRow> = ch
        .client()
        .query(&sql)
        .fetch_all()
        .await
        .map_err(ch.failed("cursors read"))?;
    let mut out: HashMap<(String, String), (i64, CursorRow)> = HashMap::new();
    for r in rows {
        let key = (r.agent_id, r.stream);
        let row = CursorRow {
            session_id: r.session_id,
            seq_id: r.seq_id,
            rows_received: r.rows_received,
        };
        // FINAL keeps one version per key; on a cluster an agent's versions
        // are on one shard, so this only guards a race of two inserts.
        match out.get(&key) {
            Some((at, _)) if *at >= r.updated_at => {}
            _ => {
                out.insert(key, (r.updated_at, row));
            }
        }
    }
    Ok(out.into_iter().map(|(k, (_, v))| (k, v)).collect())
}

/// Gap counts by agent.
pub async fn gap_counts(ch: &ClickHouse) -> Result<HashMap<String, u64>, ClickHouseError> {
    #[derive(Row, Deserialize)]
    struct Count {
        agent_id: String,
        gaps: u64,
    }
    let sql = format!(
        "SELECT agent_id, count() AS gaps FROM {} FINAL GROUP BY agent_id",
        ch.target().table(&catalogue::GAPS)
    );
    let rows: Vec<Count> = ch
        .client()
        .query(&sql)
        .fetch_all()
        .await
        .map_err(ch.failed("gaps read"))?;
    Ok(rows.into_iter().map(|c| (c.agent_id, c.gaps)).collect())
}

/// Gaps, newest first (of one agent when `agent_id` is not empty).
pub async fn gaps(ch: &ClickHouse, agent_id: &str) -> Result<Vec<Gap>, ClickHouseError> {
    let sql = format!(
        "SELECT ?fields FROM {} FINAL WHERE ? = '' OR agent_id = ? \
         ORDER BY detected_at DESC, agent_id, from_seq_id",
        ch.target().table(&catalogue::GAPS)
    );
    let rows: Vec<rows::GapRow> = ch
        .client()
        .query(&sql)
        .bind(agent_id)
        .bind(agent_id)
        .fetch_all()
        .await
        .map_err(ch.failed("gaps read"))?;
    Ok(rows
        .into_iter()
        .map(|g| Gap {
            agent_id: g.agent_id,
            stream: g.stream,
            session_id: g.session_id,
            from_seq_id: g.from_seq_id,
            to_seq_id: g.to_seq_id,
            detected_at: rfc3339_micros(g.detected_at),
            reason: g.reason,
        })
        .collect())
}

/// Persisted agent records (newest version of each).
pub async fn agents(ch: &ClickHouse) -> Result<Vec<AgentRecord>, ClickHouseError> {
    Ok(agents_seen(ch).await?.into_iter().map(|(r, _)| r).collect())
}

/// Persisted agent records (newest version of each), with when the agent
/// was last seen (Unix µs) by the colony that wrote the version.
pub async fn agents_seen(ch: &ClickHouse) -> Result<Vec<(AgentRecord, i64)>, ClickHouseError> {
    let sql = format!(
        "SELECT ?fields FROM {} FINAL ORDER BY agent_id, last_seen DESC LIMIT 1 BY agent_id",
        ch.target().table(&catalogue::AGENTS)
    );
    let rows: Vec<rows::AgentRow> = ch
        .client()
        .query(&sql)
        .fetch_all()
        .await
        .map_err(ch.failed("agents read"))?;
    Ok(rows
        .into_iter()
        .map(|r| {
            let seen = r.last_seen;
            (r.into_record(), seen)
        })
        .collect())
}

fn rfc3339_micros(micros: i64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `ListServices` over ClickHouse: each service's OTLP buckets (each key
/// once, parts merged per agent and kind in the query), summarised as the
/// embedded store summarises them, and its Beyla server histograms.
pub async fn services(
    ch: &ClickHouse,
    req: &ListServicesRequest,
) -> Result<Vec<ServiceSummary>, ClickHouseError> {
    #[derive(Row, Deserialize)]
    struct Merged {
        service_name: String,
        agent_id: String,
        span_kind: String,
        total_spans: i64,
        error_count: i64,
        accuracy: f64,
        zero: u64,
        bin_index: Vec<i32>,
        bin_count: Vec<u64>,
    }
    let from = if req.start_time_unix_ms > 0 {
        req.start_time_unix_ms * 1_000
    } else {
        0
    };
    let to = if req.end_time_unix_ms > 0 {
        req.end_time_unix_ms * 1_000
    } else {
        i64::MAX
    };
    let rows: Vec<Merged> = ch
        .client()
        .query(&services_sql(&ch.target().table(&catalogue::OTEL_SPANS)))
        .bind(from)
        .bind(to)
        .fetch_all()
        .await
        .map_err(ch.failed("services read"))?;
    let mut otlp = Otlp::default();
    for r in rows {
        let sketch = Bins {
            accuracy: r.accuracy,
            zero: r.zero,
            index: r.bin_index,
            count: r.bin_count,
        }
        .sketch()
        .ok();
        otlp.add(
            r.service_name,
            &r.agent_id,
            &r.span_kind,
            (r.total_spans, r.error_count),
            sketch.as_ref(),
        );
    }
    // Beyla: server-side HTTP (failed at 5xx) and gRPC (failed when not OK)
    // histograms, as the embedded store counts them.
    let window = super::beyla::Filter {
        services: Vec::new(),
        from_ms: req.start_time_unix_ms,
        to_ms: req.end_time_unix_ms,
    };
    let mut beyla = std::collections::BTreeMap::new();
    let histogram = |h: &Option<coral_proto::common::LatencyHistogram>| {
        h.as_ref()
            .and_then(|h| coral_model::Histogram::from_proto(h).ok())
    };
    for m in super::beyla::http(ch, &window).await? {
        if let (true, Some(h)) = (m.kind == "server", histogram(&m.latency)) {
            let failed = m.http_status_code >= 500;
            services::add_beyla(&mut beyla, m.service_name, m.agent_id, &h, failed);
        }
    }
    for m in super::beyla::grpc(ch, &window).await? {
        if let (true, Some(h)) = (m.kind == "server", histogram(&m.latency)) {
            let failed = m.grpc_status_code != 0;
            services::add_beyla(&mut beyla, m.service_name, m.agent_id, &h, failed);
        }
    }
    Ok(services::summaries(&beyla, &otlp))
}

/// The query behind [`services`]: parameters from and to (Unix
/// microseconds).
pub fn services_sql(ch_table: &str) -> String {
    format!(
        "SELECT service_name, agent_id, span_kind, \
         sum(total_spans) AS total_spans, sum(error_count) AS error_count, \
         any(sketch_accuracy) AS accuracy, sum(sketch_zero) AS zero, \
         (sumMap(sketch_index, sketch_count) AS bins).1 AS bin_index, bins.2 AS bin_count \
         FROM {ch_table} FINAL WHERE bucket_time >= ? AND bucket_time < ? \
         GROUP BY service_name, agent_id, span_kind"
    )
}
