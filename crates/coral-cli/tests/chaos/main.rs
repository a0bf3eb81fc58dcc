//! Faults across hosts with their own addresses (network namespaces on one
//! machine): a colony host and agent hosts, each agent fed by a real
//! OpenTelemetry SDK client (Python) that counts exactly what the agent
//! acknowledged. Every scenario ends with a reconciliation at the colony:
//! per service and minute, counted = acknowledged, every kept span stored
//! once (`fleet.rs`).
//!
//! Needs root, iproute2, nftables and the interop Python (`.ci/run` has
//! them); skipped with a message otherwise, unless
//! `CORAL_REQUIRE_ROOT_TESTS=1`. Each scenario prints its RELIABILITY.md
//! row; `scripts/chaos.sh` runs them all, and with `CORAL_CHAOS_OUTAGE=50m`
//! the long link cut.

#[path = "../common/mod.rs"]
mod common;
mod delay;
mod fleet;
mod lab;
mod overload;

use std::time::{Duration, Instant};

use common::wait_for;
use fleet::{AgentSpec, Figures, Fleet};

/// How long a link stays cut (`CORAL_CHAOS_OUTAGE`, default 60 s: sixty
/// poll intervals).
fn outage() -> Duration {
    std::env::var("CORAL_CHAOS_OUTAGE")
        .ok()
        .map(|v| humantime::parse_duration(&v).expect("CORAL_CHAOS_OUTAGE, e.g. 50m"))
        .unwrap_or(Duration::from_secs(60))
}

/// How long the reconciliation waits for the colony to hold every minute.
const SETTLE: Duration = Duration::from_secs(120);

/// Ends the scenario with the reconciliation and prints its row.
fn conclude(fleet: Fleet, scenario: &str, recovery: Option<Duration>) -> Figures {
    let figures = fleet.finish(SETTLE);
    eprintln!(
        "| scenario | sent | acknowledged | counted | stored | lost | duplicated | gap rows | recovery | peak RSS MB agent / colony |"
    );
    eprintln!("{}", figures.row(scenario, recovery));
    figures
}

fn three_agents() -> Vec<AgentSpec> {
    vec![
        AgentSpec::new("a1"),
        AgentSpec {
            protocol: "grpc",
            ..AgentSpec::new("a2")
        },
        AgentSpec::new("a3"),
    ]
}

/// Until the colony's last poll of `agent` failed.
fn wait_poll_failing(fleet: &Fleet, agent: &str) {
    wait_for(
        &format!("the colony to report its polls of {agent} failing"),
        Duration::from_secs(60),
        || {
            fleet.colony_agents().iter().any(|a| {
                a["agent_id"] == agent && !a["last_poll_error"].as_str().unwrap_or("").is_empty()
            })
        },
    );
}

#[test]
fn a_cut_link_loses_and_duplicates_nothing() {
    let Some(fleet) = Fleet::start(&three_agents(), 1000) else {
        return;
    };
    fleet.wait_acked(0, 100);
    fleet.wait_caught_up(0, Duration::from_secs(60));
    let outage = outage();
    let cut_at = Instant::now();
    fleet.lab.host("a1").cut();
    wait_poll_failing(&fleet, "a1");
    // The agent keeps serving its clients while the colony cannot reach it.
    fleet.wait_acked(0, 100);
    std::thread::sleep(outage.saturating_sub(cut_at.elapsed()));
    fleet.lab.host("a1").restore();
    let recovery = fleet.wait_caught_up(0, Duration::from_secs(300));
    let figures = conclude(
        fleet,
        &format!(
            "link agent↔colony cut {}",
            humantime::format_duration(outage)
        ),
        Some(recovery),
    );
    figures.assert_exact();
    // A connection that went quiet is dropped (HTTP/2 keepalive, and the
    // poller dials afresh after a failed poll) rather than waited on until
    // TCP's retransmissions notice the link is back: 55 s after a 1-minute
    // cut before, a few seconds now.
    assert!(
        recovery < Duration::from_secs(30),
        "the colony took {recovery:?} to catch up after the link came back"
    );
}

#[test]
fn packet_loss_and_latency_lose_and_duplicate_nothing() {
    let mut specs = three_agents();
    specs[1].relayed = true;
    let Some(fleet) = Fleet::start(&specs, 1000) else {
        return;
    };
    fleet.wait_acked(1, 100);
    for relay in fleet.relays(1) {
        relay.set(Duration::from_millis(500));
    }
    fleet.lab.host("a2").lossy(10);
    // Under the fault the colony still reads a2, only slower.
    fleet.wait_acked(1, 500);
    fleet.wait_caught_up(1, Duration::from_secs(120));
    fleet.wait_acked(1, 500);
    fleet.lab.host("a2").lossless();
    for relay in fleet.relays(1) {
        relay.set(Duration::ZERO);
    }
    let recovery = fleet.wait_caught_up(1, Duration::from_secs(120));
    let figures = conclude(
        fleet,
        "10 % packet loss and 500 ms each way on one link",
        Some(recovery),
    );
    figures.assert_exact();
}

