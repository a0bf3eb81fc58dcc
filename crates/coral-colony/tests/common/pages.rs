//! Pages as agents send them, for tests that store the same data in
//! several stores: the fault-injection simulator's application
//! (`coral_diagnose::sim`) as one pull page per agent (its RED rows as
//! buckets with per-operation sketches, its kept traces as
//! `TelemetrySpan`s, its host samples as `HostMetrics`), and Beyla's
//! histograms.

use std::collections::BTreeMap;

use coral_colony::store::beyla::BeylaRows;
use coral_colony::store::ingest::{Page, Stream};
use coral_colony::store::writer::AgentRecord;
use coral_diagnose::data::{Latency, RedRow, Source, TraceFilter, TraceSelect, TraceSpan};
use coral_diagnose::sim::SimOutput;
use coral_diagnose::{DiagnosisData, Window};
use coral_model::{Bucket, BucketKey, Histogram, Stats};
use coral_proto::common::{LatencyHistogram, TelemetryBucket, TelemetrySpan};

/// An empty page of `agent` in session `<agent>-session`.
pub fn page(agent: &str, stream: Stream) -> Page {
    Page {
        agent_id: agent.into(),
        stream,
        session_id: format!("{agent}-session"),
        start_seq: 0,
        max_seq: 0,
        buckets: Vec::new(),
        spans: Vec::new(),
        hosts: Vec::new(),
        beyla: BeylaRows::default(),
        reported: Vec::new(),
    }
}

/// A registered agent's record.
pub fn agent(agent_id: &str, hostname: &str) -> AgentRecord {
    AgentRecord {
        agent_id: agent_id.into(),
        hostname: hostname.into(),
        source: "registered".into(),
        ..Default::default()
    }
}

/// All of the simulator's data: a day before its end to a minute after.
pub fn everything(sim: &SimOutput) -> Window {
    Window::new(sim.end - 86_400, sim.end + 60)
}

/// A RED row as the agent's operation statistics.
pub fn stats(row: &RedRow) -> Stats {
    let Latency::Sketch(sketch) = &row.latency else {
        panic!("the simulator writes OTLP rows")
    };
    let mut s = Stats::with_sketch(sketch.clone());
    s.total = row.requests;
    s.errors = row.errors;
    s.sum_ms = row.sum_ms;
    s.max_ms = row.max_ms;
    s.min_ms = sketch.quantile(0.0).unwrap_or(0.0).min(row.max_ms);
    for id in &row.sample_trace_ids {
        s.samples.offer(id, row.max_ms, false);
    }
    s
}

/// A simulated span as the agent pages it.
pub fn span_proto(span: &TraceSpan, trace_id: &str) -> TelemetrySpan {
    let mut attributes = serde_json::Map::new();
    for (k, v) in &span.attributes {
        attributes.insert(k.clone(), v.clone().into());
    }
    if let Some(s) = &span.db_statement {
        attributes.insert("db.statement".into(), s.clone().into());
    }
    let mut resource = serde_json::Map::new();
    resource.insert("service.name".into(), span.service.clone().into());
    resource.insert("host.name".into(), span.host.clone().into());
    if !span.service_version.is_empty() {
        resource.insert(
            "service.version".into(),
            span.service_version.clone().into(),
        );
    }
    if !span.pod.is_empty() {
        resource.insert("k8s.pod.name".into(), span.pod.clone().into());
    }
    TelemetrySpan {
        trace_id: trace_id.into(),
        span_id: span.span_id.clone(),
        parent_span_id: span.parent_span_id.clone(),
        service_name: span.service.clone(),
        span_name: span.operation.clone(),
        span_kind: span.kind.as_str().into(),
        start_time_unix_nano: span.start_ns,
        duration_us: span.duration_us,
        is_error: span.is_error,
        status_code: if span.is_error { "ERROR" } else { "UNSET" }.into(),
        status_message: span.status_message.clone(),
        http_status_code: i32::from(span.http_status_code),
        http_route: span
            .attributes
            .get("http.route")
            .cloned()
            .unwrap_or_default(),
        keep_reason: span.keep_reason.as_str().into(),
        attributes_json: serde_json::Value::Object(attributes).to_string(),
        resource_json: serde_json::Value::Object(resource).to_string(),
        grpc_status_code: span.grpc_status_code,
        db_system: span.db_system.clone().unwrap_or_default(),
        ..Default::default()
    }
}

