//! The agent's `beyla:` section → a complete Beyla configuration file and
//! the environment Beyla runs with ([`generate`]).
//!
//! The file uses Beyla's own YAML schema (grafana/beyla v3:
//! `docs/config-schema.json`, `pkg/beyla/config.go`) and is
//! deterministic: the same inputs give byte-identical output, keys sorted.
//! The supervisor writes it to disk and starts `beyla -config <file>` with
//! [`Generated::env`] added to an environment from which every variable
//! [`overrides_generated_config`] matches has been removed.
//!
//! Where each `beyla:` key goes:
//!
//! | Coral key | Beyla setting |
//! |-----------|---------------|
//! | `discovery.services[i]` | `discovery.instrument[i]` |
//! | `…name` | `…name` (the reported service name) |
//! | `…open_port` | `…open_ports` (`80,8000-8999`) |
//! | `…exe_path` / `…process_name: x` | `…exe_path` (`*/x` for a process name) |
//! | `…k8s_namespace`, `…k8s_pod_name` | same keys |
//! | `…k8s_pod_label` | `…k8s_pod_labels` |
//! | `protocols.<p>.enabled` | `otel_metrics_export.instrumentations` and `otel_traces_export.instrumentations` (intersected with [`GenContext::protocols`]) |
//! | `protocols.http.route_patterns` | `routes.patterns` |
//! | `protocols.http.unmatched_routes` | `routes.unmatched` |
//! | `protocols.http.capture_headers` | only `false` (Beyla's default) is accepted |
//! | `protocols.sql.enabled` | also `attributes.select."db.client.operation.duration".include: ["*"]` (the table, `db.collection.name`, is hidden by default) and, with tracing, `attributes.select.traces.include: [db.query.text]` |
//! | `attributes` | `OTEL_RESOURCE_ATTRIBUTES` (with `coral.agent.id`) |
//! | `sampling.rate` | `otel_traces_export.sampler`: `always_on` at 1.0, else `traceidratio` with `arg` |
//! | `export_interval` | `otel_metrics_export.interval` |
//! | `limits.wakeup_len` | `ebpf.wakeup_len` |
//! | `log_level` | `log_level` (`DEBUG`, `INFO`, `WARN`, `ERROR`) |
//!
//! The remaining keys are enforced by Coral, not Beyla: [`CORAL_SIDE_KEYS`].
//!
//! Fixed choices:
//!
//! - Export is OTLP `http/protobuf` to [`GenContext::otlp_endpoint`] for
//!   both signals, with delta temporality
//!   (`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE=delta`).
//!   Histogram buckets are Beyla's defaults.
//! - Nothing Coral runs is instrumented: `discovery.exclude_instrument`
//!   lists [`GenContext::exclude_exe_paths`] (literal paths),
//!   `*coral*` (any executable whose path contains `coral`), `*beyla`
//!   and the processes listening on [`GenContext::exclude_ports`].
//! - **No `discovery.services`** → every process listening on a port is
//!   instrumented (`open_ports: 1-65535`), minus the exclusions above. An
//!   operator who installs Beyla and runs `coral up` gets RED metrics for
//!   the host's servers without writing a selector; Beyla runs only when a
//!   binary was installed, and `discovery.services` narrows it. Processes
//!   with no listening port (batch jobs) are not instrumented by default.
//! - `db.query.text` is opted in for traces when SQL is instrumented (it
//!   also carries Redis commands when Redis is on). Beyla exports it as
//!   captured; Coral's transformer replaces literals when
//!   `protocols.sql.obfuscate_queries` is true.
//! - The sampler is not parent-based: the decision comes from the trace
//!   id alone, so kept traces are whole across services. It only thins
//!   traces; Beyla's RED metrics are computed from every request.
//! - `OTEL_RESOURCE_ATTRIBUTES` is Beyla's fallback: a process that sets
//!   its own `OTEL_RESOURCE_ATTRIBUTES` gets those instead (Beyla reads
//!   the instrumented process's environment first).

mod discovery;
mod env;
mod schema;

use coral_config::{BeylaConfig, PortSet};

pub use env::{AGENT_ID_ATTRIBUTE, overrides_generated_config};
use schema::{
    Attributes, BeylaYaml, Discovery, Ebpf, MetricsExport, Routes, Sampler, Select, TracesExport,
};

