//! Check 4, critical-path attribution: the self time on the critical path
//! per (service, operation) over trace-id-sampled traces of both windows,
//! per trace; each key's increase against the increase of the target's
//! request (`explains`). Blame lands where the time is added: a caller
//! whose own time is unchanged passes it down to the child that grew.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use crate::data::{DiagnosisData, TraceFilter, TraceSelect};
use crate::engine::candidate::Candidate;
use crate::engine::context::Ctx;
use crate::engine::paths::{Key, PathAgg};
use crate::error::DiagnoseError;
use crate::evidence::{Check, Item};
use crate::report::CauseKind;
use crate::reproduce::{self, TraceList};
use crate::robust::{r1, welch_z};
use crate::time::Window;

/// A key compared across the windows.
#[derive(Debug, Clone)]
pub(crate) struct KeyDelta {
    pub key: Key,
    pub base_ms: f64,
    pub inc_ms: f64,
    pub delta: f64,
    pub z: f64,
    pub base_calls: f64,
    pub inc_calls: f64,
    pub calls_z: f64,
    pub base_per_call: f64,
    pub inc_per_call: f64,
}

/// Sampled traces of both windows, aggregated and compared.
pub(crate) struct Paths {
    pub base: PathAgg,
    pub inc: PathAgg,
    /// Increase of the mean critical path per request, ms.
    pub d_ms: f64,
    /// Keys, largest increase first.
    pub deltas: Vec<KeyDelta>,
    /// Evidence: baseline traces, incident traces and the comparison.
    pub evidence: String,
    /// Enough traces in both windows.
    pub enough: bool,
}

impl Paths {
    pub(crate) fn delta(&self, key: &Key) -> Option<&KeyDelta> {
        self.deltas.iter().find(|d| &d.key == key)
    }
}

fn fetch<D: DiagnosisData>(
    ctx: &Ctx<'_, D>,
    window: Window,
) -> Result<(PathAgg, bool, usize), DiagnoseError> {
    let batch = ctx.traces(&TraceFilter {
        window,
        service: ctx.service().to_owned(),
        operation: ctx.req.operation.clone(),
        select: TraceSelect::Sampled,
        limit: ctx.settings().trace_limit,
    })?;
    let agg = PathAgg::build(&batch.traces, ctx.service(), ctx.req.operation.as_deref());
    Ok((agg, batch.truncated, batch.matched))
}

fn sampled_command<D: DiagnosisData>(ctx: &Ctx<'_, D>, w: Window) -> String {
    reproduce::traces(
        ctx.service(),
        w,
        &TraceList {
            operation: ctx.req.operation.as_deref(),
            keep_reason: Some("sampled"),
            limit: ctx.settings().trace_limit,
            ..TraceList::default()
        },
    )
}

/// Fetches and compares the sampled traces.
pub(crate) fn collect<D: DiagnosisData>(ctx: &mut Ctx<'_, D>) -> Result<Paths, DiagnoseError> {
    let (base, base_cut, base_matched) = fetch(ctx, ctx.baseline)?;
    let (inc, inc_cut, inc_matched) = fetch(ctx, ctx.incident)?;
    ctx.coverage.sampled_traces.baseline = base.traces;
    ctx.coverage.sampled_traces.incident = inc.traces;
    let (nb, ni) = (base.traces as f64, inc.traces as f64);
    let keys: BTreeSet<&Key> = base.keys.keys().chain(inc.keys.keys()).collect();
    let mut deltas: Vec<KeyDelta> = keys
        .into_iter()
        .map(|k| {
            let empty = Default::default();
            let b = base.keys.get(k).unwrap_or(&empty);
            let i = inc.keys.get(k).unwrap_or(&empty);
            KeyDelta {
                key: k.clone(),
                base_ms: r1(base.self_ms(k)),
                inc_ms: r1(inc.self_ms(k)),
                delta: r1(inc.self_ms(k) - base.self_ms(k)),
                z: r1(welch_z(&b.self_ms, nb, &i.self_ms, ni)),
                base_calls: r1(base.calls(k)),
                inc_calls: r1(inc.calls(k)),
                calls_z: r1(welch_z(&b.calls, nb, &i.calls, ni)),
                base_per_call: r1(b.per_call_ms()),
                inc_per_call: r1(i.per_call_ms()),
            }
        })
        .collect();
    deltas.sort_by(|a, b| b.delta.total_cmp(&a.delta).then_with(|| a.key.cmp(&b.key)));
    let d_ms = r1(inc.root_mean() - base.root_mean());
    let enough =
        base.traces >= ctx.settings().min_traces && inc.traces >= ctx.settings().min_traces;

    let summary = |name: &str, a: &PathAgg, matched: usize, cut: bool| {
        json!({"window": name, "traces": a.traces, "matched": matched, "cut": cut,
               "mean_critical_path_ms": r1(a.root_mean())})
    };
    let service = ctx.service().to_owned();
    let base_id = ctx.evidence(Item {
        check: Check::CriticalPath,
        query: format!("trace-id-sampled traces through {service} in the baseline window"),
        reproduce: sampled_command(ctx, ctx.baseline),
        rows: vec![summary("baseline", &base, base_matched, base_cut)],
        cut: base_cut,
        trace_ids: base.slowest.iter().map(|(_, t)| t.clone()).collect(),
    });
    let mut rows = vec![
        summary("baseline", &base, base_matched, base_cut),
        summary("incident", &inc, inc_matched, inc_cut),
        json!({"critical_path_increase_ms": d_ms}),
    ];
    for d in &deltas {
        if d.base_ms == 0.0 && d.inc_ms == 0.0 {
            continue;
        }
        rows.push(json!({
            "service": d.key.0, "operation": d.key.1, "span_kind": d.key.2.as_str(),
            "baseline_ms_per_trace": d.base_ms, "incident_ms_per_trace": d.inc_ms,
            "delta_ms": d.delta, "explains_pct": explains_pct(d.delta, d_ms), "z": d.z,
            "baseline_calls_per_trace": d.base_calls, "incident_calls_per_trace": d.inc_calls,
            "baseline_ms_per_call": d.base_per_call, "incident_ms_per_call": d.inc_per_call,
        }));
    }
    let inc_id = ctx.evidence(Item {
        check: Check::CriticalPath,
        query: format!(
            "self time on the critical path of {service}'s requests per (service, operation), per trace, sampled traces of both windows"
        ),
        reproduce: sampled_command(ctx, ctx.incident),
        rows,
        cut: inc_cut,
        trace_ids: inc.slowest.iter().map(|(_, t)| t.clone()).collect(),
    });
    let _ = base_id;
    if !enough {
        ctx.missing(format!(
            "sampled traces through {service}: {} in the baseline, {} in the incident (need {} each) — no attribution across services",
            base.traces,
            inc.traces,
            ctx.settings().min_traces
        ));
    }
    Ok(Paths {
        base,
        inc,
        d_ms,
        deltas,
        evidence: inc_id,
        enough,
    })
}

