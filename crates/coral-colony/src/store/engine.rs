//! The colony's store, whichever engine holds it: the embedded DuckDB file
//! (reads on the blocking pool with a cloned connection) or ClickHouse
//! (async reads over HTTP). The service, the poller and the start-up read
//! through here; writes go through [`super::writer::WriterSender`].

use std::collections::HashMap;
use std::sync::Arc;

use coral_proto::colony::{
    Gap, GetTraceResponse, ListServicesRequest, ListTracesRequest, ListTracesResponse,
    QueryBeylaRequest, QueryBeylaResponse, QueryHostCorrelationResponse, QueryOperationsRequest,
    QueryOperationsResponse, QueryOtelSummariesResponse, ServiceSummary,
};

use super::clickhouse::{self, ClickHouse};
use super::ingest::{Cursor, Stream};
use super::query::{self, CursorRow};
use super::writer::AgentRecord;
use super::{Database, StoreError};

/// The opened store.
#[derive(Clone)]
pub enum Store {
    /// `colony.duckdb` in the data directory.
    DuckDb(Arc<Database>),
    /// A ClickHouse database (or cluster).
    ClickHouse(ClickHouse),
}

impl Store {
    /// Runs `f` on a DuckDB connection on the blocking pool.
    async fn duck<T: Send + 'static>(
        db: &Arc<Database>,
        f: impl FnOnce(&duckdb::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = db.clone();
        tokio::task::spawn_blocking(move || f(&db.reader()?))
            .await
            .map_err(|e| StoreError::Corrupt {
                what: "read task",
                detail: e.to_string(),
            })?
    }

    /// The stored cursor of (agent, stream).
    pub async fn cursor(&self, agent: &str, stream: Stream) -> Result<Option<Cursor>, StoreError> {
        match self {
            Store::DuckDb(db) => {
                let agent = agent.to_owned();
                Self::duck(db, move |c| super::ingest::read_cursor(c, &agent, stream)).await
            }
            Store::ClickHouse(ch) => Ok(clickhouse::read_cursor(ch, agent, stream.cursor_key())
                .await?
                .map(|(cursor, _)| cursor)),
        }
    }

    /// Persisted agent records.
    pub async fn agents(&self) -> Result<Vec<AgentRecord>, StoreError> {
        match self {
            Store::DuckDb(db) => Self::duck(db, query::agents).await,
            Store::ClickHouse(ch) => Ok(clickhouse::agents(ch).await?),
        }
    }

    /// Every cursor and the gap count of every agent.
    pub async fn progress(
        &self,
    ) -> Result<(HashMap<(String, String), CursorRow>, HashMap<String, u64>), StoreError> {
        match self {
            Store::DuckDb(db) => {
                Self::duck(db, |c| Ok((query::cursors(c)?, query::gap_counts(c)?))).await
            }
            Store::ClickHouse(ch) => Ok((
                clickhouse::cursors(ch).await?,
                clickhouse::gap_counts(ch).await?,
            )),
        }
    }

    /// Gaps, newest first (of one agent when `agent` is not empty).
    pub async fn gaps(&self, agent: &str) -> Result<Vec<Gap>, StoreError> {
        match self {
            Store::DuckDb(db) => {
                let agent = agent.to_owned();
                Self::duck(db, move |c| query::gaps(c, &agent)).await
            }
            Store::ClickHouse(ch) => Ok(clickhouse::gaps(ch, agent).await?),
        }
    }

    /// Merged 1-minute summaries of `service` in `[from, to)` (Unix seconds).
    pub async fn otel_summaries(
        &self,
        service: String,
        from: i64,
        to: i64,
        span_kind: String,
        agent: String,
    ) -> Result<QueryOtelSummariesResponse, StoreError> {
        match self {
            Store::DuckDb(db) => {
                Self::duck(db, move |c| {
                    query::otel_summaries(c, &service, from, to, &span_kind, &agent)
                })
                .await
            }
            Store::ClickHouse(ch) => {
                Ok(clickhouse::summaries(ch, &service, from, to, &span_kind, &agent).await?)
            }
        }
    }

    /// Every service seen in the request's window, with its RED.
    pub async fn services(
        &self,
        req: ListServicesRequest,
    ) -> Result<Vec<ServiceSummary>, StoreError> {
        match self {
            Store::DuckDb(db) => Self::duck(db, move |c| super::services::services(c, &req)).await,
            Store::ClickHouse(ch) => Ok(clickhouse::services(ch, &req).await?),
        }
    }

    /// RED per operation of one service in `[from, to)` (Unix seconds).
    pub async fn operations(
        &self,
        req: QueryOperationsRequest,
        from: i64,
        to: i64,
    ) -> Result<QueryOperationsResponse, StoreError> {
        match self {
            Store::DuckDb(db) => {
                Self::duck(db, move |c| super::operations::query(c, &req, from, to)).await
            }
            Store::ClickHouse(ch) => Ok(clickhouse::operations(ch, &req, from, to).await?),
        }
    }

    /// Beyla's histograms and spans (`QueryBeyla`).
    pub async fn beyla(&self, req: QueryBeylaRequest) -> Result<QueryBeylaResponse, StoreError> {
        match self {
            Store::DuckDb(db) => Self::duck(db, move |c| super::query_beyla::query(c, &req)).await,
            Store::ClickHouse(ch) => Ok(clickhouse::beyla::query(ch, &req).await?),
        }
    }

    /// One trace from both span sources (`GetTrace`).
    pub async fn trace(
        &self,
        trace_id: String,
        max_spans: u32,
    ) -> Result<GetTraceResponse, StoreError> {
        match self {
            Store::DuckDb(db) => {
                Self::duck(db, move |c| {
                    super::traces::get_trace(c, &trace_id, max_spans)
                })
                .await
            }
            Store::ClickHouse(ch) => Ok(clickhouse::get_trace(ch, &trace_id, max_spans).await?),
        }
    }

    /// Trace summaries, slowest first (`ListTraces`), in `[from_ms, to_ms)`.
    pub async fn traces(
        &self,
        req: ListTracesRequest,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<ListTracesResponse, StoreError> {
        match self {
            Store::DuckDb(db) => {
                Self::duck(db, move |c| {
                    super::traces::list_traces(c, &req, from_ms, to_ms)
                })
                .await
            }
            Store::ClickHouse(ch) => Ok(clickhouse::list_traces(ch, &req, from_ms, to_ms).await?),
        }
    }

    /// The service's requests next to its hosts' samples, per minute and
    /// agent (`QueryHostCorrelation`), in `[from, to)` (Unix seconds).
    pub async fn host_correlation(
        &self,
        service: String,
        from: i64,
        to: i64,
    ) -> Result<QueryHostCorrelationResponse, StoreError> {
        match self {
            Store::DuckDb(db) => {
                Self::duck(db, move |c| query::host_correlation(c, &service, from, to)).await
            }
            Store::ClickHouse(ch) => {
                Ok(clickhouse::host_correlation(ch, &service, from, to).await?)
            }
        }
    }
}
