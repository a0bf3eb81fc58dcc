//! The pull path end to end: real agents ingest spans from the OpenTelemetry
//! SDK, the colony polls them with cursors, and the colony's numbers are exact
//! across colony restarts, agent restarts and agent database replacement.

mod common;

use std::time::Duration;

use common::*;
use coral_proto::colony::{ListAgentsRequest, ListGapsRequest};
use tokio_util::sync::CancellationToken;

const NO_HOST: &str = "  host_metrics:\n    enabled: false";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_agents_give_exact_totals_at_the_colony() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1s").await;
    let mut agents = Vec::new();
    for (i, n) in [200u64, 300, 400].into_iter().enumerate() {
        let id = format!("agent-{i}");
        let cfg = agent_config(&id, &dir.path().join(&id), colony.addr, NO_HOST);
        let agent = start_agent(&cfg).await;
        send_spans(&agent, "checkout", n, 10).await;
        flush_agent(&agent, n).await;
        agents.push(agent);
    }
    let addr = colony.addr;
    wait_for("colony totals", Duration::from_secs(60), || async move {
        totals(addr, None, "checkout").await == (900, 90)
    })
    .await;
    let mut c = client(addr, None).await;
    // On ClickHouse a page's rows are visible a moment before its cursor
    // (there is no transaction): wait for the cursors too.
    wait_for("the agents' cursors", Duration::from_secs(30), || {
        let mut c = c.clone();
        async move {
            let listed = c.list_agents(ListAgentsRequest {}).await.unwrap();
            listed
                .into_inner()
                .agents
                .iter()
                .all(|a| a.rows_received > 0)
        }
    })
    .await;
    let listed = c
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agents.len(), 3);
    for a in &listed.agents {
        assert_eq!(a.health, "healthy", "{a:?}");
        assert_eq!(a.source, "registered");
        assert_eq!(a.gap_count, 0);
        assert!(!a.last_seen.is_empty() && a.rows_received > 0, "{a:?}");
    }
    for agent in agents {
        agent.shutdown().await;
    }
    colony.shutdown().await;
    let db = dir.path().join("colony");
    assert_eq!(count(&db, "SELECT count(*) FROM trace_spans"), 900);
    assert_eq!(
        count(
            &db,
            "SELECT count(DISTINCT (agent_id, seq_id)) FROM trace_spans"
        ),
        900
    );
    assert_eq!(
        count(
            &db,
            "SELECT sum(total_spans)::BIGINT FROM otel_spans WHERE service_name = 'checkout'"
        ),
        900
    );
}

/// Waits until the colony lists `agent` at its current API address (an agent
/// restarted on a new port registers again).
async fn wait_reregistered(addr: std::net::SocketAddr, agent: &coral_agent::RunningAgent) {
    let endpoint = format!("http://{}", agent.addrs.api);
    wait_for("re-registration", Duration::from_secs(30), || {
        let endpoint = endpoint.clone();
        async move {
            let mut c = client(addr, None).await;
            let r = c
                .list_agents(ListAgentsRequest {})
                .await
                .unwrap()
                .into_inner();
            r.agents.iter().any(|a| a.endpoint == endpoint)
        }
    })
    .await;
}

