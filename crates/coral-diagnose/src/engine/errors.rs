//! Check 5, error origins: in each failing request of the target, follow
//! the failing spans down to the deepest one; group those origins by
//! (service, operation, status message, code) and compare with the
//! baseline at the incident's traffic. Error spans are all kept by the
//! agents' filters, so partial traces still show the whole failing chain.

use std::collections::BTreeMap;

use serde_json::json;

use crate::data::{DiagnosisData, Trace, TraceFilter, TraceSelect};
use crate::engine::candidate::Candidate;
use crate::engine::context::Ctx;
use crate::engine::latency::explains_pct;
use crate::engine::paths::{Tree, subtree};
use crate::engine::symptom::SymptomResult;
use crate::error::DiagnoseError;
use crate::evidence::{Check, Item};
use crate::report::CauseKind;
use crate::reproduce::{self, TraceList};
use crate::robust::r1;
use crate::time::Window;

/// Where failures start.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct OriginKey {
    pub service: String,
    pub operation: String,
    pub message: String,
    pub code: i64,
}

/// One origin over both windows.
#[derive(Debug, Clone, Default)]
pub(crate) struct OriginGroup {
    pub base: f64,
    pub inc: f64,
    pub expected: f64,
    pub excess: f64,
    pub chains: BTreeMap<Vec<String>, usize>,
    pub trace_ids: Vec<String>,
    /// Incident failures per `service.version` and per agent.
    pub versions: BTreeMap<String, f64>,
    pub agents: BTreeMap<String, f64>,
    pub hostnames: BTreeMap<String, String>,
}

/// The deepest failing span under the failing entry (index 0).
fn origin(tree: &Tree<'_>) -> usize {
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); tree.spans.len()];
    for (i, p) in tree.parent.iter().enumerate() {
        if let Some(p) = p {
            children[*p].push(i);
        }
    }
    let mut best = (0usize, 0usize);
    let mut stack = vec![(0usize, 0usize)];
    while let Some((at, depth)) = stack.pop() {
        let better = depth > best.1
            || (depth == best.1 && tree.spans[at].start_ns < tree.spans[best.0].start_ns);
        if better {
            best = (at, depth);
        }
        for &c in &children[at] {
            if tree.spans[c].is_error {
                stack.push((c, depth + 1));
            }
        }
    }
    best.0
}

fn tally(
    traces: &[Trace],
    service: &str,
    operation: Option<&str>,
    scale: f64,
    inc: bool,
    groups: &mut BTreeMap<OriginKey, OriginGroup>,
) -> usize {
    let mut failing = 0;
    for trace in traces {
        let Some(tree) = subtree(trace, service, operation, true) else {
            continue;
        };
        failing += 1;
        let o = origin(&tree);
        let s = tree.spans[o];
        let key = OriginKey {
            service: s.service.clone(),
            operation: s.operation.clone(),
            message: s.status_message.clone(),
            code: s.status_code(),
        };
        let g = groups.entry(key).or_default();
        if inc {
            g.inc += scale;
            *g.chains.entry(tree.chain(o)).or_default() += 1;
            *g.versions.entry(s.service_version.clone()).or_default() += 1.0;
            *g.agents.entry(s.agent_id.clone()).or_default() += 1.0;
            g.hostnames.insert(s.agent_id.clone(), s.host.clone());
            if g.trace_ids.len() < 3 {
                g.trace_ids.push(trace.trace_id.clone());
            }
        } else {
            g.base += scale;
        }
    }
    failing
}

/// Error origins of both windows.
pub(crate) struct Origins {
    pub groups: BTreeMap<OriginKey, OriginGroup>,
}

fn error_command<D: DiagnosisData>(ctx: &Ctx<'_, D>, w: Window) -> String {
    reproduce::traces(
        ctx.service(),
        w,
        &TraceList {
            operation: ctx.req.operation.as_deref(),
            errors: true,
            limit: ctx.settings().trace_limit,
            ..TraceList::default()
        },
    )
}

