//! The colony's Beyla store: parts of a minute merge by adding histogram
//! counts, missing seq_ids are gaps, and trace sampling keeps errors, slow
//! traces and traces already kept, whole.

use coral_model::Histogram;
use coral_proto::colony::QueryBeylaRequest;

/// One Beyla span for the store tests.
fn store_span(
    trace: &str,
    span: &str,
    seq: u64,
    dur_ms: i64,
    error: bool,
) -> coral_proto::common::BeylaTraceSpan {
    coral_proto::common::BeylaTraceSpan {
        trace_id: trace.into(),
        span_id: span.into(),
        service_name: "checkout".into(),
        span_name: "GET /".into(),
        span_kind: "server".into(),
        start_time_unix_nano: 1_795_000_000_000_000_000,
        duration_us: dur_ms * 1000,
        is_error: error,
        attributes_json: "{}".into(),
        seq_id: seq,
        ..Default::default()
    }
}

fn store_http(seq: u64, n: u64, bucket: usize) -> coral_proto::common::BeylaHttpMetric {
    let mut counts = vec![0; 4];
    counts[bucket] = n;
    coral_proto::common::BeylaHttpMetric {
        minute: 1_795_000_020 / 60 * 60,
        service_name: "checkout".into(),
        kind: "server".into(),
        http_method: "GET".into(),
        http_route: "/".into(),
        http_status_code: 200,
        latency: Some(
            Histogram::new(vec![10.0, 100.0, 1000.0], counts, 0.0, None, None)
                .unwrap()
                .to_proto(),
        ),
        seq_id: seq,
        ..Default::default()
    }
}

fn beyla_page(
    start: u64,
    max: u64,
    page: coral_colony::store::beyla::BeylaRows,
) -> coral_colony::store::ingest::Page {
    coral_colony::store::ingest::Page {
        agent_id: "a1".into(),
        stream: coral_colony::store::ingest::Stream::Beyla,
        session_id: "s1".into(),
        start_seq: start,
        max_seq: max,
        buckets: Vec::new(),
        spans: Vec::new(),
        hosts: Vec::new(),
        beyla: page,
        reported: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colony_merges_parts_and_keeps_errors_and_slow_traces_when_sampling() {
    use coral_colony::store::beyla::{BeylaRows, TraceSampling};
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = coral_colony::store::Database::open(dir.path()).unwrap();
    // Keep no trace by id: only errors, slow ones, and traces already kept.
    let sampling = TraceSampling {
        rate: 0.0,
        slow_us: 500_000,
    };
    let (writer, tx) = coral_colony::store::writer::Writer::start(
        conn,
        db.clone(),
        coral_colony::store::writer::WriterSettings {
            sampling,
            ..Default::default()
        },
    )
    .unwrap();
    let first = BeylaRows {
        http: vec![store_http(1, 5, 0)],
        spans: vec![
            store_span(&"a".repeat(32), "a000000000000001", 2, 20, true),
            store_span(&"a".repeat(32), "a000000000000002", 3, 5, false),
            store_span(&"b".repeat(32), "b000000000000001", 4, 900, false),
            store_span(&"c".repeat(32), "c000000000000001", 5, 20, false),
        ],
        ..Default::default()
    };
    let outcome = tx.store(beyla_page(0, 5, first)).await.unwrap();
    assert_eq!(outcome.cursor, 5);
    // The same minute and series again (a late export): counts add.
    let second = BeylaRows {
        http: vec![store_http(6, 3, 1)],
        spans: vec![store_span(&"a".repeat(32), "a000000000000003", 7, 1, false)],
        ..Default::default()
    };
    let outcome = tx.store(beyla_page(5, 8, second)).await.unwrap();
    assert_eq!(outcome.gaps, vec![(8, 8)], "seq 8 never arrived");
    let conn = db.reader().unwrap();
    let r = coral_colony::store::query_beyla::query(
        &conn,
        &QueryBeylaRequest {
            include_traces: true,
            max_traces: 10,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.http_metrics.len(), 1, "one row per minute and series");
    let h = Histogram::from_proto(r.http_metrics[0].latency.as_ref().unwrap()).unwrap();
    assert_eq!((h.count, h.counts.clone()), (8, vec![5, 3, 0, 0]));
    let parts: i64 = conn
        .query_row("SELECT parts FROM beyla_http_metrics", [], |row| row.get(0))
        .unwrap();
    assert_eq!(parts, 2);
    let mut kept: Vec<&str> = r.trace_spans.iter().map(|s| s.span_id.as_str()).collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            "a000000000000001",
            "a000000000000002",
            "a000000000000003",
            "b000000000000001"
        ],
        "the error trace (whole, and its late span) and the slow trace are kept; the fast one is not"
    );
    drop(conn);
    tx.close();
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}
