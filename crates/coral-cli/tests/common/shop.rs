//! The small application of the `coral ask` and `coral mcp` tests, as
//! OTLP/JSON sent to an agent over HTTP, every minute of two windows in the
//! past (the agent aggregates late spans into their own minutes):
//!
//! ```text
//! checkout SERVER GET /checkout           entry, 5 ms of its own
//! └ checkout CLIENT POST /pay             1 ms
//!   └ payments SERVER POST /pay           4 ms of its own
//!     └ payments CLIENT POST /validate    1 ms
//!       └ card-validator SERVER POST /validate   20-30 ms; +150 ms in the incident
//! catalog SERVER GET /items               12-18 ms, unchanged (the healthy control)
//! ```
//!
//! Baseline: 40 to 10 minutes ago; incident: the last 8 closed minutes; 20
//! checkout and 20 catalog requests a minute. The agent must keep every
//! trace (`sample_rate: 1.0`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use std::path::Path;

use super::process::{Process, value_after};
use super::{kept_traces, post_traces, run, up_command, wait_for};

/// What [`feed`] sent.
pub struct Shop {
    /// Unix seconds, [from, to).
    pub incident: (i64, i64),
    pub baseline: (i64, i64),
    /// Requests per service over both windows.
    pub requests: u64,
}

pub const PER_MINUTE: u64 = 20;
pub const BASELINE_MINUTES: (i64, i64) = (40, 10);
pub const INCIDENT_MINUTES: i64 = 8;

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in [lo, hi).
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() % 10_000) as f64 / 10_000.0 * (hi - lo)
    }
}

/// One span as OTLP/JSON.
#[allow(clippy::too_many_arguments)]
pub fn span(
    trace: &str,
    id: &str,
    parent: &str,
    name: &str,
    kind: u8,
    start_ns: u64,
    end_ns: u64,
    route: Option<&str>,
) -> String {
    let attributes = route.map_or(String::new(), |r| {
        format!(r#","attributes":[{{"key":"http.route","value":{{"stringValue":"{r}"}}}}]"#)
    });
    format!(
        r#"{{"traceId":"{trace}","spanId":"{id}","parentSpanId":"{parent}","name":"{name}","kind":{kind},"startTimeUnixNano":"{start_ns}","endTimeUnixNano":"{end_ns}","status":{{"code":1}}{attributes}}}"#
    )
}

pub fn resource_spans(service: &str, spans: &[String]) -> String {
    format!(
        r#"{{"resource":{{"attributes":[{{"key":"service.name","value":{{"stringValue":"{service}"}}}}]}},"scopeSpans":[{{"spans":[{}]}}]}}"#,
        spans.join(",")
    )
}

pub const MS: u64 = 1_000_000;

/// The export of one minute starting at `minute` (Unix seconds); `slow`
/// adds 150 ms to card-validator.
fn minute_export(minute: i64, slow: bool, rng: &mut Rng, serial: &mut u64) -> String {
    let (mut checkout, mut payments, mut leaf, mut catalog) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..PER_MINUTE {
        *serial += 1;
        let n = *serial;
        // Spread over the minute, ending well before its end.
        let t0 = minute as u64 * 1_000_000_000 + i * 2_500 * MS;
        let trace = format!("{:016x}{:016x}", rng.next(), n);
        let id = |k: u64| format!("{:012x}{k:04x}", n);
        let leaf_ms = rng.between(20.0, 30.0) + if slow { 150.0 } else { 0.0 };
        let e_start = t0 + 8 * MS;
        let e_end = e_start + (leaf_ms * MS as f64) as u64;
        let d_end = e_end + MS;
        let c_end = d_end + 2 * MS;
        let b_end = c_end + MS;
        let a_end = b_end + 2 * MS;
        checkout.push(span(
            &trace,
            &id(1),
            "",
            "GET /checkout",
            2,
            t0,
            a_end,
            Some("/checkout"),
        ));
        checkout.push(span(
            &trace,
            &id(2),
            &id(1),
            "POST /pay",
            3,
            t0 + 3 * MS,
            b_end,
            None,
        ));
        payments.push(span(
            &trace,
            &id(3),
            &id(2),
            "POST /pay",
            2,
            t0 + 4 * MS,
            c_end,
            Some("/pay"),
        ));
        payments.push(span(
            &trace,
            &id(4),
            &id(3),
            "POST /validate",
            3,
            t0 + 7 * MS,
            d_end,
            None,
        ));
        leaf.push(span(
            &trace,
            &id(5),
            &id(4),
            "POST /validate",
            2,
            e_start,
            e_end,
            Some("/validate"),
        ));
        let c0 = t0 + 1_000 * MS;
        let c_ms = rng.between(12.0, 18.0);
        catalog.push(span(
            &format!("{:016x}{:016x}", rng.next(), n | 1 << 63),
            &id(6),
            "",
            "GET /items",
            2,
            c0,
            c0 + (c_ms * MS as f64) as u64,
            Some("/items"),
        ));
    }
    format!(
        r#"{{"resourceSpans":[{},{},{},{}]}}"#,
        resource_spans("checkout", &checkout),
        resource_spans("payments", &payments),
        resource_spans("card-validator", &leaf),
        resource_spans("catalog", &catalog)
    )
}

/// `coral up` under `dir` with agent id `agent_id`, keeping every trace,
/// closing minutes 1 s after they end, Beyla off, and host metrics every
/// second when `host_metrics`; returns it with its colony API address and
/// its agent's OTLP/HTTP URL.
pub fn up(dir: &Path, agent_id: &str, host_metrics: bool) -> (Process, String, String) {
    let config = dir.join("agent.yaml");
    let host = if host_metrics {
        "    enabled: true\n    interval: 1s\n"
    } else {
        "    enabled: false\n"
    };
    std::fs::write(
        &config,
        format!(
            "agent:\n  telemetry:\n    filters:\n      - sample_rate: 1.0\n    aggregation:\n      flush_grace: 1s\n  host_metrics:\n{host}beyla:\n  enabled: false\n"
        ),
    )
    .unwrap();
    let mut cmd = up_command(&dir.join("home"), agent_id, &dir.join("no-beyla"));
    cmd.arg("--config").arg(&config);
    let mut up = Process::spawn(cmd, "-INT", dir.join("up.log"));
    let banner = up.banner(|l| l.contains("Ctrl-C"));
    let colony = value_after(&banner, "colony API:").to_owned();
    let http = value_after(&banner, "OTLP HTTP:").to_owned();
    (up, colony, http)
}

/// Unix seconds as RFC 3339 UTC.
pub fn rfc3339(t: i64) -> String {
    humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(t as u64)).to_string()
}

