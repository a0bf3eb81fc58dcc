//! Renderings of `coral query beyla http|grpc|sql`: rows of the colony's
//! one-minute histograms grouped per route (method, operation), merged, and
//! shown with percentiles from the merged histogram
//! (`coral_model::Histogram::quantile`: Prometheus-style interpolation,
//! clamped to the observed min and max; the +Inf bucket reports the max or
//! "> last bound").

use std::collections::BTreeMap;

use coral_model::{Histogram, Quantile};
use coral_proto::colony::QueryBeylaResponse;
use serde_json::json;

use crate::output::{self, Empty, Format};

/// Which Beyla family a view shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// HTTP: rows per (method, route); errors are status ≥ 500.
    Http,
    /// gRPC: rows per method; errors are non-OK codes.
    Grpc,
    /// Databases and messaging: rows per (operation, table).
    Sql,
}

impl Family {
    fn title(self) -> &'static str {
        match self {
            Family::Http => "Beyla HTTP metrics",
            Family::Grpc => "Beyla gRPC metrics",
            Family::Sql => "Beyla SQL metrics",
        }
    }

    fn error_rule(self) -> &'static str {
        match self {
            Family::Http => "Errors are responses with status ≥ 500.",
            Family::Grpc => "Errors are calls with a status other than OK.",
            Family::Sql => "Errors are operations that reported an error.",
        }
    }
}

/// One group of rows (a route, method or operation) merged.
#[derive(Debug, Clone, Default)]
pub struct Group {
    /// The group's key: (method, route), (method) or (operation, table).
    pub key: Vec<String>,
    /// Requests (calls, queries).
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// The merged latency histogram.
    pub latency: Histogram,
}

impl Group {
    fn add(&mut self, errors: u64, h: &Histogram) {
        self.requests += h.count;
        self.errors += errors;
        self.latency.merge(h);
    }

    fn error_rate(&self) -> f64 {
        output::rate(self.errors as i64, self.requests as i64)
    }
}

/// Filters of `coral query beyla http`.
#[derive(Debug, Clone, Default)]
pub struct HttpFilter {
    /// Exact route.
    pub route: Option<String>,
    /// Method, case-insensitive.
    pub method: Option<String>,
    /// Status: an exact code ("404") or a class ("5xx").
    pub status: Option<String>,
    /// "server" (default) or "client".
    pub kind: String,
}

/// True when `code` matches a `--status` value: "404" or "5xx".
pub fn status_matches(filter: &str, code: u32) -> bool {
    let f = filter.trim().to_ascii_lowercase();
    if let Some(class) = f.strip_suffix("xx") {
        return class.parse::<u32>().is_ok_and(|c| code / 100 == c);
    }
    f.parse::<u32>().is_ok_and(|c| c == code)
}

/// Checks a `--status` value.
pub fn parse_status(s: &str) -> Result<String, String> {
    let f = s.trim().to_ascii_lowercase();
    let ok = match f.strip_suffix("xx") {
        Some(class) => matches!(class, "1" | "2" | "3" | "4" | "5"),
        None => f.parse::<u32>().is_ok_and(|c| (100..600).contains(&c)),
    };
    if ok {
        Ok(f)
    } else {
        Err(format!(
            "{s:?} is not a status: use a code (404) or a class (2xx, 4xx, 5xx)"
        ))
    }
}

fn histogram(p: &Option<coral_proto::common::LatencyHistogram>) -> Option<Histogram> {
    p.as_ref().and_then(|h| Histogram::from_proto(h).ok())
}

