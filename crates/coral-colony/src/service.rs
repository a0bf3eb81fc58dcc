//! `coral.colony.v1.ColonyService`: registration, heartbeats, push ingest and
//! the query API of the CLI.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use coral_proto::colony::colony_service_server::ColonyService;
use coral_proto::colony::{
    AgentInfo, HeartbeatRequest, HeartbeatResponse, IngestTelemetryRequest,
    IngestTelemetryResponse, ListAgentsRequest, ListAgentsResponse, ListGapsRequest,
    ListGapsResponse, ListServicesRequest, ListServicesResponse, QueryBeylaRequest,
    QueryBeylaResponse, QueryHostCorrelationRequest, QueryHostCorrelationResponse,
    QueryOtelSummariesRequest, QueryOtelSummariesResponse, RegisterAgentRequest,
    RegisterAgentResponse,
};
use coral_proto::colony::{
    DiagnoseRequest, DiagnoseResponse, GetTraceRequest, GetTraceResponse, ListTracesRequest,
    ListTracesResponse, QueryOperationsRequest, QueryOperationsResponse,
};
use tonic::{Request, Response, Status};

use crate::ask::{self, AskError};
use crate::registry::{HealthPolicy, Registry};
use crate::store::clickhouse::diagnose::ClickHouseData;
use crate::store::diagnose::ColonyData;
use crate::store::engine::Store;
use crate::store::ingest::{Page, Stream};
use crate::store::writer::{AgentRecord, WriterSender};
use crate::store::{StoreError, now_micros, traces};

/// The service state.
pub struct Colony {
    /// Colony id.
    pub colony_id: String,
    /// Known agents.
    pub registry: Arc<Registry>,
    /// Health thresholds.
    pub health: HealthPolicy,
    /// The store.
    pub store: Store,
    /// The store writer.
    pub writer: WriterSender,
    /// The colonies sharing the store (ClickHouse), when there may be more
    /// than this one.
    pub fleet: Option<Arc<crate::fleet::Fleet>>,
}

/// An RFC 3339 UTC timestamp (seconds precision).
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The default window: the last hour; `to` defaults to now.
fn window(from: i64, to: i64) -> Result<(i64, i64), Status> {
    let to = if to == 0 { now_unix() + 60 } else { to };
    let from = if from == 0 { to - 3600 } else { from };
    if from >= to {
        return Err(Status::invalid_argument(format!(
            "empty time window: from ({from}) must be before to ({to})"
        )));
    }
    Ok((from, to))
}

fn internal(error: StoreError) -> Status {
    match error {
        StoreError::ClickHouse(_) => Status::unavailable(error.to_string()),
        other => Status::internal(other.to_string()),
    }
}

