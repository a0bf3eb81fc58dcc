//! The colony's reads on ClickHouse against a real `clickhouse-server`
//! (Debian's 18.16, started by the test on loopback ports) and on current
//! ClickHouse (chdb, in-process):
//!
//! - Beyla's rows and traces, kept spans and host samples stored in both
//!   engines (on ClickHouse a Beyla page twice, its cursor lost in
//!   between) answer `QueryBeyla`, `ListServices`, `GetTrace`, `ListTraces`
//!   and `QueryHostCorrelation` as the embedded DuckDB store does;
//! - every SELECT and ALTER the colony sent to that server, taken from its
//!   query log, runs on chdb with the same DDL.
//!
//! Needs `clickhouse-server` (a skip with a message where it is missing, a
//! failure with `CORAL_REQUIRE_CLICKHOUSE=1`, set by CI) and, for the chdb
//! replay, Python with `chdb` (`CORAL_PYTHON`; required with
//! `CORAL_REQUIRE_PYTHON_INTEROP=1`).

mod common;

use coral_colony::catalogue::clickhouse::Target;
use coral_colony::store::clickhouse::{self as ch, ClickHouse};
use coral_colony::store::ingest::Stream;

use common::clickhouse::{Server, server};
use common::pages::{MINUTE, SAMPLING, beyla_page, pages};

/// Beyla's rows, traces and host samples stored in both engines (on
/// ClickHouse some pages twice) answer every read the same; then every
/// statement the colony sent to this 18.16 server, taken from its query
/// log, runs on current ClickHouse too (chdb).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyla_traces_and_hosts_answer_as_the_embedded_store_on_any_clickhouse() {
    use coral_colony::store::engine::Store;
    use coral_proto::colony::{ListServicesRequest, ListTracesRequest, QueryBeylaRequest};
    let Some(server) = server().await else { return };
    let ch = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let duck = common::store();
    let mut all = Vec::new();
    for agent in ["web-1", "web-2"] {
        all.extend(pages(agent, 1.0));
        all.push(beyla_page(agent));
    }
    for page in &all {
        duck.tx.store(page.clone()).await.unwrap();
        ch::store_page(&ch, page, SAMPLING).await.unwrap();
    }
    // web-2's Beyla page again, its cursor lost first (a colony killed
    // between the insert and the cursor): its rows collapse.
    ch.client()
        .query(&format!(
            "ALTER TABLE {} DELETE WHERE agent_id = 'web-2' AND stream = 'beyla'",
            ch.target().qualified("cursors")
        ))
        .execute()
        .await
        .unwrap();
    let store = Store::ClickHouse(ch.clone());
    common::wait_for(
        "the cursor deletion",
        std::time::Duration::from_secs(30),
        || async {
            store
                .cursor("web-2", Stream::Beyla)
                .await
                .unwrap()
                .is_none()
        },
    )
    .await;
    let outcome = ch::store_page(&ch, &beyla_page("web-2"), SAMPLING)
        .await
        .unwrap();
    assert_eq!(
        outcome.stored, 7,
        "stored again, as a colony that lost its cursor would"
    );
    let (duck, ch) = (Store::DuckDb(duck.db.clone()), Store::ClickHouse(ch));
    let both = |s: &Store| s.clone();
    let beyla = QueryBeylaRequest {
        include_traces: true,
        ..Default::default()
    };
    let (d, c) = (
        both(&duck).beyla(beyla.clone()).await.unwrap(),
        both(&ch).beyla(beyla).await.unwrap(),
    );
    assert_eq!(d.http_metrics.len(), 4, "one row per agent and status");
    assert_eq!(c, d, "QueryBeyla");
    let by_trace = QueryBeylaRequest {
        trace_id: format!("{:032x}", 0xbe11a),
        ..Default::default()
    };
    let (d, c) = (
        duck.beyla(by_trace.clone()).await.unwrap(),
        ch.beyla(by_trace).await.unwrap(),
    );
    assert_eq!(d.trace_spans.len(), 4);
    assert_eq!(c, d, "QueryBeyla by trace id");
    let services = ListServicesRequest::default();
    let (d, c) = (
        duck.services(services).await.unwrap(),
        ch.services(services).await.unwrap(),
    );
    assert_eq!(
        d.iter().map(|s| s.source.as_str()).collect::<Vec<_>>(),
        ["beyla", "otlp"]
    );
    assert_eq!(c, d, "ListServices with Beyla");
    for id in [
        format!("{:032x}", 0xbe11a),
        format!("{:032x}", 4),
        "f".repeat(32),
    ] {
        let (d, c) = (
            duck.trace(id.clone(), 0).await.unwrap(),
            ch.trace(id, 0).await.unwrap(),
        );
        assert_eq!(c, d, "GetTrace");
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
        ListTracesRequest {
            service: "checkout".into(),
            operation: "POST /pay".into(),
            min_duration_us: 1,
            limit: 2,
            ..Default::default()
        },
    ] {
        let (d, c) = (
            duck.traces(req.clone(), window.0, window.1).await.unwrap(),
            ch.traces(req, window.0, window.1).await.unwrap(),
        );
        assert!(!d.traces.is_empty());
        assert_eq!(c, d, "ListTraces");
    }
    let (d, c) = (
        duck.host_correlation("checkout".into(), MINUTE - 60, MINUTE + 120)
            .await
            .unwrap(),
        ch.host_correlation("checkout".into(), MINUTE - 60, MINUTE + 120)
            .await
            .unwrap(),
    );
    assert!(d.rows.iter().any(|r| r.cpu_percent == Some(42.0)));
    assert_eq!(c, d, "QueryHostCorrelation");

    let Some(python) = common::interop_python_with("chdb") else {
        return;
    };
    replay_in_chdb(&python, &server).await;
}

