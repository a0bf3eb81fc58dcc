//! The poller: pulls every pollable agent each `poll.interval`.
//!
//! Each tick starts a poll for every agent that is not already being polled,
//! at most `poll.max_concurrent` at once; a poll never waits for another
//! agent, so one slow or failing agent delays nobody. A poll drains: it asks
//! for rows after the agent's cursor, stores the page and its cursor in one
//! transaction, and keeps paging while the agent says more is waiting. Every
//! call has a timeout. When the agent answers with a different store session,
//! the cursor restarts from 0 for that session. Each poll drains the
//! telemetry stream (`QueryTelemetry`), then the Beyla stream
//! (`QueryBeylaMetrics`, its own cursor and gaps).

use crate::fleet::Fleet;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use coral_proto::agent::agent_service_client::AgentServiceClient;
use coral_proto::agent::{QueryBeylaMetricsRequest, QueryTelemetryRequest};
use coral_proto::transport::{BearerToken, ClientTlsSettings, channel};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::registry::Registry;
use crate::store::beyla::BeylaRows;
use crate::store::engine::Store;
use crate::store::ingest::{Page, Stream};
use crate::store::writer::WriterSender;

type Client = AgentServiceClient<InterceptedService<Channel, BearerToken>>;

/// Largest response accepted from an agent.
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// Poller settings.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Time between poll rounds.
    pub interval: Duration,
    /// Timeout of each call.
    pub timeout: Duration,
    /// Agents polled at once.
    pub max_concurrent: usize,
    /// Rows per page.
    pub page_size: usize,
    /// Token sent to agents.
    pub token: Option<String>,
    /// TLS settings for https agent endpoints.
    pub tls: Option<ClientTlsSettings>,
}

/// Why draining one stream of an agent stopped.
#[derive(Debug)]
enum DrainError {
    /// The agent does not serve the stream's RPC (an older agent).
    Unimplemented(String),
    /// Anything else, worded for `last_poll_error`.
    Failed(String),
}

impl From<String> for DrainError {
    fn from(message: String) -> Self {
        DrainError::Failed(message)
    }
}

impl std::fmt::Display for DrainError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DrainError::Unimplemented(m) | DrainError::Failed(m) => f.write_str(m),
        }
    }
}

/// Runs poll rounds until `stop`.
pub struct Poller {
    settings: PollSettings,
    registry: Arc<Registry>,
    store: Store,
    writer: WriterSender,
    in_flight: Arc<Mutex<HashSet<String>>>,
    clients: Mutex<HashMap<String, (String, Client)>>,
    limit: Arc<Semaphore>,
    fleet: Option<Arc<Fleet>>,
}

/// What one poll of one agent did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PollReport {
    /// Pages stored.
    pub pages: usize,
    /// Rows stored.
    pub rows: usize,
    /// Gaps recorded.
    pub gaps: usize,
}

impl Poller {
    /// A poller over `registry`'s agents (over this colony's share of them
    /// when a `fleet` of colonies shares the store).
    pub fn new(
        settings: PollSettings,
        registry: Arc<Registry>,
        store: Store,
        writer: WriterSender,
        fleet: Option<Arc<Fleet>>,
    ) -> Arc<Self> {
        let limit = Arc::new(Semaphore::new(settings.max_concurrent.max(1)));
        Arc::new(Poller {
            settings,
            registry,
            store,
            writer,
            in_flight: Arc::default(),
            clients: Mutex::default(),
            limit,
            fleet,
        })
    }