/// Groups and merges a response's rows of `family`, sorted by requests
/// (most first), then key; returns the groups and the overall group.
pub fn groups(r: &QueryBeylaResponse, family: Family, http: &HttpFilter) -> (Vec<Group>, Group) {
    let mut by_key: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    let mut overall = Group::default();
    let mut add = |key: Vec<String>, errors: u64, h: Histogram| {
        overall.add(errors, &h);
        let g = by_key.entry(key.clone()).or_insert_with(|| Group {
            key,
            ..Group::default()
        });
        g.add(errors, &h);
    };
    // Server side unless the filter asks for another kind.
    let kind_ok = |kind: &str| kind == http.kind || (http.kind.is_empty() && kind == "server");
    match family {
        Family::Http => {
            for m in &r.http_metrics {
                let Some(h) = histogram(&m.latency) else {
                    continue;
                };
                let route_ok = http.route.as_ref().is_none_or(|r| *r == m.http_route);
                let method_ok = http
                    .method
                    .as_ref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(&m.http_method));
                let status_ok = http
                    .status
                    .as_ref()
                    .is_none_or(|s| status_matches(s, m.http_status_code));
                if kind_ok(&m.kind) && route_ok && method_ok && status_ok {
                    let errors = if m.http_status_code >= 500 {
                        h.count
                    } else {
                        0
                    };
                    add(vec![m.http_method.clone(), m.http_route.clone()], errors, h);
                }
            }
        }
        Family::Grpc => {
            for m in &r.grpc_metrics {
                let Some(h) = histogram(&m.latency) else {
                    continue;
                };
                let method_ok = http.method.as_ref().is_none_or(|x| *x == m.grpc_method);
                if kind_ok(&m.kind) && method_ok {
                    let errors = if m.grpc_status_code != 0 { h.count } else { 0 };
                    add(vec![m.grpc_method.clone()], errors, h);
                }
            }
        }
        Family::Sql => {
            for m in &r.sql_metrics {
                let Some(h) = histogram(&m.latency) else {
                    continue;
                };
                let op_ok = http
                    .method
                    .as_ref()
                    .is_none_or(|x| x.eq_ignore_ascii_case(&m.sql_operation));
                let table_ok = http.route.as_ref().is_none_or(|t| *t == m.table_name);
                if op_ok && table_ok {
                    add(
                        vec![
                            m.sql_operation.clone(),
                            m.table_name.clone(),
                            m.db_system.clone(),
                        ],
                        m.error_count,
                        h,
                    );
                }
            }
        }
    }
    let mut groups: Vec<Group> = by_key.into_values().collect();
    groups.sort_by(|a, b| b.requests.cmp(&a.requests).then_with(|| a.key.cmp(&b.key)));
    (groups, overall)
}

fn quantile_cell(h: &Histogram, q: f64) -> String {
    match h.quantile(q) {
        Some(Quantile::Value(v)) => output::ms(v),
        Some(Quantile::Above(b)) => format!(">{}", output::ms(b)),
        None => "-".into(),
    }
}

fn quantile_json(h: &Histogram, q: f64) -> serde_json::Value {
    h.quantile(q)
        .map_or(serde_json::Value::Null, |v| json!(v.ms()))
}

/// Percentiles that fell in the +Inf bucket with no known max: JSON gives
/// the last bound for them and lists them here.
fn lower_bounds(h: &Histogram) -> Vec<&'static str> {
    [("p50", 0.5), ("p95", 0.95), ("p99", 0.99)]
        .into_iter()
        .filter(|(_, q)| matches!(h.quantile(*q), Some(Quantile::Above(_))))
        .map(|(name, _)| name)
        .collect()
}

fn stats_json(g: &Group) -> serde_json::Map<String, serde_json::Value> {
    let mut m = serde_json::Map::new();
    m.insert("errors".into(), json!(g.errors));
    m.insert("error_rate".into(), json!(g.error_rate()));
    m.insert("p50_ms".into(), quantile_json(&g.latency, 0.5));
    m.insert("p95_ms".into(), quantile_json(&g.latency, 0.95));
    m.insert("p99_ms".into(), quantile_json(&g.latency, 0.99));
    m.insert("max_ms".into(), json!(g.latency.max_ms));
    let above = lower_bounds(&g.latency);
    if !above.is_empty() {
        m.insert("above_last_bound".into(), json!(above));
    }
    m
}

/// The window as shown in the title: "last 1 hour" or "from … to …".
pub struct Window<'a> {
    /// Start, Unix seconds.
    pub from: i64,
    /// End, Unix seconds.
    pub to: i64,
    /// The `--since` text when the window is relative.
    pub since: Option<&'a str>,
}

fn since_words(since: &str) -> String {
    let units = [
        ("d", "day"),
        ("h", "hour"),
        ("m", "minute"),
        ("s", "second"),
    ];
    for (suffix, word) in units {
        if let Some(n) = since
            .strip_suffix(suffix)
            .and_then(|n| n.parse::<u64>().ok())
        {
            return format!("last {n} {word}{}", if n == 1 { "" } else { "s" });
        }
    }
    format!("last {since}")
}