/// The simulator's agents and one pull page per agent holding all its
/// buckets, kept spans and host samples (seq_ids 1.., no holes).
pub fn sim_pages(sim: &SimOutput) -> (Vec<AgentRecord>, Vec<Page>) {
    let data = &sim.data;
    let all = everything(sim);
    let coverage = data.coverage(all).unwrap();
    let mut pages: BTreeMap<String, Page> = BTreeMap::new();
    let mut agents = Vec::new();
    for a in &coverage.agents {
        agents.push(agent(&a.agent_id, &a.hostname));
        pages.insert(a.agent_id.clone(), page(&a.agent_id, Stream::Pull));
    }
    let services = data.services(all).unwrap();
    let mut buckets: BTreeMap<(String, BucketKey), Bucket> = BTreeMap::new();
    let mut traces: BTreeMap<String, Vec<TraceSpan>> = BTreeMap::new();
    for service in &services {
        for row in data.red(service, all).unwrap() {
            assert_eq!(row.source, Source::Otlp);
            let key = BucketKey {
                minute: row.minute,
                service: service.clone(),
                kind: row.span_kind,
            };
            let s = stats(&row);
            let b = buckets
                .entry((row.agent_id.clone(), key.clone()))
                .or_insert_with(|| Bucket::new(key));
            b.stats.merge(&s).unwrap();
            b.operations.push((row.operation.clone(), s));
        }
        let batch = data
            .traces(&TraceFilter {
                window: all,
                service: service.clone(),
                operation: None,
                select: TraceSelect::Any,
                limit: usize::MAX,
            })
            .unwrap();
        for t in batch.traces {
            traces.insert(t.trace_id, t.spans);
        }
    }
    let ids: Vec<String> = pages.keys().cloned().collect();
    let hosts = data.hosts(&ids, all).unwrap();
    let mut seq: BTreeMap<String, u64> = BTreeMap::new();
    let mut next = |agent: &str| {
        let n = seq.entry(agent.to_owned()).or_default();
        *n += 1;
        *n
    };
    for ((agent, _), bucket) in &buckets {
        let proto: TelemetryBucket = bucket.to_proto(agent, next(agent));
        pages.get_mut(agent).unwrap().buckets.push(proto);
    }
    for (trace_id, spans) in &traces {
        for s in spans {
            let mut proto = span_proto(s, trace_id);
            proto.seq_id = next(&s.agent_id);
            pages.get_mut(&s.agent_id).unwrap().spans.push(proto);
        }
    }
    for h in &hosts {
        let mut sample = super::host_sample(h);
        sample.seq_id = next(&h.agent_id);
        pages.get_mut(&h.agent_id).unwrap().hosts.push(sample);
    }
    let pages = pages
        .into_iter()
        .map(|(agent, mut p)| {
            p.max_seq = seq.get(&agent).copied().unwrap_or_default();
            p
        })
        .collect();
    (agents, pages)
}

/// Beyla's latency histogram of `ms` over the bounds 10, 50, 100 and 500 ms
/// (no min or max reported).
pub fn histogram(ms: &[f64]) -> LatencyHistogram {
    let bounds = vec![10.0, 50.0, 100.0, 500.0];
    let mut counts = vec![0u64; bounds.len() + 1];
    for v in ms {
        counts[bounds.partition_point(|b| b < v)] += 1;
    }
    Histogram::new(bounds, counts, ms.iter().sum(), None, None)
        .unwrap()
        .to_proto()
}
