//! Renderings of `coral query otel <service> --by operation` (one row per
//! operation over the window, by total time spent) and `--operation O` (one
//! operation per minute). The numbers come from the buckets' operation
//! breakdown, built from 100 % of spans; percentiles from merged sketches.
//! JSON and CSV follow the contract in docs/cli.md.

use coral_proto::colony::{OperationRow, QueryOperationsResponse};
use serde_json::json;

use crate::output::{self, Format, count, ms, percent, rate, rfc3339};

/// CSV columns of `--by operation` (the JSON fields, in order).
const BY_OPERATION_COLUMNS: [&str; 13] = [
    "operation",
    "span_kind",
    "total_spans",
    "error_count",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "min_ms",
    "max_ms",
    "total_ms",
    "agents",
    "sample_traces",
];

fn row_json(r: &OperationRow) -> serde_json::Value {
    json!({
        "operation": r.operation,
        "span_kind": r.span_kind,
        "total_spans": r.total_spans,
        "error_count": r.error_count,
        "error_rate": rate(r.error_count, r.total_spans),
        "p50_ms": r.p50_ms, "p95_ms": r.p95_ms, "p99_ms": r.p99_ms,
        "min_ms": r.min_ms, "max_ms": r.max_ms,
        "total_ms": r.sum_ms,
        "agents": r.agent_count,
        "sample_traces": r.sample_traces,
    })
}

fn row_csv(r: &OperationRow) -> Vec<String> {
    vec![
        r.operation.clone(),
        r.span_kind.clone(),
        r.total_spans.to_string(),
        r.error_count.to_string(),
        rate(r.error_count, r.total_spans).to_string(),
        r.p50_ms.to_string(),
        r.p95_ms.to_string(),
        r.p99_ms.to_string(),
        r.min_ms.to_string(),
        r.max_ms.to_string(),
        r.sum_ms.to_string(),
        r.agent_count.to_string(),
        r.sample_traces.join(" "),
    ]
}

fn operation_name(name: &str) -> String {
    if name == coral_model::OVERFLOW_OPERATION {
        format!("{name} (operations past the agent's per-service cap)")
    } else {
        name.to_owned()
    }
}

/// `coral query otel <service> --by operation`; `empty` is printed under the
/// table when the window holds nothing.
pub fn render_by_operation(
    service: &str,
    r: &QueryOperationsResponse,
    format: Format,
    empty: &str,
) -> String {
    match format {
        Format::Json => output::json(&json!({
            "service": service,
            "from": rfc3339(r.from_unix),
            "to": rfc3339(r.to_unix),
            "operations": r.totals.iter().map(row_json).collect::<Vec<_>>(),
        })),
        Format::Csv => output::csv(
            &BY_OPERATION_COLUMNS,
            &r.totals.iter().map(row_csv).collect::<Vec<_>>(),
        ),
        Format::Table => {
            let mut out = format!(
                "Operations of {service} ({} → {}, from 100 % of spans, by total time spent)\n\n",
                rfc3339(r.from_unix),
                rfc3339(r.to_unix)
            );
            if r.totals.is_empty() {
                out.push_str(&format!("No spans of {service} in this window.\n"));
                out.push_str(empty);
                return out;
            }
            let all: f64 = r.totals.iter().map(|x| x.sum_ms).sum();
            let rows: Vec<Vec<String>> = r
                .totals
                .iter()
                .map(|x| {
                    vec![
                        operation_name(&x.operation),
                        x.span_kind.clone(),
                        count(x.total_spans),
                        percent(rate(x.error_count, x.total_spans)),
                        ms(x.p50_ms),
                        ms(x.p95_ms),
                        ms(x.p99_ms),
                        ms(x.max_ms),
                        ms(x.sum_ms),
                        if all > 0.0 {
                            format!("{:.0}%", 100.0 * x.sum_ms / all)
                        } else {
                            "-".into()
                        },
                    ]
                })
                .collect();
            out.push_str(&output::table(
                &[
                    "Operation",
                    "Kind",
                    "Spans",
                    "Errors",
                    "P50",
                    "P95",
                    "P99",
                    "Max",
                    "Total time",
                    "Of total",
                ],
                &rows,
            ));
            out.push_str(&format!(
                "\nFollow one per minute: coral query otel {service} --operation '<operation>'\n"
            ));
            out
        }
    }
}

