//! Golden tests of `coral_beyla::transform`: OTLP fixtures of each Beyla
//! generation (`tests/fixtures/otlp/<gen>.json` and the same requests as
//! protobuf in `<gen>.pb`) → rows, compared exactly with
//! `<gen>.expected.json`. `CORAL_BLESS=1` rewrites the `.pb` and
//! `.expected.json` files from the `.json` ones (see `tests/fixtures/README.md`).

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use coral_beyla::transform::{
    BeylaRows, MetricsOutcome, MinuteWindow, SkipReason, TracesOptions, TransformOptions,
    Transformer, keep_trace, traces,
};
use coral_proto::common::{BeylaTraceSpan, LatencyHistogram};
use coral_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const S: i64 = 1_767_225_600;

fn dir() -> PathBuf {
    PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo test"))
        .join("tests/fixtures/otlp")
}

fn bless() -> bool {
    std::env::var("CORAL_BLESS").is_ok_and(|v| v == "1")
}

fn read_json<T: DeserializeOwned>(name: &str) -> Vec<T> {
    let text = std::fs::read(dir().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The protobuf twin of a JSON fixture: the same requests, each
/// length-delimited, one after the other.
fn check_pb<T: Message + Default + PartialEq + std::fmt::Debug>(
    name: &str,
    from_json: &[T],
) -> Vec<T> {
    let path = dir().join(name);
    if bless() {
        let mut buf = Vec::new();
        for m in from_json {
            m.encode_length_delimited(&mut buf).expect("encode");
        }
        std::fs::write(&path, buf).expect("write .pb");
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut buf = bytes.as_slice();
    let mut out = Vec::new();
    while !buf.is_empty() {
        out.push(T::decode_length_delimited(&mut buf).unwrap_or_else(|e| panic!("{name}: {e}")));
    }
    if out != from_json {
        panic!("{name} does not decode to the same requests as its .json:\n{out:?}\n{from_json:?}");
    }
    out
}

fn check_expected(name: &str, actual: &Value) {
    let path = dir().join(name);
    if bless() {
        std::fs::write(&path, serde_json::to_string_pretty(actual).unwrap() + "\n")
            .expect("write expected");
    }
    let text =
        std::fs::read(&path).unwrap_or_else(|e| panic!("{name}: {e} (run with CORAL_BLESS=1)"));
    let expected: Value = serde_json::from_slice(&text).expect("expected json");
    if !same(&expected, actual) {
        panic!(
            "{name} differs.\n--- actual ---\n{}\n(run with CORAL_BLESS=1 to accept)",
            serde_json::to_string_pretty(actual).unwrap()
        );
    }
}

/// JSON equality, floats within 1e-12 relative (serde_json's default float
/// parser may be one ULP off).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            let (x, y) = (
                x.as_f64().unwrap_or(f64::NAN),
                y.as_f64().unwrap_or(f64::NAN),
            );
            x == y || (x - y).abs() <= 1e-12 * x.abs().max(y.abs())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn hist(h: &Option<LatencyHistogram>) -> Value {
    let h = h.clone().unwrap_or_default();
    json!({"bounds_ms": h.bounds_ms, "counts": h.counts, "count": h.count, "sum_ms": h.sum_ms,
           "min_ms": h.min_ms, "max_ms": h.max_ms})
}

fn sorted(m: &HashMap<String, String>) -> BTreeMap<&String, &String> {
    m.iter().collect()
}

fn rows_json(rows: &BeylaRows) -> Value {
    json!({
        "http": rows.http.iter().map(|r| json!({
            "minute": r.minute, "service_name": r.service_name, "kind": r.kind, "http_method": r.http_method,
            "http_route": r.http_route, "http_status_code": r.http_status_code, "latency": hist(&r.latency),
            "attributes": sorted(&r.attributes)})).collect::<Vec<_>>(),
        "grpc": rows.grpc.iter().map(|r| json!({
            "minute": r.minute, "service_name": r.service_name, "kind": r.kind, "grpc_method": r.grpc_method,
            "grpc_status_code": r.grpc_status_code, "rpc_system": r.rpc_system, "latency": hist(&r.latency),
            "attributes": sorted(&r.attributes)})).collect::<Vec<_>>(),
        "sql": rows.sql.iter().map(|r| json!({
            "minute": r.minute, "service_name": r.service_name, "db_system": r.db_system,
            "sql_operation": r.sql_operation, "table_name": r.table_name, "error_count": r.error_count,
            "latency": hist(&r.latency), "attributes": sorted(&r.attributes)})).collect::<Vec<_>>(),
    })
}

fn outcome_json(o: &MetricsOutcome) -> Value {
    json!({"points_used": o.points_used, "points_baselined": o.points_baselined, "resets": o.resets,
           "points_skipped": o.points_skipped, "skip_reason": o.skip_reason.as_ref().map(ToString::to_string),
           "points_ignored": o.points_ignored, "rows": rows_json(&o.rows)})
}

fn span_json(s: &BeylaTraceSpan) -> Value {
    let attributes: Value =
        serde_json::from_str(&s.attributes_json).expect("attributes_json is JSON");
    json!({"trace_id": s.trace_id, "span_id": s.span_id, "parent_span_id": s.parent_span_id,
           "service_name": s.service_name, "span_name": s.span_name, "span_kind": s.span_kind,
           "start_time_unix_nano": s.start_time_unix_nano, "duration_us": s.duration_us,
           "status_code": s.status_code, "is_error": s.is_error, "attributes": attributes})
}

fn run(reqs: &[ExportMetricsServiceRequest]) -> (Vec<MetricsOutcome>, BeylaRows) {
    let mut t = Transformer::new(TransformOptions::default());
    let mut window = MinuteWindow::new();
    let outcomes: Vec<MetricsOutcome> = reqs.iter().map(|r| t.metrics(r)).collect();
    for o in &outcomes {
        window.add(o.rows.clone());
    }
    (outcomes, window.flush(0, 0, true))
}

/// Decodes both forms, runs both, compares with the golden file.
fn golden_metrics(generation: &str) -> (Vec<MetricsOutcome>, BeylaRows) {
    let from_json: Vec<ExportMetricsServiceRequest> = read_json(&format!("{generation}.json"));
    let from_pb = check_pb(&format!("{generation}.pb"), &from_json);
    let (outcomes, minutes) = run(&from_json);
    assert_eq!(run(&from_pb), (outcomes.clone(), minutes.clone()));
    let actual = json!({
        "exports": outcomes.iter().map(outcome_json).collect::<Vec<_>>(),
        "minutes": rows_json(&minutes),
    });
    check_expected(&format!("{generation}.expected.json"), &actual);
    (outcomes, minutes)
}

fn golden_traces(generation: &str) -> Vec<BeylaTraceSpan> {
    let from_json: Vec<ExportTraceServiceRequest> = read_json(&format!("{generation}.traces.json"));
    let from_pb = check_pb(&format!("{generation}.traces.pb"), &from_json);
    let opts = TracesOptions::default();
    let spans: Vec<BeylaTraceSpan> = from_json
        .iter()
        .flat_map(|r| traces(r, &opts).spans)
        .collect();
    let spans_pb: Vec<BeylaTraceSpan> = from_pb
        .iter()
        .flat_map(|r| traces(r, &opts).spans)
        .collect();
    assert_eq!(spans, spans_pb);
    let actual = json!({"spans": spans.iter().map(span_json).collect::<Vec<_>>()});
    check_expected(&format!("{generation}.traces.expected.json"), &actual);
    spans
}

fn latency(o: &Option<LatencyHistogram>) -> &LatencyHistogram {
    o.as_ref().expect("latency")
}

#[test]
fn v1_cumulative_deltas_inf_bucket_and_restart() {
    let (o, minutes) = golden_metrics("v1");
    assert_eq!(o.len(), 3);
    // Export 1: Beyla started 5 s before, so everything counts in full.
    assert_eq!(
        (o[0].points_used, o[0].points_baselined, o[0].points_ignored),
        (6, 0, 1)
    );
    assert_eq!(
        (
            o[0].rows.http.len(),
            o[0].rows.grpc.len(),
            o[0].rows.sql.len()
        ),
        (3, 2, 1)
    );
    let users = &o[0]
        .rows
        .http
        .iter()
        .find(|r| r.http_route == "/api/users/*")
        .unwrap();
    assert_eq!(users.kind, "server");
    assert_eq!(users.http_status_code, 200);
    assert_eq!(users.minute, S);
    let l = latency(&users.latency);
    assert_eq!((l.count, l.counts.len(), l.bounds_ms[1]), (3, 16, 5.0));
    assert_eq!(
        users.attributes.get("k8s.pod.name").map(String::as_str),
        Some("frontend-7d9f-abc")
    );
    let sql = &o[0].rows.sql[0];
    assert_eq!(
        (
            sql.db_system.as_str(),
            sql.sql_operation.as_str(),
            sql.table_name.as_str()
        ),
        ("other_sql", "SELECT", "accounts")
    );
    // Export 2: deltas only; unchanged series give no row; 12 s lands in +Inf.
    assert_eq!(o[1].rows.http.len(), 2);
    let users = &o[1]
        .rows
        .http
        .iter()
        .find(|r| r.http_route == "/api/users/*")
        .unwrap();
    let l = latency(&users.latency);
    assert_eq!(
        (l.count, l.counts[15], l.max_ms, l.min_ms),
        (4, 1, Some(12_000.0), Some(26.0))
    );
    assert_eq!(o[1].rows.grpc.len(), 1);
    assert_eq!(o[1].rows.grpc[0].grpc_status_code, 0);
    // Export 3: Beyla restarted (new start time): the new values are the delta.
    assert_eq!(o[2].resets, 2);
    assert_eq!(latency(&o[2].rows.http[0].latency).count, 2);
    assert_eq!(o[2].rows.http[0].minute, S + 60);
    // Merged per minute: 3 + 4 GET /api/users/* requests in minute S.
    let users = minutes
        .http
        .iter()
        .find(|r| r.minute == S && r.http_route == "/api/users/*")
        .unwrap();
    assert_eq!(latency(&users.latency).count, 7);
}

#[test]
fn v2_agent_restart_baseline_new_series_and_reset() {
    let (o, _) = golden_metrics("v2");
    // The agent restarted next to a Beyla that ran for an hour: baseline only.
    assert!(o[0].rows.is_empty());
    assert_eq!((o[0].points_used, o[0].points_baselined), (9, 9));
    let r = &o[1].rows;
    let cart = r.http.iter().find(|r| r.http_route == "/api/cart").unwrap();
    assert_eq!(latency(&cart.latency).count, 3);
    // New since export 1 on a known resource: counted in full.
    let c404 = r.http.iter().find(|r| r.http_status_code == 404).unwrap();
    assert_eq!(
        (c404.http_route.as_str(), latency(&c404.latency).count),
        ("/api/cart/*", 2)
    );
    let unavailable = r.grpc.iter().find(|r| r.grpc_status_code == 14).unwrap();
    assert_eq!(
        (
            unavailable.rpc_system.as_str(),
            latency(&unavailable.latency).count
        ),
        ("grpc", 1)
    );
    // Redis SET with and without error.type merge into one row with errors counted.
    let redis = r.sql.iter().find(|r| r.db_system == "redis").unwrap();
    assert_eq!((latency(&redis.latency).count, redis.error_count), (3, 2));
    let publish = r.sql.iter().find(|r| r.sql_operation == "publish").unwrap();
    assert_eq!(
        (publish.db_system.as_str(), publish.table_name.as_str()),
        ("kafka", "orders")
    );
    let process = r.sql.iter().find(|r| r.sql_operation == "process").unwrap();
    assert_eq!(process.table_name, "payments-done");
    // Export 3: the redis error series restarted with a lower count.
    assert_eq!(o[2].resets, 1);
    let redis = o[2]
        .rows
        .sql
        .iter()
        .find(|r| r.db_system == "redis")
        .unwrap();
    assert_eq!((latency(&redis.latency).count, redis.error_count), (1, 1));
}

#[test]
fn v3_names_string_status_delta_exponential_and_target_info() {
    let (o, _) = golden_metrics("v3");
    // target.info, traces.target.info, traces.host.info: ignored, never a service.
    assert_eq!((o[0].points_ignored, o[0].points_skipped), (3, 0));
    let all_services = o.iter().flat_map(|o| {
        let r = &o.rows;
        r.http
            .iter()
            .map(|r| r.service_name.clone())
            .chain(r.grpc.iter().map(|r| r.service_name.clone()))
            .chain(r.sql.iter().map(|r| r.service_name.clone()))
            .collect::<Vec<_>>()
    });
    for s in all_services {
        assert!(s == "checkout" || s == "inventory", "{s}");
    }
    let r = &o[0].rows;
    // http and https series of one route merge; their differing port is dropped.
    let users = r
        .http
        .iter()
        .find(|r| r.http_route == "/api/users/*")
        .unwrap();
    assert_eq!(latency(&users.latency).count, 4);
    assert!(!users.attributes.contains_key("server.port"));
    assert_eq!(
        users
            .attributes
            .get("k8s.namespace.name")
            .map(String::as_str),
        Some("shop")
    );
    let code = |m: &str, kind: &str| {
        r.grpc
            .iter()
            .filter(|g| g.grpc_method == m && g.kind == kind && g.service_name == "checkout")
            .map(|g| g.grpc_status_code)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        code("/routeguide.RouteGuide/GetFeature", "server"),
        vec![0, 14]
    );
    assert_eq!(code("/inventory.Stock/Reserve", "client"), vec![5]);
    let pg = r.sql.iter().find(|r| r.db_system == "postgresql").unwrap();
    assert_eq!(
        (pg.sql_operation.as_str(), pg.table_name.as_str()),
        ("SELECT", "accounts")
    );
    let kafka: Vec<_> = r
        .sql
        .iter()
        .filter(|r| r.db_system == "kafka")
        .map(|r| r.sql_operation.as_str())
        .collect();
    assert_eq!(kafka, vec!["process", "publish"]);
    // inventory: delta temporality and an exponential histogram.
    let inv = r
        .grpc
        .iter()
        .find(|g| g.service_name == "inventory")
        .unwrap();
    let l = latency(&inv.latency);
    assert_eq!(l.count, 3);
    assert!((l.bounds_ms[1] - 7.8125).abs() < 1e-9, "{:?}", l.bounds_ms);
    let inv2 = o[1]
        .rows
        .http
        .iter()
        .find(|h| h.service_name == "inventory")
        .unwrap();
    assert_eq!(latency(&inv2.latency).count, 1);
    assert_eq!(inv2.minute, S + 120);
}

#[test]
fn v2_traces() {
    let spans = golden_traces("v2");
    assert_eq!(spans.len(), 3);
    let redis = spans.iter().find(|s| s.span_name == "SET").unwrap();
    assert!(
        redis
            .attributes_json
            .contains(r#""db.query.text":"SET session:42 ?""#),
        "{}",
        redis.attributes_json
    );
    let grpc = spans
        .iter()
        .find(|s| s.span_kind == "server" && s.status_code == 14)
        .unwrap();
    assert!(grpc.is_error);
    assert_eq!(grpc.parent_span_id, "");
    assert_eq!(grpc.duration_us, 1_500_000);
}

#[test]
fn v3_traces() {
    let spans = golden_traces("v3");
    assert_eq!(spans.len(), 6);
    let server = spans.iter().find(|s| s.span_kind == "server").unwrap();
    assert_eq!(
        (server.status_code, server.is_error, server.duration_us),
        (200, false, 35_120)
    );
    let attrs: Value = serde_json::from_str(&server.attributes_json).unwrap();
    assert_eq!(attrs["server.port"], json!(8080));
    assert_eq!(attrs["http.response.status_code"], json!(200));
    assert_eq!(attrs["os.type"], json!("linux"));
    let sql = spans
        .iter()
        .find(|s| s.span_name.starts_with("SELECT"))
        .unwrap();
    let attrs: Value = serde_json::from_str(&sql.attributes_json).unwrap();
    assert_eq!(
        attrs["db.query.text"],
        json!("SELECT * FROM accounting.contacts WHERE id = ? AND email = ?")
    );
    let rpc = spans
        .iter()
        .find(|s| s.span_name == "/inventory.Stock/Reserve")
        .unwrap();
    assert_eq!(
        (rpc.status_code, rpc.is_error, rpc.span_kind.as_str()),
        (5, true, "client")
    );
    let producer = spans.iter().find(|s| s.span_kind == "producer").unwrap();
    let attrs: Value = serde_json::from_str(&producer.attributes_json).unwrap();
    assert_eq!(attrs["messaging.destination.partition.id"], json!("3"));
    assert!(spans.iter().filter(|s| s.span_kind == "internal").count() == 2);
}

#[test]
fn sampling_keeps_whole_traces_and_is_idempotent() {
    for generation in ["v2", "v3"] {
        let reqs: Vec<ExportTraceServiceRequest> = read_json(&format!("{generation}.traces.json"));
        for rate in [0.0, 0.25, 0.5, 0.9, 1.0] {
            let opts = TracesOptions {
                sample_rate: rate,
                ..Default::default()
            };
            let all: Vec<_> = reqs
                .iter()
                .flat_map(|r| traces(r, &TracesOptions::default()).spans)
                .collect();
            let outcome: Vec<_> = reqs.iter().map(|r| traces(r, &opts)).collect();
            let kept: Vec<_> = outcome.iter().flat_map(|o| o.spans.clone()).collect();
            let dropped: u64 = outcome.iter().map(|o| o.sampled_out).sum();
            assert_eq!(kept.len() as u64 + dropped, all.len() as u64);
            for s in &all {
                let id = hex::decode(&s.trace_id).unwrap();
                let in_kept = kept.iter().any(|k| k.span_id == s.span_id);
                assert_eq!(
                    in_kept,
                    keep_trace(&id, rate),
                    "{generation} {rate} {}",
                    s.trace_id
                );
                // Applying the rule again at the same or a higher rate keeps it.
                if in_kept {
                    assert!(keep_trace(&id, rate) && keep_trace(&id, (rate * 2.0).min(1.0)));
                }
            }
        }
    }
    // Fixture trace ids chosen on both sides of the 0.5 boundary.
    let v2: Vec<ExportTraceServiceRequest> = read_json("v2.traces.json");
    let half = traces(
        &v2[0],
        &TracesOptions {
            sample_rate: 0.5,
            ..Default::default()
        },
    );
    assert_eq!((half.spans.len(), half.sampled_out), (2, 1));
}

fn http_export(service: &str, routes: &[&str], time: u64) -> ExportMetricsServiceRequest {
    let points: Vec<Value> = routes
        .iter()
        .map(|route| json!({
            "attributes": [
                {"key": "http.request.method", "value": {"stringValue": "GET"}},
                {"key": "http.response.status_code", "value": {"intValue": "200"}},
                {"key": "http.route", "value": {"stringValue": route}}],
            "startTimeUnixNano": ((time - 60) * 1_000_000_000).to_string(),
            "timeUnixNano": (time * 1_000_000_000).to_string(),
            "count": "1", "sum": 0.003, "bucketCounts": ["0", "1", "0"], "explicitBounds": [0, 0.005]}))
        .collect();
    let resource = if service.is_empty() {
        json!({})
    } else {
        json!({"attributes": [{"key": "service.name", "value": {"stringValue": service}}]})
    };
    serde_json::from_value(
        json!({"resourceMetrics": [{"resource": resource, "scopeMetrics": [{"metrics": [
        {"name": "http.server.request.duration", "unit": "s",
         "histogram": {"aggregationTemporality": 1, "dataPoints": points}}]}]}]}),
    )
    .unwrap()
}

#[test]
fn routes_beyond_the_cap_go_to_the_overflow_row() {
    let opts = TransformOptions {
        max_routes_per_service: 2,
        ..Default::default()
    };
    let mut t = Transformer::new(opts);
    let time = S as u64 + 30;
    let o = t.metrics(&http_export("shop", &["/a", "/b", "/c", "/d"], time));
    let routes: Vec<(&str, u64)> = o
        .rows
        .http
        .iter()
        .map(|r| (r.http_route.as_str(), latency(&r.latency).count))
        .collect();
    assert_eq!(routes, vec![("/a", 1), ("/b", 1), ("__overflow__", 2)]);
    assert_eq!(coral_model::OVERFLOW_OPERATION, "__overflow__");
    // Admitted routes stay admitted; other services have their own cap.
    let o = t.metrics(&http_export("shop", &["/e", "/b"], time + 60));
    let routes: Vec<&str> = o.rows.http.iter().map(|r| r.http_route.as_str()).collect();
    assert_eq!(routes, vec!["/b", "__overflow__"]);
    let o = t.metrics(&http_export("other", &["/x", "/y"], time + 60));
    assert_eq!(o.rows.http.len(), 2);
}

#[test]
fn points_without_a_service_are_skipped_with_a_reason() {
    let mut t = Transformer::new(TransformOptions::default());
    let o = t.metrics(&http_export("", &["/a"], S as u64));
    assert!(o.rows.is_empty());
    assert_eq!((o.points_used, o.points_skipped), (0, 1));
    assert_eq!(o.skip_reason, Some(SkipReason::NoService));
    // The data point's service.name is the fallback.
    let mut req = http_export("", &["/a"], S as u64);
    let points = match req.resource_metrics[0].scope_metrics[0].metrics[0]
        .data
        .as_mut()
        .unwrap()
    {
        coral_proto::otlp::metrics::v1::metric::Data::Histogram(h) => &mut h.data_points,
        _ => unreachable!(),
    };
    points[0].attributes.push(
        serde_json::from_value(json!(
        {"key": "service.name", "value": {"stringValue": "fallback"}}))
        .unwrap(),
    );
    let o = t.metrics(&req);
    assert_eq!(o.rows.http[0].service_name, "fallback");
}

#[test]
fn non_histograms_and_odd_units() {
    let req: ExportMetricsServiceRequest = serde_json::from_value(json!({"resourceMetrics": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeMetrics": [{"metrics": [
            {"name": "http.server.request.duration", "unit": "s", "gauge": {"dataPoints": [{"asDouble": 1.0}]}},
            {"name": "http.server.duration", "unit": "ms", "histogram": {"aggregationTemporality": 1, "dataPoints": [{
                "attributes": [{"key": "http.route", "value": {"stringValue": "/v0"}}],
                "startTimeUnixNano": "1", "timeUnixNano": (S as u64 * 1_000_000_000).to_string(),
                "count": "1", "sum": 3.0, "bucketCounts": ["0", "1", "0"], "explicitBounds": [0, 5]}]}},
            {"name": "db.client.operation.duration", "unit": "By", "histogram": {"dataPoints": [{}]}}]}]}]}))
    .unwrap();
    let mut t = Transformer::new(TransformOptions::default());
    let o = t.metrics(&req);
    assert_eq!(o.points_skipped, 2);
    assert_eq!(
        o.skip_reason,
        Some(SkipReason::NotHistogram(
            "http.server.request.duration".into()
        ))
    );
    // v0's milliseconds are kept as they are.
    assert_eq!(latency(&o.rows.http[0].latency).bounds_ms, vec![0.0, 5.0]);
}
