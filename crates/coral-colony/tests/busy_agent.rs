//! An agent that writes faster than the colony drains it does not keep its
//! poll slot for ever: a poll reads what was waiting when it began, and the
//! rest waits for the next poll.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use common::{count, kept_span};
use coral_colony::poller::{PollSettings, Poller};
use coral_colony::registry::Registry;
use coral_colony::store::Database;
use coral_colony::store::writer::{AgentRecord, Writer};
use coral_proto::agent::agent_service_server::{AgentService, AgentServiceServer};
use coral_proto::agent::{
    GetStatusRequest, GetStatusResponse, QueryBeylaMetricsRequest, QueryBeylaMetricsResponse,
    QueryTelemetryRequest, QueryTelemetryResponse,
};
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

/// Rows the agent stores between two of the colony's reads: twice a page.
const GROWTH: u64 = 20;
const PAGE: usize = 10;

/// An agent whose store grows by [`GROWTH`] rows every time it is read.
#[derive(Clone, Default)]
struct BusyAgent {
    latest: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl AgentService for BusyAgent {
    async fn query_beyla_metrics(
        &self,
        _request: Request<QueryBeylaMetricsRequest>,
    ) -> Result<Response<QueryBeylaMetricsResponse>, Status> {
        Err(Status::unimplemented("no Beyla here"))
    }

    async fn query_telemetry(
        &self,
        request: Request<QueryTelemetryRequest>,
    ) -> Result<Response<QueryTelemetryResponse>, Status> {
        let r = request.into_inner();
        let latest = self.latest.fetch_add(GROWTH, Ordering::SeqCst) + GROWTH;
        let end = (r.start_seq_id + r.max_records as u64).min(latest);
        let spans = (r.start_seq_id + 1..=end)
            .map(|seq_id| kept_span(seq_id, "busy"))
            .collect();
        Ok(Response::new(QueryTelemetryResponse {
            spans,
            max_seq_id: end,
            session_id: "busy-session".into(),
            has_more: end < latest,
            latest_seq_id: latest,
            ..Default::default()
        }))
    }

    async fn get_status(
        &self,
        _request: Request<GetStatusRequest>,
    ) -> Result<Response<GetStatusResponse>, Status> {
        Ok(Response::new(GetStatusResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_of_an_agent_that_never_catches_up_still_ends() {
    let (addr, incoming) = common::incoming().await;
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(AgentServiceServer::new(BusyAgent::default()))
            .serve_with_incoming(incoming)
            .await
            .unwrap();
    });
    let registry = Arc::new(Registry::default());
    registry.upsert(
        AgentRecord {
            agent_id: "busy".into(),
            endpoint: format!("http://{addr}"),
            source: "static".into(),
            ..Default::default()
        },
        true,
    );
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let (writer, writer_tx) = Writer::start(conn, db.clone(), Default::default()).unwrap();
    let poller = Poller::new(
        PollSettings {
            interval: Duration::from_secs(3600),
            timeout: Duration::from_secs(10),
            max_concurrent: 1,
            page_size: PAGE,
            token: None,
            tls: None,
        },
        registry,
        coral_colony::store::engine::Store::DuckDb(db),
        writer_tx.clone(),
        None,
    );
    let stop = CancellationToken::new();
    let poll = || async {
        tokio::time::timeout(Duration::from_secs(30), poller.poll_agent("busy", &stop))
            .await
            .expect("a poll ends although the agent always has more")
            .unwrap()
    };
    // The first read finds 20 rows waiting: two pages, then the poll ends.
    assert_eq!(poll().await.rows, 20);
    // The next poll starts where that one stopped and reads what was waiting
    // at its own start (60 rows by then): rows 21 to 60.
    assert_eq!(poll().await.rows, 40);
    writer_tx.close();
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
    let rows = |sql| count(dir.path(), sql);
    assert_eq!(
        (
            rows("SELECT count(*) FROM trace_spans"),
            rows("SELECT count(DISTINCT seq_id) FROM trace_spans"),
            rows("SELECT max(seq_id) FROM trace_spans"),
        ),
        (60, 60, 60)
    );
}
