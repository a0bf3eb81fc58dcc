//! The agent's colony link, API TLS, host metrics and outbox settings.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{agent_err, assert_contains_all, env, fixture, home_env, load_str};
use coral_config::{
    AgentConfig, AgentMode, AgentOverrides, ClientTls, ColonyLink, ConfigError, HostMetricsConfig,
    PushConfig, ServerTls,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn load_with(
    yaml: &str,
    pairs: &[(&str, &str)],
    flags: &AgentOverrides,
) -> Result<AgentConfig, ConfigError> {
    AgentConfig::from_yaml_str(yaml, Path::new("agent.yaml"), &env(pairs), flags)
}

fn colony(yaml: &str) -> ColonyLink {
    load_str(yaml)
        .unwrap_or_else(|e| panic!("{e}\n{yaml}"))
        .colony
        .expect("colony section")
}

#[test]
fn defaults_are_standalone() {
    let cfg = load_str("").unwrap();
    assert!(cfg.colony.is_none());
    assert_eq!(cfg.api_tls, None);
    assert_eq!(cfg.auth_token, None);
    assert_eq!(
        cfg.host_metrics,
        HostMetricsConfig {
            enabled: true,
            interval: secs(60),
        }
    );
    assert_eq!(cfg.storage.outbox_max_age, secs(24 * 3600));

    let link = colony("agent:\n  colony:\n    endpoint: \"10.0.0.1:9000\"\n");
    assert_eq!(
        link,
        ColonyLink {
            endpoint: "http://10.0.0.1:9000".to_owned(),
            token: None,
            tls: None,
            heartbeat_interval: secs(15),
            advertise_endpoint: None,
            push: PushConfig {
                interval: secs(5),
                max_records: 5000,
                max_backoff: secs(60),
            },
            fallback_endpoints: vec![],
        }
    );
    assert_eq!(link.push, PushConfig::default());
}

#[test]
fn colony_fixture_sets_every_field() {
    let cfg = AgentConfig::load(
        Some(&fixture("agent-colony.yaml")),
        &home_env(),
        &AgentOverrides::default(),
    )
    .expect("agent-colony.yaml loads");
    assert_eq!(cfg.agent_id, "edge-1");
    assert_eq!(cfg.mode, AgentMode::Forwarder);
    assert_eq!(cfg.api_endpoint, "127.0.0.1:19001".parse().unwrap());
    assert_eq!(
        cfg.api_tls,
        Some(ServerTls {
            cert_file: PathBuf::from("tests/fixtures/tls-dummy-cert.pem"),
            key_file: PathBuf::from("tests/fixtures/tls-dummy-key.pem"),
        })
    );
    assert_eq!(cfg.auth_token.as_deref(), Some("s3cret"));
    assert_eq!(
        cfg.colony,
        Some(ColonyLink {
            // The tls section upgrades the bare host:port to https.
            endpoint: "https://colony.internal:9000".to_owned(),
            token: Some("s3cret".to_owned()),
            tls: Some(ClientTls {
                ca_file: Some(PathBuf::from("tests/fixtures/tls-dummy-cert.pem")),
                server_name: Some("colony.internal".to_owned()),
            }),
            heartbeat_interval: secs(20),
            // The agent API serves TLS, so the advertised address is https.
            advertise_endpoint: Some("https://10.0.0.5:19001".to_owned()),
            push: PushConfig {
                interval: secs(2),
                max_records: 1000,
                max_backoff: secs(30),
            },
            // The tls section makes every colony https.
            fallback_endpoints: vec![
                "https://colony-b.internal:9000".to_owned(),
                "https://colony-c.internal:9443".to_owned(),
            ],
        })
    );
    assert_eq!(
        cfg.host_metrics,
        HostMetricsConfig {
            enabled: false,
            interval: secs(30),
        }
    );
    assert_eq!(cfg.storage.retention, secs(7200));
    assert_eq!(cfg.storage.cleanup_interval, secs(30));
    assert_eq!(cfg.storage.outbox_max_age, secs(12 * 3600));

    let debug = format!("{cfg:?}");
    assert!(!debug.contains("s3cret"), "Debug hides the token: {debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn endpoint_forms() {
    let yaml = |endpoint: &str| format!("agent:\n  colony:\n    endpoint: \"{endpoint}\"\n");
    let link = colony(&yaml("h:1"));
    assert_eq!((link.endpoint.as_str(), link.tls), ("http://h:1", None));
    let link = colony(&yaml("http://h:1"));
    assert_eq!((link.endpoint.as_str(), link.tls), ("http://h:1", None));
    let link = colony(&yaml("https://h:1"));
    assert_eq!(link.endpoint, "https://h:1");
    assert_eq!(link.tls, Some(ClientTls::default()), "system roots");
    // A tls section upgrades even an explicit http://.
    let link = colony("agent:\n  colony:\n    endpoint: \"http://h:1\"\n    tls: {}\n");
    assert_eq!(link.endpoint, "https://h:1");
    assert_eq!(link.tls, Some(ClientTls::default()));

    for (bad, reason) in [
        ("ftp://x:1", "unsupported scheme `ftp://`"),
        ("host", "the port is missing"),
        (":9000", "the host is missing"),
        (
            "http://h:1/path",
            "paths, queries and fragments are not allowed",
        ),
    ] {
        let err = agent_err(&yaml(bad));
        assert_eq!(err.key(), Some("agent.colony.endpoint"), "{bad}");
        assert_eq!(err.line(), Some(3), "{bad}");
        assert_contains_all(
            &err.to_string(),
            &[
                "agent.yaml",
                &format!("{bad:?}"),
                reason,
                "use host:port, http://host:port or https://host:port",
            ],
        );

        let err = load_with(
            "",
            &[("HOME", "/h"), ("CORAL_COLONY_ENDPOINT", bad)],
            &AgentOverrides::default(),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::Env {
                    var: "CORAL_COLONY_ENDPOINT",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_contains_all(&err.to_string(), &[reason]);

        let flags = AgentOverrides {
            colony_endpoint: Some(bad.to_owned()),
            ..AgentOverrides::default()
        };
        let err = load_with("", &[("HOME", "/h")], &flags).unwrap_err();
        assert_contains_all(&err.to_string(), &["flag --colony-endpoint", reason]);
    }
}

const FILE: &str = "\
agent:
  colony:
    endpoint: \"file-colony:9000\"
    token: file-token
    heartbeat_interval: 30s
";

#[test]
fn colony_endpoint_and_token_precedence() {
    let none = AgentOverrides::default();
    let cfg = load_with(FILE, &[("HOME", "/h")], &none).unwrap();
    let link = cfg.colony.unwrap();
    assert_eq!(link.endpoint, "http://file-colony:9000");
    assert_eq!(link.token.as_deref(), Some("file-token"));
    assert_eq!(cfg.auth_token.as_deref(), Some("file-token"));

    let env_pairs = [
        ("HOME", "/h"),
        ("CORAL_COLONY_ENDPOINT", "https://env-colony:9000"),
        ("CORAL_TOKEN", "env-token"),
        ("CORAL_HOST_METRICS_INTERVAL", "15s"),
    ];
    let cfg = load_with(FILE, &env_pairs, &none).unwrap();
    let link = cfg.colony.unwrap();
    assert_eq!(link.endpoint, "https://env-colony:9000");
    assert_eq!(link.tls, Some(ClientTls::default()));
    assert_eq!(link.token.as_deref(), Some("env-token"));
    assert_eq!(
        link.heartbeat_interval,
        secs(30),
        "the file's other settings stay"
    );
    assert_eq!(cfg.auth_token.as_deref(), Some("env-token"));
    assert_eq!(cfg.host_metrics.interval, secs(15));

    let flags = AgentOverrides {
        colony_endpoint: Some("flag-colony:9000".into()),
        token: Some("flag-token".into()),
        ..AgentOverrides::default()
    };
    let cfg = load_with(FILE, &env_pairs, &flags).unwrap();
    let link = cfg.colony.unwrap();
    assert_eq!(link.endpoint, "http://flag-colony:9000");
    assert_eq!(link.token.as_deref(), Some("flag-token"));
    assert_eq!(cfg.auth_token.as_deref(), Some("flag-token"));
    assert!(!format!("{flags:?}").contains("flag-token"));
}

#[test]
fn env_and_flags_create_the_colony_section() {
    let none = AgentOverrides::default();
    let cfg = load_with(
        "",
        &[("HOME", "/h"), ("CORAL_COLONY_ENDPOINT", "c:9000")],
        &none,
    )
    .unwrap();
    let link = cfg.colony.unwrap();
    assert_eq!(link.endpoint, "http://c:9000");
    assert_eq!(link.heartbeat_interval, secs(15));

    let flags = AgentOverrides {
        colony_endpoint: Some("https://c:9000".into()),
        ..AgentOverrides::default()
    };
    let cfg = load_with("", &[("HOME", "/h")], &flags).unwrap();
    assert_eq!(cfg.colony.unwrap().endpoint, "https://c:9000");

    // A token without a colony only protects the agent API.
    let cfg = load_with("", &[("HOME", "/h"), ("CORAL_TOKEN", "t0k")], &none).unwrap();
    assert!(cfg.colony.is_none());
    assert_eq!(cfg.auth_token.as_deref(), Some("t0k"));
}

#[test]
fn colony_section_requires_an_endpoint() {
    let err = agent_err("agent:\n  id: a\n  colony:\n    token: x\n");
    assert_eq!(err.key(), Some("agent.colony.endpoint"));
    assert_eq!(err.line(), Some(3));
    assert_contains_all(
        &err.to_string(),
        &[
            "agent.yaml",
            "is required",
            "CORAL_COLONY_ENDPOINT",
            "--colony-endpoint",
        ],
    );
    // ...unless the environment supplies it.
    let cfg = load_with(
        "agent:\n  colony:\n    token: x\n",
        &[("HOME", "/h"), ("CORAL_COLONY_ENDPOINT", "c:1")],
        &AgentOverrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.colony.unwrap().token.as_deref(), Some("x"));
}

#[test]
fn token_sources() {
    let err = agent_err(
        "agent:\n  colony:\n    endpoint: \"c:1\"\n    token: a\n    token_file: /etc/coral/token\n",
    );
    assert_eq!(err.key(), Some("agent.colony.token_file"));
    assert_eq!(err.line(), Some(5));
    assert_contains_all(
        &err.to_string(),
        &[
            "both `agent.colony.token` (line 4) and `agent.colony.token_file`",
            "set only one",
        ],
    );

    let link = colony(
        "agent:\n  colony:\n    endpoint: \"c:1\"\n    token_file: tests/fixtures/token-dummy.txt\n",
    );
    assert_eq!(
        link.token.as_deref(),
        Some("dummy-token-from-file"),
        "read and trimmed"
    );

    let err =
        agent_err("agent:\n  colony:\n    endpoint: \"c:1\"\n    token_file: /nonexistent/token\n");
    assert_eq!(err.key(), Some("agent.colony.token_file"));
    assert_eq!(err.line(), Some(4));
    assert_contains_all(
        &err.to_string(),
        &["cannot read token file /nonexistent/token"],
    );

    let err = agent_err("agent:\n  colony:\n    endpoint: \"c:1\"\n    token: \"has space\"\n");
    assert_eq!(err.key(), Some("agent.colony.token"));
    assert!(!err.to_string().contains("has space"), "{err}");

    let err = load_with(
        "",
        &[("HOME", "/h"), ("CORAL_TOKEN", "a b")],
        &AgentOverrides::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert_contains_all(&msg, &["CORAL_TOKEN", "hidden"]);
    assert!(!msg.contains("a b"), "{msg}");
}

#[test]
fn api_tls_files_must_exist_and_come_in_pairs() {
    let err = agent_err(
        "agent:\n  api:\n    tls:\n      cert_file: tests/fixtures/tls-dummy-cert.pem\n      key_file: /nonexistent/key.pem\n",
    );
    assert_eq!(err.key(), Some("agent.api.tls.key_file"));
    assert_eq!(err.line(), Some(5));
    assert_contains_all(
        &err.to_string(),
        &["agent.yaml", "/nonexistent/key.pem", "does not exist"],
    );

    let err =
        agent_err("agent:\n  api:\n    tls:\n      key_file: tests/fixtures/tls-dummy-key.pem\n");
    assert_eq!(err.key(), Some("agent.api.tls"));
    assert_eq!(err.line(), Some(3), "the line of `tls:`");
    assert_contains_all(&err.to_string(), &["`agent.api.tls.cert_file` is missing"]);

    let err = agent_err("agent:\n  api:\n    tls:\n      cert_file: tests/fixtures\n");
    assert_contains_all(
        &err.to_string(),
        &["tests/fixtures", "is not a regular file"],
    );

    let err =
        agent_err("agent:\n  colony:\n    endpoint: \"c:1\"\n    tls:\n      ca_file: nope.pem\n");
    assert_eq!(err.key(), Some("agent.colony.tls.ca_file"));
    assert_contains_all(
        &err.to_string(),
        &["nope.pem", "does not exist", "working directory"],
    );

    let cfg = load_str("agent:\n  api:\n    tls: {}\n").unwrap();
    assert_eq!(cfg.api_tls, None, "an empty section = plain text");
}

#[test]
fn advertise_endpoint_takes_its_scheme_from_the_api() {
    let link = colony(
        "agent:\n  colony:\n    endpoint: \"c:1\"\n    advertise_endpoint: \"web-1.internal:9001\"\n",
    );
    assert_eq!(
        link.advertise_endpoint.as_deref(),
        Some("http://web-1.internal:9001")
    );
    let link = colony(
        "agent:\n  colony:\n    endpoint: \"c:1\"\n    advertise_endpoint: \"https://web-1:9001\"\n",
    );
    assert_eq!(
        link.advertise_endpoint.as_deref(),
        Some("https://web-1:9001")
    );
    let err =
        agent_err("agent:\n  colony:\n    endpoint: \"c:1\"\n    advertise_endpoint: \"web-1\"\n");
    assert_eq!(err.key(), Some("agent.colony.advertise_endpoint"));
}
