//! `QueryTelemetry` and `QueryBeylaMetrics` pages are bounded by bytes as well
//! as rows: wide rows are
//! read a window at a time within the store's DuckDB memory limit, a page
//! stays within what a colony accepts in one message, and draining page after
//! page returns every row exactly once.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

mod common;

use coral_agent::metrics::Counters;
use coral_agent::normalize::KEPT_ATTRIBUTES;
use coral_agent::store::Database;
use coral_agent::store::beyla::BeylaRows;
use coral_agent::store::beyla_read;
use coral_agent::store::read::{MAX_PAGE_BYTES, MAX_RECORDS, query_telemetry};
use coral_agent::store::writer::{WriteOp, Writer};
use coral_proto::agent::{QueryBeylaMetricsRequest, QueryTelemetryRequest};
use coral_proto::common::{BeylaTraceSpan, TelemetrySpan};
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use coral_proto::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};
use coral_proto::otlp::trace::v1::Span;
use prost::Message;

/// Incompressible hex text of `len` bytes, as real attribute values mostly are.
fn noise(state: &mut u64, len: usize) -> String {
    let mut text = String::with_capacity(len + 16);
    while text.len() < len {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        text.push_str(&format!("{:016x}", *state));
    }
    text.truncate(len);
    text
}

/// Now, in Unix nanoseconds.
fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// A fresh store holding what `ops` write, through the real writer.
fn store_ops(ops: impl IntoIterator<Item = WriteOp>) -> (tempfile::TempDir, Arc<Database>) {
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    let (writer, tx) = Writer::start(conn, db.clone(), Arc::new(Counters::default())).unwrap();
    for op in ops {
        tx.send(op).unwrap();
    }
    drop(tx);
    writer.join();
    (dir, db)
}

