//! Two colonies over one fleet, as processes on one ClickHouse: agents
//! register with one of them, each colony polls its share (rendezvous
//! hashing over the live colonies), one colony is killed (SIGKILL) while it
//! drains an agent and the agents keep receiving spans, and the survivor
//! takes its agents over: afterwards every count is exact, nothing lost,
//! nothing doubled; an agent that pushes (`forwarder`) moves to its
//! fallback colony when its colony dies; and every colony shows why an
//! agent's polls fail, not only the one that polls it. Skipped, with a message, without
//! `clickhouse-server` (a failure with `CORAL_REQUIRE_CLICKHOUSE=1`, as in
//! CI).

#[path = "../../coral-colony/tests/common/clickhouse.rs"]
#[allow(dead_code)]
mod clickhouse;
mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::Duration;

use common::process::kill;
use common::{coral, free_port, json, post_traces, spans_json, wait_for};

/// Spans each agent receives before the kill, and again after it.
const SPANS: u64 = 1_200;

/// A running agent process and its OTLP/HTTP address.
struct Agent {
    child: Child,
    http: String,
}

fn start_agent(dir: &Path, id: &str, colony: &str, fallback: &str) -> Agent {
    start_agent_in(dir, id, "agent", colony, fallback)
}

/// An agent in `mode` (`agent` is polled; `forwarder` pushes).
fn start_agent_in(dir: &Path, id: &str, mode: &str, colony: &str, fallback: &str) -> Agent {
    start_agent_with(dir, id, mode, colony, fallback, "")
}

/// [`start_agent_in`] with `extra` lines under `agent.colony`.
fn start_agent_with(
    dir: &Path,
    id: &str,
    mode: &str,
    colony: &str,
    fallback: &str,
    extra: &str,
) -> Agent {
    let home = dir.join(id);
    std::fs::create_dir_all(&home).unwrap();
    let yaml = home.join("agent.yaml");
    std::fs::write(
        &yaml,
        format!(
            "agent:\n  id: {id}\n  mode: {mode}\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n    filters:\n      - sample_rate: 1.0\n  api:\n    endpoint: 127.0.0.1:0\n  admin:\n    endpoint: 127.0.0.1:0\n  host_metrics:\n    enabled: false\n  colony:\n    endpoint: {colony}\n    fallback_endpoints: [\"{fallback}\"]\n    heartbeat_interval: 1s\n{extra}"
        ),
    )
    .unwrap();
    let mut child = coral()
        .args(["agent", "serve", "--config"])
        .arg(&yaml)
        .env("CORAL_HOME", &home)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(
            std::fs::File::create(home.join("agent.log")).unwrap(),
        ))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("otlp-http="))
        .map(|a| format!("http://{a}"))
        .unwrap_or_else(|| panic!("no OTLP/HTTP address in {line:?}"));
    Agent { child, http }
}

fn start_colony(dir: &Path, id: &str, api: &str, storage: &str) -> Child {
    let yaml = dir.join(format!("{id}.yaml"));
    std::fs::write(
        &yaml,
        format!(
            "colony:\n  id: {id}\n  data_dir: {}\n  api:\n    endpoint: {api}\n  poll:\n    interval: 1s\n    page_size: 40\n    lease_interval: 1s\n{storage}",
            dir.join(id).display()
        ),
    )
    .unwrap();
    let child = coral()
        .args(["colony", "serve", "--config"])
        .arg(&yaml)
        .env("CORAL_HOME", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::from(
            std::fs::File::create(dir.join(format!("{id}.log"))).unwrap(),
        ))
        .spawn()
        .unwrap();
    wait_for("colony up", Duration::from_secs(60), || {
        common::run(&["agents", "--colony", api]).0 == Some(0)
    });
    child
}

/// `coral agents -o json` at `colony`, by agent id: (cursor, latest,
/// polled by).
fn agents(colony: &str) -> std::collections::BTreeMap<String, (u64, u64, String)> {
    listing(colony)
        .into_iter()
        .map(|(id, (cursor, latest, by, _))| (id, (cursor, latest, by)))
        .collect()
}

