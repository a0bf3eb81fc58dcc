//! Wiring: open the store, start the writer, restore the registry, bind the
//! API and the admin endpoint, start the poller and the cleanup loop; stop
//! in reverse order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use coral_config::{ColonyConfig, StorageEngine};
use coral_proto::colony::colony_service_server::ColonyServiceServer;
use coral_proto::transport::{ClientTlsSettings, TokenCheck, server_tls};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::fleet::{Fleet, FleetSettings};
use crate::metrics::ColonyMetrics;
use crate::poller::{PollSettings, Poller};
use crate::registry::{HealthPolicy, Registry};
use crate::service::{Colony, ColonyApi};
use crate::store::clickhouse::{ClickHouse, Settings};
use crate::store::engine::Store;
use crate::store::writer::{AgentRecord, Cutoffs, Writer, WriterSender, WriterSettings};
use crate::store::{Database, StoreError, now_micros};
use tonic::service::interceptor::InterceptedService;

/// Largest request accepted (push batches).
pub const MAX_REQUEST_BYTES: usize = 64 * 1024 * 1024;

/// Requests served at once; more wait their turn.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;

/// Errors starting the colony.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The API listener could not be bound.
    #[error(
        "cannot listen on {address} for the colony API: {source} — is another colony running? Set colony.api.endpoint (or CORAL_COLONY_API_ENDPOINT) to another address, or port 0 to pick a free one"
    )]
    Bind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// The admin listener could not be bound.
    #[error(
        "cannot listen on {address} for the colony's admin endpoint (/metrics): {source} — is another colony running? Set colony.admin.endpoint (or CORAL_COLONY_ADMIN_ENDPOINT) to another address, or port 0 to pick a free one"
    )]
    AdminBind {
        /// The address.
        address: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// TLS files could not be loaded.
    #[error("colony TLS: {0}")]
    Tls(#[from] coral_proto::transport::TransportError),
    /// The TLS configuration was refused.
    #[error("colony TLS configuration refused: {0}")]
    TlsConfig(#[from] tonic::transport::Error),
    /// A thread could not be started.
    #[error("cannot start the colony store writer: {0}")]
    Thread(std::io::Error),
}

/// A running colony.
pub struct RunningColony {
    /// Where the API listens.
    pub addr: SocketAddr,
    /// Where the admin endpoint (`/metrics`) listens.
    pub admin_addr: SocketAddr,
    /// The service state (registry, store).
    pub colony: Arc<Colony>,
    /// The poller (tests poll on demand with it).
    pub poller: Arc<Poller>,
    /// The DuckDB writer thread (none on ClickHouse).
    writer: Option<Writer>,
    writer_tx: WriterSender,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

fn client_tls(tls: &Option<coral_config::ClientTls>) -> Option<ClientTlsSettings> {
    tls.as_ref().map(|t| ClientTlsSettings {
        ca_file: t.ca_file.clone(),
        server_name: t.server_name.clone(),
    })
}

/// Starts a colony from a validated configuration.
pub async fn start(config: &ColonyConfig) -> Result<RunningColony, StartError> {
    let sampling = crate::store::beyla::TraceSampling {
        rate: config.beyla_traces.rate,
        slow_us: config.beyla_traces.slow_threshold.as_micros() as i64,
    };
    let metrics = Arc::new(ColonyMetrics::new(config.admin.red_metrics));
    let (store, writer, writer_tx) = match &config.storage {
        StorageEngine::DuckDb => {
            let data_dir = config.data_dir.clone();
            let (db, conn) = tokio::task::spawn_blocking(move || Database::open(&data_dir))
                .await
                .expect("store open task")?;
            let (writer, writer_tx) =
                Writer::start(conn, db.clone(), WriterSettings { sampling, metrics })
                    .map_err(StartError::Thread)?;
            (Store::DuckDb(db), Some(writer), writer_tx)
        }
        StorageEngine::ClickHouse(c) => {
            let ch = ClickHouse::open(&Settings {
                url: c.url.clone(),
                database: c.database.clone(),
                user: c.user.clone(),
                password: c.password.clone(),
                cluster: c.cluster.clone(),
            })
            .await
            .map_err(StoreError::from)?;
            let writer_tx = WriterSender::clickhouse(ch.clone(), sampling, metrics);
            (Store::ClickHouse(ch), None, writer_tx)
        }
    };

    let registry = Arc::new(Registry::default());
    let persisted = store.agents().await?;
    for record in persisted {
        registry.upsert(record, false);
    }
    for agent in &config.static_agents {
        let record = AgentRecord {
            agent_id: agent.id.clone(),
            endpoint: agent.endpoint.clone(),
            source: "static".to_owned(),
            registered_at_us: now_micros(),
            ..Default::default()
        };
        let record = registry.upsert(record, false);
        writer_tx.upsert_agent(record);
    }

    // On ClickHouse other colonies may share the store: this one renews its
    // lease and polls its share of the fleet.
    let fleet = match &store {
        Store::ClickHouse(ch) => {
            let fleet = Fleet::new(
                FleetSettings {
                    colony_id: config.colony_id.clone(),
                    endpoint: config.api_endpoint.to_string(),
                    lease_interval: config.poll.lease_interval,
                },
                ch.clone(),
                registry.clone(),
            );
            if let Err(error) = fleet.renew().await {
                tracing::warn!(%error, "cannot take this colony's lease yet; will retry");
            }
            Some(fleet)
        }
        Store::DuckDb(_) => None,
    };
    let colony = Arc::new(Colony {
        colony_id: config.colony_id.clone(),
        registry: registry.clone(),
        health: HealthPolicy {
            degraded_after: config.health.degraded_after,
            unreachable_after: config.health.unreachable_after,
        },
        store: store.clone(),
        writer: writer_tx.clone(),
        fleet: fleet.clone(),
    });
    let poller = Poller::new(
        PollSettings {
            interval: config.poll.interval,
            timeout: config.poll.timeout,
            max_concurrent: config.poll.max_concurrent,
            page_size: config.poll.page_size,
            token: config.auth_token.clone(),
            tls: client_tls(&config.poll.tls),
        },
        registry,
        store,
        writer_tx.clone(),
        fleet.clone(),
    );

    let listener = TcpListener::bind(config.api_endpoint)
        .await
        .map_err(|source| StartError::Bind {
            address: config.api_endpoint,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        address: config.api_endpoint,
        source,
    })?;
    let admin_listener = TcpListener::bind(config.admin.endpoint)
        .await
        .map_err(|source| StartError::AdminBind {
            address: config.admin.endpoint,
            source,
        })?;
    let admin_addr = admin_listener
        .local_addr()
        .map_err(|source| StartError::AdminBind {
            address: config.admin.endpoint,
            source,
        })?;
    let mut builder = tonic::transport::Server::builder();
    if let Some(tls) = &config.api_tls {
        builder = builder.tls_config(server_tls(&tls.cert_file, &tls.key_file)?)?;
    }
    let service = InterceptedService::new(
        ColonyServiceServer::new(ColonyApi(colony.clone()))
            .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
            .send_compressed(tonic::codec::CompressionEncoding::Gzip)
            .max_decoding_message_size(MAX_REQUEST_BYTES)
            .max_encoding_message_size(MAX_REQUEST_BYTES),
        TokenCheck::new(config.auth_token.as_deref(), "colony"),
    );

    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    let s = stop.clone();
    // Push batches are decoded inside the limit: at most this many requests
    // (of at most MAX_REQUEST_BYTES each) are in memory at once.
    let router = builder
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(
            MAX_CONCURRENT_REQUESTS,
        ))
        .add_service(service);
    tasks.spawn(async move {
        let incoming = futures::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                stream
            });
            Some((accepted, listener))
        });
        if let Err(error) = router
            .serve_with_incoming_shutdown(incoming, s.cancelled())
            .await
        {
            tracing::error!(%error, "colony API stopped");
        }
    });
    let (c, s) = (colony.clone(), stop.clone());
    tasks.spawn(async move {
        if let Err(error) = crate::admin::serve(admin_listener, c, s).await {
            tracing::error!(%error, "colony admin endpoint stopped");
        }
    });
    let (p, s) = (poller.clone(), stop.clone());
    tasks.spawn(p.run(s));
    if let Some(fleet) = fleet {
        tasks.spawn(fleet.run(stop.clone()));
    }
    let (w, s) = (writer_tx.clone(), stop.clone());
    let retention = config.retention;
    let interval = config.cleanup_interval;
    tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = s.cancelled() => return,
                _ = tick.tick() => {
                    let now = SystemTime::now();
                    let cutoffs = Cutoffs {
                        otel_spans: now - retention.otel_spans,
                        otel_operations: now - retention.otel_operations,
                        trace_spans: now - retention.trace_spans,
                        host_metrics: now - retention.host_metrics,
                        gaps: now - retention.gaps,
                        beyla_http: now - retention.beyla_http,
                        beyla_grpc: now - retention.beyla_grpc,
                        beyla_sql: now - retention.beyla_sql,
                        beyla_traces: now - retention.beyla_traces,
                    };
                    match w.retention(cutoffs).await {
                        Ok(deleted) => tracing::debug!(deleted, "colony retention done"),
                        Err(error) => tracing::warn!(%error, "colony retention failed, will retry"),
                    }
                }
            }
        }
    });
    tracing::info!(colony_id = %config.colony_id, api = %addr, admin = %admin_addr, data_dir = %config.data_dir.display(), "coral colony started");
    Ok(RunningColony {
        addr,
        admin_addr,
        colony,
        poller,
        writer,
        writer_tx,
        stop,
        tasks,
    })
}

impl RunningColony {
    /// Stops the API, poller and cleanup, then the writer (which commits what
    /// is queued and checkpoints).
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.writer_tx.close();
        if let Some(writer) = self.writer {
            let _ = tokio::time::timeout(
                Duration::from_secs(30),
                tokio::task::spawn_blocking(move || writer.join()),
            )
            .await;
        }
        tracing::info!("coral colony stopped");
    }
}
