//! Wiring: binds the listeners, starts every task, and shuts down in order.
//!
//! Start: open the store → start the writer thread → build the pipeline → bind
//! all listeners (port 0 picks a free port; the bound address is reported) →
//! spawn receivers, API, admin, flush and retention loops.
//!
//! Stop: stop accepting (receivers finish in-flight requests) → stop the API,
//! admin and timer loops → flush every open minute as a (possibly partial)
//! bucket → close the writer, which commits what is queued and checkpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use coral_config::AgentConfig;
use regex::RegexSet;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::aggregate::{Aggregator, Limits};
use crate::api::{AgentApi, Identity};
use crate::filter::StaticFilter;
use crate::metrics::Counters;
use crate::pipeline::Pipeline;
use crate::store::writer::{RetentionRule, WriteOp, Writer, WriterSender};
use crate::store::{Database, StoreError};
use crate::{admin, api, receiver};

/// How often closed minutes are flushed.
pub const FLUSH_TICK: Duration = Duration::from_secs(1);

/// Errors starting the agent.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A listener could not be bound.
    #[error(
        "cannot listen on {address} for {what}: {source} — is another process using the port? Set {key} to another address, or port 0 to pick a free one"
    )]
    Bind {
        /// What the listener is for.
        what: &'static str,
        /// The configuration key that sets it.
        key: &'static str,
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The scrub patterns could not be combined.
    #[error("invalid agent.telemetry.scrub_attributes: {0}")]
    Scrub(#[from] regex::Error),
    /// TLS files or the colony endpoint could not be used.
    #[error("{0}")]
    Transport(#[from] coral_proto::transport::TransportError),
    /// A push mode without a colony to push to.
    #[error(
        "agent mode {mode} pushes to a colony, but no colony is configured — set agent.colony.endpoint (or CORAL_COLONY_ENDPOINT / --colony), or run with --mode agent"
    )]
    NoColony {
        /// The mode.
        mode: String,
    },
}

/// The addresses the agent actually listens on.
#[derive(Debug, Clone, Copy)]
pub struct BoundAddrs {
    /// OTLP/gRPC, when telemetry is enabled.
    pub otlp_grpc: Option<SocketAddr>,
    /// OTLP/HTTP, when telemetry is enabled.
    pub otlp_http: Option<SocketAddr>,
    /// AgentService gRPC.
    pub api: SocketAddr,
    /// Admin HTTP.
    pub admin: SocketAddr,
}

/// A running agent.
pub struct RunningAgent {
    /// Where it listens.
    pub addrs: BoundAddrs,
    /// The shared API object (status, counters).
    pub api: Arc<AgentApi>,
    pipeline: Arc<Pipeline>,
    beyla: Option<crate::beyla::BeylaHandle>,
    writer: Writer,
    writer_tx: WriterSender,
    receivers_stop: CancellationToken,
    receivers: JoinSet<()>,
    services_stop: CancellationToken,
    services: JoinSet<()>,
}

async fn bind(
    address: SocketAddr,
    what: &'static str,
    key: &'static str,
) -> Result<TcpListener, StartError> {
    TcpListener::bind(address)
        .await
        .map_err(|source| StartError::Bind {
            what,
            key,
            address,
            source,
        })
}

fn local(listener: &TcpListener) -> SocketAddr {
    listener
        .local_addr()
        .expect("bound listener has an address")
}

/// Options of [`start_with`] beyond the configuration.
#[derive(Clone, Default)]
pub struct AgentOptions {
    /// How Beyla is found, assessed and reloaded.
    pub beyla: crate::beyla::BeylaOptions,
    /// Ports of a colony in the same process (`coral up`), kept out of
    /// Beyla's instrumentation.
    pub colony_ports: Vec<u16>,
    /// The hostname reported to the colony and on host samples; the
    /// machine's by default (simulations run several "hosts" on one).
    pub hostname: Option<String>,
    /// Host samples to store instead of sampling `/proc` (simulations and
    /// tests); used when `agent.host_metrics` is enabled.
    pub host_samples: Option<crate::host::HostReplay>,
}

