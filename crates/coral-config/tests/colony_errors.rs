//! Colony configuration errors: tokens, TLS files, static agents, health
//! thresholds, value ranges, storage engine settings and unknown keys.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_contains_all, colony_err, env, load_colony_str};
use coral_config::{ClientTls, ColonyConfig, ColonyOverrides, ConfigError};

#[test]
fn token_and_token_file_together_are_an_error() {
    let yaml = "colony:\n  auth:\n    token: a\n    token_file: /etc/coral/token\n";
    let err = colony_err(yaml);
    assert_eq!(err.key(), Some("colony.auth.token_file"));
    assert_eq!(err.line(), Some(4));
    assert_contains_all(
        &err.to_string(),
        &[
            "colony.yaml",
            "`colony.auth.token` (line 3)",
            "set only one",
        ],
    );
}

#[test]
fn token_file_is_read_trimmed_and_overridable() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, "\n  tok-123 \n").unwrap();
    let yaml = format!("colony:\n  auth:\n    token_file: {}\n", path.display());
    let cfg = load_colony_str(&yaml).unwrap();
    assert_eq!(cfg.auth_token.as_deref(), Some("tok-123"));

    // A missing token file: the error names the key, line and path.
    let missing = dir.path().join("absent");
    let yaml = format!("colony:\n  auth:\n    token_file: {}\n", missing.display());
    let err = colony_err(&yaml);
    assert_eq!(err.key(), Some("colony.auth.token_file"));
    assert_eq!(err.line(), Some(3));
    assert_contains_all(
        &err.to_string(),
        &[
            "colony.yaml",
            "cannot read token file",
            &missing.display().to_string(),
        ],
    );
    // ...is not read at all when CORAL_TOKEN overrides it.
    let env = env(&[("HOME", "/h"), ("CORAL_TOKEN", "from-env")]);
    let cfg = ColonyConfig::from_yaml_str(
        &yaml,
        Path::new("colony.yaml"),
        &env,
        &ColonyOverrides::default(),
    )
    .unwrap();
    assert_eq!(cfg.auth_token.as_deref(), Some("from-env"));

    // An empty token file.
    std::fs::write(&path, " \n").unwrap();
    let yaml = format!("colony:\n  auth:\n    token_file: {}\n", path.display());
    assert_contains_all(&colony_err(&yaml).to_string(), &["must not be empty"]);
}

#[test]
fn tls_files_must_exist_and_come_in_pairs() {
    let yaml = "colony:\n  api:\n    tls:\n      cert_file: /nonexistent/cert.pem\n      key_file: tests/fixtures/tls-dummy-key.pem\n";
    let err = colony_err(yaml);
    assert_eq!(err.key(), Some("colony.api.tls.cert_file"));
    assert_eq!(err.line(), Some(4));
    assert_contains_all(
        &err.to_string(),
        &["colony.yaml", "/nonexistent/cert.pem", "does not exist"],
    );

    let yaml = "colony:\n  api:\n    tls:\n      cert_file: tests/fixtures/tls-dummy-cert.pem\n";
    assert_contains_all(
        &colony_err(yaml).to_string(),
        &[
            "`colony.api.tls`",
            "`colony.api.tls.key_file` is missing",
            "both",
        ],
    );

    let yaml = "colony:\n  poll:\n    tls:\n      ca_file: missing-ca.pem\n";
    let err = colony_err(yaml);
    assert_eq!(err.key(), Some("colony.poll.tls.ca_file"));
    assert_contains_all(
        &err.to_string(),
        &[
            "missing-ca.pem",
            "relative paths are resolved against the working directory",
        ],
    );

    // An empty poll.tls section = TLS with the system roots.
    let cfg = load_colony_str("colony:\n  poll:\n    tls: {}\n").unwrap();
    assert_eq!(cfg.poll.tls, Some(ClientTls::default()));
}

