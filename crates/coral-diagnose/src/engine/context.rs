//! The state one diagnosis carries between checks: the data source, the
//! final windows, the evidence log, what was ruled out and the coverage.

use crate::data::{DiagnosisData, HostMinute, TraceBatch, TraceFilter};
use crate::engine::request::{Request, Settings};
use crate::error::DiagnoseError;
use crate::evidence::{EvidenceLog, Item};
use crate::report::{Coverage, RuledOut};
use crate::time::Window;

/// One diagnosis in progress.
pub(crate) struct Ctx<'a, D: DiagnosisData> {
    pub data: &'a D,
    pub req: Request,
    pub incident: Window,
    pub baseline: Window,
    pub log: EvidenceLog,
    pub ruled_out: Vec<RuledOut>,
    pub coverage: Coverage,
}

fn data_error<E: std::error::Error + Send + Sync + 'static>(
    query: &'static str,
) -> impl Fn(E) -> DiagnoseError {
    move |e| DiagnoseError::Data {
        query,
        source: Box::new(e),
    }
}

impl<'a, D: DiagnosisData> Ctx<'a, D> {
    pub(crate) fn settings(&self) -> &Settings {
        &self.req.settings
    }

    pub(crate) fn service(&self) -> &str {
        &self.req.service
    }

    pub(crate) fn traces(&self, filter: &TraceFilter) -> Result<TraceBatch, DiagnoseError> {
        self.data.traces(filter).map_err(data_error("traces"))
    }

    pub(crate) fn hosts(
        &self,
        agents: &[String],
        window: Window,
    ) -> Result<Vec<HostMinute>, DiagnoseError> {
        self.data.hosts(agents, window).map_err(data_error("hosts"))
    }

    pub(crate) fn coverage_data(
        &self,
        window: Window,
    ) -> Result<crate::data::CoverageData, DiagnoseError> {
        self.data.coverage(window).map_err(data_error("coverage"))
    }

    /// The smallest window holding both.
    pub(crate) fn both(&self) -> Window {
        Window::new(
            self.baseline.from.min(self.incident.from),
            self.baseline.to.max(self.incident.to),
        )
    }

    pub(crate) fn evidence(&mut self, item: Item) -> String {
        self.log.add(item)
    }

    pub(crate) fn rule_out(
        &mut self,
        check: &str,
        entity: String,
        reason: String,
        evidence: Vec<String>,
    ) {
        self.ruled_out.push(RuledOut {
            check: check.to_owned(),
            entity,
            reason,
            evidence,
        });
    }

    pub(crate) fn missing(&mut self, what: String) {
        if !self.coverage.missing.contains(&what) {
            self.coverage.missing.push(what);
        }
    }
}
