//! The colony's DuckDB as the diagnosis engine's data source: data written
//! through the colony's real writer (the path of every pulled or pushed
//! page) reads back as the engine's rows, and `coral ask` over it answers as
//! over the same data in memory.
//!
//! The fixture is the fault-injection simulator's application
//! (`coral_diagnose::sim`, a slow leaf dependency): its RED rows become
//! buckets with their per-operation sketches, its kept traces
//! `TelemetrySpan`s, its host samples `HostMetrics`, one page per agent.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::pages::{self, everything, page};
use common::store;
use coral_colony::ask;
use coral_colony::store::Database;
use coral_colony::store::diagnose::ColonyData;
use coral_colony::store::ingest::Stream;
use coral_colony::store::writer::WriterSender;
use coral_diagnose::data::{
    KeepReason, Latency, RedRow, Source, TraceFilter, TraceSelect, TraceSpan,
};
use coral_diagnose::sim::{App, Decoys, FaultKind, Scenario, SimConfig, SimOutput, simulate};
use coral_diagnose::{DiagnosisData, MemoryData, Request, Verdict, Window, diagnose};
use coral_model::{Histogram, SpanKind};
use coral_proto::colony::DiagnoseRequest;
use coral_proto::common::{BeylaHttpMetric, BeylaTraceSpan};

fn register(tx: &WriterSender, agent: &str, hostname: &str) {
    tx.upsert_agent(pages::agent(agent, hostname));
}

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

/// Writes what the simulator holds into the colony store, one page per
/// agent, through the writer.
async fn load(sim: &SimOutput, tx: &WriterSender) {
    let (agents, pages) = pages::sim_pages(sim);
    for a in agents {
        tx.upsert_agent(a);
    }
    for p in pages {
        let agent = p.agent_id.clone();
        let outcome = tx.store(p).await.unwrap();
        assert_eq!(outcome.rejected, 0, "{agent}: {:?}", outcome.reject_reason);
    }
}

