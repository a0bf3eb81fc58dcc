//! A forwarder whose pushes fail while its heartbeats succeed shows the push
//! failure in its status until a push succeeds again: a heartbeat must not
//! paint the link "registered" over rows piling up in the outbox.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use common::*;
use coral_proto::colony::colony_service_server::{ColonyService, ColonyServiceServer};
use coral_proto::colony::*;
use tonic::{Request, Response, Status};

/// A colony that registers agents and answers heartbeats, and refuses every
/// push until `accept` is set.
#[derive(Clone, Default)]
struct FlakyColony(Arc<Seen>);

/// What the fake colony was asked, and whether it accepts pushes.
#[derive(Default)]
struct Seen {
    accept: AtomicBool,
    heartbeats: AtomicU64,
    refused: AtomicU64,
    stored: AtomicU64,
}

#[tonic::async_trait]
impl ColonyService for FlakyColony {
    async fn register_agent(
        &self,
        _: Request<RegisterAgentRequest>,
    ) -> Result<Response<RegisterAgentResponse>, Status> {
        Ok(Response::new(RegisterAgentResponse {
            accepted: true,
            ..Default::default()
        }))
    }

    async fn heartbeat(
        &self,
        _: Request<HeartbeatRequest>,
    ) -> Result<Response<HeartbeatResponse>, Status> {
        self.0.heartbeats.fetch_add(1, Ordering::SeqCst);
        Ok(Response::new(HeartbeatResponse { known: true }))
    }

    async fn ingest_telemetry(
        &self,
        request: Request<IngestTelemetryRequest>,
    ) -> Result<Response<IngestTelemetryResponse>, Status> {
        if !self.0.accept.load(Ordering::SeqCst) {
            self.0.refused.fetch_add(1, Ordering::SeqCst);
            return Err(Status::internal("disk full"));
        }
        let r = request.into_inner();
        let rows = r.buckets.len() + r.spans.len() + r.host_metrics.len();
        self.0.stored.fetch_add(rows as u64, Ordering::SeqCst);
        Ok(Response::new(IngestTelemetryResponse {
            accepted: rows as u32,
            acked_seq_id: r.max_seq_id,
            ..Default::default()
        }))
    }

    async fn list_agents(
        &self,
        _: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn query_otel_summaries(
        &self,
        _: Request<QueryOtelSummariesRequest>,
    ) -> Result<Response<QueryOtelSummariesResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn query_host_correlation(
        &self,
        _: Request<QueryHostCorrelationRequest>,
    ) -> Result<Response<QueryHostCorrelationResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_gaps(
        &self,
        _: Request<ListGapsRequest>,
    ) -> Result<Response<ListGapsResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn query_beyla(
        &self,
        _: Request<QueryBeylaRequest>,
    ) -> Result<Response<QueryBeylaResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_services(
        &self,
        _: Request<ListServicesRequest>,
    ) -> Result<Response<ListServicesResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn get_trace(
        &self,
        _: Request<GetTraceRequest>,
    ) -> Result<Response<GetTraceResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn list_traces(
        &self,
        _: Request<ListTracesRequest>,
    ) -> Result<Response<ListTracesResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn query_operations(
        &self,
        _: Request<QueryOperationsRequest>,
    ) -> Result<Response<QueryOperationsResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }

    async fn diagnose(
        &self,
        _: Request<DiagnoseRequest>,
    ) -> Result<Response<DiagnoseResponse>, Status> {
        Err(Status::unimplemented("not in this fake"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_pushes_stay_visible_while_heartbeats_succeed() {
    let fake = FlakyColony::default();
    let (addr, connections) = incoming().await;
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(
                ColonyServiceServer::new(fake.clone())
                    .accept_compressed(tonic::codec::CompressionEncoding::Gzip),
            )
            .serve_with_incoming(connections),
    );

    let dir = tempfile::tempdir().unwrap();
    let extra = "    push:\n      interval: 100ms\n      max_records: 40\n      max_backoff: 200ms\n  mode: forwarder\n  host_metrics:\n    enabled: false";
    let agent = start_agent(&agent_config("fwd", dir.path(), addr, extra)).await;
    send_spans(&agent, "checkout", 10, 0).await;
    flush_agent(&agent, 10).await;

    // Pushes fail; heartbeats (every second) keep succeeding after that.
    wait_for("a refused push", Duration::from_secs(30), || async {
        fake.0.refused.load(Ordering::SeqCst) > 0
    })
    .await;
    let beats = fake.0.heartbeats.load(Ordering::SeqCst);
    wait_for(
        "two heartbeats after it",
        Duration::from_secs(30),
        || async { fake.0.heartbeats.load(Ordering::SeqCst) >= beats + 2 },
    )
    .await;
    let state = agent.api.status().colony_state;
    assert!(
        state.contains("registered with") && state.contains("push failing"),
        "{state}"
    );
    assert!(state.contains("disk full"), "{state}");
    assert_eq!(fake.0.stored.load(Ordering::SeqCst), 0);

    // The colony recovers: everything arrives and the failure is cleared.
    fake.0.accept.store(true, Ordering::SeqCst);
    wait_for("the outbox drained", Duration::from_secs(30), || async {
        fake.0.stored.load(Ordering::SeqCst) >= 10
    })
    .await;
    wait_for("the failure cleared", Duration::from_secs(30), || async {
        !agent.api.status().colony_state.contains("push failing")
    })
    .await;
    assert!(agent.api.status().colony_state.contains("registered with"));

    agent.shutdown().await;
    server.abort();
}