/// Runs the check; returns the origins and error candidates.
pub(crate) fn check<D: DiagnosisData>(
    ctx: &mut Ctx<'_, D>,
    symptom: &SymptomResult,
) -> Result<(Origins, Vec<Candidate>), DiagnoseError> {
    let service = ctx.service().to_owned();
    let op = ctx.req.operation.clone();
    let mut groups: BTreeMap<OriginKey, OriginGroup> = BTreeMap::new();
    let mut cut = false;
    let mut failing = [0usize; 2];
    for (n, (w, inc)) in [(ctx.baseline, false), (ctx.incident, true)]
        .into_iter()
        .enumerate()
    {
        let batch = ctx.traces(&TraceFilter {
            window: w,
            service: service.clone(),
            operation: op.clone(),
            select: TraceSelect::Errors,
            limit: ctx.settings().trace_limit,
        })?;
        cut |= batch.truncated;
        let scale = if batch.truncated && !batch.traces.is_empty() {
            batch.matched as f64 / batch.traces.len() as f64
        } else {
            1.0
        };
        failing[n] = tally(
            &batch.traces,
            &service,
            op.as_deref(),
            scale,
            inc,
            &mut groups,
        );
    }
    ctx.coverage.error_traces.baseline = failing[0];
    ctx.coverage.error_traces.incident = failing[1];
    let ratio = if symptom.base.requests > 0 {
        symptom.inc.requests as f64 / symptom.base.requests as f64
    } else {
        1.0
    };
    for g in groups.values_mut() {
        g.base = r1(g.base);
        g.inc = r1(g.inc);
        g.expected = r1(g.base * ratio);
        g.excess = r1(g.inc - g.expected);
    }
    let positive: f64 = groups.values().map(|g| g.excess.max(0.0)).sum();
    let red_excess =
        symptom.inc.errors as f64 - symptom.base.error_rate() * symptom.inc.requests as f64;
    let denominator = positive.max(red_excess).max(1.0);

    let mut ordered: Vec<(&OriginKey, &OriginGroup)> = groups.iter().collect();
    ordered.sort_by(|a, b| b.1.excess.total_cmp(&a.1.excess).then_with(|| a.0.cmp(b.0)));
    let rows = ordered
        .iter()
        .map(|(k, g)| {
            json!({"service": k.service, "operation": k.operation, "status_message": k.message,
                   "code": k.code, "baseline_failures": g.base, "incident_failures": g.inc,
                   "expected_failures": g.expected, "excess_failures": g.excess,
                   "explains_pct": explains_pct(g.excess, denominator)})
        })
        .collect();
    let trace_ids: Vec<String> = ordered
        .iter()
        .filter(|(_, g)| g.excess > 0.0)
        .flat_map(|(_, g)| g.trace_ids.clone())
        .collect();
    let w = ctx.incident;
    let evidence = ctx.evidence(Item {
        check: Check::ErrorOrigins,
        query: format!(
            "deepest failing span of each failing {service} request, by (service, operation, message, code), baseline vs incident"
        ),
        reproduce: error_command(ctx, w),
        rows,
        cut,
        trace_ids,
    });

    let s = ctx.settings().clone();
    let mut out = Vec::new();
    for (k, g) in &ordered {
        let share = g.excess / denominator;
        if g.excess <= 0.0 || g.inc < 3.0 || share < s.min_explains {
            if g.inc > 0.0 && g.excess <= 0.0 {
                ctx.rule_out(
                    Check::ErrorOrigins.as_str(),
                    format!("{} {}", k.service, k.operation),
                    format!(
                        "fails as often as in the baseline ({} vs {} expected)",
                        g.inc, g.expected
                    ),
                    vec![evidence.clone()],
                );
            }
            continue;
        }
        let mut c = Candidate::new(CauseKind::Errors, &k.service, Some(&k.operation));
        c.chain = g
            .chains
            .iter()
            .max_by_key(|(c, n)| (**n, std::cmp::Reverse((*c).clone())))
            .map(|(c, _)| c.clone())
            .unwrap_or_else(|| vec![k.service.clone()]);
        c.explains = share.min(1.0);
        c.z = g.excess / g.expected.max(1.0).sqrt();
        let code = if k.code != 0 {
            format!(" (code {})", k.code)
        } else {
            String::new()
        };
        c.claim = format!(
            "{} {} fails with \"{}\"{code} at the origin of {} failing requests (baseline {}, {} expected at this traffic), explains {} % of the extra failures",
            k.service,
            k.operation,
            k.message,
            g.inc,
            g.base,
            g.expected,
            explains_pct(g.excess, denominator)
        );
        c.evidence.push(evidence.clone());
        c.trace_ids = g.trace_ids.clone();
        out.push(c);
    }
    Ok((Origins { groups }, out))
}