impl Colony {
    /// The agent listing (also used by `coral up`'s status).
    pub async fn agents(&self) -> Result<ListAgentsResponse, Status> {
        let (cursors, gaps) = self.store.progress().await.map_err(internal)?;
        let now = SystemTime::now();
        let agents = self
            .registry
            .snapshot()
            .into_iter()
            .map(|state| {
                let id = &state.record.agent_id;
                let stream = crate::store::ingest::Stream::Pull.cursor_key();
                let cursor = cursors
                    .get(&(id.clone(), stream.to_owned()))
                    .cloned()
                    .unwrap_or_default();
                let latest = state.agent_latest_seq.max(cursor.seq_id);
                let beyla_cursor = cursors
                    .get(&(
                        id.clone(),
                        crate::store::ingest::Stream::Beyla.cursor_key().to_owned(),
                    ))
                    .map(|c| c.seq_id)
                    .unwrap_or_default();
                AgentInfo {
                    agent_id: id.clone(),
                    endpoint: state.record.endpoint.clone(),
                    version: state.record.version.clone(),
                    mode: state.record.mode.clone(),
                    capabilities: state.record.capabilities.clone(),
                    hostname: state.record.hostname.clone(),
                    source: state.record.source.clone(),
                    health: state.health(&self.health, now).as_str().to_owned(),
                    last_seen: state.last_seen.map(rfc3339).unwrap_or_default(),
                    last_poll: state.last_poll.map(rfc3339).unwrap_or_default(),
                    last_poll_error: state.last_poll_error.clone().unwrap_or_default(),
                    session_id: if state.session_id.is_empty() {
                        cursor.session_id.clone()
                    } else {
                        state.session_id.clone()
                    },
                    cursor_seq_id: cursor.seq_id,
                    agent_latest_seq_id: latest,
                    lag_rows: latest - cursor.seq_id,
                    gap_count: gaps.get(id).copied().unwrap_or_default(),
                    rows_received: cursor.rows_received,
                    registered_at: rfc3339(
                        UNIX_EPOCH
                            + Duration::from_micros(state.record.registered_at_us.max(0) as u64),
                    ),
                    beyla: state.beyla.clone(),
                    beyla_cursor_seq_id: beyla_cursor,
                    beyla_latest_seq_id: state.beyla_latest_seq.max(beyla_cursor),
                    shared_id_warning: state.shared_id(now).unwrap_or_default().to_owned(),
                    polled_by: match &self.fleet {
                        Some(fleet) => fleet.owner_of(id),
                        None => self.colony_id.clone(),
                    },
                }
            })
            .collect();
        Ok(ListAgentsResponse {
            agents,
            colony_id: self.colony_id.clone(),
            colonies: match &self.fleet {
                Some(fleet) => fleet.members(),
                None => vec![self.colony_id.clone()],
            },
        })
    }
}

/// The tonic service around the shared [`Colony`].
#[derive(Clone)]
pub struct ColonyApi(pub Arc<Colony>);

impl std::ops::Deref for ColonyApi {
    type Target = Colony;
    fn deref(&self) -> &Colony {
        &self.0
    }
}

#[tonic::async_trait]
impl ColonyService for ColonyApi {
    async fn register_agent(
        &self,
        request: Request<RegisterAgentRequest>,
    ) -> Result<Response<RegisterAgentResponse>, Status> {
        let r = request.into_inner();
        if r.agent_id.trim().is_empty() {
            return Err(Status::invalid_argument(
                "agent_id is empty: set agent.id (or CORAL_AGENT_ID) on the agent",
            ));
        }
        let source = if r.endpoint.is_empty() {
            "push"
        } else {
            "registered"
        };
        let record = self.registry.upsert(
            AgentRecord {
                agent_id: r.agent_id.clone(),
                endpoint: r.endpoint,
                version: r.version,
                mode: r.mode,
                capabilities: r.capabilities,
                hostname: r.hostname,
                source: source.to_owned(),
                registered_at_us: now_micros(),
            },
            true,
        );
        self.registry.seen(&r.agent_id, &r.session_id, None);
        if let Some(beyla) = r.beyla {
            self.registry.set_beyla(&r.agent_id, beyla);
        }
        self.writer.upsert_agent(record);
        tracing::info!(agent_id = %r.agent_id, "agent registered");
        Ok(Response::new(RegisterAgentResponse {
            accepted: true,
            colony_id: self.colony_id.clone(),
            message: String::new(),
        }))
    }

    async fn heartbeat(
        &self,
        request: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let known = self
            .registry
            .seen(&r.agent_id, &r.session_id, Some(r.latest_seq_id));
        if let Some(beyla) = r.beyla {
            self.registry.set_beyla(&r.agent_id, beyla);
        }
        Ok(Response::new(HeartbeatResponse { known }))
    }

    async fn list_agents(
        &self,
        _request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        Ok(Response::new(self.agents().await?))
    }

