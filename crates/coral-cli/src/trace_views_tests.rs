//! Golden renderings of traces (`tests/fixtures/golden/`, regenerated with
//! `CORAL_UPDATE_GOLDEN=1`): a tree across two sources and agents with the
//! critical path, a child that outlives its parent, concurrent children and
//! a span whose parent is missing; the table; JSON; the list.

use coral_model::{SpanTiming, TraceShape};
use coral_proto::colony::{GetTraceResponse, ListTracesResponse, TraceSpan, TraceSummary};

use super::*;

const T0: i64 = 1_795_000_000_000_000_000;

/// Compares `actual` with the golden file `name`, or rewrites it when
/// `CORAL_UPDATE_GOLDEN=1`.
pub(crate) fn golden(name: &str, actual: &str) {
    let dir = std::path::PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo test sets CARGO_MANIFEST_DIR"),
    )
    .join("tests/fixtures/golden");
    let path = dir.join(name);
    if std::env::var_os("CORAL_UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run with CORAL_UPDATE_GOLDEN=1 to create it",
            path.display()
        )
    });
    assert_eq!(
        actual,
        expected,
        "{} differs (CORAL_UPDATE_GOLDEN=1 rewrites it):\n{actual}",
        path.display()
    );
}

struct S {
    id: &'static str,
    parent: &'static str,
    service: &'static str,
    op: &'static str,
    kind: &'static str,
    start_ms: i64,
    dur_ms: i64,
    source: &'static str,
    agent: &'static str,
    error: bool,
}

#[allow(clippy::too_many_arguments)]
const fn s(
    id: &'static str,
    parent: &'static str,
    service: &'static str,
    op: &'static str,
    kind: &'static str,
    (start_ms, dur_ms): (i64, i64),
    (source, agent): (&'static str, &'static str),
    error: bool,
) -> S {
    S {
        id,
        parent,
        service,
        op,
        kind,
        start_ms,
        dur_ms,
        source,
        agent,
        error,
    }
}

/// frontend GET /checkout (0–1200 ms, OTLP on web-1) calls checkout (a
/// Beyla-instrumented service on web-2) which runs a query and a payment
/// call concurrently; `render` outlives the root (clipped at 1200 ms); an
/// inventory error span's parent was not kept.
const SPANS: [S; 7] = [
    s(
        "a000000000000001",
        "",
        "frontend",
        "GET /checkout",
        "server",
        (0, 1200),
        ("otlp", "web-1"),
        false,
    ),
    s(
        "a000000000000002",
        "a000000000000001",
        "frontend",
        "POST /api/checkout",
        "client",
        (10, 690),
        ("otlp", "web-1"),
        false,
    ),
    s(
        "b000000000000003",
        "a000000000000002",
        "checkout",
        "POST /api/checkout",
        "server",
        (15, 675),
        ("beyla", "web-2"),
        false,
    ),
    s(
        "b000000000000004",
        "b000000000000003",
        "checkout",
        "SELECT orders",
        "client",
        (100, 200),
        ("beyla", "web-2"),
        false,
    ),
    s(
        "a000000000000005",
        "b000000000000003",
        "payments",
        "POST /charge",
        "server",
        (120, 530),
        ("otlp", "web-2"),
        false,
    ),
    s(
        "a000000000000007",
        "00000000000000ff",
        "inventory",
        "GET /stock",
        "server",
        (200, 60),
        ("otlp", "web-1"),
        true,
    ),
    s(
        "a000000000000006",
        "a000000000000001",
        "frontend",
        "render",
        "internal",
        (700, 550),
        ("otlp", "web-1"),
        false,
    ),
];

/// The response the colony would give (spans in start order): self times
/// from the same critical-path walk.
fn fixture() -> GetTraceResponse {
    let timings: Vec<SpanTiming<'_>> = SPANS
        .iter()
        .map(|s| SpanTiming {
            span_id: s.id,
            parent_span_id: s.parent,
            start_ns: T0 + s.start_ms * 1_000_000,
            end_ns: T0 + (s.start_ms + s.dur_ms) * 1_000_000,
        })
        .collect();
    let shape = TraceShape::new(&timings);
    let spans = SPANS
        .iter()
        .enumerate()
        .map(|(i, s)| TraceSpan {
            span_id: s.id.into(),
            parent_span_id: s.parent.into(),
            service: s.service.into(),
            operation: s.op.into(),
            kind: s.kind.into(),
            start_unix_nano: T0 + s.start_ms * 1_000_000,
            duration_us: s.dur_ms * 1_000,
            self_time_us: shape.self_time_ns[i] / 1_000,
            on_critical_path: shape.on_path[i],
            status: if s.error { "error" } else { "unset" }.into(),
            error: s.error,
            source: s.source.into(),
            agent_id: s.agent.into(),
            host: s.agent.into(),
            keep_reason: if s.source == "beyla" {
                "beyla"
            } else if s.error {
                "error"
            } else {
                "sampled"
            }
            .into(),
            attributes_json: r#"{"http.response.status_code":200,"retry":false}"#.into(),
            resource_json: if s.source == "otlp" {
                r#"{"service.version":"1.4.2"}"#.into()
            } else {
                "{}".into()
            },
            service_version: if s.source == "otlp" { "1.4.2" } else { "" }.into(),
            missing_parent: shape.orphans.contains(&i),
            ..Default::default()
        })
        .collect();
    GetTraceResponse {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_count: SPANS.len() as u32,
        truncated: false,
        duration_us: 1_250_000,
        critical_path_us: shape.critical_path_ns / 1_000,
        spans,
        found: true,
    }
}

