//! `coral ask`'s data source on ClickHouse answers as on DuckDB: the same
//! pages stored in the embedded store (through the writer) and in a real
//! `clickhouse-server` (Debian's 18.16, started by the test) read back as
//! the same services, RED rows (counts exact, sketches and histograms merged
//! identically), traces (same picks, order and cuts), host samples and
//! coverage, and a whole `coral ask` gives the same diagnosis JSON.
//!
//! The pages: the fault-injection simulator's shop (a slow leaf dependency)
//! on three agents, a late part of one of its buckets and a newer host
//! sample, and Beyla's HTTP, gRPC and SQL histograms and spans of a `basket`
//! service on two agents (a series in two parts, a trace longer than the
//! per-trace cut, a seq_id that never arrived). ClickHouse gets every page
//! twice, its merges stopped: the duplicates are in the tables and count
//! nowhere.
//!
//! Needs `clickhouse-server` (a skip with a message where it is missing, a
//! failure with `CORAL_REQUIRE_CLICKHOUSE=1`, set by CI).

mod common;

use common::clickhouse::{Server, binary};
use common::pages::{self, everything, page};
use coral_colony::ask;
use coral_colony::catalogue;
use coral_colony::store::beyla::TraceSampling;
use coral_colony::store::clickhouse::diagnose::ClickHouseData;
use coral_colony::store::clickhouse::{self as ch, ClickHouse};
use coral_colony::store::diagnose::{ColonyData, MAX_SPANS_PER_TRACE};
use coral_colony::store::ingest::{Page, Stream};
use coral_diagnose::data::{
    KeepReason, Latency, RedRow, Source, TraceBatch, TraceFilter, TraceSelect,
};
use coral_diagnose::sim::{App, Decoys, FaultKind, Scenario, SimConfig, SimOutput, simulate};
use coral_diagnose::{DiagnosisData, Verdict, Window};
use coral_model::{Bucket, BucketKey, SpanKind, Stats};
use coral_proto::colony::DiagnoseRequest;
use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, BeylaTraceSpan};

const SAMPLING: TraceSampling = TraceSampling {
    rate: 1.0,
    slow_us: 500_000,
};

/// Spans of the long Beyla trace (more than the per-trace cut).
const LONG_TRACE_SPANS: usize = MAX_SPANS_PER_TRACE + 10;

fn slow_leaf() -> SimOutput {
    let scenario = Scenario {
        fault: FaultKind::SlowLeaf,
        magnitude: 150.0,
        seed: 7,
        decoys: Decoys::default(),
        fault_minutes: 10,
    };
    simulate(&App::shop(), &scenario, &SimConfig::default())
}

async fn server() -> Option<Server> {
    let bin = binary()?;
    Some(Server::start(&bin, "").await)
}

/// A second pull page of `first`'s agent: a late part of one of its
/// `checkout` buckets (an operation it has) and a newer sample of one of
/// its host minutes.
fn late_page(sim: &SimOutput, first: &Page) -> Page {
    let agent = first.agent_id.as_str();
    let row = sim
        .data
        .red("checkout", everything(sim))
        .unwrap()
        .into_iter()
        .find(|r| r.agent_id == agent && r.span_kind == SpanKind::Server)
        .expect("the agent serves checkout");
    let mut part = Bucket::new(BucketKey {
        minute: row.minute,
        service: "checkout".into(),
        kind: SpanKind::Server,
    });
    let mut op = Stats::new();
    for (i, ms) in [12.5, 40.0, 3_000.0].into_iter().enumerate() {
        let trace = format!("feed{i:028x}");
        part.stats.record(ms, i == 2, &trace);
        op.record(ms, i == 2, &trace);
    }
    part.operations.push((row.operation.clone(), op));
    let mut host = first.hosts[first.hosts.len() / 2].clone();
    host.cpu_percent += 7.5;
    host.load1 = 3.25;
    host.seq_id = first.max_seq + 2;
    let mut p = page(agent, Stream::Pull);
    p.start_seq = first.max_seq;
    p.max_seq = first.max_seq + 2;
    p.buckets = vec![part.to_proto(agent, first.max_seq + 1)];
    p.hosts = vec![host];
    p
}