/// The observed max for a table: "-" when some merged row did not report one.
fn max_cell(h: &Histogram) -> String {
    h.max_ms.map_or("-".into(), output::ms)
}

/// Renders `coral query beyla http|grpc|sql <service>`; `empty` is what the
/// table says when the window holds nothing.
pub fn render(
    service: &str,
    window: &Window<'_>,
    family: Family,
    r: &QueryBeylaResponse,
    filter: &HttpFilter,
    format: Format,
    empty: &Empty,
) -> String {
    let (groups, overall) = groups(r, family, filter);
    let (list_key, count_key) = match family {
        Family::Http => ("routes", "requests"),
        Family::Grpc => ("methods", "requests"),
        Family::Sql => ("operations", "queries"),
    };
    let key_fields: &[&str] = match family {
        Family::Http => &["method", "route"],
        Family::Grpc => &["method"],
        Family::Sql => &["operation", "table", "system"],
    };
    match format {
        Format::Json => {
            let items: Vec<_> = groups
                .iter()
                .map(|g| {
                    let mut m = serde_json::Map::new();
                    for (field, value) in key_fields.iter().zip(&g.key) {
                        m.insert((*field).into(), json!(value));
                    }
                    m.insert(count_key.into(), json!(g.requests));
                    m.extend(stats_json(g));
                    serde_json::Value::Object(m)
                })
                .collect();
            let mut total = serde_json::Map::new();
            total.insert(count_key.into(), json!(overall.requests));
            total.extend(stats_json(&overall));
            let mut doc = serde_json::Map::new();
            doc.insert("service".into(), json!(service));
            doc.insert("from".into(), json!(output::rfc3339(window.from)));
            doc.insert("to".into(), json!(output::rfc3339(window.to)));
            doc.insert(list_key.into(), json!(items));
            doc.insert("overall".into(), serde_json::Value::Object(total));
            output::json(&serde_json::Value::Object(doc))
        }
        Format::Csv => {
            let mut headers: Vec<&str> = key_fields.to_vec();
            headers.extend([
                count_key,
                "errors",
                "error_rate",
                "p50_ms",
                "p95_ms",
                "p99_ms",
                "max_ms",
            ]);
            let num = |h: &Histogram, q| {
                h.quantile(q)
                    .map_or(String::new(), |v| format!("{}", v.ms()))
            };
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    let mut row = g.key.clone();
                    row.extend([
                        g.requests.to_string(),
                        g.errors.to_string(),
                        format!("{}", g.error_rate()),
                        num(&g.latency, 0.5),
                        num(&g.latency, 0.95),
                        num(&g.latency, 0.99),
                        g.latency.max_ms.map_or(String::new(), |v| format!("{v}")),
                    ]);
                    row
                })
                .collect();
            output::csv(&headers, &rows)
        }
        Format::Table => {
            let when = match window.since {
                Some(since) => since_words(since),
                None => format!(
                    "{} to {} UTC",
                    output::minute(window.from),
                    output::minute(window.to)
                ),
            };
            let mut out = format!("Service: {service} ({when}, {})\n\n", family.title());
            if overall.requests == 0 {
                out.push_str(&format!(
                    "No {} of {service} in this window.\n",
                    family.title()
                ));
                out.push_str(&empty.lines(
                    "Check the service name with `coral query services`, widen --since, or check Beyla with `coral agents`.",
                ));
                return out;
            }
            let label = |g: &Group| match family {
                Family::Http => format!("{} {}", g.key[0], g.key[1]),
                Family::Grpc => g.key[0].clone(),
                Family::Sql => g.key[0].clone(),
            };
            let (first, count_title) = match family {
                Family::Http => ("Route", "Requests"),
                Family::Grpc => ("Method", "Requests"),
                Family::Sql => ("Operation", "Queries"),
            };
            let mut headers = vec![first];
            if family == Family::Sql {
                headers.push("Table");
            }
            headers.extend([count_title, "P50", "P95", "P99", "Max", "Errors"]);
            let rows: Vec<Vec<String>> = groups
                .iter()
                .map(|g| {
                    let mut row = vec![label(g)];
                    if family == Family::Sql {
                        row.push(if g.key[1].is_empty() {
                            "-".into()
                        } else {
                            g.key[1].clone()
                        });
                    }
                    row.extend([
                        output::count(g.requests as i64),
                        quantile_cell(&g.latency, 0.5),
                        quantile_cell(&g.latency, 0.95),
                        quantile_cell(&g.latency, 0.99),
                        max_cell(&g.latency),
                        output::percent(g.error_rate()),
                    ]);
                    row
                })
                .collect();
            out.push_str(&output::piped_table(&headers, &rows));
            out.push_str(&format!(
                "\nOverall: {} {}, P95={}, Max={}, error rate={}\n{}\n",
                output::count(overall.requests as i64),
                count_title.to_lowercase(),
                quantile_cell(&overall.latency, 0.95),
                max_cell(&overall.latency),
                output::percent(overall.error_rate()),
                family.error_rule()
            ));
            out
        }
    }
}

