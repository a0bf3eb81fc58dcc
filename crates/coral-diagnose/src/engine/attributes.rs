//! Check 7, attributes: whether a cause concentrates on one value of an
//! attribute (agent/host, `service.version`, pod, statement shape, route):
//! that value carries most of the increase (or of the failures) while
//! handling a minority of the calls.

use serde_json::json;

use crate::data::DiagnosisData;
use crate::engine::candidate::Candidate;
use crate::engine::context::Ctx;
use crate::engine::errors::{OriginKey, Origins};
use crate::engine::latency::Paths;
use crate::engine::paths::Dim;
use crate::evidence::{Check, Item};
use crate::report::CauseKind;
use crate::reproduce::{self, TraceList};
use crate::robust::r1;

/// A value carrying at least this share of the change…
const MIN_SHARE: f64 = 0.7;
/// …from at most this share of the calls is where the cause sits.
const MAX_CALLS_SHARE: f64 = 0.7;

fn pct(x: f64) -> f64 {
    r1(x * 100.0)
}

/// Runs the check over the candidates, annotating them.
pub(crate) fn check<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    paths: Option<&Paths>,
    origins: Option<&Origins>,
    cands: &mut [Candidate],
) {
    let mut rows = Vec::new();
    let mut found: Vec<(usize, Dim, String, f64, f64)> = Vec::new();
    for (ci, c) in cands.iter().enumerate() {
        match (c.kind, paths, &c.key) {
            (CauseKind::Latency, Some(p), Some(key)) => {
                let (Some(inc), Some(d)) = (p.inc.keys.get(key), p.delta(key)) else {
                    continue;
                };
                let base = p.base.keys.get(key);
                let (nb, ni) = (p.base.traces as f64, p.inc.traces as f64);
                for dim in Dim::ALL {
                    let values = inc.values(dim);
                    if values.len() < 2 || d.delta <= 0.0 {
                        continue;
                    }
                    let calls: f64 = values.iter().map(|(_, a)| a.calls).sum();
                    for (v, a) in values {
                        let b = base
                            .and_then(|b| b.by_value.get(&(dim, v.to_owned())))
                            .map_or(0.0, |b| b.self_ms);
                        let (bm, im) = (r1(b / nb.max(1.0)), r1(a.self_ms / ni.max(1.0)));
                        let share = (im - bm) / d.delta;
                        let calls_share = a.calls / calls.max(1.0);
                        rows.push(json!({"service": c.service, "operation": key.1, "attribute": dim.name(),
                                         "value": v, "baseline_ms_per_trace": bm, "incident_ms_per_trace": im,
                                         "share_of_increase_pct": pct(share), "share_of_calls_pct": pct(calls_share)}));
                        if share >= MIN_SHARE && calls_share <= MAX_CALLS_SHARE {
                            found.push((ci, dim, v.to_owned(), pct(share), pct(calls_share)));
                        }
                    }
                }
            }
            (CauseKind::Errors, _, _) => {
                let Some(o) = origins else { continue };
                let key = o.groups.iter().find(|(k, _)| {
                    k.service == c.service && Some(&k.operation) == c.operation.as_ref()
                });
                let Some((k, g)) = key else { continue };
                let spans_of = |dim: Dim| -> Option<&std::collections::BTreeMap<String, f64>> {
                    let p = paths?;
                    match dim {
                        Dim::Agent => p.inc.agents.get(&k.service),
                        _ => p.inc.versions.get(&k.service),
                    }
                };
                for (dim, fails) in [(Dim::Agent, &g.agents), (Dim::Version, &g.versions)] {
                    let total: f64 = fails.values().sum();
                    let spans = spans_of(dim);
                    let span_total: f64 = spans.map_or(0.0, |s| s.values().sum());
                    let known_values = spans.map_or(0, |s| {
                        s.iter().filter(|(v, n)| !v.is_empty() && **n > 0.0).count()
                    });
                    for (v, n) in fails {
                        if v.is_empty() {
                            continue;
                        }
                        let share = n / total.max(1.0);
                        let calls_share = spans
                            .and_then(|s| s.get(v))
                            .map_or(1.0, |x| x / span_total.max(1.0));
                        rows.push(error_row(k, dim, v, *n, pct(share), pct(calls_share)));
                        if known_values >= 2 && share >= 0.8 && calls_share <= MAX_CALLS_SHARE {
                            found.push((ci, dim, v.clone(), pct(share), pct(calls_share)));
                        }
                    }
                }
            }
            _ => {}
        }
    }
    if rows.is_empty() {
        return;
    }
    let first = &cands[found.first().map_or(0, |f| f.0)];
    let (service, operation) = (first.service.clone(), first.operation.clone());
    let w = ctx.incident;
    let reproduce = match found.first() {
        Some((_, Dim::Agent, agent, _, _)) => reproduce::otel_operation(
            &service,
            operation.as_deref().unwrap_or_default(),
            Some(agent),
            w,
        ),
        _ => reproduce::traces(
            &service,
            w,
            &TraceList {
                operation: operation.as_deref(),
                keep_reason: Some("sampled"),
                limit: ctx.settings().trace_limit,
                ..TraceList::default()
            },
        ),
    };
    let id = ctx.evidence(Item {
        check: Check::Attributes,
        query: "attribute values (agent, service.version, pod, statement, route) carrying each cause's increase or failures".to_owned(),
        reproduce,
        rows,
        cut: false,
        trace_ids: Vec::new(),
    });
    let localised: std::collections::BTreeSet<usize> = found.iter().map(|f| f.0).collect();
    for (ci, dim, value, share, calls_share) in found {
        let c = &mut cands[ci];
        match dim {
            Dim::Agent => {
                if c.agent_id.is_some() {
                    continue;
                }
                c.host = ctx_host(paths, origins, c, &value);
                c.agent_id = Some(value.clone());
            }
            Dim::Version => c.version = Some(value.clone()),
            _ => {}
        }
        let what = if c.kind == CauseKind::Errors {
            "failures"
        } else {
            "increase"
        };
        c.notes.push(format!(
            "concentrated on {} {value} ({share} % of the {what} from {calls_share} % of the calls)",
            dim.name()
        ));
        if !c.evidence.contains(&id) {
            c.evidence.push(id.clone());
        }
    }
    for (ci, c) in cands.iter().enumerate() {
        if !localised.contains(&ci) && matches!(c.kind, CauseKind::Latency | CauseKind::Errors) {
            ctx.rule_out(
                Check::Attributes.as_str(),
                format!("{} on a single host, version or pod", c.service),
                "the change is spread over its instances".to_owned(),
                vec![id.clone()],
            );
        }
    }
}

fn error_row(
    k: &OriginKey,
    dim: Dim,
    v: &str,
    n: f64,
    share: f64,
    calls_share: f64,
) -> serde_json::Value {
    json!({"service": k.service, "operation": k.operation, "attribute": dim.name(), "value": v,
           "incident_failures": n, "share_of_failures_pct": share, "share_of_calls_pct": calls_share})
}

fn ctx_host(
    paths: Option<&Paths>,
    origins: Option<&Origins>,
    c: &Candidate,
    agent: &str,
) -> Option<String> {
    if let Some(h) = paths.and_then(|p| p.inc.hostnames.get(agent)) {
        return Some(h.clone());
    }
    origins?
        .groups
        .iter()
        .filter(|(k, _)| k.service == c.service)
        .find_map(|(_, g)| g.hostnames.get(agent).cloned())
}
