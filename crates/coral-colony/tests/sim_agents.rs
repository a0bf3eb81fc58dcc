//! The evaluation suite's real mode: the fault-injection simulator's
//! application sends every span as OTLP through three real agents (one per
//! simulated host, each reporting that host's name) to a real colony that
//! pulls them; the host samples go through the agents' host sampler (a
//! [`HostReplay`] source). `coral ask`'s answer over the colony's store is
//! then scored as in fast mode, and every trace id it cites must open with
//! `GetTrace`.
//!
//! Nothing is copied from the fast mode's store: the agents decide what to
//! keep (their default filters: errors, spans over 500 ms, 10 % of traces by
//! trace id), aggregate RED from 100 % of spans, and the colony merges what
//! it pulls. The test checks that too: every span sent is counted at the
//! colony, and every span an agent kept is there.
//!
//! `cargo test` runs four cases (a slow leaf dependency, one bad instance
//! among three, host CPU saturation, a healthy control), each also in fast
//! mode: the first cause and its host must be the same. The whole suite in
//! real mode, with its table:
//! `CORAL_SIM_REAL=all cargo test --workspace --test sim_agents -- --ignored --nocapture`.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{client, wait_for, wait_registered};
use coral_agent::host::HostReplay;
use coral_agent::{AgentOptions, RunningAgent};
use coral_config::{AgentConfig, AgentOverrides};
use coral_diagnose::Diagnosis;
use coral_diagnose::data::HostMinute;
use coral_diagnose::sim::app::AGENTS;
use coral_diagnose::sim::eval::{Case, CaseResult, judge, score, suite};
use coral_diagnose::sim::otlp::OtlpBatches;
use coral_diagnose::sim::run::{SimSink, SimSpan, generate};
use coral_diagnose::sim::{App, FaultKind, SimConfig};
use coral_proto::colony::{DiagnoseRequest, GetTraceRequest};
use coral_proto::otlp::collector::trace::v1::trace_service_client::TraceServiceClient;
use tokio_util::sync::CancellationToken;

/// Spans per export request.
const SPANS_PER_REQUEST: usize = 2_000;

/// The real mode's sink: OTLP requests per agent, and host samples queued
/// on each agent's host source.
struct OtlpSink {
    agents: HashMap<&'static str, OtlpBatches>,
    hosts: HashMap<&'static str, HostReplay>,
    host_samples: u64,
}

impl SimSink for OtlpSink {
    fn trace(&mut self, trace_id: &str, spans: &[SimSpan]) {
        // Each span goes to the agent of its instance's host.
        for s in spans {
            self.agents
                .entry(s.agent)
                .or_insert_with(|| OtlpBatches::new(SPANS_PER_REQUEST))
                .add_trace(trace_id, std::slice::from_ref(s));
        }
    }

    fn host(&mut self, h: HostMinute) {
        let agent = AGENTS
            .iter()
            .find(|a| **a == h.agent_id)
            .expect("the simulator's hosts are its agents");
        self.hosts[agent].push(common::host_sample(&h));
        self.host_samples += 1;
    }
}

fn agent_config(id: &str, dir: &Path, colony: std::net::SocketAddr) -> AgentConfig {
    // The default filters (errors, over 500 ms, 10 % of traces), as the
    // fast mode's SimConfig; data up to 80 minutes old stays (retention 3h).
    let yaml = format!(
        "agent:\n  id: {id}\n  data_dir: {dir}\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n  api:\n    endpoint: 127.0.0.1:0\n  admin:\n    endpoint: 127.0.0.1:0\n  colony:\n    endpoint: \"{colony}\"\n    heartbeat_interval: 1s\n  host_metrics:\n    enabled: true\n    interval: 1s\n  storage:\n    retention: 3h\n",
        dir = dir.display()
    );
    AgentConfig::from_yaml_str(
        &yaml,
        Path::new("sim-agent.yaml"),
        &HashMap::new(),
        &AgentOverrides::default(),
    )
    .unwrap_or_else(|e| panic!("sim agent config must be valid: {e}\n{yaml}"))
}