    async fn ingest_telemetry(
        &self,
        request: Request<IngestTelemetryRequest>,
    ) -> Result<Response<IngestTelemetryResponse>, Status> {
        let r = request.into_inner();
        if r.agent_id.trim().is_empty() || r.session_id.is_empty() {
            return Err(Status::invalid_argument(
                "agent_id and session_id are required on IngestTelemetry",
            ));
        }
        if r.max_seq_id < r.start_seq_id {
            return Err(Status::invalid_argument(format!(
                "max_seq_id {} is below start_seq_id {}",
                r.max_seq_id, r.start_seq_id
            )));
        }
        if self.registry.get(&r.agent_id).is_none() {
            let record = self.registry.upsert(
                AgentRecord {
                    agent_id: r.agent_id.clone(),
                    source: "push".to_owned(),
                    registered_at_us: now_micros(),
                    ..Default::default()
                },
                true,
            );
            self.writer.upsert_agent(record);
        }
        self.registry
            .seen(&r.agent_id, &r.session_id, Some(r.max_seq_id));
        let page = Page {
            reported: self.registry.reported(&r.agent_id),
            agent_id: r.agent_id,
            stream: Stream::Push,
            session_id: r.session_id,
            start_seq: r.start_seq_id,
            max_seq: r.max_seq_id,
            buckets: r.buckets,
            spans: r.spans,
            hosts: r.host_metrics,
            beyla: Default::default(),
        };
        let outcome = self.writer.store(page).await.map_err(|e| {
            Status::unavailable(format!(
                "colony cannot store the batch now: {e}; retry later"
            ))
        })?;
        let mut message = Vec::new();
        if outcome.duplicates > 0 {
            message.push(format!("{} rows were already stored", outcome.duplicates));
        }
        if let Some(reason) = &outcome.reject_reason {
            message.push(format!("{} rows refused: {reason}", outcome.rejected));
        }
        if outcome.session_reset {
            message.push("new agent store session".to_owned());
        }
        Ok(Response::new(IngestTelemetryResponse {
            accepted: (outcome.stored + outcome.duplicates) as u32,
            rejected: outcome.rejected as u32,
            message: message.join("; "),
            acked_seq_id: outcome.cursor,
        }))
    }

    async fn query_otel_summaries(
        &self,
        request: Request<QueryOtelSummariesRequest>,
    ) -> Result<Response<QueryOtelSummariesResponse>, Status> {
        let r = request.into_inner();
        if r.service_name.is_empty() {
            return Err(Status::invalid_argument(
                "service_name is required: name the service to summarize",
            ));
        }
        let (from, to) = window(r.from_unix, r.to_unix)?;
        let response = self
            .store
            .otel_summaries(r.service_name, from, to, r.span_kind, r.agent_id)
            .await
            .map_err(internal)?;
        Ok(Response::new(response))
    }

    async fn query_host_correlation(
        &self,
        request: Request<QueryHostCorrelationRequest>,
    ) -> Result<Response<QueryHostCorrelationResponse>, Status> {
        let r = request.into_inner();
        if r.service_name.is_empty() {
            return Err(Status::invalid_argument("service_name is required"));
        }
        let (from, to) = window(r.from_unix, r.to_unix)?;
        let response = self
            .store
            .host_correlation(r.service_name, from, to)
            .await
            .map_err(internal)?;
        Ok(Response::new(response))
    }

    async fn list_gaps(
        &self,
        request: Request<ListGapsRequest>,
    ) -> Result<Response<ListGapsResponse>, Status> {
        let agent = request.into_inner().agent_id;
        let gaps = self.store.gaps(&agent).await.map_err(internal)?;
        Ok(Response::new(ListGapsResponse { gaps }))
    }

    async fn list_services(
        &self,
        request: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        let req = request.into_inner();
        let services = self.store.services(req).await.map_err(internal)?;
        Ok(Response::new(ListServicesResponse { services }))
    }

