//! The diagnosis engine: [`diagnose`] runs the checks in order over a
//! [`DiagnosisData`] source and returns a [`Diagnosis`].
//!
//! 1. coverage ([`coverage`]), 2. symptom ([`symptom`], with the change
//!    point that narrows the default incident window), 3. localise
//!    ([`localise`]), 4. critical-path attribution ([`latency`], over
//!    [`paths`]), 5. error origins ([`errors`]), 6. call counts
//!    ([`calls`]), 7. attributes ([`attributes`]), 8. hosts ([`hosts`]),
//!    9. changes ([`changes`]); then [`rank`]. "What's the slowest
//!    endpoint?" first ranks the operations ([`endpoints`]).

mod attributes;
mod calls;
mod candidate;
mod changes;
mod context;
mod coverage;
mod endpoints;
mod errors;
mod hosts;
mod latency;
mod localise;
mod paths;
mod rank;
mod request;
mod symptom;

use serde_json::json;

pub use request::{Request, Settings};

use crate::data::{DiagnosisData, RedRow, TraceFilter, TraceSelect};
use crate::error::DiagnoseError;
use crate::evidence::{Check, EvidenceLog, Item};
use crate::question::{Intent, Symptom};
use crate::report::{
    Cause, Change, Coverage, Diagnosis, SymptomReport, Target, VERSION, Verdict, Windows,
};
use crate::reproduce::{self, TraceList};
use crate::robust::r1;
use crate::time::{Window, clock, floor_minute};
use candidate::Candidate;
use context::Ctx;
use symptom::SymptomResult;

/// Diagnoses `request` over `data`.
pub fn diagnose<D: DiagnosisData>(data: &D, request: &Request) -> Result<Diagnosis, DiagnoseError> {
    let s = &request.settings;
    let end = floor_minute(request.now);
    let incident0 = request
        .incident
        .unwrap_or(Window::new(end - s.incident_minutes * 60, end));
    if incident0.from >= incident0.to {
        return Err(DiagnoseError::EmptyWindow {
            which: "incident",
            from: incident0.from,
            to: incident0.to,
        });
    }
    if let Some(b) = request.baseline
        && b.from >= b.to
    {
        return Err(DiagnoseError::EmptyWindow {
            which: "baseline",
            from: b.from,
            to: b.to,
        });
    }
    let baseline0 = request.baseline.unwrap_or(Window::new(
        incident0.from - s.baseline_minutes * 60,
        incident0.from,
    ));
    let red = |w: Window| {
        data.red(&request.service, w)
            .map_err(|e| DiagnoseError::Data {
                query: "red",
                source: Box::new(e),
            })
    };
    let rows: Vec<RedRow> = if request.baseline.is_some() {
        let mut r = red(baseline0)?;
        r.extend(red(incident0)?);
        r
    } else {
        red(Window::new(baseline0.from, incident0.to))?
    };
    let symptoms: Vec<Symptom> = if request.symptoms.is_empty() {
        Symptom::ALL.to_vec()
    } else {
        request.symptoms.clone()
    };
    let incident = if request.narrow && request.baseline.is_none() {
        symptom::narrow(
            &rows,
            request.operation.as_deref(),
            &symptoms,
            incident0,
            baseline0,
            s,
        )
    } else {
        incident0
    };
    let baseline = request.baseline.unwrap_or(Window::new(
        incident.from - s.baseline_minutes * 60,
        incident.from,
    ));
    let mut req = request.clone();
    req.symptoms = symptoms;
    let mut ctx = Ctx {
        data,
        req,
        incident,
        baseline,
        log: EvidenceLog::default(),
        ruled_out: Vec::new(),
        coverage: Coverage::default(),
    };
    let mut endpoints = Vec::new();
    if ctx.req.intent == Intent::SlowestEndpoint {
        let (eps, _) = endpoints::rank(&mut ctx, &rows);
        if let Some(top) = eps.first() {
            ctx.req.operation = Some(top.operation.clone());
        }
        ctx.req.symptoms = vec![Symptom::Latency];
        endpoints = eps;
    }
    let thin = coverage::check(&mut ctx, &rows)?;
    let symptom = symptom::check(&mut ctx, &rows);
    if thin {
        return Ok(finish(
            ctx,
            Verdict::Inconclusive,
            Some(&symptom),
            Vec::new(),
            endpoints,
            Vec::new(),
        ));
    }
    if ctx.req.intent == Intent::WhatChanged {
        return what_changed(ctx, &rows, symptom);
    }
    let asked = ctx.req.symptoms.clone();
    let confirmed: Vec<Symptom> = asked
        .iter()
        .copied()
        .filter(|x| symptom.confirmed(*x))
        .collect();
    if confirmed.is_empty() {
        for x in &asked {
            let m = symptom.get(*x);
            let (ev, why) = (symptom.evidence.clone(), m.why_not.clone());
            ctx.rule_out(
                Check::Symptom.as_str(),
                format!("{} {}", ctx.req.service, m.metric),
                why,
                vec![ev],
            );
        }
        exemplars(&mut ctx)?;
        return Ok(finish(
            ctx,
            Verdict::NoRegression,
            Some(&symptom),
            Vec::new(),
            endpoints,
            Vec::new(),
        ));
    }
    localise::check(&mut ctx, &rows, &symptom);
    let paths = latency::collect(&mut ctx)?;
    let mut cands: Vec<Candidate> = Vec::new();
    let latency_on = confirmed.contains(&Symptom::Latency);
    if latency_on {
        let (calls, suppressed) = calls::check(&mut ctx, &paths);
        cands.extend(calls);
        cands.extend(latency::candidates(&mut ctx, &paths, &suppressed));
    }
    let origins = if confirmed.contains(&Symptom::Errors) {
        let (o, c) = errors::check(&mut ctx, &symptom)?;
        cands.extend(c);
        Some(o)
    } else {
        None
    };
    attributes::check(&mut ctx, Some(&paths), origins.as_ref(), &mut cands);
    let hosts = if paths.enough {
        hosts::check(&mut ctx, &paths, &mut cands)?
    } else {
        None
    };
    changes::check(&mut ctx, &paths, &mut cands);
    if latency_on && let Some(t) = changes::traffic(&mut ctx, &symptom, &paths, hosts.as_ref()) {
        cands.push(t);
    }
    if confirmed.contains(&Symptom::Traffic) && !latency_on {
        cands.push(traffic_only(&ctx, &symptom));
    }
    if cands.is_empty() {
        let pct = r1(ctx.settings().min_explains * 100.0);
        ctx.missing(format!(
            "no service in the requests' trees explains at least {pct} % of the change (more sampled traces would help)"
        ));
        return Ok(finish(
            ctx,
            Verdict::Inconclusive,
            Some(&symptom),
            Vec::new(),
            endpoints,
            Vec::new(),
        ));
    }
    let causes = rank::rank(&mut ctx, cands);
    Ok(finish(
        ctx,
        Verdict::Regression,
        Some(&symptom),
        causes,
        endpoints,
        Vec::new(),
    ))
}

