//! Starting, watching, reconfiguring and stopping Beyla for the agent.
//!
//! [`start`] never fails the agent: every reason Beyla cannot run (disabled,
//! no binary, kernel or capabilities, a config it cannot express) becomes a
//! `disabled` [`BeylaStatus`] with the reason, logged once, and the agent keeps
//! serving OTLP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use coral_beyla::caps::{Assessment, HostReadings, Mode, assess};
use coral_beyla::config_gen::{self, GenContext};
use coral_beyla::locate::{self, Search};
use coral_beyla::supervise::{self, LaunchSpec, RestartPolicy, Supervisor};
use coral_config::{AgentConfig, BeylaConfig};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::BeylaStatus;
use super::sink::BeylaSink;
use crate::metrics::Counters;
use crate::store::writer::WriterSender;

/// How often the agent's config file is checked for a changed `beyla:` section.
pub const CONFIG_POLL: Duration = Duration::from_secs(5);

/// Re-reads the `beyla:` section (the same file, environment and flags the
/// agent started with). Supplied by the binary; `None` disables reloads.
pub type Reload = Arc<dyn Fn() -> Result<BeylaConfig, String> + Send + Sync>;

/// What the Beyla manager needs besides the agent config.
#[derive(Clone, Default)]
pub struct BeylaOptions {
    /// Host readings to assess instead of reading `/proc` and `/sys` (tests).
    pub readings: Option<HostReadings>,
    /// `$CORAL_HOME`, for `$CORAL_HOME/bin/beyla`.
    pub coral_home: Option<PathBuf>,
    /// Reloads the `beyla:` section when the config file changes.
    pub reload: Option<Reload>,
}

/// Beyla as run by the agent.
pub struct BeylaHandle {
    status: BeylaStatus,
    sink: Option<Arc<BeylaSink>>,
    supervisor: Option<Arc<Supervisor>>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    /// The config watcher, stopped first (it holds the supervisor).
    reload: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
}

/// Everything [`start`] needs from the agent.
pub struct AgentSide<'a> {
    /// The agent's configuration.
    pub config: &'a AgentConfig,
    /// The store writer.
    pub writer: WriterSender,
    /// The agent's counters.
    pub counters: Arc<Counters>,
    /// Ports of the agent (and colony) that Beyla must not instrument.
    pub own_ports: Vec<u16>,
}

fn disabled(reason: String) -> BeylaHandle {
    tracing::warn!(source = "beyla", %reason, "Beyla is disabled; the agent keeps collecting OTLP");
    BeylaHandle {
        status: BeylaStatus::disabled(reason),
        sink: None,
        supervisor: None,
        stop: CancellationToken::new(),
        tasks: JoinSet::new(),
        reload: None,
    }
}

fn policy(cfg: &BeylaConfig) -> RestartPolicy {
    RestartPolicy {
        backoff_initial: cfg.restart.backoff_initial,
        backoff_max: cfg.restart.backoff_max,
        stable_after: cfg.restart.stable_after,
        max_rapid_failures: cfg.restart.max_rapid_failures,
        stop_timeout: cfg.restart.stop_timeout,
    }
}

/// The protocols a config enables, as owned strings.
fn enabled_protocols(cfg: &BeylaConfig) -> Vec<String> {
    cfg.protocols
        .enabled()
        .into_iter()
        .map(str::to_owned)
        .collect()
}

