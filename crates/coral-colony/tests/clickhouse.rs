//! The colony's ClickHouse store against a real `clickhouse-server`
//! (Debian's 18.16, started by the test on loopback ports) and the same
//! DDL and queries on current ClickHouse (chdb, in-process):
//!
//! - pages stored twice (a colony killed between the rows and the cursor;
//!   two colonies storing one page at once) count once in every answer;
//! - the summaries equal the embedded DuckDB store's for the same pages:
//!   counts exact, percentiles from the merged sketches identical;
//! - gaps and cursors are recorded as in the embedded store;
//! - an unreachable server, a wrong password and a database the user cannot
//!   create each name what to fix.
//!
//! Needs `clickhouse-server` (a skip with a message where it is missing, a
//! failure with `CORAL_REQUIRE_CLICKHOUSE=1`, set by CI) and, for the chdb
//! check, Python with `chdb` (`CORAL_PYTHON`; required with
//! `CORAL_REQUIRE_PYTHON_INTEROP=1`).

mod common;

use std::collections::BTreeSet;

use coral_colony::catalogue::{self, clickhouse::Target};
use coral_colony::store::clickhouse::{self as ch, ClickHouse, ClickHouseError};
use coral_colony::store::ingest::Page;
use coral_colony::store::query;
use coral_model::SpanKind;
use coral_proto::colony::QueryOtelSummariesResponse;

use common::clickhouse::{PASSWORD, server};
use common::pages::{MINUTE, SAMPLING, bucket, pages};

async fn count(store: &ClickHouse, table: &str, final_: bool) -> u64 {
    let sql = format!(
        "SELECT count() FROM {}{}",
        store.target().qualified(table),
        if final_ { " FINAL" } else { "" }
    );
    store.client().query(&sql).fetch_one::<u64>().await.unwrap()
}

