//! Which Beyla metrics are RED durations, and how their attributes become a
//! row key, for every Beyla generation (reference: `beyla-otlp.md` §1.3–1.4).
//!
//! | Family | Metric names (newest first) | Row |
//! |---|---|---|
//! | HTTP | `http.{server,client}.request.duration`, `http.{server,client}.duration` | `BeylaHttpMetric` |
//! | RPC | `rpc.{server,client}.call.duration`, `rpc.{server,client}.duration` | `BeylaGrpcMetric` |
//! | DB | `db.client.operation.duration`, `sql.client.duration`, `db.server.operation.duration` | `BeylaSqlMetric` |
//! | Messaging | `messaging.client.operation.duration`, `messaging.publish.duration`, `messaging.process.duration` | `BeylaSqlMetric` |
//!
//! Attribute aliases: `rpc.response.status_code` (string canonical name,
//! v3.23+) | `rpc.grpc.status_code` (int); `rpc.system.name` | `rpc.system`;
//! `db.system.name` | `db.system`; `db.operation.name` | `db.operation`;
//! `db.collection.name` | `db.sql.table`.
//!
//! Missing values: an HTTP status of 0 means Beyla saw none; a missing RPC
//! status is 0 (OK) unless `error.type` is set (then 2, UNKNOWN), and an RPC
//! status outside 0–16 (e.g. a JSON-RPC error code) is 2. `sql.client.duration`
//! (Beyla v1, no `db.system`) reports `other_sql`, Beyla's own name for an
//! unknown SQL engine. `db.server.operation.duration` rows (a database server
//! instrumented by Beyla, e.g. Redis) carry the identity attribute
//! `span.kind = server`; their service is the database process itself.

use coral_proto::otlp::common::v1::{KeyValue, any_value::Value};

use super::attrs::{find, int_of, present, str_of};
use super::sql::obfuscate_sql;
use super::window::SeriesKey;

/// Client or server side of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Server,
    Client,
}

