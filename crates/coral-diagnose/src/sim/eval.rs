//! The evaluation suite: every fault kind in several magnitudes and seeds,
//! with decoys, plus healthy controls; each case is simulated, asked as an
//! SRE would ask it, diagnosed, and scored (AC@1, AC@3, Avg@5 at service
//! and operation level, false causes on controls), and its answer checked:
//! every cited trace id is in the data, every reproduce line is a valid
//! `coral` command, every number in a claim is in its evidence rows.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::data::DiagnosisData;
use crate::engine::{Request, diagnose};
use crate::question::parse_question;
use crate::report::{Diagnosis, Verdict};
use crate::reproduce::validate;
use crate::sim::app::App;
use crate::sim::fault::{Decoys, FaultKind, Scenario};
use crate::sim::run::{SimConfig, SimOutput, simulate};
use crate::time::Window;

/// One case of the suite.
#[derive(Debug, Clone)]
pub struct Case {
    /// What is injected.
    pub scenario: Scenario,
    /// The question asked.
    pub question: String,
}

/// Seeds per (fault, magnitude).
pub const SEEDS: u64 = 2;
/// Healthy controls.
pub const CONTROLS: u64 = 8;

/// The suite's cases.
pub fn suite() -> Vec<Case> {
    let mut out = Vec::new();
    for fault in FaultKind::ALL {
        if fault == FaultKind::Healthy {
            continue;
        }
        for (mi, magnitude) in fault.magnitudes().into_iter().enumerate() {
            for s in 0..SEEDS {
                let seed = 1000 * (fault as u64 + 1) + 10 * mi as u64 + s;
                out.push(Case {
                    scenario: Scenario {
                        fault,
                        magnitude,
                        seed,
                        decoys: Decoys {
                            off_path: s == 0 || mi == 1,
                            unrelated_spike: s == 1 || mi == 2,
                            harmless_deploy: (mi as u64 + s).is_multiple_of(2),
                        },
                        fault_minutes: 6 + (seed % 7) as i64,
                    },
                    question: fault.question("checkout", seed),
                });
            }
        }
    }
    let control_questions = [
        "why is checkout slow?",
        "why is checkout failing?",
        "what is wrong with checkout?",
        "checkout p99 is up — why?",
    ];
    for s in 0..CONTROLS {
        out.push(Case {
            scenario: Scenario {
                fault: FaultKind::Healthy,
                magnitude: 0.0,
                seed: 90_000 + s,
                decoys: Decoys {
                    off_path: s % 2 == 0,
                    unrelated_spike: s % 4 < 2,
                    harmless_deploy: s % 3 == 0,
                },
                fault_minutes: 6 + (s % 7) as i64,
            },
            question: control_questions[s as usize % control_questions.len()].to_owned(),
        });
    }
    out
}

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case.
    pub case: Case,
    /// The verdict.
    pub verdict: Verdict,
    /// Rank (1-based) of the first cause on the right service.
    pub service_rank: Option<usize>,
    /// Rank of the first cause on the right service and operation.
    pub operation_rank: Option<usize>,
    /// The top cause names the right host (faults on a host only).
    pub host_ok: Option<bool>,
    /// Causes, as `service operation [kind]`.
    pub causes: Vec<String>,
    /// Problems with the answer's evidence (empty when sound).
    pub problems: Vec<String>,
    /// The full answer.
    pub diagnosis: Diagnosis,
}

impl CaseResult {
    /// One line: the case, the verdict, the causes and any problem.
    pub fn summary(&self) -> String {
        let s = &self.case.scenario;
        format!(
            "{} m={} seed={}: {} {:?} {:?}",
            s.fault.name(),
            s.magnitude,
            s.seed,
            self.verdict.as_str(),
            self.causes,
            self.problems
        )
    }
}

/// Simulates, asks and diagnoses one case.
pub fn run_case(case: &Case) -> CaseResult {
    let app = App::shop();
    let sim = simulate(&app, &case.scenario, &SimConfig::default());
    let diagnosis = ask(&sim, &case.question);
    judge(case, diagnosis, &|t: &str| sim.data.has_trace(t))
}

/// Asks `question` of simulated data, as `coral ask` would.
pub fn ask(sim: &SimOutput, question: &str) -> Diagnosis {
    let known = sim
        .data
        .services(Window::new(sim.end - 7 * 86_400, sim.end))
        .unwrap_or_default();
    let q = parse_question(question, &known, sim.end).expect("the suite's questions are readable");
    let req = Request::from_question(&q, sim.end, &known).expect("the question names a service");
    diagnose(&sim.data, &req).expect("in-memory data does not fail")
}

