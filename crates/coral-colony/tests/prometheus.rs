//! Prometheus scrapes the agent's `/metrics` and the colony's `/metrics`
//! and `/metrics/red` (a real `prometheus` server), `promtool check
//! metrics` accepts all three, the RED counters and histogram hold what was
//! sent, every query of the Grafana dashboard in deploy/grafana/ runs on
//! that Prometheus and names only metrics Coral exports, and every alert
//! rule in deploy/prometheus/ evaluates.
//!
//! Needs Debian's `prometheus` package (`prometheus` and `promtool`): a
//! skip with a message where it is missing, a failure with
//! `CORAL_REQUIRE_PROMETHEUS=1` (set by CI).

mod common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{agent_config, colony_config, flush_agent, send_spans, start_agent, wait_for};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// The repository root.
fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `prometheus` and `promtool`, or a skip (a failure when required).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |name: &str| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
    };
    match (find("prometheus"), find("promtool")) {
        (Some(server), Some(tool)) => Some((server, tool)),
        _ => {
            assert!(
                std::env::var("CORAL_REQUIRE_PROMETHEUS").as_deref() != Ok("1"),
                "prometheus and promtool are required (CORAL_REQUIRE_PROMETHEUS=1): apt-get install prometheus, or run .ci/run"
            );
            eprintln!("skipped: no prometheus/promtool on PATH (apt-get install prometheus)");
            None
        }
    }
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// GET `url`: (status, body).
async fn get(url: String) -> (u16, String) {
    tokio::task::spawn_blocking(move || match http().get(&url).call() {
        Ok(mut r) => (
            r.status().as_u16(),
            r.body_mut().read_to_string().unwrap_or_default(),
        ),
        Err(e) => (0, e.to_string()),
    })
    .await
    .unwrap()
}

