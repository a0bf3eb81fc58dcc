//! The colony configuration: defaults, the fixtures, precedence and errors.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{assert_contains_all, env, fixture, home_env, load_colony_str};
use coral_config::{
    BeylaTraceSampling, COLONY_ENV_VARS, ClickHouseStorage, ClientTls, ColonyConfig,
    ColonyOverrides, ColonyRetention, ConfigError, HealthConfig, LogFormat, PollConfig, ServerTls,
    StaticAgent, StorageEngine, default_colony_id,
};

const DAY: u64 = 86_400;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn load_fixture(name: &str) -> Result<ColonyConfig, ConfigError> {
    ColonyConfig::load(
        Some(&fixture(name)),
        &home_env(),
        &ColonyOverrides::default(),
    )
}

#[test]
fn every_default() {
    let cfg = load_colony_str("").unwrap();
    assert_eq!(cfg.colony_id, default_colony_id());
    assert_eq!(cfg.data_dir, Path::new("/home/test/.coral/colony"));
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:9000"));
    assert_eq!(cfg.api_tls, None);
    assert_eq!(cfg.auth_token, None);
    assert_eq!(
        cfg.poll,
        PollConfig {
            interval: secs(30),
            timeout: secs(10),
            max_concurrent: 32,
            page_size: 10_000,
            tls: None,
            lease_interval: secs(10),
        }
    );
    assert_eq!(cfg.poll, PollConfig::default());
    assert_eq!(
        cfg.health,
        HealthConfig {
            degraded_after: secs(45),
            unreachable_after: secs(120),
        }
    );
    assert!(cfg.static_agents.is_empty());
    assert_eq!(
        cfg.retention,
        ColonyRetention {
            otel_spans: secs(DAY),
            otel_operations: secs(DAY),
            trace_spans: secs(DAY),
            host_metrics: secs(7 * DAY),
            gaps: secs(30 * DAY),
            beyla_http: secs(30 * DAY),
            beyla_grpc: secs(30 * DAY),
            beyla_sql: secs(14 * DAY),
            beyla_traces: secs(7 * DAY),
        }
    );
    assert_eq!(cfg.cleanup_interval, secs(300));
    assert_eq!(cfg.beyla_traces, BeylaTraceSampling::DEFAULT);
    assert_eq!(cfg.beyla_traces.rate, 1.0);
    assert_eq!(cfg.beyla_traces.slow_threshold, Duration::from_millis(500));
    assert_eq!(cfg.storage, StorageEngine::DuckDb);
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.log.level, "info");
    assert_eq!(cfg.source.as_deref(), Some(Path::new("colony.yaml")));

    let empty_sections = load_colony_str("colony:\n  poll:\n  health:\nstorage:\n").unwrap();
    assert_eq!(empty_sections, cfg);
}

#[test]
fn no_file_and_data_dir_derivation() {
    let none = ColonyOverrides::default();
    let cfg = ColonyConfig::load(None, &env(&[("CORAL_HOME", "/opt/coral")]), &none).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/opt/coral/colony"));
    assert_eq!(cfg.source, None);

    let err = ColonyConfig::load(None, &env(&[]), &none).unwrap_err();
    assert!(matches!(err, ConfigError::NoColonyDataDir), "{err:?}");
    assert_contains_all(
        &err.to_string(),
        &[
            "colony data directory",
            "CORAL_COLONY_DATA_DIR",
            "colony.data_dir",
        ],
    );
    let env_dir = env(&[("CORAL_COLONY_DATA_DIR", "/data/colony")]);
    let cfg = ColonyConfig::load(None, &env_dir, &none).unwrap();
    assert_eq!(cfg.data_dir, Path::new("/data/colony"));
}

