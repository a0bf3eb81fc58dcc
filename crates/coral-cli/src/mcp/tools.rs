//! The tools: each reads its arguments, calls the colony, and returns a
//! bounded JSON document ([`super::shape`]). A call that cannot be answered
//! is a tool error whose message says what to do (a misspelt service gets
//! the closest known name).
//!
//! Descriptions are short on purpose: every tool definition together stays
//! under 2,000 tokens (measured by a test).

use std::time::{SystemTime, UNIX_EPOCH};

use coral_proto::colony::{
    DiagnoseRequest, GetTraceRequest, ListServicesRequest, ListTracesRequest, QueryBeylaRequest,
    QueryHostCorrelationRequest, QueryOperationsRequest, QueryOtelSummariesRequest,
};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, ContentBlock};
use rmcp::{schemars, tool, tool_router};
use serde_json::Value;

use super::CoralMcp;
use super::shape::{self, Detail, MAX_RESULT_CHARS, Window};
use crate::beyla_views::{self, Family, HttpFilter};
use crate::suggest::{self, Known};

/// Most trace summaries `list_traces` returns.
const MAX_TRACES: u32 = 50;
/// Trace summaries unless asked for more.
const DEFAULT_TRACES: u32 = 20;
/// Most spans `get_trace` returns.
const MAX_SPANS: u32 = 200;
/// Spans `get_trace` returns unless asked for more.
const DEFAULT_SPANS: u32 = 50;
/// Rows of a list unless a tool says otherwise.
const MAX_ROWS: usize = 60;

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A successful result: the document as JSON text.
fn ok(doc: Value) -> CallToolResult {
    CallToolResult::success(vec![ContentBlock::text(doc.to_string())])
}

