//! The agent's gRPC API (`coral.agent.v1.AgentService`), default
//! `127.0.0.1:9001`: `QueryTelemetry` and `QueryBeylaMetrics` for the colony's
//! poller and for ad-hoc reads, and `GetStatus`.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use coral_proto::agent::agent_service_server::{AgentService, AgentServiceServer};
use coral_proto::agent::{
    Endpoint, GetStatusRequest, GetStatusResponse, QueryBeylaMetricsRequest,
    QueryBeylaMetricsResponse, QueryTelemetryRequest, QueryTelemetryResponse,
};
use coral_proto::transport::TokenCheck;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use crate::metrics::Counters;
use crate::store::Database;
use crate::store::read::query_telemetry;

/// What `GetStatus` reports besides counters.
#[derive(Debug, Clone)]
pub struct Identity {
    /// Agent id.
    pub agent_id: String,
    /// `agent`, `otel-collector` or `forwarder`.
    pub mode: String,
    /// Data directory.
    pub data_dir: String,
    /// Bound endpoints, by name.
    pub endpoints: Vec<(String, String)>,
    /// What this agent can do ("otlp", "host-metrics", "push").
    pub capabilities: Vec<String>,
}

/// The `AgentService` implementation.
pub struct AgentApi {
    db: Arc<Database>,
    counters: Arc<Counters>,
    identity: Identity,
    started: Instant,
    started_at: SystemTime,
    link: crate::link::LinkState,
    beyla: crate::beyla::BeylaStatus,
}

impl AgentApi {
    /// Builds the service.
    pub fn new(
        db: Arc<Database>,
        counters: Arc<Counters>,
        identity: Identity,
        link: crate::link::LinkState,
        beyla: crate::beyla::BeylaStatus,
    ) -> AgentApi {
        AgentApi {
            db,
            counters,
            identity,
            started: Instant::now(),
            started_at: SystemTime::now(),
            link,
            beyla,
        }
    }

    /// `Some` while the store cannot write: since when, and why.
    pub fn store_health(&self) -> Option<crate::store::health::Failing> {
        self.db.health().failing()
    }

    /// The agent's counters.
    pub fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }

    /// The status as returned by `GetStatus`.
    pub fn status(&self) -> GetStatusResponse {
        GetStatusResponse {
            version: env!("CARGO_PKG_VERSION").to_owned(),
            agent_id: self.identity.agent_id.clone(),
            session_id: self.db.session_id().to_owned(),
            uptime_seconds: self.started.elapsed().as_secs(),
            started_at: humantime::format_rfc3339_seconds(self.started_at).to_string(),
            endpoints: self
                .identity
                .endpoints
                .iter()
                .map(|(name, address)| Endpoint {
                    name: name.clone(),
                    address: address.clone(),
                })
                .collect(),
            counters: Some(self.counters.to_proto(self.db.size_bytes())),
            latest_seq_id: self.db.latest_seq(),
            mode: self.identity.mode.clone(),
            data_dir: self.identity.data_dir.clone(),
            capabilities: self.identity.capabilities.clone(),
            colony_state: self.link.get(),
            push_acked_seq_id: self.db.push_acked(),
            beyla: Some(self.beyla.get()),
        }
    }
}

/// The tonic service wrapper around the shared [`AgentApi`].
#[derive(Clone)]
pub struct AgentApiService(pub Arc<AgentApi>);

#[tonic::async_trait]
impl AgentService for AgentApiService {
    async fn query_telemetry(
        &self,
        request: Request<QueryTelemetryRequest>,
    ) -> Result<Response<QueryTelemetryResponse>, Status> {
        let request = request.into_inner();
        let api = self.0.clone();
        let result = tokio::task::spawn_blocking(move || {
            query_telemetry(&api.db, &api.identity.agent_id, &request)
        })
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?;
        match result {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => {
                tracing::error!(%error, "QueryTelemetry failed");
                Err(Status::internal(format!(
                    "agent store query failed: {error}"
                )))
            }
        }
    }

    async fn query_beyla_metrics(
        &self,
        request: Request<QueryBeylaMetricsRequest>,
    ) -> Result<Response<QueryBeylaMetricsResponse>, Status> {
        let request = request.into_inner();
        if !request.trace_id.is_empty()
            && (request.trace_id.len() != 32
                || !request.trace_id.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            return Err(Status::invalid_argument(format!(
                "trace_id {:?} is not a trace id: expected 32 hex characters",
                request.trace_id
            )));
        }
        let api = self.0.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut response = crate::store::beyla::query(&api.db, &request)?;
            let agent = &api.identity.agent_id;
            response
                .http_metrics
                .iter_mut()
                .for_each(|m| m.agent_id.clone_from(agent));
            response
                .grpc_metrics
                .iter_mut()
                .for_each(|m| m.agent_id.clone_from(agent));
            response
                .sql_metrics
                .iter_mut()
                .for_each(|m| m.agent_id.clone_from(agent));
            response
                .trace_spans
                .iter_mut()
                .for_each(|s| s.agent_id.clone_from(agent));
            Ok::<_, crate::store::StoreError>(response)
        })
        .await
        .map_err(|e| Status::internal(format!("query task failed: {e}")))?;
        match result {
            Ok(response) => Ok(Response::new(response)),
            Err(error) => {
                tracing::error!(%error, "QueryBeylaMetrics failed");
                Err(Status::internal(format!(
                    "agent store query failed: {error}"
                )))
            }
        }
    }

    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(self.0.status()))
    }
}

/// Serves the agent API on `listener` until `shutdown` is cancelled. With a
/// token, every call must carry it; with `tls`, the API speaks TLS only.
pub async fn serve(
    listener: TcpListener,
    api: Arc<AgentApi>,
    token: Option<String>,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let service = tonic::service::interceptor::InterceptedService::new(
        AgentServiceServer::new(AgentApiService(api))
            .accept_compressed(CompressionEncoding::Gzip)
            .send_compressed(CompressionEncoding::Gzip)
            .max_encoding_message_size(256 * 1024 * 1024),
        TokenCheck::new(token.as_deref(), "agent"),
    );
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls)?;
    }
    builder
        .add_service(service)
        .serve_with_incoming_shutdown(
            crate::receiver::grpc::tokio_stream_listener(listener),
            shutdown.cancelled_owned(),
        )
        .await
}
