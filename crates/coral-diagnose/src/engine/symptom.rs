//! Check 2, the symptom: the service's RED in both windows (merged
//! sketches or histograms), each metric judged by size (relative and
//! absolute), robustness (robust z of the incident's per-minute values
//! against the baseline's) and volume. Also the change point that narrows
//! the default incident window.

use std::collections::BTreeMap;

use serde_json::json;

use crate::data::{DiagnosisData, RedRow, Source};
use crate::engine::context::Ctx;
use crate::engine::request::Settings;
use crate::evidence::{Check, Item};
use crate::question::Symptom;
use crate::red::{RedAcc, per_minute, request_rows, total};
use crate::reproduce;
use crate::robust::{Robust, change_pct, median, r1, r4};
use crate::time::{Window, rfc3339};

/// Fewer requests than this in a minute: its P95 and error rate are noise.
const MIN_MINUTE_REQUESTS: u64 = 5;

/// One metric compared across the windows.
#[derive(Debug, Clone)]
pub(crate) struct MetricChange {
    pub symptom: Symptom,
    pub metric: &'static str,
    pub baseline: f64,
    pub incident: f64,
    pub change_pct: f64,
    pub z: f64,
    pub confirmed: bool,
    /// Why it does not count, when it does not.
    pub why_not: String,
}

/// The symptom check's result.
pub(crate) struct SymptomResult {
    /// Latency, errors, traffic.
    pub changes: Vec<MetricChange>,
    /// The evidence id.
    pub evidence: String,
    /// Baseline totals.
    pub base: RedAcc,
    /// Incident totals.
    pub inc: RedAcc,
}

impl SymptomResult {
    pub(crate) fn get(&self, s: Symptom) -> &MetricChange {
        self.changes
            .iter()
            .find(|c| c.symptom == s)
            .expect("every symptom is measured")
    }

    pub(crate) fn confirmed(&self, s: Symptom) -> bool {
        self.get(s).confirmed
    }
}

/// Per-minute fits of the baseline.
struct Fits {
    p95: Robust,
    error_rate: Robust,
    requests: Robust,
    minutes: usize,
}

fn fits(series: &BTreeMap<i64, RedAcc>, baseline: Window) -> Fits {
    let minutes: Vec<&RedAcc> = series
        .range(baseline.from..baseline.to)
        .map(|(_, a)| a)
        .collect();
    let busy: Vec<&&RedAcc> = minutes
        .iter()
        .filter(|a| a.requests >= MIN_MINUTE_REQUESTS)
        .collect();
    let p95: Vec<f64> = busy.iter().map(|a| a.quantile(0.95)).collect();
    let rates: Vec<f64> = busy.iter().map(|a| a.error_rate()).collect();
    let counts: Vec<f64> = baseline
        .minute_starts()
        .map(|m| series.get(&m).map_or(0.0, |a| a.requests as f64))
        .collect();
    let p95_center = median(&p95);
    let rate_center = median(&rates);
    let mean_n = if busy.is_empty() {
        1.0
    } else {
        busy.iter().map(|a| a.requests as f64).sum::<f64>() / busy.len() as f64
    };
    let binomial = (rate_center.max(0.002) * (1.0 - rate_center) / mean_n).sqrt();
    let count_center = median(&counts);
    Fits {
        p95: Robust::fit(&p95, (0.05 * p95_center).max(1.0)),
        error_rate: Robust::fit(&rates, binomial.max(0.002)),
        requests: Robust::fit(
            &counts,
            count_center.sqrt().max(0.05 * count_center).max(1.0),
        ),
        minutes: minutes.iter().filter(|a| a.requests > 0).count(),
    }
}

/// Whether the minute `acc` is anomalous for one of `symptoms`.
fn anomalous(acc: Option<&RedAcc>, f: &Fits, symptoms: &[Symptom], s: &Settings) -> bool {
    let n = acc.map_or(0, |a| a.requests);
    symptoms.iter().any(|sym| match sym {
        Symptom::Latency => acc.is_some_and(|a| {
            let p95 = a.quantile(0.95);
            n >= MIN_MINUTE_REQUESTS
                && f.p95.z(p95) >= s.z
                && p95 >= f.p95.center * (1.0 + s.min_latency_change_pct / 100.0)
        }),
        Symptom::Errors => acc.is_some_and(|a| {
            n >= MIN_MINUTE_REQUESTS
                && f.error_rate.z(a.error_rate()) >= s.z
                && a.error_rate() - f.error_rate.center >= s.min_error_rate_change
        }),
        Symptom::Traffic => f.requests.z(n as f64).abs() >= s.z,
    })
}