#[test]
fn full_fixture_sets_every_field() {
    let cfg = load_fixture("colony-full.yaml").expect("colony-full.yaml loads");
    assert_eq!(cfg.colony_id, "main");
    assert_eq!(cfg.data_dir, Path::new("/var/lib/coral/colony"));
    assert_eq!(cfg.api_endpoint, addr("0.0.0.0:19000"));
    assert_eq!(
        cfg.api_tls,
        Some(ServerTls {
            cert_file: PathBuf::from("tests/fixtures/tls-dummy-cert.pem"),
            key_file: PathBuf::from("tests/fixtures/tls-dummy-key.pem"),
        })
    );
    assert_eq!(cfg.auth_token.as_deref(), Some("dummy-token-from-file"));
    assert_eq!(
        cfg.poll,
        PollConfig {
            interval: secs(45),
            timeout: secs(3),
            max_concurrent: 8,
            page_size: 2500,
            tls: Some(ClientTls {
                ca_file: Some(PathBuf::from("tests/fixtures/tls-dummy-cert.pem")),
                server_name: Some("agents.internal".to_owned()),
            }),
            lease_interval: secs(15),
        }
    );
    assert_eq!(
        cfg.health,
        HealthConfig {
            degraded_after: secs(60),
            unreachable_after: secs(300),
        }
    );
    let agent = |id: &str, endpoint: &str| StaticAgent {
        id: id.to_owned(),
        endpoint: endpoint.to_owned(),
    };
    assert_eq!(
        cfg.static_agents,
        [
            // Bare host:port + poll.tls → https; explicit schemes are kept.
            agent("web-1", "https://10.0.0.5:9001"),
            agent("web-2", "http://web-2.internal:9001"),
            agent("db-1", "https://[fd00::7]:9443"),
        ]
    );
    assert_eq!(
        cfg.retention,
        ColonyRetention {
            otel_spans: secs(36 * 3600),
            otel_operations: secs(12 * 3600),
            trace_spans: secs(6 * 3600),
            host_metrics: secs(3 * DAY),
            gaps: secs(60 * DAY),
            beyla_http: secs(20 * DAY),
            beyla_grpc: secs(21 * DAY),
            beyla_sql: secs(7 * DAY),
            beyla_traces: secs(2 * DAY),
        }
    );
    assert_eq!(cfg.cleanup_interval, secs(600));
    assert_eq!(
        cfg.beyla_traces,
        BeylaTraceSampling {
            rate: 0.1,
            slow_threshold: Duration::from_millis(750),
        }
    );
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.log.level, "coral=debug,info");
    assert_eq!(
        cfg.source.as_deref(),
        Some(fixture("colony-full.yaml").as_path())
    );
    let debug = format!("{cfg:?}");
    assert!(!debug.contains("dummy-token-from-file"), "{debug}");
    assert!(debug.contains("<redacted>"), "{debug}");
}

#[test]
fn minimal_fixture_defaults_the_rest() {
    let cfg = load_fixture("colony-minimal.yaml").expect("colony-minimal.yaml loads");
    assert_eq!(
        cfg.static_agents,
        [StaticAgent {
            id: "web-1".to_owned(),
            endpoint: "http://127.0.0.1:9001".to_owned(),
        }]
    );
    assert_eq!(cfg.poll, PollConfig::DEFAULT);
    assert_eq!(cfg.health, HealthConfig::DEFAULT);
    assert_eq!(cfg.retention, ColonyRetention::DEFAULT);
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:9000"));
}

#[test]
fn misspelled_key_fixture_names_file_key_line_and_suggestion() {
    let err = load_fixture("colony-misspelled-key.yaml").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKey { .. }), "{err:?}");
    assert_eq!(err.key(), Some("colony.poll.intervall"));
    assert_eq!(err.line(), Some(5));
    assert_contains_all(
        &err.to_string(),
        &[
            "colony-misspelled-key.yaml",
            "unknown key `colony.poll.intervall`",
            "(line 5)",
            "did you mean `interval`?",
            "expected one of: interval, timeout, max_concurrent, page_size, tls",
        ],
    );
}

const PRECEDENCE_FILE: &str = "\
colony:
  id: from-file
  data_dir: /file/colony
  api:
    endpoint: \"127.0.0.1:1000\"
  admin:
    endpoint: \"127.0.0.1:1003\"
  auth:
    token: file-token
  poll:
    interval: 10s
  log:
    format: text
    level: warn
";

fn load_precedence(
    pairs: &[(&str, &str)],
    flags: &ColonyOverrides,
) -> Result<ColonyConfig, ConfigError> {
    ColonyConfig::from_yaml_str(
        PRECEDENCE_FILE,
        Path::new("colony.yaml"),
        &env(pairs),
        flags,
    )
}