#[test]
fn answers_later_than_the_clients_timeout_are_retried_and_counted_once() {
    let mut specs = three_agents();
    specs[0].client_relayed = true;
    let Some(fleet) = Fleet::start(&specs, 1000) else {
        return;
    };
    fleet.wait_acked(0, 100);
    let retried = |fleet: &Fleet| fleet.agent_status(0)["counters"]["requests_retried"].as_u64();
    assert_eq!(retried(&fleet), Some(0));
    // 6 s each way: the agent stores each export after 6 s and its answer
    // reaches the client after 12 s, 2 s past the SDK's 10 s timeout, so the
    // client sends the same batch again and again.
    let failed = fleet.client(0).failed_attempts;
    for relay in fleet.relays(0) {
        relay.set(Duration::from_secs(6));
    }
    wait_for(
        "the client to time out twice and the agent to recognise a retry",
        Duration::from_secs(120),
        || fleet.client(0).failed_attempts >= failed + 2 && retried(&fleet) >= Some(1),
    );
    for relay in fleet.relays(0) {
        relay.set(Duration::ZERO);
    }
    fleet.wait_acked(0, 100);
    let recovery = fleet.wait_caught_up(0, Duration::from_secs(120));
    let figures = conclude(
        fleet,
        "answers 2 s later than the client's timeout (12 s round trip)",
        Some(recovery),
    );
    figures.assert_exact();
}

#[test]
fn an_agent_killed_during_a_burst_keeps_what_it_acknowledged() {
    let mut specs = three_agents();
    specs[0].rate = 500;
    let Some(mut fleet) = Fleet::start(&specs, 1000) else {
        return;
    };
    fleet.wait_acked(0, 1000);
    let failed = fleet.client(0).failed_attempts;
    fleet.stop_agent(0, "-KILL");
    wait_for(
        "the SDK client to see the agent gone",
        Duration::from_secs(60),
        || fleet.client(0).failed_attempts > failed,
    );
    let restarted = Instant::now();
    fleet.start_agent(0);
    fleet.wait_acked(0, 1000);
    fleet.wait_caught_up(0, Duration::from_secs(120));
    let recovery = restarted.elapsed();
    let figures = conclude(
        fleet,
        "`kill -9` of an agent during a 500 spans/s burst",
        Some(recovery),
    );
    figures.assert_exact();
}

#[test]
fn the_colony_killed_mid_page_ten_times_loses_and_duplicates_nothing() {
    let Some(mut fleet) = Fleet::start(&three_agents(), 100) else {
        return;
    };
    let cursor = |fleet: &Fleet| -> u64 {
        fleet
            .colony_agents()
            .iter()
            .map(|a| a["cursor_seq_id"].as_u64().unwrap_or(0))
            .sum()
    };
    let mut recovery = Duration::ZERO;
    for _ in 0..10 {
        // Kill while pages are arriving: the cursors have just moved.
        let at = cursor(&fleet);
        wait_for("the colony storing pages", Duration::from_secs(60), || {
            cursor(&fleet) > at
        });
        fleet.stop_colony("-KILL");
        let restarted = Instant::now();
        fleet.start_colony();
        let at = cursor(&fleet);
        wait_for("the colony storing again", Duration::from_secs(60), || {
            cursor(&fleet) > at
        });
        recovery = recovery.max(restarted.elapsed());
    }
    let figures = conclude(
        fleet,
        "`kill -9` of the colony mid-page, 10 times (slowest restart to storing)",
        Some(recovery),
    );
    figures.assert_exact();
}

#[test]
fn an_agent_on_a_full_disk_refuses_then_recovers_losing_nothing() {
    let mut specs = three_agents();
    specs[2].tmpfs = Some("48m");
    let Some(fleet) = Fleet::start(&specs, 1000) else {
        return;
    };
    fleet.wait_acked(2, 200);
    let filler = fleet.agents[2].home.join("filler");
    common::fill(&filler);
    let failed = fleet.client(2).failed_attempts;
    let mut why = String::new();
    wait_for(
        "the agent to say its store is failing",
        Duration::from_secs(60),
        || {
            let status = fleet.agent_status(2);
            why = status["store"].to_string();
            status["store"]["ok"] == false
        },
    );
    assert!(why.contains("space"), "/status store: {why}");
    wait_for(
        "the SDK client to be refused",
        Duration::from_secs(60),
        || fleet.client(2).failed_attempts > failed,
    );
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    wait_for("the store healthy again", Duration::from_secs(60), || {
        fleet.agent_status(2)["store"]["ok"] == true
    });
    fleet.wait_acked(2, 200);
    fleet.wait_caught_up(2, Duration::from_secs(120));
    let recovery = freed.elapsed();
    let figures = conclude(
        fleet,
        "an agent's disk full (48 MiB tmpfs), then freed",
        Some(recovery),
    );
    figures.assert_exact();
}

