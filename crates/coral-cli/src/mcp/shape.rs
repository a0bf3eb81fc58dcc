//! What the tools return, as pure functions: windows read from the tools'
//! arguments, colony responses turned into small JSON documents, and the
//! budget every result is held to.
//!
//! Every document carries `truncated` and the totals it was cut from, and
//! [`fit`] keeps it under [`MAX_RESULT_CHARS`] (about 5,000 tokens) by
//! shortening its longest list, saying so.

use std::collections::BTreeMap;

use coral_proto::colony::{
    GetTraceResponse, HostCorrelationRow, ListTracesResponse, OperationRow, OtelSummaryRow,
    QueryBeylaResponse, ServiceSummary,
};
use serde_json::{Map, Value, json};

use crate::output;

/// Most characters in one result: about 5,000 tokens at 4 characters a
/// token.
pub(crate) const MAX_RESULT_CHARS: usize = 20_000;

/// A window of Unix milliseconds, `[from, to)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

impl Window {
    pub fn start_s(self) -> i64 {
        self.from_ms.div_euclid(1000)
    }

    pub fn end_s(self) -> i64 {
        (self.to_ms + 999).div_euclid(1000)
    }

    /// `{"from": RFC 3339, "to": RFC 3339}`.
    pub fn json(self) -> Value {
        json!({"from": output::rfc3339(self.start_s()), "to": output::rfc3339(self.end_s())})
    }
}

/// Reads a window argument at `now_ms`: a duration back from now (`15m`,
/// `1h`, `2d`) or `FROM/TO` in RFC 3339; `default` when absent. The error
/// says what is accepted.
pub(crate) fn window(text: Option<&str>, default: &str, now_ms: i64) -> Result<Window, String> {
    let text = text
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(default);
    if let Some((from, to)) = text.split_once('/') {
        let at = |t: &str| -> Result<i64, String> {
            let at = humantime::parse_rfc3339_weak(t.trim()).map_err(|_| {
                format!(
                    "window \"{text}\": {t:?} is not an RFC 3339 time (e.g. 2026-11-21T14:00:00Z)"
                )
            })?;
            Ok(at
                .duration_since(std::time::UNIX_EPOCH)
                .map_err(|_| format!("window \"{text}\" is before 1970"))?
                .as_millis() as i64)
        };
        let w = Window {
            from_ms: at(from)?,
            to_ms: at(to)?,
        };
        if w.from_ms >= w.to_ms {
            return Err(format!(
                "window \"{text}\" is empty: its start is not before its end"
            ));
        }
        return Ok(w);
    }
    let d = humantime::parse_duration(text).map_err(|_| {
        format!(
            "window \"{text}\" is not a duration (15m, 1h, 2d) or FROM/TO in RFC 3339 (2026-11-21T14:00:00Z/2026-11-21T15:00:00Z)"
        )
    })?;
    if d.is_zero() {
        return Err(format!("window \"{text}\" is empty; use e.g. 15m or 1h"));
    }
    Ok(Window {
        from_ms: now_ms - d.as_millis() as i64,
        to_ms: now_ms,
    })
}

/// `v` rounded to `places` decimals, for short documents.
pub(crate) fn round(v: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (v * f).round() / f
}

fn ms(us: i64) -> f64 {
    round(us as f64 / 1000.0, 2)
}

/// Cuts the longest array of `doc` (one of `lists`, by key) until the
/// document fits in `budget` characters; marks it `truncated` and records
/// the cut in `"<key>_shown"`. A document that fits is returned untouched.
pub(crate) fn fit(mut doc: Value, lists: &[&str], budget: usize) -> Value {
    let size = |d: &Value| d.to_string().len();
    if size(&doc) <= budget {
        return doc;
    }
    loop {
        let longest = lists
            .iter()
            .filter_map(|k| Some((*k, doc.get(*k)?.as_array()?.len())))
            .filter(|(_, n)| *n > 0)
            .max_by_key(|(_, n)| *n);
        let Some((key, n)) = longest else {
            return doc;
        };
        // Drop about a quarter at a time: few re-serialisations.
        let keep = if n > 4 { n - n.div_ceil(4) } else { n - 1 };
        if let Some(list) = doc.get_mut(key).and_then(Value::as_array_mut) {
            list.truncate(keep);
        }
        doc[format!("{key}_shown")] = json!(keep);
        doc["truncated"] = json!(true);
        if size(&doc) <= budget {
            return doc;
        }
    }
}

