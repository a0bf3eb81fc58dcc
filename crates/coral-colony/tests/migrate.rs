//! `coral colony migrate`'s library half against a real DuckDB file and a
//! real `clickhouse-server` (Debian's 18.16, started on loopback ports):
//!
//! - a colony's history (OTLP buckets with operations and parts, kept spans,
//!   host samples, Beyla histograms and spans, gaps, agent records, cursors)
//!   copied into ClickHouse answers every read exactly as the embedded store
//!   does, with as many rows per table;
//! - a second run moves nothing and says every row was already there;
//! - a run dropped after its first batch, then run again, continues where
//!   it stopped and ends with the same rows and answers;
//! - a colony that ran on after a migration is migrated again without a row
//!   counted twice (the changed tables copied again, the others skipped);
//! - a data directory without `colony.duckdb` names the flag to fix.
//!
//! Needs `clickhouse-server` (a skip with a message where it is missing, a
//! failure with `CORAL_REQUIRE_CLICKHOUSE=1`).

mod common;

use std::collections::BTreeSet;

use coral_colony::catalogue::TABLES;
use coral_colony::migrate::{self, MigrateError, MigrationReport, Options};
use coral_colony::store::clickhouse::ClickHouse;
use coral_colony::store::engine::Store;
use coral_colony::store::ingest::Stream;
use coral_model::SpanKind;
use coral_proto::colony::{
    ListServicesRequest, ListTracesRequest, QueryBeylaRequest, QueryOperationsRequest,
    QueryOtelSummariesResponse,
};

use common::clickhouse::server;
use common::pages::{MINUTE, beyla_page, bucket, host, pages, session_page, span};

const AGENTS: [&str; 2] = ["web-1", "web-2"];

/// An embedded colony store holding both agents' records and pages.
async fn embedded() -> common::Store {
    let duck = common::store();
    for agent in AGENTS {
        duck.tx
            .upsert_agent(common::pages::agent(agent, &format!("{agent}.example")));
    }
    for (agent, scale) in AGENTS.into_iter().zip([1.0, 3.0]) {
        for page in pages(agent, scale) {
            duck.tx.store(page).await.unwrap();
        }
        duck.tx.store(beyla_page(agent)).await.unwrap();
    }
    duck
}

/// Rows per table in the embedded store.
fn duck_counts(duck: &common::Store) -> Vec<(&'static str, u64)> {
    let conn = duck.db.reader().unwrap();
    TABLES
        .iter()
        .map(|t| {
            let sql = format!("SELECT count(*)::UBIGINT FROM {}", t.name);
            (t.name, conn.query_row(&sql, [], |r| r.get(0)).unwrap())
        })
        .collect()
}

/// Rows per table in ClickHouse: each key once (`FINAL`), or every row
/// stored.
async fn ch_counts(ch: &ClickHouse, final_: bool) -> Vec<(&'static str, u64)> {
    let mut out = Vec::new();
    for t in TABLES {
        let sql = format!(
            "SELECT count() FROM {}{}",
            ch.target().table(t),
            if final_ { " FINAL" } else { "" }
        );
        out.push((t.name, ch.client().query(&sql).fetch_one().await.unwrap()));
    }
    out
}

/// Every table was copied whole by this run.
fn assert_moved_all(report: &MigrationReport, duck: &[(&str, u64)]) {
    assert_eq!(report.tables.len(), duck.len());
    for (table, rows) in duck {
        let t = report.table(table).unwrap();
        assert_eq!(
            (t.read, t.moved, t.already_there, t.finished),
            (*rows, *rows, 0, true),
            "{table}"
        );
    }
}

/// Summaries compared field by field (sums to rounding, sample traces as
/// sets: both engines merge in their own order).
fn assert_same_summaries(ch: &QueryOtelSummariesResponse, duck: &QueryOtelSummariesResponse) {
    assert_eq!(ch.rows.len(), duck.rows.len(), "{ch:#?}\n{duck:#?}");
    assert_eq!(ch.totals.len(), duck.totals.len());
    let pairs = ch
        .rows
        .iter()
        .zip(&duck.rows)
        .chain(ch.totals.iter().zip(&duck.totals));
    for (c, d) in pairs {
        assert_eq!(
            (
                c.bucket_time,
                &c.span_kind,
                c.total_spans,
                c.error_count,
                c.agent_count
            ),
            (
                d.bucket_time,
                &d.span_kind,
                d.total_spans,
                d.error_count,
                d.agent_count
            )
        );
        assert_eq!(
            (c.p50_ms, c.p95_ms, c.p99_ms, c.min_ms, c.max_ms),
            (d.p50_ms, d.p95_ms, d.p99_ms, d.min_ms, d.max_ms)
        );
        assert!((c.sum_ms - d.sum_ms).abs() <= 1e-9 * d.sum_ms.abs().max(1.0));
        let set = |ids: &[String]| ids.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(set(&c.sample_traces), set(&d.sample_traces));
    }
}