/// A traffic cause when traffic itself is the symptom.
fn traffic_only<D: DiagnosisData>(ctx: &Ctx<'_, D>, symptom: &SymptomResult) -> Candidate {
    let t = symptom.get(Symptom::Traffic);
    let service = ctx.service().to_owned();
    let mut c = Candidate::new(
        crate::report::CauseKind::Traffic,
        &service,
        ctx.req.operation.as_deref(),
    );
    c.chain = vec![service.clone()];
    c.explains = 1.0;
    c.z = t.z;
    c.claim = format!(
        "{service} receives {} requests per minute (baseline {}, {} %)",
        t.incident, t.baseline, t.change_pct
    );
    c.evidence = vec![symptom.evidence.clone()];
    c
}

/// The slowest incident traces, cited even when there is no regression.
fn exemplars<D: DiagnosisData>(ctx: &mut Ctx<'_, D>) -> Result<(), DiagnoseError> {
    let batch = ctx.traces(&TraceFilter {
        window: ctx.incident,
        service: ctx.service().to_owned(),
        operation: ctx.req.operation.clone(),
        select: TraceSelect::Any,
        limit: 5,
    })?;
    let mut slow: Vec<(f64, String)> = batch
        .traces
        .iter()
        .map(|t| {
            let ms = t
                .spans
                .iter()
                .filter(|s| s.service == ctx.req.service)
                .map(|s| s.duration_ms())
                .fold(0.0, f64::max);
            (r1(ms), t.trace_id.clone())
        })
        .collect();
    slow.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let service = ctx.service().to_owned();
    let w = ctx.incident;
    let reproduce = reproduce::traces(
        &service,
        w,
        &TraceList {
            operation: ctx.req.operation.as_deref(),
            limit: 5,
            ..TraceList::default()
        },
    );
    let id = ctx.evidence(Item {
        check: Check::Exemplars,
        query: format!("the slowest kept traces through {service} in the incident window"),
        reproduce,
        rows: slow
            .iter()
            .map(|(ms, t)| json!({"trace_id": t, "duration_ms": ms}))
            .collect(),
        cut: batch.truncated,
        trace_ids: slow.iter().map(|(_, t)| t.clone()).collect(),
    });
    ctx.coverage.evidence.push(id);
    Ok(())
}