const COLONY_ENV: &[(&str, &str)] = &[
    ("HOME", "/home/test"),
    ("CORAL_COLONY_ID", "from-env"),
    ("CORAL_COLONY_DATA_DIR", "/env/colony"),
    ("CORAL_COLONY_API_ENDPOINT", "127.0.0.1:2000"),
    ("CORAL_COLONY_ADMIN_ENDPOINT", "127.0.0.1:2003"),
    ("CORAL_POLL_INTERVAL", "20s"),
    ("CORAL_TOKEN", "env-token"),
    ("CORAL_LOG_FORMAT", "json"),
    ("CORAL_LOG_LEVEL", "debug"),
];

#[test]
fn file_then_env_then_flags() {
    let none = ColonyOverrides::default();
    let cfg = load_precedence(&[("HOME", "/home/test")], &none).unwrap();
    assert_eq!(cfg.colony_id, "from-file");
    assert_eq!(cfg.data_dir, Path::new("/file/colony"));
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:1000"));
    assert_eq!(cfg.admin.endpoint, addr("127.0.0.1:1003"));
    assert!(!cfg.admin.red_metrics, "RED exposition is opt-in");
    assert_eq!(cfg.poll.interval, secs(10));
    assert_eq!(cfg.auth_token.as_deref(), Some("file-token"));
    assert_eq!(cfg.log.level, "warn");

    let cfg = load_precedence(COLONY_ENV, &none).unwrap();
    assert_eq!(cfg.colony_id, "from-env");
    assert_eq!(cfg.data_dir, Path::new("/env/colony"));
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:2000"));
    assert_eq!(cfg.admin.endpoint, addr("127.0.0.1:2003"));
    assert_eq!(cfg.poll.interval, secs(20));
    let red = load_precedence(&[("HOME", "/h"), ("CORAL_RED_METRICS", "true")], &none).unwrap();
    assert!(red.admin.red_metrics);
    assert_eq!(cfg.auth_token.as_deref(), Some("env-token"));
    assert_eq!(cfg.log.format, LogFormat::Json);
    assert_eq!(cfg.log.level, "debug");

    let flags = ColonyOverrides {
        data_dir: Some(PathBuf::from("/flag/colony")),
        api_endpoint: Some("127.0.0.1:3000".into()),
        admin_endpoint: Some("127.0.0.1:3003".into()),
        red_metrics: true,
        poll_interval: Some("1m".into()),
        token: Some("flag-token".into()),
        colony_id: Some("from-flag".into()),
        log_format: Some("text".into()),
        log_level: Some("trace".into()),
    };
    let cfg = load_precedence(COLONY_ENV, &flags).unwrap();
    assert_eq!(cfg.colony_id, "from-flag");
    assert_eq!(cfg.data_dir, Path::new("/flag/colony"));
    assert_eq!(cfg.api_endpoint, addr("127.0.0.1:3000"));
    assert_eq!(cfg.admin.endpoint, addr("127.0.0.1:3003"));
    assert!(cfg.admin.red_metrics);
    assert_eq!(cfg.poll.interval, secs(60));
    assert_eq!(cfg.auth_token.as_deref(), Some("flag-token"));
    assert_eq!(cfg.log.format, LogFormat::Text);
    assert_eq!(cfg.log.level, "trace");
    assert!(!format!("{flags:?}").contains("flag-token"));
}