/// Every read the colony serves answers the same from both stores.
async fn assert_same_answers(duck: &Store, ch: &Store) {
    let (from, to) = (MINUTE - 60, MINUTE + 120);
    for (kind, agent) in [("", ""), ("SERVER", ""), ("", "web-2"), ("CLIENT", "web-1")] {
        let (d, c) = (
            duck.otel_summaries("checkout".into(), from, to, kind.into(), agent.into())
                .await
                .unwrap(),
            ch.otel_summaries("checkout".into(), from, to, kind.into(), agent.into())
                .await
                .unwrap(),
        );
        assert!(!d.rows.is_empty());
        assert_same_summaries(&c, &d);
    }
    for (kind, agent) in [("", ""), ("SERVER", "web-2")] {
        let req = QueryOperationsRequest {
            service_name: "checkout".into(),
            span_kind: kind.into(),
            agent_id: agent.into(),
            ..Default::default()
        };
        let (d, c) = (
            duck.operations(req.clone(), from, to).await.unwrap(),
            ch.operations(req, from, to).await.unwrap(),
        );
        assert!(!d.rows.is_empty());
        assert_eq!(c.rows.len(), d.rows.len());
        for (c, d) in c
            .rows
            .iter()
            .zip(&d.rows)
            .chain(c.totals.iter().zip(&d.totals))
        {
            assert_eq!(
                (
                    c.bucket_time,
                    &c.operation,
                    &c.span_kind,
                    c.total_spans,
                    c.error_count,
                    c.agent_count
                ),
                (
                    d.bucket_time,
                    &d.operation,
                    &d.span_kind,
                    d.total_spans,
                    d.error_count,
                    d.agent_count
                )
            );
            assert_eq!(
                (c.p50_ms, c.p95_ms, c.p99_ms, c.min_ms, c.max_ms),
                (d.p50_ms, d.p95_ms, d.p99_ms, d.min_ms, d.max_ms)
            );
        }
    }
    let services = ListServicesRequest::default();
    assert_eq!(
        ch.services(services).await.unwrap(),
        duck.services(services).await.unwrap(),
        "ListServices"
    );
    for req in [
        QueryBeylaRequest {
            include_traces: true,
            ..Default::default()
        },
        QueryBeylaRequest {
            trace_id: format!("{:032x}", 0xbe11a),
            ..Default::default()
        },
    ] {
        let d = duck.beyla(req.clone()).await.unwrap();
        assert!(!d.http_metrics.is_empty() || !d.trace_spans.is_empty());
        assert_eq!(ch.beyla(req).await.unwrap(), d, "QueryBeyla");
    }
    for id in [
        format!("{:032x}", 0xbe11a),
        format!("{:032x}", 4),
        "f".repeat(32),
    ] {
        assert_eq!(
            ch.trace(id.clone(), 0).await.unwrap(),
            duck.trace(id, 0).await.unwrap(),
            "GetTrace"
        );
    }
    let window = ((MINUTE - 60) * 1_000, (MINUTE + 120) * 1_000);
    for req in [
        ListTracesRequest::default(),
        ListTracesRequest {
            source: "beyla".into(),
            ..Default::default()
        },
        ListTracesRequest {
            errors_only: true,
            ..Default::default()
        },
    ] {
        let d = duck.traces(req.clone(), window.0, window.1).await.unwrap();
        assert!(!d.traces.is_empty());
        assert_eq!(
            ch.traces(req, window.0, window.1).await.unwrap(),
            d,
            "ListTraces"
        );
    }
    let d = duck
        .host_correlation("checkout".into(), from, to)
        .await
        .unwrap();
    assert!(d.rows.iter().any(|r| r.cpu_percent.is_some()));
    assert_eq!(
        ch.host_correlation("checkout".into(), from, to)
            .await
            .unwrap(),
        d,
        "QueryHostCorrelation"
    );
    for agent in ["", "web-1"] {
        let d = duck.gaps(agent).await.unwrap();
        assert!(!d.is_empty());
        assert_eq!(ch.gaps(agent).await.unwrap(), d, "ListGaps {agent:?}");
    }
    let d = duck.agents().await.unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(ch.agents().await.unwrap(), d, "agent records");
    for agent in AGENTS {
        for stream in [Stream::Pull, Stream::Beyla] {
            let d = duck.cursor(agent, stream).await.unwrap();
            assert!(d.is_some());
            assert_eq!(ch.cursor(agent, stream).await.unwrap(), d, "cursor");
        }
    }
    let ((dc, dg), (cc, cg)) = (duck.progress().await.unwrap(), ch.progress().await.unwrap());
    assert_eq!(cg, dg, "gap counts");
    assert_eq!(cursors(cc), cursors(dc), "cursors");
}