/// `coral agents -o json` at `colony`, by agent id: (cursor, latest,
/// polled by, health).
fn listing(colony: &str) -> std::collections::BTreeMap<String, (u64, u64, String, String)> {
    let v = json(&["agents", "--colony", colony, "-o", "json"]);
    v["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["agent_id"].as_str().unwrap().to_owned(),
                (
                    a["cursor_seq_id"].as_u64().unwrap_or(0),
                    a["agent_latest_seq_id"].as_u64().unwrap_or(0),
                    a["polled_by"].as_str().unwrap_or_default().to_owned(),
                    a["health"].as_str().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect()
}

/// One number from the fleet's ClickHouse (each row key once: `FINAL`).
fn count(url: &str, sql: &str) -> u64 {
    count_in(url, "fleet", sql)
}

/// One number from `database` of the ClickHouse at `url`.
fn count_in(url: &str, database: &str, sql: &str) -> u64 {
    let text = ureq::post(format!("{url}/?database={database}"))
        .header("X-ClickHouse-User", "coral")
        .header("X-ClickHouse-Key", clickhouse::PASSWORD)
        .send(sql)
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap();
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{sql}: {e}: {text}"))
}

#[test]
fn a_colony_killed_mid_poll_hands_its_agents_over_and_every_count_is_exact() {
    let Some(binary) = clickhouse::binary() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(clickhouse::Server::start(&binary, ""));
    let dir = tempfile::tempdir().unwrap();
    let storage = server.storage_yaml(dir.path(), "fleet");
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    // Agent ids each colony owns while both live, all registered with a.
    let both = ["colony-a".to_owned(), "colony-b".to_owned()];
    let mut ids: Vec<String> = Vec::new();
    for owner in ["colony-a", "colony-a", "colony-b", "colony-b"] {
        let id = (0..)
            .map(|n| format!("web-{n}"))
            .find(|id| !ids.contains(id) && coral_colony::fleet::owner(id, &both) == Some(owner))
            .unwrap();
        ids.push(id);
    }
    let mut colony_a = start_colony(dir.path(), "colony-a", &a, &storage);
    let mut colony_b = start_colony(dir.path(), "colony-b", &b, &storage);
    let mut fleet: Vec<Agent> = ids
        .iter()
        .map(|id| start_agent(dir.path(), id, &a, &b))
        .collect();
    for (n, agent) in fleet.iter().enumerate() {
        // Ids from 1: an all-zero trace id is invalid, and dropped.
        let first = n as u64 * 10 * SPANS + 1;
        for part in 0..4 {
            post_traces(
                &agent.http,
                spans_json("shop", first + part * SPANS / 4, SPANS / 4, 10),
            );
        }
    }

    // Both colonies list the whole fleet and split it.
    wait_for(
        "both colonies list every agent",
        Duration::from_secs(60),
        || agents(&a).len() == ids.len() && agents(&b).len() == ids.len(),
    );
    let by_a = agents(&a);
    for (id, (_, _, polled_by)) in &by_a {
        assert_eq!(
            Some(polled_by.as_str()),
            coral_colony::fleet::owner(id, &both),
            "{by_a:?}"
        );
    }
    let listed = json(&["agents", "--colony", &b, "-o", "json"]);
    assert_eq!(listed["colonies"], serde_json::json!(both));
    // b neither polls a's agents nor hears their heartbeats: it shows them
    // healthy from what a records of them in the shared store.
    wait_for(
        "every agent healthy at colony b",
        Duration::from_secs(30),
        || {
            listing(&b)
                .values()
                .all(|(_, _, _, health)| health == "healthy")
        },
    );

    // Colony a dies while draining one of its agents.
    let draining = std::cell::Cell::new(false);
    wait_for("colony a draining", Duration::from_secs(120), || {
        let now = agents(&a);
        let mid = now
            .values()
            .any(|(at, latest, by)| by == "colony-a" && *at > 0 && at < latest);
        draining.set(mid);
        mid || now
            .values()
            .all(|(at, latest, _)| *latest > 0 && at == latest)
    });
    kill(&mut colony_a, "-KILL");
    let killed = std::time::Instant::now();
    assert!(
        draining.get(),
        "colony a was killed mid-drain (raise SPANS if it drained too fast)"
    );
    // The agents keep receiving spans.
    for (n, agent) in fleet.iter().enumerate() {
        let first = n as u64 * 10 * SPANS + 1 + SPANS;
        post_traces(&agent.http, spans_json("shop", first, SPANS, 10));
    }
    let total = 2 * SPANS * ids.len() as u64;
    wait_for(
        "colony b drained every agent",
        Duration::from_secs(180),
        || {
            let now = agents(&b);
            now.len() == ids.len()
                && now
                    .values()
                    .all(|(at, latest, by)| by == "colony-b" && *latest > 2 * SPANS && at == latest)
        },
    );
    eprintln!(
        "colony b drained the fleet {:?} after the kill",
        killed.elapsed()
    );
    let listed = json(&["agents", "--colony", &b, "-o", "json"]);
    assert_eq!(listed["colonies"], serde_json::json!(["colony-b"]));
    // The agents' heartbeats moved to b (their fallback) when a died.
    wait_for("heartbeats at colony b", Duration::from_secs(60), || {
        listing(&b)
            .values()
            .all(|(_, _, _, health)| health == "healthy")
    });
    let services = json(&["query", "services", "--colony", &b, "-o", "json"]);
    let shop = services["services"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["service"] == "shop" || s["service_name"] == "shop")
        .unwrap_or_else(|| panic!("{services}"));
    assert_eq!(shop["requests"].as_u64(), Some(total), "{shop}");
    assert_eq!(shop["errors"].as_u64(), Some(total / 10), "{shop}");
    let url = server.url();
    assert_eq!(count(&url, "SELECT count() FROM trace_spans FINAL"), total);
    assert_eq!(
        count(
            &url,
            "SELECT count() FROM (SELECT DISTINCT agent_id, seq_id FROM trace_spans)"
        ),
        total,
        "each span once"
    );
    assert_eq!(
        count(&url, "SELECT sum(total_spans) FROM otel_spans FINAL"),
        total
    );
    assert_eq!(count(&url, "SELECT count() FROM gaps FINAL"), 0);

    kill(&mut colony_b, "-TERM");
    for agent in &mut fleet {
        kill(&mut agent.child, "-TERM");
    }
}

/// A pushing agent (`forwarder`) whose colony dies pushes to its fallback:
/// the rows it received before and after the kill are all stored, once.
#[test]
fn a_pushing_agent_moves_to_its_fallback_colony() {
    let Some(binary) = clickhouse::binary() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(clickhouse::Server::start(&binary, ""));
    let dir = tempfile::tempdir().unwrap();
    let storage = server.storage_yaml(dir.path(), "pushed");
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let mut colony_a = start_colony(dir.path(), "colony-a", &a, &storage);
    let mut colony_b = start_colony(dir.path(), "colony-b", &b, &storage);
    let mut agent = start_agent_in(dir.path(), "edge-1", "forwarder", &a, &b);
    let url = server.url();
    let spans = |sql: &str| count_in(&url, "pushed", sql);

    post_traces(&agent.http, spans_json("edge", 1, SPANS, 10));
    wait_for("the first spans stored", Duration::from_secs(60), || {
        spans("SELECT sum(total_spans) FROM otel_spans FINAL") == SPANS
    });
    kill(&mut colony_a, "-KILL");
    post_traces(&agent.http, spans_json("edge", SPANS + 1, SPANS, 10));
    wait_for(
        "the spans after the kill stored through colony b",
        Duration::from_secs(120),
        || spans("SELECT sum(total_spans) FROM otel_spans FINAL") == 2 * SPANS,
    );
    assert_eq!(
        spans("SELECT count() FROM (SELECT DISTINCT agent_id, seq_id FROM trace_spans)"),
        spans("SELECT count() FROM trace_spans FINAL"),
        "each kept span once"
    );
    let log = std::fs::read_to_string(dir.path().join("edge-1/agent.log")).unwrap();
    assert!(
        log.contains("pushing to the next colony of the fleet"),
        "the agent says where it pushes now:\n{log}"
    );

    kill(&mut colony_b, "-TERM");
    kill(&mut agent.child, "-TERM");
}

/// An agent its colony cannot poll (it advertises an address nothing
/// listens on) while its heartbeats arrive: the other colony, which neither
/// polls it nor hears it, shows why the owner's polls fail.
#[test]
fn every_colony_shows_why_an_agents_polls_fail() {
    let Some(binary) = clickhouse::binary() else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(clickhouse::Server::start(&binary, ""));
    let dir = tempfile::tempdir().unwrap();
    let storage = server.storage_yaml(dir.path(), "polls");
    let (a, b) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let both = ["colony-a".to_owned(), "colony-b".to_owned()];
    let id = (0..)
        .map(|n| format!("lost-{n}"))
        .find(|id| coral_colony::fleet::owner(id, &both) == Some("colony-a"))
        .unwrap();
    let mut colony_a = start_colony(dir.path(), "colony-a", &a, &storage);
    let mut colony_b = start_colony(dir.path(), "colony-b", &b, &storage);
    let nowhere = format!("127.0.0.1:{}", free_port());
    let mut agent = start_agent_with(
        dir.path(),
        &id,
        "agent",
        &a,
        &b,
        &format!("    advertise_endpoint: {nowhere}\n"),
    );

    let shown = |colony: &str| {
        let v = json(&["agents", "--colony", colony, "-o", "json"]);
        v["agents"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["agent_id"] == id.as_str())
            .map(|x| {
                (
                    x["health"].as_str().unwrap_or_default().to_owned(),
                    x["last_poll_error"].as_str().unwrap_or_default().to_owned(),
                )
            })
    };
    wait_for(
        "colony b shows the owner's failing polls",
        Duration::from_secs(60),
        || shown(&b).is_some_and(|(_, error)| !error.is_empty()),
    );
    let (health_a, error_a) = shown(&a).unwrap();
    let (health_b, error_b) = shown(&b).unwrap();
    assert!(error_a.contains(&nowhere), "{error_a}");
    assert!(error_b.contains(&nowhere), "{error_b}");
    assert_eq!(health_a, "degraded");
    assert_eq!(health_b, "degraded", "b hears no heartbeats yet knows");

    kill(&mut colony_a, "-TERM");
    kill(&mut colony_b, "-TERM");
    kill(&mut agent.child, "-TERM");
}