/// Finds, assesses, configures and starts Beyla (see the module docs).
pub async fn start(agent: AgentSide<'_>, options: BeylaOptions) -> BeylaHandle {
    let cfg = &agent.config.beyla;
    if !cfg.enabled {
        return disabled("beyla.enabled is false".into());
    }
    let mode = agent.config.mode;
    if mode != coral_config::AgentMode::Agent {
        // Push modes run the OTLP receivers only: the colony cannot poll
        // them, and Beyla's rows have no push path.
        return disabled(format!(
            "agent.mode is {}: Beyla runs only in agent mode (the colony polls its rows); run `coral agent serve --mode=agent` on hosts to instrument",
            mode.as_str()
        ));
    }
    let coral_home = options
        .coral_home
        .clone()
        .or_else(|| agent.config.data_dir.parent().map(PathBuf::from))
        .unwrap_or_default();
    let found = match locate::locate(&Search::from_env(cfg.binary.clone(), coral_home)) {
        Ok(found) => found,
        Err(error) => {
            // The places searched are `coral beyla check`'s to list.
            tracing::debug!(source = "beyla", %error, "no usable Beyla binary");
            return disabled(error.short_reason());
        }
    };
    let readings = match options.readings.clone() {
        Some(r) => r,
        None => match HostReadings::read() {
            Ok(r) => r,
            Err(error) => return disabled(format!("cannot assess this host: {error}")),
        },
    };
    let assessment = assess(&readings, &enabled_protocols(cfg));
    let base = base_status(&readings, &assessment, &found.path);
    if assessment.mode == Mode::Disabled {
        let handle = disabled(assessment.reason.clone());
        handle.status.update(|s| {
            *s = coral_proto::common::BeylaCapabilities {
                state: "disabled".into(),
                ..base
            }
        });
        return handle;
    }
    let version = locate::version(&found.path).await.unwrap_or_default();

    // The private receiver Beyla exports to: loopback, any free port.
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", 0)).await {
        Ok(l) => l,
        Err(error) => {
            return disabled(format!(
                "cannot bind a loopback port for Beyla's OTLP: {error}"
            ));
        }
    };
    let private: SocketAddr = listener
        .local_addr()
        .expect("bound listener has an address");
    let mut own_ports = agent.own_ports.clone();
    own_ports.push(private.port());
    let ctx = GenContext {
        otlp_endpoint: format!("http://{private}"),
        exclude_exe_paths: std::env::current_exe()
            .map(|p| vec![p.display().to_string()])
            .unwrap_or_default(),
        exclude_ports: own_ports,
        protocols: assessment.protocols.clone(),
        tracing: assessment.tracing,
        agent_id: agent.config.agent_id.clone(),
    };
    let generated = match config_gen::generate(cfg, &ctx) {
        Ok(g) => g,
        Err(error) => return disabled(format!("cannot write Beyla's config: {error}")),
    };
    let work_dir = agent.config.data_dir.join("beyla");
    if let Err(error) = std::fs::create_dir_all(&work_dir) {
        return disabled(format!("cannot create {}: {error}", work_dir.display()));
    }

    let status = BeylaStatus::default();
    status.update(|s| {
        *s = coral_proto::common::BeylaCapabilities {
            version: version.clone(),
            state: "starting".into(),
            ..base
        }
    });
    let sink = Arc::new(BeylaSink::new(
        cfg,
        agent.config.telemetry.queue_spans,
        agent.writer.clone(),
        agent.counters.clone(),
    ));
    let stop = CancellationToken::new();
    let mut tasks = JoinSet::new();
    {
        let (sink, stop) = (sink.clone(), stop.clone());
        tasks.spawn(async move {
            // One local exporter: a few connections, Beyla's largest batches.
            let limits = crate::receiver::ReceiverLimits::new(64 << 20, 64);
            if let Err(error) = crate::receiver::http::serve(listener, sink, limits, stop).await {
                tracing::error!(%error, "Beyla's private OTLP receiver stopped");
            }
        });
    }
    {
        let (sink, stop) = (sink.clone(), stop.clone());
        tasks.spawn(async move {
            let mut tick = tokio::time::interval(crate::runtime::FLUSH_TICK);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tick.tick() => sink.flush(false),
                }
            }
        });
    }
    tracing::info!(
        source = "beyla",
        binary = %found.path.display(),
        found_by = %found.source,
        %version,
        mode = assessment.mode.as_str(),
        protocols = ?assessment.protocols,
        tracing = assessment.tracing,
        receiver = %private,
        "starting Beyla: {}",
        assessment.summary
    );
    let spec = LaunchSpec {
        binary: found.path.clone(),
        config_yaml: generated.yaml,
        env: generated.env,
        extra_args: Vec::new(),
        work_dir: work_dir.clone(),
    };
    let supervisor = Arc::new(supervise::spawn(spec, policy(cfg)));
    watch_state(&mut tasks, &supervisor, &status, &stop);
    let mut watcher = None;
    if let (Some(reload), Some(path)) = (options.reload.clone(), agent.config.source.clone()) {
        let reconf = Reconfigure {
            reload,
            path,
            current: cfg.clone(),
            ctx,
            binary: found.path,
            work_dir,
        };
        let (sup, reload_stop) = (supervisor.clone(), CancellationToken::new());
        let token = reload_stop.clone();
        watcher = Some((
            reload_stop,
            tokio::spawn(async move { reconf.run(sup, token).await }),
        ));
    }
    BeylaHandle {
        status,
        sink: Some(sink),
        supervisor: Some(supervisor),
        stop,
        tasks,
        reload: watcher,
    }
}