/// One manual poll of `agent_id`, returning rows stored.
async fn poll(colony: &coral_colony::RunningColony, agent_id: &str) -> usize {
    colony
        .poller
        .poll_agent(agent_id, &CancellationToken::new())
        .await
        .expect("poll succeeds")
        .rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn colony_restart_resumes_from_its_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let colony_dir = dir.path().join("colony");
    // Polls happen only when the test asks (the first tick is at start).
    let slow = "  poll:\n    interval: 1h\n    page_size: 17";
    let colony = start_colony(&colony_config(&colony_dir, "127.0.0.1:0", slow)).await;
    let addr = colony.addr;
    let agent = start_agent(&agent_config("a1", &dir.path().join("a1"), addr, NO_HOST)).await;
    wait_registered(addr, None, 1).await;
    send_spans(&agent, "cart", 100, 0).await;
    flush_agent(&agent, 100).await;
    poll(&colony, "a1").await;
    assert_eq!(totals(addr, None, "cart").await, (100, 0));
    colony.shutdown().await;

    // While the colony is down, the agent keeps ingesting.
    send_spans(&agent, "cart", 150, 0).await;
    flush_agent(&agent, 250).await;
    let colony = start_colony(&colony_config(&colony_dir, &addr.to_string(), slow)).await;
    // The registry was restored from the database: no re-registration needed.
    poll(&colony, "a1").await;
    assert_eq!(totals(addr, None, "cart").await, (250, 0));
    // Polling again finds nothing new.
    assert_eq!(poll(&colony, "a1").await, 0);
    agent.shutdown().await;
    colony.shutdown().await;
    assert_eq!(count(&colony_dir, "SELECT count(*) FROM trace_spans"), 250);
    assert_eq!(
        count(
            &colony_dir,
            "SELECT count(DISTINCT seq_id) FROM trace_spans"
        ),
        250
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_restart_continues_and_a_new_database_resets_the_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1h").await;
    let addr = colony.addr;
    let agent_dir = dir.path().join("a1");
    let cfg = agent_config("a1", &agent_dir, addr, NO_HOST);

    let agent = start_agent(&cfg).await;
    wait_registered(addr, None, 1).await;
    send_spans(&agent, "pay", 50, 0).await;
    flush_agent(&agent, 50).await;
    poll(&colony, "a1").await;
    let session = agent.api.status().session_id;
    agent.shutdown().await;

    // Same database: same session, the cursor continues.
    let agent = start_agent(&cfg).await;
    assert_eq!(agent.api.status().session_id, session);
    send_spans(&agent, "pay", 60, 0).await;
    flush_agent(&agent, 60).await;
    // The agent re-registers with its new API port; wait for it.
    wait_reregistered(addr, &agent).await;
    poll(&colony, "a1").await;
    assert_eq!(totals(addr, None, "pay").await, (110, 0));
    let polled_to = agent.api.status().latest_seq_id;
    let mut c = client(addr, None).await;
    let gaps = c.list_gaps(ListGapsRequest::default()).await.unwrap();
    assert!(gaps.get_ref().gaps.is_empty(), "{:?}", gaps.get_ref().gaps);

    // Spans the colony never polls: it hears of them only by heartbeat.
    let before = agent.api.counters().to_proto(0);
    send_spans(&agent, "pay", 40, 0).await;
    agent.flush_all();
    let counters = agent.api.counters().clone();
    wait_for(
        "the unread rows are stored",
        Duration::from_secs(30),
        || {
            let c = counters.to_proto(0);
            async move {
                c.spans_stored >= before.spans_stored + 40
                    && c.buckets_stored > before.buckets_stored
            }
        },
    )
    .await;
    let unread_to = agent.api.status().latest_seq_id;
    assert!(unread_to > polled_to);
    wait_for(
        "a heartbeat with the unread rows",
        Duration::from_secs(30),
        || async move {
            let mut c = client(addr, None).await;
            let listed = c
                .list_agents(ListAgentsRequest {})
                .await
                .unwrap()
                .into_inner();
            listed
                .agents
                .iter()
                .any(|a| a.agent_latest_seq_id >= unread_to)
        },
    )
    .await;
    agent.shutdown().await;

    // A replaced database is a new session: read from its start. What the
    // old one held beyond the cursor is gone, and recorded as a gap.
    std::fs::remove_dir_all(&agent_dir).unwrap();
    let agent = start_agent(&cfg).await;
    assert_ne!(agent.api.status().session_id, session);
    send_spans(&agent, "pay", 70, 0).await;
    flush_agent(&agent, 70).await;
    wait_reregistered(addr, &agent).await;
    poll(&colony, "a1").await;
    assert_eq!(totals(addr, None, "pay").await, (180, 0));
    let gaps = c
        .list_gaps(ListGapsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .gaps;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(
        (
            &gaps[0].session_id[..],
            gaps[0].from_seq_id,
            gaps[0].to_seq_id
        ),
        (&session[..], polled_to + 1, unread_to)
    );
    assert!(gaps[0].reason.contains("replaced"), "{:?}", gaps[0]);
    agent.shutdown().await;
    colony.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_expired_before_a_poll_are_recorded_as_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1h").await;
    let addr = colony.addr;
    // Rows older than 1 s are deleted every 200 ms; the test spans are minutes old.
    let extra = format!("{NO_HOST}\n  storage:\n    retention: 1s\n    cleanup_interval: 200ms");
    let agent = start_agent(&agent_config("a1", &dir.path().join("a1"), addr, &extra)).await;
    wait_registered(addr, None, 1).await;
    send_spans(&agent, "old", 30, 0).await;
    flush_agent(&agent, 30).await;
    let counters = agent.api.counters().clone();
    wait_for(
        "retention deleted the rows",
        Duration::from_secs(30),
        || {
            let c = counters.to_proto(0);
            async move { c.rows_deleted_by_retention >= 31 }
        },
    )
    .await;
    let latest = agent.api.status().latest_seq_id;
    poll(&colony, "a1").await;
    let mut c = client(addr, None).await;
    let gaps = c
        .list_gaps(ListGapsRequest {
            agent_id: "a1".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .gaps;
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!((gaps[0].from_seq_id, gaps[0].to_seq_id), (1, latest));
    assert_eq!(gaps[0].stream, "telemetry");
    let listed = c
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.agents[0].gap_count, 1);
    assert_eq!(listed.agents[0].lag_rows, 0);
    agent.shutdown().await;
    colony.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_agent_delays_nobody_and_a_silent_one_turns_degraded_then_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    // A "stuck" agent: accepts connections and never answers.
    let stuck = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let stuck_addr = stuck.local_addr().unwrap();
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = stuck.accept().await {
            open.push(socket);
        }
    });
    let colony = colony_in(dir.path(), &format!(
            "  poll:\n    interval: 1s\n    timeout: 30s\n  health:\n    degraded_after: 2s\n    unreachable_after: 4s\n  agents:\n    - id: stuck\n      endpoint: \"{stuck_addr}\""
        )).await;
    let addr = colony.addr;
    let agent = start_agent(&agent_config(
        "live",
        &dir.path().join("live"),
        addr,
        NO_HOST,
    ))
    .await;
    send_spans(&agent, "orders", 80, 0).await;
    flush_agent(&agent, 80).await;
    // The stuck agent's poll is still waiting out its 30 s timeout; the live
    // agent's rows arrive anyway.
    wait_for(
        "the live agent's rows",
        Duration::from_secs(20),
        || async move { totals(addr, None, "orders").await == (80, 0) },
    )
    .await;

    // The live agent goes away: degraded, then unreachable, with its last-seen time.
    agent.shutdown().await;
    let health = |wanted: &'static str| async move {
        let mut c = client(addr, None).await;
        let r = c
            .list_agents(ListAgentsRequest {})
            .await
            .unwrap()
            .into_inner();
        r.agents
            .iter()
            .any(|a| a.agent_id == "live" && a.health == wanted && !a.last_seen.is_empty())
    };
    wait_for("degraded", Duration::from_secs(20), || health("degraded")).await;
    wait_for("unreachable", Duration::from_secs(20), || {
        health("unreachable")
    })
    .await;
    colony.shutdown().await;
    held.abort();
}

