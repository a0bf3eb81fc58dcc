//! The supervising task: start, watch, restart with backoff, give up, stop.

use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot, watch};

use super::child::{Exited, Run};
use super::{Command, LaunchSpec, RestartPolicy, State, Status};

/// What ended a run.
enum Next {
    /// Beyla exited on its own (or could not start, transiently).
    Exited(Exited),
    /// Beyla cannot start until the spec changes.
    CannotStart(String),
    /// An order from the handle.
    Order(Order),
}

/// An order from the [`super::Supervisor`].
enum Order {
    /// Stop (also when the handle is gone).
    Stop,
    /// Restart with a new spec; acknowledge once it started (or failed to).
    Reconfigure(Box<LaunchSpec>, oneshot::Sender<()>),
}

/// Publishes status changes.
struct Publisher {
    tx: watch::Sender<Status>,
}

impl Publisher {
    fn set(&self, state: State, change: impl FnOnce(&mut Status)) {
        self.tx.send_modify(|s| {
            if s.state != state {
                s.since = SystemTime::now();
            }
            s.state = state;
            s.pid = None;
            s.config_path = None;
            s.retry_in = None;
            change(s);
        });
    }

    fn restarts(&self) -> u32 {
        self.tx.borrow().restarts
    }
}

fn order(cmd: Option<Command>) -> Order {
    match cmd {
        None | Some(Command::Stop) => Order::Stop,
        Some(Command::Reconfigure(spec, ack)) => Order::Reconfigure(spec, ack),
    }
}

/// Runs until stopped; see the module docs of [`super`] for the behaviour.
pub(super) async fn supervise(
    mut spec: LaunchSpec,
    policy: RestartPolicy,
    mut commands: mpsc::Receiver<Command>,
    tx: watch::Sender<Status>,
) {
    let status = Publisher { tx };
    let max_rapid = policy.max_rapid_failures.max(1);
    let mut rapid = 0u32;
    let mut backoff = policy.backoff_initial;
    let mut pending_ack: Option<oneshot::Sender<()>> = None;

    loop {
        status.set(State::Starting, |_| {});
        let next = match Run::start(&spec).await {
            Ok(mut run) => {
                tracing::info!(
                    pid = run.pid,
                    config = %run.config_path.display(),
                    binary = %spec.binary.display(),
                    "beyla started"
                );
                status.set(State::Running, |s| {
                    s.pid = Some(run.pid);
                    s.config_path = Some(run.config_path.clone());
                });
                ack(&mut pending_ack);
                tokio::select! {
                    exit = run.wait() => Next::Exited(run.finish(exit).await),
                    cmd = commands.recv() => {
                        let order = order(cmd);
                        let exited = run.terminate(policy.stop_timeout).await;
                        tracing::info!(exit = %exited.description, "beyla stopped");
                        Next::Order(order)
                    }
                }
            }
            Err(e) if e.is_permanent() => Next::CannotStart(e.to_string()),
            Err(e) => Next::Exited(Exited {
                started: false,
                description: e.to_string(),
                ran_for: Duration::ZERO,
                last_stderr: None,
            }),
        };

        let order = match next {
            Next::Exited(exited) => {
                let error = exited.error_text();
                tracing::warn!(
                    exit = %exited.description,
                    ran_for_ms = exited.ran_for.as_millis() as u64,
                    last_stderr = exited.last_stderr.as_deref().unwrap_or(""),
                    "beyla exited unexpectedly"
                );
                if exited.ran_for >= policy.stable_after {
                    rapid = 0;
                    backoff = policy.backoff_initial;
                } else {
                    rapid += 1;
                }
                if rapid >= max_rapid {
                    give_up(&status, rapid, &policy, error);
                    ack(&mut pending_ack);
                    order(commands.recv().await)
                } else {
                    let delay = backoff;
                    backoff = backoff.saturating_mul(2).min(policy.backoff_max);
                    let restarts = status.restarts() + 1;
                    tracing::warn!(
                        delay_ms = delay.as_millis() as u64,
                        restarts,
                        failures_in_a_row = rapid,
                        "restarting beyla in {delay:?}"
                    );
                    status.set(State::Restarting, |s| {
                        s.restarts = restarts;
                        s.last_error = Some(error);
                        s.retry_in = Some(delay);
                    });
                    ack(&mut pending_ack);
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        cmd = commands.recv() => order(cmd),
                    }
                }
            }
            Next::CannotStart(error) => {
                tracing::error!(error = %error, "beyla cannot start");
                status.set(State::Failed, |s| s.last_error = Some(error));
                ack(&mut pending_ack);
                order(commands.recv().await)
            }
            Next::Order(order) => order,
        };

        match order {
            Order::Reconfigure(new_spec, ack) => {
                tracing::info!(
                    binary = %new_spec.binary.display(),
                    "beyla configuration changed; starting it with the new configuration"
                );
                spec = *new_spec;
                rapid = 0;
                backoff = policy.backoff_initial;
                pending_ack = Some(ack);
            }
            Order::Stop => {
                status.set(State::Stopped, |_| {});
                tracing::info!("beyla supervisor stopped");
                return;
            }
        }
    }
}

/// Enters [`State::Failed`].
fn give_up(status: &Publisher, failures: u32, policy: &RestartPolicy, error: String) {
    tracing::error!(
        failures,
        last_error = %error,
        "beyla failed {failures} times in a row, each within {:?} of starting; giving up until \
         its configuration changes or the agent restarts",
        policy.stable_after
    );
    status.set(State::Failed, |s| s.last_error = Some(error));
}

fn ack(pending: &mut Option<oneshot::Sender<()>>) {
    if let Some(ack) = pending.take() {
        let _ = ack.send(());
    }
}
