//! Beyla end to end: the agent runs a stand-in Beyla (a Python program that
//! reads the config the agent wrote and exports Beyla-shaped OTLP with the
//! OpenTelemetry Python SDK, see `coral-agent/tests/fixtures/beyla-standin`),
//! turns its OTLP into histograms and spans, and the colony pulls them.
//!
//! The stand-in needs the Python SDK and PyYAML (`.ci/run` makes a venv under
//! `$HOME/.cache/coral/venv-interop`; `CORAL_PYTHON` names another). Without
//! them the stand-in tests say so and pass, unless
//! `CORAL_REQUIRE_PYTHON_INTEROP=1` (set by CI).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{agent_config, client, colony_in, wait_for, wait_registered};
use coral_agent::{AgentOptions, RunningAgent};
use coral_beyla::caps::HostReadings;
use coral_model::{Histogram, Quantile};
use coral_proto::agent::agent_service_client::AgentServiceClient;
use coral_proto::agent::{GetStatusRequest, GetStatusResponse, QueryBeylaMetricsRequest};
use coral_proto::colony::{ListAgentsRequest, QueryBeylaRequest, QueryBeylaResponse};

/// The interop Python with the OpenTelemetry SDK and PyYAML (the stand-in
/// Beyla's), or a skip (a failure when CI requires it).
fn python_or_skip() -> Option<PathBuf> {
    common::interop_python_with(
        "yaml, opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http.metric_exporter",
    )
}

/// Writes an executable `beyla` into `dir` running `body` (a shell script).
/// A `beyla` body that waits until it is stopped.
const WAITING_BEYLA: &str = "trap 'exit 0' TERM\nwhile true; do sleep 0.1; done";