/// Runs every SELECT and ALTER the server logged, against the colony's
/// tables, on chdb (current ClickHouse) with the same DDL.
async fn replay_in_chdb(python: &std::path::Path, server: &Server) {
    let admin = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let logged = || {
        let admin = admin.clone();
        async move {
            admin
                .client()
                .query(
                    "SELECT DISTINCT query FROM system.query_log \
                     WHERE exception = '' AND query LIKE '%`coral`.%' \
                     AND (query LIKE 'SELECT%' OR query LIKE 'ALTER%')",
                )
                .fetch_all::<String>()
                .await
                .unwrap()
        }
    };
    common::wait_for(
        "the query log",
        std::time::Duration::from_secs(30),
        || async { logged().await.iter().any(|q| q.contains("beyla_traces")) },
    )
    .await;
    let queries: Vec<String> = logged()
        .await
        .into_iter()
        .filter(|q| !q.contains("system."))
        .map(|q| {
            q.trim_end()
                .trim_end_matches("FORMAT RowBinary")
                .trim_end()
                .to_owned()
        })
        .collect();
    assert!(queries.len() >= 15, "the colony's statements: {queries:#?}");
    let target = Target {
        database: "coral".into(),
        cluster: None,
    };
    let script = r#"
import json, sys
from chdb import session
s = session.Session()
input = json.load(sys.stdin)
for statement in input["ddl"]:
    s.query(statement)
failed = []
for query in input["queries"]:
    try:
        s.query(query, "JSONEachRow")
    except Exception as e:
        failed.append({"query": query, "error": str(e)[:500]})
print(json.dumps(failed))
"#;
    let input = serde_json::json!({ "ddl": target.ddl(), "queries": queries }).to_string();
    let output = common::run_python(python, script, &[], &input);
    let failed: serde_json::Value = serde_json::from_str(output.trim()).unwrap();
    assert_eq!(
        failed,
        serde_json::json!([]),
        "statements that current ClickHouse refuses"
    );
}
