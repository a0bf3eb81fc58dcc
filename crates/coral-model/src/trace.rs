//! One trace's structure: parent links, roots, spans whose parent is not
//! stored, and the critical path with each span's self time on it.
//!
//! The critical path follows Uber's CRISP description: start at the end of
//! the root and walk backwards in time. At each point the span on the path is
//! waiting for the child that finished last by that point; the walk goes into
//! that child, then goes on from the child's start. The time no such child
//! covers is the span's own (its *self time on the critical path*). A child
//! is first clipped to its parent's interval (a child that outlives its
//! parent counts only up to the parent's end). Of overlapping children, one
//! still running at the point reached is not on the path: the parent was
//! waiting for the later one. The self times on the path add up to the
//! root's duration.
//!
//! Pure and source-agnostic: spans are given as [`SpanTiming`]s, so the
//! colony (OTLP and Beyla spans together), the CLI and the diagnosis engine
//! share one definition.

use std::collections::HashMap;

/// What the critical-path walk needs of a span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanTiming<'a> {
    /// The span id.
    pub span_id: &'a str,
    /// The parent span id; empty for a root.
    pub parent_span_id: &'a str,
    /// Start, Unix nanoseconds.
    pub start_ns: i64,
    /// End, Unix nanoseconds (never before the start).
    pub end_ns: i64,
}

/// The structure of one trace, by index into the spans it was built from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceShape {
    /// Children of each span, by start time.
    pub children: Vec<Vec<usize>>,
    /// Spans without a parent, by start time.
    pub roots: Vec<usize>,
    /// Spans whose parent is named but not among the spans, by start time.
    pub orphans: Vec<usize>,
    /// The span the critical path starts from (the longest root, else the
    /// longest orphan); `None` for an empty trace.
    pub path_root: Option<usize>,
    /// Self time on the critical path of each span, ns (0 off the path).
    pub self_time_ns: Vec<i64>,
    /// Whether each span is on the critical path.
    pub on_path: Vec<bool>,
    /// The critical path's length: the path root's duration, ns.
    pub critical_path_ns: i64,
}

impl TraceShape {
    /// Links `spans` by parent id and walks the critical path.
    ///
    /// A span whose id appears twice keeps the first occurrence as the parent
    /// of its children; a span that names itself as parent, or whose
    /// parent chain loops, is treated as an orphan, so the shape is always a
    /// forest.
    pub fn new(spans: &[SpanTiming<'_>]) -> TraceShape {
        let n = spans.len();
        let mut by_id: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, s) in spans.iter().enumerate() {
            by_id.entry(s.span_id).or_insert(i);
        }
        let mut parent: Vec<Option<usize>> = vec![None; n];
        let mut roots = Vec::new();
        let mut orphans = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            if s.parent_span_id.is_empty() {
                roots.push(i);
                continue;
            }
            match by_id.get(s.parent_span_id) {
                Some(&p) if p != i => parent[i] = Some(p),
                _ => orphans.push(i),
            }
        }
        // Break parent cycles: a span whose chain comes back to itself
        // becomes an orphan (a corrupt or hostile trace must still render).
        let mut state = vec![0u8; n]; // 0 unknown, 1 on the stack, 2 reaches a top
        for i in 0..n {
            let mut chain = Vec::new();
            let mut at = i;
            loop {
                if state[at] == 2 {
                    break;
                }
                if state[at] == 1 {
                    // `at` closes a loop: cut its parent link.
                    parent[at] = None;
                    orphans.push(at);
                    break;
                }
                state[at] = 1;
                chain.push(at);
                match parent[at] {
                    Some(p) => at = p,
                    None => break,
                }
            }
            for c in chain {
                state[c] = 2;
            }
        }
        let by_start = |v: &mut Vec<usize>| {
            v.sort_by(|&a, &b| {
                spans[a]
                    .start_ns
                    .cmp(&spans[b].start_ns)
                    .then_with(|| spans[a].span_id.cmp(spans[b].span_id))
                    .then_with(|| a.cmp(&b))
            })
        };
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        for c in &mut children {
            by_start(c);
        }
        by_start(&mut roots);
        by_start(&mut orphans);
        let longest = |v: &[usize]| {
            v.iter()
                .copied()
                .max_by_key(|&i| (duration(&spans[i]), std::cmp::Reverse(i)))
        };
        let path_root = longest(&roots).or_else(|| longest(&orphans));
        let mut shape = TraceShape {
            children,
            roots,
            orphans,
            path_root,
            self_time_ns: vec![0; n],
            on_path: vec![false; n],
            critical_path_ns: 0,
        };
        if let Some(root) = path_root {
            shape.critical_path_ns = duration(&spans[root]);
            shape.walk(spans, root);
        }
        shape
    }

    /// Walks the critical path down from `root` (iteratively: traces can be
    /// deep).
    fn walk(&mut self, spans: &[SpanTiming<'_>], root: usize) {
        let s = &spans[root];
        let mut stack = vec![(root, s.start_ns, s.end_ns.max(s.start_ns))];
        while let Some((span, lo, hi)) = stack.pop() {
            self.on_path[span] = true;
            // Children clipped to this span's interval, latest end first;
            // the walk goes back in time.
            let clip = |k: usize| (spans[k].start_ns.max(lo), spans[k].end_ns.min(hi));
            let mut kids: Vec<usize> = self.children[span].clone();
            kids.sort_by(|&a, &b| {
                clip(b)
                    .1
                    .cmp(&clip(a).1)
                    .then_with(|| clip(b).0.cmp(&clip(a).0))
                    .then_with(|| spans[a].span_id.cmp(spans[b].span_id))
            });
            let mut cursor = hi;
            let mut own = 0i64;
            for k in kids {
                let (start, end) = clip(k);
                // Only a child that had finished by the point reached can be
                // what the span was waiting for there; one still running
                // then overlaps the child already on the path.
                if end <= start || end > cursor {
                    continue;
                }
                own += cursor - end;
                stack.push((k, start, end));
                cursor = start;
                if cursor <= lo {
                    break;
                }
            }
            own += (cursor - lo).max(0);
            self.self_time_ns[span] = own;
        }
    }
}