fn fake_beyla(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("beyla");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// A `beyla` that runs the stand-in in Beyla generation `generation`.
fn standin(dir: &Path, python: &Path, generation: &str) -> PathBuf {
    let script = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("../coral-agent/tests/fixtures/beyla-standin/beyla_standin.py");
    fake_beyla(
        dir,
        &format!(
            "STANDIN_GENERATION={generation} STANDIN_PERIODIC=0 STANDIN_EXPORTS=1 exec {} {} \"$@\"",
            python.display(),
            script.display()
        ),
    )
}

fn beyla_section(binary: &Path) -> String {
    format!(
        "beyla:\n  binary: {}\n  discovery:\n    services:\n      - name: checkout\n        open_port: 8080\n  restart:\n    backoff_initial: 50ms\n    stop_timeout: 5s\n",
        binary.display()
    )
}

/// Full, deterministic host readings (kernel 6.1, BTF, every capability).
fn full_host() -> HostReadings {
    HostReadings::new("6.1.0", true, u64::MAX >> 23)
}

async fn start_agent_with(
    config: &coral_config::AgentConfig,
    readings: HostReadings,
) -> RunningAgent {
    let mut options = AgentOptions::default();
    options.beyla.readings = Some(readings);
    coral_agent::start_with(config, options)
        .await
        .expect("agent starts")
}

async fn agent_client(agent: &RunningAgent) -> AgentServiceClient<tonic::transport::Channel> {
    AgentServiceClient::connect(format!("http://{}", agent.addrs.api))
        .await
        .expect("agent api reachable")
}

async fn agent_status(agent: &RunningAgent) -> GetStatusResponse {
    agent_client(agent)
        .await
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner()
}

/// Merged histograms per key, and totals, of a QueryBeyla response.
fn merged<K: Ord + Clone>(
    rows: impl Iterator<Item = (K, Histogram)>,
) -> std::collections::BTreeMap<K, Histogram> {
    let mut out = std::collections::BTreeMap::new();
    for (k, h) in rows {
        out.entry(k).or_insert_with(Histogram::default).merge(&h);
    }
    out
}

fn hist(p: &Option<coral_proto::common::LatencyHistogram>) -> Histogram {
    Histogram::from_proto(p.as_ref().expect("histogram")).expect("valid histogram")
}

/// Checks the stand-in's `checkout` scenario (one round) in a response.
fn assert_scenario(r: &QueryBeylaResponse) {
    let http = merged(r.http_metrics.iter().map(|m| {
        (
            (
                m.http_method.clone(),
                m.http_route.clone(),
                m.http_status_code,
            ),
            hist(&m.latency),
        )
    }));
    let count = |k: (&str, &str, u32)| {
        http.get(&(k.0.to_owned(), k.1.to_owned(), k.2))
            .map(|h| h.count)
    };
    assert_eq!(count(("GET", "/api/users/:id", 200)), Some(90), "{http:?}");
    assert_eq!(count(("GET", "/api/users/:id", 500)), Some(10));
    assert_eq!(count(("POST", "/api/orders", 201)), Some(20));
    let ok = &http[&("GET".to_owned(), "/api/users/:id".to_owned(), 200)];
    // 90 values of 28–32 ms, all in Beyla's (25 ms, 50 ms] bucket.
    assert_eq!(ok.counts[4], 90);
    let p50 = ok.quantile(0.5).unwrap();
    assert!(
        matches!(p50, Quantile::Value(v) if (28.0..=32.0).contains(&v)),
        "{p50:?}"
    );
    // The whole route: 100 requests, 10 of 280–320 ms; p95 falls in the
    // (250, 500] bucket and is clamped to the observed max.
    let mut route = ok.clone();
    route.merge(&http[&("GET".to_owned(), "/api/users/:id".to_owned(), 500)]);
    assert_eq!(route.count, 100);
    let p95 = route.quantile(0.95).unwrap().ms();
    assert!((250.0..=320.0 + 1e-9).contains(&p95), "{p95}");

    let grpc = merged(r.grpc_metrics.iter().map(|m| {
        (
            (m.grpc_method.clone(), m.grpc_status_code),
            hist(&m.latency),
        )
    }));
    let charge = "/payments.PaymentService/Charge".to_owned();
    assert_eq!(
        grpc.get(&(charge.clone(), 0)).map(|h| h.count),
        Some(40),
        "{grpc:?}"
    );
    assert_eq!(grpc.get(&(charge, 14)).map(|h| h.count), Some(5));

    let sql = merged(r.sql_metrics.iter().map(|m| {
        (
            (
                m.db_system.clone(),
                m.sql_operation.clone(),
                m.table_name.clone(),
            ),
            hist(&m.latency),
        )
    }));
    let select = sql
        .iter()
        .find(|((system, op, _), _)| system == "postgresql" && op == "SELECT")
        .unwrap_or_else(|| panic!("no postgresql SELECT row: {sql:?}"));
    assert_eq!(select.1.count, 50);
    assert_eq!(select.1.counts[1], 50, "4 ms values in (0, 5 ms]");
}

fn assert_spans(spans: &[coral_proto::common::BeylaTraceSpan]) {
    assert_eq!(spans.len(), 14, "8 traces, 14 spans");
    assert_eq!(spans.iter().filter(|s| s.is_error).count(), 3);
    let first: Vec<_> = spans
        .iter()
        .filter(|s| s.trace_id == "eba013aab682694f4d679cb66b6e7306")
        .collect();
    assert_eq!(first.len(), 2, "server span and its SQL child");
    let server = first.iter().find(|s| s.parent_span_id.is_empty()).unwrap();
    assert_eq!(server.span_name, "GET /api/users/:id");
    assert_eq!(server.span_kind, "server");
    assert_eq!(server.status_code, 200);
    assert_eq!(server.duration_us, 28_000);
    let child = first.iter().find(|s| !s.parent_span_id.is_empty()).unwrap();
    assert_eq!(child.parent_span_id, server.span_id);
    let attrs: serde_json::Value = serde_json::from_str(&child.attributes_json).unwrap();
    assert_eq!(
        attrs["db.query.text"], "SELECT * FROM orders WHERE id = ? AND name = ?",
        "query literals are obfuscated: {attrs}"
    );
    let server_attrs: serde_json::Value = serde_json::from_str(&server.attributes_json).unwrap();
    assert_eq!(
        server_attrs["http.response.status_code"], 200,
        "typed, not a string"
    );
}

async fn standin_end_to_end(generation: &str) {
    let Some(python) = python_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1s").await;
    let binary = standin(dir.path(), &python, generation);
    let config = agent_config(
        "beyla-host",
        &dir.path().join("agent"),
        colony.addr,
        &beyla_section(&binary),
    );
    let agent = start_agent_with(&config, full_host()).await;
    let mut api = agent_client(&agent).await;

    // The agent found, assessed and started Beyla.
    let status = api
        .get_status(GetStatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let beyla = status.beyla.expect("beyla status");
    assert_eq!(beyla.mode, "full", "{beyla:?}");
    assert_eq!(beyla.binary, binary.display().to_string());
    assert!(status.capabilities.contains(&"beyla".to_owned()));

    // Everything the stand-in exported arrives at the agent.
    let counters = agent.api.counters().clone();
    wait_for("the stand-in's export", Duration::from_secs(60), || {
        let c = counters.to_proto(0);
        async move { c.beyla_spans_received >= 14 && c.beyla_points_received >= 6 }
    })
    .await;
    agent.flush_all();
    wait_for("Beyla rows stored", Duration::from_secs(30), || {
        let c = counters.to_proto(0);
        async move { c.beyla_rows_stored >= 6 + 14 }
    })
    .await;
    let at_agent = api
        .query_beyla_metrics(QueryBeylaMetricsRequest {
            include_traces: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_scenario(&QueryBeylaResponse {
        http_metrics: at_agent.http_metrics,
        grpc_metrics: at_agent.grpc_metrics,
        sql_metrics: at_agent.sql_metrics,
        trace_spans: Vec::new(),
    });
    assert_spans(&at_agent.trace_spans);

    // Time mode, filters, one trace, max_traces.
    let ask = |req: QueryBeylaMetricsRequest| {
        let mut api = api.clone();
        async move { api.query_beyla_metrics(req).await.unwrap().into_inner() }
    };
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let grpc_only = ask(QueryBeylaMetricsRequest {
        start_time_unix_ms: now_ms - 600_000,
        metric_types: vec![coral_proto::agent::BeylaMetricType::Grpc as i32],
        ..Default::default()
    })
    .await;
    assert!(grpc_only.http_metrics.is_empty() && grpc_only.sql_metrics.is_empty());
    assert_eq!(
        grpc_only
            .grpc_metrics
            .iter()
            .map(|m| m.latency.as_ref().unwrap().count)
            .sum::<u64>(),
        45
    );
    let future = ask(QueryBeylaMetricsRequest {
        start_time_unix_ms: now_ms + 3_600_000,
        include_traces: true,
        ..Default::default()
    })
    .await;
    assert!(future.http_metrics.is_empty() && future.trace_spans.is_empty());
    let nobody = ask(QueryBeylaMetricsRequest {
        service_names: vec!["nobody".into()],
        start_time_unix_ms: 1,
        include_traces: true,
        ..Default::default()
    })
    .await;
    assert!(nobody.http_metrics.is_empty() && nobody.trace_spans.is_empty());
    let one = ask(QueryBeylaMetricsRequest {
        trace_id: "946c1fbe130717d6cc86ead1d0401968".into(),
        ..Default::default()
    })
    .await;
    assert_eq!(one.trace_spans.len(), 2);
    assert!(
        one.http_metrics.is_empty(),
        "a trace query returns no metrics"
    );
    let three = ask(QueryBeylaMetricsRequest {
        start_time_unix_ms: 1,
        include_traces: true,
        max_traces: 3,
        ..Default::default()
    })
    .await;
    let traces: std::collections::HashSet<_> =
        three.trace_spans.iter().map(|s| &s.trace_id).collect();
    assert_eq!(traces.len(), 3, "max_traces whole traces");

    // The colony pulls the Beyla stream and serves the same numbers.
    wait_registered(colony.addr, None, 1).await;
    let addr = colony.addr;
    wait_for(
        "the colony to pull the Beyla rows",
        Duration::from_secs(30),
        || async move {
            let mut c = client(addr, None).await;
            c.query_beyla(QueryBeylaRequest {
                include_traces: true,
                max_traces: 100,
                ..Default::default()
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                r.trace_spans.len() >= 14
                    && r.sql_metrics
                        .iter()
                        .map(|m| m.latency.as_ref().map_or(0, |h| h.count))
                        .sum::<u64>()
                        >= 50
            })
            .unwrap_or(false)
        },
    )
    .await;
    let mut c = client(colony.addr, None).await;
    let at_colony = c
        .query_beyla(QueryBeylaRequest {
            service_names: vec!["checkout".into()],
            include_traces: true,
            max_traces: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_scenario(&at_colony);
    assert_spans(&at_colony.trace_spans);
    assert!(
        at_colony
            .http_metrics
            .iter()
            .all(|m| m.agent_id == "beyla-host")
    );
    let one = c
        .query_beyla(QueryBeylaRequest {
            trace_id: "946c1fbe130717d6cc86ead1d0401968".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.trace_spans.len(), 2, "a trace is returned whole");
    assert!(one.http_metrics.is_empty());

    // On ClickHouse a page's rows are visible a moment before its cursor
    // (there is no transaction): wait for the cursor.
    wait_for("the Beyla cursor", Duration::from_secs(30), || {
        let mut c = c.clone();
        async move {
            let agents = c.list_agents(ListAgentsRequest {}).await.unwrap();
            agents.into_inner().agents[0].beyla_cursor_seq_id >= 20
        }
    })
    .await;
    let agents = c
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    let listed = agents.agents[0]
        .beyla
        .clone()
        .expect("Beyla reported to the colony");
    assert_eq!(listed.mode, "full");

    agent.shutdown().await;
    colony.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_beyla_v3_reaches_agent_and_colony_with_exact_numbers() {
    standin_end_to_end("v3").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_beyla_v2_reaches_agent_and_colony_with_exact_numbers() {
    standin_end_to_end("v2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standin_beyla_v1_reaches_agent_and_colony_with_exact_numbers() {
    standin_end_to_end("v1.9").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_beyla_leaves_the_agent_working_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-beyla");
    let config = agent_config(
        "no-beyla",
        &dir.path().join("agent"),
        "127.0.0.1:9".parse().unwrap(),
        &beyla_section(&missing),
    );
    let agent = start_agent_with(&config, full_host()).await;
    let status = agent_status(&agent).await;
    let beyla = status.beyla.unwrap();
    assert_eq!(beyla.state, "disabled");
    assert!(beyla.reason.contains("no-such-beyla"), "{}", beyla.reason);
    assert!(!status.capabilities.contains(&"beyla".to_owned()));
    assert!(status.capabilities.contains(&"otlp".to_owned()));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_modes_run_without_beyla_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    // A Beyla that would run if started.
    let binary = fake_beyla(dir.path(), WAITING_BEYLA);
    let mut config = agent_config(
        "forwarder",
        &dir.path().join("agent"),
        "127.0.0.1:9".parse().unwrap(),
        &beyla_section(&binary),
    );
    config.mode = coral_config::AgentMode::Forwarder;
    let agent = start_agent_with(&config, full_host()).await;
    let status = agent_status(&agent).await;
    let beyla = status.beyla.unwrap();
    assert_eq!(beyla.state, "disabled");
    assert!(
        beyla.reason.contains("agent.mode is forwarder"),
        "{}",
        beyla.reason
    );
    assert!(!status.capabilities.contains(&"beyla".to_owned()));
    agent.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_kernel_limits_beyla_and_the_colony_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "").await;
    // A Beyla that just waits: enough for the supervisor to report "running".
    let binary = fake_beyla(dir.path(), WAITING_BEYLA);
    let config = agent_config(
        "old-kernel",
        &dir.path().join("agent"),
        colony.addr,
        &beyla_section(&binary),
    );
    // Kernel 4.15 with CAP_SYS_ADMIN: HTTP only (seed matrix: 4.14–4.17).
    let readings = HostReadings::new("4.15.0-213-generic", true, 1 << 21);
    let agent = start_agent_with(&config, readings).await;
    let addr = colony.addr;
    wait_for(
        "Beyla running, reported to the colony",
        Duration::from_secs(30),
        || async move {
            let mut c = client(addr, None).await;
            c.list_agents(ListAgentsRequest {})
                .await
                .ok()
                .and_then(|r| r.into_inner().agents.into_iter().next())
                .and_then(|a| a.beyla)
                .is_some_and(|b| b.state == "running")
        },
    )
    .await;
    let mut c = client(colony.addr, None).await;
    let beyla = c
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner()
        .agents[0]
        .beyla
        .clone()
        .unwrap();
    assert_eq!(beyla.mode, "limited");
    assert_eq!(beyla.supported_protocols, vec!["http".to_owned()]);
    assert!(!beyla.tracing_enabled);
    assert!(
        beyla
            .summary
            .starts_with("Beyla limited (kernel 4.15), HTTP metrics only"),
        "{}",
        beyla.summary
    );
    // The config Beyla got instruments HTTP only and exports no traces.
    let written: Vec<_> = std::fs::read_dir(dir.path().join("agent/beyla"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    assert_eq!(written.len(), 1, "one config file while Beyla runs");
    assert!(
        written[0].contains("instrumentations:\n  - http\n"),
        "{}",
        written[0]
    );
    assert!(!written[0].contains("otel_traces_export"), "{}", written[0]);
    agent.shutdown().await;
    assert!(
        std::fs::read_dir(dir.path().join("agent/beyla"))
            .unwrap()
            .next()
            .is_none(),
        "the config file is removed when Beyla stops"
    );
    colony.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_the_beyla_section_restarts_beyla_with_the_new_config() {
    let dir = tempfile::tempdir().unwrap();
    // Each run copies the config it was given next to itself, then waits.
    let seen = dir.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    let binary = fake_beyla(
        dir.path(),
        &format!(
            "cp \"$2\" {}/run-$$.yaml\ntrap 'exit 0' TERM\nwhile true; do sleep 0.1; done",
            seen.display()
        ),
    );
    let file = dir.path().join("agent.yaml");
    let write = |route: &str| {
        std::fs::write(
            &file,
            format!(
                "agent:\n  id: reload\n  data_dir: {}\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n  api:\n    endpoint: 127.0.0.1:0\n  admin:\n    endpoint: 127.0.0.1:0\n{}  protocols:\n    http:\n      route_patterns: [\"{route}\"]\n",
                dir.path().join("agent").display(),
                beyla_section(&binary)
            ),
        )
        .unwrap();
    };
    write("/first/:id");
    let env = std::collections::HashMap::new();
    let config = coral_config::AgentConfig::load(Some(&file), &env, &Default::default()).unwrap();
    let mut options = AgentOptions::default();
    options.beyla.readings = Some(full_host());
    let path = file.clone();
    options.beyla.reload = Some(std::sync::Arc::new(move || {
        coral_config::AgentConfig::load(
            Some(&path),
            &std::collections::HashMap::new(),
            &Default::default(),
        )
        .map(|c| c.beyla)
        .map_err(|e| e.to_string())
    }));
    let agent = coral_agent::start_with(&config, options)
        .await
        .expect("agent starts");
    let runs = |needle: &'static str| {
        let seen = seen.clone();
        move || {
            let found = std::fs::read_dir(&seen)
                .unwrap()
                .filter_map(|e| std::fs::read_to_string(e.unwrap().path()).ok())
                .any(|text| text.contains(needle));
            async move { found }
        }
    };
    wait_for(
        "Beyla started with the first config",
        Duration::from_secs(30),
        runs("/first/:id"),
    )
    .await;
    // mtime resolution: make sure the rewrite is seen as a change.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    write("/second/:id");
    wait_for(
        "Beyla restarted with the changed config",
        Duration::from_secs(30),
        runs("/second/:id"),
    )
    .await;
    let status = agent.api.status().beyla.unwrap();
    assert_eq!(status.restarts, 0, "a reconfiguration is not a crash");
    agent.shutdown().await;
}