    async fn query_beyla(
        &self,
        request: Request<QueryBeylaRequest>,
    ) -> Result<Response<QueryBeylaResponse>, Status> {
        let req = request.into_inner();
        if let Some(bad) = req
            .metric_types
            .iter()
            .find(|t| !matches!(t.as_str(), "http" | "grpc" | "sql" | "none"))
        {
            return Err(Status::invalid_argument(format!(
                "unknown Beyla metric type {bad:?}: use http, grpc, sql or none"
            )));
        }
        if !req.trace_id.is_empty()
            && (req.trace_id.len() != 32 || !req.trace_id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Status::invalid_argument(format!(
                "trace id {:?} is not a trace id: expected 32 hex characters",
                req.trace_id
            )));
        }
        let response = self.store.beyla(req).await.map_err(internal)?;
        Ok(Response::new(response))
    }

    async fn get_trace(
        &self,
        request: Request<GetTraceRequest>,
    ) -> Result<Response<GetTraceResponse>, Status> {
        let req = request.into_inner();
        let id = req.trace_id.trim().to_ascii_lowercase();
        if !traces::is_trace_id(&id) {
            return Err(Status::invalid_argument(format!(
                "trace id {:?} is not a trace id: expected 32 hex characters",
                req.trace_id
            )));
        }
        let response = self
            .store
            .trace(id, req.max_spans)
            .await
            .map_err(internal)?;
        Ok(Response::new(response))
    }

    async fn list_traces(
        &self,
        request: Request<ListTracesRequest>,
    ) -> Result<Response<ListTracesResponse>, Status> {
        let req = request.into_inner();
        if !matches!(req.source.as_str(), "" | "otlp" | "beyla") {
            return Err(Status::invalid_argument(format!(
                "unknown span source {:?}: use otlp or beyla",
                req.source
            )));
        }
        if !matches!(
            req.keep_reason.as_str(),
            "" | "error" | "latency" | "sampled" | "beyla"
        ) {
            return Err(Status::invalid_argument(format!(
                "unknown keep reason {:?}: use error, latency, sampled or beyla",
                req.keep_reason
            )));
        }
        let (from, to) = window(
            req.start_time_unix_ms.div_euclid(1000),
            (req.end_time_unix_ms + 999).div_euclid(1000),
        )?;
        let from_ms = if req.start_time_unix_ms > 0 {
            req.start_time_unix_ms
        } else {
            from * 1000
        };
        let to_ms = if req.end_time_unix_ms > 0 {
            req.end_time_unix_ms
        } else {
            to * 1000
        };
        let response = self
            .store
            .traces(req, from_ms, to_ms)
            .await
            .map_err(internal)?;
        Ok(Response::new(response))
    }

    async fn query_operations(
        &self,
        request: Request<QueryOperationsRequest>,
    ) -> Result<Response<QueryOperationsResponse>, Status> {
        let req = request.into_inner();
        if req.service_name.is_empty() {
            return Err(Status::invalid_argument(
                "service_name is required: name the service whose operations to show",
            ));
        }
        let (from, to) = window(req.from_unix, req.to_unix)?;
        let response = self
            .store
            .operations(req, from, to)
            .await
            .map_err(internal)?;
        Ok(Response::new(response))
    }

    async fn diagnose(
        &self,
        request: Request<DiagnoseRequest>,
    ) -> Result<Response<DiagnoseResponse>, Status> {
        let req = request.into_inner();
        let now = now_unix();
        let status = |e: AskError, store_failed: fn(String) -> Status| match e {
            AskError::Invalid(message) => Status::invalid_argument(message),
            other => store_failed(other.to_string()),
        };
        let diagnosis = match &self.store {
            Store::DuckDb(db) => {
                let db = db.clone();
                tokio::task::spawn_blocking(move || {
                    let conn = db.reader().map_err(|e| Status::internal(e.to_string()))?;
                    ask::answer(&ColonyData::new(&conn), &req, now)
                        .map_err(|e| status(e, Status::internal))
                })
                .await
            }
            Store::ClickHouse(ch) => {
                // The engine reads synchronously: on the blocking pool, each
                // read waits on the runtime through this handle.
                let data = ClickHouseData::new(ch.clone(), tokio::runtime::Handle::current());
                tokio::task::spawn_blocking(move || {
                    ask::answer(&data, &req, now).map_err(|e| status(e, Status::unavailable))
                })
                .await
            }
        }
        .map_err(|e| Status::internal(e.to_string()))??;
        Ok(Response::new(DiagnoseResponse {
            diagnosis_json: coral_diagnose::render_json(&diagnosis),
            verdict: diagnosis.verdict.as_str().to_owned(),
            service: diagnosis.target.service.clone(),
        }))
    }
}
