//! The part of Beyla's YAML schema that Coral writes, as serde types.
//!
//! Key names are Beyla's own (grafana/beyla v3: `docs/config-schema.json`,
//! `pkg/beyla/config.go`). Fields are
//! declared in alphabetical order and maps are `BTreeMap`s, so the output
//! is deterministic with sorted keys. Absent optional settings are omitted
//! so that Beyla applies its own default.

use std::collections::BTreeMap;

use serde::Serialize;

/// A whole Beyla configuration file.
#[derive(Debug, Serialize)]
pub(super) struct BeylaYaml {
    /// `attributes`: only `select` (opt-in attributes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attributes: Option<Attributes>,
    /// `discovery`: which processes are instrumented.
    pub discovery: Discovery,
    /// `ebpf`: tracer tuning.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ebpf: Option<Ebpf>,
    /// `log_level`: `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub log_level: &'static str,
    /// `otel_metrics_export`.
    pub otel_metrics_export: MetricsExport,
    /// `otel_traces_export`; absent = no traces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub otel_traces_export: Option<TracesExport>,
    /// `routes`.
    pub routes: Routes,
}

/// `attributes`.
#[derive(Debug, Serialize)]
pub(super) struct Attributes {
    /// `attributes.select`: metric name, glob, `traces` or `resource` →
    /// attributes to include.
    pub select: BTreeMap<&'static str, Select>,
}

/// One entry of `attributes.select`.
#[derive(Debug, Serialize)]
pub(super) struct Select {
    /// `include`: attributes added to the defaults.
    pub include: Vec<&'static str>,
}

/// `discovery`.
#[derive(Debug, Serialize)]
pub(super) struct Discovery {
    /// `discovery.exclude_instrument`: processes never instrumented.
    pub exclude_instrument: Vec<Selector>,
    /// `discovery.instrument`: processes instrumented.
    pub instrument: Vec<Selector>,
}

/// One glob selector of `discovery.instrument` / `exclude_instrument`; a
/// process matches when it matches every field given.
#[derive(Debug, Default, Serialize)]
pub(super) struct Selector {
    /// `exe_path`: glob on the executable path.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exe_path: Option<String>,
    /// `k8s_namespace`: glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_namespace: Option<String>,
    /// `k8s_pod_labels`: label → glob.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub k8s_pod_labels: BTreeMap<String, String>,
    /// `k8s_pod_name`: glob.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k8s_pod_name: Option<String>,
    /// `name`: the service name reported for matches (deprecated in Beyla
    /// in favour of process-side settings, still honoured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `open_ports`: `80,8000-8999`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_ports: Option<String>,
}

/// `ebpf`.
#[derive(Debug, Serialize)]
pub(super) struct Ebpf {
    /// `ebpf.wakeup_len`.
    pub wakeup_len: usize,
}

/// `otel_metrics_export`. Histogram buckets are left at Beyla's defaults.
#[derive(Debug, Serialize)]
pub(super) struct MetricsExport {
    /// `endpoint`: base URL; Beyla appends `/v1/metrics`.
    pub endpoint: String,
    /// `instrumentations`: protocols that produce metrics.
    pub instrumentations: Vec<&'static str>,
    /// `interval`: a Go duration such as `15s`.
    pub interval: String,
    /// `protocol`: always `http/protobuf`.
    pub protocol: &'static str,
}

/// `otel_traces_export`.
#[derive(Debug, Serialize)]
pub(super) struct TracesExport {
    /// `endpoint`: base URL; Beyla appends `/v1/traces`.
    pub endpoint: String,
    /// `instrumentations`: protocols that produce spans.
    pub instrumentations: Vec<&'static str>,
    /// `protocol`: always `http/protobuf`.
    pub protocol: &'static str,
    /// `sampler`.
    pub sampler: Sampler,
}

/// `otel_traces_export.sampler`.
#[derive(Debug, Serialize)]
pub(super) struct Sampler {
    /// `arg`: the ratio, as text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arg: Option<String>,
    /// `name`: `always_on` or `traceidratio`.
    pub name: &'static str,
}

/// `routes`.
#[derive(Debug, Serialize)]
pub(super) struct Routes {
    /// `patterns`: route templates.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub patterns: Vec<String>,
    /// `unmatched`: `unset`, `path`, `wildcard`, `heuristic` or
    /// `low-cardinality`.
    pub unmatched: &'static str,
}