/// A tool error a model can act on.
fn fail(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// Unwraps or returns the tool error.
macro_rules! attempt {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(message) => return fail(message),
        }
    };
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct AskParams {
    /// e.g. "why is checkout slow?"
    question: String,
    /// Wins over the question's service.
    #[serde(default)]
    service: Option<String>,
    /// Incident window (default: the last 15m, narrowed).
    #[serde(default)]
    incident: Option<String>,
    /// Baseline window (default: the hour before).
    #[serde(default)]
    baseline: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct ServicesParams {
    /// Default 1h.
    #[serde(default)]
    window: Option<String>,
}

/// How `service_red` groups.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum By {
    #[default]
    Minute,
    Operation,
    Route,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct RedParams {
    service: String,
    /// Default 1h.
    #[serde(default)]
    window: Option<String>,
    /// Default minute.
    #[serde(default)]
    by: By,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct CompareParams {
    service: String,
    /// Default 15m.
    #[serde(default)]
    incident: Option<String>,
    /// Default: the hour before the incident.
    #[serde(default)]
    baseline: Option<String>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct TracesParams {
    service: String,
    /// Span name.
    #[serde(default)]
    operation: Option<String>,
    /// Default 1h.
    #[serde(default)]
    window: Option<String>,
    #[serde(default)]
    min_duration_ms: Option<f64>,
    #[serde(default)]
    errors_only: bool,
    /// ≤ 50, default 20.
    #[serde(default)]
    limit: Option<u32>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct TraceParams {
    trace_id: String,
    /// summary | critical_path (default) | spans
    #[serde(default)]
    detail: Option<String>,
    /// ≤ 200, default 50.
    #[serde(default)]
    max_spans: Option<u32>,
}

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
pub(crate) struct HostParams {
    /// Service (or agent) to show hosts of.
    #[serde(default)]
    service: Option<String>,
    /// Agent id.
    #[serde(default)]
    agent: Option<String>,
    /// Default 1h.
    #[serde(default)]
    window: Option<String>,
}

/// How windows are written, for the server's instructions.
pub(crate) const WINDOWS: &str = "Windows are 15m, 1h, 2d (back from now) or FROM/TO in RFC 3339.";

#[tool_router(vis = "pub(crate)")]
impl CoralMcp {
    #[tool(
        description = "Why is a service slow, failing or busy? Causes ranked with evidence ids, trace ids and reproduce commands (the `coral ask` JSON). Windows: 15m, 1h, or FROM/TO RFC 3339."
    )]
    async fn coral_ask(&self, Parameters(p): Parameters<AskParams>) -> CallToolResult {
        let now = now_ms();
        let incident = match p.incident.as_deref() {
            Some(t) => Some(attempt!(shape::window(Some(t), "15m", now))),
            None => None,
        };
        let baseline = match p.baseline.as_deref() {
            Some(t) => Some(attempt!(shape::window(Some(t), "1h", now))),
            None => None,
        };
        // A service named outright must exist: the question's own words
        // are read loosely by the colony, this is not.
        if let Some(service) = p.service.as_deref() {
            let w = incident.unwrap_or(Window {
                from_ms: now - 900_000,
                to_ms: now,
            });
            if let Some(why) = self.unknown(service, w, "data").await {
                return fail(why);
            }
        }
        let request = DiagnoseRequest {
            question: p.question.clone(),
            service: p.service.clone().unwrap_or_default(),
            from_unix: incident.map_or(0, Window::start_s),
            to_unix: incident.map_or(0, Window::end_s),
            baseline_from_unix: baseline.map_or(0, Window::start_s),
            baseline_to_unix: baseline.map_or(0, Window::end_s),
            ..Default::default()
        };
        let response = match self.client.clone().diagnose(request).await {
            Ok(r) => r.into_inner(),
            // The colony's own words: candidates for an unknown service,
            // the forms of question it reads.
            Err(s) if s.code() == tonic::Code::InvalidArgument => return fail(s.message()),
            Err(s) => return fail(self.colony.explain(s).to_string()),
        };
        let doc: Value = attempt!(
            serde_json::from_str(&response.diagnosis_json)
                .map_err(|e| format!("the colony's answer is not JSON ({e})"))
        );
        let doc = shape::fit_ask(doc, MAX_RESULT_CHARS);
        self.asks
            .remember(&p.question, &response.service, &response.verdict, &doc);
        ok(doc)
    }

    #[tool(
        description = "Services seen in a window: requests, errors, error rate, p95 ms, source (otlp, beyla)."
    )]
    async fn list_services(&self, Parameters(p): Parameters<ServicesParams>) -> CallToolResult {
        let w = attempt!(shape::window(p.window.as_deref(), "1h", now_ms()));
        let services = attempt!(self.services(w).await);
        ok(shape::fit(
            shape::services(&services, w, MAX_ROWS * 2),
            &["services"],
            MAX_RESULT_CHARS,
        ))
    }

    #[tool(
        description = "RED rows of a service by minute (default; OTLP, else Beyla), operation (OTLP) or route (Beyla HTTP)."
    )]
    async fn service_red(&self, Parameters(p): Parameters<RedParams>) -> CallToolResult {
        let w = attempt!(shape::window(p.window.as_deref(), "1h", now_ms()));
        let doc = match p.by {
            By::Minute => {
                let r = attempt!(
                    self.call(self.client.clone().query_otel_summaries(
                        QueryOtelSummariesRequest {
                            service_name: p.service.clone(),
                            from_unix: w.start_s(),
                            to_unix: w.end_s(),
                            ..Default::default()
                        }
                    ))
                    .await
                );
                if r.rows.is_empty() {
                    // A service only Beyla sees: its histograms per minute.
                    let b = attempt!(self.beyla(&p.service, w, &["http", "grpc"]).await);
                    if b.http_metrics.is_empty() && b.grpc_metrics.is_empty() {
                        return fail(
                            self.not_found(&p.service, w, "OTLP spans or Beyla metrics")
                                .await,
                        );
                    }
                    shape::beyla_per_minute(&b, w, MAX_ROWS)
                } else {
                    shape::red_per_minute(&r.rows, w, MAX_ROWS)
                }
            }
            By::Operation => {
                let r = attempt!(self.operations(&p.service, w).await);
                if r.is_empty() {
                    return fail(self.not_found(&p.service, w, "OTLP spans").await);
                }
                shape::red_per_operation(&r, w, MAX_ROWS)
            }
            By::Route => {
                let r = attempt!(self.beyla(&p.service, w, &["http"]).await);
                let (groups, _) = beyla_views::groups(&r, Family::Http, &HttpFilter::default());
                if groups.is_empty() {
                    return fail(
                        self.not_found(
                            &p.service,
                            w,
                            "Beyla HTTP metrics (by: operation reads OTLP spans)",
                        )
                        .await,
                    );
                }
                shape::red_per_route(&groups, w, MAX_ROWS)
            }
        };
        ok(shape::fit(doc, &["rows"], MAX_RESULT_CHARS))
    }

    #[tool(
        description = "Per-operation changes of a service, incident window vs baseline: requests/min, error rate, p95, time spent."
    )]
    async fn compare_windows(&self, Parameters(p): Parameters<CompareParams>) -> CallToolResult {
        let now = now_ms();
        let incident = attempt!(shape::window(p.incident.as_deref(), "15m", now));
        let baseline = match p.baseline.as_deref() {
            Some(t) => attempt!(shape::window(Some(t), "1h", now)),
            None => Window {
                from_ms: incident.from_ms - 3_600_000,
                to_ms: incident.from_ms,
            },
        };
        let i = attempt!(self.operations(&p.service, incident).await);
        let b = attempt!(self.operations(&p.service, baseline).await);
        if i.is_empty() && b.is_empty() {
            return fail(self.not_found(&p.service, incident, "OTLP spans").await);
        }
        ok(shape::fit(
            shape::compare(&i, &b, (incident, baseline), MAX_ROWS / 2),
            &["operations"],
            MAX_RESULT_CHARS,
        ))
    }

    #[tool(
        description = "Trace summaries of a service, slowest first; no spans (open one with get_trace)."
    )]
    async fn list_traces(&self, Parameters(p): Parameters<TracesParams>) -> CallToolResult {
        let w = attempt!(shape::window(p.window.as_deref(), "1h", now_ms()));
        let limit = p.limit.unwrap_or(DEFAULT_TRACES).clamp(1, MAX_TRACES);
        let r = attempt!(
            self.call(self.client.clone().list_traces(ListTracesRequest {
                service: p.service.clone(),
                operation: p.operation.unwrap_or_default(),
                start_time_unix_ms: w.from_ms,
                end_time_unix_ms: w.to_ms,
                min_duration_us: (p.min_duration_ms.unwrap_or(0.0).max(0.0) * 1000.0) as i64,
                errors_only: p.errors_only,
                limit,
                ..Default::default()
            }))
            .await
        );
        if r.traces.is_empty()
            && let Some(why) = self.unknown(&p.service, w, "traces").await
        {
            return fail(why);
        }
        ok(shape::fit(
            shape::traces(&r, w, limit),
            &["traces"],
            MAX_RESULT_CHARS,
        ))
    }

    #[tool(
        description = "One trace: summary (per-service stats), critical_path (default) or spans; at most max_spans, says truncated."
    )]
    async fn get_trace(&self, Parameters(p): Parameters<TraceParams>) -> CallToolResult {
        let detail = attempt!(Detail::parse(p.detail.as_deref()));
        let id = p.trace_id.trim().to_ascii_lowercase();
        if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return fail(format!(
                "trace_id \"{}\" is not 32 hex characters; list_traces and coral_ask give ids",
                p.trace_id
            ));
        }
        let max = p.max_spans.unwrap_or(DEFAULT_SPANS).clamp(1, MAX_SPANS);
        // A summary counts every span; otherwise the colony cuts, keeping
        // the critical path first.
        let fetch = if detail == Detail::Summary { 0 } else { max };
        let r = attempt!(
            self.call(self.client.clone().get_trace(GetTraceRequest {
                trace_id: id.clone(),
                max_spans: fetch,
            }))
            .await
        );
        if !r.found {
            return fail(format!(
                "trace {id} is not in the colony: only kept traces are stored (errors, slow ones and a sample), for the colony's retention; list_traces gives ids that open"
            ));
        }
        ok(shape::trace(&r, detail, max as usize))
    }

    #[tool(
        description = "Hosts' CPU, memory, network and load per minute, with the service's requests and p99; by service or agent."
    )]
    async fn host_metrics(&self, Parameters(p): Parameters<HostParams>) -> CallToolResult {
        let w = attempt!(shape::window(p.window.as_deref(), "1h", now_ms()));
        let (service, with_red) = match (&p.service, &p.agent) {
            (Some(s), _) => (s.clone(), true),
            (None, Some(agent)) => {
                // Host rows come joined to a service: any service the agent
                // reported in the window gives its host's columns.
                let services = attempt!(self.services(w).await);
                match services.iter().find(|s| s.agents.contains(agent)) {
                    Some(s) => (s.service_name.clone(), false),
                    None => {
                        return fail(format!(
                            "agent '{agent}' reported no service in {}; `list_services` shows what reported, and agents are named by their agent id",
                            w.json()
                        ));
                    }
                }
            }
            (None, None) => {
                return fail(
                    "host_metrics needs service (a name from list_services) or agent (an agent id from list_services' agents)",
                );
            }
        };
        let r =
            attempt!(
                self.call(self.client.clone().query_host_correlation(
                    QueryHostCorrelationRequest {
                        service_name: service.clone(),
                        from_unix: w.start_s(),
                        to_unix: w.end_s(),
                    }
                ))
                .await
            );
        if r.rows.is_empty() {
            return fail(self.not_found(&service, w, "host metrics").await);
        }
        ok(shape::fit(
            shape::hosts(&r.rows, p.agent.as_deref(), with_red, w, MAX_ROWS),
            &["rows"],
            MAX_RESULT_CHARS,
        ))
    }
}