fn summary(d: &coral_diagnose::Diagnosis) -> Vec<String> {
    d.causes
        .iter()
        .map(|c| {
            format!(
                "{} {} [{}] {} explains {} %: {}",
                c.service,
                c.operation.as_deref().unwrap_or(""),
                c.kind.as_str(),
                c.chain.join(" → "),
                c.explains_pct,
                c.claim
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ask_over_the_colony_store_answers_as_over_the_same_data_in_memory() {
    let sim = slow_leaf();
    let s = store();
    load(&sim, &s.tx).await;
    let conn = s.db.reader().unwrap();
    let colony = ColonyData::new(&conn);
    let all = everything(&sim);

    // The rows read back as they were written.
    assert_eq!(
        colony.services(all).unwrap(),
        sim.data.services(all).unwrap()
    );
    let mut mine = colony.red("checkout", all).unwrap();
    let mut theirs = sim.data.red("checkout", all).unwrap();
    let key = |r: &RedRow| {
        (
            r.minute,
            r.agent_id.clone(),
            r.span_kind,
            r.operation.clone(),
        )
    };
    mine.sort_by_key(key);
    theirs.sort_by_key(key);
    assert_eq!(mine.len(), theirs.len());
    for (a, b) in mine.iter().zip(&theirs) {
        assert_eq!(key(a), key(b));
        assert_eq!((a.requests, a.errors), (b.requests, b.errors));
        assert_eq!(a.latency, b.latency, "sketches round-trip");
        assert_eq!(a.host, b.agent_id, "hostname from the agents table");
    }
    let window = Window::new(sim.end - 15 * 60, sim.end);
    for select in [TraceSelect::Sampled, TraceSelect::Errors, TraceSelect::Any] {
        let filter = TraceFilter {
            window,
            service: "checkout".into(),
            operation: None,
            select,
            limit: 40,
        };
        let a = colony.traces(&filter).unwrap();
        let b = sim.data.traces(&filter).unwrap();
        assert_eq!(a.matched, b.matched, "{select:?}");
        assert_eq!(a.truncated, b.truncated, "{select:?}");
        let ids = |t: &coral_diagnose::data::TraceBatch| -> Vec<String> {
            t.traces.iter().map(|t| t.trace_id.clone()).collect()
        };
        assert_eq!(ids(&a), ids(&b), "{select:?}: same traces, same order");
        for (x, y) in a.traces.iter().zip(&b.traces) {
            assert_eq!(x.spans.len(), y.spans.len());
            let by_id: BTreeMap<&str, &TraceSpan> =
                y.spans.iter().map(|s| (s.span_id.as_str(), s)).collect();
            for s in &x.spans {
                let o = by_id[s.span_id.as_str()];
                assert_eq!(
                    (&s.service, &s.operation, s.kind, s.start_ns, s.duration_us),
                    (&o.service, &o.operation, o.kind, o.start_ns, o.duration_us)
                );
                assert_eq!((s.is_error, s.keep_reason), (o.is_error, o.keep_reason));
                assert_eq!((&s.agent_id, &s.host), (&o.agent_id, &o.host));
                assert_eq!(s.service_version, o.service_version);
                assert_eq!(s.db_statement, o.db_statement);
                assert_eq!(
                    s.attributes.get("http.route"),
                    o.attributes.get("http.route")
                );
            }
        }
        if select == TraceSelect::Sampled {
            assert!(
                a.traces.windows(2).all(|w| w[0].trace_id < w[1].trace_id),
                "sampled traces come in trace id order"
            );
            assert!(a.traces.iter().all(|t| {
                t.spans
                    .iter()
                    .any(|s| s.service == "checkout" && s.keep_reason == KeepReason::Sampled)
            }));
        }
    }
    let agents: Vec<String> = ["node-a", "node-b", "node-c"].map(String::from).to_vec();
    assert_eq!(
        colony.hosts(&agents, all).unwrap().len(),
        sim.data.hosts(&agents, all).unwrap().len()
    );
    let cov = colony.coverage(all).unwrap();
    let ids: BTreeSet<&str> = cov.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["node-a", "node-b", "node-c"]));
    assert!(cov.gaps.is_empty());

    // The engine answers the same over both.
    let known = sim.data.services(all).unwrap();
    let q = coral_diagnose::parse_question("why is checkout slow?", &known, sim.end).unwrap();
    let req = Request::from_question(&q, sim.end, &known).unwrap();
    let in_memory = diagnose(&sim.data, &req).unwrap();
    let from_store = diagnose(&colony, &req).unwrap();
    assert_eq!(in_memory.verdict, Verdict::Regression);
    assert_eq!(from_store.verdict, Verdict::Regression);
    assert_eq!(summary(&from_store), summary(&in_memory));
    let first = &from_store.causes[0];
    assert_eq!(first.service, "card-validator");
    assert_eq!(first.chain, ["checkout", "payments", "card-validator"]);
    for e in &from_store.evidence {
        for id in &e.trace_ids {
            assert!(sim.data.has_trace(id), "cited trace {id} is stored");
        }
    }

    // The RPC's glue: the question read against the store's services, the
    // flags winning over it.
    let rpc = |question: &str, service: &str| DiagnoseRequest {
        question: question.into(),
        service: service.into(),
        from_unix: in_memory.windows.incident.from,
        to_unix: in_memory.windows.incident.to,
        baseline_from_unix: in_memory.windows.baseline.from,
        baseline_to_unix: in_memory.windows.baseline.to,
        ..Default::default()
    };
    let d = ask::answer(&colony, &rpc("why is Checkout slow?", ""), sim.end).unwrap();
    assert_eq!(d.verdict, Verdict::Regression);
    assert_eq!(d.causes[0].service, "card-validator");
    let d = ask::answer(&colony, &rpc("why is the shop slow?", "checkout"), sim.end).unwrap();
    assert_eq!(d.target.service, "checkout");
    assert_eq!(d.causes[0].service, "card-validator");
    let err = ask::answer(&colony, &rpc("why is warehouse slow?", ""), sim.end).unwrap_err();
    assert!(matches!(err, ask::AskError::Invalid(_)), "{err}");
    let err = ask::answer(
        &colony,
        &rpc("why is chckout slow?", "nothing-like-it"),
        sim.end,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("no service named \"nothing-like-it\""),
        "{err}"
    );
    let err = ask::answer(&colony, &rpc("hello there", ""), sim.end).unwrap_err();
    assert!(err.to_string().contains("why is <service> slow?"), "{err}");
    let mut bad = rpc("why is checkout slow?", "");
    bad.symptom = "speed".into();
    let err = ask::answer(&colony, &bad, sim.end).unwrap_err();
    assert!(
        err.to_string().contains("latency, errors or traffic"),
        "{err}"
    );
    bad = rpc("why is checkout slow?", "");
    bad.to_unix = bad.from_unix;
    let err = ask::answer(&colony, &bad, sim.end).unwrap_err();
    assert!(err.to_string().contains("window is empty"), "{err}");
}

/// Beyla's HTTP series merge per (minute, agent, kind, route) across status
/// codes, fail from 500, and its spans are traces kept whole (`beyla`), on
/// the agent's host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beyla_rows_read_as_red_rows_and_traces() {
    const MINUTE: i64 = 1_795_000_020 / 60 * 60;
    let s = store();
    register(&s.tx, "web-2", "web-2.example");
    let histogram = |ms: &[f64]| {
        let bounds = vec![10.0, 50.0, 100.0, 500.0];
        let mut counts = vec![0u64; bounds.len() + 1];
        for v in ms {
            counts[bounds.partition_point(|b| b < v)] += 1;
        }
        Histogram::new(bounds, counts, ms.iter().sum(), None, None)
            .unwrap()
            .to_proto()
    };
    let http = |status: u32, ms: &[f64], seq: u64| BeylaHttpMetric {
        minute: MINUTE,
        service_name: "checkout".into(),
        kind: "server".into(),
        http_method: "POST".into(),
        http_route: "/api/checkout".into(),
        http_status_code: status,
        latency: Some(histogram(ms)),
        seq_id: seq,
        ..Default::default()
    };
    let span = |id: &str, parent: &str, name: &str, kind: &str, status: u32, seq: u64| {
        BeylaTraceSpan {
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            service_name: "checkout".into(),
            span_name: name.into(),
            span_kind: kind.into(),
            start_time_unix_nano: MINUTE * 1_000_000_000 + 5_000_000_000,
            duration_us: 40_000,
            status_code: status,
            is_error: status >= 500,
            attributes_json: r#"{"http.route":"/api/checkout","service.version":"1.4.2","k8s.pod.name":"checkout-1"}"#.into(),
            seq_id: seq,
            ..Default::default()
        }
    };
    let mut p = page("web-2", Stream::Beyla);
    p.beyla.http = vec![http(200, &[5.0, 20.0, 30.0], 1), http(503, &[400.0], 2)];
    p.beyla.spans = vec![
        span(
            "b000000000000001",
            "",
            "POST /api/checkout",
            "server",
            503,
            3,
        ),
        span(
            "b000000000000002",
            "b000000000000001",
            "SELECT orders",
            "client",
            0,
            4,
        ),
    ];
    p.max_seq = 4;
    let outcome = s.tx.store(p).await.unwrap();
    assert_eq!(outcome.rejected, 0, "{:?}", outcome.reject_reason);

    let conn = s.db.reader().unwrap();
    let colony = ColonyData::new(&conn);
    let window = Window::new(MINUTE, MINUTE + 60);
    assert_eq!(colony.services(window).unwrap(), ["checkout"]);
    let rows = colony.red("checkout", window).unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(r.source, Source::Beyla);
    assert_eq!(r.span_kind, SpanKind::Server);
    assert_eq!(r.operation, "POST /api/checkout");
    assert_eq!((r.requests, r.errors), (4, 1));
    assert_eq!(r.host, "web-2.example");
    let Latency::Histogram(h) = &r.latency else {
        panic!("Beyla rows carry histograms")
    };
    assert_eq!(h.count, 4);
    assert!((r.sum_ms - 455.0).abs() < 1e-9);

    let filter = |select| TraceFilter {
        window,
        service: "checkout".into(),
        operation: Some("POST /api/checkout".into()),
        select,
        limit: 10,
    };
    for select in [TraceSelect::Sampled, TraceSelect::Errors, TraceSelect::Any] {
        let batch = colony.traces(&filter(select)).unwrap();
        assert_eq!(batch.matched, 1, "{select:?}");
        assert!(!batch.truncated);
        let spans = &batch.traces[0].spans;
        assert_eq!(spans.len(), 2);
        let root = spans.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
        assert_eq!(root.keep_reason, KeepReason::Beyla);
        assert_eq!(root.kind, SpanKind::Server);
        assert_eq!(root.http_status_code, 503);
        assert!(root.is_error);
        assert_eq!(root.host, "web-2.example");
        assert_eq!(root.service_version, "1.4.2");
        assert_eq!(root.pod, "checkout-1");
        assert_eq!(root.attributes["http.route"], "/api/checkout");
    }
    let none = colony
        .traces(&TraceFilter {
            operation: Some("GET /nothing".into()),
            ..filter(TraceSelect::Any)
        })
        .unwrap();
    assert_eq!((none.matched, none.traces.len()), (0, 0));
}

/// The in-memory store and the colony's agree on an empty store too.
#[test]
fn an_empty_store_has_no_services_and_no_rows() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _conn) = Database::open(dir.path()).unwrap();
    let conn = db.reader().unwrap();
    let colony = ColonyData::new(&conn);
    let w = Window::new(0, 4_000_000_000);
    assert!(colony.services(w).unwrap().is_empty());
    assert!(colony.red("x", w).unwrap().is_empty());
    assert!(colony.hosts(&["a".into()], w).unwrap().is_empty());
    assert_eq!(
        colony.coverage(w).unwrap(),
        MemoryData::new().coverage(w).unwrap()
    );
    let err = ask::answer(
        &colony,
        &DiagnoseRequest {
            question: "why is checkout slow?".into(),
            ..Default::default()
        },
        1_795_000_000,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("no services are known yet"),
        "{err}"
    );
}
