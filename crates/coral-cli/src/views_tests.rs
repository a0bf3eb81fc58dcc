//! Golden renderings of `coral query otel|host` and `coral agents`.
use super::*;
use coral_proto::colony::{AgentInfo, HostCorrelationRow, OtelSummaryRow};

fn none() -> Empty {
    Empty::default()
}

fn otel() -> QueryOtelSummariesResponse {
    let row = |t: i64, total: i64, errors: i64| OtelSummaryRow {
        bucket_time: t,
        service_name: "checkout".into(),
        span_kind: "SERVER".into(),
        total_spans: total,
        error_count: errors,
        p50_ms: 45.2,
        p95_ms: 180.0,
        p99_ms: 1420.0,
        min_ms: 1.0,
        max_ms: 2000.0,
        sum_ms: 9.0,
        sample_traces: vec!["ab".repeat(16)],
        agent_count: 2,
    };
    QueryOtelSummariesResponse {
        rows: vec![row(1_800_000_000, 45_200, 1_040), row(1_800_000_060, 12, 0)],
        totals: vec![row(0, 45_212, 1_040)],
        from_unix: 1_799_996_400,
        to_unix: 1_800_000_120,
    }
}

#[test]
fn otel_table() {
    let ab = "ab".repeat(16);
    let expected = format!(
        "Service: checkout (2027-01-15T07:00:00Z → 2027-01-15T08:02:00Z, OTLP span summaries)\n\n\
Minute (UTC)      Kind    Spans  Errors  P50   P95    P99    Max    Sample trace\n\
2027-01-15 08:00  SERVER  45.2k  2.3%    45ms  180ms  1.42s  2.00s  {ab}\n\
2027-01-15 08:01  SERVER  12     0.0%    45ms  180ms  1.42s  2.00s  {ab}\n\n\
Overall SERVER: 45.2k spans, P50=45ms P95=180ms P99=1.42s Max=2.00s, error rate=2.3%\n\
Errors: spans with status ERROR, SERVER spans with HTTP status ≥ 500, CLIENT spans with HTTP status ≥ 400.\n"
    );
    assert_eq!(
        render_otel("checkout", &otel(), Format::Table, &none()),
        expected
    );
}

#[test]
fn otel_csv_and_json_are_exact() {
    let csv = render_otel("checkout", &otel(), Format::Csv, &none());
    let mut lines = csv.lines();
    assert_eq!(
        lines.next().unwrap(),
        "bucket_time,span_kind,total_spans,error_count,error_rate,p50_ms,p95_ms,p99_ms,min_ms,max_ms,agents,sample_traces"
    );
    assert!(
        lines
            .next()
            .unwrap()
            .starts_with("2027-01-15T08:00:00Z,SERVER,45200,1040,0.0230")
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_otel("checkout", &otel(), Format::Json, &none())).unwrap();
    assert_eq!(json["minutes"][0]["total_spans"], 45_200);
    assert_eq!(json["minutes"][0]["p99_ms"], 1420.0);
    assert_eq!(json["minutes"][0]["max_ms"], 2000.0);
    assert_eq!(json["totals"][0]["agents"], 2);
    assert_eq!(json["from"], "2027-01-15T07:00:00Z");
}