#[test]
fn static_agent_endpoints_are_validated_and_normalized() {
    let yaml_for = |endpoint: &str| {
        format!(
            "colony:\n  agents:\n    - id: ok\n      endpoint: \"a:1\"\n    - id: bad\n      endpoint: \"{endpoint}\"\n"
        )
    };
    for (bad, reason) in [
        ("ftp://x:1", "unsupported scheme"),
        ("host", "port is missing"),
        (":9000", "host is missing"),
        ("http://h:1/path", "found `/path`"),
    ] {
        let err = colony_err(&yaml_for(bad));
        assert_eq!(err.key(), Some("colony.agents[1].endpoint"), "{bad}");
        assert_eq!(err.line(), Some(6), "{bad}");
        assert_contains_all(
            &err.to_string(),
            &[
                "colony.yaml",
                reason,
                "host:port, http://host:port or https://host:port",
            ],
        );
    }
    for (good, normalized) in [
        ("h:1", "http://h:1"),
        ("http://h:1", "http://h:1"),
        ("https://h:1", "https://h:1"),
        ("[::1]:9001", "http://[::1]:9001"),
    ] {
        let cfg = load_colony_str(&yaml_for(good)).unwrap();
        assert_eq!(cfg.static_agents[1].endpoint, normalized, "{good}");
    }
}

#[test]
fn static_agent_list_errors() {
    let err = colony_err(
        "colony:\n  agents:\n    - id: web-1\n      endpoint: \"a:1\"\n    - id: web-2\n      endpoint: \"b:1\"\n    - id: web-1\n      endpoint: \"c:1\"\n",
    );
    assert_eq!(err.key(), Some("colony.agents[2].id"));
    assert_eq!(err.line(), Some(7));
    assert_contains_all(
        &err.to_string(),
        &[
            "\"web-1\" is listed twice",
            "colony.agents[0]",
            "colony.agents[2]",
        ],
    );

    let err = colony_err("colony:\n  agents:\n    - id: web-1\n");
    assert_eq!(err.key(), Some("colony.agents[0].endpoint"));
    assert_contains_all(&err.to_string(), &["is required", "`id` and `endpoint`"]);

    let err = colony_err("colony:\n  agents:\n    - endpoint: \"a:1\"\n      idd: x\n");
    assert_eq!(err.key(), Some("colony.agents[0].idd"));
    assert_eq!(err.line(), Some(4));
    assert_contains_all(&err.to_string(), &["did you mean `id`?"]);

    let err = colony_err("colony:\n  agents: web-1\n");
    assert_eq!(err.key(), Some("colony.agents"));
    assert_contains_all(&err.to_string(), &["expected a list"]);

    let err = colony_err("colony:\n  agents:\n    - web-1\n");
    assert_eq!(err.key(), Some("colony.agents[0]"));
    assert_contains_all(
        &err.to_string(),
        &["expected a mapping with keys id, endpoint"],
    );
}

#[test]
fn health_thresholds_must_be_ordered() {
    let err = colony_err("colony:\n  health:\n    degraded_after: 2m\n    unreachable_after: 1m\n");
    assert_eq!(err.key(), Some("colony.health.unreachable_after"));
    assert_eq!(err.line(), Some(4));
    assert_contains_all(
        &err.to_string(),
        &[": 1m must be longer than `colony.health.degraded_after` (2m)"],
    );
    // Equal is not enough; the default unreachable_after (2m) counts too.
    let err = colony_err("colony:\n  health:\n    degraded_after: 2m\n");
    assert_eq!(err.key(), Some("colony.health.degraded_after"));
    assert_contains_all(
        &err.to_string(),
        &[": 2m must be shorter than `colony.health.unreachable_after` (2m)"],
    );
}

