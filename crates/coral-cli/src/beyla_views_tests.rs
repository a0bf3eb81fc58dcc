//! Golden renderings of `coral query beyla http|grpc|sql` from fixed rows,
//! with percentiles worked out by hand (Beyla's bounds in ms: 0, 5, 10, 25,
//! 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000, +Inf).

use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, LatencyHistogram};

use super::*;

const BOUNDS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];

fn latency(bucket: usize, n: u64, min: Option<f64>, max: Option<f64>) -> Option<LatencyHistogram> {
    let mut counts = vec![0; 16];
    counts[bucket] = n;
    Some(
        Histogram::new(BOUNDS.to_vec(), counts, 0.0, min, max)
            .unwrap()
            .to_proto(),
    )
}

fn http(method: &str, route: &str, status: u32, h: Option<LatencyHistogram>) -> BeylaHttpMetric {
    BeylaHttpMetric {
        minute: 1_795_000_000,
        service_name: "payments-api".into(),
        kind: "server".into(),
        http_method: method.into(),
        http_route: route.into(),
        http_status_code: status,
        latency: h,
        ..Default::default()
    }
}

/// 100 POST /payments in (25, 50] (30–48 ms) + 3 errors in (250, 500]
/// (300–420 ms); one GET of 8 ms; three failed refunds past 10 s, max unknown.
fn fixture() -> QueryBeylaResponse {
    QueryBeylaResponse {
        http_metrics: vec![
            http(
                "POST",
                "/api/v1/payments",
                200,
                latency(4, 100, Some(30.0), Some(48.0)),
            ),
            http(
                "POST",
                "/api/v1/payments",
                500,
                latency(8, 3, Some(300.0), Some(420.0)),
            ),
            http(
                "GET",
                "/api/v1/payments/:id",
                200,
                latency(2, 1, Some(8.0), Some(8.0)),
            ),
            http("POST", "/api/v1/refunds", 503, latency(15, 3, None, None)),
            // Client calls are not the service's routes.
            BeylaHttpMetric {
                kind: "client".into(),
                ..http("GET", "/charge", 200, latency(4, 7, None, None))
            },
        ],
        ..Default::default()
    }
}

fn window() -> Window<'static> {
    Window {
        from: 1_795_000_000 - 3600,
        to: 1_795_000_020,
        since: Some("1h"),
    }
}

fn server() -> HttpFilter {
    HttpFilter {
        kind: "server".into(),
        ..Default::default()
    }
}

#[test]
fn http_table_matches_the_seed_layout() {
    let out = render(
        "payments-api",
        &window(),
        Family::Http,
        &fixture(),
        &server(),
        Format::Table,
        &Empty::default(),
    );
    // POST /payments (103): p50 rank 51.5 → 25 + 25 × 0.515 = 37.9; p95 rank
    // 97.85 → 49.5; p99 rank 101.97 → 250 + 250 × 1.97/3 = 414.2.
    // Refunds: every rank in +Inf with no max → "> 10 s". GET: clamped to 8.
    let expected = "\
Service: payments-api (last 1 hour, Beyla HTTP metrics)

Route                    | Requests | P50     | P95     | P99     | Max    | Errors
POST /api/v1/payments    | 103      | 38ms    | 49ms    | 414ms   | 420ms  | 2.9%
POST /api/v1/refunds     | 3        | >10.00s | >10.00s | >10.00s | -      | 100.0%
GET /api/v1/payments/:id | 1        | 8.00ms  | 8.00ms  | 8.00ms  | 8.00ms | 0.0%

Overall: 107 requests, P95=304ms, Max=-, error rate=5.6%
Errors are responses with status ≥ 500.
";
    assert_eq!(out, expected, "\n{out}");
}