/// A Beyla span of the `basket` service.
fn beyla_span(trace: &str, id: u64, parent: u64, name: &str, at_ns: i64) -> BeylaTraceSpan {
    BeylaTraceSpan {
        trace_id: trace.into(),
        span_id: format!("{id:016x}"),
        parent_span_id: if parent == 0 {
            String::new()
        } else {
            format!("{parent:016x}")
        },
        service_name: "basket".into(),
        span_name: name.into(),
        span_kind: "client".into(),
        start_time_unix_nano: at_ns,
        duration_us: 1_000,
        attributes_json: "{}".into(),
        ..Default::default()
    }
}

/// Beyla's pages of the `basket` service, from the minute `minute` on: two
/// on `node-a` (seq_id 3 never arrives; an HTTP series comes in two
/// parts) and one on `node-b` (a trace longer than the per-trace cut).
fn beyla_pages(minute: i64) -> Vec<Page> {
    let ns = |m: i64, ms: i64| (m * 1_000 + ms) * 1_000_000;
    let http =
        |m: i64, method: &str, route: &str, status: u32, ms: &[f64], seq: u64| BeylaHttpMetric {
            minute: m,
            service_name: "basket".into(),
            kind: "server".into(),
            http_method: method.into(),
            http_route: route.into(),
            http_status_code: status,
            latency: Some(pages::histogram(ms)),
            seq_id: seq,
            ..Default::default()
        };
    let mut a1 = page("node-a", Stream::Beyla);
    a1.max_seq = 7;
    a1.beyla.http = vec![
        http(minute, "POST", "/cart", 200, &[5.0, 20.0, 30.0], 1),
        http(minute, "POST", "/cart", 503, &[400.0], 2),
    ];
    a1.beyla.sql = vec![BeylaSqlMetric {
        minute,
        service_name: "basket".into(),
        sql_operation: "SELECT".into(),
        table_name: "carts".into(),
        db_system: "postgresql".into(),
        latency: Some(pages::histogram(&[2.0, 4.0, 60.0])),
        error_count: 1,
        seq_id: 4,
        ..Default::default()
    }];
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut root = beyla_span(trace, 1, 0, "POST /cart", ns(minute, 5));
    root.span_kind = "server".into();
    root.duration_us = 420_000;
    root.status_code = 503;
    root.is_error = true;
    root.attributes_json =
        r#"{"http.route":"/cart","service.version":"2.0.1","k8s.pod.name":"cart-7"}"#.into();
    root.seq_id = 5;
    let mut db = beyla_span(trace, 2, 1, "SELECT carts", ns(minute, 6));
    db.attributes_json =
        r#"{"db.system":"postgresql","db.query.text":"SELECT * FROM carts"}"#.into();
    db.seq_id = 6;
    let mut rpc = beyla_span(trace, 3, 1, "/inventory.Stock/Reserve", ns(minute, 7));
    rpc.status_code = 14;
    rpc.is_error = true;
    rpc.attributes_json = r#"{"rpc.system":"grpc","rpc.method":"Reserve"}"#.into();
    rpc.seq_id = 7;
    a1.beyla.spans = vec![root, db, rpc];

    let mut a2 = page("node-a", Stream::Beyla);
    a2.start_seq = 7;
    a2.max_seq = 9;
    a2.beyla.http = vec![
        http(minute, "POST", "/cart", 200, &[10.0], 8),
        http(minute + 60, "GET", "/cart/{id}", 200, &[1.0, 2.0], 9),
    ];

    let mut b = page("node-b", Stream::Beyla);
    let grpc = |status: u32, ms: &[f64], seq: u64| BeylaGrpcMetric {
        minute,
        service_name: "basket".into(),
        kind: "client".into(),
        grpc_method: "/inventory.Stock/Reserve".into(),
        grpc_status_code: status,
        rpc_system: "grpc".into(),
        latency: Some(pages::histogram(ms)),
        seq_id: seq,
        ..Default::default()
    };
    b.beyla.grpc = vec![grpc(0, &[3.0, 7.0], 1), grpc(14, &[90.0], 2)];
    let long = "0af7651916cd43dd8448eb211c80319c";
    let mut seq = 2;
    for i in 0..LONG_TRACE_SPANS as u64 {
        let (name, parent) = if i == 0 {
            ("POST /cart/checkout", 0)
        } else {
            ("SELECT items", 100)
        };
        // Children start in reverse order of their ids: the cut keeps the
        // earliest, not the first stored.
        let at = ns(minute, 20) + (LONG_TRACE_SPANS as i64 - i as i64) * 1_000;
        let mut s = beyla_span(
            long,
            100 + i,
            parent,
            name,
            if i == 0 { ns(minute, 10) } else { at },
        );
        s.duration_us = 2_000 + i as i64;
        seq += 1;
        s.seq_id = seq;
        b.beyla.spans.push(s);
    }
    b.max_seq = seq;
    vec![a1, a2, b]
}