/// Summaries of both span kinds, compared field by field.
fn assert_same(ch: &QueryOtelSummariesResponse, duck: &QueryOtelSummariesResponse) {
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
            (c.p50_ms, c.p95_ms, c.p99_ms),
            (d.p50_ms, d.p95_ms, d.p99_ms)
        );
        assert_eq!((c.min_ms, c.max_ms), (d.min_ms, d.max_ms));
        assert!((c.sum_ms - d.sum_ms).abs() <= 1e-9 * d.sum_ms.abs().max(1.0));
        let set = |ids: &[String]| ids.iter().cloned().collect::<BTreeSet<_>>();
        assert_eq!(set(&c.sample_traces), set(&d.sample_traces));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_stored_twice_count_once_and_answer_as_the_embedded_store() {
    let Some(server) = server().await else { return };
    let store = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let duck = common::store();
    // Background merges would collapse duplicates at their own pace: held
    // off, the reads must exclude them by themselves.
    let spans_table = store.target().qualified("otel_spans");
    let sql = |s: String| {
        let store = store.clone();
        async move { store.client().query(&s).execute().await.unwrap() }
    };
    sql(format!("SYSTEM STOP MERGES {spans_table}")).await;
    let agents = [("web-1", 1.0), ("web-2", 3.0)];
    for (agent, scale) in agents {
        for page in pages(agent, scale) {
            duck.tx.store(page.clone()).await.unwrap();
        }
    }
    // web-2: stored, then its cursor lost (the colony was killed before it
    // was written) and the pages stored again.
    for page in pages("web-2", 3.0) {
        ch::store_page(&store, &page, SAMPLING).await.unwrap();
    }
    let cursors = store.target().qualified("cursors");
    store
        .client()
        .query(&format!("TRUNCATE TABLE {cursors}"))
        .execute()
        .await
        .unwrap();
    for page in pages("web-2", 3.0) {
        let again = ch::store_page(&store, &page, SAMPLING).await.unwrap();
        assert_eq!(again.duplicates, 0, "without its cursor the page is new");
        assert!(again.stored > 0);
    }
    // web-1: its first page stored by two colonies at once (a hand-over).
    let [first, second] = <[Page; 2]>::try_from(pages("web-1", 1.0)).unwrap();
    let (a, b) = tokio::join!(
        ch::store_page(&store, &first, SAMPLING),
        ch::store_page(&store, &first, SAMPLING)
    );
    assert_eq!(a.unwrap().cursor, 4);
    assert_eq!(b.unwrap().cursor, 4);
    let outcome = ch::store_page(&store, &second, SAMPLING).await.unwrap();
    assert_eq!(outcome.gaps, vec![(5, 5)], "seq_id 5 never arrived");
    assert_eq!(outcome.stored, 4);
    // A re-read with the cursor in place is filtered before the insert.
    let reread = ch::store_page(&store, &pages("web-1", 1.0)[1], SAMPLING)
        .await
        .unwrap();
    assert_eq!((reread.stored, reread.duplicates), (0, 4));

    let raw = count(&store, "otel_spans", false).await;
    let once = count(&store, "otel_spans", true).await;
    assert_eq!(once, 8, "4 bucket parts per agent");
    assert!(
        raw > once,
        "the test stored duplicates ({raw} rows for {once} keys)"
    );
    sql(format!("SYSTEM START MERGES {spans_table}")).await;
    sql(format!("OPTIMIZE TABLE {spans_table} FINAL")).await;
    assert_eq!(
        count(&store, "otel_spans", false).await,
        once,
        "merges collapse them"
    );
    assert_eq!(count(&store, "trace_spans", true).await, 6);
    assert_eq!(count(&store, "otel_operations", true).await, 8);
    assert_eq!(count(&store, "host_metrics", true).await, 2);
    assert_eq!(count(&store, "gaps", true).await, 2, "one gap per agent");

    let conn = duck.db.reader().unwrap();
    for (kind, agent) in [("", ""), ("SERVER", ""), ("", "web-2"), ("CLIENT", "web-1")] {
        let from_ch = ch::summaries(&store, "checkout", MINUTE - 60, MINUTE + 120, kind, agent)
            .await
            .unwrap();
        let from_duck =
            query::otel_summaries(&conn, "checkout", MINUTE - 60, MINUTE + 120, kind, agent)
                .unwrap();
        assert!(!from_duck.rows.is_empty());
        assert_same(&from_ch, &from_duck);
    }
    for (kind, operation, agent) in [("", "", ""), ("SERVER", "POST /pay", "web-2")] {
        let req = coral_proto::colony::QueryOperationsRequest {
            service_name: "checkout".into(),
            span_kind: kind.into(),
            operation: operation.into(),
            agent_id: agent.into(),
            ..Default::default()
        };
        let (from, to) = (MINUTE - 60, MINUTE + 120);
        let from_ch = ch::operations(&store, &req, from, to).await.unwrap();
        let from_duck = coral_colony::store::operations::query(&conn, &req, from, to).unwrap();
        assert!(!from_duck.rows.is_empty());
        assert_eq!(from_ch.rows.len(), from_duck.rows.len());
        for (c, d) in from_ch
            .rows
            .iter()
            .zip(&from_duck.rows)
            .chain(from_ch.totals.iter().zip(&from_duck.totals))
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
    let req = coral_proto::colony::ListServicesRequest::default();
    let from_ch = ch::services(&store, &req).await.unwrap();
    let from_duck = coral_colony::store::services::services(&conn, &req).unwrap();
    assert_eq!(from_ch, from_duck, "the service list is the same");
    assert_eq!(
        from_ch[0].requests,
        2 * (200 + 20 + 50),
        "SERVER buckets only"
    );
    let all = ch::summaries(&store, "checkout", MINUTE - 60, MINUTE + 120, "SERVER", "")
        .await
        .unwrap();
    let first_minute = &all.rows[0];
    assert_eq!(
        first_minute.total_spans,
        2 * (200 + 20),
        "parts and agents add up"
    );
    assert_eq!(first_minute.error_count, 2 * (7 + 1));
    assert_eq!(first_minute.agent_count, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_agent_session_records_what_the_old_one_never_delivered() {
    let Some(server) = server().await else { return };
    let store = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let mut first = pages("web-1", 1.0).remove(0);
    first.reported = vec![("web-1-s1".into(), 12)];
    ch::store_page(&store, &first, SAMPLING).await.unwrap();
    let mut next = pages("web-1", 1.0).remove(0);
    next.session_id = "web-1-s2".into();
    next.reported = vec![("web-1-s1".into(), 12)];
    let outcome = ch::store_page(&store, &next, SAMPLING).await.unwrap();
    assert!(outcome.session_reset);
    assert_eq!(outcome.replaced_gap, Some((5, 12)));
    assert_eq!(outcome.stored, 4, "the new session's rows are new");
    assert_eq!(count(&store, "otel_spans", true).await, 6);
    assert_eq!(ch::gaps(&store, "web-1").await.unwrap().len(), 1);

    // The old session sends again (two processes with one agent id): it was
    // not replaced after all, and its gap goes, as in the embedded store.
    let mut back = pages("web-1", 1.0).remove(1);
    back.reported = vec![("web-1-s2".into(), 4)];
    let outcome = ch::store_page(&store, &back, SAMPLING).await.unwrap();
    assert!(outcome.session_reset);
    common::wait_for(
        "the old session's gap is deleted",
        std::time::Duration::from_secs(30),
        || {
            let store = store.clone();
            async move {
                ch::gaps(&store, "web-1").await.unwrap().iter().all(|g| {
                    g.session_id != "web-1-s1" || g.reason != coral_colony::store::ingest::REPLACED
                })
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_the_days_older_than_the_cutoff() {
    let Some(server) = server().await else { return };
    let store = ClickHouse::open(&server.settings("coral")).await.unwrap();
    for page in pages("web-1", 1.0) {
        ch::store_page(&store, &page, SAMPLING).await.unwrap();
    }
    let now = std::time::SystemTime::now();
    let this_minute = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 60 * 60;
    let mut today = pages("web-2", 1.0).remove(0);
    today.buckets = vec![bucket(1, this_minute, SpanKind::Server, &[5.0, 6.0], 0)];
    today.spans.clear();
    today.max_seq = 1;
    ch::store_page(&store, &today, SAMPLING).await.unwrap();
    let hour_ago = now - std::time::Duration::from_secs(3600);
    let cutoffs = coral_colony::store::writer::Cutoffs {
        otel_spans: hour_ago,
        otel_operations: hour_ago,
        trace_spans: hour_ago,
        host_metrics: hour_ago,
        gaps: hour_ago,
        beyla_http: hour_ago,
        beyla_grpc: hour_ago,
        beyla_sql: hour_ago,
        beyla_traces: hour_ago,
    };
    let dropped = ch::retention(&store, &cutoffs).await.unwrap();
    // web-1's 4 bucket parts, 4 operations, 3 spans and a host sample are
    // of a day long gone (its gap is dated today).
    assert_eq!(dropped, 12);
    assert_eq!(
        count(&store, "otel_spans", true).await,
        1,
        "today's bucket stays"
    );
    assert_eq!(count(&store, "trace_spans", true).await, 0);
    assert_eq!(count(&store, "gaps", true).await, 1);
    assert_eq!(ch::retention(&store, &cutoffs).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_and_database_errors_name_the_setting_to_fix() {
    let Some(server) = server().await else { return };
    let mut wrong = server.settings("coral");
    wrong.password = "not-the-password".into();
    let error = ClickHouse::open(&wrong).await.err().unwrap();
    assert!(matches!(error, ClickHouseError::Login { .. }), "{error}");
    assert!(
        error.to_string().contains("storage.password_file"),
        "{error}"
    );

    let mut reader = server.settings("coral_new");
    reader.user = "reader".into();
    reader.password = PASSWORD.into();
    let error = ClickHouse::open(&reader).await.err().unwrap();
    assert!(matches!(error, ClickHouseError::Database { .. }), "{error}");
    assert!(error.to_string().contains("storage.database"), "{error}");

    let mut gone = server.settings("coral");
    gone.url = format!("http://127.0.0.1:{}", server.tcp_port + 1);
    drop(server);
    let error = ClickHouse::open(&gone).await.err().unwrap();
    assert!(
        matches!(error, ClickHouseError::Unreachable { .. }),
        "{error}"
    );
    assert!(error.to_string().contains(&gone.url), "{error}");
}

/// A colony on ClickHouse polls real agents fed by the OpenTelemetry SDK and
/// answers `coral query otel` and `coral agents` from ClickHouse; while the
/// server is down polls fail and say so, agents keep their rows, and after
/// it returns every span is counted once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colony_on_clickhouse_pulls_agents_and_rides_out_an_outage() {
    let Some(mut server) = server().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let storage = server.storage_yaml(dir.path(), "fleet");
    let colony = common::start_colony(&common::colony_config(
        &dir.path().join("colony"),
        "127.0.0.1:0",
        &format!("  poll:\n    interval: 1h\n{storage}"),
    ))
    .await;
    let mut agents = Vec::new();
    for id in ["web-1", "web-2"] {
        let cfg = common::agent_config(id, &dir.path().join(id), colony.addr, "");
        let agent = common::start_agent(&cfg).await;
        common::send_spans(&agent, "checkout", 300, 10).await;
        common::flush_agent(&agent, 300).await;
        agents.push(agent);
    }
    common::wait_registered(colony.addr, None, 2).await;
    let stop = tokio_util::sync::CancellationToken::new();
    for id in ["web-1", "web-2"] {
        colony.poller.poll_agent(id, &stop).await.unwrap();
    }
    assert_eq!(
        common::totals(colony.addr, None, "checkout").await,
        (600, 60)
    );

    server.kill();
    for agent in &agents {
        common::send_spans(agent, "checkout", 100, 0).await;
        common::flush_agent(agent, 400).await;
    }
    let failed = colony.poller.poll_agent("web-1", &stop).await;
    assert!(failed.is_err(), "a poll fails while ClickHouse is down");
    let mut c = common::client(colony.addr, None).await;
    let error = c
        .query_otel_summaries(coral_proto::colony::QueryOtelSummariesRequest {
            service_name: "checkout".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::Unavailable, "{error}");
    assert!(error.message().contains("ClickHouse"), "{error}");
    let agents_error = c
        .list_agents(coral_proto::colony::ListAgentsRequest {})
        .await
        .unwrap_err();
    assert_eq!(agents_error.code(), tonic::Code::Unavailable);
    assert!(
        agents_error.message().contains(&server.url()),
        "`coral agents` names the store it cannot reach: {agents_error}"
    );
    assert_eq!(
        store_up(&colony).await,
        0,
        "/metrics says the store is down"
    );

    server.restart().await;
    assert_eq!(store_up(&colony).await, 1);
    for id in ["web-1", "web-2"] {
        colony.poller.poll_agent(id, &stop).await.unwrap();
    }
    assert_eq!(
        common::totals(colony.addr, None, "checkout").await,
        (800, 60),
        "every span once, nothing lost in the outage"
    );
    let listed = c
        .list_agents(coral_proto::colony::ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agents.len(), 2);
    for a in &listed.agents {
        assert!(a.last_poll_error.is_empty(), "{a:?}");
        assert!(a.rows_received > 0, "{a:?}");
    }
    let services = c
        .list_services(coral_proto::colony::ListServicesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .services;
    assert_eq!(services.len(), 1);
    assert_eq!((services[0].requests, services[0].errors), (800, 60));
    let operations = c
        .query_operations(coral_proto::colony::QueryOperationsRequest {
            service_name: "checkout".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        operations.totals.iter().map(|o| o.total_spans).sum::<i64>(),
        800
    );
    let traces = c
        .list_traces(coral_proto::colony::ListTracesRequest {
            limit: 1_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(traces.traces.len(), 800, "every kept span's trace, once");
    let one = c
        .get_trace(coral_proto::colony::GetTraceRequest {
            trace_id: traces.traces[0].trace_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(one.found && one.span_count == 1, "{one:?}");
    for agent in agents {
        agent.shutdown().await;
    }
    colony.shutdown().await;

    // A colony restarted on the same ClickHouse knows its agents and
    // cursors from there.
    let colony = common::start_colony(&common::colony_config(
        &dir.path().join("colony"),
        "127.0.0.1:0",
        &format!("  poll:\n    interval: 1h\n{storage}"),
    ))
    .await;
    let mut c = common::client(colony.addr, None).await;
    let listed = c
        .list_agents(coral_proto::colony::ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agents.len(), 2, "agents restored from ClickHouse");
    assert_eq!(
        common::totals(colony.addr, None, "checkout").await,
        (800, 60)
    );
    colony.shutdown().await;
}

/// `coral_colony_store_up` on the colony's `/metrics`.
async fn store_up(colony: &coral_colony::RunningColony) -> u64 {
    let url = format!("http://{}/metrics", colony.admin_addr);
    let text = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .call()
            .unwrap()
            .body_mut()
            .read_to_string()
            .unwrap()
    })
    .await
    .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("coral_colony_store_up "))
        .unwrap_or_else(|| panic!("no coral_colony_store_up in\n{text}"))
        .trim()
        .parse()
        .unwrap()
}

/// A colony whose ClickHouse cannot be reached does not start, and says
/// which URL it tried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_colony_without_its_clickhouse_does_not_start() {
    let Some(server) = server().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let storage = server.storage_yaml(dir.path(), "fleet");
    let url = server.url();
    drop(server);
    let config = common::colony_config(&dir.path().join("colony"), "127.0.0.1:0", &storage);
    let error = coral_colony::start(&config).await.err().expect("no colony");
    let message = error.to_string();
    assert!(
        message.contains(&url) && message.contains("storage.url"),
        "{message}"
    );
}

/// The DDL and every query text run on current ClickHouse too (chdb).
#[test]
fn the_schema_and_queries_run_on_current_clickhouse() {
    let Some(python) = common::interop_python_with("chdb") else {
        return;
    };
    let target = Target {
        database: "coral".into(),
        cluster: None,
    };
    let mut statements = target.ddl();
    let table = target.table(&catalogue::OTEL_SPANS);
    statements.push(format!(
        "INSERT INTO {table} (agent_id, session_id, seq_id, bucket_time, service_name, span_kind, \
         error_count, total_spans, min_ms, max_ms, sum_ms, samples, sketch_accuracy, sketch_zero, \
         sketch_index, sketch_count) VALUES ('a', 's', 1, {t}, 'checkout', 'SERVER', 1, 3, 1, 9, 12, \
         '[]', 0.01, 0, [10, 20], [2, 1]), ('a', 's', 1, {t}, 'checkout', 'SERVER', 1, 3, 1, 9, 12, \
         '[]', 0.01, 0, [10, 20], [2, 1])",
        t = MINUTE * 1_000_000
    ));
    let sql = coral_colony::store::clickhouse::summaries_sql(&table, true, true)
        .replacen('?', "'checkout'", 1)
        .replacen('?', &((MINUTE - 60) * 1_000_000).to_string(), 1)
        .replacen('?', &((MINUTE + 60) * 1_000_000).to_string(), 1)
        .replacen('?', "'SERVER'", 1)
        .replacen('?', "'a'", 1);
    let operations = coral_colony::store::clickhouse::operations_sql(
        &target.table(&catalogue::OTEL_OPERATIONS),
        &["span_kind"],
    )
    .replacen('?', "'checkout'", 1)
    .replacen('?', "0", 1)
    .replacen('?', &i64::MAX.to_string(), 1)
    .replacen('?', "'SERVER'", 1);
    let services = coral_colony::store::clickhouse::services_sql(&table)
        .replacen('?', "0", 1)
        .replacen('?', &i64::MAX.to_string(), 1);
    let script = r#"
import json, sys
from chdb import session
s = session.Session()
for statement in json.load(sys.stdin)["ddl"]:
    s.query(statement)
for query in sys.argv[1:]:
    out = str(s.query(json.loads(query), "JSONEachRow")).strip()
    print(out if out else "null")
"#;
    let input = serde_json::json!({ "ddl": statements }).to_string();
    let output = common::run_python(
        &python,
        script,
        &[
            &serde_json::to_string(&sql).unwrap(),
            &serde_json::to_string(&services).unwrap(),
            &serde_json::to_string(&operations).unwrap(),
        ],
        &input,
    );
    let rows: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {output}")))
        .collect();
    assert_eq!(rows.len(), 3, "{output}");
    assert_eq!(
        rows[2],
        serde_json::Value::Null,
        "no operations were inserted: {output}"
    );
    let row = &rows[0];
    assert_eq!(rows[1]["total_spans"], 3, "{output}");
    assert_eq!(row["total_spans"], 3, "a duplicated row counts once: {row}");
    assert_eq!(row["bin_index"], serde_json::json!([10, 20]));
    assert_eq!(row["bin_count"], serde_json::json!([2, 1]));
}