/// Sends both windows to the agent's OTLP/HTTP endpoint `http` and waits
/// until the colony at `colony` holds every request's RED and every trace.
pub fn feed(http: &str, colony: &str) -> Shop {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let end = now / 60 * 60;
    let incident = (end - INCIDENT_MINUTES * 60, end);
    let baseline = (end - BASELINE_MINUTES.0 * 60, end - BASELINE_MINUTES.1 * 60);
    let (mut rng, mut serial) = (Rng(0x9e37_79b9_7f4a_7c15), 0u64);
    let mut minutes = 0u64;
    for minute in (baseline.0..baseline.1)
        .step_by(60)
        .chain((incident.0..incident.1).step_by(60))
    {
        post_traces(
            http,
            minute_export(minute, minute >= incident.0, &mut rng, &mut serial),
        );
        minutes += 1;
    }
    let requests = minutes * PER_MINUTE;

    // Every request's RED and every kept trace at the colony.
    wait_for(
        "the colony to hold the data",
        Duration::from_secs(120),
        || {
            let (code, out, _) = run(&[
                "query", "services", "--since", "1h", "-o", "json", "--colony", colony,
            ]);
            if code != Some(0) {
                return false;
            }
            let v: Value = serde_json::from_str(&out).unwrap();
            let all_red = ["checkout", "payments", "card-validator", "catalog"]
                .iter()
                .all(|s| {
                    v["services"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|r| r["service"] == *s && r["requests"].as_u64() == Some(requests))
                });
            all_red && kept_traces(colony, "card-validator") == Some(requests as usize)
        },
    );

    Shop {
        incident,
        baseline,
        requests,
    }
}