/// `list_services`: one row per (service, source), most requests first.
pub(crate) fn services(list: &[ServiceSummary], window: Window, limit: usize) -> Value {
    let mut list: Vec<&ServiceSummary> = list.iter().collect();
    list.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| a.service_name.cmp(&b.service_name))
    });
    let rows: Vec<Value> = list
        .iter()
        .take(limit)
        .map(|s| {
            json!({"service": s.service_name, "source": s.source, "requests": s.requests,
                   "errors": s.errors, "error_rate": round(s.error_rate, 4),
                   "p95_ms": s.p95_ms.map(|v| round(v, 2)),
                   "agents": s.agents.iter().take(5).collect::<Vec<_>>(), "agent_count": s.agents.len()})
        })
        .collect();
    json!({"window": window.json(), "services": rows, "total": list.len(),
           "truncated": list.len() > limit})
}

/// The last `limit` items of a time-ordered sequence, oldest first: the
/// newest minutes matter most.
fn newest<I: ExactSizeIterator>(items: I, limit: usize) -> std::iter::Skip<I> {
    let skip = items.len().saturating_sub(limit);
    items.skip(skip)
}

/// OTLP RED per minute: the SERVER and CONSUMER rows of each minute (every
/// kind when the service has neither), requests summed, the highest p95.
pub(crate) fn red_per_minute(rows: &[OtelSummaryRow], window: Window, limit: usize) -> Value {
    let entry = rows
        .iter()
        .any(|r| matches!(r.span_kind.as_str(), "SERVER" | "CONSUMER"));
    let mut by_minute: BTreeMap<i64, (i64, i64, f64, f64)> = BTreeMap::new();
    for r in rows
        .iter()
        .filter(|r| !entry || matches!(r.span_kind.as_str(), "SERVER" | "CONSUMER"))
    {
        let e = by_minute.entry(r.bucket_time).or_default();
        e.0 += r.total_spans;
        e.1 += r.error_count;
        e.2 = e.2.max(r.p95_ms);
        e.3 = e.3.max(r.p99_ms);
    }
    let total = by_minute.len();
    let rows: Vec<Value> = newest(by_minute.iter(), limit)
        .map(|(minute, (requests, errors, p95, p99))| {
            json!({"minute": output::rfc3339(*minute), "requests": requests, "errors": errors,
                   "error_rate": round(output::rate(*errors, *requests), 4),
                   "p95_ms": round(*p95, 2), "p99_ms": round(*p99, 2)})
        })
        .collect();
    json!({"window": window.json(), "by": "minute", "source": "otlp",
           "counted": if entry { "SERVER and CONSUMER spans" } else { "every span kind" },
           "rows": rows, "total": total, "truncated": total > limit})
}

/// A merged histogram's quantile as JSON: a number, `">B"` above the last
/// bound, or null.
fn quantile(h: &coral_model::Histogram, q: f64) -> Value {
    match h.quantile(q) {
        Some(coral_model::Quantile::Value(v)) => json!(round(v, 2)),
        Some(coral_model::Quantile::Above(b)) => json!(format!(">{b}")),
        None => Value::Null,
    }
}

/// Beyla RED per minute: the server-side HTTP and gRPC histograms of each
/// minute merged (errors: HTTP status ≥ 500, gRPC status other than OK).
pub(crate) fn beyla_per_minute(r: &QueryBeylaResponse, window: Window, limit: usize) -> Value {
    let mut by_minute: BTreeMap<i64, (u64, coral_model::Histogram)> = BTreeMap::new();
    let mut add = |minute: i64, error: bool, h: Option<&coral_proto::common::LatencyHistogram>| {
        let Some(h) = h.and_then(|h| coral_model::Histogram::from_proto(h).ok()) else {
            return;
        };
        let e = by_minute.entry(minute).or_default();
        if error {
            e.0 += h.count;
        }
        e.1.merge(&h);
    };
    for m in r.http_metrics.iter().filter(|m| m.kind == "server") {
        add(m.minute, m.http_status_code >= 500, m.latency.as_ref());
    }
    for m in r.grpc_metrics.iter().filter(|m| m.kind == "server") {
        add(m.minute, m.grpc_status_code != 0, m.latency.as_ref());
    }
    let total = by_minute.len();
    let rows: Vec<Value> = newest(by_minute.iter(), limit)
        .map(|(minute, (errors, h))| {
            json!({"minute": output::rfc3339(*minute), "requests": h.count, "errors": errors,
                   "error_rate": round(output::rate(*errors as i64, h.count as i64), 4),
                   "p95_ms": quantile(h, 0.95), "p99_ms": quantile(h, 0.99)})
        })
        .collect();
    json!({"window": window.json(), "by": "minute", "source": "beyla",
           "counted": "server-side HTTP and gRPC requests",
           "rows": rows, "total": total, "truncated": total > limit})
}