/// One case through real agents and a real colony.
async fn run_case(case: &Case) -> CaseResult {
    let dir = tempfile::tempdir().unwrap();
    let colony = common::colony_in(dir.path(), "").await;
    let hosts: HashMap<&'static str, HostReplay> =
        AGENTS.iter().map(|a| (*a, HostReplay::new())).collect();
    let mut agents: Vec<(&'static str, RunningAgent)> = Vec::new();
    for a in AGENTS {
        let options = AgentOptions {
            hostname: Some(a.to_owned()),
            host_samples: Some(hosts[a].clone()),
            ..Default::default()
        };
        let config = agent_config(a, &dir.path().join(a), colony.addr);
        let agent = coral_agent::start_with(&config, options)
            .await
            .expect("agent starts");
        agents.push((a, agent));
    }
    wait_registered(colony.addr, None, AGENTS.len()).await;

    // The data ends at the last closed minute.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let cfg = SimConfig {
        end: now - now.rem_euclid(60),
        ..SimConfig::default()
    };
    let end = cfg.end;
    let scenario = case.scenario.clone();
    let mut sink = tokio::task::spawn_blocking({
        let hosts = hosts.clone();
        move || {
            let mut sink = OtlpSink {
                agents: HashMap::new(),
                hosts,
                host_samples: 0,
            };
            generate(&App::shop(), &scenario, &cfg, &mut sink);
            for batches in sink.agents.values_mut() {
                batches.seal();
            }
            sink
        }
    })
    .await
    .unwrap();

    // Every request through the agents' OTLP gRPC endpoints, one stream of
    // requests per agent at a time.
    let mut sent: u64 = 0;
    let mut sends = tokio::task::JoinSet::new();
    for (name, agent) in &agents {
        let batches = sink.agents.get_mut(name).expect("every agent has spans");
        sent += batches.spans();
        let requests = batches.take_requests();
        let endpoint = format!("http://{}", agent.addrs.otlp_grpc.expect("otlp enabled"));
        sends.spawn(async move {
            let mut c = TraceServiceClient::connect(endpoint).await.unwrap();
            for r in requests {
                let answer = c.export(r).await.expect("export accepted").into_inner();
                if let Some(p) = answer.partial_success {
                    assert_eq!(p.rejected_spans, 0, "{}", p.error_message);
                }
            }
        });
    }
    while let Some(done) = sends.join_next().await {
        done.unwrap();
    }

    // Until every agent has its host samples, every span counted and every
    // kept span stored, and the colony has all of it.
    let expected_hosts = sink.host_samples;
    let replays = &hosts;
    wait_for(
        "host samples taken",
        Duration::from_secs(30),
        || async move { replays.values().all(|h| h.pending() == 0) },
    )
    .await;
    let mut kept: u64 = 0;
    for (name, agent) in &agents {
        agent.flush_all();
        let counters = agent.api.counters().clone();
        let spans = sink.agents[name].spans();
        wait_for("agent stored its spans", Duration::from_secs(60), || {
            let c = counters.to_proto(0);
            async move { c.spans_accepted == spans && c.spans_stored + c.spans_filtered == spans }
        })
        .await;
        kept += counters.to_proto(0).spans_stored;
    }
    let stop = CancellationToken::new();
    let store = &colony.colony.store;
    let counted = async || {
        let one = async |sql: &str| common::store_count(store, sql).await as u64;
        (
            one("SELECT coalesce(sum(total_spans), 0)::BIGINT FROM otel_spans").await,
            one("SELECT count(*) FROM trace_spans").await,
            one("SELECT count(*) FROM host_metrics").await,
        )
    };
    let (poller, stop) = (&colony.poller, &stop);
    wait_for(
        "the colony pulled everything",
        Duration::from_secs(120),
        || async {
            for a in AGENTS {
                poller.poll_agent(a, stop).await.ok();
            }
            let (spans, traces, host) = counted().await;
            spans >= sent && traces >= kept && host >= expected_hosts
        },
    )
    .await;
    let (spans, traces, host) = counted().await;
    assert_eq!(
        (spans, traces, host),
        (sent, kept, expected_hosts),
        "the colony holds every span counted, every kept span and every host sample once"
    );

    // `coral ask` over the colony's store, asked at the end of the data as
    // in fast mode.
    let store = colony.colony.store.clone();
    let question = DiagnoseRequest {
        question: case.question.clone(),
        ..Default::default()
    };
    let handle = tokio::runtime::Handle::current();
    let diagnosis: Diagnosis = tokio::task::spawn_blocking(move || {
        use coral_colony::ask::answer;
        use coral_colony::store::engine::Store;
        match store {
            Store::DuckDb(db) => {
                let conn = db.reader().unwrap();
                let data = coral_colony::store::diagnose::ColonyData::new(&conn);
                answer(&data, &question, end)
            }
            Store::ClickHouse(ch) => {
                let data =
                    coral_colony::store::clickhouse::diagnose::ClickHouseData::new(ch, handle);
                answer(&data, &question, end)
            }
        }
        .expect("the suite's questions are answered")
    })
    .await
    .unwrap();
    let mut opens = BTreeSet::new();
    let mut c = client(colony.addr, None).await;
    for id in diagnosis.evidence.iter().flat_map(|e| e.trace_ids.iter()) {
        let found = c
            .get_trace(GetTraceRequest {
                trace_id: id.clone(),
                max_spans: 0,
            })
            .await
            .is_ok_and(|r| r.into_inner().span_count > 0);
        if found {
            opens.insert(id.clone());
        }
    }
    for (_, agent) in agents {
        agent.shutdown().await;
    }
    colony.shutdown().await;
    judge(case, diagnosis, &|t: &str| opens.contains(t))
}

