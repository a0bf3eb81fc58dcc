//! The agent's link to its colony (`agent.colony`): registration, heartbeats
//! and the shared client used by push modes.
//!
//! The agent registers at start (retrying with backoff while the colony is
//! away), then heartbeats every `heartbeat_interval` and at once when Beyla's
//! status changes; when the colony answers
//! that it does not know the agent (a new colony database), it registers
//! again. The link's state is shown in `GetStatus` and `/status`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use coral_config::ColonyLink;
use coral_proto::colony::colony_service_client::ColonyServiceClient;
use coral_proto::colony::{HeartbeatRequest, RegisterAgentRequest};
use coral_proto::transport::{BearerToken, ClientTlsSettings, TransportError, channel};
use tokio_util::sync::CancellationToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::store::Database;

/// A colony client that sends the agent's token.
pub type ColonyClient = ColonyServiceClient<InterceptedService<Channel, BearerToken>>;

/// Timeout of each call to the colony.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the colony client from `agent.colony`.
pub fn client(link: &ColonyLink) -> Result<ColonyClient, TransportError> {
    client_to(link, &link.endpoint)
}

/// A client of every colony `agent.colony` names: its endpoint, then its
/// fallbacks, in order.
pub fn clients(link: &ColonyLink) -> Result<Vec<(String, ColonyClient)>, TransportError> {
    std::iter::once(&link.endpoint)
        .chain(&link.fallback_endpoints)
        .map(|e| Ok((e.clone(), client_to(link, e)?)))
        .collect()
}

/// A client of the colony at `endpoint`, with `link`'s token and TLS.
fn client_to(link: &ColonyLink, endpoint: &str) -> Result<ColonyClient, TransportError> {
    let tls = link.tls.as_ref().map(|t| ClientTlsSettings {
        ca_file: t.ca_file.clone(),
        server_name: t.server_name.clone(),
    });
    let channel = channel(endpoint, tls.as_ref(), CALL_TIMEOUT)?;
    Ok(
        ColonyServiceClient::with_interceptor(channel, BearerToken::new(link.token.as_deref()))
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(64 * 1024 * 1024)
            .max_encoding_message_size(64 * 1024 * 1024),
    )
}

/// The link's state as shown to users: the registration's, and in push
/// modes the last push's when it failed. Heartbeats that succeed while pushes
/// fail must not hide the failure, so the two are kept apart.
#[derive(Clone, Default)]
pub struct LinkState(Arc<Mutex<States>>);

#[derive(Default)]
struct States {
    link: String,
    push_problem: Option<String>,
}

impl LinkState {
    /// A state with `text`.
    pub fn new(text: &str) -> Self {
        let states = States {
            link: text.to_owned(),
            push_problem: None,
        };
        LinkState(Arc::new(Mutex::new(states)))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, States> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Replaces the registration's state.
    pub fn set(&self, text: impl Into<String>) {
        self.lock().link = text.into();
    }

    /// Records why the last push failed, or (`None`) that it succeeded.
    pub fn set_push_problem(&self, problem: Option<String>) {
        self.lock().push_problem = problem;
    }

    /// The registration's state alone.
    pub fn link(&self) -> String {
        self.lock().link.clone()
    }

    /// The state as shown: the registration's, then the push failure if any.
    pub fn get(&self) -> String {
        let states = self.lock();
        match &states.push_problem {
            Some(problem) => format!("{}; {problem}", states.link),
            None => states.link.clone(),
        }
    }
}

/// `call`'s answer, or `UNAVAILABLE` ("no answer within …") when the colony
/// has not answered within `limit`.
pub async fn answer_within<T>(
    limit: Duration,
    call: impl std::future::Future<Output = Result<T, tonic::Status>>,
) -> Result<T, tonic::Status> {
    tokio::time::timeout(limit, call).await.unwrap_or_else(|_| {
        Err(tonic::Status::unavailable(format!(
            "no answer within {}s",
            limit.as_secs()
        )))
    })
}

/// Describes a failed call for logs and status.
pub fn describe(endpoint: &str, status: &tonic::Status) -> String {
    match status.code() {
        tonic::Code::Unauthenticated => format!(
            "colony at {endpoint} refused the agent: {} ",
            status.message()
        ),
        tonic::Code::Unavailable if status.message().contains("certificate") => format!(
            "colony at {endpoint} is not trusted: {} — set agent.colony.tls.ca_file to the CA \
             that signed its certificate",
            status.message()
        ),
        tonic::Code::Unavailable => format!(
            "cannot reach colony at {endpoint}: {} — is the colony running (coral colony serve / coral up)?",
            status.message()
        ),
        _ => format!(
            "colony at {endpoint}: {} ({:?})",
            status.message(),
            status.code()
        ),
    }
}

/// What the link reports about the agent and where it shows its own state.
pub struct Reporting {
    /// The store (session, latest seq_id).
    pub db: Arc<Database>,
    /// The link state shown in `GetStatus`.
    pub state: LinkState,
    /// Beyla's status, sent with every registration and heartbeat (and a
    /// heartbeat as soon as it changes).
    pub beyla: crate::beyla::BeylaStatus,
}

/// Registers, then heartbeats until `stop`. With several colonies (a fleet
/// sharing one store), a colony that does not answer is left for the next,
/// in order, where the agent registers again; the backoff applies once every
/// colony has failed in a row.
pub async fn run(
    colonies: Vec<(String, ColonyClient)>,
    registration: RegisterAgentRequest,
    interval: Duration,
    reporting: Reporting,
    stop: CancellationToken,
) {
    let Reporting { db, state, beyla } = reporting;
    let mut backoff = Duration::from_secs(1);
    let mut registered = false;
    let (mut current, mut failed_in_a_row) = (0usize, 0usize);
    loop {
        let (endpoint, client) = &mut colonies[current].clone();
        let result = if registered {
            let beat = HeartbeatRequest {
                agent_id: registration.agent_id.clone(),
                session_id: db.session_id().to_owned(),
                latest_seq_id: db.latest_seq(),
                beyla: Some(beyla.get()),
            };
            answer_within(CALL_TIMEOUT, client.heartbeat(beat))
                .await
                .map(|r| r.into_inner().known)
        } else {
            let mut registration = registration.clone();
            registration.beyla = Some(beyla.get());
            answer_within(CALL_TIMEOUT, client.register_agent(registration))
                .await
                .map(|r| r.into_inner().accepted)
        };
        let wait = match result {
            Ok(true) => {
                if !registered {
                    tracing::info!(colony = %endpoint, "registered with the colony");
                }
                registered = true;
                backoff = Duration::from_secs(1);
                failed_in_a_row = 0;
                state.set(format!("registered with {endpoint}"));
                interval
            }
            Ok(false) => {
                // The colony forgot us (new database): register again now.
                registered = false;
                Duration::ZERO
            }
            Err(status) => {
                let message = describe(endpoint, &status);
                if registered || state.link() != format!("connecting: {message}") {
                    tracing::warn!("{message}");
                }
                registered = false;
                state.set(format!("connecting: {message}"));
                failed_in_a_row += 1;
                if colonies.len() > 1 {
                    current = (current + 1) % colonies.len();
                    tracing::info!(colony = %colonies[current].0, "trying the next colony of the fleet");
                }
                if failed_in_a_row < colonies.len() {
                    Duration::ZERO
                } else {
                    failed_in_a_row = 0;
                    let wait = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    wait
                }
            }
        };
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
            // Beyla started, stopped or failed: tell the colony now, not at
            // the next heartbeat.
            _ = beyla.changed(), if registered => {}
        }
    }
}