impl CoralMcp {
    /// Awaits a colony call; a failure becomes a message that says what to do.
    async fn call<T>(
        &self,
        call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    ) -> Result<T, String> {
        call.await
            .map(tonic::Response::into_inner)
            .map_err(|s| self.colony.explain(s).to_string())
    }

    async fn services(
        &self,
        w: Window,
    ) -> Result<Vec<coral_proto::colony::ServiceSummary>, String> {
        self.call(self.client.clone().list_services(ListServicesRequest {
            start_time_unix_ms: w.from_ms,
            end_time_unix_ms: w.to_ms,
        }))
        .await
        .map(|r| r.services)
    }

    /// Beyla's metrics of `types` (http, grpc, sql) for a service over `w`.
    async fn beyla(
        &self,
        service: &str,
        w: Window,
        types: &[&str],
    ) -> Result<coral_proto::colony::QueryBeylaResponse, String> {
        self.call(self.client.clone().query_beyla(QueryBeylaRequest {
            service_names: vec![service.to_owned()],
            metric_types: types.iter().map(|t| (*t).to_owned()).collect(),
            start_time_unix_ms: w.from_ms,
            end_time_unix_ms: w.to_ms,
            ..Default::default()
        }))
        .await
    }

    /// Per-operation totals of a service over `w`.
    async fn operations(
        &self,
        service: &str,
        w: Window,
    ) -> Result<Vec<coral_proto::colony::OperationRow>, String> {
        self.call(
            self.client
                .clone()
                .query_operations(QueryOperationsRequest {
                    service_name: service.to_owned(),
                    from_unix: w.start_s(),
                    to_unix: w.end_s(),
                    ..Default::default()
                }),
        )
        .await
        .map(|r| r.totals)
    }