/// Starts an agent from a validated configuration.
pub async fn start(config: &AgentConfig) -> Result<RunningAgent, StartError> {
    start_with(config, AgentOptions::default()).await
}

/// Starts an agent from a validated configuration, with options.
pub async fn start_with(
    config: &AgentConfig,
    options: AgentOptions,
) -> Result<RunningAgent, StartError> {
    let push_mode = config.mode != coral_config::AgentMode::Agent;
    if push_mode && config.colony.is_none() {
        return Err(StartError::NoColony {
            mode: config.mode.to_string(),
        });
    }
    let api_tls = match &config.api_tls {
        Some(tls) => Some(coral_proto::transport::server_tls(
            &tls.cert_file,
            &tls.key_file,
        )?),
        None => None,
    };
    let colony_client = match &config.colony {
        Some(link) => Some(crate::link::client(link)?),
        None => None,
    };
    let counters = Arc::new(Counters::default());
    let data_dir = config.data_dir.clone();
    let (db, conn) = tokio::task::spawn_blocking(move || Database::open(&data_dir))
        .await
        .expect("store open task")?;
    let (writer, writer_tx) = Writer::start(conn, db.clone(), counters.clone())?;

    let t = &config.telemetry;
    let aggregator = Aggregator::new(Limits {
        max_operations_per_service: t.max_operations_per_service,
        max_services: t.max_services,
        grace_secs: t.flush_grace.as_secs() as i64,
    });
    let scrub = RegexSet::new(t.scrub_attributes.iter().map(|r| r.as_str()))?;
    let mut pipeline = Pipeline::new(
        aggregator,
        StaticFilter::new(&t.filters),
        scrub,
        t.queue_spans,
        writer_tx.clone(),
        counters.clone(),
    );
    pipeline = pipeline.with_store_health(db.health().clone());
    if t.ack == coral_config::AckMode::Stored {
        let durability = crate::durable::Durability::new();
        pipeline = pipeline.with_stored_ack(durability.clone());
        let ack = crate::store::writer::StoredAck {
            aggregator: pipeline.aggregator(),
            durability,
            grace_secs: t.flush_grace.as_secs() as i64,
            max_operations: t.max_operations_per_service,
        };
        // Sent before any receiver starts: every request is answered once stored.
        let _ = writer_tx.send(crate::store::writer::WriteOp::AckStored(ack));
    }
    let pipeline = Arc::new(pipeline);

    let (grpc, http) = if t.enabled {
        (
            Some(bind(t.grpc_endpoint, "OTLP/gRPC", "agent.telemetry.endpoint").await?),
            Some(
                bind(
                    t.http_endpoint,
                    "OTLP/HTTP",
                    "agent.telemetry.http_endpoint",
                )
                .await?,
            ),
        )
    } else {
        (None, None)
    };
    let api_listener = bind(config.api_endpoint, "the agent API", "agent.api.endpoint").await?;
    let admin_listener = bind(
        config.admin_endpoint,
        "the admin endpoint",
        "agent.admin.endpoint",
    )
    .await?;
    let addrs = BoundAddrs {
        otlp_grpc: grpc.as_ref().map(local),
        otlp_http: http.as_ref().map(local),
        api: local(&api_listener),
        admin: local(&admin_listener),
    };
    let mut endpoints = Vec::new();
    if let (Some(g), Some(h)) = (addrs.otlp_grpc, addrs.otlp_http) {
        endpoints.push(("otlp-grpc".to_owned(), g.to_string()));
        endpoints.push(("otlp-http".to_owned(), h.to_string()));
    }
    endpoints.push(("agent-api".to_owned(), addrs.api.to_string()));
    endpoints.push(("admin".to_owned(), addrs.admin.to_string()));
    let mut capabilities = vec!["otlp".to_owned()];
    if config.host_metrics.enabled {
        capabilities.push("host-metrics".to_owned());
    }
    if push_mode {
        capabilities.push("push".to_owned());
    }
    let mut own_ports: Vec<u16> = [
        addrs.otlp_grpc.map(|a| a.port()),
        addrs.otlp_http.map(|a| a.port()),
        Some(addrs.api.port()),
        Some(addrs.admin.port()),
    ]
    .into_iter()
    .flatten()
    .chain(options.colony_ports.iter().copied())
    .collect();
    // The colony endpoint is normalized to http(s)://host:port.
    if let Some(port) = config
        .colony
        .as_ref()
        .and_then(|c| c.endpoint.parse::<http::Uri>().ok())
        .and_then(|uri| uri.port_u16())
    {
        own_ports.push(port);
    }
    let beyla = crate::beyla::manager::start(
        crate::beyla::AgentSide {
            config,
            writer: writer_tx.clone(),
            counters: counters.clone(),
            own_ports,
        },
        options.beyla,
    )
    .await;
    if beyla.status().get().state != "disabled" {
        capabilities.push("beyla".to_owned());
    }
    let link_state = crate::link::LinkState::new(if config.colony.is_some() {
        "connecting"
    } else {
        "standalone"
    });
    let api = Arc::new(AgentApi::new(
        db.clone(),
        counters.clone(),
        Identity {
            agent_id: config.agent_id.clone(),
            mode: config.mode.to_string(),
            data_dir: config.data_dir.display().to_string(),
            endpoints,
            capabilities: capabilities.clone(),
        },
        link_state.clone(),
        beyla.status(),
    ));

    let receivers_stop = CancellationToken::new();
    let mut receivers = JoinSet::new();
    if let (Some(grpc), Some(http)) = (grpc, http) {
        let open_files = crate::fds::raise_open_file_limit();
        let max_connections = crate::fds::connection_bound(t.max_connections, 2, open_files);
        let limits = receiver::ReceiverLimits::new(t.max_message_bytes, max_connections);
        let (p, stop) = (pipeline.clone(), receivers_stop.clone());
        receivers.spawn(async move {
            if let Err(error) = receiver::grpc::serve(grpc, p, limits, stop).await {
                tracing::error!(%error, "OTLP/gRPC receiver stopped");
            }
        });
        let (p, stop) = (pipeline.clone(), receivers_stop.clone());
        receivers.spawn(async move {
            if let Err(error) = receiver::http::serve(http, p, limits, stop).await {
                tracing::error!(%error, "OTLP/HTTP receiver stopped");
            }
        });
    }

    let services_stop = CancellationToken::new();
    let mut services = JoinSet::new();
    let (a, stop, token) = (
        api.clone(),
        services_stop.clone(),
        config.auth_token.clone(),
    );
    services.spawn(async move {
        if let Err(error) = api::serve(api_listener, a, token, api_tls, stop).await {
            tracing::error!(%error, "agent API stopped");
        }
    });
    let (a, stop) = (api.clone(), services_stop.clone());
    services.spawn(async move {
        if let Err(error) = admin::serve(admin_listener, a, stop).await {
            tracing::error!(%error, "admin endpoint stopped");
        }
    });
    let (p, stop) = (pipeline.clone(), services_stop.clone());
    services.spawn(async move {
        let mut tick = tokio::time::interval(FLUSH_TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => p.flush(false),
            }
        }
    });
    let (p, stop) = (pipeline.clone(), services_stop.clone());
    let (retention, interval) = (config.storage.retention, config.storage.cleanup_interval);
    let beyla_retention = config.beyla.storage_retention;
    let outbox_max_age = push_mode.then_some(config.storage.outbox_max_age.max(retention));
    services.spawn(async move {
        let mut tick = tokio::time::interval(interval.max(Duration::from_millis(100)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    let now = SystemTime::now();
                    p.request_retention(RetentionRule {
                        cutoff: now - retention,
                        keep_unacked_until: outbox_max_age.map(|age| now - age),
                        beyla_cutoff: Some(now - beyla_retention),
                    });
                }
            }
        }
    });
    // Read once: the sampler, the advertised endpoint and the registration use it.
    let machine = coral_config::host_name().unwrap_or_else(|| "localhost".to_owned());
    let hostname = options.hostname.clone().unwrap_or_else(|| machine.clone());
    if config.host_metrics.enabled {
        let source: Box<dyn crate::host::HostSource> = match options.host_samples.clone() {
            Some(replay) => Box::new(replay),
            None => Box::new(crate::host::HostSampler::new("/proc", hostname.clone())),
        };
        services.spawn(crate::host::run(
            source,
            writer_tx.clone(),
            config.host_metrics.interval,
            services_stop.clone(),
        ));
    }
    if let (Some(link), Some(client)) = (&config.colony, colony_client) {
        let scheme = if config.api_tls.is_some() {
            "https"
        } else {
            "http"
        };
        let advertised = link.advertise_endpoint.clone().unwrap_or_else(|| {
            let host = if addrs.api.ip().is_unspecified() {
                machine.clone()
            } else {
                addrs.api.ip().to_string()
            };
            format!("{scheme}://{host}:{}", addrs.api.port())
        });
        let registration = coral_proto::colony::RegisterAgentRequest {
            agent_id: config.agent_id.clone(),
            // Push-mode agents are not polled.
            endpoint: if push_mode { String::new() } else { advertised },
            version: env!("CARGO_PKG_VERSION").to_owned(),
            mode: config.mode.to_string(),
            capabilities,
            hostname,
            session_id: db.session_id().to_owned(),
            beyla: None,
        };
        let (stop, state, d) = (services_stop.clone(), link_state.clone(), db.clone());
        let mut colonies = crate::link::clients(link)?;
        // The primary's client is the one already built.
        colonies[0].1 = client;
        let every = link.heartbeat_interval;
        services.spawn(crate::link::run(
            colonies.clone(),
            registration,
            every,
            crate::link::Reporting {
                db: d,
                state,
                beyla: beyla.status(),
            },
            stop,
        ));
        if push_mode {
            let (stop, state, d, w) = (
                services_stop.clone(),
                link_state,
                db.clone(),
                writer_tx.clone(),
            );
            services.spawn(crate::push::run(
                colonies,
                config.agent_id.clone(),
                link.push,
                d,
                w,
                state,
                stop,
            ));
        }
    }

    tracing::info!(
        agent_id = %config.agent_id,
        session_id = %db.session_id(),
        otlp_grpc = ?addrs.otlp_grpc,
        otlp_http = ?addrs.otlp_http,
        api = %addrs.api,
        admin = %addrs.admin,
        data_dir = %config.data_dir.display(),
        "coral agent started"
    );
    Ok(RunningAgent {
        addrs,
        api,
        pipeline,
        beyla: Some(beyla),
        writer,
        writer_tx,
        receivers_stop,
        receivers,
        services_stop,
        services,
    })
}

impl RunningAgent {
    /// Flushes every open minute now (tests and shutdown use this).
    pub fn flush_all(&self) {
        self.pipeline.flush(true);
        if let Some(beyla) = &self.beyla {
            beyla.flush(true);
        }
    }

    /// Stops in order: Beyla (and its receiver), receivers, API/admin/loops,
    /// final flush, writer.
    pub async fn shutdown(mut self) {
        if let Some(beyla) = self.beyla.take() {
            beyla.stop().await;
        }
        self.receivers_stop.cancel();
        while self.receivers.join_next().await.is_some() {}
        self.services_stop.cancel();
        while self.services.join_next().await.is_some() {}
        self.pipeline.flush(true);
        let _ = self.writer_tx.send(WriteOp::Close);
        let writer = self.writer;
        let _ = tokio::task::spawn_blocking(move || writer.join()).await;
        tracing::info!("coral agent stopped");
    }
}
