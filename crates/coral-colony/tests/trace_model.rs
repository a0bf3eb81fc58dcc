//! One trace model at the colony: OTLP kept spans and Beyla spans from
//! several agents open as one trace with its critical path (`GetTrace`),
//! traces are listed and filtered across both sources (`ListTraces`), and
//! per-operation RED comes from the buckets' breakdown (`QueryOperations`).
//! Rows go in through the colony's real writer (the path of every pulled or
//! pushed page); the RPCs are called on a real colony over gRPC.

mod common;

use common::{EngineStore, engine_store};

use coral_colony::store::beyla::BeylaRows;
use coral_colony::store::ingest::{Page, Stream};
use coral_colony::store::traces;
use coral_colony::store::writer::WriterSender;
use coral_model::{Bucket, BucketKey, SpanKind, Stats};
use coral_proto::colony::{GetTraceRequest, ListTracesRequest, QueryOperationsRequest, TraceSpan};
use coral_proto::common::{BeylaTraceSpan, TelemetrySpan};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
/// 2026-11-18 11:06:40 UTC, in ns; minute-aligned plus 40 s.
const T0: i64 = 1_795_000_000_000_000_000;
const MS: i64 = 1_000_000;

fn page(agent: &str, stream: Stream, seq: (u64, u64)) -> Page {
    Page {
        agent_id: agent.into(),
        stream,
        session_id: format!("{agent}-session"),
        start_seq: seq.0,
        max_seq: seq.1,
        buckets: Vec::new(),
        spans: Vec::new(),
        hosts: Vec::new(),
        beyla: BeylaRows::default(),
        reported: Vec::new(),
    }
}

#[allow(clippy::too_many_arguments)]
fn otlp(
    seq: u64,
    trace: &str,
    id: &str,
    parent: &str,
    service: &str,
    name: &str,
    (start_ms, dur_ms): (i64, i64),
    error: bool,
) -> TelemetrySpan {
    TelemetrySpan {
        seq_id: seq,
        trace_id: trace.into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        service_name: service.into(),
        span_name: name.into(),
        span_kind: "SERVER".into(),
        start_time_unix_nano: T0 + start_ms * MS,
        duration_us: dur_ms * 1000,
        is_error: error,
        status_code: if error { "ERROR" } else { "UNSET" }.into(),
        status_message: if error { "boom" } else { "" }.into(),
        http_status_code: if error { 500 } else { 200 },
        keep_reason: if error { "error" } else { "sampled" }.into(),
        attributes_json: r#"{"http.response.status_code":200,"retry":false}"#.into(),
        resource_json: format!(
            r#"{{"service.name":"{service}","service.version":"2.1.0","host.name":"host-{service}","k8s.pod.name":"{service}-7d9f"}}"#
        ),
        ..Default::default()
    }
}

fn beyla(
    seq: u64,
    id: &str,
    parent: &str,
    name: &str,
    (start_ms, dur_ms): (i64, i64),
) -> BeylaTraceSpan {
    BeylaTraceSpan {
        trace_id: TRACE.into(),
        span_id: id.into(),
        parent_span_id: parent.into(),
        service_name: "checkout".into(),
        span_name: name.into(),
        span_kind: "server".into(),
        start_time_unix_nano: T0 + start_ms * MS,
        duration_us: dur_ms * 1000,
        status_code: 200,
        attributes_json: r#"{"http.route":"/api/checkout"}"#.into(),
        seq_id: seq,
        ..Default::default()
    }
}

/// frontend (OTLP, agent web-1) → checkout (Beyla, agent web-2) → payments
/// (OTLP, web-2); `render` outlives the root; an inventory span's parent
/// was not kept.
async fn cross_source_trace(tx: &WriterSender) {
    let mut p = page("web-1", Stream::Pull, (0, 4));
    p.spans = vec![
        otlp(
            1,
            TRACE,
            "a000000000000001",
            "",
            "frontend",
            "GET /checkout",
            (0, 1200),
            false,
        ),
        otlp(
            2,
            TRACE,
            "a000000000000002",
            "a000000000000001",
            "frontend",
            "POST /api/checkout",
            (10, 690),
            false,
        ),
        otlp(
            3,
            TRACE,
            "a000000000000006",
            "a000000000000001",
            "frontend",
            "render",
            (700, 550),
            false,
        ),
        otlp(
            4,
            TRACE,
            "a000000000000007",
            "00000000000000ff",
            "inventory",
            "GET /stock",
            (200, 60),
            true,
        ),
    ];
    tx.store(p).await.unwrap();
    let mut p = page("web-2", Stream::Pull, (0, 1));
    p.spans = vec![otlp(
        1,
        TRACE,
        "a000000000000005",
        "b000000000000003",
        "payments",
        "POST /charge",
        (120, 530),
        false,
    )];
    tx.store(p).await.unwrap();
    let mut p = page("web-2", Stream::Beyla, (0, 2));
    p.beyla.spans = vec![
        beyla(
            1,
            "b000000000000003",
            "a000000000000002",
            "POST /api/checkout",
            (15, 675),
        ),
        beyla(
            2,
            "b000000000000004",
            "b000000000000003",
            "SELECT orders",
            (100, 200),
        ),
    ];
    tx.store(p).await.unwrap();
}