/// Every page: the simulator's (each agent's, then a late one) and Beyla's.
fn all_pages(sim: &SimOutput) -> (Vec<coral_colony::store::writer::AgentRecord>, Vec<Page>) {
    let (agents, mut pages) = pages::sim_pages(sim);
    let late = late_page(sim, &pages[0]);
    pages.push(late);
    pages.extend(beyla_pages(sim.end - 10 * 60));
    (agents, pages)
}

async fn count(store: &ClickHouse, table: &str, final_: bool) -> u64 {
    let sql = format!(
        "SELECT count() FROM {}{}",
        store.target().qualified(table),
        if final_ { " FINAL" } else { "" }
    );
    store.client().query(&sql).fetch_one::<u64>().await.unwrap()
}

/// Runs `check` on a blocking thread (the ClickHouse source blocks on the
/// runtime), re-raising its panic.
async fn blocking(check: impl FnOnce() + Send + 'static) {
    if let Err(e) = tokio::task::spawn_blocking(check).await {
        std::panic::resume_unwind(e.into_panic());
    }
}

fn ask(question: &str) -> DiagnoseRequest {
    DiagnoseRequest {
        question: question.into(),
        ..Default::default()
    }
}

/// The trace filters compared: every selection, cut short and not, with
/// and without an operation, over all the data and the last 15 minutes
/// (and none at all).
fn filters(sim: &SimOutput, service: &str, operation: &str) -> Vec<TraceFilter> {
    let mut out = Vec::new();
    for window in [everything(sim), Window::new(sim.end - 15 * 60, sim.end)] {
        for select in [TraceSelect::Sampled, TraceSelect::Errors, TraceSelect::Any] {
            for limit in [2, usize::MAX] {
                for op in [None, Some(operation.to_owned())] {
                    out.push(TraceFilter {
                        window,
                        service: service.into(),
                        operation: op,
                        select,
                        limit,
                    });
                }
            }
        }
    }
    out.push(TraceFilter {
        limit: 0,
        ..out[0].clone()
    });
    out
}

