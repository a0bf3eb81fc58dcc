//! Renderings of `coral query traces` (and its Beyla-only form `coral query
//! beyla traces`): one trace from every source as a tree (each span's
//! duration, its self time on the critical path, its share of the root, ◆ on
//! the critical path, its source; spans whose parent was not stored under an
//! explicit marker), as a table or as JSON; and lists of trace summaries.
//!
//! The colony computes the critical path and self times (`GetTrace`); this
//! module only lays them out. JSON follows the contract in docs/cli.md.

use std::collections::{BTreeMap, HashMap, HashSet};

use coral_proto::colony::{GetTraceResponse, ListTracesResponse, TraceSpan};
use serde_json::json;

use crate::output;

/// How a trace is printed (`--format` / `-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum TraceFormat {
    /// An indented tree with `├─ └─ │`.
    #[default]
    Tree,
    /// One row per span, in start order.
    Table,
    /// One JSON document (docs/cli.md).
    Json,
}

/// Marker of the critical path in trees.
pub const CRITICAL: &str = "◆";

fn ms(us: i64) -> f64 {
    us as f64 / 1000.0
}

fn dur(us: i64) -> String {
    output::ms(ms(us))
}

/// The spans of one trace, linked for the tree.
struct Tree<'a> {
    spans: &'a [TraceSpan],
    children: HashMap<&'a str, Vec<usize>>,
    roots: Vec<usize>,
    /// Missing parent id → spans that name it.
    orphans: BTreeMap<&'a str, Vec<usize>>,
}