#[test]
fn value_ranges() {
    let cases = [
        (
            "colony:\n  poll:\n    interval: 500ms\n",
            "colony.poll.interval",
            "must be at least 1s",
        ),
        (
            "colony:\n  poll:\n    interval: 2h\n",
            "colony.poll.interval",
            "must be at most 1h",
        ),
        (
            "colony:\n  poll:\n    timeout: 50ms\n",
            "colony.poll.timeout",
            "at least 100ms",
        ),
        (
            "colony:\n  poll:\n    max_concurrent: 0\n",
            "colony.poll.max_concurrent",
            "from 1 to 1024",
        ),
        (
            "colony:\n  poll:\n    max_concurrent: 1025\n",
            "colony.poll.max_concurrent",
            "from 1 to 1024",
        ),
        (
            "colony:\n  poll:\n    page_size: 50001\n",
            "colony.poll.page_size",
            "from 1 to 50000",
        ),
        (
            "colony:\n  health:\n    degraded_after: 0s\n",
            "colony.health.degraded_after",
            "at least 1s",
        ),
        (
            "storage:\n  cleanup_interval: 10ms\n",
            "storage.cleanup_interval",
            "at least 1s",
        ),
        (
            "storage:\n  retention:\n    gaps: 0s\n",
            "storage.retention.gaps",
            "longer than 0",
        ),
        (
            "storage:\n  beyla:\n    retention:\n      traces: forever\n",
            "storage.beyla.retention.traces",
            "\"500ms\"",
        ),
        (
            "colony:\n  api:\n    endpoint: \"localhost:9000\"\n",
            "colony.api.endpoint",
            "not a valid host:port",
        ),
        ("colony:\n  id: \"a b\"\n", "colony.id", "whitespace"),
        (
            "colony:\n  log:\n    format: xml\n",
            "colony.log.format",
            "text, json",
        ),
        (
            "storage:\n  retention: 24h\n",
            "storage.retention",
            "expected a mapping with keys otel_spans",
        ),
    ];
    for (yaml, key, expected) in cases {
        let err = colony_err(yaml);
        assert_eq!(err.key(), Some(key), "{yaml}");
        assert_contains_all(
            &err.to_string(),
            &["colony.yaml", &format!("`{key}`"), expected],
        );
    }
    // Bounds are inclusive.
    let cfg = load_colony_str(
        "colony:\n  poll:\n    interval: 1h\n    max_concurrent: 1024\n    page_size: 50000\n",
    )
    .unwrap();
    assert_eq!(cfg.poll.interval, Duration::from_secs(3600));
}

#[test]
fn unknown_keys_at_every_level() {
    let cases = [
        ("colny:\n  id: x\n", "colny", 1, Some("colony")),
        ("poll:\n  interval: 1s\n", "poll", 1, Some("colony.poll")),
        (
            "colony:\n  auth:\n    tokn: x\n",
            "colony.auth.tokn",
            3,
            Some("token"),
        ),
        (
            "colony:\n  api:\n    tls:\n      certfile: x\n",
            "colony.api.tls.certfile",
            4,
            Some("cert_file"),
        ),
        (
            "colony:\n  health:\n    degraded: 1m\n",
            "colony.health.degraded",
            3,
            None,
        ),
        (
            "storage:\n  retention:\n    otel_span: 1h\n",
            "storage.retention.otel_span",
            3,
            Some("otel_spans"),
        ),
        (
            "storage:\n  beyla:\n    retention:\n      trace: 1d\n",
            "storage.beyla.retention.trace",
            4,
            Some("traces"),
        ),
        ("agent:\n  id: x\n", "agent", 1, None),
        (
            "storage:\n  engin: clickhouse\n",
            "storage.engin",
            2,
            Some("engine"),
        ),
        (
            "storage:\n  pasword_file: x\n",
            "storage.pasword_file",
            2,
            Some("password_file"),
        ),
    ];
    for (yaml, key, line, suggestion) in cases {
        let err = colony_err(yaml);
        assert!(
            matches!(err, ConfigError::UnknownKey { .. }),
            "{yaml}: {err:?}"
        );
        assert_eq!((err.key(), err.line()), (Some(key), Some(line)), "{yaml}");
        let msg = err.to_string();
        if let Some(s) = suggestion {
            assert_contains_all(&msg, &[&format!("did you mean `{s}`?")]);
        }
    }
}

/// Loads colony YAML with the extra environment `pairs` (and `HOME`).
fn colony_env_err(yaml: &str, pairs: &[(&str, &str)]) -> ConfigError {
    let mut all = vec![("HOME", "/h")];
    all.extend_from_slice(pairs);
    match ColonyConfig::from_yaml_str(
        yaml,
        Path::new("colony.yaml"),
        &env(&all),
        &ColonyOverrides::default(),
    ) {
        Ok(cfg) => panic!("expected an error for:\n{yaml}\n{pairs:?}\ngot {cfg:?}"),
        Err(err) => err,
    }
}

/// The password written to the test password files; no error may show it.
const PASSWORD: &str = "pw-Sekr3t!";

