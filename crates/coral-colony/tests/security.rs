//! Authentication and TLS between agents, colony and CLI.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::*;
use coral_proto::colony::ListAgentsRequest;
use coral_proto::colony::colony_service_client::ColonyServiceClient;
use coral_proto::transport::{BearerToken, ClientTlsSettings, channel};

const TOKEN: &str = "s3cret-token";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_missing_token_is_refused_and_the_right_one_works() {
    let dir = tempfile::tempdir().unwrap();
    let colony = start_colony(&colony_config(
        &dir.path().join("colony"),
        "127.0.0.1:0",
        &format!("  auth:\n    token: {TOKEN}\n  poll:\n    interval: 1s"),
    ))
    .await;
    let addr = colony.addr;

    let missing = client(addr, None)
        .await
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::Unauthenticated);
    assert!(
        missing.message().contains("requires a token"),
        "{}",
        missing.message()
    );
    let wrong = client(addr, Some("nope"))
        .await
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);

    // An agent without the token cannot register, and says why.
    let no_host = "  host_metrics:\n    enabled: false";
    let stranger = start_agent(&agent_config(
        "stranger",
        &dir.path().join("s"),
        addr,
        no_host,
    ))
    .await;
    let api = stranger.api.clone();
    wait_for("refusal reported", Duration::from_secs(30), || {
        let state = api.status().colony_state;
        async move { state.contains("refused") }
    })
    .await;

    // The right token: registered, polled (the agent API requires the token
    // too), totals arrive.
    let mut cfg = agent_config("trusted", &dir.path().join("t"), addr, no_host);
    cfg.auth_token = Some(TOKEN.into());
    if let Some(link) = cfg.colony.as_mut() {
        link.token = Some(TOKEN.into());
    }
    let trusted = start_agent(&cfg).await;
    send_spans(&trusted, "vault", 40, 0).await;
    flush_agent(&trusted, 40).await;
    wait_for(
        "totals with the token",
        Duration::from_secs(60),
        || async move { totals(addr, Some(TOKEN), "vault").await == (40, 0) },
    )
    .await;
    let listed = client(addr, Some(TOKEN))
        .await
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(ids, ["trusted"]);

    // The agent's own API refuses callers without the token.
    let mut agent_client = coral_proto::agent::agent_service_client::AgentServiceClient::connect(
        format!("http://{}", trusted.addrs.api),
    )
    .await
    .unwrap();
    let refused = agent_client
        .get_status(coral_proto::agent::GetStatusRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // An agent with a wrong token is refused as well, and says so.
    let mut cfg = agent_config("impostor", &dir.path().join("i"), addr, no_host);
    if let Some(link) = cfg.colony.as_mut() {
        link.token = Some("n0t-the-token".into());
    }
    let impostor = start_agent(&cfg).await;
    let api = impostor.api.clone();
    wait_for("the wrong token refused", Duration::from_secs(30), || {
        let state = api.status().colony_state;
        async move { state.contains("refused") }
    })
    .await;

    // An agent whose API wants another token than the colony's registers
    // (its link carries the colony's token) but refuses the colony's
    // polls, and the colony says why.
    let mut cfg = agent_config("guarded", &dir.path().join("g"), addr, no_host);
    cfg.auth_token = Some("agent-only-token".into());
    if let Some(link) = cfg.colony.as_mut() {
        link.token = Some(TOKEN.into());
    }
    let guarded = start_agent(&cfg).await;
    wait_for(
        "the colony's polls refused by the agent",
        Duration::from_secs(60),
        || async move {
            let agents = client(addr, Some(TOKEN))
                .await
                .list_agents(ListAgentsRequest {})
                .await
                .map(|r| r.into_inner().agents)
                .unwrap_or_default();
            agents
                .iter()
                .any(|a| a.agent_id == "guarded" && a.last_poll_error.contains("Unauthenticated"))
        },
    )
    .await;

    stranger.shutdown().await;
    impostor.shutdown().await;
    guarded.shutdown().await;
    trusted.shutdown().await;
    colony.shutdown().await;
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("tests/fixtures/tls")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_colony_api_speaks_tls_with_configured_certificates() {
    let dir = tempfile::tempdir().unwrap();
    let extra = format!(
        "    tls:\n      cert_file: {}\n      key_file: {}",
        fixture("server.pem").display(),
        fixture("server-key.pem").display()
    );
    let colony = start_colony(&colony_config(dir.path(), "127.0.0.1:0", &extra)).await;
    let port = colony.addr.port();

    let tls = ClientTlsSettings {
        ca_file: Some(fixture("ca.pem")),
        server_name: None,
    };
    let ch = channel(
        &format!("https://localhost:{port}"),
        Some(&tls),
        Duration::from_secs(5),
    )
    .unwrap();
    let mut secure = ColonyServiceClient::with_interceptor(ch, BearerToken::new(None));
    let listed = secure
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.colony_id, "test-colony");

    // Plain text to a TLS port fails.
    let ch = channel(
        &format!("http://127.0.0.1:{port}"),
        None,
        Duration::from_secs(5),
    )
    .unwrap();
    let mut plain = ColonyServiceClient::with_interceptor(ch, BearerToken::new(None));
    assert!(plain.list_agents(ListAgentsRequest {}).await.is_err());

    // An agent with the CA registers over TLS.
    let mut cfg = agent_config(
        "tls-agent",
        &dir.path().join("agent"),
        colony.addr,
        "  host_metrics:\n    enabled: false",
    );
    if let Some(link) = cfg.colony.as_mut() {
        link.endpoint = format!("https://localhost:{port}");
        link.tls = Some(coral_config::ClientTls {
            ca_file: Some(fixture("ca.pem")),
            server_name: None,
        });
    }
    let agent = start_agent(&cfg).await;

    // A client or an agent that trusts another CA refuses the colony.
    let other = ClientTlsSettings {
        ca_file: Some(fixture("other-ca.pem")),
        server_name: None,
    };
    let ch = channel(
        &format!("https://localhost:{port}"),
        Some(&other),
        Duration::from_secs(5),
    )
    .unwrap();
    let mut doubtful = ColonyServiceClient::with_interceptor(ch, BearerToken::new(None));
    let refused = doubtful
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unavailable, "{refused}");
    assert!(refused.message().contains("UnknownIssuer"), "{refused}");
    let mut cfg = agent_config(
        "doubtful-agent",
        &dir.path().join("doubtful"),
        colony.addr,
        "  host_metrics:\n    enabled: false",
    );
    if let Some(link) = cfg.colony.as_mut() {
        link.endpoint = format!("https://localhost:{port}");
        link.tls = Some(coral_config::ClientTls {
            ca_file: Some(fixture("other-ca.pem")),
            server_name: None,
        });
    }
    let doubtful_agent = start_agent(&cfg).await;
    let api = doubtful_agent.api.clone();
    wait_for(
        "the agent to say the colony is not trusted, and what to set",
        Duration::from_secs(30),
        || {
            let state = api.status().colony_state;
            async move { state.contains("not trusted") && state.contains("agent.colony.tls.ca_file") }
        },
    )
    .await;

    wait_for("registration over TLS", Duration::from_secs(30), || {
        let mut client = secure.clone();
        async move {
            client
                .list_agents(ListAgentsRequest {})
                .await
                .map(|r| r.into_inner().agents.len() == 1)
                .unwrap_or(false)
        }
    })
    .await;
    // Only the agent with the right CA registered.
    let listed = secure
        .list_agents(ListAgentsRequest {})
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = listed.agents.iter().map(|a| a.agent_id.as_str()).collect();
    assert_eq!(ids, ["tls-agent"]);
    doubtful_agent.shutdown().await;
    agent.shutdown().await;
    colony.shutdown().await;
}