/// Scores one answer against the case's ground truth; `has_trace` says
/// whether a cited trace id opens (in memory, or at a real colony).
pub fn judge(case: &Case, d: Diagnosis, has_trace: &dyn Fn(&str) -> bool) -> CaseResult {
    let truth = case.scenario.fault.truth();
    let service_rank = truth.and_then(|t| {
        d.causes
            .iter()
            .position(|c| c.service == t.service)
            .map(|i| i + 1)
    });
    let operation_rank = truth.and_then(|t| {
        d.causes
            .iter()
            .position(|c| c.service == t.service && c.operation.as_deref() == Some(t.operation))
            .map(|i| i + 1)
    });
    let host_ok = truth.and_then(|t| t.host).map(|h| {
        d.causes
            .first()
            .is_some_and(|c| c.host.as_deref() == Some(h))
    });
    let problems = check_answer(&d, has_trace);
    CaseResult {
        case: case.clone(),
        verdict: d.verdict,
        service_rank,
        operation_rank,
        host_ok,
        causes: d
            .causes
            .iter()
            .map(|c| {
                format!(
                    "{} {} [{}]",
                    c.service,
                    c.operation.as_deref().unwrap_or(""),
                    c.kind.as_str()
                )
            })
            .collect(),
        problems,
        diagnosis: d,
    }
}

/// Problems with an answer: trace ids not in the data, reproduce lines the
/// CLI would refuse, claim numbers missing from their evidence rows.
pub fn check_answer(d: &Diagnosis, has_trace: &dyn Fn(&str) -> bool) -> Vec<String> {
    let mut problems = Vec::new();
    for e in &d.evidence {
        for t in &e.trace_ids {
            if !has_trace(t) {
                problems.push(format!("{}: trace {t} is not in the data", e.id));
            }
        }
        if let Err(err) = validate(&e.reproduce) {
            problems.push(format!("{}: {err}", e.id));
        }
    }
    for c in &d.causes {
        let mut values = vec![c.explains_pct];
        for id in &c.evidence {
            match d.evidence.iter().find(|e| &e.id == id) {
                Some(e) => e.rows.iter().for_each(|r| collect_numbers(r, &mut values)),
                None => problems.push(format!("cause {}: evidence {id} does not exist", c.rank)),
            }
        }
        for n in claim_numbers(&c.claim) {
            if !values.iter().any(|v| (v.abs() - n).abs() < 1e-6) {
                problems.push(format!(
                    "cause {}: {n} is not in its evidence rows ({})",
                    c.rank, c.claim
                ));
            }
        }
    }
    problems
}

fn collect_numbers(v: &serde_json::Value, out: &mut Vec<f64>) {
    match v {
        serde_json::Value::Number(n) => out.extend(n.as_f64()),
        serde_json::Value::Array(a) => a.iter().for_each(|x| collect_numbers(x, out)),
        serde_json::Value::Object(o) => o.values().for_each(|x| collect_numbers(x, out)),
        _ => {}
    }
}

/// Numbers in a claim, skipping quoted text, names (words with digits
/// such as `node-1` or `v2`) and versions (`2.4.0`).
fn claim_numbers(claim: &str) -> Vec<f64> {
    let mut out = Vec::new();
    let mut unquoted = String::new();
    let mut quoted = false;
    for ch in claim.chars() {
        if ch == '"' {
            quoted = !quoted;
        } else if !quoted {
            unquoted.push(ch);
        }
    }
    for word in unquoted.split(|c: char| c.is_whitespace() || "(),;→".contains(c)) {
        let w = word
            .trim_start_matches(['+', '-'])
            .trim_end_matches(['.', ':', '%']);
        if w.is_empty() || !w.starts_with(|c: char| c.is_ascii_digit()) {
            continue;
        }
        if w.matches('.').count() > 1 {
            continue;
        }
        let w = w.trim_end_matches("ms");
        if let Ok(n) = w.parse::<f64>() {
            out.push(n.abs());
        }
    }
    out
}

/// Scores per fault kind.
#[derive(Debug, Clone, Default)]
pub struct Row {
    /// Cases.
    pub cases: usize,
    /// AC@1..5 at service level (counts).
    pub service_hits: [usize; 5],
    /// AC@1..5 at operation level (counts).
    pub operation_hits: [usize; 5],
    /// Host faults with the right host on the top cause / host faults.
    pub host: (usize, usize),
    /// Cases with any cause (false causes on controls).
    pub with_causes: usize,
    /// Verdict counts.
    pub verdicts: BTreeMap<&'static str, usize>,
    /// Cases with evidence problems.
    pub unsound: usize,
}

impl Row {
    fn ac(hits: &[usize; 5], cases: usize, k: usize) -> f64 {
        if cases == 0 {
            0.0
        } else {
            hits[k - 1] as f64 / cases as f64
        }
    }