/// "What changed in X?": the significant metric changes and state changes.
fn what_changed<D: DiagnosisData>(
    mut ctx: Ctx<'_, D>,
    rows: &[RedRow],
    symptom: SymptomResult,
) -> Result<Diagnosis, DiagnoseError> {
    let mut changes = Vec::new();
    for x in Symptom::ALL {
        let m = symptom.get(x);
        if m.confirmed {
            changes.push(Change {
                kind: x.as_str().to_owned(),
                service: ctx.req.service.clone(),
                entity: m.metric.to_owned(),
                claim: format!(
                    "{} {} → {} ({} %)",
                    m.metric, m.baseline, m.incident, m.change_pct
                ),
                evidence: vec![symptom.evidence.clone()],
            });
        }
    }
    let loc = localise::check(&mut ctx, rows, &symptom);
    let paths = latency::collect(&mut ctx)?;
    let mut none: Vec<Candidate> = Vec::new();
    let state = changes::check(&mut ctx, &paths, &mut none);
    let changes_id = ctx
        .log
        .items()
        .iter()
        .rev()
        .find(|e| e.check == Check::Changes.as_str())
        .map(|e| e.id.clone());
    for c in state {
        changes.push(Change {
            kind: if c.entity.starts_with("agent") {
                "agent"
            } else {
                "version"
            }
            .to_owned(),
            service: c.service,
            entity: c.entity,
            claim: c.claim,
            evidence: changes_id.iter().cloned().chain([loc.clone()]).collect(),
        });
    }
    let verdict = if changes
        .iter()
        .any(|c| ["latency", "errors", "traffic"].contains(&c.kind.as_str()))
    {
        Verdict::Regression
    } else {
        Verdict::NoRegression
    };
    Ok(finish(
        ctx,
        verdict,
        Some(&symptom),
        Vec::new(),
        Vec::new(),
        changes,
    ))
}

/// Assembles the answer.
fn finish<D: DiagnosisData>(
    ctx: Ctx<'_, D>,
    verdict: Verdict,
    symptom: Option<&SymptomResult>,
    causes: Vec<Cause>,
    endpoints: Vec<crate::report::Endpoint>,
    changes: Vec<Change>,
) -> Diagnosis {
    let asked = ctx.req.symptoms.clone();
    let primary = symptom.and_then(|s| {
        asked
            .iter()
            .map(|x| s.get(*x))
            .find(|m| m.confirmed)
            .or_else(|| asked.first().map(|x| s.get(*x)))
    });
    let symptom_report = primary.map(|m| SymptomReport {
        metric: m.metric.to_owned(),
        baseline: m.baseline,
        incident: m.incident,
        change_pct: m.change_pct,
        robust_z: m.z,
        confirmed: m.confirmed,
        evidence: symptom
            .map(|s| vec![s.evidence.clone()])
            .unwrap_or_default(),
    });
    let target = Target {
        service: ctx.req.service.clone(),
        symptom: if ctx.req.intent == Intent::WhatChanged {
            "changes".to_owned()
        } else {
            primary.map_or("latency", |m| m.symptom.as_str()).to_owned()
        },
        operation: ctx.req.operation.clone(),
        symptoms: asked,
    };
    let summary = summary_line(&ctx, verdict, symptom_report.as_ref(), &causes, &changes);
    Diagnosis {
        version: VERSION,
        verdict,
        question: ctx.req.question.clone(),
        target,
        windows: Windows {
            incident: ctx.incident,
            baseline: ctx.baseline,
        },
        symptom: symptom_report,
        causes,
        ruled_out: ctx.ruled_out,
        evidence: ctx.log.into_items(),
        coverage: ctx.coverage,
        endpoints,
        changes,
        summary,
    }
}

fn describe(metric: &str) -> (&'static str, &'static str) {
    match metric {
        "p95_ms" => ("P95", " ms"),
        "error_rate" => ("error rate", ""),
        _ => ("requests per minute", ""),
    }
}

fn summary_line<D: DiagnosisData>(
    ctx: &Ctx<'_, D>,
    verdict: Verdict,
    symptom: Option<&SymptomReport>,
    causes: &[Cause],
    changes: &[Change],
) -> String {
    let service = &ctx.req.service;
    let numbers = symptom.map_or(String::new(), |m| {
        let (name, unit) = describe(&m.metric);
        format!(
            "{name} {}{unit} → {}{unit} ({:+} %)",
            m.baseline, m.incident, m.change_pct
        )
    });
    match verdict {
        Verdict::Regression if ctx.req.intent == Intent::WhatChanged => format!(
            "{service}: {} significant change(s) since {} UTC; {numbers}",
            changes.len(),
            clock(ctx.incident.from)
        ),
        Verdict::Regression => {
            let top = causes.first().map_or(String::new(), |c| {
                format!(
                    "; top cause: {} {} ({}, explains {} %)",
                    c.service,
                    c.operation.as_deref().unwrap_or(""),
                    c.kind.as_str(),
                    c.explains_pct
                )
            });
            format!(
                "{service}: regression since {} UTC: {numbers}{top}",
                clock(ctx.incident.from)
            )
        }
        Verdict::NoRegression => format!(
            "{service}: no regression between {}–{} UTC and the baseline: {numbers}",
            clock(ctx.incident.from),
            clock(ctx.incident.to)
        ),
        Verdict::Inconclusive => format!(
            "{service}: inconclusive: {}",
            ctx.coverage
                .missing
                .first()
                .cloned()
                .unwrap_or_else(|| "too little data".to_owned())
        ),
    }
}
