//! The colony's store on a ClickHouse cluster of two shards (two Debian
//! `clickhouse-server` processes on loopback ports, each with its own data
//! directory and a `remote_servers` config naming both, and the ZooKeeper
//! their `ON CLUSTER` statements need):
//!
//! - every table is a `*_local` table on both shards behind a `Distributed`
//!   table; an agent's rows, cursor and gaps are on one shard, the fleet's
//!   on both, and pages stored twice still count once;
//! - retention drops old days on every shard, and the disk usage the
//!   colony reports covers both;
//! - a migration's progress is kept on the cluster: a run through the other
//!   shard finds everything already there;
//! - a column the tables lack is added on every shard at open;
//! - a cluster the servers do not have names `storage.cluster`.
//!
//! The engine-neutral tests run on such a cluster in
//! `tests/on_clickhouse_cluster.rs`. Skipped with a message when
//! `clickhouse-server` or ZooKeeper is missing (a failure with
//! `CORAL_REQUIRE_CLICKHOUSE=1`, as in CI).

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use coral_colony::catalogue::clickhouse::Target;
use coral_colony::catalogue::{TABLES, Table};
use coral_colony::store::clickhouse::{self as ch, ClickHouse, ClickHouseError};
use coral_colony::store::writer::Cutoffs;
use coral_model::SpanKind;

use common::clickhouse::{PASSWORD, Shared, shared};
use common::pages::{SAMPLING, beyla_page, bucket, pages, session_page};

const AGENTS: [&str; 8] = [
    "web-1", "web-2", "web-3", "web-4", "db-1", "db-2", "edge-1", "edge-2",
];