#[test]
fn empty_results_say_what_to_check() {
    let empty = QueryOtelSummariesResponse::default();
    let out = render_otel("x", &empty, Format::Table, &none());
    assert!(
        out.ends_with(
            "No spans of x in this window.\n\
Check the service name with `coral query services`, and that apps export to the agent's OTLP endpoint.\n"
        ),
        "{out}"
    );
    assert!(!out.contains("coral agents"), "agents do not list services");
    let hinted = Empty {
        hint: Some("no data for service 'chekout'; did you mean 'checkout'?".into()),
        arrival: output::arrival_note(1_800_000_020, 1_800_000_060),
    };
    let out = render_otel("chekout", &empty, Format::Table, &hinted);
    assert!(
        out.contains(
            "No spans of chekout in this window.\nno data for service 'chekout'; did you mean 'checkout'?\nMinutes appear once they close"
        ),
        "{out}"
    );
    assert!(
        out.contains("The minute 08:00 UTC closes at 08:01:00 and appears by about 08:01:15."),
        "{out}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_otel("chekout", &empty, Format::Json, &hinted)).unwrap();
    assert_eq!(
        json["minutes"],
        serde_json::json!([]),
        "JSON stays the plain empty contract"
    );
    let host = render_host(
        "chekout",
        &QueryHostCorrelationResponse::default(),
        Format::Table,
        &hinted,
    );
    assert!(
        host.contains("did you mean 'checkout'?\nMinutes appear"),
        "{host}"
    );
    let none = ListAgentsResponse {
        agents: vec![],
        colony_id: "c".into(),
        colonies: vec![],
    };
    assert!(render_agents(&none, Format::Table).contains("no agents yet"));
}

#[test]
fn agents_table_shows_poll_errors_and_a_shared_agent_id() {
    let r = ListAgentsResponse {
        colony_id: "main".into(),
        colonies: vec![],
        agents: vec![AgentInfo {
            agent_id: "web-01".into(),
            health: "degraded".into(),
            mode: "agent".into(),
            endpoint: "http://10.0.0.5:9001".into(),
            last_seen: "2027-01-15T08:00:00Z".into(),
            last_poll_error: "connection refused".into(),
            shared_id_warning: "two processes report this agent id".into(),
            lag_rows: 1500,
            gap_count: 1,
            rows_received: 12,
            ..Default::default()
        }],
    };
    let expected = "Colony main\n\n\
Agent   Health    Mode   Endpoint              Last seen             Last poll  Lag   Gaps  Rows\n\
web-01  degraded  agent  http://10.0.0.5:9001  2027-01-15T08:00:00Z  -          1.5k  1     12\n\n\
web-01: last poll failed: connection refused\n\n\
web-01: two processes report this agent id\n";
    assert_eq!(render_agents(&r, Format::Table), expected);
}

#[test]
fn agents_table_names_the_colony_polling_each_agent_in_a_fleet() {
    let agent = |id: &str, by: &str| AgentInfo {
        agent_id: id.into(),
        health: "healthy".into(),
        mode: "agent".into(),
        polled_by: by.into(),
        ..Default::default()
    };
    let r = ListAgentsResponse {
        colony_id: "colony-a".into(),
        colonies: vec!["colony-a".into(), "colony-b".into()],
        agents: vec![agent("web-1", "colony-b"), agent("web-2", "colony-a")],
    };
    let text = render_agents(&r, Format::Table);
    assert!(
        text.starts_with("Colony colony-a (one of 2: colony-a, colony-b)\n"),
        "{text}"
    );
    assert!(text.contains("Polled by"), "{text}");
    let line = text.lines().find(|l| l.starts_with("web-1")).unwrap();
    assert!(line.trim_end().ends_with("colony-b"), "{text}");
    let json: serde_json::Value = serde_json::from_str(&render_agents(&r, Format::Json)).unwrap();
    assert_eq!(json["colonies"][1], "colony-b");
    assert_eq!(json["agents"][0]["polled_by"], "colony-b");
}

#[test]
fn agents_table_explains_limited_or_failed_beyla() {
    use coral_proto::common::BeylaCapabilities;
    let agent = |id: &str, beyla: BeylaCapabilities| AgentInfo {
        agent_id: id.into(),
        health: "healthy".into(),
        mode: "agent".into(),
        beyla: Some(beyla),
        ..Default::default()
    };
    let r = ListAgentsResponse {
        colony_id: "main".into(),
        colonies: vec![],
        agents: vec![
            agent(
                "payments-api",
                BeylaCapabilities {
                    mode: "limited".into(),
                    state: "running".into(),
                    summary: "Beyla limited (kernel 4.15), HTTP metrics only".into(),
                    ..Default::default()
                },
            ),
            agent(
                "web-01",
                BeylaCapabilities {
                    mode: "full".into(),
                    state: "running".into(),
                    summary: "Beyla full (kernel 6.1)".into(),
                    ..Default::default()
                },
            ),
            agent(
                "web-02",
                BeylaCapabilities {
                    mode: "full".into(),
                    state: "failed".into(),
                    restarts: 5,
                    last_error: "Beyla ended with exit code 1".into(),
                    ..Default::default()
                },
            ),
        ],
    };
    let table = render_agents(&r, Format::Table);
    assert!(table.ends_with(
        "\npayments-api: Beyla limited (kernel 4.15), HTTP metrics only\n\nweb-02: Beyla failed after 5 restart(s): Beyla ended with exit code 1\n"
    ), "{table}");
    assert!(
        !table.contains("web-01: Beyla"),
        "a healthy, full Beyla is not noted"
    );
    let json: serde_json::Value = serde_json::from_str(&render_agents(&r, Format::Json)).unwrap();
    assert_eq!(json["agents"][0]["beyla"]["mode"], "limited");
}

#[test]
fn host_table_counts_requests_and_says_so() {
    let r = QueryHostCorrelationResponse {
        rows: vec![HostCorrelationRow {
            bucket_time: 1_800_000_000,
            agent_id: "web-01".into(),
            service_name: "checkout".into(),
            total_spans: 1_200,
            error_count: 24,
            p99_ms: 420.9,
            cpu_percent: Some(71.5),
            memory_used_bytes: Some(6_442_450_944),
            net_rx_bytes_per_sec: Some(1_250_000.0),
            net_tx_bytes_per_sec: None,
            load1: Some(3.2),
        }],
        from_unix: 1_799_996_400,
        to_unix: 1_800_000_120,
    };
    let expected = "Service: checkout — requests and their p99 next to host metrics (2027-01-15T07:00:00Z → 2027-01-15T08:02:00Z)\n\n\
Minute (UTC)      Agent   Requests  P99    CPU    Mem used  Net rx    Net tx  Load1\n\
2027-01-15 08:00  web-01  1.2k      421ms  71.5%  6.0GiB    1.2MiB/s  -       3.20\n\n\
Requests: SERVER and CONSUMER spans (every span kind when the service has neither, e.g. a batch job); P99 is the highest p99 of those kinds.\n\
'-' = no host sample for that minute (host metrics are sampled once a minute).\n";
    assert_eq!(
        render_host("checkout", &r, Format::Table, &none()),
        expected
    );
    let json: serde_json::Value =
        serde_json::from_str(&render_host("checkout", &r, Format::Json, &none())).unwrap();
    assert_eq!(json["rows"][0]["total_spans"], 1_200);
    assert_eq!(
        json["rows"][0]["net_tx_bytes_per_sec"],
        serde_json::Value::Null
    );
}

#[test]
fn agents_table_says_beyla_is_off_in_one_short_line() {
    use coral_proto::common::BeylaCapabilities;
    let r = ListAgentsResponse {
        colony_id: "main".into(),
        colonies: vec![],
        agents: vec![AgentInfo {
            agent_id: "laptop".into(),
            health: "healthy".into(),
            mode: "agent".into(),
            beyla: Some(BeylaCapabilities {
                mode: "disabled".into(),
                state: "disabled".into(),
                reason: "not installed — `coral beyla install`".into(),
                summary: "Beyla off: not installed — `coral beyla install`".into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
    };
    let table = render_agents(&r, Format::Table);
    assert!(
        table.ends_with("\nlaptop: Beyla off: not installed — `coral beyla install`\n"),
        "{table}"
    );
}