#[test]
fn bad_env_and_flag_values_name_the_source() {
    let cases = [
        ("CORAL_COLONY_ID", "a b", "whitespace"),
        (
            "CORAL_COLONY_API_ENDPOINT",
            "localhost:9000",
            "not a valid host:port",
        ),
        ("CORAL_POLL_INTERVAL", "500ms", "at least 1s"),
        ("CORAL_POLL_INTERVAL", "2h", "at most 1h"),
        ("CORAL_POLL_INTERVAL", "soon", "\"500ms\""),
        ("CORAL_LOG_FORMAT", "xml", "text, json"),
        ("CORAL_RED_METRICS", "yes", "true"),
        (
            "CORAL_COLONY_ADMIN_ENDPOINT",
            "localhost:9003",
            "not a valid host:port",
        ),
    ];
    for (var, value, expected) in cases {
        let err = load_precedence(&[("HOME", "/h"), (var, value)], &ColonyOverrides::default())
            .unwrap_err();
        assert!(matches!(err, ConfigError::Env { .. }), "{var}: {err:?}");
        assert_contains_all(&err.to_string(), &[var, &format!("{value:?}"), expected]);
    }
    // The token's value is never shown.
    let err = load_precedence(
        &[("HOME", "/h"), ("CORAL_TOKEN", "sec ret")],
        &ColonyOverrides::default(),
    )
    .unwrap_err();
    let msg = err.to_string();
    assert_contains_all(&msg, &["CORAL_TOKEN", "hidden", "printable ASCII"]);
    assert!(!msg.contains("sec ret"), "{msg}");

    let flag_cases = [
        (
            ColonyOverrides {
                api_endpoint: Some("nope".into()),
                ..Default::default()
            },
            "--api-endpoint",
            "not a valid host:port",
        ),
        (
            ColonyOverrides {
                poll_interval: Some("500ms".into()),
                ..Default::default()
            },
            "--poll-interval",
            "at least 1s",
        ),
        (
            ColonyOverrides {
                log_format: Some("xml".into()),
                ..Default::default()
            },
            "--log-format",
            "text, json",
        ),
        (
            ColonyOverrides {
                colony_id: Some(String::new()),
                ..Default::default()
            },
            "--colony-id",
            "colony id must not be empty",
        ),
        (
            ColonyOverrides {
                token: Some(" ".into()),
                ..Default::default()
            },
            "--token",
            "must not be empty",
        ),
    ];
    for (flags, flag, expected) in flag_cases {
        let err = load_precedence(&[("HOME", "/h")], &flags).unwrap_err();
        assert!(matches!(err, ConfigError::Flag { .. }), "{flag}: {err:?}");
        assert_contains_all(&err.to_string(), &[&format!("flag {flag}"), expected]);
    }
}

#[test]
fn env_var_list_is_complete() {
    assert_eq!(COLONY_ENV_VARS.len(), 17);
    for (var, _) in COLONY_ENV {
        assert!(COLONY_ENV_VARS.contains(var), "{var}");
    }
    assert!(COLONY_ENV_VARS.contains(&"CORAL_HOME"));
    for var in [
        "CORAL_STORAGE_ENGINE",
        "CORAL_STORAGE_URL",
        "CORAL_STORAGE_DATABASE",
        "CORAL_STORAGE_USER",
        "CORAL_STORAGE_PASSWORD_FILE",
        "CORAL_STORAGE_CLUSTER",
    ] {
        assert!(COLONY_ENV_VARS.contains(&var), "{var}");
    }
}

/// A ClickHouse section with every setting; `{password_file}` is filled in.
const CLICKHOUSE_FILE: &str = "\
storage:
  retention:
    gaps: 10d
  engine: clickhouse
  url: \"HTTP://CH.Internal:8123/\"
  database: coral_prod
  user: coral_writer
  password_file: {password_file}
  cluster: coral_cluster
";

#[test]
fn storage_defaults_to_duckdb() {
    let cfg = load_colony_str("storage:\n  cleanup_interval: 1m\n").unwrap();
    assert_eq!(cfg.storage, StorageEngine::DuckDb);
    assert_eq!(StorageEngine::default(), StorageEngine::DuckDb);
    let explicit = load_colony_str("storage:\n  engine: duckdb\n").unwrap();
    assert_eq!(explicit.storage, StorageEngine::DuckDb);
    assert!(format!("{explicit:?}").contains("storage: DuckDb"));
}