    /// The services the colony has seen over the hint's look-back.
    async fn known(&self) -> Known {
        let now = now_ms();
        let w = Window {
            from_ms: now - suggest::LOOKBACK_SECS * 1000,
            to_ms: now,
        };
        self.services(w)
            .await
            .map(|s| Known::from_summaries(&s))
            .unwrap_or_default()
    }

    /// Why a service gave nothing (see [`missing`]).
    async fn not_found(&self, service: &str, w: Window, what: &str) -> String {
        missing(service, w, what, &self.known().await)
    }

    /// `Some(why)` when the colony has never seen `service` by that exact
    /// name (one look-up for the check and the message).
    async fn unknown(&self, service: &str, w: Window, what: &str) -> Option<String> {
        let known = self.known().await;
        (!known.names.iter().any(|n| n == service)).then(|| missing(service, w, what, &known))
    }
}

/// Why a service gave nothing: a misspelling (with the closest name), no
/// data of this kind in the window, or no data at all.
fn missing(service: &str, w: Window, what: &str, known: &Known) -> String {
    let days = suggest::LOOKBACK_SECS / 86_400;
    match suggest::close_match(service, &known.names) {
        Some(name) if name == service => format!(
            "service '{service}' has no {what} in {}; it has other data in the last {days} days: try a wider window (e.g. 1d) or list_services",
            w.json()
        ),
        Some(name) => format!("service '{service}' not found; did you mean '{name}'?"),
        None if known.names.is_empty() => format!(
            "service '{service}' not found: no service has reported in the last {days} days (are agents running, and apps exporting OTLP to them?)"
        ),
        None => format!(
            "service '{service}' not found; known services: {}",
            known.listing()
        ),
    }
}
