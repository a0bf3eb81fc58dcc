//! The agent's `beyla:` section: [`BeylaConfig`] and its parts.
//!
//! Every setting here either reaches Beyla (through the config that
//! `coral-beyla` generates) or is enforced by Coral itself (the supervisor,
//! the transformer or the agent's store); each field says which. Settings
//! that neither Beyla nor Coral could honour are rejected when the file is
//! loaded, with the reason and what to use instead (see `beyla_file.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::beyla_kinds::{BeylaLogLevel, PortSet, UnmatchedRoutes};

/// The agent's `beyla:` section, validated, with every default filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct BeylaConfig {
    /// Whether the agent runs Beyla (`enabled`; default true). Beyla still
    /// only runs when a binary is found and the kernel allows it.
    pub enabled: bool,
    /// Explicit path of the Beyla binary (`binary`). The `BEYLA_PATH`
    /// environment variable still wins at run time; this crate does not
    /// read it.
    pub binary: Option<PathBuf>,
    /// Which processes Beyla instruments (`discovery.services`), in file
    /// order. Empty = every process listening on a port, except Coral and
    /// Beyla themselves.
    pub services: Vec<BeylaService>,
    /// Per-protocol settings (`protocols`).
    pub protocols: BeylaProtocols,
    /// Resource attributes added to everything Beyla reports (`attributes`),
    /// sorted by key. Keys are `[A-Za-z0-9._-]+`; `service.name` and
    /// `coral.agent.id` are reserved.
    pub attributes: BTreeMap<String, String>,
    /// Fraction of traces Beyla exports (`sampling.rate`, in (0, 1]; default
    /// 1.0), decided from the trace id. RED metrics are never sampled.
    pub sampling_rate: f64,
    /// Resource limits (`limits`).
    pub limits: BeylaLimits,
    /// How long the agent keeps Beyla rows locally
    /// (`storage_retention_hours`, whole hours ≥ 1; default 1h). Enforced by
    /// the agent's store.
    pub storage_retention: Duration,
    /// How often Beyla exports metrics (`export_interval`, 1s–1m; default
    /// 15s): Beyla's `otel_metrics_export.interval`.
    pub export_interval: Duration,
    /// How the supervisor restarts Beyla (`restart`). Enforced by Coral.
    pub restart: BeylaRestart,
    /// Beyla's own log level (`log_level`; default info): Beyla's `log_level`.
    pub log_level: BeylaLogLevel,
}

impl Default for BeylaConfig {
    /// Every default listed on the fields.
    fn default() -> Self {
        BeylaConfig {
            enabled: true,
            binary: None,
            services: Vec::new(),
            protocols: BeylaProtocols::default(),
            attributes: BTreeMap::new(),
            sampling_rate: 1.0,
            limits: BeylaLimits::default(),
            storage_retention: Duration::from_secs(3600),
            export_interval: Duration::from_secs(15),
            restart: BeylaRestart::default(),
            log_level: BeylaLogLevel::Info,
        }
    }
}

/// One entry of `beyla.discovery.services`: a process selector.
///
/// A process matches when it matches **every** criterion given (Beyla's
/// `discovery.instrument` semantics); at least one criterion is set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BeylaService {
    /// Service name Beyla reports for matching processes (`name`); `None` =
    /// Beyla's own choice (executable name, or the Kubernetes owner).
    pub name: Option<String>,
    /// Processes listening on any of these ports (`open_port`).
    pub open_ports: Option<PortSet>,
    /// Glob on the full executable path (`exe_path`, or `process_name: x`
    /// written as `*/x`).
    pub exe_path: Option<String>,
    /// Glob on the Kubernetes namespace (`k8s_namespace`).
    pub k8s_namespace: Option<String>,
    /// Glob on the Kubernetes pod name (`k8s_pod_name`).
    pub k8s_pod_name: Option<String>,
    /// Pod labels (name → glob on the value) that must all match
    /// (`k8s_pod_label`, also spelled `k8s_pod_labels`).
    pub k8s_pod_labels: BTreeMap<String, String>,
}

/// `beyla.protocols`: which protocols Beyla instruments, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeylaProtocols {
    /// HTTP (`http`; enabled by default).
    pub http: HttpProtocol,
    /// gRPC (`grpc.enabled`; default true).
    pub grpc: bool,
    /// SQL clients (`sql`; enabled by default).
    pub sql: SqlProtocol,
    /// Kafka (`kafka.enabled`; default false).
    pub kafka: bool,
    /// Redis (`redis.enabled`; default false).
    pub redis: bool,
}

