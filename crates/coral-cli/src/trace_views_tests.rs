//! Golden renderings of traces: a tree across two agents with the critical
//! path, a span whose parent is missing, the table, JSON and the list.

use super::*;

const T0: i64 = 1_795_000_000_000_000_000;

#[allow(clippy::too_many_arguments)]
fn span(
    id: &str,
    parent: &str,
    service: &str,
    name: &str,
    start_ms: i64,
    dur_ms: i64,
    agent: &str,
    error: bool,
) -> BeylaTraceSpan {
    BeylaTraceSpan {
        trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        service_name: service.into(),
        span_name: name.into(),
        span_kind: "server".into(),
        start_time_unix_nano: T0 + start_ms * 1_000_000,
        duration_us: dur_ms * 1_000,
        status_code: if error { 500 } else { 200 },
        is_error: error,
        attributes_json: r#"{"http.response.status_code":200}"#.into(),
        agent_id: agent.into(),
        seq_id: 0,
    }
}

fn fixture() -> Vec<BeylaTraceSpan> {
    vec![
        span(
            "e000000000000001",
            "",
            "frontend-api",
            "GET /checkout",
            0,
            1200,
            "web-1",
            false,
        ),
        span(
            "e000000000000002",
            "e000000000000001",
            "payments-api",
            "POST /api/v1/payments",
            10,
            460,
            "web-1",
            false,
        ),
        span(
            "e000000000000003",
            "e000000000000002",
            "card-validator",
            "POST /validate",
            20,
            380,
            "web-1",
            false,
        ),
        span(
            "e000000000000004",
            "e000000000000002",
            "fraud-detector",
            "/fraud.Check",
            410,
            35,
            "web-1",
            false,
        ),
        span(
            "e000000000000005",
            "e000000000000001",
            "inventory-api",
            "POST /api/v1/reserve",
            470,
            700,
            "web-2",
            false,
        ),
        span(
            "e000000000000006",
            "e000000000000005",
            "redis",
            "SET order:lock",
            480,
            2,
            "web-2",
            false,
        ),
        span(
            "e000000000000007",
            "deadbeefdeadbeef",
            "worker",
            "process jobs",
            100,
            50,
            "web-2",
            true,
        ),
    ]
}

#[test]
fn tree_marks_the_critical_path_and_keeps_orphans() {
    let out = render_trace(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        &fixture(),
        TraceFormat::Tree,
    );
    let expected = "\
Trace ID: 4bf92f3577b34da6a3ce929d0e0e4736
Duration: 1.20s
Spans: 7 (from 2 agents)

frontend-api (1.20s, 100%, GET /checkout) ◆
├─ payments-api (460ms, 38%, POST /api/v1/payments)
│  ├─ card-validator (380ms, 32%, POST /validate)
│  └─ fraud-detector (35ms, 3%, /fraud.Check)
└─ inventory-api (700ms, 58%, POST /api/v1/reserve) ◆
   └─ redis (2.00ms, 0%, SET order:lock) ◆
[missing parent deadbeefdeadbeef: not stored, sampled out or not pulled yet]
└─ worker (50ms, 4%, process jobs) ERROR

◆ critical path; % = share of the root span's duration.
";
    assert_eq!(out, expected, "\n{out}");
}

#[test]
fn json_is_a_flat_list_with_typed_attributes_and_agents() {
    let out = render_trace(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        &fixture(),
        TraceFormat::Json,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let spans = v.as_array().unwrap();
    assert_eq!(spans.len(), 7);
    assert_eq!(spans[0]["span_id"], "e000000000000001");
    assert_eq!(spans[0]["parent_span_id"], "");
    assert_eq!(spans[0]["start_time"], "2026-11-18T11:06:40.000000Z");
    assert_eq!(spans[0]["duration_us"], 1_200_000);
    assert_eq!(spans[0]["attributes"]["http.response.status_code"], 200);
    assert_eq!(spans[0]["agent_id"], "web-1");
    // Start order: the orphan (100 ms) comes before the validator's sibling.
    assert_eq!(spans[3]["service_name"], "worker");
    assert_eq!(spans[3]["is_error"], true);
}

#[test]
fn table_lists_spans_in_start_order() {
    let out = render_trace(
        "4bf92f3577b34da6a3ce929d0e0e4736",
        &fixture(),
        TraceFormat::Table,
    );
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[4],
        "Service         Span                   Kind    Start                        Duration  Code  Status  Agent"
    );
    assert_eq!(
        lines[5],
        "frontend-api    GET /checkout          server  2026-11-18T11:06:40.000000Z  1.20s     200   ok      web-1"
    );
    assert_eq!(lines.len(), 5 + 7);
}

#[test]
fn a_missing_trace_says_why() {
    let out = render_trace("00000000000000000000000000000001", &[], TraceFormat::Tree);
    assert!(
        out.starts_with("Trace 00000000000000000000000000000001 not found"),
        "{out}"
    );
    assert_eq!(render_trace("x", &[], TraceFormat::Json), "[]\n");
}

#[test]
fn list_orders_by_duration() {
    let mut spans = fixture();
    let mut other = span(
        "f000000000000001",
        "",
        "frontend-api",
        "GET /",
        5,
        90,
        "web-1",
        true,
    );
    other.trace_id = "00000000000000000000000000000abc".into();
    spans.push(other);
    let out = render_list("frontend-api", &spans, TraceFormat::Table);
    assert_eq!(
        out,
        "Slowest traces for frontend-api\n\n\
Trace ID                          Service       Root           Duration  Spans  Errors  Start\n\
4bf92f3577b34da6a3ce929d0e0e4736  frontend-api  GET /checkout  1.20s     7      1       2026-11-18T11:06:40.000000Z\n\
00000000000000000000000000000abc  frontend-api  GET /          90ms      1      1       2026-11-18T11:06:40.005000Z\n\n\
Show one: coral query beyla traces --trace-id <id>\n"
    );
    let v: serde_json::Value =
        serde_json::from_str(&render_list("frontend-api", &spans, TraceFormat::Json)).unwrap();
    assert_eq!(v[0]["duration_us"], 1_200_000);
    assert_eq!(v[1]["error_count"], 1);
    assert!(render_list("x", &[], TraceFormat::Table).starts_with("No Beyla traces for x"));
}
