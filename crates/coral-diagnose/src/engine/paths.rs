//! Trees and critical paths of kept traces, aggregated per window: for the
//! target's request (its topmost SERVER/CONSUMER span in each trace) and
//! everything below it, the self time on the critical path and the calls
//! per trace of each (service, operation, kind), with their attribute
//! values, callers and call chains.

use std::collections::{BTreeMap, HashMap};

use coral_model::{SpanKind, SpanTiming, TraceShape};

use crate::data::{Trace, TraceSpan};
use crate::robust::Moments;

/// (service, operation, span kind).
pub(crate) type Key = (String, String, SpanKind);

/// Attributes a slowdown or failure can concentrate on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Dim {
    Agent,
    Version,
    Pod,
    Statement,
    Route,
}

impl Dim {
    pub(crate) const ALL: [Dim; 5] = [
        Dim::Agent,
        Dim::Version,
        Dim::Pod,
        Dim::Statement,
        Dim::Route,
    ];

    /// The attribute's name in evidence rows.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Dim::Agent => "agent_id",
            Dim::Version => "service.version",
            Dim::Pod => "k8s.pod.name",
            Dim::Statement => "db.statement",
            Dim::Route => "http.route",
        }
    }

    /// The span's value, empty when it has none.
    pub(crate) fn value(self, s: &TraceSpan) -> String {
        match self {
            Dim::Agent => s.agent_id.clone(),
            Dim::Version => s.service_version.clone(),
            Dim::Pod => s.pod.clone(),
            Dim::Statement => s
                .db_statement
                .as_deref()
                .map(statement_shape)
                .unwrap_or_default(),
            Dim::Route => s.attributes.get("http.route").cloned().unwrap_or_default(),
        }
    }
}

/// A statement with its literals replaced by `?` (so one statement shape
/// groups its executions), at most 120 characters.
pub(crate) fn statement_shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut last_space = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            for d in chars.by_ref() {
                if d == '\'' {
                    break;
                }
            }
            out.push('?');
            last_space = false;
        } else if c.is_ascii_digit() && !out.ends_with(|p: char| p.is_alphanumeric() || p == '_') {
            while chars
                .peek()
                .is_some_and(|d| d.is_ascii_digit() || *d == '.')
            {
                chars.next();
            }
            out.push('?');
            last_space = false;
        } else if c.is_whitespace() {
            if !last_space {
                out.push(' ');
            }
            last_space = true;
        } else {
            out.push(c);
            last_space = false;
        }
    }
    let shape = out.trim().to_owned();
    shape.chars().take(120).collect()
}

/// The target's request in one trace and the spans below it.
pub(crate) struct Tree<'t> {
    /// Spans; index 0 is the target's entry span.
    pub spans: Vec<&'t TraceSpan>,
    /// Parent of each span (by index), `None` for the entry.
    pub parent: Vec<Option<usize>>,
}

impl Tree<'_> {
    /// Services from the entry down to span `i`, repeats merged.
    pub(crate) fn chain(&self, i: usize) -> Vec<String> {
        let mut at = Some(i);
        let mut up: Vec<&str> = Vec::new();
        while let Some(k) = at {
            let svc = self.spans[k].service.as_str();
            if up.last() != Some(&svc) {
                up.push(svc);
            }
            at = self.parent[k];
        }
        up.reverse();
        let mut out: Vec<String> = Vec::new();
        for s in up {
            if out.last().map(String::as_str) != Some(s) {
                out.push(s.to_owned());
            }
        }
        out
    }
}

fn is_entry_kind(s: &TraceSpan) -> bool {
    matches!(s.kind, SpanKind::Server | SpanKind::Consumer)
}

/// The subtree of the target's request in `trace`: its topmost entry span
/// (SERVER or CONSUMER, else any kind, whose parent is not of the same
/// service; the longest when several), failing when `failing`.
pub(crate) fn subtree<'t>(
    trace: &'t Trace,
    service: &str,
    operation: Option<&str>,
    failing: bool,
) -> Option<Tree<'t>> {
    let spans = &trace.spans;
    let by_id: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let entry_kind = spans
        .iter()
        .any(|s| s.service == service && is_entry_kind(s));
    let entry = spans
        .iter()
        .enumerate()
        .filter(|(_, s)| s.service == service && (!entry_kind || is_entry_kind(s)))
        .filter(|(_, s)| operation.is_none_or(|o| s.operation == o))
        .filter(|(_, s)| !failing || s.is_error)
        .filter(|(_, s)| {
            by_id
                .get(s.parent_span_id.as_str())
                .is_none_or(|&p| spans[p].service != service)
        })
        .max_by_key(|(i, s)| {
            (
                s.duration_us,
                std::cmp::Reverse(s.start_ns),
                std::cmp::Reverse(*i),
            )
        })
        .map(|(i, _)| i)?;
    let mut children: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, s) in spans.iter().enumerate() {
        if !s.parent_span_id.is_empty() && i != entry {
            children
                .entry(s.parent_span_id.as_str())
                .or_default()
                .push(i);
        }
    }
    let mut tree = Tree {
        spans: vec![&spans[entry]],
        parent: vec![None],
    };
    let mut queue = vec![(entry, 0usize)];
    let mut seen = vec![false; spans.len()];
    seen[entry] = true;
    while let Some((at, local)) = queue.pop() {
        for &c in children
            .get(spans[at].span_id.as_str())
            .into_iter()
            .flatten()
        {
            if seen[c] {
                continue;
            }
            seen[c] = true;
            tree.spans.push(&spans[c]);
            tree.parent.push(Some(local));
            queue.push((c, tree.spans.len() - 1));
        }
    }
    Some(tree)
}

