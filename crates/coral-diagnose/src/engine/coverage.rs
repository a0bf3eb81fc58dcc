//! Check 1, coverage: which agents report the service in each window, the
//! gaps the colony recorded, and requests per minute. Too little data makes
//! the verdict `inconclusive`, saying what is missing.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::data::{DiagnosisData, RedRow};
use crate::engine::context::Ctx;
use crate::error::DiagnoseError;
use crate::evidence::{Check, Item};
use crate::red::request_rows;
use crate::reproduce;
use crate::robust::r1;
use crate::time::rfc3339;

/// Per agent: (requests, minutes with data) in baseline and incident.
#[derive(Default)]
struct AgentCounts {
    base: (u64, BTreeSet<i64>),
    inc: (u64, BTreeSet<i64>),
}

/// Runs the check; returns true when the data is too thin to diagnose.
pub(crate) fn check<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    rows: &[RedRow],
) -> Result<bool, DiagnoseError> {
    let s = ctx.settings().clone();
    let data = ctx.coverage_data(ctx.both())?;
    let chosen = request_rows(rows, ctx.req.operation.as_deref());
    let mut agents: BTreeMap<&str, AgentCounts> = BTreeMap::new();
    let mut hostnames: BTreeMap<&str, &str> = BTreeMap::new();
    for r in &chosen {
        let a = agents.entry(r.agent_id.as_str()).or_default();
        hostnames.insert(r.agent_id.as_str(), r.host.as_str());
        if ctx.baseline.contains(r.minute) {
            a.base.0 += r.requests;
            a.base.1.insert(r.minute);
        } else if ctx.incident.contains(r.minute) {
            a.inc.0 += r.requests;
            a.inc.1.insert(r.minute);
        }
    }
    let minutes = |pick: fn(&AgentCounts) -> &BTreeSet<i64>| -> i64 {
        let all: BTreeSet<i64> = agents
            .values()
            .flat_map(|a| pick(a).iter().copied())
            .collect();
        all.len() as i64
    };
    let cov = &mut ctx.coverage;
    cov.minutes_with_data.baseline = minutes(|a| &a.base.1);
    cov.minutes_with_data.incident = minutes(|a| &a.inc.1);
    cov.requests.baseline = agents.values().map(|a| a.base.0).sum();
    cov.requests.incident = agents.values().map(|a| a.inc.0).sum();
    cov.requests_per_minute.baseline =
        r1(cov.requests.baseline as f64 / ctx.baseline.minutes().max(1) as f64);
    cov.requests_per_minute.incident =
        r1(cov.requests.incident as f64 / ctx.incident.minutes().max(1) as f64);
    for (id, a) in &agents {
        let (b, i) = (a.base.0 > 0, a.inc.0 > 0);
        let list = match (b, i) {
            (true, true) => &mut cov.agents_both,
            (true, false) => &mut cov.agents_baseline_only,
            (false, true) => &mut cov.agents_incident_only,
            (false, false) => continue,
        };
        list.push((*id).to_owned());
    }
    let ours: BTreeSet<&str> = agents.keys().copied().collect();
    let gaps: Vec<_> = data
        .gaps
        .iter()
        .filter(|g| ours.contains(g.agent_id.as_str()) || ours.is_empty())
        .collect();
    cov.gaps = gaps.len();

    let mut out = Vec::new();
    for (id, a) in &agents {
        out.push(
            json!({"agent_id": id, "hostname": hostnames.get(id).copied().unwrap_or(""),
                        "baseline_requests": a.base.0, "incident_requests": a.inc.0,
                        "baseline_minutes": a.base.1.len(), "incident_minutes": a.inc.1.len()}),
        );
    }
    for g in &gaps {
        out.push(
            json!({"gap_agent_id": g.agent_id, "from_seq": g.from_seq, "to_seq": g.to_seq,
                        "detected_at": rfc3339(g.detected_at), "reason": g.reason}),
        );
    }
    let known: Vec<&str> = data.agents.iter().map(|a| a.agent_id.as_str()).collect();
    let id = ctx.evidence(Item {
        check: Check::Coverage,
        query: format!(
            "agents reporting {} in each window, and the colony's gaps ({} agents known)",
            ctx.req.service,
            known.len()
        ),
        reproduce: reproduce::agents(),
        rows: out,
        cut: false,
        trace_ids: Vec::new(),
    });
    ctx.coverage.evidence.push(id);

    let (inc_requests, base_minutes) = (
        ctx.coverage.requests.incident,
        ctx.coverage.minutes_with_data.baseline,
    );
    let mut thin = false;
    if inc_requests < s.min_requests {
        thin = true;
        ctx.missing(format!(
            "requests of {} in the incident window: {inc_requests} (need {})",
            ctx.req.service, s.min_requests
        ));
    }
    if (base_minutes as usize) < s.min_baseline_minutes {
        thin = true;
        ctx.missing(format!(
            "baseline minutes with data: {base_minutes} (need {})",
            s.min_baseline_minutes
        ));
    }
    if !gaps.is_empty() {
        ctx.missing(format!(
            "{} gap(s) in the agents' data: some minutes may be incomplete",
            gaps.len()
        ));
    }
    Ok(thin)
}