    /// AC@k at service level.
    pub fn ac_service(&self, k: usize) -> f64 {
        Row::ac(&self.service_hits, self.cases, k)
    }

    /// AC@k at operation level.
    pub fn ac_operation(&self, k: usize) -> f64 {
        Row::ac(&self.operation_hits, self.cases, k)
    }

    /// Avg@5 at service level.
    pub fn avg5_service(&self) -> f64 {
        (1..=5).map(|k| self.ac_service(k)).sum::<f64>() / 5.0
    }

    /// Avg@5 at operation level.
    pub fn avg5_operation(&self) -> f64 {
        (1..=5).map(|k| self.ac_operation(k)).sum::<f64>() / 5.0
    }
}

/// The suite's scores.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    /// Per fault kind.
    pub rows: BTreeMap<FaultKind, Row>,
    /// All faults together (controls excluded).
    pub faults: Row,
    /// Healthy controls.
    pub controls: Row,
}

fn add(row: &mut Row, r: &CaseResult) {
    row.cases += 1;
    for k in 1..=5 {
        row.service_hits[k - 1] += usize::from(r.service_rank.is_some_and(|x| x <= k));
        row.operation_hits[k - 1] += usize::from(r.operation_rank.is_some_and(|x| x <= k));
    }
    if let Some(ok) = r.host_ok {
        row.host.1 += 1;
        row.host.0 += usize::from(ok);
    }
    row.with_causes += usize::from(!r.causes.is_empty());
    *row.verdicts.entry(r.verdict.as_str()).or_default() += 1;
    row.unsound += usize::from(!r.problems.is_empty());
}

/// Scores results.
pub fn score(results: &[CaseResult]) -> Scores {
    let mut s = Scores::default();
    for r in results {
        add(s.rows.entry(r.case.scenario.fault).or_default(), r);
        if r.case.scenario.fault == FaultKind::Healthy {
            add(&mut s.controls, r);
        } else {
            add(&mut s.faults, r);
        }
    }
    s
}

impl Scores {
    /// The per-fault table, as markdown.
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| fault | cases | AC@1 svc | AC@3 svc | Avg@5 svc | AC@1 op | AC@3 op | Avg@5 op | host@1 | verdicts | unsound |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|");
        let line = |out: &mut String, name: &str, r: &Row, control: bool| {
            let verdicts: Vec<String> =
                r.verdicts.iter().map(|(v, n)| format!("{v} {n}")).collect();
            let host = if r.host.1 > 0 {
                format!("{}/{}", r.host.0, r.host.1)
            } else {
                "–".to_owned()
            };
            if control {
                let _ = writeln!(
                    out,
                    "| {name} | {} | – | – | – | – | – | – | – | {} (false causes: {}/{}) | {} |",
                    r.cases,
                    verdicts.join(", "),
                    r.with_causes,
                    r.cases,
                    r.unsound
                );
            } else {
                let _ = writeln!(
                    out,
                    "| {name} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {host} | {} | {} |",
                    r.cases,
                    r.ac_service(1),
                    r.ac_service(3),
                    r.avg5_service(),
                    r.ac_operation(1),
                    r.ac_operation(3),
                    r.avg5_operation(),
                    verdicts.join(", "),
                    r.unsound
                );
            }
        };
        for (fault, row) in &self.rows {
            line(&mut out, fault.name(), row, *fault == FaultKind::Healthy);
        }
        line(&mut out, "**all faults**", &self.faults, false);
        out
    }
}

/// Runs every case (on a few threads) and scores them.
pub fn run_suite() -> (Vec<CaseResult>, Scores) {
    let cases = suite();
    let threads = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 4);
    let mut results: Vec<Option<CaseResult>> = vec![None; cases.len()];
    std::thread::scope(|scope| {
        let chunks: Vec<Vec<(usize, &Case)>> = (0..threads)
            .map(|t| {
                cases
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % threads == t)
                    .collect()
            })
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                scope.spawn(move || {
                    chunk
                        .into_iter()
                        .map(|(i, c)| (i, run_case(c)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("a case panicked") {
                results[i] = Some(r);
            }
        }
    });
    let results: Vec<CaseResult> = results.into_iter().flatten().collect();
    let scores = score(&results);
    (results, scores)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_numbers_skip_names_and_versions() {
        let n = claim_numbers(
            "payments POST /charge adds 182.3 ms (12.1 ms → 194.4 ms), \"HTTP 500\" on node-1, version 2.4.0, +131 %",
        );
        assert_eq!(n, vec![182.3, 12.1, 194.4, 131.0]);
    }
}