/// Two live agent processes with one agent id (a copied config, a rolling
/// update whose old pod still runs): their store sessions alternate in the
/// heartbeats, and `coral agents` says so and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_with_one_agent_id_are_named_in_coral_agents() {
    let dir = tempfile::tempdir().unwrap();
    let colony = colony_in(dir.path(), "  poll:\n    interval: 1s").await;
    let mut agents = Vec::new();
    for (id, dir_name) in [("solo", "solo"), ("twin", "a"), ("twin", "b")] {
        let cfg = agent_config(id, &dir.path().join(dir_name), colony.addr, NO_HOST);
        agents.push(start_agent(&cfg).await);
    }

    let addr = colony.addr;
    let warning = |id: &'static str| async move {
        let mut c = client(addr, None).await;
        let agents = c
            .list_agents(ListAgentsRequest {})
            .await
            .unwrap()
            .into_inner()
            .agents;
        agents
            .into_iter()
            .find(|a| a.agent_id == id)
            .map(|a| a.shared_id_warning)
    };
    wait_for(
        "the shared agent id to be named",
        Duration::from_secs(30),
        || async { warning("twin").await.is_some_and(|w| !w.is_empty()) },
    )
    .await;
    let text = warning("twin").await.unwrap();
    assert!(text.contains("its own agent.id"), "{text}");
    assert_eq!(
        warning("solo").await.as_deref(),
        Some(""),
        "one process per id"
    );

    for agent in agents {
        agent.shutdown().await;
    }
    colony.shutdown().await;
}