fn operation_json(r: &OperationRow) -> Value {
    json!({"operation": r.operation, "kind": r.span_kind, "requests": r.total_spans,
           "errors": r.error_count, "error_rate": round(output::rate(r.error_count, r.total_spans), 4),
           "p50_ms": round(r.p50_ms, 2), "p95_ms": round(r.p95_ms, 2), "p99_ms": round(r.p99_ms, 2),
           "total_ms": round(r.sum_ms, 1)})
}

/// OTLP RED per operation over the window, by total time spent.
pub(crate) fn red_per_operation(totals: &[OperationRow], window: Window, limit: usize) -> Value {
    let rows: Vec<Value> = totals.iter().take(limit).map(operation_json).collect();
    json!({"window": window.json(), "by": "operation", "source": "otlp", "rows": rows,
           "total": totals.len(), "truncated": totals.len() > limit})
}

/// Beyla RED per route (server side), most requests first.
pub(crate) fn red_per_route(
    groups: &[crate::beyla_views::Group],
    window: Window,
    limit: usize,
) -> Value {
    let rows: Vec<Value> = groups
        .iter()
        .take(limit)
        .map(|g| {
            let q = |q: f64| quantile(&g.latency, q);
            json!({"method": g.key.first(), "route": g.key.get(1), "requests": g.requests,
                   "errors": g.errors, "error_rate": round(output::rate(g.errors as i64, g.requests as i64), 4),
                   "p50_ms": q(0.5), "p95_ms": q(0.95), "p99_ms": q(0.99)})
        })
        .collect();
    json!({"window": window.json(), "by": "route", "source": "beyla", "rows": rows,
           "total": groups.len(), "truncated": groups.len() > limit})
}

/// `compare_windows`: each operation's requests per minute, error rate and
/// p95 in both windows, the biggest change in time spent per minute first.
pub(crate) fn compare(
    incident: &[OperationRow],
    baseline: &[OperationRow],
    windows: (Window, Window),
    limit: usize,
) -> Value {
    let minutes = |w: Window| ((w.to_ms - w.from_ms) as f64 / 60_000.0).max(1.0 / 60.0);
    let (mi, mb) = (minutes(windows.0), minutes(windows.1));
    let key = |r: &OperationRow| (r.operation.clone(), r.span_kind.clone());
    // (operation, kind) → (incident row, baseline row).
    type Pair<'a> = (Option<&'a OperationRow>, Option<&'a OperationRow>);
    let mut keys: BTreeMap<(String, String), Pair> = BTreeMap::new();
    for r in incident {
        keys.entry(key(r)).or_default().0 = Some(r);
    }
    for r in baseline {
        keys.entry(key(r)).or_default().1 = Some(r);
    }
    let side = |r: Option<&OperationRow>, minutes: f64| match r {
        Some(r) => json!({"requests_per_min": round(r.total_spans as f64 / minutes, 2),
                          "error_rate": round(output::rate(r.error_count, r.total_spans), 4),
                          "p95_ms": round(r.p95_ms, 2)}),
        None => Value::Null,
    };
    let per_min = |r: Option<&OperationRow>, minutes: f64| r.map_or(0.0, |r| r.sum_ms / minutes);
    let mut rows: Vec<(f64, Value)> = keys
        .into_iter()
        .map(|((operation, kind), (i, b))| {
            let delta = per_min(i, mi) - per_min(b, mb);
            let p95_change = match (i, b) {
                (Some(i), Some(b)) if b.p95_ms > 0.0 => {
                    json!(round((i.p95_ms - b.p95_ms) / b.p95_ms * 100.0, 1))
                }
                _ => Value::Null,
            };
            let status = match (i, b) {
                (Some(_), None) => "new",
                (None, Some(_)) => "gone",
                _ => "both",
            };
            (
                delta.abs(),
                json!({"operation": operation, "kind": kind, "status": status,
                       "incident": side(i, mi), "baseline": side(b, mb),
                       "p95_change_pct": p95_change,
                       "time_ms_per_min_change": round(delta, 1)}),
            )
        })
        .collect();
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    let total = rows.len();
    let rows: Vec<Value> = rows.into_iter().take(limit).map(|(_, v)| v).collect();
    json!({"incident": windows.0.json(), "baseline": windows.1.json(), "operations": rows,
           "total": total, "truncated": total > limit})
}

