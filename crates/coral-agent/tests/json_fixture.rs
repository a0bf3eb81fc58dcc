//! Golden test: an OTLP/JSON export (tests/fixtures/otlp/traces.json) is
//! stored exactly as tests/fixtures/otlp/traces.expected.json says.

mod common;

use std::path::PathBuf;

use coral_proto::common::TelemetrySpan;
use serde_json::{Value, json};

use common::{config, flush_and_wait, query_all, start};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("tests/fixtures/otlp")
        .join(name)
}

fn to_json(s: &TelemetrySpan) -> Value {
    json!({
        "trace_id": s.trace_id,
        "span_id": s.span_id,
        "parent_span_id": s.parent_span_id,
        "service_name": s.service_name,
        "span_name": s.span_name,
        "span_kind": s.span_kind,
        "start_time_unix_nano": s.start_time_unix_nano,
        "duration_us": s.duration_us,
        "is_error": s.is_error,
        "status_code": s.status_code,
        "status_message": s.status_message,
        "http_status_code": s.http_status_code,
        "http_method": s.http_method,
        "http_route": s.http_route,
        "rpc_system": s.rpc_system,
        "rpc_service": s.rpc_service,
        "rpc_method": s.rpc_method,
        "grpc_status_code": s.grpc_status_code,
        "db_system": s.db_system,
        "db_operation": s.db_operation,
        "db_collection": s.db_collection,
        "keep_reason": s.keep_reason,
        "attributes": serde_json::from_str::<Value>(&s.attributes_json).unwrap(),
        "resource": serde_json::from_str::<Value>(&s.resource_json).unwrap(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn otlp_json_fixture_is_stored_as_expected() {
    let dir = tempfile::tempdir().unwrap();
    let extra = "    filters:\n      - sample_rate: 1.0\n    scrub_attributes: [\"email|ssn\"]";
    let mut cfg = config(dir.path(), extra);
    // The fixture's spans are from 2023: keep them through retention.
    cfg.storage.retention = std::time::Duration::from_secs(50 * 365 * 86_400);
    let agent = start(&cfg).await;
    let body = std::fs::read(fixture("traces.json")).unwrap();
    let response = reqwest::Client::new()
        .post(format!(
            "http://{}/v1/traces",
            agent.addrs.otlp_http.unwrap()
        ))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    flush_and_wait(&agent, 2, 3).await;
    let (_, spans, _, _) = query_all(&agent, 0, 0).await;
    let actual = Value::Array(spans.iter().map(to_json).collect());
    let expected_path = fixture("traces.expected.json");
    if std::env::var_os("CORAL_UPDATE_GOLDEN").is_some() {
        std::fs::write(
            &expected_path,
            serde_json::to_string_pretty(&actual).unwrap() + "\n",
        )
        .unwrap();
    }
    let expected: Value = serde_json::from_slice(&std::fs::read(&expected_path).unwrap()).unwrap();
    assert_eq!(
        actual, expected,
        "regenerate with CORAL_UPDATE_GOLDEN=1 if the change is intended"
    );
    agent.shutdown().await;
}
