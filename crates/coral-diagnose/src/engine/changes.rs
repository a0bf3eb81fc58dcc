//! Check 9, changes: new `service.version` values and agents appearing or
//! disappearing in the requests' trees, and the traffic ratio. A cause on a
//! service whose new version carries it becomes a `change` (a state change
//! is the root cause, the slowdown its effect); more traffic that drove the
//! hosts' CPU up becomes a `traffic` cause.

use std::collections::BTreeMap;

use serde_json::json;

use crate::data::DiagnosisData;
use crate::engine::candidate::Candidate;
use crate::engine::context::Ctx;
use crate::engine::hosts::Hosts;
use crate::engine::latency::{Paths, explains_pct};
use crate::engine::paths::Dim;
use crate::engine::symptom::SymptomResult;
use crate::evidence::{Check, Item};
use crate::question::Symptom;
use crate::report::CauseKind;
use crate::reproduce::{self, TraceList};
use crate::robust::r1;

/// A version seen in the incident and not in the baseline.
#[derive(Debug, Clone)]
pub(crate) struct NewVersion {
    pub service: String,
    pub version: String,
    /// Share of the service's incident spans, percent.
    pub share_pct: f64,
}

/// A state change found (for "what changed in X?").
#[derive(Debug, Clone)]
pub(crate) struct StateChange {
    pub service: String,
    pub entity: String,
    pub claim: String,
}

/// Finds the state changes, records them, and relabels the candidates
/// they explain. Returns the changes found.
pub(crate) fn check<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    paths: &Paths,
    cands: &mut [Candidate],
) -> Vec<StateChange> {
    let mut rows = Vec::new();
    let mut new_versions = Vec::new();
    let mut changes = Vec::new();
    for (service, inc) in &paths.inc.versions {
        let base = paths.base.versions.get(service);
        let total: f64 = inc.values().sum();
        for (v, n) in inc {
            if v.is_empty() {
                continue;
            }
            let b = base.and_then(|b| b.get(v)).copied().unwrap_or(0.0);
            let share = r1(n / total.max(1.0) * 100.0);
            let new = b == 0.0 && *n >= 3.0;
            rows.push(
                json!({"service": service, "service.version": v, "baseline_spans": b,
                             "incident_spans": n, "incident_share_pct": share, "new": new}),
            );
            if new {
                new_versions.push(NewVersion {
                    service: service.clone(),
                    version: v.clone(),
                    share_pct: share,
                });
            }
        }
    }
    let mut agent_changes = Vec::new();
    let services: std::collections::BTreeSet<&String> = paths
        .inc
        .agents
        .keys()
        .chain(paths.base.agents.keys())
        .collect();
    let empty = BTreeMap::new();
    for service in services {
        let b = paths.base.agents.get(service).unwrap_or(&empty);
        let i = paths.inc.agents.get(service).unwrap_or(&empty);
        if b.is_empty() || i.is_empty() {
            continue;
        }
        for (agent, n) in i {
            if !b.contains_key(agent) && *n >= 3.0 {
                rows.push(
                    json!({"service": service, "agent_id": agent, "baseline_spans": 0.0,
                                 "incident_spans": n, "status": "appeared"}),
                );
                agent_changes.push((service.clone(), agent.clone(), "appeared"));
            }
        }
        // A disappearance must be clear: the agent carried a real share.
        let base_total: f64 = b.values().sum();
        for (agent, n) in b {
            if !i.contains_key(agent) && *n >= 0.1 * base_total && paths.inc.traces >= 20 {
                rows.push(
                    json!({"service": service, "agent_id": agent, "baseline_spans": n,
                                 "incident_spans": 0.0, "status": "disappeared"}),
                );
                agent_changes.push((service.clone(), agent.clone(), "disappeared"));
            }
        }
    }
    let w = ctx.incident;
    let evidence = ctx.evidence(Item {
        check: Check::Changes,
        query: "service.version values and agents per service in the requests' trees, baseline vs incident (sampled traces)".to_owned(),
        reproduce: reproduce::traces(
            ctx.service(),
            w,
            &TraceList {
                operation: ctx.req.operation.as_deref(),
                keep_reason: Some("sampled"),
                limit: ctx.settings().trace_limit,
                ..TraceList::default()
            },
        ),
        rows,
        cut: false,
        trace_ids: Vec::new(),
    });
    for nv in &new_versions {
        let mut claimed = false;
        for c in cands.iter_mut() {
            if c.service != nv.service || !matches!(c.kind, CauseKind::Latency | CauseKind::Errors)
            {
                continue;
            }
            let carries = c.version.as_deref() == Some(&nv.version) || nv.share_pct >= 90.0;
            if carries {
                c.kind = CauseKind::Change;
                c.version = Some(nv.version.clone());
                c.notes.push(format!(
                    "{} runs a new version {} ({} % of its spans; not seen in the baseline)",
                    nv.service, nv.version, nv.share_pct
                ));
                c.evidence.push(evidence.clone());
                claimed = true;
            }
        }
        changes.push(StateChange {
            service: nv.service.clone(),
            entity: format!("service.version {}", nv.version),
            claim: format!(
                "{} runs a new version {} ({} % of its spans; not seen in the baseline)",
                nv.service, nv.version, nv.share_pct
            ),
        });
        if !claimed {
            ctx.rule_out(
                Check::Changes.as_str(),
                format!("{} version {}", nv.service, nv.version),
                "new in the incident, but the service is not where the change is".to_owned(),
                vec![evidence.clone()],
            );
        }
    }
    for (service, agent, status) in agent_changes {
        changes.push(StateChange {
            service: service.clone(),
            entity: format!("agent {agent}"),
            claim: format!("{service} {status} on agent {agent}"),
        });
    }
    if new_versions.is_empty() {
        ctx.rule_out(
            Check::Changes.as_str(),
            "deployments".to_owned(),
            "no new service.version in the requests' trees".to_owned(),
            vec![evidence],
        );
    }
    changes
}