/// `promtool check metrics` on `text`: no error and no lint problem.
fn promtool_accepts(promtool: &Path, what: &str, text: &str) {
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics refused {what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The metric family names in an exposition (`# TYPE` lines).
fn families(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// A sample's value, by its exact series text.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// A Python with PyYAML and jsonschema for `scripts/validate-deploy.py`
/// (CI's venv), or `None` (a failure when CI requires it).
fn python() -> Option<PathBuf> {
    common::interop_python_with("yaml, jsonschema")
}

/// `scripts/validate-deploy.py --exported-metrics` with the families
/// scraped passes: every metric deploy/ and docs/metrics.md name is one
/// Coral serves, and the validator's own list is exactly what is served.
fn validator_agrees(exported: &BTreeSet<String>, dir: &Path) {
    let Some(python) = python() else {
        return;
    };
    let list = dir.join("exported-metrics.txt");
    let names: Vec<&str> = exported.iter().map(String::as_str).collect();
    std::fs::write(&list, names.join("\n") + "\n").unwrap();
    let out = Command::new(python)
        .arg(repo().join("scripts/validate-deploy.py"))
        .arg("--quiet")
        .arg("--exported-metrics")
        .arg(&list)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains(" 0 failed"),
        "validate-deploy.py --exported-metrics (what the endpoints serve) failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A query on Prometheus' HTTP API: its `data.result`, or the error.
async fn query(base: &str, expr: &str) -> Result<Vec<Value>, String> {
    let url = format!("{base}/api/v1/query?query={}", form_urlencoded(expr));
    let (status, body) = get(url).await;
    let v: Value =
        serde_json::from_str(&body).map_err(|e| format!("HTTP {status}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

fn form_urlencoded(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Every Prometheus query of the dashboard (panel targets and template
/// variables), with Grafana's variables replaced by values Prometheus reads.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    fn walk(v: &Value, title: &str, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                let title = map
                    .get("title")
                    .and_then(Value::as_str)
                    .unwrap_or(title)
                    .to_owned();
                if let Some(expr) = map.get("expr").and_then(Value::as_str) {
                    out.push((title.clone(), expr.to_owned()));
                }
                for (k, child) in map {
                    if k != "expr" {
                        walk(child, &title, out);
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, title, out)),
            _ => {}
        }
    }
    walk(&dashboard["panels"], "", &mut out);
    for var in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if var["type"] != "query" {
            continue;
        }
        let q = match &var["query"] {
            Value::String(s) => s.clone(),
            other => other["query"].as_str().unwrap_or_default().to_owned(),
        };
        // label_values(METRIC, label) → the metric's series.
        if let Some(inner) = q.strip_prefix("label_values(") {
            let metric = inner.split([',', ')']).next().unwrap_or_default().trim();
            out.push((format!("variable {}", var["name"]), metric.to_owned()));
        }
    }
    out.into_iter()
        .map(|(title, expr)| {
            let expr = expr
                .replace("$__rate_interval", "1m")
                .replace("$__interval", "1m")
                .replace("$__range", "1h")
                .replace("${service:regex}", "checkout")
                .replace("${service}", "checkout")
                .replace("$service", "checkout")
                .replace("${span_kind:regex}", "SERVER|CONSUMER")
                .replace("${span_kind}", "SERVER|CONSUMER")
                .replace("$span_kind", "SERVER|CONSUMER")
                .replace("${agent}", ".*")
                .replace("$agent", ".*");
            (title, expr)
        })
        .collect()
}

/// Metric names in a PromQL expression (every `coral_…` identifier).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("coral_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The family a sample name belongs to (`_bucket`, `_sum`, `_count` of a
/// histogram).
fn family_of<'a>(name: &'a str, exported: &BTreeSet<String>) -> Option<&'a str> {
    if exported.contains(name) {
        return Some(name);
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| name.strip_suffix(suffix))
        .find(|base| exported.contains(*base))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn prometheus_scrapes_the_agent_the_colony_and_red() {
    let Some((prometheus, promtool)) = tools() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = colony_config(&dir.path().join("colony"), "127.0.0.1:0", "");
    config.admin.red_metrics = true;
    let colony = common::start_colony(&config).await;
    let agent = start_agent(&agent_config(
        "prom-agent",
        &dir.path().join("agent"),
        colony.addr,
        "",
    ))
    .await;
    common::wait_registered(colony.addr, None, 1).await;

    // 200 spans of 1..=200 ms, every 10th an error.
    send_spans(&agent, "checkout", 200, 10).await;
    flush_agent(&agent, 200).await;
    let stop = CancellationToken::new();
    colony
        .poller
        .poll_agent("prom-agent", &stop)
        .await
        .expect("poll");

    let agent_url = format!("http://{}/metrics", agent.addrs.admin);
    let colony_url = format!("http://{}/metrics", colony.admin_addr);
    let red_url = format!("http://{}/metrics/red", colony.admin_addr);
    let series = "service=\"checkout\",operation=\"POST /checkout\",span_kind=\"SERVER\"";
    let (status, red) = get(red_url.clone()).await;
    assert_eq!(status, 200, "{red}");
    assert_eq!(
        value(&red, &format!("coral_red_requests_total{{{series}}}")),
        Some(200.0),
        "{red}"
    );
    assert_eq!(
        value(&red, &format!("coral_red_errors_total{{{series}}}")),
        Some(20.0)
    );
    assert_eq!(
        value(
            &red,
            &format!("coral_red_duration_seconds_count{{{series}}}")
        ),
        Some(200.0)
    );
    // 1..=200 ms: 50 at most 50 ms, 100 at most 100 ms (±1 at the bound,
    // the sketch's 1 %), all at most 250 ms; the sum is 20.1 s.
    let le = |bound: &str| {
        value(
            &red,
            &format!("coral_red_duration_seconds_bucket{{{series},le=\"{bound}\"}}"),
        )
        .unwrap()
    };
    assert!((49.0..=51.0).contains(&le("0.05")), "{red}");
    assert!((99.0..=101.0).contains(&le("0.1")), "{red}");
    assert_eq!(le("0.25"), 200.0);
    assert_eq!(le("+Inf"), 200.0);
    let sum = value(&red, &format!("coral_red_duration_seconds_sum{{{series}}}")).unwrap();
    assert!((sum - 20.1).abs() < 1e-6, "{sum}");

    let (_, colony_text) = get(colony_url.clone()).await;
    assert_eq!(
        value(
            &colony_text,
            "coral_colony_rows_stored_total{table=\"otel_spans\"}"
        ),
        Some(1.0),
        "{colony_text}"
    );
    assert_eq!(
        value(&colony_text, "coral_colony_agents{health=\"healthy\"}"),
        Some(1.0)
    );
    assert_eq!(
        value(
            &colony_text,
            "coral_colony_agent_lag_rows{agent=\"prom-agent\"}"
        ),
        Some(0.0)
    );
    assert!(value(&colony_text, "coral_colony_polls_total").unwrap() >= 1.0);
    assert!(value(&colony_text, "coral_colony_db_size_bytes").unwrap() > 0.0);
    assert_eq!(value(&colony_text, "coral_colony_red_series"), Some(1.0));
    let (_, agent_text) = get(agent_url.clone()).await;

    for (what, text) in [
        ("the agent's /metrics", &agent_text),
        ("the colony's /metrics", &colony_text),
        ("the colony's /metrics/red", &red),
    ] {
        promtool_accepts(&promtool, what, text);
    }
    let exported: BTreeSet<String> = [&agent_text, &colony_text, &red]
        .into_iter()
        .flat_map(|t| families(t))
        .collect();

    // The deploy validator's list of Coral's metrics is the one scraped:
    // deploy/ (alert rules, dashboard, docs/metrics.md) checked against it.
    validator_agrees(&exported, dir.path());

    // A real Prometheus scrapes the three endpoints and evaluates the
    // alert rules of deploy/prometheus/.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let rules = repo().join("deploy/prometheus/coral-alerts.yml");
    let target = |url: &str| {
        url.trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap()
            .to_owned()
    };
    let prom_config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {rules}\nscrape_configs:\n  - job_name: coral-agent\n    static_configs:\n      - targets: [\"{agent}\"]\n  - job_name: coral-colony\n    static_configs:\n      - targets: [\"{colony}\"]\n  - job_name: coral-red\n    metrics_path: /metrics/red\n    static_configs:\n      - targets: [\"{colony}\"]\n",
        rules = rules.display(),
        agent = target(&agent_url),
        colony = target(&colony_url),
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, &prom_config).unwrap();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _server = Prometheus(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let scraped = |expr: &'static str, want: usize| {
        let base = base.clone();
        async move {
            query(&base, expr)
                .await
                .is_ok_and(|r| r.len() >= want && r.iter().all(|s| s["value"][1] != "0"))
        }
    };
    wait_for(
        "Prometheus scraped the three endpoints",
        Duration::from_secs(60),
        || scraped("up == 1", 3),
    )
    .await;
    let red_in_prometheus = query(&base, "sum(coral_red_requests_total{service=\"checkout\"})")
        .await
        .unwrap();
    assert_eq!(
        red_in_prometheus[0]["value"][1], "200",
        "{red_in_prometheus:?}"
    );

    // Every dashboard query runs, and names only exported metrics.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/coral-dashboard.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 10, "{queries:?}");
    for (title, expr) in &queries {
        for name in metric_names(expr) {
            assert!(
                family_of(&name, &exported).is_some(),
                "panel {title:?} queries {name}, which Coral does not export ({expr})"
            );
        }
        if let Err(error) = query(&base, expr).await {
            panic!("panel {title:?}: Prometheus refused {expr}: {error}");
        }
    }
    // The RED panels have data for the service sent.
    let rate = query(
        &base,
        "sum by (service) (coral_red_requests_total{service=\"checkout\"})",
    )
    .await
    .unwrap();
    assert_eq!(rate.len(), 1);

    // Every alert rule evaluated without an error.
    let rules_ok = || {
        let base = base.clone();
        async move {
            let (_, body) = get(format!("{base}/api/v1/rules")).await;
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            let rules: Vec<&Value> = v["data"]["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["rules"].as_array().into_iter().flatten())
                .collect();
            !rules.is_empty()
                && rules
                    .iter()
                    .all(|r| r["health"] == "ok" && r["lastEvaluation"] != "0001-01-01T00:00:00Z")
        }
    };
    wait_for(
        "every alert rule evaluated",
        Duration::from_secs(30),
        rules_ok,
    )
    .await;

    // Off by default: /metrics/red says how to turn it on.
    let mut off = colony_config(&dir.path().join("colony-off"), "127.0.0.1:0", "");
    off.admin.red_metrics = false;
    let plain = common::start_colony(&off).await;
    let (status, body) = get(format!("http://{}/metrics/red", plain.admin_addr)).await;
    assert_eq!(status, 404);
    assert!(body.contains("colony.admin.red_metrics: true"), "{body}");
    let (status, body) = get(format!("http://{}/healthz", plain.admin_addr)).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    plain.shutdown().await;

    agent.shutdown().await;
    colony.shutdown().await;
}
