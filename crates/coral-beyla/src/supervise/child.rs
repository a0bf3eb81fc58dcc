//! One run of Beyla: its config file, its process group, its output, and
//! stopping it.
//!
//! Beyla is started as the leader of a new process group (`process_group(0)`),
//! so signals go to the group with `killpg` and reach anything Beyla started.
//! A [`Cleanup`] guard owns the group and the config file: if a run is dropped
//! without being waited for (the supervisor was dropped, or the runtime shut
//! down), the guard sends `SIGKILL` to the group and removes the file.
//!
//! Signalling a group after its leader was reaped is safe in practice: Linux
//! does not reuse a process id while a group still uses it, and a group with no
//! members left just answers `ESRCH`.

use std::fmt::Write as _;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio::task::JoinHandle;

use super::{LaunchSpec, MAX_LINE_BYTES};

/// Numbers config files, so two runs never share one.
static CONFIG_SEQ: AtomicU64 = AtomicU64::new(1);

/// How long to wait for the output pipes to drain after Beyla exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error(
        "cannot write Beyla's config file {path} ({source}); check that the work directory \
         exists and is writable by the agent"
    )]
    WriteConfig { path: PathBuf, source: io::Error },
    #[error(
        "cannot start Beyla: {binary} does not exist; install it with `coral beyla install \
         <tarball>` or fix BEYLA_PATH / beyla.binary"
    )]
    NotFound { binary: PathBuf },
    #[error(
        "cannot start Beyla: {binary} exists but its interpreter or loader is missing ({source}); \
         is it built for this architecture?"
    )]
    NoLoader { binary: PathBuf, source: io::Error },
    #[error(
        "cannot start Beyla: {binary} is not executable by the agent ({source}); `chmod 755` it \
         and check that its filesystem is not mounted noexec"
    )]
    NotExecutable { binary: PathBuf, source: io::Error },
    #[error("cannot start Beyla ({binary}): {source}")]
    Spawn { binary: PathBuf, source: io::Error },
}

impl StartError {
    /// Whether retrying cannot help until the binary or config changes.
    pub(super) fn is_permanent(&self) -> bool {
        matches!(
            self,
            StartError::NotFound { .. }
                | StartError::NoLoader { .. }
                | StartError::NotExecutable { .. }
        )
    }
}

/// Kills the group and removes the config file when dropped, unless disarmed.
struct Cleanup {
    pgid: Option<Pid>,
    config: Option<PathBuf>,
}

