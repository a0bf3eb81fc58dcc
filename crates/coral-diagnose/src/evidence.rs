//! The evidence log: every query the engine makes becomes an [`Evidence`]
//! item with an id, its rows (bounded) and a reproduce command.

use serde_json::Value;

use crate::report::Evidence;

/// At most this many rows per evidence item.
pub const MAX_ROWS: usize = 25;
/// At most this many trace ids per evidence item.
pub const MAX_TRACE_IDS: usize = 5;

/// The checks, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    Coverage,
    Symptom,
    Endpoints,
    Localise,
    CriticalPath,
    ErrorOrigins,
    CallCounts,
    Attributes,
    Hosts,
    Changes,
    Exemplars,
}

impl Check {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Check::Coverage => "coverage",
            Check::Symptom => "symptom",
            Check::Endpoints => "endpoints",
            Check::Localise => "localise",
            Check::CriticalPath => "critical_path",
            Check::ErrorOrigins => "error_origins",
            Check::CallCounts => "call_counts",
            Check::Attributes => "attributes",
            Check::Hosts => "hosts",
            Check::Changes => "changes",
            Check::Exemplars => "exemplars",
        }
    }
}

/// The evidence gathered so far.
#[derive(Debug, Default)]
pub(crate) struct EvidenceLog {
    items: Vec<Evidence>,
}

/// One item to record.
pub(crate) struct Item {
    pub check: Check,
    pub query: String,
    pub reproduce: String,
    pub rows: Vec<Value>,
    /// The query itself was cut by its limit.
    pub cut: bool,
    pub trace_ids: Vec<String>,
}

impl EvidenceLog {
    /// Records an item and returns its id.
    pub(crate) fn add(&mut self, item: Item) -> String {
        let id = format!("e{}", self.items.len() + 1);
        let row_count = item.rows.len();
        let mut rows = item.rows;
        rows.truncate(MAX_ROWS);
        let mut trace_ids: Vec<String> = Vec::new();
        for t in item.trace_ids {
            if !t.is_empty() && !trace_ids.contains(&t) && trace_ids.len() < MAX_TRACE_IDS {
                trace_ids.push(t);
            }
        }
        self.items.push(Evidence {
            id: id.clone(),
            check: item.check.as_str().to_owned(),
            query: item.query,
            reproduce: item.reproduce,
            truncated: item.cut || row_count > rows.len(),
            rows,
            row_count,
            trace_ids,
        });
        id
    }

    /// All items so far.
    pub(crate) fn items(&self) -> &[Evidence] {
        &self.items
    }

    /// All items.
    pub(crate) fn into_items(self) -> Vec<Evidence> {
        self.items
    }
}