/// Narrows `incident` to the minute the change starts: the earliest
/// anomalous minute from which at least 60 % of the minutes are anomalous
/// (at least two). Unchanged when no such minute exists.
pub(crate) fn narrow(
    rows: &[RedRow],
    operation: Option<&str>,
    symptoms: &[Symptom],
    incident: Window,
    baseline: Window,
    s: &Settings,
) -> Window {
    let series = per_minute(&request_rows(rows, operation));
    let f = fits(&series, baseline);
    let flags: Vec<(i64, bool)> = incident
        .minute_starts()
        .map(|m| (m, anomalous(series.get(&m), &f, symptoms, s)))
        .collect();
    for (k, &(minute, flag)) in flags.iter().enumerate() {
        if !flag {
            continue;
        }
        let rest = &flags[k..];
        let hits = rest.iter().filter(|(_, f)| *f).count();
        if hits >= 2 && hits as f64 >= 0.6 * rest.len() as f64 {
            return Window::new(minute.max(incident.from), incident.to);
        }
    }
    incident
}

/// Runs the symptom check on the service's RED rows.
pub(crate) fn check<D: DiagnosisData>(ctx: &mut Ctx<'_, D>, rows: &[RedRow]) -> SymptomResult {
    let s = ctx.settings().clone();
    let op = ctx.req.operation.clone();
    let chosen = request_rows(rows, op.as_deref());
    let source = chosen.first().map_or(Source::Otlp, |r| r.source);
    let series = per_minute(&chosen);
    let f = fits(&series, ctx.baseline);
    let in_window = |w: Window| -> Vec<&RedRow> {
        chosen
            .iter()
            .copied()
            .filter(|r| w.contains(r.minute))
            .collect()
    };
    let base = total(&in_window(ctx.baseline));
    let inc = total(&in_window(ctx.incident));
    let inc_minutes: Vec<(i64, Option<&RedAcc>)> = ctx
        .incident
        .minute_starts()
        .map(|m| (m, series.get(&m)))
        .collect();
    let busy_median = |value: &dyn Fn(&RedAcc) -> f64| {
        let v: Vec<f64> = inc_minutes
            .iter()
            .filter_map(|(_, a)| *a)
            .filter(|a| a.requests >= MIN_MINUTE_REQUESTS)
            .map(value)
            .collect();
        median(&v)
    };
    let base_rpm = base.requests as f64 / ctx.baseline.minutes().max(1) as f64;
    let inc_rpm = inc.requests as f64 / ctx.incident.minutes().max(1) as f64;

    let thin_incident = inc.requests < s.min_requests;
    let thin_baseline = f.minutes < s.min_baseline_minutes;
    let thin = |why: &mut String| {
        if thin_incident {
            *why = format!(
                "only {} requests in the incident window (need {})",
                inc.requests, s.min_requests
            );
        } else if thin_baseline {
            *why = format!(
                "only {} baseline minutes with data (need {})",
                f.minutes, s.min_baseline_minutes
            );
        }
        thin_incident || thin_baseline
    };

    // Latency: merged P95.
    let (b95, i95) = (r1(base.quantile(0.95)), r1(inc.quantile(0.95)));
    let z_lat = r1(f.p95.z(busy_median(&|a| a.quantile(0.95))));
    let mut why = String::new();
    let latency_ok = !thin(&mut why)
        && i95 - b95 >= s.min_latency_change_ms
        && i95 >= b95 * (1.0 + s.min_latency_change_pct / 100.0)
        && z_lat >= s.z;
    if why.is_empty() && !latency_ok {
        why = format!(
            "P95 {b95} ms → {i95} ms ({:+} %, robust z {z_lat}) is within normal variation",
            change_pct(b95, i95)
        );
    }
    let latency = MetricChange {
        symptom: Symptom::Latency,
        metric: "p95_ms",
        baseline: b95,
        incident: i95,
        change_pct: change_pct(b95, i95),
        z: z_lat,
        confirmed: latency_ok,
        why_not: why,
    };

    // Errors: error rate.
    let (br, ir) = (r4(base.error_rate()), r4(inc.error_rate()));
    let z_err = r1(f.error_rate.z(busy_median(&|a| a.error_rate())));
    let mut why = String::new();
    let errors_ok = !thin(&mut why)
        && inc.errors >= s.min_errors
        && ir - br >= s.min_error_rate_change
        && ir >= 1.5 * br
        && z_err >= s.z;
    if why.is_empty() && !errors_ok {
        why = format!(
            "error rate {br} → {ir} ({} errors, robust z {z_err}) is within normal variation",
            inc.errors
        );
    }
    let errors = MetricChange {
        symptom: Symptom::Errors,
        metric: "error_rate",
        baseline: br,
        incident: ir,
        change_pct: change_pct(br, ir),
        z: z_err,
        confirmed: errors_ok,
        why_not: why,
    };

    // Traffic: requests per minute.
    let (bq, iq) = (r1(base_rpm), r1(inc_rpm));
    let counts: Vec<f64> = inc_minutes
        .iter()
        .map(|(_, a)| a.map_or(0.0, |a| a.requests as f64))
        .collect();
    let z_traffic = r1(f.requests.z(median(&counts)));
    let ratio = if bq > 0.0 { iq / bq } else { f64::INFINITY };
    let mut why = String::new();
    let traffic_ok = !thin_baseline
        && bq > 0.0
        && ((ratio >= s.traffic_ratio && z_traffic >= s.z)
            || (ratio <= 1.0 / s.traffic_ratio && z_traffic <= -s.z));
    if !traffic_ok {
        why = format!(
            "requests per minute {bq} → {iq} (robust z {z_traffic}) is within normal variation"
        );
    }
    let traffic = MetricChange {
        symptom: Symptom::Traffic,
        metric: "requests_per_minute",
        baseline: bq,
        incident: iq,
        change_pct: change_pct(bq, iq),
        z: z_traffic,
        confirmed: traffic_ok,
        why_not: why,
    };

    let summary = |name: &str, w: Window, a: &RedAcc, rpm: f64| {
        json!({"window": name, "from": rfc3339(w.from), "to": rfc3339(w.to),
               "requests": a.requests, "errors": a.errors, "error_rate": r4(a.error_rate()),
               "p50_ms": r1(a.quantile(0.5)), "p95_ms": r1(a.quantile(0.95)),
               "p99_ms": r1(a.quantile(0.99)), "requests_per_minute": r1(rpm)})
    };
    let mut out_rows = vec![
        summary("baseline", ctx.baseline, &base, base_rpm),
        summary("incident", ctx.incident, &inc, inc_rpm),
    ];
    for c in [&latency, &errors, &traffic] {
        out_rows.push(json!({"metric": c.metric, "baseline": c.baseline, "incident": c.incident,
                             "change_pct": c.change_pct, "robust_z": c.z, "confirmed": c.confirmed}));
    }
    let minute_row = |m: i64, a: &RedAcc, window: &str| {
        json!({"minute": rfc3339(m), "window": window, "requests": a.requests, "errors": a.errors,
               "p95_ms": r1(a.quantile(0.95)), "robust_z_p95": r1(f.p95.z(a.quantile(0.95)))})
    };
    for (m, a) in &inc_minutes {
        if let Some(a) = a {
            out_rows.push(minute_row(*m, a, "incident"));
        }
    }
    for (m, a) in series.range(ctx.baseline.from..ctx.baseline.to) {
        out_rows.push(minute_row(*m, a, "baseline"));
    }
    let mut samples: Vec<String> = inc.samples.clone();
    samples.truncate(3);
    let service = ctx.service().to_owned();
    let what = op
        .as_deref()
        .map_or(String::new(), |o| format!(" operation {o:?}"));
    let both = ctx.both();
    let reproduce = match (source, &op) {
        (Source::Beyla, _) => format!(
            "coral query beyla http {} --from {} --to {}",
            reproduce::quote(&service),
            rfc3339(both.from),
            rfc3339(both.to)
        ),
        (Source::Otlp, Some(o)) => reproduce::otel_operation(&service, o, None, both),
        (Source::Otlp, None) => reproduce::otel_minutes(&service, both),
    };
    let evidence = ctx.evidence(Item {
        check: Check::Symptom,
        query: format!(
            "RED of {service}{what} per minute (requests: SERVER and CONSUMER spans, from 100 % of spans), baseline vs incident"
        ),
        reproduce,
        rows: out_rows,
        cut: false,
        trace_ids: samples,
    });
    SymptomResult {
        changes: vec![latency, errors, traffic],
        evidence,
        base,
        inc,
    }
}