#[test]
fn storage_engine_values_are_checked() {
    let cases = [
        (
            "storage:\n  engine: sqlite\n",
            "storage.engine",
            2,
            "expected one of: duckdb",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"tcp://ch:9000\"\n",
            "storage.url",
            3,
            "unsupported scheme `tcp://`",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"ch:8123\"\n",
            "storage.url",
            3,
            "the scheme is missing",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"http://:8123\"\n",
            "storage.url",
            3,
            "the host is missing",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"http://ch:8123/coral\"\n",
            "storage.url",
            3,
            "found `/coral`",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n  database: coral-prod\n",
            "storage.database",
            4,
            "not a plain identifier",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n  cluster: \"1st\"\n",
            "storage.cluster",
            4,
            "not a plain identifier",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n  user: \"a b\"\n",
            "storage.user",
            4,
            "whitespace",
        ),
        (
            "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n  password_file: \"\"\n",
            "storage.password_file",
            4,
            "must not be empty",
        ),
    ];
    for (yaml, key, line, expected) in cases {
        let err = colony_err(yaml);
        assert!(
            matches!(err, ConfigError::InvalidValue { .. }),
            "{yaml}: {err:?}"
        );
        assert_eq!((err.key(), err.line()), (Some(key), Some(line)), "{yaml}");
        assert_contains_all(
            &err.to_string(),
            &["colony.yaml", &format!("`{key}`"), expected],
        );
    }
    // Every URL error shows the accepted form.
    let err = colony_err("storage:\n  engine: clickhouse\n  url: \"ftp://ch:21\"\n");
    assert_contains_all(
        &err.to_string(),
        &[
            "http://host:port or https://host:port",
            "http://127.0.0.1:8123",
        ],
    );
    // A password in the URL is refused without being shown.
    let err = colony_err(&format!(
        "storage:\n  engine: clickhouse\n  url: \"http://u:{PASSWORD}@ch:8123\"\n"
    ));
    let msg = err.to_string();
    assert_contains_all(&msg, &["`storage.url`", "storage.password_file"]);
    assert!(!msg.contains(PASSWORD), "{msg}");
    // Identifiers are limited to 64 characters.
    let long = "d".repeat(65);
    let err = colony_err(&format!(
        "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n  database: {long}\n"
    ));
    assert_contains_all(&err.to_string(), &["`storage.database`", "at most 64"]);
}

#[test]
fn clickhouse_without_url_names_storage_url() {
    let err = colony_err("storage:\n  cleanup_interval: 1m\n  engine: clickhouse\n");
    assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err:?}");
    assert_eq!(err.key(), Some("storage.url"));
    assert_contains_all(
        &err.to_string(),
        &[
            "colony.yaml",
            "`storage.url`",
            "is required with `storage.engine: clickhouse` (line 3)",
            "url: http://127.0.0.1:8123",
            "CORAL_STORAGE_URL",
        ],
    );
    // The engine from the environment: the error names the variable.
    let err = colony_env_err("", &[("CORAL_STORAGE_ENGINE", "clickhouse")]);
    assert!(matches!(err, ConfigError::Env { .. }), "{err:?}");
    assert_contains_all(
        &err.to_string(),
        &[
            "CORAL_STORAGE_ENGINE",
            "`storage.url` is required",
            "CORAL_STORAGE_URL",
            "http://127.0.0.1:8123",
        ],
    );
}

#[test]
fn clickhouse_settings_with_duckdb_are_errors() {
    let only = "is only read with `storage.engine: clickhouse`";
    let cases = [
        (
            "url: \"http://ch:8123\"",
            "storage.url",
            "duckdb (the default)",
        ),
        (
            "database: coral",
            "storage.database",
            "duckdb (the default)",
        ),
        ("user: coral", "storage.user", "duckdb (the default)"),
        ("cluster: c1", "storage.cluster", "duckdb (the default)"),
        (
            "password_file: /nonexistent/pw",
            "storage.password_file",
            "duckdb (the default)",
        ),
    ];
    for (line, key, engine) in cases {
        let yaml = format!("storage:\n  {line}\n");
        let err = colony_err(&yaml);
        assert_eq!((err.key(), err.line()), (Some(key), Some(2)), "{yaml}");
        assert_contains_all(
            &err.to_string(),
            &[
                "colony.yaml",
                &format!("`{key}`"),
                only,
                engine,
                &format!("remove `{key}`"),
            ],
        );
    }
    // An explicit `engine: duckdb` is named with its line.
    let err = colony_err("storage:\n  engine: duckdb\n  url: \"http://ch:8123\"\n");
    assert_eq!((err.key(), err.line()), (Some("storage.url"), Some(3)));
    assert_contains_all(&err.to_string(), &[only, "`storage.engine`, line 2"]);

    // A variable while the engine is DuckDB names the variable and the key.
    let err = colony_env_err("", &[("CORAL_STORAGE_URL", "http://ch:8123")]);
    assert!(matches!(err, ConfigError::Env { .. }), "{err:?}");
    assert_contains_all(
        &err.to_string(),
        &[
            "CORAL_STORAGE_URL",
            "`storage.url` ",
            only,
            "unset CORAL_STORAGE_URL",
        ],
    );
    // The file's ClickHouse settings with CORAL_STORAGE_ENGINE=duckdb.
    let err = colony_env_err(
        "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n",
        &[("CORAL_STORAGE_ENGINE", "duckdb")],
    );
    assert_eq!(err.key(), Some("storage.url"));
    assert_contains_all(&err.to_string(), &[only, "from CORAL_STORAGE_ENGINE"]);
}

