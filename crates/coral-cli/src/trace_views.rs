//! Renderings of `coral query beyla traces`: one trace as a tree (spans
//! assembled across agents, each span's share of its root, the critical path
//! marked, spans whose parent is missing under an explicit marker), as a
//! table or as JSON; and the list of the slowest traces.

use std::collections::{BTreeMap, HashMap, HashSet};

use coral_proto::common::BeylaTraceSpan;
use serde_json::json;

use crate::output;

/// How a trace is printed (`--format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum TraceFormat {
    /// An indented tree with `├─ └─ │`.
    #[default]
    Tree,
    /// One row per span, in start order.
    Table,
    /// A flat JSON list of spans.
    Json,
}

/// Marker of the critical path in trees.
pub const CRITICAL: &str = "◆";

fn end(s: &BeylaTraceSpan) -> i64 {
    s.start_time_unix_nano + s.duration_us * 1_000
}

fn dur(us: i64) -> String {
    output::ms(us as f64 / 1000.0)
}

/// The spans of one trace, indexed for rendering.
struct Trace<'a> {
    spans: Vec<&'a BeylaTraceSpan>,
    children: HashMap<&'a str, Vec<usize>>,
    roots: Vec<usize>,
    /// Missing parent id → spans that name it.
    orphans: BTreeMap<&'a str, Vec<usize>>,
    critical: HashSet<usize>,
}