#[test]
fn http_json_is_exact() {
    let out = render(
        "payments-api",
        &window(),
        Family::Http,
        &fixture(),
        &server(),
        Format::Json,
        &Empty::default(),
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["service"], "payments-api");
    assert_eq!(v["from"], "2026-11-18T10:06:40Z");
    assert_eq!(v["to"], "2026-11-18T11:07:00Z");
    let first = &v["routes"][0];
    assert_eq!(first["method"], "POST");
    assert_eq!(first["route"], "/api/v1/payments");
    assert_eq!(first["requests"], 103);
    assert_eq!(first["errors"], 3);
    assert_eq!(first["error_rate"], 3.0 / 103.0);
    assert_eq!(first["p50_ms"], 37.875);
    assert_eq!(first["p95_ms"], 49.4625);
    let p99 = first["p99_ms"].as_f64().unwrap();
    assert!((p99 - (250.0 + 250.0 * 1.97 / 3.0)).abs() < 1e-9, "{p99}");
    assert!(first.get("above_last_bound").is_none());
    assert_eq!(first["max_ms"], 420.0);
    let refunds = &v["routes"][1];
    assert_eq!(refunds["error_rate"], 1.0);
    assert_eq!(refunds["p99_ms"], 10000.0);
    assert_eq!(
        refunds["max_ms"],
        serde_json::Value::Null,
        "unknown, not made up"
    );
    assert_eq!(
        refunds["above_last_bound"],
        serde_json::json!(["p50", "p95", "p99"])
    );
    assert_eq!(v["overall"]["requests"], 107);
    assert_eq!(v["overall"]["errors"], 6);
    assert_eq!(v["overall"]["above_last_bound"], serde_json::json!(["p99"]));
}

#[test]
fn http_csv_and_filters() {
    let filter = HttpFilter {
        status: Some("5xx".into()),
        ..server()
    };
    let out = render(
        "payments-api",
        &window(),
        Family::Http,
        &fixture(),
        &filter,
        Format::Csv,
        &Empty::default(),
    );
    assert_eq!(
        out,
        "method,route,requests,errors,error_rate,p50_ms,p95_ms,p99_ms,max_ms\n\
POST,/api/v1/payments,3,3,1,375,420,420,420\n\
POST,/api/v1/refunds,3,3,1,10000,10000,10000,\n"
    );
    assert!(status_matches("404", 404) && !status_matches("404", 400));
    assert!(status_matches("5XX", 503) && !status_matches("5xx", 499));
    assert!(parse_status("6xx").is_err() && parse_status("abc").is_err());
}

#[test]
fn empty_results_say_what_to_check() {
    let out = render(
        "nobody",
        &Window {
            from: 0,
            to: 3600,
            since: None,
        },
        Family::Http,
        &QueryBeylaResponse::default(),
        &server(),
        Format::Table,
        &Empty::default(),
    );
    assert_eq!(
        out,
        "Service: nobody (1970-01-01 00:00 to 1970-01-01 01:00 UTC, Beyla HTTP metrics)\n\n\
No Beyla HTTP metrics of nobody in this window.\n\
Check the service name with `coral query services`, widen --since, or check Beyla with `coral agents`.\n"
    );
    let json = render(
        "nobody",
        &window(),
        Family::Http,
        &QueryBeylaResponse::default(),
        &server(),
        Format::Json,
        &Empty::default(),
    );
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["routes"], serde_json::json!([]));
    assert_eq!(v["overall"]["requests"], 0);
    assert_eq!(v["overall"]["p95_ms"], serde_json::Value::Null);
}