/// Totals of one attribute value of one key, over a window.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ValueAgg {
    /// Self time on the critical path, ms.
    pub self_ms: f64,
    /// Spans.
    pub calls: f64,
    /// Error spans.
    pub errors: f64,
}

/// One key over a window.
#[derive(Debug, Clone, Default)]
pub(crate) struct KeyAgg {
    /// Self time on the critical path per trace, ms.
    pub self_ms: Moments,
    /// Spans per trace.
    pub calls: Moments,
    /// Σ span durations, ms.
    pub duration_ms: f64,
    /// Spans.
    pub spans: f64,
    /// Per attribute value.
    pub by_value: BTreeMap<(Dim, String), ValueAgg>,
    /// Service chains from the target, with counts.
    pub chains: BTreeMap<Vec<String>, usize>,
    /// Callers' keys, with counts.
    pub parents: BTreeMap<Key, f64>,
    /// Traces where this key took the most self time: (ms, trace id).
    pub exemplars: Vec<(f64, String)>,
}

impl KeyAgg {
    /// Mean duration per call, ms.
    pub(crate) fn per_call_ms(&self) -> f64 {
        if self.spans > 0.0 {
            self.duration_ms / self.spans
        } else {
            0.0
        }
    }

    /// The most common chain.
    pub(crate) fn chain(&self) -> Vec<String> {
        self.chains
            .iter()
            .max_by_key(|(c, n)| (**n, std::cmp::Reverse((*c).clone())))
            .map(|(c, _)| c.clone())
            .unwrap_or_default()
    }

    /// The most common caller.
    pub(crate) fn parent(&self) -> Option<&Key> {
        self.parents
            .iter()
            .max_by(|a, b| a.1.total_cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(k, _)| k)
    }

    /// Values seen for a dimension, with their totals.
    pub(crate) fn values(&self, dim: Dim) -> Vec<(&str, ValueAgg)> {
        self.by_value
            .iter()
            .filter(|((d, v), _)| *d == dim && !v.is_empty())
            .map(|((_, v), a)| (v.as_str(), *a))
            .collect()
    }
}

/// All traces of one window.
#[derive(Debug, Clone, Default)]
pub(crate) struct PathAgg {
    /// Traces with the target's request.
    pub traces: usize,
    /// Critical path (the target request's duration) per trace, ms.
    pub root_ms: Moments,
    /// Per key.
    pub keys: HashMap<Key, KeyAgg>,
    /// Spans per (service, version).
    pub versions: BTreeMap<String, BTreeMap<String, f64>>,
    /// Spans per (service, agent).
    pub agents: BTreeMap<String, BTreeMap<String, f64>>,
    /// Agent id → hostname.
    pub hostnames: BTreeMap<String, String>,
    /// Slowest traces: (ms, trace id).
    pub slowest: Vec<(f64, String)>,
}

fn keep_top(list: &mut Vec<(f64, String)>, ms: f64, id: &str, n: usize) {
    if list.len() < n || list.last().is_some_and(|(m, _)| ms > *m) {
        list.push((ms, id.to_owned()));
        list.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        list.truncate(n);
    }
}

impl PathAgg {
    /// Aggregates the target's requests in `traces`.
    pub(crate) fn build(traces: &[Trace], service: &str, operation: Option<&str>) -> PathAgg {
        let mut agg = PathAgg::default();
        for trace in traces {
            if let Some(tree) = subtree(trace, service, operation, false) {
                agg.add(&trace.trace_id, &tree);
            }
        }
        agg
    }