    /// Polls every `interval` until `stop` is cancelled; in-flight polls
    /// finish their current page.
    pub async fn run(self: Arc<Self>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(self.settings.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    for agent in self.registry.snapshot() {
                        if !agent.pollable() {
                            continue;
                        }
                        let id = agent.record.agent_id.clone();
                        if self.fleet.as_ref().is_some_and(|f| !f.owns(&id)) {
                            continue; // another colony polls it
                        }
                        if !self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone()) {
                            continue; // still draining from an earlier round
                        }
                        let this = self.clone();
                        let stop = stop.clone();
                        tasks.spawn(async move {
                            let _ = this.poll_agent(&id, &stop).await;
                            this.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                        });
                    }
                }
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            }
        }
        while tasks.join_next().await.is_some() {}
    }

    fn client(&self, agent_id: &str, endpoint: &str) -> Result<Client, String> {
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((known, client)) = clients.get(agent_id)
            && known == endpoint
        {
            return Ok(client.clone());
        }
        let channel = channel(endpoint, self.settings.tls.as_ref(), self.settings.timeout)
            .map_err(|e| e.to_string())?;
        let client = AgentServiceClient::with_interceptor(
            channel,
            BearerToken::new(self.settings.token.as_deref()),
        )
        .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
        .max_decoding_message_size(MAX_RESPONSE_BYTES);
        clients.insert(agent_id.to_owned(), (endpoint.to_owned(), client.clone()));
        Ok(client)
    }

    fn forget_client(&self, agent_id: &str) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(agent_id);
    }

    /// Polls one agent now and drains it (also used by tests and benchmarks).
    pub async fn poll_agent(
        &self,
        agent_id: &str,
        stop: &CancellationToken,
    ) -> Result<PollReport, String> {
        let _permit = self.limit.acquire().await.map_err(|e| e.to_string())?;
        let began = std::time::Instant::now();
        let result = self.drain(agent_id, stop).await;
        self.writer
            .metrics()
            .poll_finished(began.elapsed(), result.is_ok());
        let status = match &result {
            Ok((_, session, latest)) => Ok((session.clone(), *latest)),
            Err(error) => {
                tracing::warn!(agent_id, %error, "poll failed");
                // The next poll dials afresh: a connection that stopped
                // answering (a cut link) is not waited on until TCP's
                // retransmission backs off far enough to notice the link
                // came back, which took ~55 s after a 1-minute cut.
                self.forget_client(agent_id);
                Err(error.clone())
            }
        };
        self.registry.poll_finished(agent_id, status);
        result.map(|(report, _, _)| report)
    }

    async fn drain(
        &self,
        agent_id: &str,
        stop: &CancellationToken,
    ) -> Result<(PollReport, String, u64), String> {
        let (mut report, session, latest) = self
            .drain_stream(agent_id, Stream::Pull, stop)
            .await
            .map_err(|e| e.to_string())?;
        if !stop.is_cancelled() {
            match self.drain_stream(agent_id, Stream::Beyla, stop).await {
                Ok((beyla, _, beyla_latest)) => {
                    report.pages += beyla.pages;
                    report.rows += beyla.rows;
                    report.gaps += beyla.gaps;
                    self.registry.beyla_progress(agent_id, beyla_latest);
                }
                // An agent without the Beyla API (an older version) is
                // still polled for telemetry.
                Err(DrainError::Unimplemented(error)) => {
                    tracing::debug!(agent_id, %error, "agent has no Beyla API")
                }
                Err(error) => return Err(error.to_string()),
            }
        }
        Ok((report, session, latest))
    }

    /// Pages through one stream of one agent until it has read what the
    /// agent held when the poll began (or the agent has no more).
    async fn drain_stream(
        &self,
        agent_id: &str,
        stream: Stream,
        stop: &CancellationToken,
    ) -> Result<(PollReport, String, u64), DrainError> {
        let state = self
            .registry
            .get(agent_id)
            .ok_or_else(|| format!("agent {agent_id} is not registered"))?;
        let endpoint = state.record.endpoint.clone();
        let mut client = self.client(agent_id, &endpoint)?;
        let (mut session, mut cursor) = self.stored_cursor(agent_id, stream).await?;
        let mut report = PollReport::default();
        let max_records = self.settings.page_size as i32;
        // What the agent held when this poll first asked: the poll ends once
        // it has read that far, so an agent that writes faster than the
        // colony stores cannot keep its poll slot from the others.
        let mut held_at_start: Option<u64> = None;
        loop {
            let (mut page, has_more, latest) = match stream {
                Stream::Beyla => {
                    let request = QueryBeylaMetricsRequest {
                        start_seq_id: cursor,
                        max_records,
                        include_traces: true,
                        ..Default::default()
                    };
                    let r = self
                        .call(
                            &endpoint,
                            "QueryBeylaMetrics",
                            client.query_beyla_metrics(request),
                            stop,
                        )
                        .await?;
                    let page = Page {
                        agent_id: agent_id.to_owned(),
                        stream,
                        reported: vec![(r.session_id.clone(), r.latest_seq_id)],
                        session_id: r.session_id,
                        start_seq: cursor,
                        max_seq: r.max_seq_id,
                        buckets: Vec::new(),
                        spans: Vec::new(),
                        hosts: Vec::new(),
                        beyla: BeylaRows {
                            http: r.http_metrics,
                            grpc: r.grpc_metrics,
                            sql: r.sql_metrics,
                            spans: r.trace_spans,
                        },
                    };
                    (page, r.has_more, r.latest_seq_id)
                }
                _ => {
                    let request = QueryTelemetryRequest {
                        service_names: Vec::new(),
                        start_seq_id: cursor,
                        max_records,
                    };
                    let r = self
                        .call(
                            &endpoint,
                            "QueryTelemetry",
                            client.query_telemetry(request),
                            stop,
                        )
                        .await?;
                    // Heartbeats tell how far an earlier session got.
                    let mut reported = self.registry.reported(agent_id);
                    reported.push((r.session_id.clone(), r.latest_seq_id));
                    let page = Page {
                        agent_id: agent_id.to_owned(),
                        stream: Stream::Pull,
                        reported,
                        session_id: r.session_id,
                        start_seq: cursor,
                        max_seq: r.max_seq_id,
                        buckets: r.buckets,
                        spans: r.spans,
                        hosts: r.host_metrics,
                        beyla: BeylaRows::default(),
                    };
                    (page, r.has_more, r.latest_seq_id)
                }
            };
            if page.session_id != session && cursor != 0 {
                tracing::info!(agent_id, stream = stream.as_str(), old = %session, new = %page.session_id, "agent store session changed, reading it from the start");
                session = page.session_id.clone();
                cursor = 0;
                held_at_start = None;
                continue;
            }
            // An agent that does not say (0) is read until it has no more.
            let target = *held_at_start.get_or_insert(if latest == 0 { u64::MAX } else { latest });
            session = page.session_id.clone();
            if stream == Stream::Pull {
                self.registry.progress(agent_id, &session, latest);
            }
            page.start_seq = cursor;
            let outcome = self.writer.store(page).await.map_err(|e| e.to_string())?;
            if outcome.rejected > 0 {
                tracing::warn!(agent_id, stream = stream.as_str(), rejected = outcome.rejected, reason = ?outcome.reject_reason, "rows refused");
            }
            if !outcome.gaps.is_empty() {
                tracing::warn!(agent_id, stream = stream.as_str(), gaps = ?outcome.gaps, "rows expired at the agent before they were read");
            }
            report.pages += 1;
            report.rows += outcome.stored;
            report.gaps += outcome.gaps.len() + usize::from(outcome.replaced_gap.is_some());
            cursor = outcome.cursor;
            if !has_more || cursor >= target || stop.is_cancelled() {
                return Ok((report, session, latest));
            }
        }
    }

    /// One RPC with the poll timeout; a stopping colony does not wait for
    /// slow agents (a page already handed to the writer is committed, with
    /// its cursor, anyway).
    async fn call<T>(
        &self,
        endpoint: &str,
        what: &str,
        call: impl std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
        stop: &CancellationToken,
    ) -> Result<T, DrainError> {
        let call = async {
            tokio::select! {
                result = call => Ok(result),
                _ = stop.cancelled() => Err(()),
            }
        };
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Err(())) => Err("the colony is stopping".to_owned().into()),
            Err(_) => Err(format!(
                "no answer from {endpoint} within {:?} (colony.poll.timeout)",
                self.settings.timeout
            )
            .into()),
            Ok(Ok(Err(status))) => {
                let message = format!(
                    "{what} to {endpoint} failed: {} ({:?})",
                    status.message(),
                    status.code()
                );
                Err(if status.code() == tonic::Code::Unimplemented {
                    DrainError::Unimplemented(message)
                } else {
                    DrainError::Failed(message)
                })
            }
            Ok(Ok(Ok(response))) => Ok(response.into_inner()),
        }
    }

    async fn stored_cursor(&self, agent_id: &str, stream: Stream) -> Result<(String, u64), String> {
        self.store
            .cursor(agent_id, stream)
            .await
            .map_err(|e| e.to_string())
            .map(|c| c.map(|c| (c.session_id, c.seq_id)).unwrap_or_default())
    }
}