type Cursors = std::collections::HashMap<(String, String), coral_colony::store::query::CursorRow>;

/// The cursors, comparable.
fn cursors(all: Cursors) -> Vec<((String, String), String, u64, u64)> {
    let mut v: Vec<_> = all
        .into_iter()
        .map(|(k, c)| (k, c.session_id, c.seq_id, c.rows_received))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrated_colony_answers_as_the_embedded_one_and_a_second_run_moves_nothing() {
    let Some(server) = server().await else { return };
    let ch = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let nothing = tempfile::tempdir().unwrap();
    let err = migrate::migrate(nothing.path(), &ch, |_| {})
        .await
        .unwrap_err();
    assert!(matches!(err, MigrateError::Missing { .. }), "{err}");
    assert!(err.to_string().contains("--data-dir"), "{err}");

    let duck = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    common::stopped_copy(&duck, dir.path());
    let rows = duck_counts(&duck);
    assert!(
        rows.iter().all(|(_, n)| *n > 0),
        "every table has rows: {rows:?}"
    );
    let mut seen = Vec::new();
    let report = migrate::migrate(dir.path(), &ch, |p| seen.push(p))
        .await
        .unwrap();
    assert_moved_all(&report, &rows);
    assert_eq!(
        report.total().moved,
        rows.iter().map(|(_, n)| n).sum::<u64>()
    );
    assert!(seen.iter().any(|p| p.table == "otel_spans" && p.finished));
    let sorted = |mut v: Vec<(&'static str, u64)>| {
        v.sort();
        v
    };
    assert_eq!(
        sorted(ch_counts(&ch, true).await),
        sorted(rows.clone()),
        "as many rows per table, each key once"
    );
    let (d, c) = (
        Store::DuckDb(duck.db.clone()),
        Store::ClickHouse(ch.clone()),
    );
    assert_same_answers(&d, &c).await;

    let stored = ch_counts(&ch, false).await;
    let again = migrate::migrate(dir.path(), &ch, |_| {}).await.unwrap();
    for (table, n) in &rows {
        let t = again.table(table).unwrap();
        assert_eq!(
            (t.read, t.moved, t.already_there),
            (*n, 0, *n),
            "{table} was already there"
        );
    }
    assert_eq!(
        ch_counts(&ch, false).await,
        stored,
        "nothing inserted again"
    );
    assert_same_answers(&d, &c).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_migration_continues_where_it_stopped() {
    let Some(server) = server().await else { return };
    let ch = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let duck = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    common::stopped_copy(&duck, dir.path());
    let rows = duck_counts(&duck);
    let buckets = rows.iter().find(|(t, _)| *t == "otel_spans").unwrap().1;
    assert_eq!(buckets, 6, "3 rows per agent, the late part merged");
    let two = Options { batch_rows: 2 };

    // Stopped (the future dropped, as a Ctrl-C does) once its first batch
    // is in: at most the batch after it may have reached the server too.
    let stop = tokio::sync::Notify::new();
    let mut first = None;
    let run = migrate::migrate_with(dir.path(), &ch, two, |p| {
        if first.is_none() && p.moved > 0 {
            first = Some(p.clone());
            stop.notify_one();
        }
    });
    tokio::select! {
        biased;
        _ = stop.notified() => {}
        report = run => panic!("the migration ended before it was stopped: {report:?}"),
    }
    let first = first.unwrap();
    assert_eq!((first.table, first.moved), ("otel_spans", 2));
    let copied = ch_counts(&ch, true).await;
    let partial = copied.iter().find(|(t, _)| *t == "otel_spans").unwrap().1;
    assert!((2..=4).contains(&partial), "{partial} of 6 buckets");
    assert!(
        copied.iter().all(|(t, n)| *t == "otel_spans" || *n == 0),
        "{copied:?}"
    );

    let resumed = migrate::migrate_with(dir.path(), &ch, two, |_| {})
        .await
        .unwrap();
    let spans = resumed.table("otel_spans").unwrap();
    assert_eq!(
        (spans.read, spans.already_there, spans.moved),
        (6, 2, 4),
        "the first batch is not copied again"
    );
    for (table, n) in rows.iter().filter(|(t, _)| *t != "otel_spans") {
        let t = resumed.table(table).unwrap();
        assert_eq!((t.moved, t.already_there), (*n, 0), "{table}");
    }
    let mut counts = ch_counts(&ch, true).await;
    let mut expected = rows.clone();
    counts.sort();
    expected.sort();
    assert_eq!(counts, expected, "each row once");
    assert_same_answers(&Store::DuckDb(duck.db.clone()), &Store::ClickHouse(ch)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colony_that_ran_on_is_migrated_again_without_counting_twice() {
    let Some(server) = server().await else { return };
    let ch = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let duck = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    common::stopped_copy(&duck, dir.path());
    migrate::migrate(dir.path(), &ch, |_| {}).await.unwrap();

    // The embedded colony ran on: web-1 sent a late part of its first
    // minute (merged into the stored bucket), a span, and a newer host
    // sample of the minute (replacing the stored one).
    let mut more = session_page("web-1", Stream::Pull, "web-1-s1", (9, 12));
    let late: Vec<f64> = (1..=30).map(|i| i as f64 * 7.0).collect();
    more.buckets = vec![bucket(10, MINUTE, SpanKind::Server, &late, 3)];
    more.spans = vec![span(11)];
    more.hosts = vec![host(12, "web-1", 77.0)];
    duck.tx.store(more).await.unwrap();
    common::stopped_copy(&duck, dir.path());

    let report = migrate::migrate(dir.path(), &ch, |_| {}).await.unwrap();
    let rows = duck_counts(&duck);
    for (table, n) in &rows {
        let t = report.table(table).unwrap();
        let changed = [
            "otel_spans",
            "otel_operations",
            "trace_spans",
            "host_metrics",
            "cursors",
        ];
        let expected = if changed.contains(table) {
            (*n, *n, 0)
        } else {
            (*n, 0, *n)
        };
        assert_eq!(
            (t.read, t.moved, t.already_there),
            expected,
            "{table}: copied again only when it changed"
        );
    }
    let mut counts = ch_counts(&ch, true).await;
    let mut expected = rows.clone();
    counts.sort();
    expected.sort();
    assert_eq!(
        counts, expected,
        "the merged bucket and the sample replaced"
    );
    let (d, c) = (Store::DuckDb(duck.db.clone()), Store::ClickHouse(ch));
    let hosts = c
        .host_correlation("checkout".into(), MINUTE - 60, MINUTE + 120)
        .await
        .unwrap();
    assert!(hosts.rows.iter().any(|r| r.cpu_percent == Some(77.0)));
    assert!(
        !hosts
            .rows
            .iter()
            .any(|r| r.cpu_percent == Some(42.0) && r.agent_id == "web-1")
    );
    assert_same_answers(&d, &c).await;
}

/// A file an older colony wrote lacks the columns declared since; the
/// migration reads it read-only, so it cannot add them, and says how to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_an_older_colony_wrote_is_refused_with_what_to_do() {
    let Some(server) = server().await else { return };
    let ch = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let duck = embedded().await;
    let dir = tempfile::tempdir().unwrap();
    common::stopped_copy(&duck, dir.path());
    duckdb::Connection::open(dir.path().join("colony.duckdb"))
        .unwrap()
        .execute_batch("ALTER TABLE trace_spans DROP COLUMN http_route")
        .unwrap();
    let error = migrate::migrate(dir.path(), &ch, |_| {})
        .await
        .expect_err("refused");
    let text = error.to_string();
    assert!(
        text.contains("trace_spans has no column http_route")
            && text.contains("start the colony of this version on it once"),
        "{text}"
    );
}