#[test]
fn the_critical_path_self_times_add_up_to_the_root() {
    let t = fixture();
    let self_ms: Vec<(i64, bool)> = t
        .spans
        .iter()
        .map(|s| (s.self_time_us / 1000, s.on_critical_path))
        .collect();
    // Back from 1200: render is clipped to 700–1200 (500); the client call
    // 10–700 (690) holds checkout 15–690, whose last-finishing child is
    // payments 120–650; the query 100–300 is still running when payments
    // starts, so checkout was waiting for payments: the query is off the
    // path. root: 10 (0–10) + 0 (700 is where render
    // starts and the client call ends) = 10; client: 5 + 10 = 15;
    // checkout: 40 (650–690) + 105 (15–120) = 145; payments 530; render 500.
    assert_eq!(
        self_ms,
        vec![
            (10, true),
            (15, true),
            (145, true),
            (0, false),
            (530, true),
            (0, false),
            (500, true),
        ]
    );
    assert_eq!(t.critical_path_us, 1_200_000);
    assert_eq!(
        t.spans.iter().map(|s| s.self_time_us).sum::<i64>(),
        1_200_000
    );
}

#[test]
fn tree_golden() {
    golden(
        "trace_tree.txt",
        &render_trace(&fixture(), TraceFormat::Tree),
    );
}

#[test]
fn table_golden() {
    golden(
        "trace_table.txt",
        &render_trace(&fixture(), TraceFormat::Table),
    );
}

#[test]
fn json_follows_the_contract() {
    let v: serde_json::Value =
        serde_json::from_str(&render_trace(&fixture(), TraceFormat::Json)).unwrap();
    assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(v["span_count"], 7);
    assert_eq!(v["truncated"], false);
    assert_eq!(v["duration_ms"], 1250.0);
    assert_eq!(v["critical_path_ms"], 1200.0);
    let spans = v["spans"].as_array().unwrap();
    assert_eq!(spans.len(), 7);
    let checkout = &spans[2];
    for (key, want) in [
        ("span_id", serde_json::json!("b000000000000003")),
        ("parent_span_id", serde_json::json!("a000000000000002")),
        ("service", serde_json::json!("checkout")),
        ("operation", serde_json::json!("POST /api/checkout")),
        ("kind", serde_json::json!("server")),
        ("start", serde_json::json!("2026-11-18T11:06:40.015000Z")),
        ("duration_ms", serde_json::json!(675.0)),
        ("self_time_ms", serde_json::json!(145.0)),
        ("on_critical_path", serde_json::json!(true)),
        ("status", serde_json::json!("unset")),
        ("error", serde_json::json!(false)),
        ("source", serde_json::json!("beyla")),
        ("agent_id", serde_json::json!("web-2")),
        ("keep_reason", serde_json::json!("beyla")),
        ("missing_parent", serde_json::json!(false)),
    ] {
        assert_eq!(checkout[key], want, "{key}");
    }
    // Attributes keep their types.
    assert_eq!(checkout["attributes"]["http.response.status_code"], 200);
    assert_eq!(checkout["attributes"]["retry"], false);
    assert_eq!(spans[5]["missing_parent"], true);
    assert_eq!(spans[5]["error"], true);
    assert_eq!(spans[0]["service_version"], "1.4.2");
}

#[test]
fn a_cut_trace_says_so() {
    let mut t = fixture();
    t.span_count = 12_000;
    t.truncated = true;
    let out = render_trace(&t, TraceFormat::Tree);
    assert!(
        out.contains("Showing 7 of 12000 spans (the critical path first)"),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&render_trace(&t, TraceFormat::Json)).unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["span_count"], 12_000);
}

fn list() -> ListTracesResponse {
    let summary =
        |id: &str, dur_ms: i64, errors: u32, services: &[&str], sources: &[&str]| TraceSummary {
            trace_id: id.into(),
            root_service: services[0].into(),
            root_operation: "GET /checkout".into(),
            start_unix_nano: T0,
            duration_us: dur_ms * 1000,
            span_count: 7,
            error_count: errors,
            services: services.iter().map(|s| s.to_string()).collect(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
        };
    ListTracesResponse {
        traces: vec![
            summary(
                "4bf92f3577b34da6a3ce929d0e0e4736",
                1250,
                1,
                &["frontend", "checkout", "payments"],
                &["beyla", "otlp"],
            ),
            summary(
                "00f067aa0ba902b74bf92f3577b34da6",
                310,
                0,
                &["frontend"],
                &["otlp"],
            ),
        ],
        truncated: true,
        start_time_unix_ms: 1_795_000_000_000,
        end_time_unix_ms: 1_795_003_600_000,
    }
}

#[test]
fn list_golden() {
    golden(
        "trace_list.txt",
        &render_list("frontend", &list(), TraceFormat::Table),
    );
    let v: serde_json::Value =
        serde_json::from_str(&render_list("frontend", &list(), TraceFormat::Json)).unwrap();
    assert_eq!(v["truncated"], true);
    assert_eq!(v["traces"][0]["duration_ms"], 1250.0);
    assert_eq!(v["traces"][0]["sources"][1], "otlp");
    assert_eq!(v["traces"][1]["root_service"], "frontend");
    let empty = ListTracesResponse::default();
    assert!(render_list("x", &empty, TraceFormat::Table).starts_with("No traces for x"));
    let v: serde_json::Value =
        serde_json::from_str(&render_list("x", &empty, TraceFormat::Json)).unwrap();
    assert_eq!(v["traces"], serde_json::json!([]));
}
