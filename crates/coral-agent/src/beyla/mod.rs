//! Beyla inside the agent: the glue between `coral_beyla` (finding,
//! assessing, configuring and supervising Beyla; transforming its OTLP) and
//! the agent's receivers and store.
//!
//! ```text
//! manager: locate ─▶ caps ─▶ config_gen ─▶ supervise ──▶ beyla child
//!                                                           │ OTLP/HTTP
//!                          private receiver 127.0.0.1:<any> ◀┘
//!                                   │
//!                    sink: transform ─▶ minute window ─▶ store writer (Beyla sequence)
//! ```
//!
//! - [`manager`]: start (or explain why not), watch, reconfigure, stop.
//! - [`sink`]: the private receiver's sink: transform, window, store.
//! - [`BeylaStatus`]: what `GetStatus`, `/status` and the colony see.

use std::sync::{Arc, Mutex};

use coral_proto::common::BeylaCapabilities;
use tokio::sync::Notify;

/// Shared, always-current Beyla status (detection, mode, supervisor state).
/// Changes are signalled, so the colony link can report them at once
/// instead of at the next heartbeat.
#[derive(Clone, Default)]
pub struct BeylaStatus(Arc<Shared>);

#[derive(Default)]
struct Shared {
    caps: Mutex<BeylaCapabilities>,
    changed: Notify,
}

impl BeylaStatus {
    /// A status saying Beyla is disabled for `reason`.
    pub fn disabled(reason: impl Into<String>) -> BeylaStatus {
        let reason = reason.into();
        let status = BeylaStatus::default();
        *status.lock() = BeylaCapabilities {
            mode: "disabled".into(),
            state: "disabled".into(),
            summary: format!("Beyla off: {reason}"),
            reason,
            ..Default::default()
        };
        status
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BeylaCapabilities> {
        self.0
            .caps
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The current status.
    pub fn get(&self) -> BeylaCapabilities {
        self.lock().clone()
    }

    /// Changes the status in place; a real change wakes [`Self::changed`].
    pub fn update(&self, f: impl FnOnce(&mut BeylaCapabilities)) {
        let mut caps = self.lock();
        let before = caps.clone();
        f(&mut caps);
        if *caps != before {
            self.0.changed.notify_one();
        }
    }

    /// Resolves at the next change, or at once if the status changed since
    /// the last call resolved.
    pub async fn changed(&self) {
        self.0.changed.notified().await;
    }
}

pub mod manager;
pub mod sink;

pub use manager::{AgentSide, BeylaHandle, BeylaOptions, Reload};
pub use sink::BeylaSink;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_real_changes_are_signalled() {
        // A zero timeout polls the future once: Ok means it was ready.
        let ready = |status: &BeylaStatus| {
            let status = status.clone();
            async move {
                tokio::time::timeout(std::time::Duration::ZERO, status.changed())
                    .await
                    .is_ok()
            }
        };
        let status = BeylaStatus::disabled("not installed");
        status.update(|s| s.state = "disabled".into());
        assert!(!ready(&status).await, "an update that changes nothing");
        status.update(|s| s.state = "running".into());
        assert!(ready(&status).await, "a change made before anyone waits");
        assert!(!ready(&status).await, "one change wakes once");
        assert_eq!(status.get().state, "running");
    }
}
