//! `coral demo` end to end, with the built binary and its defaults: the
//! banner names the three commands to try, `coral query services` shows the
//! shop's services within two minutes of the start, `coral ask` names the
//! injected fault (card-validator's POST /validate) once the history is in,
//! and Ctrl-C stops it cleanly.

mod common;

use std::time::{Duration, Instant};

use common::process::{Process, value_after};
use common::{demo_command, run, wait_for};
use serde_json::Value;

#[test]
fn the_demo_shows_services_within_two_minutes_and_ask_finds_its_fault() {
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let cmd = demo_command(
        &dir.path().join("home"),
        "demo-host",
        &dir.path().join("no-beyla"),
    );
    let mut demo = Process::spawn(cmd, "-INT", dir.path().join("demo.log"));
    let banner = demo.banner(|l| l.contains("Ctrl-C"));
    let colony = value_after(&banner, "colony API:").to_owned();
    let text = banner.join("\n");
    for command in [
        "query services",
        "query traces --service checkout",
        "ask \"why is checkout slow?\"",
    ] {
        assert!(
            text.contains(command),
            "the banner names `{command}`: {text}"
        );
    }
    assert!(text.contains("card-validator"), "{text}");

    // The shop's services, from `coral query services`, within two minutes.
    let services = || -> Vec<String> {
        let (code, out, _) = run(&["query", "services", "--colony", &colony, "-o", "json"]);
        if code != Some(0) {
            return Vec::new();
        }
        let v: Value = serde_json::from_str(&out).unwrap_or_default();
        v["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["service"].as_str().map(str::to_owned))
            .collect()
    };
    wait_for(
        "`coral query services` to list the shop",
        Duration::from_secs(120).saturating_sub(started.elapsed()),
        || {
            let listed = services();
            ["frontend", "checkout", "payments"]
                .iter()
                .all(|s| listed.iter().any(|l| l == s))
        },
    );

    // Once the history is in, `coral ask` names the injected fault.
    let mut last = Value::Null;
    wait_for(
        "`coral ask` to name card-validator",
        Duration::from_secs(240),
        || {
            let (code, out, _) = run(&[
                "ask",
                "why is checkout slow?",
                "--no-save",
                "--colony",
                &colony,
                "-o",
                "json",
            ]);
            last = serde_json::from_str(&out).unwrap_or_default();
            code == Some(0) && last["causes"][0]["service"] == "card-validator"
        },
    );
    assert_eq!(last["causes"][0]["operation"], "POST /validate", "{last:#}");

    let status = demo.stop();
    assert!(status.success(), "{status:?}");
}
