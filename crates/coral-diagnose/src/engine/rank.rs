//! Ranking candidates into causes: by the share of the regression they
//! explain, a state change (new version, traffic) first on a tie; one cause
//! per service; each cause gets an exemplars evidence item with its traces.

use serde_json::json;

use crate::data::DiagnosisData;
use crate::engine::candidate::Candidate;
use crate::engine::context::Ctx;
use crate::evidence::{Check, Item};
use crate::report::{Cause, CauseKind};
use crate::reproduce;
use crate::robust::r1;

fn score(c: &Candidate) -> f64 {
    let bonus = match c.kind {
        CauseKind::Change | CauseKind::Traffic => 0.02,
        _ => 0.0,
    };
    c.explains.clamp(0.0, 1.0) + bonus
}

/// Orders, deduplicates and numbers the causes.
pub(crate) fn rank<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    mut cands: Vec<Candidate>,
) -> Vec<Cause> {
    cands.sort_by(|a, b| {
        score(b)
            .total_cmp(&score(a))
            .then_with(|| b.z.total_cmp(&a.z))
            .then_with(|| a.service.cmp(&b.service))
    });
    let mut kept: Vec<Candidate> = Vec::new();
    for c in cands {
        if let Some(k) = kept.iter_mut().find(|k| k.service == c.service) {
            for e in c.evidence {
                if !k.evidence.contains(&e) {
                    k.evidence.push(e);
                }
            }
            continue;
        }
        kept.push(c);
    }
    kept.truncate(ctx.settings().max_causes);
    let mut out = Vec::new();
    for (i, c) in kept.into_iter().enumerate() {
        let mut evidence = c.evidence.clone();
        if !c.trace_ids.is_empty() {
            let id = ctx.evidence(Item {
                check: Check::Exemplars,
                query: format!(
                    "incident traces that show {} {}",
                    c.service,
                    c.operation.as_deref().unwrap_or("")
                ),
                reproduce: reproduce::trace(&c.trace_ids[0]),
                rows: c.trace_ids.iter().map(|t| json!({"trace_id": t})).collect(),
                cut: false,
                trace_ids: c.trace_ids.clone(),
            });
            evidence.push(id);
        }
        out.push(Cause {
            rank: i + 1,
            kind: c.kind,
            service: c.service.clone(),
            operation: c.operation.clone(),
            agent_id: c.agent_id.clone(),
            host: c.host.clone(),
            chain: c.chain.clone(),
            explains_pct: r1((c.explains * 100.0).clamp(0.0, 100.0)),
            score: (score(&c) * 100.0).round() / 100.0,
            claim: c.full_claim(),
            evidence,
        });
    }
    out
}
