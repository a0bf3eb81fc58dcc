//! A cause under consideration, before ranking.

use crate::engine::paths::Key;
use crate::report::CauseKind;

/// A candidate cause.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub kind: CauseKind,
    pub service: String,
    pub operation: Option<String>,
    /// The key whose numbers the claim uses (latency and calls causes).
    pub key: Option<Key>,
    pub agent_id: Option<String>,
    pub host: Option<String>,
    /// The `service.version` the cause concentrates on, when one.
    pub version: Option<String>,
    pub chain: Vec<String>,
    /// Share of the regression explained (0–1).
    pub explains: f64,
    /// How far from noise (Welch or robust z).
    pub z: f64,
    /// The claim's first sentence.
    pub claim: String,
    /// Sentences added by later checks (attributes, hosts, changes).
    pub notes: Vec<String>,
    pub evidence: Vec<String>,
    /// Trace ids that show it.
    pub trace_ids: Vec<String>,
}

impl Candidate {
    pub(crate) fn new(kind: CauseKind, service: &str, operation: Option<&str>) -> Candidate {
        Candidate {
            kind,
            service: service.to_owned(),
            operation: operation.map(str::to_owned),
            key: None,
            agent_id: None,
            host: None,
            version: None,
            chain: Vec::new(),
            explains: 0.0,
            z: 0.0,
            claim: String::new(),
            notes: Vec::new(),
            evidence: Vec::new(),
            trace_ids: Vec::new(),
        }
    }

    /// The full claim.
    pub(crate) fn full_claim(&self) -> String {
        let mut out = self.claim.clone();
        for n in &self.notes {
            out.push_str("; ");
            out.push_str(n);
        }
        out
    }
}
