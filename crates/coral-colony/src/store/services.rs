//! `ListServices`: every service seen in a window, with requests, errors and
//! p95 from Beyla (server-side HTTP and gRPC histograms merged) and from OTLP
//! (SERVER and CONSUMER summaries, sketches merged; all kinds when a service
//! has neither), so a user knows what to ask about. Blocking.

use std::collections::{BTreeMap, BTreeSet};

use coral_model::{DurationSketch, Histogram, Quantile};
use coral_proto::colony::{ListServicesRequest, ServiceSummary};
use duckdb::Connection;
use duckdb::types::Value;

use super::{StoreError, ts_micros};

fn window(req: &ListServicesRequest, col: &str) -> (String, Vec<Value>) {
    let mut sql = String::from("true");
    let mut args = Vec::new();
    if req.start_time_unix_ms > 0 {
        sql.push_str(&format!(" AND {col} >= ?"));
        args.push(ts_micros(req.start_time_unix_ms * 1_000));
    }
    if req.end_time_unix_ms > 0 {
        sql.push_str(&format!(" AND {col} < ?"));
        args.push(ts_micros(req.end_time_unix_ms * 1_000));
    }
    (sql, args)
}

#[derive(Default)]
pub(crate) struct BeylaAcc {
    requests: u64,
    errors: u64,
    latency: Histogram,
    agents: BTreeSet<String>,
}

#[derive(Default)]
pub(crate) struct OtlpAcc {
    requests: u64,
    errors: u64,
    sketch: Option<DurationSketch>,
    agents: BTreeSet<String>,
    entry: bool,
}

/// Answers `ListServices`.
pub fn services(
    conn: &Connection,
    req: &ListServicesRequest,
) -> Result<Vec<ServiceSummary>, StoreError> {
    let mut beyla: BTreeMap<String, BeylaAcc> = BTreeMap::new();
    let (where_, args) = window(req, "minute");
    for (table, error_if) in [
        ("beyla_http_metrics", "http_status_code >= 500"),
        ("beyla_grpc_metrics", "grpc_status_code <> 0"),
    ] {
        let mut stmt = conn.prepare(&format!(
            "SELECT service_name, agent_id, latency, {error_if} FROM {table} \
             WHERE kind = 'server' AND {where_}"
        ))?;
        let mut rows = stmt.query(duckdb::params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            let blob: Vec<u8> = r.get(2)?;
            let Ok(h) = Histogram::decode(&blob) else {
                continue;
            };
            add_beyla(&mut beyla, r.get(0)?, r.get(1)?, &h, r.get(3)?);
        }
    }

    let mut otlp = Otlp::default();
    let (where_, args) = window(req, "bucket_time");
    let mut stmt = conn.prepare(&format!(
        "SELECT service_name, agent_id, span_kind, total_spans, error_count, sketch \
         FROM otel_spans WHERE {where_}"
    ))?;
    let mut rows = stmt.query(duckdb::params_from_iter(args.iter()))?;
    while let Some(r) = rows.next()? {
        let blob: Vec<u8> = r.get(5)?;
        otlp.add(
            r.get(0)?,
            &r.get::<_, String>(1)?,
            &r.get::<_, String>(2)?,
            (r.get(3)?, r.get(4)?),
            DurationSketch::decode(&blob).ok().as_ref(),
        );
    }
    Ok(summaries(&beyla, &otlp))
}

/// Adds a server-side Beyla histogram of `service` from `agent` (failed
/// requests when `failed`).
pub(crate) fn add_beyla(
    beyla: &mut BTreeMap<String, BeylaAcc>,
    service: String,
    agent: String,
    h: &Histogram,
    failed: bool,
) {
    let acc = beyla.entry(service).or_default();
    acc.agents.insert(agent);
    acc.requests += h.count;
    if failed {
        acc.errors += h.count;
    }
    acc.latency.merge(h);
}

/// OTLP summaries per service: SERVER and CONSUMER buckets, and every kind
/// for services that have neither.
#[derive(Default)]
pub(crate) struct Otlp(BTreeMap<String, (OtlpAcc, OtlpAcc)>);

impl Otlp {
    /// Adds one bucket (or parts merged) of `service` from `agent`.
    pub(crate) fn add(
        &mut self,
        service: String,
        agent: &str,
        kind: &str,
        (total, errors): (i64, i64),
        sketch: Option<&DurationSketch>,
    ) {
        let (entry, all) = self.0.entry(service).or_default();
        let entry_kind = kind == "SERVER" || kind == "CONSUMER";
        for acc in [Some(&mut *all), entry_kind.then_some(&mut *entry)]
            .into_iter()
            .flatten()
        {
            acc.entry = true;
            acc.agents.insert(agent.to_owned());
            acc.requests += total.max(0) as u64;
            acc.errors += errors.max(0) as u64;
            if let Some(s) = sketch {
                match &mut acc.sketch {
                    Some(merged) => {
                        let _ = merged.merge(s);
                    }
                    None => acc.sketch = Some(s.clone()),
                }
            }
        }
    }
}

/// The answer: per service, a Beyla row and an OTLP row where there is data.
pub(crate) fn summaries(beyla: &BTreeMap<String, BeylaAcc>, otlp: &Otlp) -> Vec<ServiceSummary> {
    let rate = |e: u64, n: u64| if n > 0 { e as f64 / n as f64 } else { 0.0 };
    let mut out = Vec::new();
    let names: BTreeSet<&String> = beyla.keys().chain(otlp.0.keys()).collect();
    for name in names {
        if let Some(b) = beyla.get(name) {
            let p95 = b.latency.quantile(0.95);
            out.push(ServiceSummary {
                service_name: name.clone(),
                source: "beyla".into(),
                requests: b.requests,
                errors: b.errors,
                error_rate: rate(b.errors, b.requests),
                p95_ms: p95.map(Quantile::ms),
                p95_above_last_bound: matches!(p95, Some(Quantile::Above(_))),
                agents: b.agents.iter().cloned().collect(),
            });
        }
        if let Some((entry, all)) = otlp.0.get(name) {
            let o = if entry.entry { entry } else { all };
            out.push(ServiceSummary {
                service_name: name.clone(),
                source: "otlp".into(),
                requests: o.requests,
                errors: o.errors,
                error_rate: rate(o.errors, o.requests),
                p95_ms: o.sketch.as_ref().and_then(|s| s.quantile(0.95)),
                p95_above_last_bound: false,
                agents: o.agents.iter().cloned().collect(),
            });
        }
    }
    out
}