impl<'a> Trace<'a> {
    fn new(mut spans: Vec<&'a BeylaTraceSpan>) -> Trace<'a> {
        spans.sort_by(|a, b| {
            a.start_time_unix_nano
                .cmp(&b.start_time_unix_nano)
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
        let (mut roots, mut orphans) = (Vec::new(), BTreeMap::<&str, Vec<usize>>::new());
        for (i, s) in spans.iter().enumerate() {
            if s.parent_span_id.is_empty() {
                roots.push(i);
            } else if ids.contains(s.parent_span_id.as_str()) && s.parent_span_id != s.span_id {
                children
                    .entry(s.parent_span_id.as_str())
                    .or_default()
                    .push(i);
            } else {
                orphans
                    .entry(s.parent_span_id.as_str())
                    .or_default()
                    .push(i);
            }
        }
        let mut trace = Trace {
            spans,
            children,
            roots,
            orphans,
            critical: HashSet::new(),
        };
        // The critical path: from the longest root, repeatedly the child that
        // ends last (what the parent was still waiting for).
        if let Some(&root) = trace
            .roots
            .iter()
            .max_by_key(|&&i| trace.spans[i].duration_us)
        {
            let mut at = root;
            let mut seen = HashSet::new();
            while seen.insert(at) {
                trace.critical.insert(at);
                let next = trace
                    .kids(at)
                    .iter()
                    .copied()
                    .max_by_key(|&k| end(trace.spans[k]));
                match next {
                    Some(k) => at = k,
                    None => break,
                }
            }
        }
        trace
    }

    fn kids(&self, i: usize) -> &[usize] {
        self.children
            .get(self.spans[i].span_id.as_str())
            .map_or(&[], Vec::as_slice)
    }

    fn duration_us(&self) -> i64 {
        let start = self
            .spans
            .iter()
            .map(|s| s.start_time_unix_nano)
            .min()
            .unwrap_or(0);
        let stop = self.spans.iter().map(|s| end(s)).max().unwrap_or(0);
        (stop - start) / 1_000
    }

    fn line(&self, i: usize, base_us: i64) -> String {
        let s = self.spans[i];
        let share = if base_us > 0 {
            format!(", {:.0}%", 100.0 * s.duration_us as f64 / base_us as f64)
        } else {
            String::new()
        };
        let mark = if self.critical.contains(&i) {
            format!(" {CRITICAL}")
        } else {
            String::new()
        };
        let error = if s.is_error { " ERROR" } else { "" };
        format!(
            "{} ({}{share}, {}){error}{mark}",
            s.service_name,
            dur(s.duration_us),
            s.span_name
        )
    }

    /// Writes `kids` (and, recursively, their children) as branches.
    fn branch(&self, kids: &[usize], prefix: &str, base_us: i64, out: &mut String, depth: usize) {
        for (n, &k) in kids.iter().enumerate() {
            let last = n + 1 == kids.len();
            let (branch, next) = if last {
                ("└─ ", "   ")
            } else {
                ("├─ ", "│  ")
            };
            out.push_str(&format!("{prefix}{branch}{}\n", self.line(k, base_us)));
            if depth < 64 {
                let prefix = format!("{prefix}{next}");
                self.branch(self.kids(k), &prefix, base_us, out, depth + 1);
            }
        }
    }
}

/// Renders one trace (`--trace-id`).
pub fn render_trace(trace_id: &str, spans: &[BeylaTraceSpan], format: TraceFormat) -> String {
    if spans.is_empty() {
        return match format {
            TraceFormat::Json => "[]\n".into(),
            _ => format!(
                "Trace {trace_id} not found: it may be older than the colony's retention (storage.beyla.retention.traces), sampled out (trace_sampling_rate), or not pulled yet.\n"
            ),
        };
    }
    render_one(trace_id, Trace::new(spans.iter().collect()), format)
}

fn render_one(trace_id: &str, t: Trace<'_>, format: TraceFormat) -> String {
    match format {
        TraceFormat::Json => output::json(&json!(
            t.spans.iter().map(|s| span_json(s)).collect::<Vec<_>>()
        )),
        TraceFormat::Table => {
            let rows: Vec<Vec<String>> = t
                .spans
                .iter()
                .map(|s| {
                    vec![
                        s.service_name.clone(),
                        s.span_name.clone(),
                        s.span_kind.clone(),
                        output::rfc3339_nanos(s.start_time_unix_nano),
                        dur(s.duration_us),
                        if s.status_code == 0 {
                            "-".into()
                        } else {
                            s.status_code.to_string()
                        },
                        if s.is_error {
                            "error".into()
                        } else {
                            "ok".into()
                        },
                        s.agent_id.clone(),
                    ]
                })
                .collect();
            let mut out = header(trace_id, &t);
            out.push_str(&output::table(
                &[
                    "Service", "Span", "Kind", "Start", "Duration", "Code", "Status", "Agent",
                ],
                &rows,
            ));
            out
        }
        TraceFormat::Tree => {
            let mut out = header(trace_id, &t);
            for &r in &t.roots {
                let base = t.spans[r].duration_us;
                out.push_str(&format!("{}\n", t.line(r, base)));
                t.branch(t.kids(r), "", base, &mut out, 0);
            }
            let whole = t.duration_us();
            for (parent, kids) in &t.orphans {
                out.push_str(&format!(
                    "[missing parent {parent}: not stored, sampled out or not pulled yet]\n"
                ));
                t.branch(kids, "", whole, &mut out, 0);
            }
            out.push_str(&format!(
                "\n{CRITICAL} critical path; % = share of the root span's duration.\n"
            ));
            out
        }
    }
}

fn header(trace_id: &str, t: &Trace<'_>) -> String {
    let agents: HashSet<&str> = t.spans.iter().map(|s| s.agent_id.as_str()).collect();
    format!(
        "Trace ID: {trace_id}\nDuration: {}\nSpans: {}{}\n\n",
        dur(t.duration_us()),
        t.spans.len(),
        if agents.len() > 1 {
            format!(" (from {} agents)", agents.len())
        } else {
            String::new()
        }
    )
}

fn span_json(s: &BeylaTraceSpan) -> serde_json::Value {
    let attributes: serde_json::Value =
        serde_json::from_str(&s.attributes_json).unwrap_or_else(|_| json!({}));
    json!({
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "service_name": s.service_name,
        "span_name": s.span_name,
        "span_kind": s.span_kind,
        "start_time": output::rfc3339_nanos(s.start_time_unix_nano),
        "duration_us": s.duration_us,
        "status_code": s.status_code,
        "is_error": s.is_error,
        "attributes": attributes,
        "agent_id": s.agent_id,
    })
}

/// One trace of a list: root, duration, span and error counts.
#[derive(Debug, Clone)]
pub struct TraceSummary {
    /// Trace id.
    pub trace_id: String,
    /// Service of the root (or of the earliest span).
    pub service: String,
    /// Name of the root (or of the earliest span).
    pub root: String,
    /// Start of the earliest span, Unix ns.
    pub start_ns: i64,
    /// From the earliest start to the latest end, µs.
    pub duration_us: i64,
    /// Spans.
    pub spans: usize,
    /// Spans with status ERROR.
    pub errors: usize,
    /// Services in the order their first span started.
    pub services: Vec<String>,
}

/// The spans of each trace, by trace id.
fn by_trace(spans: &[BeylaTraceSpan]) -> BTreeMap<&str, Vec<&BeylaTraceSpan>> {
    let mut groups: BTreeMap<&str, Vec<&BeylaTraceSpan>> = BTreeMap::new();
    for s in spans {
        groups.entry(s.trace_id.as_str()).or_default().push(s);
    }
    groups
}

/// Summarises the spans of several traces, slowest first.
pub fn summaries(spans: &[BeylaTraceSpan]) -> Vec<TraceSummary> {
    let mut out: Vec<TraceSummary> = by_trace(spans)
        .into_iter()
        .map(|(id, spans)| {
            let t = Trace::new(spans);
            let root = t
                .roots
                .iter()
                .copied()
                .max_by_key(|&i| t.spans[i].duration_us)
                .map_or(t.spans[0], |i| t.spans[i]);
            TraceSummary {
                trace_id: id.to_owned(),
                service: root.service_name.clone(),
                root: root.span_name.clone(),
                start_ns: t.spans[0].start_time_unix_nano,
                duration_us: t.duration_us(),
                spans: t.spans.len(),
                errors: t.spans.iter().filter(|s| s.is_error).count(),
                services: t.spans.iter().fold(Vec::new(), |mut seen, s| {
                    if !seen.contains(&s.service_name) {
                        seen.push(s.service_name.clone());
                    }
                    seen
                }),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.duration_us
            .cmp(&a.duration_us)
            .then_with(|| a.trace_id.cmp(&b.trace_id))
    });
    out
}

/// Renders the list of slowest traces (`--service`, no `--trace-id`).
pub fn render_list(scope: &str, spans: &[BeylaTraceSpan], format: TraceFormat) -> String {
    let list = summaries(spans);
    match format {
        TraceFormat::Json => output::json(&json!(
            list.iter()
                .map(|t| json!({
                    "trace_id": t.trace_id, "service_name": t.service, "root_span": t.root,
                    "start_time": output::rfc3339_nanos(t.start_ns),
                    "duration_us": t.duration_us, "span_count": t.spans, "error_count": t.errors,
                }))
                .collect::<Vec<_>>()
        )),
        TraceFormat::Tree => {
            let mut out = String::new();
            let mut groups = by_trace(spans);
            for t in &list {
                let of = groups.remove(t.trace_id.as_str()).unwrap_or_default();
                out.push_str(&render_one(&t.trace_id, Trace::new(of), TraceFormat::Tree));
                out.push('\n');
            }
            if list.is_empty() {
                out = format!("No Beyla traces for {scope} in this window.\n");
            }
            out
        }
        TraceFormat::Table => {
            if list.is_empty() {
                return format!(
                    "No Beyla traces for {scope} in this window. Widen --since, lower --min-duration, or check that Beyla traces are on (coral agents).\n"
                );
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|t| {
                    vec![
                        t.trace_id.clone(),
                        t.service.clone(),
                        t.root.clone(),
                        dur(t.duration_us),
                        t.spans.to_string(),
                        t.errors.to_string(),
                        output::rfc3339_nanos(t.start_ns),
                    ]
                })
                .collect();
            let mut out = format!("Slowest traces for {scope}\n\n");
            out.push_str(&output::table(
                &[
                    "Trace ID", "Service", "Root", "Duration", "Spans", "Errors", "Start",
                ],
                &rows,
            ));
            out.push_str("\nShow one: coral query beyla traces --trace-id <id>\n");
            out
        }
    }
}

#[cfg(test)]
#[path = "trace_views_tests.rs"]
mod tests;
