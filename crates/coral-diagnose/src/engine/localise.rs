//! Check 3, localise: which of the service's operations, agents and span
//! kinds carry the change, each slice with its share of the regression
//! (extra time for latency, extra failures for errors, extra requests for
//! traffic).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::data::{DiagnosisData, RedRow};
use crate::engine::context::Ctx;
use crate::engine::symptom::SymptomResult;
use crate::evidence::{Check, Item};
use crate::question::Symptom;
use crate::red::{RedAcc, by_key, request_rows};
use crate::reproduce;
use crate::robust::{r1, r4};

/// How a row is sliced.
type SliceKey = fn(&RedRow) -> String;

/// Extra time, failures and requests of a slice.
fn excess(b: &RedAcc, i: &RedAcc, base_minutes: f64, inc_minutes: f64) -> [f64; 3] {
    let latency = i.requests as f64 * (i.mean_ms() - b.mean_ms());
    let errors = i.errors as f64 - i.requests as f64 * b.error_rate();
    let traffic = i.requests as f64 / inc_minutes - b.requests as f64 / base_minutes;
    [latency, errors, traffic]
}

/// Runs the check; returns the evidence id.
pub(crate) fn check<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    rows: &[RedRow],
    symptom: &SymptomResult,
) -> String {
    let chosen = request_rows(rows, ctx.req.operation.as_deref());
    let (base_w, inc_w) = (ctx.baseline, ctx.incident);
    let (bm, im) = (
        base_w.minutes().max(1) as f64,
        inc_w.minutes().max(1) as f64,
    );
    let mut out: Vec<Value> = Vec::new();
    let dims: [(&str, SliceKey); 3] = [
        ("operation", |r| r.operation.clone()),
        ("agent_id", |r| r.agent_id.clone()),
        ("span_kind", |r| r.span_kind.as_str().to_owned()),
    ];
    let mut spread = Vec::new();
    for (dim, key) in dims {
        let base_rows: Vec<&RedRow> = chosen
            .iter()
            .copied()
            .filter(|r| base_w.contains(r.minute))
            .collect();
        let inc_rows: Vec<&RedRow> = chosen
            .iter()
            .copied()
            .filter(|r| inc_w.contains(r.minute))
            .collect();
        let b = by_key(&base_rows, key);
        let i = by_key(&inc_rows, key);
        let empty = RedAcc::default();
        let mut slices: BTreeMap<&String, [f64; 3]> = BTreeMap::new();
        for (k, ia) in &i {
            slices.insert(k, excess(b.get(k).unwrap_or(&empty), ia, bm, im));
        }
        let totals: Vec<f64> = (0..3)
            .map(|m| slices.values().map(|e| e[m].max(0.0)).sum::<f64>())
            .collect();
        for (k, e) in &slices {
            let ia = &i[*k];
            let ba = b.get(*k).unwrap_or(&empty);
            let share = |m: usize| {
                if totals[m] > 0.0 {
                    r1(e[m].max(0.0) / totals[m] * 100.0)
                } else {
                    0.0
                }
            };
            if dim == "agent_id"
                && i.len() >= 2
                && symptom.confirmed(Symptom::Latency)
                && share(0) < 70.0
            {
                spread.push((*k).clone());
            }
            out.push(json!({"dimension": dim, "value": k,
                            "baseline_requests": ba.requests, "incident_requests": ia.requests,
                            "baseline_p95_ms": r1(ba.quantile(0.95)), "incident_p95_ms": r1(ia.quantile(0.95)),
                            "baseline_error_rate": r4(ba.error_rate()), "incident_error_rate": r4(ia.error_rate()),
                            "share_of_latency_pct": share(0), "share_of_errors_pct": share(1),
                            "share_of_traffic_pct": share(2)}));
        }
    }
    let service = ctx.service().to_owned();
    let id = ctx.evidence(Item {
        check: Check::Localise,
        query: format!("{service}'s RED per operation, agent and span kind, baseline vs incident, with each slice's share of the change"),
        reproduce: reproduce::otel_by_operation(&service, inc_w),
        rows: out,
        cut: false,
        trace_ids: Vec::new(),
    });
    if spread.len() >= 2 {
        ctx.rule_out(
            Check::Localise.as_str(),
            format!("one {service} agent"),
            format!(
                "the slowdown is spread over {} agents ({})",
                spread.len(),
                spread.join(", ")
            ),
            vec![id.clone()],
        );
    }
    id
}