impl Side {
    fn as_str(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// A RED duration metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Http(Side),
    Rpc(Side),
    Db(Side),
    /// Messaging; the operation implied by the metric name, if any.
    Messaging(Option<&'static str>),
}

/// The family of a metric name, `None` for everything that is not a RED
/// duration (body sizes, `target.info`, process and network metrics, …).
pub(crate) fn classify(name: &str) -> Option<Family> {
    Some(match name {
        "http.server.request.duration" | "http.server.duration" => Family::Http(Side::Server),
        "http.client.request.duration" | "http.client.duration" => Family::Http(Side::Client),
        "rpc.server.call.duration" | "rpc.server.duration" => Family::Rpc(Side::Server),
        "rpc.client.call.duration" | "rpc.client.duration" => Family::Rpc(Side::Client),
        "db.client.operation.duration" | "sql.client.duration" => Family::Db(Side::Client),
        "db.server.operation.duration" => Family::Db(Side::Server),
        "messaging.client.operation.duration" => Family::Messaging(None),
        "messaging.publish.duration" => Family::Messaging(Some("publish")),
        "messaging.process.duration" => Family::Messaging(Some("process")),
        _ => return None,
    })
}

/// Milliseconds per unit of a duration metric. An empty unit is taken as
/// seconds (Beyla's unit since v0.1); `None` for units that are not durations.
pub(crate) fn ms_per_unit(unit: &str) -> Option<f64> {
    Some(match unit {
        "s" | "" => 1_000.0,
        "ms" => 1.0,
        "us" | "µs" | "μs" => 1e-3,
        "ns" => 1e-6,
        _ => return None,
    })
}

/// The canonical gRPC code of a status name (`"NOT_FOUND"` → 5), case
/// insensitive, also accepting the code as decimal text.
pub fn grpc_code(name: &str) -> Option<u32> {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    let name = name.trim();
    if let Ok(n) = name.parse::<u32>() {
        return (n <= 16).then_some(n);
    }
    if name.eq_ignore_ascii_case("CANCELED") {
        return Some(1);
    }
    NAMES
        .iter()
        .position(|n| n.eq_ignore_ascii_case(name))
        .map(|i| i as u32)
}

/// The gRPC status of an RPC data point or span (see the module docs).
pub(crate) fn rpc_status(attrs: &[KeyValue]) -> u32 {
    const UNKNOWN: u32 = 2;
    match find(attrs, "rpc.response.status_code") {
        Some(Value::StringValue(s)) => return grpc_code(s).unwrap_or(UNKNOWN),
        Some(Value::IntValue(i)) => {
            return u32::try_from(*i)
                .ok()
                .filter(|c| *c <= 16)
                .unwrap_or(UNKNOWN);
        }
        _ => {}
    }
    if let Some(i) = int_of(attrs, &["rpc.grpc.status_code"]) {
        return u32::try_from(i)
            .ok()
            .filter(|c| *c <= 16)
            .unwrap_or(UNKNOWN);
    }
    if present(attrs, "error.type") {
        UNKNOWN
    } else {
        0
    }
}

/// The HTTP status of a data point or span; 0 when absent or out of range.
pub(crate) fn http_status(attrs: &[KeyValue]) -> u32 {
    int_of(attrs, &["http.response.status_code", "http.status_code"])
        .and_then(|i| u32::try_from(i).ok())
        .filter(|c| *c <= 999)
        .unwrap_or(0)
}

/// The row key of a data point, and whether it counts as failed
/// (`error.type` present; only database and messaging rows count errors).
/// The HTTP route is the raw one (`http.route`, else `url.path`): the caller
/// applies the cardinality cap. With `obfuscate`, database operations and
/// tables go through [`obfuscate_sql`] (they are verbs and names, but an
/// instrumentation that puts query text there must not leak literals).
pub(crate) fn series_key(
    family: Family,
    service: &str,
    attrs: &[KeyValue],
    obfuscate: bool,
) -> (SeriesKey, bool) {
    let text = |keys: &[&str]| str_of(attrs, keys).unwrap_or_default();
    let scrub = |s: String| if obfuscate { obfuscate_sql(&s) } else { s };
    let failed = present(attrs, "error.type");
    let key = match family {
        Family::Http(side) => SeriesKey::Http {
            service: service.to_string(),
            kind: side.as_str().to_string(),
            method: text(&["http.request.method", "http.method"]),
            route: text(&["http.route", "url.path", "http.target"]),
            status: http_status(attrs),
        },
        Family::Rpc(side) => SeriesKey::Grpc {
            service: service.to_string(),
            kind: side.as_str().to_string(),
            method: rpc_method(attrs),
            status: rpc_status(attrs),
            system: text(&["rpc.system.name", "rpc.system"]),
        },
        Family::Db(_) => {
            let mut system = text(&["db.system.name", "db.system"]);
            if system.is_empty() {
                system = "other_sql".into();
            }
            SeriesKey::Sql {
                service: service.to_string(),
                system,
                operation: scrub(text(&["db.operation.name", "db.operation"])),
                table: scrub(text(&[
                    "db.collection.name",
                    "db.sql.table",
                    "db.mongodb.collection",
                ])),
            }
        }
        Family::Messaging(op) => {
            let operation = op.map(str::to_string).unwrap_or_else(|| {
                let o = text(&[
                    "messaging.operation.name",
                    "messaging.operation.type",
                    "messaging.operation",
                ]);
                if o.is_empty() { "publish".into() } else { o }
            });
            SeriesKey::Sql {
                service: service.to_string(),
                system: text(&["messaging.system"]),
                operation,
                table: text(&["messaging.destination.name", "messaging.destination"]),
            }
        }
    };
    let counts_errors = matches!(family, Family::Db(_) | Family::Messaging(_));
    (key, counts_errors && failed)
}

/// `rpc.method` as Beyla reports it (the full path); when only a bare method
/// and `rpc.service` are given, `/<service>/<method>`.
fn rpc_method(attrs: &[KeyValue]) -> String {
    let method = str_of(attrs, &["rpc.method"]).unwrap_or_default();
    match str_of(attrs, &["rpc.service"]) {
        Some(svc) if !svc.is_empty() && !method.starts_with('/') && !method.is_empty() => {
            format!("/{svc}/{method}")
        }
        _ => method,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_proto::otlp::common::v1::AnyValue;

    fn kv(key: &str, v: Value) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn every_generation_name_is_known() {
        assert_eq!(
            classify("http.server.duration"),
            Some(Family::Http(Side::Server))
        );
        assert_eq!(
            classify("rpc.client.call.duration"),
            Some(Family::Rpc(Side::Client))
        );
        assert_eq!(
            classify("sql.client.duration"),
            Some(Family::Db(Side::Client))
        );
        assert_eq!(
            classify("messaging.process.duration"),
            Some(Family::Messaging(Some("process")))
        );
        assert_eq!(classify("http.server.request.body.size"), None);
        assert_eq!(classify("target.info"), None);
        assert_eq!(ms_per_unit("s"), Some(1000.0));
        assert_eq!(ms_per_unit("By"), None);
    }

    #[test]
    fn grpc_status_in_both_forms() {
        assert_eq!(grpc_code("NOT_FOUND"), Some(5));
        assert_eq!(grpc_code("unauthenticated"), Some(16));
        assert_eq!(grpc_code("17"), None);
        let new = [kv(
            "rpc.response.status_code",
            Value::StringValue("INTERNAL".into()),
        )];
        assert_eq!(rpc_status(&new), 13);
        let old = [kv("rpc.grpc.status_code", Value::IntValue(3))];
        assert_eq!(rpc_status(&old), 3);
        let odd = [kv(
            "rpc.response.status_code",
            Value::StringValue("-32601".into()),
        )];
        assert_eq!(rpc_status(&odd), 2);
        assert_eq!(rpc_status(&[]), 0);
        assert_eq!(
            rpc_status(&[kv("error.type", Value::StringValue("x".into()))]),
            2
        );
    }

    #[test]
    fn messaging_maps_to_sql_rows() {
        let a = [
            kv("messaging.system", Value::StringValue("kafka".into())),
            kv(
                "messaging.destination.name",
                Value::StringValue("orders".into()),
            ),
            kv(
                "messaging.operation.name",
                Value::StringValue("publish".into()),
            ),
        ];
        let (key, failed) = series_key(Family::Messaging(None), "shop", &a, true);
        assert!(!failed);
        assert_eq!(
            key,
            SeriesKey::Sql {
                service: "shop".into(),
                system: "kafka".into(),
                operation: "publish".into(),
                table: "orders".into()
            }
        );
    }
}