/// A traffic cause: the target's requests rose (robustly) and the hosts it
/// loads got busier; it explains the share of the critical-path increase
/// that sits on hosts whose CPU rose.
pub(crate) fn traffic<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    symptom: &SymptomResult,
    paths: &Paths,
    hosts: Option<&Hosts>,
) -> Option<Candidate> {
    let t = symptom.get(Symptom::Traffic);
    if !t.confirmed || t.incident <= t.baseline || paths.d_ms <= 0.0 || !paths.enough {
        return None;
    }
    let hosts = hosts?;
    let rose: Vec<&String> = hosts
        .stats
        .iter()
        .filter(|(_, s)| s.cpu_rise() >= 10.0)
        .map(|(a, _)| a)
        .collect();
    let mut load_ms = 0.0;
    for d in &paths.deltas {
        if d.delta <= 0.0 || d.z < 2.0 {
            continue;
        }
        let Some(k) = paths.inc.keys.get(&d.key) else {
            continue;
        };
        let values = k.values(Dim::Agent);
        let total: f64 = values.iter().map(|(_, a)| a.calls).sum();
        let on_busy: f64 = values
            .iter()
            .filter(|(a, _)| rose.iter().any(|r| r.as_str() == *a))
            .map(|(_, a)| a.calls)
            .sum();
        load_ms += d.delta * on_busy / total.max(1.0);
    }
    let load_ms = r1(load_ms);
    let pct = explains_pct(load_ms, paths.d_ms);
    if pct < ctx.settings().min_explains * 100.0 {
        return None;
    }
    let names: Vec<String> = rose
        .iter()
        .map(|a| hosts.stats[*a].hostname.clone())
        .collect();
    let service = ctx.service().to_owned();
    let w = ctx.both();
    let evidence = ctx.evidence(Item {
        check: Check::Changes,
        query: format!("{service}'s traffic and the share of the slowdown on hosts whose CPU rose"),
        reproduce: reproduce::host(&service, w),
        rows: vec![json!({"service": service, "requests_per_minute_baseline": t.baseline,
                          "requests_per_minute_incident": t.incident, "change_pct": t.change_pct,
                          "load_driven_increase_ms": load_ms, "critical_path_increase_ms": paths.d_ms,
                          "explains_pct": pct, "hosts_cpu_rose": names.join(" ")})],
        cut: false,
        trace_ids: paths.inc.slowest.iter().take(3).map(|(_, t)| t.clone()).collect(),
    });
    let entry_op = paths
        .inc
        .keys
        .iter()
        .filter(|(k, _)| {
            k.0 == service
                && matches!(
                    k.2,
                    coral_model::SpanKind::Server | coral_model::SpanKind::Consumer
                )
        })
        .max_by(|a, b| a.1.spans.total_cmp(&b.1.spans).then_with(|| b.0.cmp(a.0)))
        .map(|(k, _)| k.1.clone());
    let mut c = Candidate::new(CauseKind::Traffic, &service, entry_op.as_deref());
    c.chain = vec![service.clone()];
    c.explains = pct / 100.0;
    c.z = t.z;
    c.claim = format!(
        "{service} traffic rose from {} to {} requests per minute ({} %); CPU rose on {}, and the load-driven slowdown ({} ms) explains {pct} % of the {} ms increase",
        t.baseline,
        t.incident,
        t.change_pct,
        names.join(", "),
        load_ms,
        paths.d_ms
    );
    c.evidence = vec![evidence, symptom.evidence.clone(), hosts.evidence.clone()];
    c.trace_ids = paths
        .inc
        .slowest
        .iter()
        .take(3)
        .map(|(_, t)| t.clone())
        .collect();
    Some(c)
}