fn by_id<'a>(spans: &'a [TraceSpan], id: &str) -> &'a TraceSpan {
    spans
        .iter()
        .find(|s| s.span_id == id)
        .unwrap_or_else(|| panic!("span {id} missing"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trace_across_sources_and_agents_opens_as_one_with_its_critical_path() {
    let EngineStore { reads, tx, .. } = &engine_store().await;
    cross_source_trace(tx).await;
    let t = reads
        .trace(TRACE.to_uppercase().to_owned(), 0)
        .await
        .unwrap();
    assert!(t.found);
    assert_eq!(t.trace_id, TRACE);
    assert_eq!(t.span_count, 7);
    assert!(!t.truncated);
    // 0 → 1250 ms (render ends last).
    assert_eq!(t.duration_us, 1_250_000);
    assert_eq!(t.critical_path_us, 1_200_000);
    // Start order.
    let ids: Vec<&str> = t.spans.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            "a000000000000001",
            "a000000000000002",
            "b000000000000003",
            "b000000000000004",
            "a000000000000005",
            "a000000000000007",
            "a000000000000006"
        ]
    );
    // Self time on the critical path, worked out by hand: back from 1200,
    // render (clipped to 700–1200) 500; the call 10–700 holds checkout
    // 15–690 whose last child to finish is payments 120–650 (530); the
    // query 100–300 was still running at 120, so it is off the path.
    // frontend root: 0–10 = 10; the call: 690–700 + 10–15 = 15; checkout:
    // 650–690 + 15–120 = 145.
    for (id, self_ms, on) in [
        ("a000000000000001", 10, true),
        ("a000000000000002", 15, true),
        ("b000000000000003", 145, true),
        ("b000000000000004", 0, false),
        ("a000000000000005", 530, true),
        ("a000000000000006", 500, true),
        ("a000000000000007", 0, false),
    ] {
        let s = by_id(&t.spans, id);
        assert_eq!(
            (s.self_time_us, s.on_critical_path),
            (self_ms * 1000, on),
            "{id}"
        );
    }
    let checkout = by_id(&t.spans, "b000000000000003");
    assert_eq!(
        (
            checkout.source.as_str(),
            checkout.agent_id.as_str(),
            checkout.kind.as_str(),
            checkout.keep_reason.as_str(),
            checkout.status_code
        ),
        ("beyla", "web-2", "server", "beyla", 200)
    );
    assert_eq!(checkout.parent_span_id, "a000000000000002");
    let root = by_id(&t.spans, "a000000000000001");
    assert_eq!(
        (
            root.source.as_str(),
            root.agent_id.as_str(),
            root.host.as_str(),
            root.service_version.as_str(),
            root.pod.as_str(),
            root.kind.as_str(),
        ),
        (
            "otlp",
            "web-1",
            "host-frontend",
            "2.1.0",
            "frontend-7d9f",
            "server"
        )
    );
    assert!(root.attributes_json.contains(r#""retry":false"#));
    let orphan = by_id(&t.spans, "a000000000000007");
    assert!(orphan.missing_parent && orphan.error);
    assert_eq!(
        (
            orphan.status.as_str(),
            orphan.status_message.as_str(),
            orphan.keep_reason.as_str()
        ),
        ("error", "boom", "error")
    );
    assert!(!root.missing_parent);

    let missing = reads.trace("0".repeat(32).to_owned(), 0).await.unwrap();
    assert!(!missing.found && missing.spans.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_trace_is_cut_keeping_the_critical_path() {
    let EngineStore { reads, tx, .. } = &engine_store().await;
    // A root (0–10,000 ms) with 10,050 sequential 1 ms children except the
    // last, which is long: all on the path.
    let n: u64 = 10_051;
    let mut p = page("web-1", Stream::Pull, (0, n));
    p.spans.push(otlp(
        1,
        TRACE,
        &format!("{:016x}", 1),
        "",
        "frontend",
        "root",
        (0, 20_000),
        false,
    ));
    for i in 2..=n {
        p.spans.push(otlp(
            i,
            TRACE,
            &format!("{i:016x}"),
            &format!("{:016x}", 1),
            "frontend",
            "step",
            (i as i64, 1),
            false,
        ));
    }
    tx.store(p).await.unwrap();
    let t = reads.trace(TRACE.to_owned(), 0).await.unwrap();
    assert_eq!(t.span_count as u64, n);
    assert!(t.truncated);
    assert_eq!(t.spans.len(), traces::MAX_TRACE_SPANS as usize);
    let on_path = t.spans.iter().filter(|s| s.on_critical_path).count();
    // Every step ends before the next starts: all are on the path.
    assert_eq!(on_path, traces::MAX_TRACE_SPANS as usize);
    let small = reads.trace(TRACE.to_owned(), 3).await.unwrap();
    assert_eq!(small.spans.len(), 3);
    assert!(small.truncated && small.spans.iter().all(|s| s.on_critical_path));
    assert_eq!(
        small.spans[0].span_id,
        format!("{:016x}", 1),
        "the root first"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_are_listed_slowest_first_across_sources_with_filters() {
    let EngineStore { reads, tx, .. } = &engine_store().await;
    cross_source_trace(tx).await;
    // Two more OTLP traces of frontend: a fast one and a failing one.
    let fast = "00000000000000000000000000000001";
    let failing = "00000000000000000000000000000002";
    let mut p = page("web-1", Stream::Pull, (4, 7));
    p.spans = vec![
        otlp(
            5,
            fast,
            "c000000000000001",
            "",
            "frontend",
            "GET /health",
            (0, 3),
            false,
        ),
        otlp(
            6,
            failing,
            "d000000000000001",
            "",
            "frontend",
            "GET /checkout",
            (50, 300),
            false,
        ),
        otlp(
            7,
            failing,
            "d000000000000002",
            "d000000000000001",
            "cart",
            "GET /cart",
            (60, 100),
            true,
        ),
    ];
    tx.store(p).await.unwrap();
    let list = async |req: ListTracesRequest| {
        let (from, to) = (T0 / MS - 60_000, T0 / MS + 60_000);
        reads.traces(req, from, to).await.unwrap()
    };
    let all = list(ListTracesRequest {
        service: "frontend".into(),
        ..Default::default()
    })
    .await;
    let ids: Vec<&str> = all.traces.iter().map(|t| t.trace_id.as_str()).collect();
    assert_eq!(ids, [TRACE, failing, fast]);
    assert!(!all.truncated);
    let top = &all.traces[0];
    assert_eq!(
        (
            top.root_service.as_str(),
            top.root_operation.as_str(),
            top.duration_us,
            top.span_count,
            top.error_count
        ),
        ("frontend", "GET /checkout", 1_250_000, 7, 1)
    );
    assert_eq!(
        top.services,
        ["frontend", "checkout", "payments", "inventory"],
        "in the order their first span started"
    );
    assert_eq!(top.sources, ["beyla", "otlp"]);
    assert_eq!(top.start_unix_nano, T0);

    // A service seen only through Beyla finds the same trace.
    let checkout = list(ListTracesRequest {
        service: "checkout".into(),
        source: "beyla".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(checkout.traces.len(), 1);
    assert_eq!(checkout.traces[0].trace_id, TRACE);
    let errors = list(ListTracesRequest {
        service: "frontend".into(),
        errors_only: true,
        ..Default::default()
    })
    .await;
    let ids: Vec<&str> = errors.traces.iter().map(|t| t.trace_id.as_str()).collect();
    assert_eq!(ids, [TRACE, failing]);
    let slow = list(ListTracesRequest {
        min_duration_us: 500_000,
        ..Default::default()
    })
    .await;
    assert_eq!(slow.traces.len(), 1);
    let op = list(ListTracesRequest {
        service: "frontend".into(),
        operation: "GET /health".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(op.traces[0].trace_id, fast);
    let kept = list(ListTracesRequest {
        keep_reason: "error".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(kept.traces.len(), 2);
    let cut = list(ListTracesRequest {
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(cut.traces.len(), 2);
    assert!(cut.truncated, "three traces matched");
    let outside = reads
        .traces(
            ListTracesRequest::default(),
            T0 / MS + 3_600_000,
            T0 / MS + 7_200_000,
        )
        .await
        .unwrap();
    assert!(outside.traces.is_empty() && !outside.truncated);
}

fn bucket(minute: i64, ops: &[(&str, &[f64], u64)]) -> coral_proto::common::TelemetryBucket {
    let mut b = Bucket::new(BucketKey {
        minute,
        service: "frontend".into(),
        kind: SpanKind::Server,
    });
    for (name, durations, errors) in ops {
        let mut s = Stats::new();
        for (i, d) in durations.iter().enumerate() {
            s.record(*d, (i as u64) < *errors, &format!("{i:032x}"));
            b.stats
                .record(*d, (i as u64) < *errors, &format!("{i:032x}"));
        }
        b.operations.push((name.to_string(), s));
    }
    b.to_proto("", 0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_merge_across_agents_and_minutes() {
    let EngineStore { reads, tx, .. } = &engine_store().await;
    let minute = T0 / 1_000_000_000 / 60 * 60;
    let checkout: Vec<f64> = (1..=100).map(|i| i as f64 * 10.0).collect();
    let health: Vec<f64> = vec![1.0; 50];
    // Agent 1: two minutes; agent 2: the first minute again (another host).
    let mut b1 = bucket(
        minute,
        &[("GET /checkout", &checkout, 5), ("GET /health", &health, 0)],
    );
    b1.seq_id = 1;
    let mut b2 = bucket(minute + 60, &[("GET /checkout", &checkout[..50], 1)]);
    b2.seq_id = 2;
    let mut p = page("web-1", Stream::Pull, (0, 2));
    p.buckets = vec![b1, b2];
    tx.store(p).await.unwrap();
    let mut b3 = bucket(
        minute,
        &[
            ("GET /checkout", &checkout[50..], 0),
            ("__overflow__", &[7.0], 1),
        ],
    );
    b3.seq_id = 1;
    let mut p = page("web-2", Stream::Pull, (0, 1));
    p.buckets = vec![b3];
    tx.store(p).await.unwrap();

    let req = QueryOperationsRequest {
        service_name: "frontend".into(),
        ..Default::default()
    };
    let r = reads.operations(req, minute, minute + 120).await.unwrap();
    // Totals by total time: checkout = 100 + 50 + 50 spans.
    let names: Vec<&str> = r.totals.iter().map(|o| o.operation.as_str()).collect();
    assert_eq!(names, ["GET /checkout", "GET /health", "__overflow__"]);
    let c = &r.totals[0];
    let all: Vec<f64> = checkout
        .iter()
        .chain(&checkout[..50])
        .chain(&checkout[50..])
        .copied()
        .collect();
    assert_eq!((c.total_spans, c.error_count, c.agent_count), (200, 6, 2));
    assert_eq!(c.sum_ms, all.iter().sum::<f64>());
    assert_eq!((c.min_ms, c.max_ms), (10.0, 1000.0));
    let mut sorted = all.clone();
    sorted.sort_by(f64::total_cmp);
    for (q, got) in [(0.5, c.p50_ms), (0.95, c.p95_ms), (0.99, c.p99_ms)] {
        let exact = sorted[((q * sorted.len() as f64).ceil() as usize).saturating_sub(1)];
        assert!(
            (got - exact).abs() <= exact * 0.01 + 1e-9,
            "p{q}: {got} vs {exact}"
        );
    }
    // Per minute: the first minute merges both agents.
    let first: Vec<_> = r
        .rows
        .iter()
        .filter(|o| o.operation == "GET /checkout")
        .map(|o| (o.bucket_time, o.total_spans, o.agent_count))
        .collect();
    assert_eq!(first, [(minute, 150, 2), (minute + 60, 50, 1)]);
    // One operation only, one kind only.
    let one = reads
        .operations(
            QueryOperationsRequest {
                service_name: "frontend".into(),
                operation: "GET /health".into(),
                span_kind: "server".into(),
                ..Default::default()
            },
            minute,
            minute + 120,
        )
        .await
        .unwrap();
    assert_eq!(one.rows.len(), 1);
    assert_eq!(one.totals[0].total_spans, 50);
    let none = reads
        .operations(
            QueryOperationsRequest {
                service_name: "frontend".into(),
                span_kind: "CLIENT".into(),
                ..Default::default()
            },
            minute,
            minute + 120,
        )
        .await
        .unwrap();
    assert!(none.rows.is_empty() && none.totals.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trace_rpcs_check_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let colony = common::colony_in(dir.path(), "").await;
    let mut client = common::client(colony.addr, None).await;
    let err = client
        .get_trace(GetTraceRequest {
            trace_id: "not-a-trace".into(),
            max_spans: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(
        err.message().contains("32 hex characters"),
        "{}",
        err.message()
    );
    let missing = client
        .get_trace(GetTraceRequest {
            trace_id: "A".repeat(32),
            max_spans: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!missing.found);
    let err = client
        .list_traces(ListTracesRequest {
            source: "zipkin".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    let empty = client
        .list_traces(ListTracesRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(empty.traces.is_empty());
    let err = client
        .query_operations(QueryOperationsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    colony.shutdown().await;
}
