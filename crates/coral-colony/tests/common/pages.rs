//! Pages as agents send them, for tests that store the same data in
//! several stores: the fault-injection simulator's application
//! (`coral_diagnose::sim`) as one pull page per agent (its RED rows as
//! buckets with per-operation sketches, its kept traces as
//! `TelemetrySpan`s, its host samples as `HostMetrics`), Beyla's
//! histograms, and one agent's fixed pages of a `checkout` service in one
//! minute ([`MINUTE`]): OTLP buckets, kept spans and a host sample
//! ([`pages`]), and Beyla's HTTP, gRPC and SQL rows and a trace
//! ([`beyla_page`]).

use std::collections::BTreeMap;

use coral_colony::store::beyla::{BeylaRows, TraceSampling};
use coral_colony::store::ingest::{Page, Stream};
use coral_colony::store::writer::AgentRecord;
use coral_diagnose::data::{Latency, RedRow, Source, TraceFilter, TraceSelect, TraceSpan};
use coral_diagnose::sim::SimOutput;
use coral_diagnose::{DiagnosisData, Window};
use coral_model::{Bucket, BucketKey, Histogram, SpanKind, Stats};
use coral_proto::common::{HostMetrics, LatencyHistogram, TelemetryBucket, TelemetrySpan};

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

/// The minute of the fixed pages ([`pages`], [`beyla_page`]), long closed.
pub const MINUTE: i64 = 1_765_000_020 / 60 * 60;

/// The colony's default Beyla trace sampling: every trace kept.
pub const SAMPLING: TraceSampling = TraceSampling {
    rate: 1.0,
    slow_us: 500_000,
};

/// An empty page of `agent` in `session` with seq_ids after `start` up to
/// `max`.
pub fn session_page(agent: &str, stream: Stream, session: &str, (start, max): (u64, u64)) -> Page {
    Page {
        session_id: session.into(),
        start_seq: start,
        max_seq: max,
        ..page(agent, stream)
    }
}

/// A `checkout` bucket of `kind` at `minute` (seq_id `seq`) of `durations`
/// (ms), the first `errors` of them errors, all of one operation,
/// `POST /pay`.
pub fn bucket(
    seq: u64,
    minute: i64,
    kind: SpanKind,
    durations: &[f64],
    errors: usize,
) -> TelemetryBucket {
    let mut b = Bucket::new(BucketKey {
        minute,
        service: "checkout".into(),
        kind,
    });
    let mut op = Stats::new();
    for (i, d) in durations.iter().enumerate() {
        let trace = format!("{:032x}", seq * 1000 + i as u64);
        b.stats.record(*d, i < errors, &trace);
        op.record(*d, i < errors, &trace);
    }
    b.operations.push(("POST /pay".into(), op));
    b.to_proto("", seq)
}

/// A kept `checkout` SERVER span in [`MINUTE`], its ids from `seq`.
pub fn span(seq: u64) -> TelemetrySpan {
    TelemetrySpan {
        seq_id: seq,
        trace_id: format!("{seq:032x}"),
        span_id: format!("{seq:016x}"),
        service_name: "checkout".into(),
        span_name: "POST /pay".into(),
        span_kind: "SERVER".into(),
        start_time_unix_nano: MINUTE * 1_000_000_000 + seq as i64,
        duration_us: 1_500,
        http_status_code: if seq.is_multiple_of(2) { 200 } else { 0 },
        grpc_status_code: seq.is_multiple_of(3).then_some(14),
        attributes_json: "{}".into(),
        resource_json: "{}".into(),
        ..Default::default()
    }
}

/// `agent`'s host sample of [`MINUTE`] (host `<agent>.example`).
pub fn host(seq: u64, agent: &str, cpu: f64) -> HostMetrics {
    HostMetrics {
        seq_id: seq,
        bucket_time: MINUTE,
        hostname: format!("{agent}.example"),
        cpu_percent: cpu,
        ..Default::default()
    }
}

