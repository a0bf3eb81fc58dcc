//! [`MemoryData`]: an in-memory [`DiagnosisData`], for fixtures, the
//! simulator and tests. It answers exactly as the colony's tables would.

use std::collections::BTreeMap;
use std::convert::Infallible;

use crate::data::{
    AgentInfo, CoverageData, DiagnosisData, GapRow, HostMinute, KeepReason, RedRow, Trace,
    TraceBatch, TraceFilter, TraceSelect, TraceSpan,
};
use crate::time::Window;

/// Rows held in memory.
#[derive(Debug, Clone, Default)]
pub struct MemoryData {
    red: BTreeMap<String, Vec<RedRow>>,
    traces: BTreeMap<String, Trace>,
    hosts: Vec<HostMinute>,
    agents: Vec<AgentInfo>,
    gaps: Vec<GapRow>,
}

impl MemoryData {
    /// No data.
    pub fn new() -> MemoryData {
        MemoryData::default()
    }

    /// Adds a RED row of `service`.
    pub fn add_red(&mut self, service: &str, row: RedRow) {
        self.red.entry(service.to_owned()).or_default().push(row);
    }

    /// Adds a kept span to its trace.
    pub fn add_span(&mut self, trace_id: &str, span: TraceSpan) {
        self.traces
            .entry(trace_id.to_owned())
            .or_insert_with(|| Trace {
                trace_id: trace_id.to_owned(),
                spans: Vec::new(),
            })
            .spans
            .push(span);
    }

    /// Adds a host sample.
    pub fn add_host(&mut self, h: HostMinute) {
        self.hosts.push(h);
    }

    /// Adds an agent.
    pub fn add_agent(&mut self, a: AgentInfo) {
        self.agents.push(a);
    }

    /// Adds a gap.
    pub fn add_gap(&mut self, g: GapRow) {
        self.gaps.push(g);
    }

    /// Whether a kept trace has this id (what `coral query traces
    /// --trace-id` would find).
    pub fn has_trace(&self, trace_id: &str) -> bool {
        self.traces.contains_key(trace_id)
    }

    /// Number of kept traces.
    pub fn trace_count(&self) -> usize {
        self.traces.len()
    }
}

fn matches(s: &TraceSpan, f: &TraceFilter) -> bool {
    s.service == f.service
        && f.operation.as_ref().is_none_or(|o| &s.operation == o)
        && f.window.contains_ns(s.start_ns)
}

impl DiagnosisData for MemoryData {
    type Error = Infallible;

    fn services(&self, window: Window) -> Result<Vec<String>, Infallible> {
        Ok(self
            .red
            .iter()
            .filter(|(_, rows)| rows.iter().any(|r| window.contains(r.minute)))
            .map(|(s, _)| s.clone())
            .filter(|s| !s.is_empty())
            .collect())
    }

    fn red(&self, service: &str, window: Window) -> Result<Vec<RedRow>, Infallible> {
        Ok(self
            .red
            .get(service)
            .map(|rows| {
                rows.iter()
                    .filter(|r| window.contains(r.minute))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default())
    }

    fn traces(&self, f: &TraceFilter) -> Result<TraceBatch, Infallible> {
        let mut hits: Vec<&Trace> = self
            .traces
            .values()
            .filter(|t| match f.select {
                TraceSelect::Sampled => t.spans.iter().any(|s| {
                    matches(s, f)
                        && matches!(s.keep_reason, KeepReason::Sampled | KeepReason::Beyla)
                }),
                TraceSelect::Errors => {
                    t.spans.iter().any(|s| s.is_error) && t.spans.iter().any(|s| matches(s, f))
                }
                TraceSelect::Any => t.spans.iter().any(|s| matches(s, f)),
            })
            .collect();
        if f.select != TraceSelect::Sampled {
            let longest = |t: &Trace| t.spans.iter().map(|s| s.duration_us).max().unwrap_or(0);
            hits.sort_by(|a, b| {
                longest(b)
                    .cmp(&longest(a))
                    .then_with(|| a.trace_id.cmp(&b.trace_id))
            });
        }
        let matched = hits.len();
        let traces: Vec<Trace> = hits.into_iter().take(f.limit).cloned().collect();
        Ok(TraceBatch {
            truncated: matched > traces.len(),
            matched,
            traces,
        })
    }

    fn hosts(&self, agent_ids: &[String], window: Window) -> Result<Vec<HostMinute>, Infallible> {
        Ok(self
            .hosts
            .iter()
            .filter(|h| agent_ids.contains(&h.agent_id) && window.contains(h.minute))
            .cloned()
            .collect())
    }

    fn coverage(&self, window: Window) -> Result<CoverageData, Infallible> {
        Ok(CoverageData {
            agents: self.agents.clone(),
            gaps: self
                .gaps
                .iter()
                .filter(|g| window.contains(g.detected_at))
                .cloned()
                .collect(),
        })
    }
}
