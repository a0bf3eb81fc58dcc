//! Coral's Beyla integration.
//!
//! Grafana Beyla is an eBPF auto-instrumentation binary. The agent finds it,
//! checks what the host kernel allows, writes a complete Beyla config from the
//! agent's `beyla:` section, runs and supervises it as a child process, and
//! receives its OTLP on a private loopback endpoint. This crate holds every
//! part of that which does not touch storage:
//!
//! ```text
//! locate ─▶ caps ─▶ config_gen ─▶ supervise ─▶ (beyla child) ─OTLP─▶ transform ─▶ rows
//! ```
//!
//! - [`locate`]: where the `beyla` binary is (`BEYLA_PATH`, config, `$CORAL_HOME/bin`, `$PATH`).
//! - [`install`]: `coral beyla install <tarball>`.
//! - [`caps`]: kernel, BTF and capability readings, and the mode they allow.
//! - [`config_gen`]: the agent's `beyla:` section → Beyla's YAML and environment.
//! - [`supervise`]: the child process: start, logs, restart with backoff, stop.
//! - [`transform`]: Beyla's OTLP metrics (every generation) → one-minute
//!   HTTP/gRPC/SQL histograms; Beyla's spans → trace rows.

pub mod caps;
pub mod config_gen;
pub mod install;
pub mod locate;
pub mod supervise;
pub mod transform;
