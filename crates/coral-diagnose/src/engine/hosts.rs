//! Check 8, hosts: CPU, memory, network and load of the hosts the
//! implicated services run on, in both windows. A latency cause that sits
//! on a host saturated in the incident (and not in the baseline) becomes a
//! `resource` cause.

use std::collections::BTreeMap;

use serde_json::json;

use crate::data::{DiagnosisData, HostMinute};
use crate::engine::candidate::Candidate;
use crate::engine::context::Ctx;
use crate::engine::latency::Paths;
use crate::engine::paths::Dim;
use crate::error::DiagnoseError;
use crate::evidence::{Check, Item};
use crate::report::CauseKind;
use crate::reproduce;
use crate::robust::r1;
use crate::time::Window;

/// CPU at or above this (percent) in the incident is saturation…
const CPU_SATURATED: f64 = 80.0;
/// …when it rose at least this much (points) from the baseline.
const CPU_ROSE: f64 = 15.0;
/// Memory use at or above this share is saturation.
const MEMORY_SATURATED: f64 = 0.9;

/// One host over both windows.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostStat {
    pub hostname: String,
    pub cpu_base: f64,
    pub cpu_inc: f64,
    pub mem_base: f64,
    pub mem_inc: f64,
    pub load_base: f64,
    pub load_inc: f64,
    pub net_inc: f64,
}

impl HostStat {
    pub(crate) fn saturated(&self) -> bool {
        (self.cpu_inc >= CPU_SATURATED && self.cpu_inc - self.cpu_base >= CPU_ROSE)
            || (self.mem_inc >= MEMORY_SATURATED && self.mem_inc - self.mem_base >= 0.05)
    }

    pub(crate) fn cpu_rise(&self) -> f64 {
        self.cpu_inc - self.cpu_base
    }
}

/// Host numbers per agent.
pub(crate) struct Hosts {
    pub stats: BTreeMap<String, HostStat>,
    pub evidence: String,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (mut n, mut sum) = (0.0, 0.0);
    for v in values {
        n += 1.0;
        sum += v;
    }
    if n > 0.0 { sum / n } else { 0.0 }
}

fn stat(rows: &[&HostMinute], base: Window, inc: Window) -> HostStat {
    let pick = |w: Window, f: &dyn Fn(&HostMinute) -> Option<f64>| {
        r1(mean(
            rows.iter()
                .filter(|r| w.contains(r.minute))
                .filter_map(|r| f(r)),
        ))
    };
    let mem = |r: &HostMinute| match (r.memory_used_bytes, r.memory_total_bytes) {
        (Some(u), Some(t)) if t > 0 => Some(u as f64 / t as f64),
        _ => None,
    };
    let mem_pick = |w: Window| {
        let v = mean(
            rows.iter()
                .filter(|r| w.contains(r.minute))
                .filter_map(|r| mem(r)),
        );
        (v * 1000.0).round() / 1000.0
    };
    HostStat {
        hostname: rows.first().map(|r| r.hostname.clone()).unwrap_or_default(),
        cpu_base: pick(base, &|r| r.cpu_percent),
        cpu_inc: pick(inc, &|r| r.cpu_percent),
        mem_base: mem_pick(base),
        mem_inc: mem_pick(inc),
        load_base: pick(base, &|r| r.load1),
        load_inc: pick(inc, &|r| r.load1),
        net_inc: pick(inc, &|r| {
            Some(r.net_rx_bytes_per_sec.unwrap_or(0.0) + r.net_tx_bytes_per_sec.unwrap_or(0.0))
        }),
    }
}

/// Runs the check: fetches the hosts of every service in the requests'
/// trees, then turns latency causes on a saturated host into resource
/// causes.
pub(crate) fn check<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    paths: &Paths,
    cands: &mut [Candidate],
) -> Result<Option<Hosts>, DiagnoseError> {
    let agents: Vec<String> = paths
        .inc
        .hostnames
        .keys()
        .chain(paths.base.hostnames.keys())
        .cloned()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    if agents.is_empty() {
        return Ok(None);
    }
    let both = ctx.both();
    let samples = ctx.hosts(&agents, both)?;
    let mut per_agent: BTreeMap<&str, Vec<&HostMinute>> = BTreeMap::new();
    for r in &samples {
        per_agent.entry(r.agent_id.as_str()).or_default().push(r);
    }
    let stats: BTreeMap<String, HostStat> = per_agent
        .iter()
        .map(|(a, rows)| ((*a).to_owned(), stat(rows, ctx.baseline, ctx.incident)))
        .collect();
    let rows = stats
        .iter()
        .map(|(a, s)| {
            json!({"agent_id": a, "hostname": s.hostname, "cpu_baseline_pct": s.cpu_base,
                   "cpu_incident_pct": s.cpu_inc, "memory_baseline_ratio": s.mem_base,
                   "memory_incident_ratio": s.mem_inc, "load1_baseline": s.load_base,
                   "load1_incident": s.load_inc, "net_incident_bytes_per_sec": s.net_inc,
                   "saturated": s.saturated()})
        })
        .collect();
    let subject = cands
        .first()
        .map_or(ctx.service().to_owned(), |c| c.service.clone());
    let evidence = ctx.evidence(Item {
        check: Check::Hosts,
        query: "CPU, memory, load and network of the hosts running the services in the requests' trees, baseline vs incident".to_owned(),
        reproduce: reproduce::host(&subject, both),
        rows,
        cut: false,
        trace_ids: Vec::new(),
    });
    if stats.is_empty() {
        ctx.missing("host samples of the implicated agents".to_owned());
    }
    for c in cands.iter_mut() {
        if c.kind != CauseKind::Latency {
            continue;
        }
        let Some(key) = &c.key else { continue };
        let agent = c.agent_id.clone().or_else(|| {
            let inc = paths.inc.keys.get(key)?;
            let values = inc.values(Dim::Agent);
            let total: f64 = values.iter().map(|(_, a)| a.calls).sum();
            values
                .iter()
                .find(|(_, a)| a.calls >= 0.9 * total)
                .map(|(v, _)| (*v).to_owned())
        });
        let Some(agent) = agent else { continue };
        let Some(s) = stats.get(&agent) else { continue };
        if s.saturated() {
            c.kind = CauseKind::Resource;
            c.host = Some(s.hostname.clone());
            c.agent_id = Some(agent.clone());
            c.notes.push(format!(
                "its host {} is saturated: CPU {} % → {} %, memory {} → {}",
                s.hostname, s.cpu_base, s.cpu_inc, s.mem_base, s.mem_inc
            ));
            c.evidence.push(evidence.clone());
        }
    }
    for (a, s) in &stats {
        if !s.saturated() {
            ctx.rule_out(
                Check::Hosts.as_str(),
                format!(
                    "host {}",
                    if s.hostname.is_empty() {
                        a
                    } else {
                        &s.hostname
                    }
                ),
                format!(
                    "CPU {} % → {} %, memory {} → {}: not saturated",
                    s.cpu_base, s.cpu_inc, s.mem_base, s.mem_inc
                ),
                vec![evidence.clone()],
            );
        }
    }
    Ok(Some(Hosts { stats, evidence }))
}