#[test]
fn password_file_errors_never_show_the_password() {
    let dir = tempfile::tempdir().unwrap();
    let yaml_for = |path: &Path| {
        format!(
            "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n  password_file: {}\n",
            path.display()
        )
    };

    // A missing file: the error names the key, line and path.
    let missing = dir.path().join("absent");
    let err = colony_err(&yaml_for(&missing));
    assert_eq!(
        (err.key(), err.line()),
        (Some("storage.password_file"), Some(4))
    );
    assert_contains_all(
        &err.to_string(),
        &[
            "colony.yaml",
            "cannot read password file",
            &missing.display().to_string(),
        ],
    );
    // ...from the environment: the error names the variable.
    let err = colony_env_err(
        "storage:\n  engine: clickhouse\n  url: \"http://ch:8123\"\n",
        &[("CORAL_STORAGE_PASSWORD_FILE", missing.to_str().unwrap())],
    );
    assert!(matches!(err, ConfigError::Env { .. }), "{err:?}");
    assert_contains_all(
        &err.to_string(),
        &["CORAL_STORAGE_PASSWORD_FILE", "cannot read password file"],
    );

    // Unusable contents; the message never holds the password.
    let path = dir.path().join("pw");
    for (content, expected) in [
        (" \n\n", "is empty"),
        (&*format!("{PASSWORD}\nsecond-line\n"), "line breaks"),
    ] {
        std::fs::write(&path, content).unwrap();
        let err = colony_err(&yaml_for(&path));
        assert_eq!(err.key(), Some("storage.password_file"));
        let msg = err.to_string();
        assert_contains_all(&msg, &[expected, &path.display().to_string()]);
        assert!(
            !msg.contains(PASSWORD) && !msg.contains("second-line"),
            "{msg}"
        );
    }

    // Other errors with a readable password file do not show it either.
    std::fs::write(&path, PASSWORD).unwrap();
    let good = yaml_for(&path);
    for (yaml, pairs) in [
        (format!("{good}  database: \"x-y\"\n"), vec![]),
        (good.clone(), vec![("CORAL_STORAGE_ENGINE", "duckdb")]),
        (good.clone(), vec![("CORAL_STORAGE_URL", "tcp://ch:9000")]),
    ] {
        let msg = colony_env_err(&yaml, &pairs).to_string();
        assert!(!msg.contains(PASSWORD), "{msg}");
    }
}

#[test]
fn bad_storage_env_values_name_the_variable() {
    let cases = [
        ("CORAL_STORAGE_ENGINE", "sqlite", "expected one of: duckdb"),
        ("CORAL_STORAGE_URL", "tcp://ch:9000", "unsupported scheme"),
        ("CORAL_STORAGE_URL", "http://:8123", "host is missing"),
        ("CORAL_STORAGE_DATABASE", "co-ral", "not a plain identifier"),
        ("CORAL_STORAGE_USER", "a b", "whitespace"),
        ("CORAL_STORAGE_CLUSTER", "9c", "not a plain identifier"),
    ];
    for (var, value, expected) in cases {
        let err = colony_env_err("", &[("CORAL_STORAGE_ENGINE", "clickhouse"), (var, value)]);
        assert!(matches!(err, ConfigError::Env { .. }), "{var}: {err:?}");
        assert_contains_all(&err.to_string(), &[var, &format!("{value:?}"), expected]);
    }
    // A URL with a password is not echoed.
    let url = format!("http://u:{PASSWORD}@ch:8123");
    let msg = colony_env_err("", &[("CORAL_STORAGE_URL", &url)]).to_string();
    assert_contains_all(&msg, &["CORAL_STORAGE_URL", "hidden"]);
    assert!(!msg.contains(PASSWORD), "{msg}");
}
