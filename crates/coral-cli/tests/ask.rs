//! `coral ask` end to end with the built binary: `coral up`, then the small
//! application of `common::shop` sent to its agent over OTLP/HTTP, and the
//! questions. `coral ask "why is checkout slow?"` must name
//! card-validator first with the chain checkout → payments →
//! card-validator, and every trace id it cites must open with `coral query
//! traces --trace-id`; catalog has `no_regression`; unreadable questions
//! and unknown services exit 2, an unreachable colony 1.

mod common;

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::path::Path;

use common::llm::{FakeLlm, Reply};
use common::shop::rfc3339;
use common::{coral, json, shop};
use serde_json::Value;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `coral ask question flags… --colony colony` from `cwd`.
fn ask(cwd: &Path, colony: &str, question: &str, flags: &[&str]) -> (Option<i32>, String, String) {
    let out = coral()
        .current_dir(cwd)
        .arg("ask")
        .arg(question)
        .args(flags)
        .args(["--colony", colony])
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `coral ask --narrate` against a stand-in endpoint: a faithful narration
/// is printed; one with an invented number or trace id is rejected and the
/// answer stands alone; a timeout falls back; without configuration, or
/// without `--narrate`, nothing connects anywhere.
fn narration(cwd: &Path, colony: &str, answer: &Value, flags: &[String]) {
    let llm = FakeLlm::start();
    let narrate = |env: &[(&str, &str)]| {
        let mut cmd = coral();
        cmd.current_dir(cwd)
            .arg("ask")
            .arg("why is checkout slow?")
            .args(flags)
            .args(["--colony", colony])
            .envs(env.iter().copied());
        let out = cmd.output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let configured = [
        ("CORAL_LLM_BASE_URL", llm.base_url.as_str()),
        ("CORAL_LLM_MODEL", "stand-in-1"),
        ("CORAL_LLM_API_KEY", "k-123"),
        ("CORAL_LLM_TIMEOUT", "2s"),
    ];
    let first = &answer["causes"][0];
    let evidence = first["evidence"][0].as_str().unwrap();
    let trace = cited(answer).into_iter().next().unwrap();
    let faithful = format!(
        "checkout is slower: its p95 went from {} ms to {} ms. {} {} explains {}% of it, through {} [{evidence}]; trace {trace} shows it.",
        answer["symptom"]["baseline"],
        answer["symptom"]["incident"],
        first["service"].as_str().unwrap(),
        first["operation"].as_str().unwrap(),
        first["explains_pct"],
        first["chain"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect::<Vec<_>>()
            .join(" → "),
    );

    // Faithful: printed after the answer, and the endpoint got the answer
    // as JSON and the key.
    llm.then(Reply::Says(faithful.clone()));
    let (code, out, err) = narrate(&configured);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("checkout: regression"), "{out}");
    assert!(out.contains("Narration (stand-in-1;"), "{out}");
    assert!(out.contains(&faithful), "{out}");
    let got = llm.received();
    assert_eq!(got.len(), 1);
    assert!(
        got[0].head.starts_with("POST /v1/chat/completions "),
        "{}",
        got[0].head
    );
    assert!(
        got[0]
            .head
            .to_ascii_lowercase()
            .contains("authorization: bearer k-123"),
        "{}",
        got[0].head
    );
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["model"], "stand-in-1");
    let sent: Value =
        serde_json::from_str(body["messages"][1]["content"].as_str().unwrap()).unwrap();
    assert_eq!(&sent, answer, "only the answer is sent");

    // An invented number, then an invented trace id: rejected, the answer
    // printed alone with the reason.
    for (text, why) in [
        (
            format!("p95 went to 987654 ms [{evidence}]."),
            "987654".to_owned(),
        ),
        (
            "see trace 0123456789abcdef0123456789abcdef".to_owned(),
            "0123456789abcdef0123456789abcdef".to_owned(),
        ),
    ] {
        llm.then(Reply::Says(text.clone()));
        let (code, out, err) = narrate(&configured);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.starts_with("checkout: regression"), "{out}");
        assert!(!out.contains(&text), "{out}");
        assert!(out.contains("narration not shown: rejected"), "{out}");
        assert!(out.contains(&why), "{out}");
    }

    // No answer in time: the answer alone, saying so.
    llm.then(Reply::Hangs);
    let (code, out, err) = narrate(&configured);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("checkout: regression"), "{out}");
    assert!(out.contains("did not answer within 2s"), "{out}");

    // Not configured (look-alike settings and proxies point at the
    // stand-in), or configured without --narrate: nothing connects.
    let before = llm.connections();
    let (code, out, err) = narrate(&[
        ("OPENAI_BASE_URL", llm.base_url.as_str()),
        ("OPENAI_API_KEY", "k-123"),
        ("CORAL_LLM_MODEL", "stand-in-1"),
        ("HTTP_PROXY", llm.base_url.as_str()),
        ("HTTPS_PROXY", llm.base_url.as_str()),
        ("ALL_PROXY", llm.base_url.as_str()),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("narration: not configured, nothing was sent"),
        "{out}"
    );
    let plain: Vec<String> = flags
        .iter()
        .filter(|f| *f != "--narrate")
        .cloned()
        .collect();
    let out = coral()
        .current_dir(cwd)
        .args(["ask", "why is checkout slow?"])
        .args(&plain)
        .args(["--colony", colony])
        .envs(configured.iter().copied())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!String::from_utf8_lossy(&out.stdout).contains("arration"));
    assert_eq!(
        llm.connections(),
        before,
        "no connection without configuration or --narrate"
    );
}