fn duration(s: &SpanTiming<'_>) -> i64 {
    (s.end_ns - s.start_ns).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    fn span<'a>(id: &'a str, parent: &'a str, start_ms: i64, end_ms: i64) -> SpanTiming<'a> {
        SpanTiming {
            span_id: id,
            parent_span_id: parent,
            start_ns: start_ms * MS,
            end_ns: end_ms * MS,
        }
    }

    fn self_ms(shape: &TraceShape) -> Vec<i64> {
        shape.self_time_ns.iter().map(|t| t / MS).collect()
    }

    #[test]
    fn sequential_children_share_the_path_with_their_parent() {
        // root 0-100: a 10-40, b 50-90. Path: root 90-100, b, root 40-50, a, root 0-10.
        let spans = [
            span("r", "", 0, 100),
            span("a", "r", 10, 40),
            span("b", "r", 50, 90),
        ];
        let shape = TraceShape::new(&spans);
        assert_eq!(self_ms(&shape), vec![30, 30, 40]);
        assert_eq!(shape.on_path, vec![true, true, true]);
        assert_eq!(shape.critical_path_ns, 100 * MS);
    }

    #[test]
    fn of_concurrent_children_the_last_to_finish_is_on_the_path() {
        // root 0-100: a 10-80 and b 20-60 run together; c 70-95 starts
        // before a ends. Back from 100: c (70-95) ends last, root 95-100;
        // at 70 a is still running, so the root was waiting for b
        // (20-60): root 60-70 and 0-20; a is off the path.
        let spans = [
            span("r", "", 0, 100),
            span("a", "r", 10, 80),
            span("b", "r", 20, 60),
            span("c", "r", 70, 95),
        ];
        let shape = TraceShape::new(&spans);
        assert_eq!(self_ms(&shape), vec![35, 0, 40, 25]);
        assert_eq!(shape.on_path, vec![true, false, true, true]);
        let total: i64 = shape.self_time_ns.iter().sum();
        assert_eq!(total, 100 * MS);
    }

    #[test]
    fn a_child_that_outlives_its_parent_is_clipped() {
        // root 0-100: a 60-130 counts 60-100 only; its child 110-120 lies
        // past the clip and is off the path.
        let spans = [
            span("r", "", 0, 100),
            span("a", "r", 60, 130),
            span("x", "a", 110, 120),
        ];
        let shape = TraceShape::new(&spans);
        assert_eq!(self_ms(&shape), vec![60, 40, 0]);
        assert_eq!(shape.on_path, vec![true, true, false]);
    }

    #[test]
    fn missing_parents_and_loops_become_orphans() {
        let spans = [
            span("r", "", 0, 50),
            span("x", "gone", 5, 10),
            span("p", "q", 0, 10),
            span("q", "p", 0, 10),
            span("s", "s", 0, 10),
        ];
        let shape = TraceShape::new(&spans);
        assert_eq!(shape.roots, vec![0]);
        assert!(shape.orphans.contains(&1));
        assert!(shape.orphans.contains(&4));
        // One of the looping pair is cut; the other hangs under it.
        assert_eq!(
            shape.orphans.iter().filter(|&&i| i == 2 || i == 3).count(),
            1
        );
        assert_eq!(shape.path_root, Some(0));
        assert_eq!(self_ms(&shape), vec![50, 0, 0, 0, 0]);
    }

    #[test]
    fn without_a_root_the_longest_orphan_starts_the_path() {
        let spans = [span("a", "gone", 0, 30), span("b", "a", 5, 20)];
        let shape = TraceShape::new(&spans);
        assert_eq!(shape.path_root, Some(0));
        assert_eq!(self_ms(&shape), vec![15, 15]);
        assert!(TraceShape::new(&[]).path_root.is_none());
    }

    #[test]
    fn deep_traces_do_not_overflow_the_stack() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("{i:016x}")).collect();
        let spans: Vec<SpanTiming<'_>> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| SpanTiming {
                span_id: id,
                parent_span_id: if i == 0 { "" } else { &ids[i - 1] },
                start_ns: i as i64,
                end_ns: 100_000 - i as i64,
            })
            .collect();
        let shape = TraceShape::new(&spans);
        assert!(shape.on_path.iter().all(|&p| p));
        assert_eq!(shape.self_time_ns.iter().sum::<i64>(), 100_000);
    }
}