#[test]
fn grpc_and_sql_tables() {
    let r = QueryBeylaResponse {
        grpc_metrics: vec![
            BeylaGrpcMetric {
                service_name: "payments-api".into(),
                kind: "server".into(),
                grpc_method: "/payments.PaymentService/Charge".into(),
                grpc_status_code: 0,
                latency: latency(3, 40, Some(18.0), Some(22.0)),
                ..Default::default()
            },
            BeylaGrpcMetric {
                service_name: "payments-api".into(),
                kind: "server".into(),
                grpc_method: "/payments.PaymentService/Charge".into(),
                grpc_status_code: 14,
                latency: latency(11, 5, Some(1100.0), Some(1300.0)),
                ..Default::default()
            },
        ],
        sql_metrics: vec![BeylaSqlMetric {
            service_name: "payments-api".into(),
            db_system: "postgresql".into(),
            sql_operation: "SELECT".into(),
            table_name: "orders".into(),
            error_count: 1,
            latency: latency(1, 50, Some(3.5), Some(4.5)),
            ..Default::default()
        }],
        ..Default::default()
    };
    let grpc = render(
        "payments-api",
        &window(),
        Family::Grpc,
        &r,
        &server(),
        Format::Table,
        &Empty::default(),
    );
    // 45 calls: p50 rank 22.5 → 10 + 15 × 22.5/40 = 18.4 (clamped ≥ 18);
    // p95 rank 42.75 → (1000, 2500]: 1000 + 1500 × 2.75/5 = 1825 → max 1300.
    assert_eq!(
        grpc,
        "Service: payments-api (last 1 hour, Beyla gRPC metrics)\n\n\
Method                          | Requests | P50  | P95   | P99   | Max   | Errors\n\
/payments.PaymentService/Charge | 45       | 18ms | 1.30s | 1.30s | 1.30s | 11.1%\n\n\
Overall: 45 requests, P95=1.30s, Max=1.30s, error rate=11.1%\n\
Errors are calls with a status other than OK.\n"
    );
    let sql = render(
        "payments-api",
        &window(),
        Family::Sql,
        &r,
        &server(),
        Format::Table,
        &Empty::default(),
    );
    assert_eq!(
        sql,
        "Service: payments-api (last 1 hour, Beyla SQL metrics)\n\n\
Operation | Table  | Queries | P50    | P95    | P99    | Max    | Errors\n\
SELECT    | orders | 50      | 3.50ms | 4.50ms | 4.50ms | 4.50ms | 2.0%\n\n\
Overall: 50 queries, P95=4.50ms, Max=4.50ms, error rate=2.0%\n\
Errors are operations that reported an error.\n"
    );
    let v: serde_json::Value = serde_json::from_str(&render(
        "payments-api",
        &window(),
        Family::Sql,
        &r,
        &server(),
        Format::Json,
        &Empty::default(),
    ))
    .unwrap();
    assert_eq!(v["operations"][0]["table"], "orders");
    assert_eq!(v["operations"][0]["system"], "postgresql");
    assert_eq!(v["operations"][0]["queries"], 50);
}

#[test]
fn services_table_shows_both_sources() {
    use coral_proto::colony::ServiceSummary;
    let services = vec![
        ServiceSummary {
            service_name: "checkout".into(),
            source: "beyla".into(),
            requests: 45_200,
            errors: 1_040,
            error_rate: 1_040.0 / 45_200.0,
            p95_ms: Some(180.0),
            agents: vec!["web-1".into(), "web-2".into()],
            ..Default::default()
        },
        ServiceSummary {
            service_name: "checkout".into(),
            source: "otlp".into(),
            requests: 12,
            errors: 0,
            error_rate: 0.0,
            p95_ms: Some(4.2),
            agents: vec!["web-1".into()],
            ..Default::default()
        },
    ];
    let out = render_services(&window(), &services, Format::Table, &Empty::default());
    assert!(
        out.starts_with(
            "Services (last 1 hour)\n\n\
Service   Source  Requests  Errors  P95     Agents\n\
checkout  beyla   45.2k     2.3%    180ms   web-1, web-2\n\
checkout  otlp    12        0.0%    4.20ms  web-1\n"
        ),
        "{out}"
    );
    let v: serde_json::Value = serde_json::from_str(&render_services(
        &window(),
        &services,
        Format::Json,
        &Empty::default(),
    ))
    .unwrap();
    assert_eq!(v["services"][0]["requests"], 45_200);
    assert_eq!(v["services"][1]["p95_ms"], 4.2);
    assert!(
        render_services(&window(), &[], Format::Table, &Empty::default())
            .starts_with("No services")
    );
    assert!(
        out.contains("Next: coral query beyla http <service> · coral query otel <service>\n"),
        "{out}"
    );
}

#[test]
fn services_table_suggests_beyla_only_when_beyla_has_data() {
    use coral_proto::colony::ServiceSummary;
    let services = vec![ServiceSummary {
        service_name: "checkout".into(),
        source: "otlp".into(),
        requests: 12,
        p95_ms: Some(4.2),
        agents: vec!["laptop".into()],
        ..Default::default()
    }];
    let out = render_services(&window(), &services, Format::Table, &Empty::default());
    assert!(
        out.ends_with(
            "\notlp: SERVER and CONSUMER spans, all kinds when a service has neither (errors: span status ERROR).\n\
Next: coral query otel <service>\n"
        ),
        "{out}"
    );
    assert!(!out.contains("beyla"), "{out}");
    let empty = Empty {
        hint: None,
        arrival: output::arrival_note(1_795_000_000, 1_795_000_020),
    };
    let out = render_services(&window(), &[], Format::Table, &empty);
    assert!(out.contains("Minutes appear once they close"), "{out}");
}