impl Cleanup {
    fn kill_group(&mut self, signal: Signal) {
        if let Some(pgid) = self.pgid {
            // ESRCH (the group is gone) is the expected answer once it exited.
            let _ = killpg(pgid, signal);
        }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        self.kill_group(Signal::SIGKILL);
        if let Some(path) = self.config.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// How a run ended (or did not start).
#[derive(Debug)]
pub(super) struct Exited {
    /// False when the process could not be started at all.
    pub started: bool,
    /// `exit code 2`, `signal 9 (SIGKILL)`, or why it could not start.
    pub description: String,
    /// How long it ran.
    pub ran_for: Duration,
    /// Its last non-empty stderr line, if any.
    pub last_stderr: Option<String>,
}

impl Exited {
    /// The status plus the last stderr line, for `last_error`.
    pub(super) fn error_text(&self) -> String {
        if !self.started {
            return self.description.clone();
        }
        let mut text = format!(
            "Beyla ended with {} after {:.1?}",
            self.description, self.ran_for
        );
        if let Some(line) = &self.last_stderr {
            let _ = write!(text, "; last stderr line: {line}");
        }
        text
    }
}

/// A running Beyla.
pub(super) struct Run {
    child: tokio::process::Child,
    pub pid: u32,
    pub config_path: PathBuf,
    started: Instant,
    cleanup: Cleanup,
    last_stderr: Arc<Mutex<Option<String>>>,
    readers: Vec<JoinHandle<()>>,
}

impl Run {
    /// Writes the config file and starts `<binary> -config <file> <extra args>`.
    pub(super) async fn start(spec: &LaunchSpec) -> Result<Run, StartError> {
        let n = CONFIG_SEQ.fetch_add(1, Ordering::Relaxed);
        let config_path = spec.work_dir.join(format!("beyla-{n}.yaml"));
        write_config(&spec.work_dir, &config_path, &spec.config_yaml).map_err(|source| {
            StartError::WriteConfig {
                path: config_path.clone(),
                source,
            }
        })?;
        // From here on the guard removes the file whatever happens.
        let mut cleanup = Cleanup {
            pgid: None,
            config: Some(config_path.clone()),
        };

        let mut cmd = Command::new(&spec.binary);
        // The agent's own environment must not override the generated
        // config (an OTEL_EXPORTER_OTLP_ENDPOINT meant for the agent would
        // send Beyla's data elsewhere).
        for (name, _) in std::env::vars_os() {
            if name
                .to_str()
                .is_some_and(crate::config_gen::overrides_generated_config)
            {
                cmd.env_remove(&name);
            }
        }
        cmd.arg("-config")
            .arg(&config_path)
            .args(&spec.extra_args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            // Beyla lets this variable override `-config`; make both agree.
            .env("BEYLA_CONFIG_PATH", &config_path)
            .env("OTEL_EBPF_CONFIG_PATH", &config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = crate::locate::spawn_retrying(&mut cmd)
            .await
            .map_err(|source| {
                let binary = spec.binary.clone();
                match source.kind() {
                    io::ErrorKind::NotFound if !binary.exists() => StartError::NotFound { binary },
                    io::ErrorKind::NotFound => StartError::NoLoader { binary, source },
                    io::ErrorKind::PermissionDenied => StartError::NotExecutable { binary, source },
                    _ => StartError::Spawn { binary, source },
                }
            })?;
        let started = Instant::now();
        let pid = child.id().unwrap_or_default();
        // The child is its own group leader, so its pid is the group id.
        cleanup.pgid = i32::try_from(pid)
            .ok()
            .filter(|p| *p > 0)
            .map(Pid::from_raw);

        let last_stderr = Arc::new(Mutex::new(None));
        let mut readers = Vec::new();
        if let Some(out) = child.stdout.take() {
            readers.push(tokio::spawn(pump(out, Stream::Stdout, None)));
        }
        if let Some(err) = child.stderr.take() {
            readers.push(tokio::spawn(pump(
                err,
                Stream::Stderr,
                Some(last_stderr.clone()),
            )));
        }
        Ok(Run {
            child,
            pid,
            config_path,
            started,
            cleanup,
            last_stderr,
            readers,
        })
    }

    /// Waits for Beyla to exit. Cancel-safe.
    pub(super) async fn wait(&mut self) -> io::Result<ExitStatus> {
        self.child.wait().await
    }

    /// After [`Run::wait`] returned: kills what is left of the group, drains
    /// the output, removes the config file.
    pub(super) async fn finish(mut self, status: io::Result<ExitStatus>) -> Exited {
        let ran_for = self.started.elapsed();
        self.cleanup.kill_group(Signal::SIGKILL);
        self.cleanup.pgid = None;
        for reader in std::mem::take(&mut self.readers) {
            let abort = reader.abort_handle();
            if tokio::time::timeout(DRAIN_TIMEOUT, reader).await.is_err() {
                abort.abort();
            }
        }
        let last_stderr = self
            .last_stderr
            .lock()
            .map(|l| l.clone())
            .unwrap_or_default();
        drop(self.cleanup);
        Exited {
            started: true,
            description: match status {
                Ok(status) => describe(status),
                Err(e) => format!("an unknown status (waiting failed: {e})"),
            },
            ran_for,
            last_stderr,
        }
    }

    /// Stops Beyla: `SIGTERM` to its group, `SIGKILL` after `timeout`.
    pub(super) async fn terminate(mut self, timeout: Duration) -> Exited {
        tracing::info!(
            pid = self.pid,
            "stopping beyla: SIGTERM to its process group"
        );
        self.cleanup.kill_group(Signal::SIGTERM);
        let status = match tokio::time::timeout(timeout, self.child.wait()).await {
            Ok(status) => status,
            Err(_) => {
                tracing::warn!(
                    pid = self.pid,
                    "beyla did not exit within {timeout:?} of SIGTERM; sending SIGKILL to its \
                     process group"
                );
                self.cleanup.kill_group(Signal::SIGKILL);
                self.child.wait().await
            }
        };
        self.finish(status).await
    }
}

/// Creates `dir` if needed and writes `contents` to `path`, readable by the
/// agent's user only (the config may carry exporter credentials).
fn write_config(dir: &Path, path: &Path, contents: &str) -> io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    io::Write::write_all(&mut file, contents.as_bytes())?;
    file.sync_all()
}

/// `exit code 2`, or `signal 9 (SIGKILL)`.
pub(super) fn describe(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit code {code}");
    }
    match status.signal() {
        Some(sig) => match Signal::try_from(sig) {
            Ok(name) => format!("signal {sig} ({name})"),
            Err(_) => format!("signal {sig}"),
        },
        None => status.to_string(),
    }
}

#[derive(Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// Turns one output stream into `tracing` events with `source = "beyla"`.
async fn pump<R: AsyncRead + Unpin>(
    stream: R,
    which: Stream,
    last: Option<Arc<Mutex<Option<String>>>>,
) {
    let mut reader = BufReader::new(stream);
    while let Ok(Some(line)) = read_line_bounded(&mut reader, MAX_LINE_BYTES).await {
        if line.trim().is_empty() {
            continue;
        }
        match which {
            Stream::Stdout => {
                tracing::info!(target: "beyla", source = "beyla", stream = "stdout", "{line}");
            }
            Stream::Stderr => {
                tracing::warn!(target: "beyla", source = "beyla", stream = "stderr", "{line}");
            }
        }
        if let Some(last) = &last
            && let Ok(mut slot) = last.lock()
        {
            *slot = Some(line);
        }
    }
}

/// Reads one line, keeping at most `max` bytes of it (the rest is skipped and
/// marked). `None` at end of stream.
pub(super) async fn read_line_bounded<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    max: usize,
) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let mut truncated = false;
    let mut any = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            if !any {
                return Ok(None);
            }
            break;
        }
        any = true;
        let (chunk, used, done) = match available.iter().position(|b| *b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            buf.extend_from_slice(&chunk[..room]);
            truncated = true;
        } else {
            buf.extend_from_slice(chunk);
        }
        reader.consume(used);
        if done {
            break;
        }
    }
    if buf.last() == Some(&b'\r') {
        buf.pop();
    }
    let mut line = String::from_utf8_lossy(&buf).into_owned();
    if truncated {
        line.push_str(" …[truncated]");
    }
    Ok(Some(line))
}
