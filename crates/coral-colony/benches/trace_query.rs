//! Trace reads at the colony: `GetTrace` of one 10,000-span trace, and
//! `ListTraces` of a service, from a colony holding 1,000,000 kept spans
//! (OTLP and Beyla together), through the same store functions the
//! `ColonyService` calls.
//!
//! The store is filled with SQL (`INSERT … SELECT FROM range`): 99,000
//! traces of 10 spans over 50 services, plus the big trace, with ~300 bytes
//! of attributes and a resource per span; a tenth of the spans are Beyla's.
//!
//! ```sh
//! cargo bench --workspace --bench trace_query
//! SPANS=200000 cargo bench --workspace --bench trace_query
//! ```

use std::time::Duration;

use coral_colony::store::Database;
use coral_colony::store::traces::{get_trace, list_traces};
use coral_proto::colony::ListTracesRequest;
use criterion::{Criterion, criterion_group, criterion_main};

/// The trace `GetTrace` opens.
const BIG_TRACE: &str = "00000000000000000000000000abcdef";
const BIG_SPANS: u64 = 10_000;
/// Start of the data, Unix µs.
const T0_US: i64 = 1_800_000_000_000_000;

fn fill(conn: &duckdb::Connection, spans: u64) {
    let others = spans - BIG_SPANS;
    let otlp = others * 9 / 10;
    let beyla = others - otlp;
    let attrs = r#"'{"http.request.method":"POST","http.route":"/api/v1/orders/:id","http.response.status_code":200,"server.address":"orders.internal","server.port":8080,"user_agent.original":"Mozilla/5.0 (X11; Linux x86_64)","net.peer.ip":"10.1.2.3","thread.id":' || (i % 64) || '}'"#;
    let resource = r#"'{"service.name":"svc-' || (i % 50) || '","service.version":"1.4.' || (i % 7) || '","host.name":"web-' || (i % 20) || '","telemetry.sdk.language":"rust"}'"#;
    // OTLP spans: 10 per trace, the first of each trace its root.
    conn.execute_batch(&format!(
        "INSERT INTO trace_spans SELECT 'agent-' || (i // 10 % 20), i, \
         lpad(printf('%x', i // 10), 32, '0'), lpad(printf('%x', i), 16, '0'), \
         CASE WHEN i % 10 = 0 THEN '' ELSE lpad(printf('%x', i - i % 10), 16, '0') END, \
         'svc-' || (i % 50), 'op-' || (i % 20), 'SERVER', \
         make_timestamp({T0_US} + i * 3600), ({T0_US} + i * 3600) * 1000, 1000 + i % 997, \
         i % 50 = 0, 'UNSET', '', 200, 'POST', '/api/v1/orders/:id', '', '', '', NULL, '', '', '', \
         'sampled', {attrs}, {resource} FROM range({otlp}) t(i);"
    ))
    .unwrap();
    // Beyla spans of other traces.
    conn.execute_batch(&format!(
        "INSERT INTO beyla_traces SELECT 'agent-' || (i % 20), i, \
         lpad(printf('b%x', i // 10), 32, '0'), lpad(printf('b%x', i), 16, '0'), '', \
         'svc-' || (i % 50), 'GET /x', 'server', make_timestamp({T0_US} + i * 36000), \
         ({T0_US} + i * 36000) * 1000, 500 + i % 997, 200, false, {attrs} FROM range({beyla}) t(i);"
    ))
    .unwrap();
    // The big trace: a root and 9,999 children in a chain of fan-outs,
    // half OTLP, half Beyla.
    conn.execute_batch(&format!(
        "INSERT INTO trace_spans SELECT 'agent-1', 10000000 + i, '{BIG_TRACE}', \
         lpad(printf('%x', 1000000 + i), 16, '0'), \
         CASE WHEN i = 0 THEN '' ELSE lpad(printf('%x', 1000000 + (i - 1) // 4), 16, '0') END, \
         'svc-' || (i % 50), 'op-' || (i % 20), 'SERVER', make_timestamp({T0_US} + i * 10), \
         ({T0_US} + i * 10) * 1000, 1000000 - i * 50, false, 'UNSET', '', 200, 'GET', '/', '', '', \
         '', NULL, '', '', '', 'sampled', {attrs}, {resource} \
         FROM range(0, {BIG_SPANS}, 2) t(i); \
         INSERT INTO beyla_traces SELECT 'agent-2', 10000000 + i, '{BIG_TRACE}', \
         lpad(printf('%x', 1000000 + i), 16, '0'), lpad(printf('%x', 1000000 + (i - 1) // 4), 16, '0'), \
         'svc-' || (i % 50), 'GET /y', 'server', make_timestamp({T0_US} + i * 10), \
         ({T0_US} + i * 10) * 1000, 1000000 - i * 50, 200, false, {attrs} \
         FROM range(1, {BIG_SPANS}, 2) t(i); CHECKPOINT;"
    ))
    .unwrap();
}

fn bench(c: &mut Criterion) {
    let spans: u64 = std::env::var("SPANS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    fill(&conn, spans);
    drop(conn);
    let reader = db.reader().unwrap();
    let t = get_trace(&reader, BIG_TRACE, 0).unwrap();
    assert_eq!(t.span_count as u64, BIG_SPANS);
    assert_eq!(t.spans.len() as u64, BIG_SPANS);
    assert!(!t.truncated);
    let stored: u64 = reader
        .query_row(
            "SELECT (SELECT count(*) FROM trace_spans) + (SELECT count(*) FROM beyla_traces)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    eprintln!("colony holds {stored} spans; the trace has {BIG_SPANS}");

    let mut group = c.benchmark_group("trace_query");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(20));
    group.bench_function("get_trace_10k_spans", |b| {
        b.iter(|| get_trace(&reader, BIG_TRACE, 0).unwrap())
    });
    let window = (T0_US / 1000, T0_US / 1000 + 3_600_000 * 1000);
    group.bench_function("list_traces_service_20", |b| {
        b.iter(|| {
            let req = ListTracesRequest {
                service: "svc-7".into(),
                ..Default::default()
            };
            list_traces(&reader, &req, window.0, window.1).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
