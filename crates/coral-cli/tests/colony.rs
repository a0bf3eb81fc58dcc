//! The built `coral` binary as a colony: `coral up` end to end (its banner,
//! queries, hints for empty results and misspelt services, a second `coral
//! up` on taken ports), query errors, and a colony killed mid-poll that
//! loses and duplicates nothing.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::process::signal;
use common::{coral, free_port, json, post_traces, run, spans_json, up_command, wait_for};

fn wait_exit(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "process did not stop");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn up_runs_a_colony_and_an_agent_and_answers_queries() {
    let dir = tempfile::tempdir().unwrap();
    // No `coral` on PATH: the banner must name this executable in full.
    let empty_path = dir.path().join("empty-path");
    std::fs::create_dir_all(&empty_path).unwrap();
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_coral")).unwrap();
    let mut child = up_command(dir.path(), "up-agent", Path::new(""))
        .env("PATH", &empty_path)
        .env_remove("BEYLA_PATH")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (mut http, mut colony, mut agent_api) = (String::new(), String::new(), String::new());
    let mut banner = String::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        banner.push_str(&line);
        banner.push('\n');
        if let Some(v) = line.trim().strip_prefix("OTLP HTTP:") {
            http = v.trim().to_owned();
        }
        if let Some(v) = line.trim().strip_prefix("colony API:") {
            colony = v.trim().to_owned();
        }
        if let Some(v) = line.trim().strip_prefix("agent API:") {
            agent_api = v.trim().to_owned();
        }
        if line.contains("Ctrl-C") {
            break;
        }
    }
    assert!(banner.contains("OTEL_EXPORTER_OTLP_ENDPOINT"), "{banner}");
    assert!(!http.is_empty() && !colony.is_empty(), "{banner}");
    assert!(
        banner.contains(&format!(
            "Then: {0} agents · {0} query otel <service>",
            exe.display()
        )),
        "{banner}"
    );
    // Beyla is not installed here: one short line, not every place searched.
    let beyla = banner.lines().find(|l| l.contains("Beyla")).unwrap();
    assert_eq!(
        beyla.trim(),
        format!(
            "Beyla off: not installed — `{} beyla install`",
            exe.display()
        ),
        "{banner}"
    );

    // Before any data: exit 0, the hint and when minutes appear.
    let (code, table, _) = run(&["query", "otel", "shop", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("No spans of shop in this window."),
        "{table}"
    );
    assert!(
        table.contains("no service has reported data in the last 7 days"),
        "{table}"
    );
    assert!(
        table.contains("flush_grace (10 s by default)") && table.contains("appears by about"),
        "{table}"
    );
    let (code, table, _) = run(&["query", "services", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(table.contains("Minutes appear once they close"), "{table}");

    post_traces(&http, spans_json("shop", 1, 50, 5));
    wait_for("the colony has the minute", Duration::from_secs(90), || {
        let v = json(&["query", "otel", "shop", "--colony", &colony, "-o", "json"]);
        v["totals"][0]["total_spans"] == 50
    });
    let v = json(&["query", "otel", "shop", "--colony", &colony, "-o", "json"]);
    assert_eq!(v["service"], "shop");
    assert_eq!(v["totals"][0]["error_count"], 10);
    assert_eq!(v["totals"][0]["error_rate"], 0.2);
    assert_eq!(v["minutes"].as_array().unwrap().len(), 1);
    assert!(
        v["minutes"][0]["bucket_time"]
            .as_str()
            .unwrap()
            .ends_with(":00Z")
    );

    let agents = json(&["agents", "--colony", &colony, "-o", "json"]);
    assert_eq!(agents["agents"][0]["agent_id"], "up-agent");
    assert_eq!(agents["agents"][0]["health"], "healthy");
    assert_eq!(agents["agents"][0]["gap_count"], 0);
    let beyla = &agents["agents"][0]["beyla"];
    assert_eq!(beyla["reason"], "not installed — `coral beyla install`");
    assert_eq!(
        beyla["summary"],
        "Beyla off: not installed — `coral beyla install`"
    );
    let (code, table, _) = run(&["agents", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(
        table.ends_with("\nup-agent: Beyla off: not installed — `coral beyla install`\n"),
        "{table}"
    );
    let (code, table, _) = run(&["query", "services", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("Next: coral query otel <service>\n") && !table.contains("beyla http"),
        "no Beyla data, no Beyla commands: {table}"
    );

    let (code, table, _) = run(&["query", "otel", "shop", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(table.contains("Service: shop"), "{table}");
    assert!(table.contains("Overall SERVER: 50 spans"), "{table}");
    let (code, csv, _) = run(&["query", "otel", "shop", "--colony", &colony, "-o", "csv"]);
    assert_eq!(code, Some(0));
    assert!(
        csv.starts_with("bucket_time,span_kind,total_spans,"),
        "{csv}"
    );
    let (code, host, stderr) = run(&["query", "host", "shop", "--colony", &colony, "-o", "json"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&host).unwrap()["rows"][0]["total_spans"],
        50
    );

    // A misspelt service: exit 0, the empty contract on stdout, a
    // suggestion in the table and on stderr.
    let (code, table, _) = run(&["query", "otel", "shpo", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("no data for service 'shpo'; did you mean 'shop'?"),
        "{table}"
    );
    for args in [
        [
            "query",
            "otel",
            "Shop",
            "--colony",
            colony.as_str(),
            "-o",
            "json",
        ],
        [
            "query",
            "host",
            "shpo",
            "--colony",
            colony.as_str(),
            "-o",
            "json",
        ],
    ] {
        let (code, stdout, stderr) = run(&args);
        assert_eq!(code, Some(0), "{stderr}");
        let v: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert!(
            v["minutes"] == serde_json::json!([]) || v["rows"] == serde_json::json!([]),
            "{stdout}"
        );
        assert!(
            stderr.contains("did you mean 'shop'?"),
            "{args:?}: {stderr}"
        );
    }
    let (code, table, _) = run(&["query", "beyla", "http", "shop", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("'shop' has OTLP data but no Beyla data in the last 7 days"),
        "{table}"
    );
    let (code, table, _) = run(&["query", "otel", "inventory", "--colony", &colony]);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("no data for service 'inventory'; services seen in the last 7 days: shop"),
        "{table}"
    );

    // Flags that make no sense say so.
    let (code, _, stderr) = run(&[
        "query", "otel", "shop", "--colony", &colony, "--kind", "foo",
    ]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("\"foo\" is not a span kind"), "{stderr}");
    let v = json(&[
        "query", "otel", "shop", "--colony", &colony, "--kind", "server", "-o", "json",
    ]);
    assert_eq!(v["totals"][0]["total_spans"], 50, "--kind in any case");
    let (code, _, stderr) = run(&[
        "query", "otel", "shop", "--colony", &colony, "--since", "0s",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--since 0s is an empty window; use e.g. 15m, 1h"),
        "{stderr}"
    );
    // The agent's API answers gRPC, but it is not a colony.
    let (code, _, stderr) = run(&["agents", "--colony", &agent_api]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!(
            "{agent_api} answers gRPC but is not a Coral colony"
        )),
        "{stderr}"
    );
    assert!(!stderr.trim_end().ends_with(':'), "{stderr}");

    // A second `coral up` on the same ports says why once.
    for home in [dir.path().to_path_buf(), dir.path().join("second")] {
        let out = coral()
            .args([
                "up",
                "--otlp-grpc-endpoint",
                "127.0.0.1:0",
                "--otlp-http-endpoint",
                "127.0.0.1:0",
                "--api-endpoint",
                "127.0.0.1:0",
                "--admin-endpoint",
                "127.0.0.1:0",
                "--colony-api-endpoint",
                &colony,
            ])
            .env("CORAL_HOME", &home)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1));
        let stderr = String::from_utf8_lossy(&out.stderr);
        let error = stderr
            .lines()
            .find(|l| l.starts_with("error: "))
            .unwrap_or_else(|| panic!("{stderr}"));
        assert!(error.contains("cannot start the coral colony"), "{error}");
        // DuckDB's reason (the data directory is in use) or the OS's (the
        // port is), once.
        let cause = ["Could not set lock", "in use"]
            .into_iter()
            .find(|c| error.contains(c))
            .unwrap_or_else(|| panic!("{error}"));
        assert_eq!(error.matches(cause).count(), 1, "{error}");
    }

    signal(&child, "-INT");
    assert!(wait_exit(&mut child).success());
    assert!(dir.path().join("colony/colony.duckdb").exists());
    assert!(dir.path().join("agent/agent.duckdb").exists());
}

#[test]
fn queries_explain_what_to_do_when_the_colony_is_unreachable() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let (code, _, stderr) = run(&["agents", "--colony", &addr]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains(&format!("cannot reach colony at {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("coral up"), "{stderr}");
    let (code, _, stderr) = run(&["query", "otel", "x", "--colony", &addr, "--since", "soon"]);
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("--since \"soon\" is not a duration"),
        "{stderr}"
    );
    let (code, _, _) = run(&["query", "otel"]);
    assert_eq!(code, Some(2), "usage errors exit 2");
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn = duckdb::Connection::open(db).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn killing_the_colony_mid_poll_loses_and_duplicates_nothing() {
    const SPANS: u64 = 5_000;
    let dir = tempfile::tempdir().unwrap();
    let api_port = free_port();
    let agent_yaml = dir.path().join("agent.yaml");
    std::fs::write(
        &agent_yaml,
        format!(
            "agent:\n  id: busy\n  telemetry:\n    endpoint: 127.0.0.1:0\n    http_endpoint: 127.0.0.1:0\n    filters:\n      - sample_rate: 1.0\n  api:\n    endpoint: 127.0.0.1:{api_port}\n  admin:\n    endpoint: 127.0.0.1:0\n  host_metrics:\n    enabled: false\n"
        ),
    )
    .unwrap();
    let mut agent = coral()
        .args(["agent", "serve", "--config"])
        .arg(&agent_yaml)
        .env("CORAL_HOME", dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(agent.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let http = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("otlp-http="))
        .map(|a| format!("http://{a}"))
        .unwrap();
    let admin = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("admin="))
        .unwrap()
        .to_owned();
    for batch in 0..4 {
        post_traces(
            &http,
            spans_json("bulk", 1 + batch * SPANS / 4, SPANS / 4, 0),
        );
    }
    wait_for(
        "the agent stored every span",
        Duration::from_secs(60),
        || {
            let metrics = reqwest::blocking::get(format!("http://{admin}/metrics"))
                .and_then(|r| r.text())
                .unwrap_or_default();
            metrics.contains(&format!("coral_agent_spans_stored_total {SPANS}"))
        },
    );

    let colony_port = free_port();
    let colony = format!("127.0.0.1:{colony_port}");
    let colony_yaml = dir.path().join("colony.yaml");
    std::fs::write(
        &colony_yaml,
        format!(
            "colony:\n  id: c1\n  api:\n    endpoint: {colony}\n  poll:\n    interval: 1s\n    page_size: 40\n  agents:\n    - id: busy\n      endpoint: 127.0.0.1:{api_port}\n"
        ),
    )
    .unwrap();
    let start_colony = || {
        let child = coral()
            .args(["colony", "serve", "--config"])
            .arg(&colony_yaml)
            .env("CORAL_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_for("colony up", Duration::from_secs(30), || {
            run(&["agents", "--colony", &colony]).0 == Some(0)
        });
        child
    };
    let cursor = || {
        let v = json(&["agents", "--colony", &colony, "-o", "json"]);
        (
            v["agents"][0]["cursor_seq_id"].as_u64().unwrap_or(0),
            v["agents"][0]["agent_latest_seq_id"].as_u64().unwrap_or(0),
        )
    };
    let mut first = start_colony();
    let seen = std::cell::Cell::new((0, 0));
    wait_for(
        "the colony started draining",
        Duration::from_secs(60),
        || {
            seen.set(cursor());
            seen.get().0 > 0
        },
    );
    signal(&first, "-KILL");
    let (at, latest) = seen.get();
    assert!(at < latest, "killed mid-drain: cursor {at} of {latest}");
    wait_exit(&mut first);

    let mut second = start_colony();
    wait_for("the colony caught up", Duration::from_secs(180), || {
        let (at, latest) = cursor();
        latest >= SPANS && at == latest
    });
    signal(&second, "-TERM");
    assert!(wait_exit(&mut second).success());
    signal(&agent, "-TERM");
    wait_exit(&mut agent);

    let db = dir.path().join("colony/colony.duckdb");
    assert_eq!(count(&db, "SELECT count(*) FROM trace_spans"), SPANS as i64);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT seq_id) FROM trace_spans"),
        SPANS as i64
    );
    assert_eq!(
        count(
            &db,
            "SELECT sum(total_spans)::BIGINT FROM otel_spans WHERE service_name = 'bulk'"
        ),
        SPANS as i64
    );
    assert_eq!(count(&db, "SELECT count(*) FROM gaps"), 0);
}

#[test]
fn the_cli_without_the_colony_token_is_refused_and_told_which_setting() {
    let dir = tempfile::tempdir().unwrap();
    let colony = format!("127.0.0.1:{}", free_port());
    let mut child = coral()
        .args(["colony", "serve", "--api-endpoint", &colony])
        .env("CORAL_HOME", dir.path())
        .env("CORAL_TOKEN", "the-colony-token")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let with = |token: Option<&str>| {
        let mut args = vec!["agents", "--colony", colony.as_str()];
        if let Some(token) = token {
            args.extend(["--token", token]);
        }
        run(&args)
    };
    wait_for("colony up", Duration::from_secs(30), || {
        with(Some("the-colony-token")).0 == Some(0)
    });
    for token in [None, Some("a-wrong-token")] {
        let (code, _, stderr) = with(token);
        assert_eq!(code, Some(1), "{token:?}: {stderr}");
        assert!(
            stderr.contains("token") && stderr.contains("CORAL_TOKEN"),
            "{token:?}: the error names the setting: {stderr}"
        );
    }
    signal(&child, "-TERM");
    assert!(wait_exit(&mut child).success());
}
