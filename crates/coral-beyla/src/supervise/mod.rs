//! Running Beyla as a supervised child process.
//!
//! [`spawn`] starts a tokio task that owns Beyla for its whole life:
//!
//! - **Start**: the config is written to `<work_dir>/beyla-<n>.yaml` (mode
//!   0600) and Beyla runs as `<binary> -config <file> <extra args>` with the
//!   spec's environment added to the agent's, in a process group of its own.
//!   `BEYLA_CONFIG_PATH` (which Beyla lets override `-config`) and its OBI
//!   twin `OTEL_EBPF_CONFIG_PATH` are set to the same file, so a stray value
//!   in the agent's environment cannot point Beyla elsewhere.
//! - **Output**: each stdout line (where Beyla logs) becomes an `info` event
//!   and each stderr line a `warn` event, with target `beyla` and field
//!   `source = "beyla"`; lines are cut at [`MAX_LINE_BYTES`].
//! - **Restart**: any exit the supervisor did not ask for (even code 0: Beyla
//!   is meant to keep running) is restarted after an exponential backoff
//!   (`backoff_initial`, doubling up to `backoff_max`). A run that lasted
//!   `stable_after` resets the backoff and the failure count. After
//!   `max_rapid_failures` short runs in a row the supervisor gives up: the
//!   state becomes [`State::Failed`] with the exit status and Beyla's last
//!   stderr line in `last_error`, and it stays there until
//!   [`Supervisor::reconfigure`] or [`Supervisor::stop`].
//! - **Start errors**: a missing or non-executable binary fails at once (no
//!   retry can fix it); other spawn errors count as a short run.
//! - **Reconfigure**: a graceful stop, then a start with the new spec and a
//!   fresh failure count.
//! - **Stop**: `SIGTERM` to the process group, `SIGKILL` after `stop_timeout`,
//!   then the config file is removed. Dropping the [`Supervisor`] instead kills
//!   the group with `SIGKILL` at once and removes the file: Beyla never
//!   outlives its supervisor.
//!
//! Lifecycle events (start with pid and config path, exit status, restart and
//! delay, give-up, stop) are logged at info, warn and error for audit.

mod child;
mod run;

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

/// Longest output line kept, in bytes; the rest of a longer line is dropped.
pub const MAX_LINE_BYTES: usize = 4096;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchSpec {
    /// The Beyla binary (see [`crate::locate`]).
    pub binary: PathBuf,
    /// Beyla's YAML config, written to a file for each run.
    pub config_yaml: String,
    /// Environment variables added to the agent's own.
    pub env: Vec<(String, String)>,
    /// Arguments after `-config <file>`.
    pub extra_args: Vec<String>,
    /// Where config files go (`beyla-<n>.yaml`, removed when the run ends).
    /// Created if missing.
    pub work_dir: PathBuf,
}

/// When and how often to restart, and how long to wait when stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RestartPolicy {
    /// The first restart delay (1 s).
    pub backoff_initial: Duration,
    /// The longest restart delay (60 s).
    pub backoff_max: Duration,
    /// A run at least this long resets the backoff and failure count (60 s).
    pub stable_after: Duration,
    /// Short runs in a row before giving up (5).
    pub max_rapid_failures: u32,
    /// How long a `SIGTERM` may take before `SIGKILL` (10 s).
    pub stop_timeout: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            max_rapid_failures: 5,
            stop_timeout: Duration::from_secs(10),
        }
    }
}

/// The supervisor's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Writing the config and starting the process.
    Starting,
    /// Beyla is running.
    Running,
    /// Beyla exited; waiting `retry_in` before starting it again.
    Restarting,
    /// Gave up (or cannot start); see `last_error`.
    Failed,
    /// Stopped on request.
    Stopped,
}

impl State {
    /// `"starting"`, `"running"`, … as in `BeylaCapabilities.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Running => "running",
            State::Restarting => "restarting",
            State::Failed => "failed",
            State::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A snapshot of the supervisor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The current state.
    pub state: State,
    /// Beyla's pid (also its process group id) while it runs.
    pub pid: Option<u32>,
    /// The config file of the current run, while it runs.
    pub config_path: Option<PathBuf>,
    /// Restarts after unexpected exits so far (reconfigurations not counted).
    pub restarts: u32,
    /// The last failure: exit status and last stderr line, or a start error.
    pub last_error: Option<String>,
    /// The delay before the next start, in state [`State::Restarting`].
    pub retry_in: Option<Duration>,
    /// When the state last changed.
    pub since: SystemTime,
}

impl Status {
    fn initial() -> Self {
        Status {
            state: State::Starting,
            pid: None,
            config_path: None,
            restarts: 0,
            last_error: None,
            retry_in: None,
            since: SystemTime::now(),
        }
    }
}

enum Command {
    Reconfigure(Box<LaunchSpec>, oneshot::Sender<()>),
    Stop,
}

/// The handle to a supervised Beyla; see the module docs.
#[derive(Debug)]
pub struct Supervisor {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<Status>,
    task: Option<JoinHandle<()>>,
}

/// Starts supervising Beyla in a new tokio task and returns at once; the
/// first state is [`State::Starting`].
///
/// # Panics
///
/// Outside a tokio runtime.
pub fn spawn(spec: LaunchSpec, policy: RestartPolicy) -> Supervisor {
    let (commands, rx) = mpsc::channel(4);
    let (tx, status) = watch::channel(Status::initial());
    let task = tokio::spawn(run::supervise(spec, policy, rx, tx));
    Supervisor {
        commands,
        status,
        task: Some(task),
    }
}

impl Supervisor {
    /// The current status.
    pub fn status(&self) -> Status {
        self.status.borrow().clone()
    }

    /// A receiver that sees every status change (the latest one, when several
    /// happen between two looks).
    pub fn watch(&self) -> watch::Receiver<Status> {
        self.status.clone()
    }

    /// Restarts Beyla gracefully with `spec` (a config change). Returns once
    /// the new run was started, or failed to start; from state
    /// [`State::Failed`] this starts again with a fresh failure count.
    pub async fn reconfigure(&self, spec: LaunchSpec) {
        let (ack, done) = oneshot::channel();
        if self
            .commands
            .send(Command::Reconfigure(Box::new(spec), ack))
            .await
            .is_ok()
        {
            let _ = done.await;
        }
    }

    /// Stops Beyla gracefully (see the module docs) and waits until it is gone
    /// and its config file removed.
    pub async fn stop(mut self) {
        let _ = self.commands.send(Command::Stop).await;
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            // Dropping the task's state kills Beyla's group and removes the
            // config file (see `child::Cleanup`).
            task.abort();
        }
    }
}