/// The same data source answers of both engines, method by method.
fn assert_same_data(sim: &SimOutput, duck: &ColonyData<'_>, ch: &ClickHouseData) {
    let all = everything(sim);
    let services = duck.services(all).unwrap();
    assert!(services.iter().any(|s| s == "checkout"), "{services:?}");
    assert!(services.iter().any(|s| s == "basket"), "{services:?}");
    assert_eq!(ch.services(all).unwrap(), services);
    let recent = Window::new(sim.end - 5 * 60, sim.end);
    assert_eq!(ch.services(recent).unwrap(), duck.services(recent).unwrap());

    for service in &services {
        let rows = duck.red(service, all).unwrap();
        assert!(!rows.is_empty(), "{service}");
        assert_eq!(ch.red(service, all).unwrap(), rows, "{service}: RED rows");
    }
    let basket = duck.red("basket", all).unwrap();
    let post: Vec<&RedRow> = basket
        .iter()
        .filter(|r| r.operation == "POST /cart" && r.agent_id == "node-a")
        .collect();
    assert_eq!(post.len(), 1, "status codes and parts merge: {basket:?}");
    assert_eq!((post[0].requests, post[0].errors), (5, 1));
    assert_eq!(post[0].source, Source::Beyla);
    assert_eq!(post[0].host, "node-a");
    let Latency::Histogram(h) = &post[0].latency else {
        panic!("Beyla rows carry histograms")
    };
    assert_eq!(h.count, 5);
    for (op, errors) in [("/inventory.Stock/Reserve", 1), ("SELECT carts", 1)] {
        let r = basket.iter().find(|r| r.operation == op).unwrap();
        assert_eq!((r.span_kind, r.errors), (SpanKind::Client, errors), "{op}");
    }
    let late = duck.red("checkout", all).unwrap();
    assert!(
        late.iter()
            .any(|r| r.sample_trace_ids.iter().any(|t| t.starts_with("feed"))),
        "the late part's samples merged"
    );

    for (service, operation) in [("checkout", "POST /api/checkout"), ("basket", "POST /cart")] {
        for f in filters(sim, service, operation) {
            let d = duck.traces(&f).unwrap();
            let c = ch.traces(&f).unwrap();
            assert_eq!(c, d, "{f:?}");
        }
    }
    let any = |limit| TraceFilter {
        window: all,
        service: "basket".into(),
        operation: None,
        select: TraceSelect::Any,
        limit,
    };
    let batch: TraceBatch = ch.traces(&any(10)).unwrap();
    assert_eq!((batch.matched, batch.truncated), (2, false));
    let long = &batch.traces[1];
    assert_eq!(long.spans.len(), MAX_SPANS_PER_TRACE, "the per-trace cut");
    assert_eq!(
        long.spans[0].operation, "POST /cart/checkout",
        "earliest first"
    );
    let short = &batch.traces[0];
    assert_eq!(short.spans.len(), 3);
    assert!(
        short
            .spans
            .iter()
            .all(|s| s.keep_reason == KeepReason::Beyla)
    );
    assert_eq!(short.spans[0].http_status_code, 503);
    assert_eq!(short.spans[0].pod, "cart-7");
    assert_eq!(short.spans[1].db_system.as_deref(), Some("postgresql"));
    assert_eq!(short.spans[2].grpc_status_code, Some(14));
    let cut = ch.traces(&any(1)).unwrap();
    assert_eq!((cut.matched, cut.traces.len(), cut.truncated), (2, 1, true));

    let agents: Vec<String> = ["node-a", "node-b", "node-c", "nobody"]
        .map(String::from)
        .to_vec();
    let hosts = duck.hosts(&agents, all).unwrap();
    assert!(!hosts.is_empty());
    assert_eq!(ch.hosts(&agents, all).unwrap(), hosts);
    assert!(
        hosts.iter().any(|h| h.load1 == Some(3.25)),
        "the newer sample"
    );
    assert!(ch.hosts(&[], all).unwrap().is_empty());

    assert_eq!(ch.coverage(all).unwrap(), duck.coverage(all).unwrap());
}

