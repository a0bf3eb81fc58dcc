//! "What's the slowest endpoint in X?": X's operations ranked by incident
//! P95, with their baseline and change.

use serde_json::json;

use crate::data::{DiagnosisData, RedRow};
use crate::engine::context::Ctx;
use crate::evidence::{Check, Item};
use crate::red::{RedAcc, by_key, request_rows};
use crate::report::Endpoint;
use crate::reproduce;
use crate::robust::{change_pct, r1};

/// Ranks the operations; returns them and the evidence id.
pub(crate) fn rank<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    rows: &[RedRow],
) -> (Vec<Endpoint>, String) {
    let chosen = request_rows(rows, None);
    let (bw, iw) = (ctx.baseline, ctx.incident);
    let base: Vec<&RedRow> = chosen
        .iter()
        .copied()
        .filter(|r| bw.contains(r.minute))
        .collect();
    let inc: Vec<&RedRow> = chosen
        .iter()
        .copied()
        .filter(|r| iw.contains(r.minute))
        .collect();
    let b = by_key(&base, |r| r.operation.clone());
    let i = by_key(&inc, |r| r.operation.clone());
    let empty = RedAcc::default();
    let mut endpoints: Vec<Endpoint> = i
        .iter()
        .filter(|(_, a)| a.requests > 0)
        .map(|(op, a)| {
            let (bp, ip) = (
                r1(b.get(op).unwrap_or(&empty).quantile(0.95)),
                r1(a.quantile(0.95)),
            );
            Endpoint {
                operation: op.clone(),
                p95_ms: ip,
                baseline_p95_ms: bp,
                change_pct: change_pct(bp, ip),
                requests: a.requests,
            }
        })
        .collect();
    endpoints.sort_by(|a, b| {
        b.p95_ms
            .total_cmp(&a.p95_ms)
            .then_with(|| a.operation.cmp(&b.operation))
    });
    let rows = endpoints
        .iter()
        .map(|e| {
            json!({"operation": e.operation, "p95_ms": e.p95_ms, "baseline_p95_ms": e.baseline_p95_ms,
                   "change_pct": e.change_pct, "requests": e.requests})
        })
        .collect();
    let service = ctx.service().to_owned();
    let id = ctx.evidence(Item {
        check: Check::Endpoints,
        query: format!("{service}'s operations by incident P95, with the baseline P95"),
        reproduce: reproduce::otel_by_operation(&service, iw),
        rows,
        cut: false,
        trace_ids: Vec::new(),
    });
    (endpoints, id)
}