/// A store holding `n` kept spans with `attribute_bytes` of attribute JSON
/// each, written in batches of `batch`.
fn store_with(
    n: usize,
    attribute_bytes: usize,
    batch: usize,
) -> (tempfile::TempDir, Arc<Database>) {
    let start_ns = now_ns();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let (dir, db) = store_ops((0..n.div_ceil(batch)).map(|chunk| {
        let spans = (chunk * batch..((chunk + 1) * batch).min(n))
            .map(|i| TelemetrySpan {
                trace_id: format!("{i:032x}"),
                span_id: format!("{i:016x}"),
                service_name: "wide".into(),
                span_name: "GET /x".into(),
                span_kind: "SERVER".into(),
                start_time_unix_nano: start_ns,
                attributes_json: format!(r#"{{"noise":"{}"}}"#, noise(&mut state, attribute_bytes)),
                resource_json: "{}".into(),
                ..Default::default()
            })
            .collect();
        WriteOp::Spans(spans, None)
    }));
    assert_eq!(db.latest_seq(), n as u64);
    (dir, db)
}

/// Bytes of a response's own fields (session, cursors, flags), on top of the
/// rows the page budget counts.
const PAGE_FIELDS: usize = 256;

/// Reads page after page from seq 0: every page's seq_ids and encoded size.
fn drain(db: &Database) -> Vec<(Vec<u64>, usize)> {
    let mut pages = Vec::new();
    let mut start = 0;
    loop {
        let page = query_telemetry(
            db,
            "agent",
            &QueryTelemetryRequest {
                service_names: vec![],
                start_seq_id: start,
                max_records: MAX_RECORDS as i32,
            },
        )
        .expect("a page reads within the store's memory limit");
        assert!(
            page.max_seq_id > start || !page.has_more,
            "the cursor moves"
        );
        pages.push((
            page.spans.iter().map(|s| s.seq_id).collect(),
            page.encoded_len(),
        ));
        start = page.max_seq_id;
        if !page.has_more {
            return pages;
        }
    }
}

/// The largest page by rows (`MAX_RECORDS` spans with ~1.3 KB of attribute
/// JSON each, ~70 MB in all) is cut at the byte budget, and each page is read
/// within the store's DuckDB memory limit, which is below the page's size.
#[test]
fn a_full_page_of_wide_spans_is_cut_at_the_byte_budget() {
    let total = MAX_RECORDS + 1;
    let (_dir, db) = store_with(total, 1_280, 10_000);
    let pages = drain(&db);
    assert!(pages.len() >= 3, "{} pages", pages.len());
    assert!(pages[0].0.len() < MAX_RECORDS);
    for (_, bytes) in &pages {
        assert!(
            *bytes <= MAX_PAGE_BYTES + PAGE_FIELDS,
            "{bytes} bytes in a page"
        );
    }
    let seen: Vec<u64> = pages.into_iter().flat_map(|p| p.0).collect();
    assert_eq!(seen, (1..=total as u64).collect::<Vec<_>>());
}

/// Kept spans at the stored size limit (4 KiB of attribute JSON each), 16,000
/// of them (64 MiB), are all stored and come back in pages within the budget:
/// DuckDB's checkpoints and reads of such rows fit its memory limit.
#[test]
fn spans_at_the_size_limit_are_stored_and_paged_whole() {
    let n = 16_000;
    let (_dir, db) = store_with(n, KEPT_ATTRIBUTES.total_bytes - 16, 64);
    let pages = drain(&db);
    assert!(pages.len() >= 2, "{} pages", pages.len());
    for (_, bytes) in &pages {
        assert!(
            *bytes <= MAX_PAGE_BYTES + PAGE_FIELDS,
            "{bytes} bytes in a page"
        );
    }
    let seen: Vec<u64> = pages.into_iter().flat_map(|p| p.0).collect();
    assert_eq!(seen, (1..=n as u64).collect::<Vec<_>>());
}

/// A burst of spans with half a MiB of attributes each, through the OTLP
/// receiver: each is stored with its attributes cut to the limits and
/// counted, and every one of them reaches the store. Uncut, rows this wide
/// made DuckDB's checkpoint fail for want of memory, which left the database
/// unusable until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_attributes_are_cut_and_every_span_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let agent = common::start(&common::config(
        dir.path(),
        "    filters:\n      - sample_rate: 1.0",
    ))
    .await;
    let mut client =
        TraceServiceClient::connect(format!("http://{}", agent.addrs.otlp_grpc.unwrap()))
            .await
            .unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let now = now_ns() as u64;
    let total = 160u64;
    for batch in 0..total / 16 {
        let spans = (0..16)
            .map(|i| {
                let n = batch * 16 + i + 1;
                let mut trace_id = [0u8; 16];
                trace_id[8..].copy_from_slice(&n.to_be_bytes());
                Span {
                    trace_id: trace_id.to_vec(),
                    span_id: n.to_be_bytes().to_vec(),
                    name: "POST /upload".into(),
                    kind: 2,
                    start_time_unix_nano: now - 5_000_000,
                    end_time_unix_nano: now,
                    attributes: vec![KeyValue {
                        key: "request.body".into(),
                        value: Some(AnyValue {
                            value: Some(Value::StringValue(noise(&mut state, 512 * 1024))),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }
            })
            .collect();
        client
            .export(common::export_request("uploads", spans))
            .await
            .expect("export accepted");
    }
    common::flush_and_wait(&agent, 1, total).await;
    let (_, spans, _, _) = common::query_all(&agent, 0, 10_000).await;
    assert_eq!(spans.len() as u64, total);
    for span in &spans {
        let attributes: serde_json::Value = serde_json::from_str(&span.attributes_json).unwrap();
        let body = attributes["request.body"].as_str().unwrap();
        assert_eq!(body.len(), KEPT_ATTRIBUTES.value_bytes);
    }
    let counters = agent.api.counters().to_proto(0);
    assert_eq!(counters.spans_stored, total);
    assert_eq!(counters.spans_dropped, 0);
    let cut = agent
        .api
        .counters()
        .spans_attributes_cut
        .load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(cut, total);
    agent.shutdown().await;
}

/// Beyla spans at the stored size limit (about 4 KiB of attributes and 1 KiB
/// names each; `coral_beyla` cuts them to it), 10,000 of them (~50 MB), are
/// all stored and drained by cursor in pages within the byte budget, each
/// seq_id exactly once.
#[test]
fn beyla_pages_are_cut_at_the_byte_budget() {
    let start_ns = now_ns();
    let mut state = 0x6a09_e667_f3bc_c908_u64;
    let n = 10_000u64;
    let (_dir, db) = store_ops((0..n / 500).map(|chunk| {
        let spans = (chunk * 500..(chunk + 1) * 500)
            .map(|i| BeylaTraceSpan {
                trace_id: format!("{i:032x}"),
                span_id: format!("{i:016x}"),
                service_name: "beyla".into(),
                span_name: noise(&mut state, 1_024),
                span_kind: "server".into(),
                start_time_unix_nano: start_ns,
                attributes_json: format!(
                    r#"{{"noise":"{}"}}"#,
                    noise(&mut state, KEPT_ATTRIBUTES.total_bytes - 16)
                ),
                ..Default::default()
            })
            .collect();
        WriteOp::Beyla(
            BeylaRows {
                spans,
                ..BeylaRows::default()
            },
            None,
        )
    }));
    assert_eq!(db.latest_beyla_seq(), n);

    let mut start = 0;
    let mut seen = Vec::new();
    let mut pages = 0;
    loop {
        let page = beyla_read::query(
            &db,
            &QueryBeylaMetricsRequest {
                include_traces: true,
                start_seq_id: start,
                max_records: MAX_RECORDS as i32,
                ..Default::default()
            },
        )
        .expect("a Beyla page reads within the store's memory limit");
        pages += 1;
        let bytes = page.encoded_len();
        assert!(
            bytes <= MAX_PAGE_BYTES + PAGE_FIELDS,
            "{bytes} bytes in a page"
        );
        assert!(
            page.max_seq_id > start || !page.has_more,
            "the cursor moves"
        );
        seen.extend(page.trace_spans.iter().map(|s| s.seq_id));
        start = page.max_seq_id;
        if !page.has_more {
            break;
        }
    }
    assert!(pages >= 2, "{pages} pages");
    assert_eq!(seen, (1..=n).collect::<Vec<_>>());
}
