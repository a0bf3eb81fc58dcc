//! The diagnosis as returned and serialized: the JSON contract of
//! `coral ask -o json`, version [`VERSION`] (documented in docs/cli.md).
//! Fields are only ever added. The document reads back ([`Deserialize`]),
//! so a client can render what a colony answered.

use serde::{Deserialize, Serialize};

use crate::question::Symptom;
use crate::time::Window;

/// Version of the JSON contract.
pub const VERSION: u32 = 1;

/// The answer to a question.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Diagnosis {
    /// Contract version ([`VERSION`]).
    pub version: u32,
    /// The verdict.
    pub verdict: Verdict,
    /// The question as asked.
    pub question: String,
    /// What was diagnosed.
    pub target: Target,
    /// The windows compared.
    pub windows: Windows,
    /// The symptom's numbers, when there was data to compute them.
    pub symptom: Option<SymptomReport>,
    /// Causes, best first (empty unless the verdict is `regression`).
    pub causes: Vec<Cause>,
    /// What was checked and found not to matter.
    pub ruled_out: Vec<RuledOut>,
    /// Every query behind every number.
    pub evidence: Vec<Evidence>,
    /// How much data there was.
    pub coverage: Coverage,
    /// For "what's the slowest endpoint in X?": X's operations by P95.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<Endpoint>,
    /// For "what changed in X?": the significant changes found.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<Change>,
    /// One line saying what was found (the text output's first line).
    pub summary: String,
}

/// The verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The symptom is confirmed against the baseline.
    Regression,
    /// The numbers do not differ significantly from the baseline.
    NoRegression,
    /// Too little data to say; `coverage.missing` says what is missing.
    Inconclusive,
}

impl Verdict {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Regression => "regression",
            Verdict::NoRegression => "no_regression",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// What was diagnosed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    /// The service.
    pub service: String,
    /// The symptom reported (the first confirmed of those asked about,
    /// else the first asked about); `changes` for "what changed in X?".
    pub symptom: String,
    /// The operation, when the diagnosis is about one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    /// The symptoms asked about.
    pub symptoms: Vec<Symptom>,
}

/// The incident and baseline windows.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Windows {
    /// Where the symptom is.
    pub incident: Window,
    /// What normal looked like.
    pub baseline: Window,
}

/// The symptom's numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SymptomReport {
    /// `p95_ms`, `error_rate` or `requests_per_minute`.
    pub metric: String,
    /// Baseline value.
    pub baseline: f64,
    /// Incident value.
    pub incident: f64,
    /// Relative change, percent.
    pub change_pct: f64,
    /// Robust z of the incident's per-minute values against the baseline's.
    pub robust_z: f64,
    /// Whether the change counts (large, robust, enough requests).
    pub confirmed: bool,
    /// Evidence ids.
    pub evidence: Vec<String>,
}

/// What kind of cause.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CauseKind {
    /// Time added on the critical path.
    Latency,
    /// Where failures originate.
    Errors,
    /// More calls per request (N+1, retries).
    Calls,
    /// A saturated host.
    Resource,
    /// A state change: a new version, hosts appearing or disappearing.
    Change,
    /// More (or less) traffic.
    Traffic,
}

impl CauseKind {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            CauseKind::Latency => "latency",
            CauseKind::Errors => "errors",
            CauseKind::Calls => "calls",
            CauseKind::Resource => "resource",
            CauseKind::Change => "change",
            CauseKind::Traffic => "traffic",
        }
    }
}

/// One cause.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cause {
    /// 1 for the best.
    pub rank: usize,
    /// What kind.
    pub kind: CauseKind,
    /// The service at fault.
    pub service: String,
    /// Its operation, when one.
    pub operation: Option<String>,
    /// The agent, when the cause sits on one.
    pub agent_id: Option<String>,
    /// That agent's host.
    pub host: Option<String>,
    /// Services from the target down to this one.
    pub chain: Vec<String>,
    /// Share of the regression this cause accounts for, percent.
    pub explains_pct: f64,
    /// Ranking score (0–1).
    pub score: f64,
    /// The claim, in words; every number in it is in its evidence rows.
    pub claim: String,
    /// Evidence ids, the main one first.
    pub evidence: Vec<String>,
}

/// Something checked and found not to matter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuledOut {
    /// The check.
    pub check: String,
    /// What was ruled out (a service, host, version…).
    pub entity: String,
    /// Why, in words.
    pub reason: String,
    /// Evidence ids.
    pub evidence: Vec<String>,
}

/// One query and the rows it returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Id, `e1`, `e2`, …
    pub id: String,
    /// The check that ran it.
    pub check: String,
    /// What it asked, in words.
    pub query: String,
    /// A `coral query …` command that shows the same data.
    pub reproduce: String,
    /// The rows used (at most [`crate::evidence::MAX_ROWS`]).
    pub rows: Vec<serde_json::Value>,
    /// How many rows there were.
    pub row_count: usize,
    /// Rows were left out (here or by the query's limit).
    pub truncated: bool,
    /// Trace ids cited (each opens with `coral query traces --trace-id`).
    pub trace_ids: Vec<String>,
}

/// How much data there was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Agents with data for the service in both windows.
    pub agents_both: Vec<String>,
    /// Agents with data only in the baseline.
    pub agents_baseline_only: Vec<String>,
    /// Agents with data only in the incident.
    pub agents_incident_only: Vec<String>,
    /// Gaps the colony recorded in the windows.
    pub gaps: usize,
    /// Minutes with requests: incident, baseline.
    pub minutes_with_data: PerWindow<i64>,
    /// Requests of the service.
    pub requests: PerWindow<u64>,
    /// Requests per minute.
    pub requests_per_minute: PerWindow<f64>,
    /// Trace-id-sampled traces used.
    pub sampled_traces: PerWindow<usize>,
    /// Failing traces used.
    pub error_traces: PerWindow<usize>,
    /// What is missing, when the verdict is `inconclusive` or a check
    /// could not run.
    pub missing: Vec<String>,
    /// Evidence ids.
    pub evidence: Vec<String>,
}

/// A number per window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PerWindow<T> {
    /// In the incident window.
    pub incident: T,
    /// In the baseline window.
    pub baseline: T,
}

/// One operation of the service, for "what's the slowest endpoint in X?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Operation or route.
    pub operation: String,
    /// Incident P95, ms.
    pub p95_ms: f64,
    /// Baseline P95, ms.
    pub baseline_p95_ms: f64,
    /// Change, percent.
    pub change_pct: f64,
    /// Incident requests.
    pub requests: u64,
}

/// A significant change, for "what changed in X?".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// `latency`, `errors`, `traffic`, `version` or `agent`.
    pub kind: String,
    /// The service.
    pub service: String,
    /// What changed (a metric, a version, an agent).
    pub entity: String,
    /// In words.
    pub claim: String,
    /// Evidence ids.
    pub evidence: Vec<String>,
}