    fn add(&mut self, trace_id: &str, tree: &Tree<'_>) {
        let timings: Vec<SpanTiming<'_>> = tree
            .spans
            .iter()
            .enumerate()
            .map(|(i, s)| SpanTiming {
                span_id: &s.span_id,
                parent_span_id: if i == 0 { "" } else { &s.parent_span_id },
                start_ns: s.start_ns,
                end_ns: s.end_ns(),
            })
            .collect();
        let shape = TraceShape::new(&timings);
        let root_ms = shape.critical_path_ns as f64 / 1e6;
        self.traces += 1;
        self.root_ms.add(root_ms);
        keep_top(&mut self.slowest, root_ms, trace_id, 5);
        let key_of = |s: &TraceSpan| -> Key { (s.service.clone(), s.operation.clone(), s.kind) };
        // Per trace: self ms and calls per key, and the first span of each.
        let mut local: HashMap<Key, (f64, f64, usize)> = HashMap::new();
        for (i, s) in tree.spans.iter().enumerate() {
            let self_ms = shape.self_time_ns.get(i).copied().unwrap_or(0) as f64 / 1e6;
            let key = key_of(s);
            let e = local.entry(key.clone()).or_insert((0.0, 0.0, i));
            e.0 += self_ms;
            e.1 += 1.0;
            let k = self.keys.entry(key).or_default();
            k.duration_ms += s.duration_ms();
            k.spans += 1.0;
            for dim in Dim::ALL {
                let v = k.by_value.entry((dim, dim.value(s))).or_default();
                v.self_ms += self_ms;
                v.calls += 1.0;
                v.errors += f64::from(u8::from(s.is_error));
            }
            if let Some(p) = tree.parent[i] {
                *k.parents.entry(key_of(tree.spans[p])).or_default() += 1.0;
            }
            *self
                .versions
                .entry(s.service.clone())
                .or_default()
                .entry(s.service_version.clone())
                .or_default() += 1.0;
            *self
                .agents
                .entry(s.service.clone())
                .or_default()
                .entry(s.agent_id.clone())
                .or_default() += 1.0;
            if !self.hostnames.contains_key(&s.agent_id) {
                self.hostnames.insert(s.agent_id.clone(), s.host.clone());
            }
        }
        for (key, (self_ms, calls, first)) in local {
            let k = self.keys.entry(key).or_default();
            k.self_ms.add(self_ms);
            k.calls.add(calls);
            *k.chains.entry(tree.chain(first)).or_default() += 1;
            if self_ms > 0.0 {
                keep_top(&mut k.exemplars, self_ms, trace_id, 3);
            }
        }
    }

    /// Mean self time per trace of `key`, ms.
    pub(crate) fn self_ms(&self, key: &Key) -> f64 {
        self.keys
            .get(key)
            .map_or(0.0, |k| k.self_ms.mean_over(self.traces as f64))
    }

    /// Mean calls per trace of `key`.
    pub(crate) fn calls(&self, key: &Key) -> f64 {
        self.keys
            .get(key)
            .map_or(0.0, |k| k.calls.mean_over(self.traces as f64))
    }

    /// Mean critical path per trace, ms.
    pub(crate) fn root_mean(&self) -> f64 {
        self.root_ms.mean_over(self.traces as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        id: &str,
        parent: &str,
        service: &str,
        op: &str,
        kind: SpanKind,
        start_ms: i64,
        dur_ms: i64,
    ) -> TraceSpan {
        TraceSpan {
            span_id: id.into(),
            parent_span_id: parent.into(),
            service: service.into(),
            operation: op.into(),
            kind,
            start_ns: start_ms * 1_000_000,
            duration_us: dur_ms * 1000,
            agent_id: "a".into(),
            ..Default::default()
        }
    }

    #[test]
    fn statements_lose_their_literals() {
        assert_eq!(
            statement_shape("UPDATE stock SET n = n - 2 WHERE sku = 'ab-1' AND  id=42"),
            "UPDATE stock SET n = n - ? WHERE sku = ? AND id=?"
        );
        assert_eq!(statement_shape("SELECT * FROM t1"), "SELECT * FROM t1");
    }

    #[test]
    fn the_subtree_starts_at_the_target_and_attributes_self_time() {
        use SpanKind::*;
        let trace = Trace {
            trace_id: "t".into(),
            spans: vec![
                span("f", "", "frontend", "GET /", Server, 0, 100),
                span("c", "f", "checkout", "POST /co", Server, 10, 80),
                span("cc", "c", "checkout", "POST /pay", Client, 20, 60),
                span("p", "cc", "payments", "POST /pay", Server, 21, 58),
            ],
        };
        let tree = subtree(&trace, "checkout", None, false).unwrap();
        assert_eq!(tree.spans.len(), 3);
        assert_eq!(tree.chain(2), vec!["checkout", "payments"]);
        let agg = PathAgg::build(std::slice::from_ref(&trace), "checkout", None);
        assert_eq!(agg.traces, 1);
        assert_eq!(agg.root_mean(), 80.0);
        let pay: Key = ("payments".into(), "POST /pay".into(), Server);
        assert_eq!(agg.self_ms(&pay), 58.0);
        let co: Key = ("checkout".into(), "POST /co".into(), Server);
        assert_eq!(agg.self_ms(&co), 20.0);
        assert_eq!(agg.keys[&pay].parent().unwrap().1, "POST /pay");
    }
}
