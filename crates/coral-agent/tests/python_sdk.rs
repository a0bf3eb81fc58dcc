//! Interop with the OpenTelemetry Python SDK: its own OTLP exporters (gRPC and
//! HTTP/protobuf) against a real agent, with exact RED numbers and typed
//! attributes.
//!
//! Needs a Python with `opentelemetry-sdk`, `opentelemetry-exporter-otlp-proto-grpc`
//! and `opentelemetry-exporter-otlp-proto-http` (`.ci/run` makes one under
//! `$HOME/.cache/coral/venv-interop`; `CORAL_PYTHON` names another). Without
//! one the test says so and passes, unless `CORAL_REQUIRE_PYTHON_INTEROP=1`
//! (set by CI), where a missing SDK is a failure.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::{config, flush_and_wait, query_all, start};

fn python() -> Option<PathBuf> {
    let candidate = std::env::var_os("CORAL_PYTHON")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/coral/venv-interop/bin/python"))
        })?;
    let check = Command::new(&candidate)
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.grpc.trace_exporter, opentelemetry.exporter.otlp.proto.http.trace_exporter",
        ])
        .output()
        .ok()?;
    check.status.success().then_some(candidate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_exporters_give_exact_numbers() {
    let Some(python) = python() else {
        assert!(
            std::env::var("CORAL_REQUIRE_PYTHON_INTEROP").as_deref() != Ok("1"),
            "the OpenTelemetry Python SDK is required (CORAL_REQUIRE_PYTHON_INTEROP=1) but not found: set CORAL_PYTHON or run .ci/run"
        );
        eprintln!("skipped: no Python with the OpenTelemetry SDK (see the module docs)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let agent = start(&config(
        dir.path(),
        "    filters:\n      - sample_rate: 1.0",
    ))
    .await;
    let grpc = agent.addrs.otlp_grpc.unwrap().to_string();
    let http = agent.addrs.otlp_http.unwrap().to_string();
    let script = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("tests/interop/export_spans.py");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&grpc, &http, "200"])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "python exporter failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    flush_and_wait(&agent, 2, 400).await;
    let (buckets, spans, _, _) = query_all(&agent, 0, 1000).await;
    for service in ["py-grpc", "py-http"] {
        let total: i64 = buckets
            .iter()
            .filter(|b| b.service_name == service)
            .map(|b| b.total_spans)
            .sum();
        let errors: i64 = buckets
            .iter()
            .filter(|b| b.service_name == service)
            .map(|b| b.error_count)
            .sum();
        assert_eq!((total, errors), (200, 20), "{service}");
        let b = buckets.iter().find(|b| b.service_name == service).unwrap();
        assert_eq!(b.span_kind, "SERVER");
        assert_eq!((b.min_ms, b.max_ms), (1.0, 200.0));
        let kept: Vec<_> = spans.iter().filter(|s| s.service_name == service).collect();
        assert_eq!(kept.len(), 200);
        let error = kept.iter().find(|s| s.is_error).unwrap();
        assert_eq!(error.http_status_code, 500);
        assert_eq!(error.status_message, "boom");
        let attributes: serde_json::Value = serde_json::from_str(&error.attributes_json).unwrap();
        assert_eq!(
            attributes["http.response.status_code"], 500,
            "ints stay ints"
        );
        assert_eq!(attributes["py.ratio"], 0.5);
        assert_eq!(attributes["py.flag"], true);
    }
    agent.shutdown().await;
}