/// The trace ids an answer cites for its causes.
fn cited(answer: &Value) -> BTreeSet<String> {
    let ids: BTreeSet<&str> = answer["causes"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| c["evidence"].as_array().unwrap())
        .filter_map(Value::as_str)
        .collect();
    answer["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| ids.contains(e["id"].as_str().unwrap()))
        .flat_map(|e| e["trace_ids"].as_array().unwrap())
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn ask_names_the_slow_leaf_with_its_chain_and_traces_that_open() {
    let dir = tempfile::tempdir().unwrap();
    let (mut up, colony, http) = shop::up(dir.path(), "ask-host", false);

    let shop = shop::feed(&http, &colony);
    let (incident, baseline) = (shop.incident, shop.baseline);

    let windows = [
        "--from".to_owned(),
        rfc3339(incident.0),
        "--to".to_owned(),
        rfc3339(incident.1),
        "--baseline-from".to_owned(),
        rfc3339(baseline.0),
        "--baseline-to".to_owned(),
        rfc3339(baseline.1),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        windows
            .iter()
            .cloned()
            .chain(extra.iter().map(|s| (*s).to_owned()))
            .collect()
    };

    // The slow leaf, first, with its chain; evidence saved where asked.
    let saved = dir.path().join("saved");
    let args = with(&["-o", "json", "--save", saved.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = ask(dir.path(), &colony, "why is checkout slow?", &args);
    assert_eq!(code, Some(0), "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(answer["version"], 1);
    assert_eq!(answer["verdict"], "regression", "{answer:#}");
    assert_eq!(answer["target"]["service"], "checkout");
    assert_eq!(answer["target"]["symptom"], "latency");
    assert_eq!(answer["windows"]["incident"]["from"], rfc3339(incident.0));
    assert_eq!(answer["windows"]["baseline"]["to"], rfc3339(baseline.1));
    let first = &answer["causes"][0];
    assert_eq!(first["service"], "card-validator", "{answer:#}");
    assert_eq!(first["operation"], "POST /validate");
    assert_eq!(
        first["chain"],
        serde_json::json!(["checkout", "payments", "card-validator"])
    );
    assert!(first["explains_pct"].as_f64().unwrap() >= 80.0, "{first}");
    for c in answer["causes"].as_array().unwrap() {
        assert_ne!(c["service"], "catalog", "the control is never a cause");
    }
    let traces = cited(&answer);
    assert!(!traces.is_empty(), "the causes cite traces: {answer:#}");
    for id in traces.iter().take(10) {
        let t = json(&[
            "query",
            "traces",
            "--trace-id",
            id,
            "-o",
            "json",
            "--colony",
            &colony,
        ]);
        assert_eq!(t["trace_id"], id.as_str());
        let services: BTreeSet<&str> = t["spans"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["service"].as_str().unwrap())
            .collect();
        assert!(services.contains("card-validator"), "{t:#}");
    }
    let line = err.lines().last().unwrap_or_default();
    let path = line
        .strip_prefix("evidence saved to ")
        .unwrap_or_else(|| panic!("no evidence path in {err:?}"));
    assert!(
        Path::new(path).starts_with(&saved),
        "{path} is under --save"
    );
    let file = Path::new(path).file_name().unwrap().to_str().unwrap();
    assert!(
        file.starts_with("ask-checkout-") && file.ends_with("Z.json"),
        "{file}"
    );
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(stored, answer);

    // Text, with the evidence under ./evidence/ by default: the path last.
    let args = with(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = ask(dir.path(), &colony, "why is checkout slow?", &args);
    assert_eq!(code, Some(0), "{err}");
    eprintln!("{out}");
    assert!(out.starts_with("checkout: regression"), "{out}");
    assert!(
        out.contains("checkout → payments → card-validator"),
        "{out}"
    );
    assert!(out.contains("1. card-validator POST /validate"), "{out}");
    assert!(out.contains("reproduce: coral query"), "{out}");
    let last = out.lines().last().unwrap();
    let path = last
        .strip_prefix("evidence saved to ")
        .unwrap_or_else(|| panic!("last line: {last:?}"));
    assert!(path.starts_with("./evidence/ask-checkout-"), "{path}");
    assert!(dir.path().join(path).is_file());

    narration(
        dir.path(),
        &colony,
        &answer,
        &with(&["--no-save", "--narrate"]),
    );

    // The healthy control: no regression, no cause.
    let args = with(&["-o", "json", "--no-save"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, out, err) = ask(dir.path(), &colony, "why is catalog slow?", &args);
    assert_eq!(code, Some(0), "{err}");
    let answer: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(answer["verdict"], "no_regression", "{answer:#}");
    assert_eq!(answer["causes"], serde_json::json!([]));
    assert!(err.is_empty(), "--no-save saves nothing: {err}");

    // Questions Coral cannot use: exit 2 with the candidates or the forms.
    let (code, _, err) = ask(dir.path(), &colony, "why is shipping slow?", &["--no-save"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("no service named \"shipping\"") && err.contains("checkout"),
        "{err}"
    );
    let (code, _, err) = ask(dir.path(), &colony, "hello there", &["--no-save"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("why is <service> slow?"), "{err}");
    let (code, _, err) = ask(
        dir.path(),
        &colony,
        "why is it slow?",
        &["--service", "nope-nothing", "--no-save"],
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no service named \"nope-nothing\""), "{err}");

    let saved_by_default = std::fs::read_dir(dir.path().join("evidence"))
        .unwrap()
        .count();
    assert_eq!(saved_by_default, 1, "nothing saved for refused questions");
    up.stop();

    // No colony: exit 1, saying so.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let (code, _, err) = ask(
        dir.path(),
        &nowhere,
        "why is checkout slow?",
        &["--no-save"],
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("cannot reach colony"), "{err}");
    // A usage error needs no colony.
    let (code, _, err) = ask(dir.path(), &nowhere, "q", &["--since", "soon"]);
    assert_eq!(code, Some(2), "{err}");
}