/// One value of `sql` on the server at `url`, as text.
fn on(url: &str, sql: &str) -> String {
    ureq::post(url)
        .header("X-ClickHouse-User", "coral")
        .header("X-ClickHouse-Key", PASSWORD)
        .send(sql)
        .unwrap_or_else(|e| panic!("{sql} at {url}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap()
}

/// Both shards' URLs.
fn shards(cluster: &Shared) -> [String; 2] {
    [
        cluster.url.clone(),
        cluster
            .other_shard
            .clone()
            .expect("a cluster has two shards"),
    ]
}

/// The agents with rows in `table`'s local table on the shard at `url`.
fn agents_on(url: &str, database: &str, table: &Table) -> BTreeSet<String> {
    on(
        url,
        &format!(
            "SELECT DISTINCT agent_id FROM `{database}`.`{}_local`",
            table.name
        ),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// One number from the `Distributed` tables of `database`.
async fn number(store: &ClickHouse, sql: &str) -> f64 {
    store
        .client()
        .query(sql)
        .fetch_one::<f64>()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The same number from the embedded store.
fn duck_number(duck: &common::Store, sql: &str) -> f64 {
    let conn = duck.db.reader().unwrap();
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agents_rows_live_on_one_shard_and_pages_stored_twice_count_once() {
    let Some(cluster) = shared() else { return };
    let store = ClickHouse::open(&cluster.settings("spread")).await.unwrap();
    let duck = common::store();
    for (i, agent) in AGENTS.into_iter().enumerate() {
        let mut all = pages(agent, 1.0 + i as f64);
        all.push(beyla_page(agent));
        for page in &all {
            duck.tx.store(page.clone()).await.unwrap();
            ch::store_page(&store, page, SAMPLING).await.unwrap();
        }
        // A colony killed between the insert and its cursor stores the
        // pages again.
        for page in &all {
            ch::store_page(&store, page, SAMPLING).await.unwrap();
        }
    }

    let every: BTreeSet<String> = AGENTS.iter().map(|a| a.to_string()).collect();
    for table in TABLES.iter().filter(|t| t.column("agent_id").is_some()) {
        let [a, b] = shards(cluster).map(|url| agents_on(&url, "spread", table));
        if table.name == "agents" || table.name.starts_with("beyla_g") {
            // No agent records and no gRPC rows were stored here.
            continue;
        }
        assert!(
            a.is_disjoint(&b),
            "{}: an agent's rows are on one shard: {a:?} / {b:?}",
            table.name
        );
        assert_eq!(
            a.union(&b).cloned().collect::<BTreeSet<_>>(),
            every,
            "{}: every agent's rows are somewhere",
            table.name
        );
        assert!(
            !a.is_empty() && !b.is_empty(),
            "{}: the fleet is spread over both shards: {a:?} / {b:?}",
            table.name
        );
    }

    for (what, ch_sql, duck_sql) in [
        (
            "spans in buckets",
            "SELECT toFloat64(sum(total_spans)) FROM otel_spans FINAL",
            "SELECT sum(total_spans)::DOUBLE FROM otel_spans",
        ),
        (
            "errors in operations",
            "SELECT toFloat64(sum(error_count)) FROM otel_operations FINAL",
            "SELECT sum(error_count)::DOUBLE FROM otel_operations",
        ),
        (
            "kept spans",
            "SELECT toFloat64(count()) FROM trace_spans FINAL",
            "SELECT count(*)::DOUBLE FROM trace_spans",
        ),
        (
            "host samples",
            "SELECT toFloat64(count()) FROM host_metrics FINAL",
            "SELECT count(*)::DOUBLE FROM host_metrics",
        ),
        (
            "gaps",
            "SELECT toFloat64(count()) FROM gaps FINAL",
            "SELECT count(*)::DOUBLE FROM gaps",
        ),
        (
            "Beyla HTTP requests",
            "SELECT toFloat64(sum(count)) FROM beyla_http_metrics FINAL",
            "SELECT sum(count)::DOUBLE FROM beyla_http_metrics",
        ),
        (
            "Beyla SQL errors",
            "SELECT toFloat64(sum(error_count)) FROM beyla_sql_metrics FINAL",
            "SELECT sum(error_count)::DOUBLE FROM beyla_sql_metrics",
        ),
        (
            "Beyla spans",
            "SELECT toFloat64(count()) FROM beyla_traces FINAL",
            "SELECT count(*)::DOUBLE FROM beyla_traces",
        ),
    ] {
        let (c, d) = (number(&store, ch_sql).await, duck_number(&duck, duck_sql));
        assert!(d > 0.0, "{what}: the pages hold some");
        assert_eq!(c, d, "{what}: each stored once on the cluster");
    }

    let cursors = ch::cursors(&store).await.unwrap();
    assert_eq!(
        cursors.len(),
        AGENTS.len() * 2,
        "a pull and a Beyla cursor per agent, each once: {cursors:?}"
    );

    let per_shard: u64 = shards(cluster)
        .iter()
        .map(|url| {
            on(
                url,
                "SELECT sum(bytes_on_disk) FROM system.parts WHERE database = 'spread' AND active",
            )
            .trim()
            .parse::<u64>()
            .unwrap()
        })
        .sum();
    assert_eq!(
        store.disk_bytes().await.unwrap(),
        per_shard,
        "the disk usage covers both shards"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_days_on_every_shard() {
    let Some(cluster) = shared() else { return };
    let store = ClickHouse::open(&cluster.settings("aging")).await.unwrap();
    let now = SystemTime::now();
    let this_minute = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / 60
        * 60;
    for agent in AGENTS {
        for page in pages(agent, 1.0) {
            ch::store_page(&store, &page, SAMPLING).await.unwrap();
        }
        let mut today = session_page(
            agent,
            coral_colony::store::ingest::Stream::Pull,
            &format!("{agent}-s1"),
            (9, 10),
        );
        today.buckets = vec![bucket(10, this_minute, SpanKind::Server, &[5.0, 6.0], 0)];
        ch::store_page(&store, &today, SAMPLING).await.unwrap();
    }
    let hour_ago = now - Duration::from_secs(3600);
    let cutoffs = Cutoffs {
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
    // Each agent's 4 old bucket parts, 4 operations, 3 spans and a host
    // sample (its gap and today's bucket stay).
    assert_eq!(dropped, 12 * AGENTS.len() as u64);
    let cutoff_micros = (this_minute - 3600) * 1_000_000;
    for url in shards(cluster) {
        let left = on(
            &url,
            "SELECT count(), min(bucket_time) FROM aging.otel_spans_local",
        );
        let mut left = left.split_whitespace().map(|n| n.parse::<i64>().unwrap());
        let (rows, oldest) = (left.next().unwrap(), left.next().unwrap());
        assert!(rows > 0, "{url} keeps today's buckets of its agents");
        assert!(oldest >= cutoff_micros, "{url} dropped the old day");
        assert_eq!(
            on(&url, "SELECT count() FROM aging.trace_spans_local").trim(),
            "0",
            "{url} dropped the old spans"
        );
    }
    assert_eq!(
        number(&store, "SELECT toFloat64(count()) FROM otel_spans FINAL").await,
        AGENTS.len() as f64
    );
    assert_eq!(ch::retention(&store, &cutoffs).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migration_through_either_shard_resumes_where_the_cluster_stands() {
    let Some(cluster) = shared() else { return };
    let duck = common::store();
    for agent in AGENTS {
        duck.tx
            .upsert_agent(common::pages::agent(agent, &format!("{agent}.example")));
        for page in pages(agent, 2.0) {
            duck.tx.store(page).await.unwrap();
        }
        duck.tx.store(beyla_page(agent)).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    common::stopped_copy(&duck, dir.path());

    let first = ClickHouse::open(&cluster.settings("moved")).await.unwrap();
    let report = coral_colony::migrate::migrate(dir.path(), &first, |_| {})
        .await
        .unwrap();
    let total = report.total();
    assert!(total.moved > 0 && total.moved == total.read, "{total:?}");

    let mut other = cluster.settings("moved");
    other.url = shards(cluster)[1].clone();
    let second = ClickHouse::open(&other).await.unwrap();
    let again = coral_colony::migrate::migrate(dir.path(), &second, |_| {})
        .await
        .unwrap();
    for table in &again.tables {
        assert_eq!(
            (table.moved, table.already_there),
            (0, table.read),
            "{}: the other shard's run knows it was copied",
            table.table
        );
    }
    assert_eq!(
        number(&second, "SELECT toFloat64(count()) FROM trace_spans FINAL").await,
        duck_number(&duck, "SELECT count(*)::DOUBLE FROM trace_spans")
    );
}

/// A column a cluster's tables lack (created by an older version) is added
/// on every shard and to the `Distributed` table when a colony opens it,
/// and new rows reach it through the `Distributed` table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_column_the_cluster_lacks_is_added_on_every_shard() {
    let Some(cluster) = shared() else { return };
    let settings = cluster.settings("older");
    let first = ClickHouse::open(&settings).await.unwrap();
    let on_cluster = format!(" ON CLUSTER {}", common::clickhouse::CLUSTER);
    for table in ["beyla_http_metrics_local", "beyla_http_metrics"] {
        first
            .client()
            .query(&format!(
                "ALTER TABLE older.{table}{on_cluster} DROP COLUMN http_route"
            ))
            .execute()
            .await
            .unwrap();
    }
    let store = ClickHouse::open(&settings).await.unwrap();
    let has_route = "SELECT count() FROM system.columns WHERE database = 'older' \
         AND table IN ('beyla_http_metrics_local', 'beyla_http_metrics') \
         AND name = 'http_route'";
    for url in shards(cluster) {
        assert_eq!(on(&url, has_route).trim(), "2", "at {url}");
    }
    let tx = coral_colony::store::writer::WriterSender::clickhouse(
        store.clone(),
        SAMPLING,
        Default::default(),
    );
    for agent in AGENTS {
        tx.store(beyla_page(agent)).await.unwrap();
    }
    assert_eq!(
        number(
            &store,
            "SELECT toFloat64(count()) FROM beyla_http_metrics FINAL WHERE http_route = '/pay'"
        )
        .await,
        number(
            &store,
            "SELECT toFloat64(count()) FROM beyla_http_metrics FINAL"
        )
        .await,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_the_servers_do_not_have_names_the_setting_to_fix() {
    let Some(cluster) = shared() else { return };
    let mut wrong = cluster.settings("nowhere");
    wrong.cluster = Some("elsewhere".into());
    let error = ClickHouse::open(&wrong).await.err().unwrap();
    assert!(matches!(error, ClickHouseError::Cluster { .. }), "{error}");
    let text = error.to_string();
    assert!(
        text.contains("storage.cluster") && text.contains("elsewhere"),
        "{text}"
    );
}

/// What a cluster adds to the schema and the queries (`ON CLUSTER`,
/// `Distributed` tables, the `cluster` table function) parses on current
/// ClickHouse (chdb, which has no cluster to run them on; the statements
/// without a cluster run there in `tests/clickhouse.rs`).
#[test]
fn the_cluster_statements_parse_on_current_clickhouse() {
    let Some(python) = common::interop_python_with("chdb") else {
        return;
    };
    let target = Target {
        database: "coral".into(),
        cluster: Some("two".into()),
    };
    let mut statements = target.ddl();
    statements.extend(target.create_table(
        "migration_progress",
        "(`source` String, `version` UInt64) ENGINE = ReplacingMergeTree(`version`) ORDER BY (`source`)",
        "cityHash64(`source`)",
    ));
    statements.push(format!(
        "SELECT partition, sum(rows) AS rows FROM {} WHERE database = 'coral' AND active GROUP BY partition",
        target.parts()
    ));
    statements.push(format!(
        "{} DROP PARTITION 20200101",
        target.alter(&coral_colony::catalogue::TRACE_SPANS)
    ));
    // A column added to the tables an older version created, in both forms.
    for (_, alter) in target.column_holders(&coral_colony::catalogue::TRACE_SPANS) {
        for if_not_exists in [false, true] {
            statements.push(Target::add_column(
                &alter,
                "http_route",
                "String",
                Some("''"),
                if_not_exists,
            ));
        }
    }
    assert!(
        statements
            .iter()
            .filter(|s| s.contains("ON CLUSTER `two`"))
            .count()
            > TABLES.len(),
        "{statements:#?}"
    );
    let script = r#"
import json, sys
from chdb import session
s = session.Session()
for statement in json.load(sys.stdin):
    try:
        s.query("EXPLAIN AST " + statement)
        print("ok")
    except Exception as e:
        print(json.dumps({"statement": statement, "error": str(e)}))
"#;
    let input = serde_json::to_string(&statements).unwrap();
    let output = common::run_python(&python, script, &[], &input);
    let failed: Vec<&str> = output.lines().filter(|l| *l != "ok").collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert_eq!(output.lines().count(), statements.len(), "{output}");
}