#[test]
fn clickhouse_section_with_password_file() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("ch-password");
    std::fs::write(&password_file, "pw-Sekr3t!\n\n").unwrap();
    let yaml = CLICKHOUSE_FILE.replace("{password_file}", password_file.to_str().unwrap());
    let cfg = load_colony_str(&yaml).unwrap();
    assert_eq!(
        cfg.storage,
        StorageEngine::ClickHouse(ClickHouseStorage {
            url: "http://ch.internal:8123".to_owned(),
            database: "coral_prod".to_owned(),
            user: "coral_writer".to_owned(),
            password: "pw-Sekr3t!".to_owned(),
            cluster: Some("coral_cluster".to_owned()),
        })
    );
    // The rest of the section still applies.
    assert_eq!(cfg.retention.gaps, secs(10 * DAY));
    // Debug output, of the whole config and of the storage alone, hides the password.
    for debug in [format!("{cfg:?}"), format!("{:?}", cfg.storage)] {
        assert!(!debug.contains("pw-Sekr3t!"), "{debug}");
        assert_contains_all(
            &debug,
            &[
                "ClickHouse",
                "http://ch.internal:8123",
                "coral_writer",
                "<redacted>",
            ],
        );
    }

    // Only the URL: every other setting takes its default.
    let cfg =
        load_colony_str("storage:\n  engine: clickhouse\n  url: \"https://[fd00::9]:8443\"\n")
            .unwrap();
    let StorageEngine::ClickHouse(ch) = &cfg.storage else {
        panic!("expected ClickHouse: {cfg:?}");
    };
    assert_eq!(ch.url, "https://[fd00::9]:8443");
    assert_eq!(ch.database, "coral");
    assert_eq!(ch.user, "default");
    assert_eq!(ch.password, "");
    assert_eq!(ch.cluster, None);
    assert!(format!("{ch:?}").contains("password: None"), "{ch:?}");
}

#[test]
fn storage_env_overrides_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file_password = dir.path().join("file-password");
    let env_password = dir.path().join("env-password");
    std::fs::write(&env_password, "from-env-pw\n").unwrap();
    // The file's password file does not exist: it is not read when the
    // variable overrides it.
    let yaml = CLICKHOUSE_FILE.replace("{password_file}", file_password.to_str().unwrap());
    let pairs = [
        ("HOME", "/h"),
        ("CORAL_STORAGE_ENGINE", "clickhouse"),
        ("CORAL_STORAGE_URL", "https://ch-env:8443"),
        ("CORAL_STORAGE_DATABASE", "coral_env"),
        ("CORAL_STORAGE_USER", "env_user"),
        (
            "CORAL_STORAGE_PASSWORD_FILE",
            env_password.to_str().unwrap(),
        ),
        ("CORAL_STORAGE_CLUSTER", "env_cluster"),
    ];
    let load = |yaml: &str, pairs: &[(&str, &str)]| {
        ColonyConfig::from_yaml_str(
            yaml,
            Path::new("colony.yaml"),
            &env(pairs),
            &ColonyOverrides::default(),
        )
    };
    let cfg = load(&yaml, &pairs).unwrap();
    assert_eq!(
        cfg.storage,
        StorageEngine::ClickHouse(ClickHouseStorage {
            url: "https://ch-env:8443".to_owned(),
            database: "coral_env".to_owned(),
            user: "env_user".to_owned(),
            password: "from-env-pw".to_owned(),
            cluster: Some("env_cluster".to_owned()),
        })
    );

    // The environment alone switches to ClickHouse; unset settings default.
    let cfg = load(
        "",
        &[
            ("HOME", "/h"),
            ("CORAL_STORAGE_ENGINE", "clickhouse"),
            ("CORAL_STORAGE_URL", "http://127.0.0.1:8123/"),
        ],
    )
    .unwrap();
    let StorageEngine::ClickHouse(ch) = cfg.storage else {
        panic!("expected ClickHouse");
    };
    assert_eq!(
        (ch.url.as_str(), ch.database.as_str(), ch.user.as_str()),
        ("http://127.0.0.1:8123", "coral", "default")
    );

    // A variable overrides one file setting and keeps the others.
    let file = "storage:\n  engine: clickhouse\n  url: \"http://a:8123\"\n  database: from_file\n";
    let cfg = load(
        file,
        &[("HOME", "/h"), ("CORAL_STORAGE_URL", "http://b:8123")],
    )
    .unwrap();
    let StorageEngine::ClickHouse(ch) = cfg.storage else {
        panic!("expected ClickHouse");
    };
    assert_eq!(
        (ch.url.as_str(), ch.database.as_str()),
        ("http://b:8123", "from_file")
    );

    // CORAL_STORAGE_ENGINE=duckdb over a file that says clickhouse.
    let cfg = load(
        "storage:\n  engine: clickhouse\n",
        &[("HOME", "/h"), ("CORAL_STORAGE_ENGINE", "duckdb")],
    )
    .unwrap();
    assert_eq!(cfg.storage, StorageEngine::DuckDb);
}
