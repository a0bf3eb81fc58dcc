//! Two colonies over one fleet, as processes on one ClickHouse: agents
//! register with one of them, each colony polls its share (rendezvous
//! hashing over the live colonies), one colony is killed (SIGKILL) while it
//! drains an agent and the agents keep receiving spans, and the survivor
//! takes its agents over: afterwards every count is exact, nothing lost,
//! nothing doubled. Skipped, with a message, without `clickhouse-server`
//! (a failure with `CORAL_REQUIRE_CLICKHOUSE=1`, as in CI).

#[path = "../../coral-colony/tests/common/clickhouse.rs"]
#[allow(dead_code)]
mod clickhouse;
mod common;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{coral, json, post_traces, wait_for};

/// Spans each agent receives before the kill, and again after it.
const SPANS: u64 = 1_200;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// OTLP/JSON with `n` SERVER spans of `service` two minutes ago, ids from
/// `first`, every tenth an error.
fn spans_json(service: &str, first: u64, n: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let t0 = (now / 60 - 2) * 60 * 1_000_000_000;
    let spans: Vec<String> = (first..first + n)
        .map(|i| {
            let start = t0 + (i % 50_000) * 1_000_000;
            let status = if i % 10 == 0 { 2 } else { 1 };
            format!(
                r#"{{"traceId":"{i:032x}","spanId":"{:016x}","name":"GET /items","kind":2,"startTimeUnixNano":"{start}","endTimeUnixNano":"{}","status":{{"code":{status}}}}}"#,
                i + 1,
                start + (i % 1000 + 1) * 1_000_000
            )
        })
        .collect();
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}]}}"#,
        spans.join(",")
    )
}

/// A running agent process and its OTLP/HTTP address.
struct Agent {
    child: Child,
    http: String,
}

fn start_agent(dir: &Path, id: &str, colony: &str, fallback: &str) -> Agent {
    let home = dir.join(id);
    std::fs::create_dir_all(&home).unwrap();
    let yaml = home.join("agent.yaml");
    std::fs::write(
        &yaml,
        format!(
            "agent:\n  id: {id}\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n    filters:\n      - sample_rate: 1.0\n  api:\n    endpoint: 127.0.0.1:0\n  admin:\n    endpoint: 127.0.0.1:0\n  host_metrics:\n    enabled: false\n  colony:\n    endpoint: {colony}\n    fallback_endpoints: [\"{fallback}\"]\n    heartbeat_interval: 1s\n"
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

fn kill(child: &mut Child, signal: &str) {
    let ok = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    child.wait().unwrap();
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
    let text = ureq::post(format!("{url}/?database=fleet"))
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
                spans_json("shop", first + part * SPANS / 4, SPANS / 4),
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
        post_traces(&agent.http, spans_json("shop", first, SPANS));
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