/// The `beyla:` keys that Coral enforces itself instead of passing to
/// Beyla, with what enforces them. Every other key reaches Beyla's file or
/// environment (see the module table).
pub const CORAL_SIDE_KEYS: &[(&str, &str)] = &[
    (
        "beyla.enabled",
        "the agent: whether Beyla is started at all",
    ),
    ("beyla.binary", "locate: which binary is started"),
    (
        "beyla.protocols.sql.obfuscate_queries",
        "the transformer: literals in db.query.text become ?",
    ),
    (
        "beyla.limits.max_routes_per_service",
        "the transformer: routes per service before overflow",
    ),
    (
        "beyla.storage_retention_hours",
        "the agent's store: how long Beyla rows are kept",
    ),
    (
        "beyla.restart",
        "the supervisor: restart policy (every key below it)",
    ),
];

/// Glob excluding every executable whose path contains `coral`.
pub const CORAL_EXE_GLOB: &str = "*coral*";
/// Glob excluding Beyla itself.
pub const BEYLA_EXE_GLOB: &str = "*beyla";
/// Ports instrumented when no `discovery.services` are configured.
pub const ALL_PORTS: &str = "1-65535";

/// What the agent knows at run time that the config file does not say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenContext {
    /// Base URL of the agent's private OTLP/HTTP receiver, e.g.
    /// `http://127.0.0.1:41234`, without a path: Beyla appends
    /// `/v1/metrics` and `/v1/traces`.
    pub otlp_endpoint: String,
    /// Executable paths Beyla must never instrument (the agent's own, …),
    /// taken literally (glob characters are escaped).
    pub exclude_exe_paths: Vec<String>,
    /// Ports of the agent and colony; processes listening on them are not
    /// instrumented. Port 0 is ignored.
    pub exclude_ports: Vec<u16>,
    /// Protocols the kernel allows, in Beyla's spelling (`http`, `grpc`,
    /// `sql`, `redis`, `kafka`); intersected with the enabled ones.
    pub protocols: Vec<String>,
    /// Whether traces are exported at all (false = metrics only).
    pub tracing: bool,
    /// The agent id, sent as the `coral.agent.id` resource attribute.
    pub agent_id: String,
}

/// A generated Beyla configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The YAML file, passed to Beyla as `-config <file>`.
    pub yaml: String,
    /// Environment variables to set for Beyla, sorted by name.
    pub env: Vec<(String, String)>,
}

/// Why no Beyla configuration could be generated.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenError {
    /// `beyla.enabled` is false.
    #[error(
        "Beyla is disabled (`beyla.enabled: false` or CORAL_BEYLA_ENABLED=false) — nothing to generate; set it to true to run Beyla"
    )]
    Disabled,

    /// No enabled protocol is allowed by the kernel.
    #[error(
        "no protocol to instrument: `beyla.protocols` enables [{}] but this host only allows [{}] — enable one of the allowed protocols, or run on a kernel that supports the others",
        enabled.join(", "),
        allowed.join(", ")
    )]
    NoProtocols {
        /// The protocols enabled in the config.
        enabled: Vec<String>,
        /// The protocols the host allows.
        allowed: Vec<String>,
    },

    /// The OTLP endpoint is not a base `http://` / `https://` URL.
    #[error("invalid OTLP endpoint {endpoint:?} for Beyla: {reason}")]
    InvalidEndpoint {
        /// The rejected endpoint.
        endpoint: String,
        /// What is wrong.
        reason: &'static str,
    },

    /// A selector only matches ports that belong to Coral.
    #[error(
        "`beyla.discovery.services[{index}]` selects ports {ports}, which all belong to Coral (excluded from instrumentation) — it would never match; select the service's own port"
    )]
    OnlyCoralPorts {
        /// Index of the entry in `beyla.discovery.services`.
        index: usize,
        /// The entry's ports.
        ports: String,
    },

    /// The YAML writer failed (a bug).
    #[error("cannot write the Beyla configuration as YAML: {0}")]
    Yaml(String),
}

