use coral_proto::colony::{GetTraceResponse, OperationRow, TraceSpan};
use serde_json::json;

use super::*;

const NOW: i64 = 1_795_000_000_000; // 2026-11-18T11:06:40Z

#[test]
fn windows_are_durations_or_ranges() {
    let w = window(None, "1h", NOW).unwrap();
    assert_eq!((w.from_ms, w.to_ms), (NOW - 3_600_000, NOW));
    let w = window(Some(" 15m "), "1h", NOW).unwrap();
    assert_eq!(w.from_ms, NOW - 900_000);
    let w = window(Some("2026-11-18T10:00:00Z/2026-11-18T11:00:00Z"), "1h", NOW).unwrap();
    assert_eq!((w.start_s(), w.end_s()), (1_794_996_000, 1_794_999_600));
    assert_eq!(w.json()["from"], "2026-11-18T10:00:00Z");
    for (bad, says) in [
        ("soon", "not a duration"),
        ("0s", "empty"),
        ("2026-11-18T11:00:00Z/2026-11-18T10:00:00Z", "empty"),
        ("yesterday/2026-11-18T10:00:00Z", "not an RFC 3339 time"),
    ] {
        let e = window(Some(bad), "1h", NOW).unwrap_err();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn fit_cuts_the_longest_list_and_says_so() {
    let small = json!({"rows": [1, 2, 3], "truncated": false});
    assert_eq!(fit(small.clone(), &["rows"], 1000), small);
    let rows: Vec<String> = (0..1000).map(|i| format!("row number {i}")).collect();
    let doc = json!({"rows": rows, "other": [1], "truncated": false, "total": 1000});
    let cut = fit(doc, &["rows", "other"], 2_000);
    assert!(cut.to_string().len() <= 2_000);
    let shown = cut["rows"].as_array().unwrap().len();
    assert!(shown > 50, "a quarter at a time, not all: {shown}");
    assert_eq!(cut["rows_shown"], shown);
    assert_eq!(cut["truncated"], true);
    assert_eq!(cut["total"], 1000, "the total it was cut from stays");
}

fn span(i: u32, on_path: bool) -> TraceSpan {
    TraceSpan {
        span_id: format!("{i:016x}"),
        parent_span_id: if i == 0 {
            String::new()
        } else {
            format!("{:016x}", 0)
        },
        service: if i.is_multiple_of(2) { "api" } else { "db" }.into(),
        operation: format!("op-{}", i % 7),
        kind: "server".into(),
        duration_us: 1_000,
        self_time_us: if on_path { 1_000 } else { 0 },
        on_critical_path: on_path,
        error: i % 100 == 1,
        status_message: "x".repeat(500),
        source: "otlp".into(),
        ..TraceSpan::default()
    }
}

fn big_trace(n: u32) -> GetTraceResponse {
    GetTraceResponse {
        trace_id: "ab".repeat(16),
        span_count: n,
        truncated: false,
        duration_us: n as i64 * 1_000,
        critical_path_us: n as i64 * 1_000,
        spans: (0..n).map(|i| span(i, i % 3 != 2)).collect(),
        found: true,
    }
}

#[test]
fn a_big_trace_stays_within_budget_at_every_detail() {
    let r = big_trace(10_000);
    for (detail, most) in [
        (Detail::Spans, 200),
        (Detail::CriticalPath, 200),
        (Detail::Summary, 0),
    ] {
        let doc = trace(&r, detail, most);
        let size = doc.to_string().len();
        assert!(size <= MAX_RESULT_CHARS, "{detail:?}: {size}");
        let shown = doc["spans"].as_array().unwrap().len();
        assert!(shown <= most);
        assert_eq!(doc["span_count"], 10_000);
        if detail == Detail::Summary {
            assert_eq!(doc["truncated"], false);
            assert_eq!(doc["services"][0]["spans"], 5_000);
            assert_eq!(doc["errors"], 100);
        } else {
            assert_eq!(doc["truncated"], true, "{detail:?}");
            assert_eq!(doc["spans_shown"], shown);
            assert!(doc["services"].as_array().unwrap().is_empty());
        }
        if detail == Detail::CriticalPath {
            assert!(
                doc["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|s| s.get("self_ms").is_some())
            );
        }
    }
    // Cut by the colony to 50 spans, all on the path: the path goes on.
    let cut = GetTraceResponse {
        span_count: 10_000,
        truncated: true,
        spans: (0..50).map(|i| span(i, true)).collect(),
        ..big_trace(0)
    };
    let doc = trace(&cut, Detail::CriticalPath, 50);
    assert_eq!(doc["spans"].as_array().unwrap().len(), 50);
    assert_eq!(doc["truncated"], true);
    // A small trace is whole.
    let doc = trace(&big_trace(3), Detail::Spans, 50);
    assert_eq!(doc["truncated"], false);
    assert_eq!(doc["spans"].as_array().unwrap().len(), 3);
    assert_eq!(
        Detail::parse(Some("tree")).unwrap_err(),
        "detail \"tree\" is not one of summary, critical_path, spans"
    );
}

fn op(name: &str, spans: i64, p95: f64, sum: f64) -> OperationRow {
    OperationRow {
        operation: name.into(),
        span_kind: "SERVER".into(),
        total_spans: spans,
        p95_ms: p95,
        sum_ms: sum,
        ..OperationRow::default()
    }
}

#[test]
fn compare_puts_the_biggest_change_in_time_spent_first() {
    let minute = |from_min: i64, to_min: i64| Window {
        from_ms: from_min * 60_000,
        to_ms: to_min * 60_000,
    };
    // Incident 10 minutes, baseline 60.
    let incident = [
        op("slow", 100, 200.0, 18_000.0),
        op("same", 100, 10.0, 1_000.0),
        op("new", 5, 1.0, 5.0),
    ];
    let baseline = [
        op("slow", 600, 20.0, 12_000.0),
        op("same", 600, 10.0, 6_000.0),
        op("gone", 60, 1.0, 60.0),
    ];
    let doc = compare(&incident, &baseline, (minute(60, 70), minute(0, 60)), 10);
    let ops = doc["operations"].as_array().unwrap();
    assert_eq!(ops[0]["operation"], "slow");
    assert_eq!(ops[0]["p95_change_pct"], 900.0);
    assert_eq!(ops[0]["time_ms_per_min_change"], 1_600.0);
    assert_eq!(ops[0]["incident"]["requests_per_min"], 10.0);
    let status =
        |name: &str| ops.iter().find(|o| o["operation"] == name).unwrap()["status"].clone();
    assert_eq!(status("new"), "new");
    assert_eq!(status("gone"), "gone");
    assert_eq!(doc["total"], 4);
    assert_eq!(
        compare(&incident, &baseline, (minute(60, 70), minute(0, 60)), 1)["truncated"],
        true
    );
}

#[test]
fn an_answer_too_long_loses_evidence_rows_first() {
    let rows: Vec<serde_json::Value> = (0..1000)
        .map(|i| json!({"service": format!("svc-{i}"), "delta_ms": i}))
        .collect();
    let doc = json!({"version": 1, "verdict": "regression", "causes": [{"rank": 1}],
                     "evidence": [{"id": "e1", "rows": rows, "row_count": 1000, "truncated": false,
                                   "trace_ids": (0..20).map(|i| format!("{i:032x}")).collect::<Vec<_>>()}]});
    let fitted = fit_ask(doc.clone(), MAX_RESULT_CHARS);
    assert!(fitted.to_string().len() <= MAX_RESULT_CHARS);
    assert_eq!(fitted["evidence"][0]["row_count"], 1000);
    assert_eq!(fitted["evidence"][0]["truncated"], true);
    assert_eq!(fitted["causes"], doc["causes"]);
    let small = json!({"version": 1, "evidence": []});
    assert_eq!(fit_ask(small.clone(), MAX_RESULT_CHARS), small);
}

#[test]
fn beyla_minutes_merge_server_histograms_and_count_errors() {
    use coral_model::Histogram;
    use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric};
    let bounds = vec![10.0, 100.0, 1000.0];
    let h = |bucket: usize, n: u64| {
        let mut counts = vec![0; 4];
        counts[bucket] = n;
        Some(
            Histogram::new(bounds.clone(), counts, 0.0, None, None)
                .unwrap()
                .to_proto(),
        )
    };
    let http = |minute: i64, kind: &str, status: u32, latency| BeylaHttpMetric {
        minute,
        kind: kind.into(),
        http_status_code: status,
        latency,
        ..Default::default()
    };
    let r = QueryBeylaResponse {
        http_metrics: vec![
            http(60, "server", 200, h(1, 90)),
            http(60, "server", 503, h(2, 10)),
            http(60, "client", 503, h(2, 1000)),
            http(120, "server", 200, h(0, 5)),
        ],
        grpc_metrics: vec![BeylaGrpcMetric {
            minute: 120,
            kind: "server".into(),
            grpc_status_code: 14,
            latency: h(1, 5),
            ..Default::default()
        }],
        ..Default::default()
    };
    let w = Window {
        from_ms: 0,
        to_ms: 180_000,
    };
    let doc = beyla_per_minute(&r, w, 10);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["minute"], "1970-01-01T00:01:00Z");
    assert_eq!(
        (rows[0]["requests"].as_u64(), rows[0]["errors"].as_u64()),
        (Some(100), Some(10)),
        "client rows are not the service's requests"
    );
    assert_eq!(
        (rows[1]["requests"].as_u64(), rows[1]["errors"].as_u64()),
        (Some(10), Some(5))
    );
    assert_eq!(doc["source"], "beyla");
    assert_eq!(beyla_per_minute(&r, w, 1)["truncated"], true);
}
