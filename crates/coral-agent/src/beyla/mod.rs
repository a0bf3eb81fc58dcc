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

/// Shared, always-current Beyla status (detection, mode, supervisor state).
#[derive(Clone, Default)]
pub struct BeylaStatus(Arc<Mutex<BeylaCapabilities>>);

impl BeylaStatus {
    /// A status saying Beyla is disabled for `reason`.
    pub fn disabled(reason: impl Into<String>) -> BeylaStatus {
        let reason = reason.into();
        BeylaStatus(Arc::new(Mutex::new(BeylaCapabilities {
            mode: "disabled".into(),
            state: "disabled".into(),
            summary: format!("Beyla disabled: {reason}"),
            reason,
            ..Default::default()
        })))
    }

    /// The current status.
    pub fn get(&self) -> BeylaCapabilities {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// Changes the status in place.
    pub fn update(&self, f: impl FnOnce(&mut BeylaCapabilities)) {
        f(&mut self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()));
    }
}

pub mod manager;
pub mod sink;

pub use manager::{AgentSide, BeylaHandle, BeylaOptions, Reload};
pub use sink::BeylaSink;