/// The gaps the stores detected now: the same, detected at about the same
/// time (each store stamps its own).
fn assert_same_gaps(duck: &ColonyData<'_>, ch: &ClickHouseData) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let window = Window::new(now - 3_600, now + 3_600);
    let (d, c) = (duck.coverage(window).unwrap(), ch.coverage(window).unwrap());
    assert_eq!(c.agents, d.agents);
    let key = |g: &coral_diagnose::data::GapRow| {
        (g.agent_id.clone(), g.from_seq, g.to_seq, g.reason.clone())
    };
    assert_eq!(
        c.gaps.iter().map(key).collect::<Vec<_>>(),
        d.gaps.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(d.gaps.len(), 1, "seq_id 3 of node-a's Beyla rows: {d:?}");
    for (x, y) in c.gaps.iter().zip(&d.gaps) {
        assert!((x.detected_at - y.detected_at).abs() < 600, "{x:?} {y:?}");
    }
}

/// Whole diagnoses, as JSON, and a refusal.
fn assert_same_answers(sim: &SimOutput, duck: &ColonyData<'_>, ch: &ClickHouseData) {
    let d = ask::answer(duck, &ask("why is checkout slow?"), sim.end).unwrap();
    let c = ask::answer(ch, &ask("why is checkout slow?"), sim.end).unwrap();
    assert_eq!(d.verdict, Verdict::Regression);
    assert_eq!(d.causes[0].service, "card-validator");
    assert_eq!(
        coral_diagnose::render_json(&c),
        coral_diagnose::render_json(&d)
    );
    for question in ["why is basket slow?", "why is basket failing?"] {
        let d = ask::answer(duck, &ask(question), sim.end).unwrap();
        let c = ask::answer(ch, &ask(question), sim.end).unwrap();
        assert_eq!(
            coral_diagnose::render_json(&c),
            coral_diagnose::render_json(&d),
            "{question}"
        );
    }
    let d = ask::answer(duck, &ask("why is warehouse slow?"), sim.end).unwrap_err();
    let c = ask::answer(ch, &ask("why is warehouse slow?"), sim.end).unwrap_err();
    assert!(matches!(c, ask::AskError::Invalid(_)), "{c}");
    assert_eq!(c.to_string(), d.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clickhouse_source_answers_as_the_embedded_one_and_counts_duplicates_once() {
    let Some(server) = server().await else { return };
    let store = ClickHouse::open(&server.settings("coral")).await.unwrap();
    let duck = common::store();
    let sim = slow_leaf();
    let (agents, pages) = all_pages(&sim);

    // Merges held off: the duplicates stay in the tables and the reads
    // must exclude them by themselves.
    for table in catalogue::TABLES {
        let sql = format!("SYSTEM STOP MERGES {}", store.target().table(table));
        store.client().query(&sql).execute().await.unwrap();
    }
    for a in &agents {
        duck.tx.upsert_agent(a.clone());
        ch::upsert_agent(&store, a).await.unwrap();
    }
    for p in &pages {
        let d = duck.tx.store(p.clone()).await.unwrap();
        let c = ch::store_page(&store, p, SAMPLING).await.unwrap();
        assert_eq!(d.rejected, 0, "{:?}", d.reject_reason);
        assert_eq!((c.stored, c.rejected, &c.gaps), (d.stored, 0, &d.gaps));
    }
    // The cursors lost (a colony killed before writing them), every page
    // stored again.
    let cursors = store.target().table(&catalogue::CURSORS);
    let sql = format!("TRUNCATE TABLE {cursors}");
    store.client().query(&sql).execute().await.unwrap();
    for p in &pages {
        let again = ch::store_page(&store, p, SAMPLING).await.unwrap();
        assert_eq!(again.duplicates, 0, "without its cursor the page is new");
    }
    for table in [
        "otel_operations",
        "trace_spans",
        "host_metrics",
        "beyla_http_metrics",
        "beyla_traces",
    ] {
        let (raw, once) = (
            count(&store, table, false).await,
            count(&store, table, true).await,
        );
        assert!(
            raw > once && once > 0,
            "{table}: {raw} rows for {once} keys"
        );
    }

    let db = duck.db.clone();
    let data = ClickHouseData::new(store, tokio::runtime::Handle::current());
    blocking(move || {
        let conn = db.reader().unwrap();
        let duck = ColonyData::new(&conn);
        assert_same_data(&sim, &duck, &data);
        assert_same_gaps(&duck, &data);
        assert_same_answers(&sim, &duck, &data);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_clickhouse_store_answers_as_an_empty_embedded_one() {
    let Some(server) = server().await else { return };
    let store = ClickHouse::open(&server.settings("empty")).await.unwrap();
    let duck = common::store();
    let db = duck.db.clone();
    let data = ClickHouseData::new(store, tokio::runtime::Handle::current());
    blocking(move || {
        let conn = db.reader().unwrap();
        let duck = ColonyData::new(&conn);
        let w = Window::new(0, 4_000_000_000);
        assert!(data.services(w).unwrap().is_empty());
        assert!(data.red("x", w).unwrap().is_empty());
        assert!(data.hosts(&["a".into()], w).unwrap().is_empty());
        assert_eq!(data.coverage(w).unwrap(), duck.coverage(w).unwrap());
        let f = TraceFilter {
            window: w,
            service: "x".into(),
            operation: None,
            select: TraceSelect::Errors,
            limit: 10,
        };
        assert_eq!(data.traces(&f).unwrap(), TraceBatch::default());
        let request = ask("why is checkout slow?");
        let c = ask::answer(&data, &request, 1_795_000_000).unwrap_err();
        let d = ask::answer(&duck, &request, 1_795_000_000).unwrap_err();
        assert!(c.to_string().contains("no services are known yet"), "{c}");
        assert_eq!(c.to_string(), d.to_string());
    })
    .await;
}

/// The source's own queries run on current ClickHouse too (chdb).
#[test]
fn the_diagnosis_queries_run_on_current_clickhouse() {
    let Some(python) = common::interop_python_with("chdb") else {
        return;
    };
    let target = catalogue::clickhouse::Target {
        database: "coral".into(),
        cluster: None,
    };
    let queries = ch::diagnose::sql_examples(&target);
    let script = r#"
import json, sys
from chdb import session
s = session.Session()
doc = json.load(sys.stdin)
for statement in doc["ddl"]:
    s.query(statement)
for query in doc["queries"]:
    s.query(query, "JSONEachRow")
    print("ok")
"#;
    let input = serde_json::json!({ "ddl": target.ddl(), "queries": queries }).to_string();
    let output = common::run_python(&python, script, &[], &input);
    assert_eq!(output.lines().count(), queries.len(), "{output}");
}