#[test]
fn agents_with_clocks_ten_minutes_off_lose_and_duplicate_nothing() {
    let mut specs = three_agents();
    specs[0].clock = Some(600);
    specs[1].clock = Some(-600);
    let Some(fleet) = Fleet::start(&specs, 1000) else {
        return;
    };
    for i in 0..3 {
        fleet.wait_acked(i, 300);
        fleet.wait_caught_up(i, Duration::from_secs(60));
    }
    let figures = conclude(
        fleet,
        "agent clocks 10 min ahead and 10 min behind the colony's",
        None,
    );
    figures.assert_exact();
}

#[test]
fn an_outage_longer_than_retention_is_recorded_as_a_gap() {
    let mut specs = three_agents();
    specs[0].retention = "90s";
    let Some(fleet) = Fleet::start(&specs, 1000) else {
        return;
    };
    fleet.wait_acked(0, 100);
    fleet.wait_caught_up(0, Duration::from_secs(60));
    fleet.lab.host("a1").cut();
    let cut_at = Instant::now();
    wait_poll_failing(&fleet, "a1");
    // Past the retention, with the cleanup's interval and a minute's
    // flush on top.
    std::thread::sleep(Duration::from_secs(170).saturating_sub(cut_at.elapsed()));
    fleet.lab.host("a1").restore();
    let recovery = fleet.wait_caught_up(0, Duration::from_secs(120));
    let gaps: u64 = fleet
        .colony_agents()
        .iter()
        .filter(|a| a["agent_id"] == "a1")
        .map(|a| a["gap_count"].as_u64().unwrap_or(0))
        .sum();
    let after = fleet::minute_now();
    let figures = conclude(
        fleet,
        "link cut 170 s, agent retention 90 s",
        Some(recovery),
    );
    assert!(gaps >= 1, "the colony shows a gap for a1: {figures:#?}");
    assert!(figures.gap_rows > 0 && figures.lost > 0, "{figures:#?}");
    assert_eq!(figures.duplicated, 0, "{figures:#?}");
    assert!(figures.cli_disagrees.is_empty(), "{figures:#?}");
    // Only the outage's minutes are short; every minute after is whole.
    for difference in &figures.differences {
        let minute = difference.split_whitespace().nth(1).unwrap();
        assert!(minute < after.as_str(), "{difference}; restored at {after}");
    }
}

/// The sockets listening in `host`'s namespace: (address, port), from
/// `/proc/net/tcp` and `tcp6` as seen inside it.
fn listeners(host: &lab::Host) -> Vec<(String, u16)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = host.command("cat").arg(table).output().unwrap().stdout;
        for line in String::from_utf8_lossy(&text).lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                continue; // not LISTEN
            }
            let (addr, port) = fields[1].split_once(':').unwrap();
            out.push((addr.to_owned(), u16::from_str_radix(port, 16).unwrap()));
        }
    }
    out
}

#[test]
fn every_listener_binds_loopback_by_default() {
    // A host of its own, so the default ports are free whatever else runs.
    let Some(lab) = lab::Lab::new(&["solo"]) else {
        return;
    };
    let host = lab.host("solo");
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::coral();
    cmd.arg("up")
        .env("CORAL_HOME", dir.path())
        .env("BEYLA_PATH", "/nonexistent/beyla")
        .env_remove("CORAL_COLONY_ADMIN_ENDPOINT");
    let _up = fleet::Proc::spawn(host.wrap(&cmd), dir.path().join("up.log"));
    // OTLP gRPC and HTTP, agent API and admin, colony API and admin.
    let expected = [4317, 4318, 9001, 9002, 9000, 9003];
    let mut seen = Vec::new();
    wait_for("every default listener", Duration::from_secs(60), || {
        seen = listeners(host);
        expected
            .iter()
            .all(|p| seen.iter().any(|(_, port)| port == p))
    });
    // 127.0.0.1 or ::1, as /proc/net writes them.
    let loopback = ["0100007F", "00000000000000000000000001000000"];
    for (addr, port) in &seen {
        assert!(
            loopback.contains(&addr.as_str()),
            "port {port} listens on {addr}, not loopback: {seen:?}"
        );
    }
}