fn base_status(
    readings: &HostReadings,
    assessment: &Assessment,
    binary: &std::path::Path,
) -> coral_proto::common::BeylaCapabilities {
    coral_proto::common::BeylaCapabilities {
        enabled: assessment.mode != Mode::Disabled,
        version: String::new(),
        supported_protocols: assessment.protocols.clone(),
        supported_runtimes: ["go", "java", "python", "nodejs", "dotnet", "ruby", "rust"]
            .map(str::to_owned)
            .to_vec(),
        tracing_enabled: assessment.tracing,
        mode: assessment.mode.as_str().to_owned(),
        reason: assessment.reason.clone(),
        state: String::new(),
        restarts: 0,
        last_error: String::new(),
        kernel: readings.kernel_release.clone(),
        btf: readings.btf,
        capabilities: assessment.capabilities.clone(),
        binary: binary.display().to_string(),
        summary: assessment.summary.clone(),
    }
}

/// Mirrors the supervisor's state into the shared status.
fn watch_state(
    tasks: &mut JoinSet<()>,
    supervisor: &Supervisor,
    status: &BeylaStatus,
    stop: &CancellationToken,
) {
    let mut rx = supervisor.watch();
    let (status, stop) = (status.clone(), stop.clone());
    tasks.spawn(async move {
        loop {
            {
                let now = rx.borrow_and_update().clone();
                status.update(|s| {
                    s.state = now.state.as_str().to_owned();
                    s.restarts = now.restarts;
                    s.last_error = now.last_error.clone().unwrap_or_default();
                });
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    });
}

/// Restarts Beyla with a new config when the `beyla:` section changes.
struct Reconfigure {
    reload: Reload,
    path: PathBuf,
    current: BeylaConfig,
    ctx: GenContext,
    binary: PathBuf,
    work_dir: PathBuf,
}

impl Reconfigure {
    fn modified(&self) -> Option<SystemTime> {
        std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok()
    }

    async fn run(mut self, supervisor: Arc<Supervisor>, stop: CancellationToken) {
        let mut seen = self.modified();
        let mut tick = tokio::time::interval(CONFIG_POLL);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let now = self.modified();
            if now == seen {
                continue;
            }
            seen = now;
            let next = match (self.reload)() {
                Ok(next) => next,
                Err(error) => {
                    tracing::error!(source = "beyla", path = %self.path.display(), %error,
                        "config file changed but cannot be loaded; Beyla keeps its current config");
                    continue;
                }
            };
            if next == self.current {
                continue;
            }
            // `ctx.protocols` is what the kernel allows of the protocols
            // enabled at start; `generate` intersects it with `next`'s.
            match config_gen::generate(&next, &self.ctx) {
                Ok(generated) => {
                    tracing::info!(source = "beyla", path = %self.path.display(),
                        "beyla: section changed; restarting Beyla with the new config");
                    supervisor
                        .reconfigure(LaunchSpec {
                            binary: self.binary.clone(),
                            config_yaml: generated.yaml,
                            env: generated.env,
                            extra_args: Vec::new(),
                            work_dir: self.work_dir.clone(),
                        })
                        .await;
                    self.current = next;
                }
                Err(error) => tracing::error!(source = "beyla", %error,
                    "changed beyla: section cannot be expressed for Beyla; keeping the current config"),
            }
        }
    }
}

impl BeylaHandle {
    /// The shared status.
    pub fn status(&self) -> BeylaStatus {
        self.status.clone()
    }

    /// Writes Beyla's closed minutes (every open minute with `force`).
    pub fn flush(&self, force: bool) {
        if let Some(sink) = &self.sink {
            sink.flush(force);
        }
    }

    /// Stops Beyla (SIGTERM, then SIGKILL), its receiver and timers, and
    /// flushes every open minute to the store.
    ///
    /// Order matters: the config watcher first (it shares the supervisor),
    /// then Beyla, whose last export on SIGTERM still reaches the private
    /// receiver, then the receiver and timers.
    pub async fn stop(mut self) {
        if let Some((token, task)) = self.reload.take() {
            token.cancel();
            let _ = task.await;
        }
        if let Some(supervisor) = self.supervisor.take() {
            match Arc::try_unwrap(supervisor) {
                Ok(supervisor) => supervisor.stop().await,
                Err(_) => tracing::error!(
                    source = "beyla",
                    "Beyla supervisor still shared at stop; it is killed when dropped"
                ),
            }
        }
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        if let Some(sink) = &self.sink {
            sink.flush(true);
        }
        self.status.update(|s| {
            if s.state != "disabled" {
                s.state = "stopped".into();
            }
        });
    }
}