fn first_of(cases: &[Case], fault: FaultKind) -> Case {
    cases
        .iter()
        .find(|c| c.scenario.fault == fault)
        .cloned()
        .expect("the suite has every fault")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_sent_through_real_agents_are_named_and_a_healthy_control_is_not() {
    let cases = suite();
    for fault in [
        FaultKind::SlowLeaf,
        FaultKind::BadInstance,
        FaultKind::CpuSaturation,
        FaultKind::Healthy,
    ] {
        let case = first_of(&cases, fault);
        let real = run_case(&case).await;
        let fast = tokio::task::spawn_blocking({
            let case = case.clone();
            move || coral_diagnose::sim::eval::run_case(&case)
        })
        .await
        .unwrap();
        println!("real: {}\nfast: {}", real.summary(), fast.summary());
        assert!(real.problems.is_empty(), "{}", real.summary());
        match fault.truth() {
            Some(_) => {
                assert_eq!(real.service_rank, Some(1), "{}", real.summary());
                assert_eq!(real.operation_rank, Some(1), "{}", real.summary());
                // The same first cause, on the same host, as in fast mode.
                assert_eq!(real.causes.first(), fast.causes.first());
                assert_eq!(real.host_ok, fast.host_ok, "{}", real.summary());
            }
            None => assert!(real.causes.is_empty(), "{}", real.summary()),
        }
    }
}

/// The whole suite in real mode (`CORAL_SIM_REAL=all`), with its table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "the whole suite through real agents takes about half an hour; run it with CORAL_SIM_REAL=all"]
async fn the_whole_suite_through_real_agents() {
    if std::env::var("CORAL_SIM_REAL").as_deref() != Ok("all") {
        eprintln!("set CORAL_SIM_REAL=all to run the whole suite through real agents");
        return;
    }
    let mut results = Vec::new();
    for case in suite() {
        let r = run_case(&case).await;
        println!("{}", r.summary());
        results.push(r);
    }
    println!("{}", score(&results).markdown());
}
