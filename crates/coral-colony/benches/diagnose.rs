//! `Diagnose` (`coral ask`) at the colony: one whole diagnosis, through
//! the function the `ColonyService` handler runs on the blocking pool
//! (`coral_colony::ask::answer`), over a colony holding 24 hours of 50
//! services × 20 operations per minute and 1,000,000 kept spans.
//!
//! The store is filled with SQL (`INSERT … SELECT FROM range`):
//! `otel_operations` and `otel_spans` rows of every minute, service and
//! operation on 2 agents (1,440 × 50 × 20 × 2 = 2.88 M operation rows),
//! each with a sketch; 100,000 traces of 10 spans, a chain `svc-0 → svc-1 →
//! … → svc-9`, all kept by the trace-id sample; in the last 15 minutes
//! `svc-9`'s `op-9` takes 100 ms more, which every caller's request shows.
//! The question: "why is svc-0 slow?" over the last 15 minutes against the
//! hour before (target: < 2 s in a release build).
//!
//! ```sh
//! cargo bench --workspace --bench diagnose
//! TRACES=20000 cargo bench --workspace --bench diagnose
//! ```

use std::time::Duration;

use coral_colony::ask;
use coral_colony::store::Database;
use coral_colony::store::diagnose::ColonyData;
use coral_model::DurationSketch;
use coral_proto::colony::DiagnoseRequest;
use criterion::{Criterion, criterion_group, criterion_main};

/// End of the data ("now"), Unix seconds, minute-aligned.
const END: i64 = 1_800_000_000 / 60 * 60;
const DAY: i64 = 86_400;
const INCIDENT: i64 = 15 * 60;
const AGENTS: i64 = 2;
const SERVICES: i64 = 50;
const OPERATIONS: i64 = 20;
/// Requests per minute, operation and agent.
const PER_MINUTE: i64 = 15;

/// A sketch of `n` durations around `median_ms`.
fn sketch(n: i64, median_ms: f64) -> Vec<u8> {
    let mut s = DurationSketch::new();
    for i in 0..n {
        s.add(median_ms * (0.8 + 0.4 * (i as f64 / n as f64)));
    }
    s.encode()
}

fn fill(conn: &duckdb::Connection, traces: i64) {
    let minutes = DAY / 60;
    let start = END - DAY;
    let normal = sketch(PER_MINUTE, 40.0);
    let slow = sketch(PER_MINUTE, 140.0);
    let incident_from = END - INCIDENT;
    // One row per (minute, agent, service, operation); every operation of
    // the chain's services (`svc-0` … `svc-9`, which all wait on the leaf)
    // is slow in the incident.
    conn.execute(
        &format!(
            "INSERT INTO otel_operations SELECT \
               make_timestamp(({start} + m * 60) * 1000000), 'agent-' || a, 'svc-' || s, \
               'SERVER', 'op-' || o, {PER_MINUTE}, 0, 30.0, 40.0, 50.0, 30.0, 50.0, \
               {PER_MINUTE} * 40.0, '[]', \
               CASE WHEN s < 10 AND {start} + m * 60 >= {incident_from} THEN $2 \
                    ELSE $1 END \
             FROM range({minutes}) t(m), range({AGENTS}) u(a), range({SERVICES}) v(s), \
                  range({OPERATIONS}) w(o)"
        ),
        duckdb::params![normal, slow],
    )
    .unwrap();
    conn.execute(
        &format!(
            "INSERT INTO otel_spans SELECT \
               make_timestamp(({start} + m * 60) * 1000000), 'agent-' || a, 'svc-' || s, \
               'SERVER', 30.0, 40.0, 50.0, 0, {PER_MINUTE} * {OPERATIONS}, []::VARCHAR[], 30.0, 50.0, \
               {PER_MINUTE} * {OPERATIONS} * 40.0, '[]', $1, 1, now() \
             FROM range({minutes}) t(m), range({AGENTS}) u(a), range({SERVICES}) v(s)"
        ),
        duckdb::params![normal],
    )
    .unwrap();
    // Traces of 10 spans, spread over the day: span k of trace i is
    // `svc-k op-k`, child of span k-1; the leaf takes 20 ms (120 ms in the
    // incident) and every other span 4 ms of its own.
    let gap_ms = DAY * 1000 / traces;
    let leaf = format!(
        "CASE WHEN {start}::BIGINT * 1000 + i * {gap_ms} >= {incident_from}::BIGINT * 1000 THEN 120 ELSE 20 END"
    );
    conn.execute_batch(&format!(
        "INSERT INTO trace_spans SELECT 'agent-' || (i % {AGENTS}), i * 10 + k, \
           lpad(printf('%x', i), 32, '0'), lpad(printf('%x', i * 10 + k), 16, '0'), \
           CASE WHEN k = 0 THEN '' ELSE lpad(printf('%x', i * 10 + k - 1), 16, '0') END, \
           'svc-' || k, 'op-' || k, 'SERVER', \
           make_timestamp(({start}::BIGINT * 1000 + i * {gap_ms} + k * 2) * 1000), \
           ({start}::BIGINT * 1000 + i * {gap_ms} + k * 2) * 1000000, \
           (({leaf}) + (9 - k) * 4) * 1000, false, 'UNSET', '', 200, 'POST', '/op-' || k, \
           '', '', '', NULL, '', '', '', 'sampled', \
           '{{\"http.route\":\"/op-' || k || '\"}}', \
           '{{\"service.name\":\"svc-' || k || '\",\"service.version\":\"1.0\"}}' \
         FROM range({traces}) t(i), range(10) u(k); CHECKPOINT;"
    ))
    .unwrap();
}

fn bench(c: &mut Criterion) {
    let traces: i64 = std::env::var("TRACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let (db, conn) = Database::open(dir.path()).unwrap();
    fill(&conn, traces);
    drop(conn);
    let reader = db.reader().unwrap();
    let data = ColonyData::new(&reader);
    let request = DiagnoseRequest {
        question: "why is svc-0 slow?".into(),
        from_unix: END - INCIDENT,
        to_unix: END,
        baseline_from_unix: END - INCIDENT - 3600,
        baseline_to_unix: END - INCIDENT,
        ..Default::default()
    };
    let answer = ask::answer(&data, &request, END).unwrap();
    // The bench times a whole diagnosis: a regression traced to the leaf.
    assert_eq!(answer.verdict.as_str(), "regression");
    assert_eq!(
        answer.causes.first().map(|c| c.service.as_str()),
        Some("svc-9")
    );
    eprintln!(
        "colony holds {} kept spans; verdict {}, first cause {:?}",
        traces * 10,
        answer.verdict.as_str(),
        answer.causes.first().map(|c| (&c.service, &c.operation))
    );

    let mut group = c.benchmark_group("diagnose");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));
    group.bench_function("ask_why_slow_24h_50x20_1m_spans", |b| {
        b.iter(|| ask::answer(&data, &request, END).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