/// `coral query otel <service> --operation O`: the operation per minute.
pub fn render_operation(
    service: &str,
    operation: &str,
    r: &QueryOperationsResponse,
    format: Format,
    empty: &str,
) -> String {
    match format {
        Format::Json => {
            let minute = |x: &OperationRow| {
                let mut v = row_json(x);
                v["bucket_time"] = json!(rfc3339(x.bucket_time));
                v
            };
            output::json(&json!({
                "service": service,
                "operation": operation,
                "from": rfc3339(r.from_unix),
                "to": rfc3339(r.to_unix),
                "minutes": r.rows.iter().map(minute).collect::<Vec<_>>(),
                "totals": r.totals.iter().map(row_json).collect::<Vec<_>>(),
            }))
        }
        Format::Csv => {
            let mut columns = vec!["bucket_time"];
            columns.extend(BY_OPERATION_COLUMNS);
            let rows: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|x| {
                    let mut row = vec![rfc3339(x.bucket_time)];
                    row.extend(row_csv(x));
                    row
                })
                .collect();
            output::csv(&columns, &rows)
        }
        Format::Table => {
            let mut out = format!(
                "{service} {} ({} → {}, per minute, from 100 % of spans)\n\n",
                operation_name(operation),
                rfc3339(r.from_unix),
                rfc3339(r.to_unix)
            );
            if r.rows.is_empty() {
                out.push_str(&format!(
                    "No spans of {service} named {operation:?} in this window.\n"
                ));
                out.push_str(empty);
                return out;
            }
            let row = |first: String, x: &OperationRow| {
                vec![
                    first,
                    x.span_kind.clone(),
                    count(x.total_spans),
                    percent(rate(x.error_count, x.total_spans)),
                    ms(x.p50_ms),
                    ms(x.p95_ms),
                    ms(x.p99_ms),
                    ms(x.max_ms),
                    x.sample_traces.first().cloned().unwrap_or_default(),
                ]
            };
            let rows: Vec<Vec<String>> = r
                .rows
                .iter()
                .map(|x| row(output::minute(x.bucket_time), x))
                .chain(r.totals.iter().map(|x| row("window".into(), x)))
                .collect();
            out.push_str(&output::table(
                &[
                    "Minute (UTC)",
                    "Kind",
                    "Spans",
                    "Errors",
                    "P50",
                    "P95",
                    "P99",
                    "Max",
                    "Sample trace",
                ],
                &rows,
            ));
            out.push_str("\nOpen a trace: coral query traces --trace-id <id>\n");
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace_views::tests::golden;

    fn row(minute: i64, op: &str, n: i64, errors: i64, p: [f64; 4], sum: f64) -> OperationRow {
        OperationRow {
            bucket_time: minute,
            operation: op.into(),
            span_kind: "SERVER".into(),
            total_spans: n,
            error_count: errors,
            p50_ms: p[0],
            p95_ms: p[1],
            p99_ms: p[2],
            min_ms: 1.0,
            max_ms: p[3],
            sum_ms: sum,
            sample_traces: vec!["4bf92f3577b34da6a3ce929d0e0e4736".into()],
            agent_count: 2,
        }
    }

    fn response() -> QueryOperationsResponse {
        QueryOperationsResponse {
            rows: vec![
                row(
                    1_795_000_020,
                    "POST /api/checkout",
                    600,
                    12,
                    [45.0, 180.0, 420.0, 666.0],
                    40_000.0,
                ),
                row(
                    1_795_000_080,
                    "POST /api/checkout",
                    620,
                    0,
                    [44.0, 170.0, 400.0, 512.0],
                    39_000.0,
                ),
            ],
            totals: vec![
                row(
                    0,
                    "POST /api/checkout",
                    1220,
                    12,
                    [44.5, 176.0, 410.0, 666.0],
                    79_000.0,
                ),
                row(0, "GET /health", 240, 0, [0.9, 1.4, 2.0, 3.1], 260.0),
                row(
                    0,
                    coral_model::OVERFLOW_OPERATION,
                    12,
                    1,
                    [3.0, 9.0, 9.9, 10.0],
                    60.0,
                ),
            ],
            from_unix: 1_795_000_020,
            to_unix: 1_795_000_140,
        }
    }

    #[test]
    fn by_operation_golden() {
        let r = response();
        golden(
            "operations_table.txt",
            &render_by_operation("checkout", &r, Format::Table, ""),
        );
        let v: serde_json::Value =
            serde_json::from_str(&render_by_operation("checkout", &r, Format::Json, "")).unwrap();
        let first = &v["operations"][0];
        assert_eq!(first["operation"], "POST /api/checkout");
        assert_eq!(first["total_spans"], 1220);
        assert_eq!(first["total_ms"], 79_000.0);
        assert_eq!(first["max_ms"], 666.0);
        assert_eq!(v["operations"][2]["operation"], "__overflow__");
        let csv = render_by_operation("checkout", &r, Format::Csv, "");
        assert!(csv.starts_with("operation,span_kind,total_spans,"), "{csv}");
        assert_eq!(csv.lines().count(), 4);
    }

    #[test]
    fn per_minute_golden() {
        let mut r = response();
        r.totals.truncate(1);
        golden(
            "operation_minutes_table.txt",
            &render_operation("checkout", "POST /api/checkout", &r, Format::Table, ""),
        );
        let v: serde_json::Value = serde_json::from_str(&render_operation(
            "checkout",
            "POST /api/checkout",
            &r,
            Format::Json,
            "",
        ))
        .unwrap();
        assert_eq!(v["minutes"][1]["bucket_time"], "2026-11-18T11:08:00Z");
        assert_eq!(v["minutes"][0]["error_count"], 12);
        let empty = QueryOperationsResponse::default();
        assert!(
            render_operation("checkout", "x", &empty, Format::Table, "hint\n")
                .ends_with("No spans of checkout named \"x\" in this window.\nhint\n")
        );
    }
}