/// Agent `agent`'s pull pages in session `<agent>-s1`: two minutes of
/// SERVER buckets (latencies times `scale`), a late part of the first
/// minute, a CLIENT bucket, kept spans and a host sample; seq_ids 1..=9
/// with 5 absent (it expired at the agent: a gap).
pub fn pages(agent: &str, scale: f64) -> Vec<Page> {
    let slow: Vec<f64> = (1..=200).map(|i| i as f64 * scale).collect();
    let fast: Vec<f64> = (1..=50).map(|i| i as f64 * 0.1).collect();
    let session = format!("{agent}-s1");
    let mut first = session_page(agent, Stream::Pull, &session, (0, 4));
    first.buckets = vec![
        bucket(1, MINUTE, SpanKind::Server, &slow, 7),
        bucket(2, MINUTE + 60, SpanKind::Server, &fast, 0),
        bucket(3, MINUTE, SpanKind::Client, &fast[..10], 2),
    ];
    first.spans = vec![span(4)];
    let mut second = session_page(agent, Stream::Pull, &session, (4, 9));
    second.buckets = vec![bucket(6, MINUTE, SpanKind::Server, &slow[..20], 1)];
    second.spans = vec![span(7), span(8)];
    second.hosts = vec![host(9, agent, 42.0)];
    vec![first, second]
}

/// A Beyla latency histogram over the bounds 5, 10, 25, 50 and 100 ms, with
/// a minimum of 1 ms and a maximum of 180 ms.
fn beyla_latency(counts: &[u64], sum_ms: f64) -> LatencyHistogram {
    LatencyHistogram {
        bounds_ms: vec![5.0, 10.0, 25.0, 50.0, 100.0],
        counts: counts.to_vec(),
        count: counts.iter().sum(),
        sum_ms,
        min_ms: Some(1.0),
        max_ms: Some(180.0),
    }
}

/// Agent `agent`'s Beyla page in session `<agent>-beyla`: HTTP (one series
/// in two parts), gRPC and SQL histograms of `checkout` and a trace of two
/// spans, one an error; seq_ids 1..=7.
pub fn beyla_page(agent: &str) -> Page {
    use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, BeylaTraceSpan};
    let http = |seq: u64, status: u32, counts: &[u64]| BeylaHttpMetric {
        minute: MINUTE,
        service_name: "checkout".into(),
        kind: "server".into(),
        http_method: "POST".into(),
        http_route: "/pay".into(),
        http_status_code: status,
        latency: Some(beyla_latency(counts, 400.0 * seq as f64)),
        seq_id: seq,
        ..Default::default()
    };
    let span = |seq: u64, id: &str, parent: &str, start_ms: i64, dur_ms: i64| BeylaTraceSpan {
        trace_id: format!("{:032x}", 0xbe11a),
        span_id: id.into(),
        parent_span_id: parent.into(),
        service_name: "checkout".into(),
        span_name: "POST /pay".into(),
        span_kind: "SPAN_KIND_SERVER".into(),
        start_time_unix_nano: (MINUTE * 1_000 + start_ms) * 1_000_000,
        duration_us: dur_ms * 1_000,
        status_code: if seq == 7 { 500 } else { 200 },
        is_error: seq == 7,
        attributes_json: r#"{"http.request.method":"POST"}"#.into(),
        seq_id: seq,
        ..Default::default()
    };
    let mut p = session_page(agent, Stream::Beyla, &format!("{agent}-beyla"), (0, 7));
    p.beyla = BeylaRows {
        http: vec![
            http(1, 200, &[3, 4, 2, 1, 0, 0]),
            http(2, 200, &[1, 0, 0, 0, 2, 1]),
            http(3, 503, &[0, 0, 0, 0, 1, 1]),
        ],
        grpc: vec![BeylaGrpcMetric {
            minute: MINUTE,
            service_name: "checkout".into(),
            kind: "client".into(),
            rpc_system: "grpc".into(),
            grpc_method: "/bank.Pay/Charge".into(),
            grpc_status_code: 14,
            latency: Some(beyla_latency(&[0, 1, 1, 0, 0, 0], 30.0)),
            seq_id: 4,
            ..Default::default()
        }],
        sql: vec![BeylaSqlMetric {
            minute: MINUTE,
            service_name: "checkout".into(),
            sql_operation: "SELECT".into(),
            table_name: "orders".into(),
            db_system: "postgresql".into(),
            latency: Some(beyla_latency(&[5, 0, 0, 0, 0, 0], 10.0)),
            error_count: 1,
            seq_id: 5,
            ..Default::default()
        }],
        spans: vec![
            span(6, "00000000000000b1", "", 0, 120),
            span(7, "00000000000000b2", "00000000000000b1", 10, 90),
        ],
    };
    p
}