/// Generates Beyla's configuration file and environment from the agent's
/// `beyla:` section and the run-time context.
pub fn generate(cfg: &BeylaConfig, ctx: &GenContext) -> Result<Generated, GenError> {
    if !cfg.enabled {
        return Err(GenError::Disabled);
    }
    let endpoint = check_endpoint(&ctx.otlp_endpoint)?;
    let enabled = cfg.protocols.enabled();
    let protocols: Vec<&'static str> = enabled
        .iter()
        .copied()
        .filter(|p| ctx.protocols.iter().any(|a| a == p))
        .collect();
    if protocols.is_empty() {
        return Err(GenError::NoProtocols {
            enabled: enabled.iter().map(|p| (*p).to_owned()).collect(),
            allowed: ctx.protocols.clone(),
        });
    }
    let excluded_ports = PortSet::new(
        ctx.exclude_ports
            .iter()
            .filter(|&&p| p != 0)
            .map(|&p| (p, p)),
    );
    let traces = ctx.tracing.then(|| TracesExport {
        endpoint: endpoint.clone(),
        instrumentations: protocols.clone(),
        protocol: "http/protobuf",
        sampler: sampler(cfg.sampling_rate),
    });
    // Opt-in attributes: the table of database metrics (hidden by default,
    // and the SQL view groups by it) and the query text of database spans.
    let mut select = std::collections::BTreeMap::new();
    if protocols.contains(&"sql") {
        select.insert(
            "db.client.operation.duration",
            Select { include: vec!["*"] },
        );
        if ctx.tracing {
            select.insert(
                "traces",
                Select {
                    include: vec!["db.query.text"],
                },
            );
        }
    }
    let attributes = (!select.is_empty()).then_some(Attributes { select });
    let doc = BeylaYaml {
        attributes,
        discovery: Discovery {
            exclude_instrument: discovery::exclusions(ctx, excluded_ports.as_ref()),
            instrument: discovery::instrument(&cfg.services, excluded_ports.as_ref())?,
        },
        ebpf: cfg.limits.wakeup_len.map(|wakeup_len| Ebpf { wakeup_len }),
        log_level: cfg.log_level.beyla_name(),
        otel_metrics_export: MetricsExport {
            endpoint,
            instrumentations: protocols,
            interval: go_duration(cfg.export_interval),
            protocol: "http/protobuf",
        },
        otel_traces_export: traces,
        routes: Routes {
            patterns: cfg.protocols.http.route_patterns.clone(),
            unmatched: cfg.protocols.http.unmatched_routes.as_str(),
        },
    };
    let body = serde_saphyr::to_string(&doc).map_err(|e| GenError::Yaml(e.to_string()))?;
    let yaml = format!(
        "# Beyla configuration generated by the Coral agent from its `beyla:` section.\n\
         # Rewritten on every start: edit the agent configuration instead.\n{body}"
    );
    Ok(Generated {
        yaml,
        env: env::vars(&cfg.attributes, &ctx.agent_id),
    })
}

/// Checks that `endpoint` is an `http://` or `https://` base URL and
/// returns it without a trailing `/`.
fn check_endpoint(endpoint: &str) -> Result<String, GenError> {
    let invalid = |reason| GenError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let rest = endpoint
        .strip_prefix("http://")
        .or_else(|| endpoint.strip_prefix("https://"))
        .ok_or_else(|| invalid("expected http://host:port or https://host:port"))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.chars().any(char::is_whitespace) {
        return Err(invalid("the host is missing or contains spaces"));
    }
    if !path.is_empty() {
        return Err(invalid(
            "give the base URL without a path: Beyla appends /v1/metrics and /v1/traces",
        ));
    }
    Ok(endpoint.trim_end_matches('/').to_owned())
}

/// `always_on` at 1.0, else `traceidratio` with the rate as its argument.
fn sampler(rate: f64) -> Sampler {
    if rate >= 1.0 {
        Sampler {
            arg: None,
            name: "always_on",
        }
    } else {
        Sampler {
            arg: Some(format!("{rate}")),
            name: "traceidratio",
        }
    }
}

/// A duration in Go's syntax: `15s`, or `1500ms` when not whole seconds.
fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_base_urls() {
        assert_eq!(
            check_endpoint("http://127.0.0.1:4318/").unwrap(),
            "http://127.0.0.1:4318"
        );
        assert!(check_endpoint("127.0.0.1:4318").is_err());
        assert!(check_endpoint("http://127.0.0.1:4318/v1/metrics").is_err());
        assert!(check_endpoint("http://").is_err());
    }

    #[test]
    fn small_helpers() {
        assert_eq!(
            go_duration(std::time::Duration::from_millis(1500)),
            "1500ms"
        );
        assert_eq!(go_duration(std::time::Duration::from_secs(60)), "60s");
        assert_eq!(sampler(1.0).name, "always_on");
        assert_eq!(sampler(0.1).arg.as_deref(), Some("0.1"));
    }
}