/// `delta` as a share of `total`, percent, one decimal, capped to 0–100.
pub(crate) fn explains_pct(delta: f64, total: f64) -> f64 {
    if total <= 0.0 {
        return 0.0;
    }
    r1((delta / total * 100.0).clamp(0.0, 100.0))
}

/// Whether a key's increase is significant enough to blame.
pub(crate) fn significant(d: &KeyDelta, d_ms: f64, min_explains: f64, z: f64) -> bool {
    d.delta >= 2.0_f64.max(min_explains * d_ms) && d.z >= z
}

/// Latency candidates: significant keys grouped by service (the service's
/// largest key names the operation), skipping `suppressed` keys (explained
/// by more calls, not slower calls).
pub(crate) fn candidates<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    paths: &Paths,
    suppressed: &BTreeSet<Key>,
) -> Vec<Candidate> {
    let s = ctx.settings().clone();
    if !paths.enough || paths.d_ms < s.min_latency_change_ms.min(2.0) {
        return Vec::new();
    }
    let mut by_service: BTreeMap<&str, Vec<&KeyDelta>> = BTreeMap::new();
    for d in &paths.deltas {
        if suppressed.contains(&d.key) || !significant(d, paths.d_ms, s.min_explains / 2.0, s.z) {
            continue;
        }
        by_service.entry(d.key.0.as_str()).or_default().push(d);
    }
    let mut out = Vec::new();
    let mut group_rows = Vec::new();
    let mut grouped = Vec::new();
    for (service, keys) in by_service {
        let total: f64 = r1(keys.iter().map(|d| d.delta).sum());
        if total / paths.d_ms < s.min_explains {
            continue;
        }
        if keys.len() > 1 {
            group_rows.push(json!({"service": service, "operations": keys.len(),
                                   "delta_ms": total, "explains_pct": explains_pct(total, paths.d_ms)}));
        }
        grouped.push((service, keys, total));
    }
    let group_id = (!group_rows.is_empty()).then(|| {
        let w = ctx.incident;
        ctx.evidence(Item {
            check: Check::CriticalPath,
            query: "critical-path increase per service, summed over its significantly slower operations".to_owned(),
            reproduce: sampled_command(ctx, w),
            rows: group_rows,
            cut: false,
            trace_ids: Vec::new(),
        })
    });
    for (service, keys, total) in grouped {
        let top = keys[0];
        let explains = total / paths.d_ms;
        let agg = &paths.inc.keys[&top.key];
        let mut c = Candidate::new(CauseKind::Latency, service, Some(&top.key.1));
        c.key = Some(top.key.clone());
        c.chain = agg.chain();
        c.explains = explains.min(1.0);
        c.z = top.z;
        let pct = explains_pct(total, paths.d_ms);
        c.claim = format!(
            "{service} {} adds {} ms per request on the critical path ({} ms → {} ms), explains {pct} % of the {} ms increase",
            top.key.1, top.delta, top.base_ms, top.inc_ms, paths.d_ms
        );
        c.evidence.push(paths.evidence.clone());
        if keys.len() > 1 {
            c.notes
                .push(format!("together with {service}'s other slower operations"));
            c.evidence.extend(group_id.clone());
        }
        c.trace_ids = agg.exemplars.iter().map(|(_, t)| t.clone()).collect();
        out.push(c);
    }
    out
}