impl BeylaProtocols {
    /// The enabled protocols in Beyla's `instrumentations` spelling, in the
    /// fixed order http, grpc, sql, redis, kafka.
    pub fn enabled(&self) -> Vec<&'static str> {
        [
            ("http", self.http.enabled),
            ("grpc", self.grpc),
            ("sql", self.sql.enabled),
            ("redis", self.redis),
            ("kafka", self.kafka),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect()
    }
}

impl Default for BeylaProtocols {
    fn default() -> Self {
        BeylaProtocols {
            http: HttpProtocol::default(),
            grpc: true,
            sql: SqlProtocol::default(),
            kafka: false,
            redis: false,
        }
    }
}

/// `beyla.protocols.http`.
///
/// `capture_headers` is accepted only as `false` (Beyla's default), so it
/// has no field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProtocol {
    /// Whether HTTP is instrumented (`enabled`; default true).
    pub enabled: bool,
    /// Route templates such as `/api/v1/users/:id` or `/users/{id}`
    /// (`route_patterns`): Beyla's `routes.patterns`, in file order.
    pub route_patterns: Vec<String>,
    /// What Beyla reports as the route of a path no pattern matches
    /// (`unmatched_routes`; default `low-cardinality`): Beyla's
    /// `routes.unmatched`.
    pub unmatched_routes: UnmatchedRoutes,
}

impl Default for HttpProtocol {
    fn default() -> Self {
        HttpProtocol {
            enabled: true,
            route_patterns: Vec::new(),
            unmatched_routes: UnmatchedRoutes::LowCardinality,
        }
    }
}

/// `beyla.protocols.sql`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SqlProtocol {
    /// Whether SQL clients are instrumented (`enabled`; default true).
    pub enabled: bool,
    /// Whether literals in query texts are replaced by `?` before they are
    /// stored (`obfuscate_queries`; default true). Enforced by Coral's
    /// transformer: Beyla has no such setting and exports `db.query.text`
    /// as captured.
    pub obfuscate_queries: bool,
}

impl Default for SqlProtocol {
    fn default() -> Self {
        SqlProtocol {
            enabled: true,
            obfuscate_queries: true,
        }
    }
}

/// `beyla.limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeylaLimits {
    /// Distinct HTTP routes kept per service before the rest are folded
    /// into one overflow route (`max_routes_per_service`, ≥ 1; default 200).
    /// Enforced by Coral's transformer, not by Beyla.
    pub max_routes_per_service: usize,
    /// Events Beyla accumulates in its eBPF ring buffer before waking its
    /// user-space reader (`wakeup_len`, ≥ 1): Beyla's `ebpf.wakeup_len`.
    /// Higher values cost less CPU under load but delay data on quiet
    /// hosts. `None` = Beyla's default.
    pub wakeup_len: Option<usize>,
}

impl Default for BeylaLimits {
    fn default() -> Self {
        BeylaLimits {
            max_routes_per_service: 200,
            wakeup_len: None,
        }
    }
}

/// `beyla.restart`: how the supervisor restarts a failing Beyla.
/// Enforced by Coral.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BeylaRestart {
    /// Consecutive runs shorter than `stable_after` after which the
    /// supervisor stops restarting Beyla and reports it failed
    /// (`max_rapid_failures`, 1–1000; default 5).
    pub max_rapid_failures: u32,
    /// First restart delay, doubled after each rapid failure
    /// (`backoff_initial`, ≥ 10ms; default 1s).
    pub backoff_initial: Duration,
    /// Longest restart delay (`backoff_max`, ≥ `backoff_initial`; default 60s).
    pub backoff_max: Duration,
    /// A run this long counts as stable and resets the failure count and the
    /// delay (`stable_after`, ≥ 1s; default 60s).
    pub stable_after: Duration,
    /// How long Beyla gets to exit after SIGTERM before it is killed
    /// (`stop_timeout`, ≥ 100ms; default 10s).
    pub stop_timeout: Duration,
}

impl Default for BeylaRestart {
    fn default() -> Self {
        BeylaRestart {
            max_rapid_failures: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enabled_protocols_in_fixed_order() {
        let mut p = BeylaProtocols::default();
        assert_eq!(p.enabled(), ["http", "grpc", "sql"]);
        p.kafka = true;
        p.http.enabled = false;
        assert_eq!(p.enabled(), ["grpc", "sql", "kafka"]);
    }
}