/// Renders `coral query services`; `empty` is what the table says when the
/// window holds nothing.
pub fn render_services(
    window: &Window<'_>,
    services: &[coral_proto::colony::ServiceSummary],
    format: Format,
    empty: &Empty,
) -> String {
    let p95_cell = |s: &coral_proto::colony::ServiceSummary| match s.p95_ms {
        Some(v) if s.p95_above_last_bound => format!(">{}", output::ms(v)),
        Some(v) => output::ms(v),
        None => "-".into(),
    };
    match format {
        Format::Json => output::json(&json!({
            "from": output::rfc3339(window.from),
            "to": output::rfc3339(window.to),
            "services": services.iter().map(|s| json!({
                "service": s.service_name, "source": s.source, "requests": s.requests,
                "errors": s.errors, "error_rate": s.error_rate, "p95_ms": s.p95_ms,
                "p95_above_last_bound": s.p95_above_last_bound, "agents": s.agents,
            })).collect::<Vec<_>>(),
        })),
        Format::Csv => output::csv(
            &[
                "service",
                "source",
                "requests",
                "errors",
                "error_rate",
                "p95_ms",
                "agents",
            ],
            &services
                .iter()
                .map(|s| {
                    vec![
                        s.service_name.clone(),
                        s.source.clone(),
                        s.requests.to_string(),
                        s.errors.to_string(),
                        format!("{}", s.error_rate),
                        s.p95_ms.map_or(String::new(), |v| format!("{v}")),
                        s.agents.join(" "),
                    ]
                })
                .collect::<Vec<_>>(),
        ),
        Format::Table => {
            if services.is_empty() {
                let mut out =
                    "No services in this window: nothing reported OTLP spans or Beyla metrics.\n"
                        .to_owned();
                out.push_str(&empty.lines(
                    "Check that apps export OTLP to an agent, `coral agents` for the agents' health, or widen --since.",
                ));
                return out;
            }
            let rows: Vec<Vec<String>> = services
                .iter()
                .map(|s| {
                    vec![
                        s.service_name.clone(),
                        s.source.clone(),
                        output::count(s.requests as i64),
                        output::percent(s.error_rate),
                        p95_cell(s),
                        s.agents.join(", "),
                    ]
                })
                .collect();
            let when = match window.since {
                Some(since) => since_words(since),
                None => format!(
                    "{} to {} UTC",
                    output::minute(window.from),
                    output::minute(window.to)
                ),
            };
            let mut out = format!("Services ({when})\n\n");
            out.push_str(&output::table(
                &["Service", "Source", "Requests", "Errors", "P95", "Agents"],
                &rows,
            ));
            // Explain and suggest only the sources that have data.
            let has = |source: &str| services.iter().any(|s| s.source == source);
            let (mut legend, mut next) = (Vec::new(), Vec::new());
            if has("beyla") {
                legend.push("beyla: server-side HTTP and gRPC (errors: status ≥ 500, gRPC not OK)");
                next.push("coral query beyla http <service>");
            }
            if has("otlp") {
                legend.push("otlp: SERVER and CONSUMER spans, all kinds when a service has neither (errors: span status ERROR)");
                next.push("coral query otel <service>");
            }
            if !legend.is_empty() {
                out.push_str(&format!(
                    "\n{}.\nNext: {}\n",
                    legend.join("; "),
                    next.join(" · ")
                ));
            }
            out
        }
    }
}

#[cfg(test)]
#[path = "beyla_views_tests.rs"]
mod tests;