impl<'a> Tree<'a> {
    fn new(spans: &'a [TraceSpan]) -> Tree<'a> {
        let ids: HashSet<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
        let mut tree = Tree {
            spans,
            children: HashMap::new(),
            roots: Vec::new(),
            orphans: BTreeMap::new(),
        };
        // The colony sends spans in start order; keep it.
        for (i, s) in spans.iter().enumerate() {
            let parent = s.parent_span_id.as_str();
            if parent.is_empty() {
                tree.roots.push(i);
            } else if ids.contains(parent) && parent != s.span_id && !s.missing_parent {
                tree.children.entry(parent).or_default().push(i);
            } else {
                tree.orphans.entry(parent).or_default().push(i);
            }
        }
        tree
    }

    fn kids(&self, i: usize) -> &[usize] {
        self.children
            .get(self.spans[i].span_id.as_str())
            .map_or(&[], Vec::as_slice)
    }
}

/// The base a span's share is taken of: the root's duration.
fn share(span: &TraceSpan, base_us: i64) -> String {
    if base_us > 0 {
        format!("{:.0}%", 100.0 * span.duration_us as f64 / base_us as f64)
    } else {
        "-".into()
    }
}

fn label(s: &TraceSpan) -> String {
    let mut text = format!("{} {}", s.service, s.operation);
    if s.on_critical_path {
        text.push(' ');
        text.push_str(CRITICAL);
    }
    if s.error {
        text.push_str(" ERROR");
    }
    text
}

/// Renders one trace (`--trace-id`).
pub fn render_trace(t: &GetTraceResponse, format: TraceFormat) -> String {
    match format {
        TraceFormat::Json => output::json(&trace_json(t)),
        TraceFormat::Table => {
            let rows: Vec<Vec<String>> = t
                .spans
                .iter()
                .map(|s| {
                    vec![
                        s.service.clone(),
                        s.operation.clone(),
                        s.kind.clone(),
                        output::rfc3339_nanos(s.start_unix_nano),
                        dur(s.duration_us),
                        if s.on_critical_path {
                            dur(s.self_time_us)
                        } else {
                            "-".into()
                        },
                        if s.error { "error" } else { s.status.as_str() }.to_owned(),
                        s.source.clone(),
                        s.agent_id.clone(),
                    ]
                })
                .collect();
            let table = output::table(
                &[
                    "Service",
                    "Operation",
                    "Kind",
                    "Start",
                    "Duration",
                    "Self (CP)",
                    "Status",
                    "Source",
                    "Agent",
                ],
                &rows,
            );
            let errors: Vec<bool> = t.spans.iter().map(|s| s.error).collect();
            format!("{}{}{}", header(t), paint_rows(&table, &errors), footer(t))
        }
        TraceFormat::Tree => {
            let tree = Tree::new(&t.spans);
            // (span, tree prefix, the duration its share is taken of)
            let mut order: Vec<(usize, String, i64)> = Vec::new();
            let mut markers: Vec<(usize, String)> = Vec::new();
            for &r in &tree.roots {
                let base = t.spans[r].duration_us;
                order.push((r, String::new(), base));
                walk(&tree, tree.kids(r), base, &mut order);
            }
            for (parent, kids) in &tree.orphans {
                markers.push((
                    order.len(),
                    format!(
                        "[missing parent {parent}: not kept by the agent's filters, sampled out, or not pulled yet]"
                    ),
                ));
                walk(&tree, kids, t.duration_us, &mut order);
            }
            let rows: Vec<Vec<String>> = order
                .iter()
                .map(|(i, prefix, base)| {
                    let s = &t.spans[*i];
                    vec![
                        format!("{prefix}{}", label(s)),
                        dur(s.duration_us),
                        if s.on_critical_path {
                            dur(s.self_time_us)
                        } else {
                            "-".into()
                        },
                        share(s, *base),
                        s.source.clone(),
                        s.agent_id.clone(),
                    ]
                })
                .collect();
            let errors: Vec<bool> = order.iter().map(|(i, _, _)| t.spans[*i].error).collect();
            let table = output::table(
                &[
                    "Span",
                    "Duration",
                    "Self (CP)",
                    "Of root",
                    "Source",
                    "Agent",
                ],
                &rows,
            );
            let mut out = header(t);
            // Row i of the table is line i + 1 (after the header line).
            for (n, line) in table.lines().enumerate() {
                for (_, marker) in markers.iter().filter(|(at, _)| n > 0 && *at == n - 1) {
                    out.push_str(marker);
                    out.push('\n');
                }
                let error = n > 0 && errors[n - 1];
                out.push_str(&output::paint_if(error, output::RED, line));
                out.push('\n');
            }
            out.push_str(&format!(
                "\n{CRITICAL} critical path; Self (CP) = time the span itself adds to it; Of root = share of the root span's duration.\n"
            ));
            out.push_str(&footer(t));
            out
        }
    }
}

/// Appends `kids` and, depth first, their children to `order` with their
/// tree prefixes.
fn walk(tree: &Tree<'_>, kids: &[usize], base: i64, order: &mut Vec<(usize, String, i64)>) {
    // Iterative, so a deep trace cannot overflow the stack.
    let mut stack: Vec<(&[usize], usize, String)> = vec![(kids, 0, String::new())];
    while let Some((list, at, prefix)) = stack.pop() {
        let Some(&k) = list.get(at) else { continue };
        let (branch, next) = if at + 1 == list.len() {
            ("└─ ", "   ")
        } else {
            ("├─ ", "│  ")
        };
        order.push((k, format!("{prefix}{branch}"), base));
        let child_prefix = format!("{prefix}{next}");
        stack.push((list, at + 1, prefix));
        let grandkids = tree.kids(k);
        if !grandkids.is_empty() {
            stack.push((grandkids, 0, child_prefix));
        }
    }
}

/// Paints the table rows (not the header) of error spans red on a terminal.
fn paint_rows(table: &str, errors: &[bool]) -> String {
    let mut out = String::with_capacity(table.len());
    for (n, line) in table.lines().enumerate() {
        let error = n > 0 && errors.get(n - 1).copied().unwrap_or(false);
        out.push_str(&output::paint_if(error, output::RED, line));
        out.push('\n');
    }
    out
}

fn header(t: &GetTraceResponse) -> String {
    let agents: HashSet<&str> = t.spans.iter().map(|s| s.agent_id.as_str()).collect();
    let mut sources: Vec<&str> = t.spans.iter().map(|s| s.source.as_str()).collect();
    sources.sort_unstable();
    sources.dedup();
    let errors = t.spans.iter().filter(|s| s.error).count();
    format!(
        "Trace {}\nDuration {}, critical path {}; {} spans from {} on {} agent{}{}\n\n",
        t.trace_id,
        dur(t.duration_us),
        dur(t.critical_path_us),
        t.span_count,
        sources.join(" and "),
        agents.len(),
        if agents.len() == 1 { "" } else { "s" },
        match errors {
            0 => String::new(),
            1 => "; 1 error".into(),
            n => format!("; {n} errors"),
        }
    )
}

fn footer(t: &GetTraceResponse) -> String {
    if t.truncated {
        format!(
            "Showing {} of {} spans (the critical path first); the rest were cut to keep the answer bounded.\n",
            t.spans.len(),
            t.span_count
        )
    } else {
        String::new()
    }
}

/// The JSON contract of one trace.
pub fn trace_json(t: &GetTraceResponse) -> serde_json::Value {
    json!({
        "trace_id": t.trace_id,
        "span_count": t.span_count,
        "truncated": t.truncated,
        "duration_ms": ms(t.duration_us),
        "critical_path_ms": ms(t.critical_path_us),
        "spans": t.spans.iter().map(span_json).collect::<Vec<_>>(),
    })
}

fn span_json(s: &TraceSpan) -> serde_json::Value {
    let attributes: serde_json::Value =
        serde_json::from_str(&s.attributes_json).unwrap_or_else(|_| json!({}));
    let resource: serde_json::Value =
        serde_json::from_str(&s.resource_json).unwrap_or_else(|_| json!({}));
    json!({
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "service": s.service,
        "operation": s.operation,
        "kind": s.kind,
        "start": output::rfc3339_nanos(s.start_unix_nano),
        "duration_ms": ms(s.duration_us),
        "self_time_ms": ms(s.self_time_us),
        "on_critical_path": s.on_critical_path,
        "status": s.status,
        "status_message": s.status_message,
        "status_code": s.status_code,
        "error": s.error,
        "source": s.source,
        "agent_id": s.agent_id,
        "host": s.host,
        "service_version": s.service_version,
        "pod": s.pod,
        "keep_reason": s.keep_reason,
        "missing_parent": s.missing_parent,
        "attributes": attributes,
        "resource": resource,
    })
}

/// Renders a list of traces (`--service`, no `--trace-id`).
pub fn render_list(scope: &str, list: &ListTracesResponse, format: TraceFormat) -> String {
    match format {
        TraceFormat::Json => output::json(&json!({
            "from": output::rfc3339(list.start_time_unix_ms.div_euclid(1000)),
            "to": output::rfc3339(list.end_time_unix_ms.div_euclid(1000)),
            "truncated": list.truncated,
            "traces": list.traces.iter().map(|t| json!({
                "trace_id": t.trace_id,
                "root_service": t.root_service,
                "root_operation": t.root_operation,
                "start": output::rfc3339_nanos(t.start_unix_nano),
                "duration_ms": ms(t.duration_us),
                "span_count": t.span_count,
                "error_count": t.error_count,
                "services": t.services,
                "sources": t.sources,
            })).collect::<Vec<_>>(),
        })),
        TraceFormat::Tree | TraceFormat::Table => {
            if list.traces.is_empty() {
                return format!(
                    "No traces for {scope} in this window. Agents keep error spans, slow spans and a sample of whole traces (agent.telemetry.filters); widen --since or lower --min-duration.\n"
                );
            }
            let rows: Vec<Vec<String>> = list
                .traces
                .iter()
                .map(|t| {
                    vec![
                        t.trace_id.clone(),
                        format!("{} {}", t.root_service, t.root_operation),
                        dur(t.duration_us),
                        t.span_count.to_string(),
                        t.error_count.to_string(),
                        t.services.join(", "),
                        t.sources.join("+"),
                        output::rfc3339_nanos(t.start_unix_nano),
                    ]
                })
                .collect();
            let errors: Vec<bool> = list.traces.iter().map(|t| t.error_count > 0).collect();
            let mut out = format!("Slowest traces for {scope}\n\n");
            out.push_str(&paint_rows(
                &output::table(
                    &[
                        "Trace ID", "Root", "Duration", "Spans", "Errors", "Services", "Sources",
                        "Start",
                    ],
                    &rows,
                ),
                &errors,
            ));
            if list.truncated {
                out.push_str(&format!(
                    "\nMore traces matched; showing the {} slowest (--limit).\n",
                    list.traces.len()
                ));
            }
            out.push_str("\nOpen one: coral query traces --trace-id <id>\n");
            out
        }
    }
}

#[cfg(test)]
#[path = "trace_views_tests.rs"]
pub(crate) mod tests;
