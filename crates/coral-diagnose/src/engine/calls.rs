//! Check 6, call counts: an operation called more times per request than
//! in the baseline (N+1 queries, retries). The cause is the caller that
//! started calling more (the first caller up the tree whose own count did
//! not grow), and the time the extra calls add is taken from the callees'
//! latency candidates when each call is not slower.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::data::DiagnosisData;
use crate::engine::candidate::Candidate;
use crate::engine::context::Ctx;
use crate::engine::latency::{KeyDelta, Paths, explains_pct};
use crate::engine::paths::Key;
use crate::evidence::{Check, Item};
use crate::report::CauseKind;
use crate::reproduce::{self, TraceList};
use crate::robust::r1;

fn multiplied(d: &KeyDelta, z: f64) -> bool {
    let grew = if d.base_calls > 0.0 {
        d.inc_calls >= 1.5 * d.base_calls && d.inc_calls - d.base_calls >= 0.9
    } else {
        d.inc_calls >= 2.0
    };
    grew && d.calls_z >= z
}

/// Calls candidates, and the keys whose increase they explain.
pub(crate) fn check<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    paths: &Paths,
) -> (Vec<Candidate>, BTreeSet<Key>) {
    let z = ctx.settings().z;
    let min_explains = ctx.settings().min_explains;
    let grown: BTreeMap<&Key, &KeyDelta> = paths
        .deltas
        .iter()
        .filter(|d| multiplied(d, z))
        .map(|d| (&d.key, d))
        .collect();
    let mut suppressed = BTreeSet::new();
    if grown.is_empty() || !paths.enough {
        if paths.enough {
            let ev = paths.evidence.clone();
            ctx.rule_out(
                Check::CallCounts.as_str(),
                "calls per request".to_owned(),
                "no operation is called 1.5× as often per request as in the baseline".to_owned(),
                vec![ev],
            );
        }
        return (Vec::new(), suppressed);
    }
    // owner → (topmost grown key under it, all grown keys under it)
    let mut groups: BTreeMap<Key, (Key, Vec<&KeyDelta>)> = BTreeMap::new();
    for (key, d) in &grown {
        let mut at: Key = (*key).clone();
        let mut hops = 0;
        let owner = loop {
            let Some(parent) = paths.inc.keys.get(&at).and_then(|k| k.parent()).cloned() else {
                break None;
            };
            if grown.contains_key(&parent) && hops < 64 {
                at = parent;
                hops += 1;
                continue;
            }
            break Some(parent);
        };
        let Some(owner) = owner else { continue };
        let entry = groups
            .entry(owner)
            .or_insert_with(|| (at.clone(), Vec::new()));
        if paths
            .delta(&entry.0)
            .is_some_and(|e| e.inc_calls < paths.delta(&at).map_or(0.0, |a| a.inc_calls))
        {
            entry.0 = at.clone();
        }
        entry.1.push(d);
    }
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for (owner, (child, keys)) in &groups {
        let total = r1(keys.iter().map(|d| d.delta.max(0.0)).sum());
        let pct = explains_pct(total, paths.d_ms);
        rows.push(
            json!({"caller_service": owner.0, "caller_operation": owner.1,
                         "delta_ms": total, "explains_pct": pct}),
        );
        for d in keys {
            rows.push(json!({"service": d.key.0, "operation": d.key.1, "span_kind": d.key.2.as_str(),
                             "caller_service": owner.0, "caller_operation": owner.1,
                             "baseline_calls_per_trace": d.base_calls, "incident_calls_per_trace": d.inc_calls,
                             "baseline_ms_per_call": d.base_per_call, "incident_ms_per_call": d.inc_per_call,
                             "delta_ms": d.delta}));
            if d.inc_per_call <= 1.3 * d.base_per_call.max(0.1) {
                suppressed.insert(d.key.clone());
            }
        }
        let Some(c) = paths.delta(child) else {
            continue;
        };
        if paths.d_ms <= 0.0 || total / paths.d_ms < min_explains {
            continue;
        }
        let mut cand = Candidate::new(CauseKind::Calls, &owner.0, Some(&owner.1));
        cand.key = Some(owner.clone());
        cand.chain = paths
            .inc
            .keys
            .get(owner)
            .map(|k| k.chain())
            .unwrap_or_default();
        cand.explains = (total / paths.d_ms).min(1.0);
        cand.z = c.calls_z;
        cand.claim = format!(
            "{} {} calls {} {} {} times per request (baseline {}), {} ms → {} ms per call; the extra calls explain {pct} % of the increase",
            owner.0,
            owner.1,
            c.key.0,
            c.key.1,
            c.inc_calls,
            c.base_calls,
            c.base_per_call,
            c.inc_per_call
        );
        cand.trace_ids = paths
            .inc
            .keys
            .get(child)
            .map(|k| k.exemplars.iter().map(|(_, t)| t.clone()).collect())
            .unwrap_or_default();
        out.push((cand, owner.clone()));
    }
    let first_owner = out.first().map(|(_, o)| o.clone());
    let service = first_owner
        .as_ref()
        .map_or(ctx.service().to_owned(), |o| o.0.clone());
    let w = ctx.incident;
    let reproduce = reproduce::traces(
        &service,
        w,
        &TraceList {
            operation: first_owner.as_ref().map(|o| o.1.as_str()),
            keep_reason: Some("sampled"),
            limit: ctx.settings().trace_limit,
            ..TraceList::default()
        },
    );
    let id = ctx.evidence(Item {
        check: Check::CallCounts,
        query: "operations called more times per request than in the baseline, and their callers"
            .to_owned(),
        reproduce,
        rows,
        cut: false,
        trace_ids: out.iter().flat_map(|(c, _)| c.trace_ids.clone()).collect(),
    });
    let cands = out
        .into_iter()
        .map(|(mut c, _)| {
            c.evidence = vec![id.clone(), paths.evidence.clone()];
            c
        })
        .collect();
    (cands, suppressed)
}