/// `list_traces`: summaries, never spans.
pub(crate) fn traces(r: &ListTracesResponse, window: Window, limit: u32) -> Value {
    let rows: Vec<Value> = r
        .traces
        .iter()
        .map(|t| {
            json!({"trace_id": t.trace_id, "root": format!("{} {}", t.root_service, t.root_operation),
                   "start": output::rfc3339_nanos(t.start_unix_nano), "duration_ms": ms(t.duration_us),
                   "spans": t.span_count, "errors": t.error_count, "services": t.services,
                   "sources": t.sources})
        })
        .collect();
    json!({"window": window.json(), "traces": rows, "limit": limit,
           "truncated": r.truncated, "more_matched": r.truncated})
}

/// How much of a trace `get_trace` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Detail {
    /// Totals and per-service statistics, no spans.
    Summary,
    /// The spans on the critical path, in start order.
    CriticalPath,
    /// Spans in start order, the critical path first when cut.
    Spans,
}

impl Detail {
    pub fn parse(text: Option<&str>) -> Result<Detail, String> {
        match text.unwrap_or("critical_path") {
            "summary" => Ok(Detail::Summary),
            "critical_path" => Ok(Detail::CriticalPath),
            "spans" => Ok(Detail::Spans),
            other => Err(format!(
                "detail \"{other}\" is not one of summary, critical_path, spans"
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Detail::Summary => "summary",
            Detail::CriticalPath => "critical_path",
            Detail::Spans => "spans",
        }
    }
}

/// Per service: spans, errors, and time on the critical path.
fn per_service(r: &GetTraceResponse) -> Vec<Value> {
    let mut by: BTreeMap<&str, (u32, u32, i64)> = BTreeMap::new();
    for s in &r.spans {
        let e = by.entry(s.service.as_str()).or_default();
        e.0 += 1;
        e.1 += u32::from(s.error);
        e.2 += s.self_time_us;
    }
    let mut rows: Vec<(&str, (u32, u32, i64))> = by.into_iter().collect();
    rows.sort_by(|a, b| b.1.2.cmp(&a.1.2).then_with(|| a.0.cmp(b.0)));
    rows.into_iter()
        .map(|(service, (spans, errors, self_us))| {
            json!({"service": service, "spans": spans, "errors": errors,
                   "critical_path_ms": ms(self_us)})
        })
        .collect()
}

/// `get_trace`: the trace at `detail`, at most `max_spans` spans, fitted to
/// the budget. `r` holds every span for [`Detail::Summary`], else up to the
/// colony's cut (critical path first).
pub(crate) fn trace(r: &GetTraceResponse, detail: Detail, max_spans: usize) -> Value {
    let on_path = r.spans.iter().filter(|s| s.on_critical_path).count();
    let chosen: Vec<Value> = r
        .spans
        .iter()
        .filter(|s| detail == Detail::Spans || s.on_critical_path)
        .take(if detail == Detail::Summary {
            0
        } else {
            max_spans
        })
        .map(|s| {
            let mut span = Map::new();
            span.insert("span_id".into(), json!(s.span_id));
            if !s.parent_span_id.is_empty() {
                span.insert("parent".into(), json!(s.parent_span_id));
            }
            span.insert("service".into(), json!(s.service));
            span.insert("operation".into(), json!(s.operation));
            span.insert("kind".into(), json!(s.kind));
            span.insert("duration_ms".into(), json!(ms(s.duration_us)));
            if s.on_critical_path {
                span.insert("self_ms".into(), json!(ms(s.self_time_us)));
            }
            if s.error {
                span.insert("error".into(), json!(true));
                if !s.status_message.is_empty() {
                    let m: String = s.status_message.chars().take(200).collect();
                    span.insert("status_message".into(), json!(m));
                }
            }
            if s.status_code != 0 {
                span.insert("status_code".into(), json!(s.status_code));
            }
            span.insert("source".into(), json!(s.source));
            Value::Object(span)
        })
        .collect();
    let shown = chosen.len();
    // The colony cuts with the critical path first: when every span it
    // returned is on the path, the path may go on past the cut.
    let path_cut = r.truncated && on_path == r.spans.len();
    let available = match detail {
        Detail::Summary => 0,
        Detail::CriticalPath if path_cut => usize::MAX,
        Detail::CriticalPath => on_path,
        Detail::Spans => r.span_count as usize,
    };
    // Per-service statistics count every span: only a summary has them all.
    let mut services = if detail == Detail::Summary {
        per_service(r)
    } else {
        Vec::new()
    };
    let services_total = services.len();
    services.truncate(20);
    let doc = json!({
        "trace_id": r.trace_id, "detail": detail.name(), "span_count": r.span_count,
        "duration_ms": ms(r.duration_us), "critical_path_ms": ms(r.critical_path_us),
        "errors": r.spans.iter().filter(|s| s.error).count(),
        "services": services, "services_total": services_total,
        "spans": chosen, "spans_shown": shown,
        "truncated": shown < available || services_total > 20,
    });
    fit(doc, &["spans", "services"], MAX_RESULT_CHARS)
}

/// `host_metrics`: per minute and agent, the hosts' CPU, memory, network
/// and load next to the service's requests and p99 (`agent` keeps one
/// agent's rows; `with_red` false drops the service's columns).
pub(crate) fn hosts(
    rows: &[HostCorrelationRow],
    agent: Option<&str>,
    with_red: bool,
    window: Window,
    limit: usize,
) -> Value {
    let rows: Vec<&HostCorrelationRow> = rows
        .iter()
        .filter(|r| agent.is_none_or(|a| a == r.agent_id))
        .collect();
    let total = rows.len();
    let shown: Vec<Value> = newest(rows.iter(), limit)
        .map(|r| {
            let mut row = Map::new();
            row.insert("minute".into(), json!(output::rfc3339(r.bucket_time)));
            row.insert("agent".into(), json!(r.agent_id));
            row.insert("cpu_pct".into(), json!(r.cpu_percent.map(|v| round(v, 1))));
            row.insert(
                "memory_used_mb".into(),
                json!(
                    r.memory_used_bytes
                        .map(|b| round(b as f64 / 1_048_576.0, 1))
                ),
            );
            row.insert(
                "net_rx_kbps".into(),
                json!(r.net_rx_bytes_per_sec.map(|v| round(v / 1024.0, 1))),
            );
            row.insert(
                "net_tx_kbps".into(),
                json!(r.net_tx_bytes_per_sec.map(|v| round(v / 1024.0, 1))),
            );
            row.insert("load1".into(), json!(r.load1.map(|v| round(v, 2))));
            if with_red {
                row.insert("requests".into(), json!(r.total_spans));
                row.insert("errors".into(), json!(r.error_count));
                row.insert("p99_ms".into(), json!(round(r.p99_ms, 2)));
            }
            Value::Object(row)
        })
        .collect();
    json!({"window": window.json(), "rows": shown, "total": total, "truncated": total > limit})
}

/// Holds the `coral ask` document to the budget by cutting what it cites
/// least: evidence rows first (each entry keeps `row_count` and says
/// `truncated`), then trace ids beyond five per entry. The document stays
/// the same contract.
pub(crate) fn fit_ask(mut doc: Value, budget: usize) -> Value {
    for keep_rows in [10usize, 5, 2, 0] {
        if doc.to_string().len() <= budget {
            return doc;
        }
        if let Some(evidence) = doc.get_mut("evidence").and_then(Value::as_array_mut) {
            for e in evidence.iter_mut() {
                if let Some(rows) = e.get_mut("rows").and_then(Value::as_array_mut)
                    && rows.len() > keep_rows
                {
                    rows.truncate(keep_rows);
                    e["truncated"] = json!(true);
                }
                if keep_rows <= 2
                    && let Some(ids) = e.get_mut("trace_ids").and_then(Value::as_array_mut)
                {
                    ids.truncate(5);
                }
            }
        }
    }
    doc
}

#[cfg(test)]
#[path = "shape_tests.rs"]
mod tests;
