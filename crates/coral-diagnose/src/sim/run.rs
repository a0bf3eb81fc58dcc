//! The generator: traffic per minute, traces through the application and
//! host samples, handed to a [`SimSink`].
//!
//! Two sinks: [`simulate`] (fast mode) does what the agents and the colony
//! would do — RED rows from 100 % of spans, trace-id-sampled traces plus
//! the slow and failing spans kept one by one — straight into a
//! [`MemoryData`]; [`generate`] with a sink of the caller's sends every
//! span through real agents instead (real mode: the colony's
//! `tests/sim_agents.rs` exports them as OTLP and replays the host samples
//! through the agents' host sampler).

use std::collections::HashMap;

use coral_model::{SpanKind, Stats, sampling::keep_trace};

use crate::data::{AgentInfo, HostMinute, KeepReason, Latency, RedRow, Source, TraceSpan};
use crate::memory::MemoryData;
use crate::sim::app::{AGENTS, App, Call, OpId, Step, Target};
use crate::sim::fault::{Effects, Scenario};
use crate::sim::rng::Rng;

/// How the data is produced.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// End of the data, Unix seconds (minute-aligned).
    pub end: i64,
    /// Minutes of data before the end.
    pub minutes: i64,
    /// The agents' trace-id sample rate.
    pub sample_rate: f64,
    /// Spans at least this slow are kept on their own, ms.
    pub latency_keep_ms: f64,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            end: 1_795_003_200,
            minutes: 80,
            sample_rate: 0.1,
            latency_keep_ms: 500.0,
        }
    }
}

/// The simulated colony data.
#[derive(Debug, Clone)]
pub struct SimOutput {
    /// The data.
    pub data: MemoryData,
    /// Services seen.
    pub services: Vec<String>,
    /// When the fault started, Unix seconds.
    pub fault_start: i64,
    /// End of the data (now), Unix seconds.
    pub end: i64,
}

const CORES: f64 = 4.0;
const MS: f64 = 1e6;

/// One simulated span, as its service would export it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSpan {
    /// Span id (never 0).
    pub id: u64,
    /// Parent span id; 0 for a root.
    pub parent: u64,
    /// Its service.
    pub service: &'static str,
    /// Span name (the operation).
    pub name: &'static str,
    /// Span kind.
    pub kind: SpanKind,
    /// Start, Unix nanoseconds.
    pub start: i64,
    /// End, Unix nanoseconds.
    pub end: i64,
    /// Status message and HTTP status when it failed.
    pub error: Option<(String, u16)>,
    /// `db.system` and `db.statement` of a database call.
    pub db: Option<(&'static str, &'static str)>,
    /// The agent (and host) of its instance.
    pub agent: &'static str,
    /// `service.version`.
    pub version: String,
    /// `k8s.pod.name`.
    pub pod: String,
    /// `http.route`, when HTTP.
    pub route: Option<&'static str>,
}

impl SimSpan {
    /// The HTTP status code it carries (0: none, e.g. a database call).
    pub fn http_status(&self) -> u16 {
        if self.db.is_some() {
            0
        } else if let Some((_, code)) = &self.error {
            *code
        } else if matches!(self.kind, SpanKind::Server | SpanKind::Client) {
            200
        } else {
            0
        }
    }
}

/// Where the generated data goes.
pub trait SimSink {
    /// One whole trace (hex trace id), every span of it.
    fn trace(&mut self, trace_id: &str, spans: &[SimSpan]);
    /// One host sample.
    fn host(&mut self, sample: HostMinute);
}

/// The simulator state.
struct Gen<'a> {
    app: &'a App,
    rng: Rng,
    fx: Effects,
    active: bool,
    slowdown: HashMap<&'static str, f64>,
    spans: Vec<SimSpan>,
}

/// The fast mode's sink: what the agents and the colony would hold.
struct ColonySink<'c> {
    cfg: &'c SimConfig,
    data: MemoryData,
    red: HashMap<(i64, &'static str, &'static str, SpanKind, &'static str), Stats>,
}

/// Runs a scenario (fast mode): the data the colony would hold.
pub fn simulate(app: &App, scenario: &Scenario, cfg: &SimConfig) -> SimOutput {
    let mut sink = ColonySink {
        cfg,
        data: MemoryData::new(),
        red: HashMap::new(),
    };
    for a in AGENTS {
        sink.data.add_agent(AgentInfo {
            agent_id: a.to_owned(),
            hostname: a.to_owned(),
        });
    }
    let fault_start = generate(app, scenario, cfg, &mut sink);
    let mut data = sink.data;
    for ((m, agent, service, kind, op), stats) in sink.red.drain() {
        data.add_red(
            service,
            RedRow {
                minute: m,
                agent_id: agent.to_owned(),
                host: agent.to_owned(),
                span_kind: kind,
                operation: op.to_owned(),
                source: Source::Otlp,
                requests: stats.total,
                errors: stats.errors,
                sum_ms: stats.sum_ms,
                max_ms: stats.max_ms,
                sample_trace_ids: stats.samples.trace_ids(),
                latency: Latency::Sketch(stats.sketch),
            },
        );
    }
    SimOutput {
        data,
        services: app.services.iter().map(|s| s.name.to_owned()).collect(),
        fault_start,
        end: cfg.end,
    }
}

/// Generates a scenario's traces and host samples into `sink`, minute by
/// minute; returns when the fault started (Unix seconds).
pub fn generate(app: &App, scenario: &Scenario, cfg: &SimConfig, sink: &mut dyn SimSink) -> i64 {
    let mut g = Gen {
        app,
        rng: Rng::new(scenario.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ scenario.fault as u64),
        fx: scenario.effects(),
        active: false,
        slowdown: HashMap::new(),
        spans: Vec::new(),
    };
    let start = cfg.end - cfg.minutes * 60;
    let fault_start = cfg.end - scenario.fault_minutes * 60;
    let work = g.work_per_request();
    let base_load: HashMap<&str, f64> = AGENTS
        .iter()
        .map(|a| {
            let w: f64 = app
                .routes
                .iter()
                .enumerate()
                .map(|(r, route)| route.per_minute * work[r].get(a).copied().unwrap_or(0.0))
                .sum();
            (*a, w)
        })
        .collect();
    let busiest = base_load.values().copied().fold(1.0, f64::max);
    let host_scale = 30.0 / busiest;
    let mut minute = start;
    while minute < cfg.end {
        g.active = minute >= fault_start;
        let phase = (minute - start) as f64 / 3600.0 * std::f64::consts::TAU;
        let shape = 1.0 + 0.1 * phase.sin();
        let rates: Vec<f64> = app
            .routes
            .iter()
            .map(|r| {
                let f = if g.active {
                    g.fx.route_factor
                        .get(app.ops[r.op].name)
                        .copied()
                        .unwrap_or(1.0)
                } else {
                    1.0
                };
                r.per_minute * shape * f
            })
            .collect();
        let work_now = if g.active && g.fx.cart_items.is_some() {
            g.work_per_request()
        } else {
            work.clone()
        };
        for a in AGENTS {
            let load: f64 = rates
                .iter()
                .enumerate()
                .map(|(r, rate)| rate * work_now[r].get(a).copied().unwrap_or(0.0))
                .sum();
            let hog = if g.active {
                g.fx.hog.get(a).copied().unwrap_or(0.0)
            } else {
                0.0
            };
            let cpu = (10.0 + load * host_scale + hog + g.rng.normal() * 1.5).clamp(1.0, 100.0);
            let u = cpu / 100.0;
            g.slowdown.insert(a, (0.55 / (1.0 - u.min(0.97))).max(1.0));
            let total = 16u64 << 30;
            sink.host(HostMinute {
                minute,
                agent_id: a.to_owned(),
                hostname: a.to_owned(),
                cpu_percent: Some((cpu * 10.0).round() / 10.0),
                memory_used_bytes: Some((total as f64 * (0.48 + 0.02 * g.rng.normal())) as u64),
                memory_total_bytes: Some(total),
                net_rx_bytes_per_sec: Some(load * 900.0),
                net_tx_bytes_per_sec: Some(load * 700.0),
                load1: Some((u * CORES * 100.0).round() / 100.0),
            });
        }
        for (r, rate) in rates.iter().enumerate() {
            let n = g.rng.poisson(*rate);
            for _ in 0..n {
                let at = minute * 1_000_000_000 + (g.rng.f64() * 60e9) as i64;
                g.request(app.routes[r].op, at, sink);
            }
        }
        minute += 60;
    }
    fault_start
}

impl SimSink for ColonySink<'_> {
    fn host(&mut self, sample: HostMinute) {
        self.data.add_host(sample);
    }

    fn trace(&mut self, trace_id: &str, spans: &[SimSpan]) {
        let cfg = self.cfg;
        let sampled = keep_trace(trace_id, cfg.sample_rate);
        for s in spans {
            let dur_ms = (s.end - s.start) as f64 / MS;
            let keep = if sampled {
                Some(KeepReason::Sampled)
            } else if s.error.is_some() {
                Some(KeepReason::Error)
            } else if dur_ms >= cfg.latency_keep_ms {
                Some(KeepReason::Latency)
            } else {
                None
            };
            let minute = (s.start / 1_000_000_000).div_euclid(60) * 60;
            self.red
                .entry((minute, s.agent, s.service, s.kind, s.name))
                .or_default()
                .record_as(dur_ms, s.error.is_some(), keep.map(|_| trace_id));
            let Some(reason) = keep else { continue };
            let mut attributes = std::collections::BTreeMap::new();
            if let Some(r) = s.route {
                attributes.insert("http.route".to_owned(), r.to_owned());
            }
            let message = s.error.as_ref().map(|e| e.0.clone()).unwrap_or_default();
            self.data.add_span(
                trace_id,
                TraceSpan {
                    span_id: format!("{:016x}", s.id),
                    parent_span_id: if s.parent == 0 {
                        String::new()
                    } else {
                        format!("{:016x}", s.parent)
                    },
                    service: s.service.to_owned(),
                    operation: s.name.to_owned(),
                    kind: s.kind,
                    start_ns: s.start,
                    duration_us: (s.end - s.start) / 1000,
                    is_error: s.error.is_some(),
                    status_message: message,
                    http_status_code: s.http_status(),
                    grpc_status_code: None,
                    db_system: s.db.map(|d| d.0.to_owned()),
                    db_statement: s.db.map(|d| d.1.to_owned()),
                    keep_reason: reason,
                    agent_id: s.agent.to_owned(),
                    host: s.agent.to_owned(),
                    service_version: s.version.clone(),
                    pod: s.pod.clone(),
                    attributes,
                },
            );
        }
    }
}

impl Gen<'_> {
    /// Expected CPU work (ms of self time) per request of each route, per
    /// agent.
    fn work_per_request(&self) -> Vec<HashMap<&'static str, f64>> {
        self.app
            .routes
            .iter()
            .map(|r| {
                let mut w = HashMap::new();
                self.expand(r.op, 1.0, &mut w, 0);
                w
            })
            .collect()
    }

    fn expand(&self, op: OpId, times: f64, w: &mut HashMap<&'static str, f64>, depth: usize) {
        if depth > 16 {
            return;
        }
        let o = &self.app.ops[op];
        let inst = &self.app.services[o.service].instances;
        for i in inst {
            *w.entry(i.agent).or_default() += times * o.self_ms / inst.len() as f64;
        }
        for s in &o.steps {
            let calls: Vec<&Call> = match s {
                Step::Seq(c) => vec![c],
                Step::Par(cs) => cs.iter().collect(),
                Step::Publish(_, consumer) => {
                    self.expand(*consumer, times, w, depth + 1);
                    Vec::new()
                }
            };
            for c in calls {
                if let Target::Op(t) = c.target {
                    self.expand(t, times * self.count(op, c) as f64, w, depth + 1);
                }
            }
        }
    }

    /// How many times `op` makes `call` (N+1 in cart once active).
    fn count(&self, op: OpId, call: &Call) -> u32 {
        let o = &self.app.ops[op];
        if self.active
            && o.name == "GET /cart/:id"
            && matches!(call.target, Target::Op(_))
            && let Some(items) = self.fx.cart_items
        {
            return items;
        }
        call.count
    }

    fn id(&mut self) -> u64 {
        self.rng.next_u64() | 1
    }

    fn request(&mut self, op: OpId, at: i64, sink: &mut dyn SimSink) {
        self.spans.clear();
        let trace_id = self.rng.trace_id();
        self.server(op, 0, at, 0);
        sink.trace(&trace_id, &self.spans);
    }

    /// Runs a SERVER/CONSUMER span of `op` from `start` (ns); returns its
    /// end and failure.
    fn server(
        &mut self,
        op: OpId,
        parent: u64,
        start: i64,
        depth: usize,
    ) -> (i64, Option<(String, u16)>) {
        let app = self.app;
        let o = &app.ops[op];
        let service = &app.services[o.service];
        let inst = &service.instances[self.rng.below(service.instances.len())];
        let agent = inst.agent;
        let version = if self.active {
            self.fx
                .versions
                .get(&(service.name, agent))
                .cloned()
                .unwrap_or_else(|| inst.version.clone())
        } else {
            inst.version.clone()
        };
        let key = (service.name, o.name);
        let slow = self.slowdown.get(agent).copied().unwrap_or(1.0);
        let mut self_ms = self.rng.lognormal(o.self_ms, 0.3) * slow;
        if self.rng.chance(0.01) {
            self_ms *= 3.0;
        }
        if self.active {
            self_ms *= self.fx.self_factor.get(&key).copied().unwrap_or(1.0);
            let extra = self.fx.extra_self.get(&key).copied().unwrap_or(0.0)
                + self
                    .fx
                    .instance_extra
                    .get(&(service.name, agent))
                    .copied()
                    .unwrap_or(0.0);
            if extra > 0.0 {
                self_ms += extra * self.rng.lognormal(1.0, 0.15);
            }
        }
        let id = self.id();
        let at = self.spans.len();
        self.spans.push(SimSpan {
            id,
            parent,
            service: service.name,
            name: o.name,
            kind: o.kind,
            start,
            end: start,
            error: None,
            db: None,
            agent,
            version: version.clone(),
            pod: inst.pod.clone(),
            route: o.route,
        });
        let mut t = start + (self_ms * 0.4 * MS) as i64;
        let mut failure: Option<(String, u16)> = None;
        'steps: for step in &o.steps {
            match step {
                Step::Seq(call) => {
                    for _ in 0..self.count(op, call) {
                        let (end, f) =
                            self.call(call, service.name, agent, &version, &inst.pod, id, t, depth);
                        t = end;
                        if let Some(f) = f
                            && call.required
                        {
                            failure = Some(f);
                            break 'steps;
                        }
                    }
                }
                Step::Par(calls) => {
                    let mut end = t;
                    for call in calls {
                        let jitter = (self.rng.f64() * 0.2 * MS) as i64;
                        let (e, f) = self.call(
                            call,
                            service.name,
                            agent,
                            &version,
                            &inst.pod,
                            id,
                            t + jitter,
                            depth,
                        );
                        end = end.max(e);
                        if let Some(f) = f
                            && call.required
                            && failure.is_none()
                        {
                            failure = Some(f);
                        }
                    }
                    t = end;
                    if failure.is_some() {
                        break 'steps;
                    }
                }
                Step::Publish(topic, consumer) => {
                    let pid = self.id();
                    let end = t + (self.rng.lognormal(0.6, 0.3) * MS) as i64;
                    self.spans.push(SimSpan {
                        id: pid,
                        parent: id,
                        service: service.name,
                        name: topic,
                        kind: SpanKind::Producer,
                        start: t,
                        end,
                        error: None,
                        db: None,
                        agent,
                        version: version.clone(),
                        pod: inst.pod.clone(),
                        route: None,
                    });
                    t = end;
                    if depth < 12 {
                        let delay = (self.rng.lognormal(15.0, 0.5) * MS) as i64;
                        self.server(*consumer, pid, end + delay, depth + 1);
                    }
                }
            }
        }
        if failure.is_none() {
            let mut rate = o.error_rate;
            let mut what = (o.error.0.to_owned(), o.error.1);
            if self.active {
                if let Some((r, m, c)) = self.fx.errors.get(&key) {
                    rate += r;
                    if self.rng.chance(r / rate) {
                        what = ((*m).to_owned(), *c);
                    }
                }
                if let Some((r, m, c)) =
                    self.fx.version_errors.get(&(service.name, version.clone()))
                {
                    rate += r;
                    if self.rng.chance(r / rate) {
                        what = ((*m).to_owned(), *c);
                    }
                }
            }
            if self.rng.chance(rate) {
                failure = Some(what);
            }
        }
        let end = t + (self_ms * 0.6 * MS) as i64;
        self.spans[at].end = end;
        self.spans[at].error = failure.clone();
        (end, failure)
    }

    /// Runs one call from an instance of `service` on `agent`.
    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        call: &Call,
        service: &'static str,
        agent: &'static str,
        version: &str,
        pod: &str,
        parent: u64,
        t: i64,
        depth: usize,
    ) -> (i64, Option<(String, u16)>) {
        let id = self.id();
        match &call.target {
            Target::Db(db) => {
                let mut ms = self.rng.lognormal(db.median_ms, 0.35);
                if self.active
                    && let Some(extra) = self.fx.db_extra.get(db.name)
                {
                    ms += extra * self.rng.lognormal(1.0, 0.15);
                }
                let error = self
                    .rng
                    .chance(0.0005)
                    .then(|| ("deadlock detected".to_owned(), 0));
                let end = t + (ms * MS) as i64;
                self.spans.push(SimSpan {
                    id,
                    parent,
                    service,
                    name: db.name,
                    kind: SpanKind::Client,
                    start: t,
                    end,
                    error: error.clone(),
                    db: Some((db.system, db.statement)),
                    agent,
                    version: version.to_owned(),
                    pod: pod.to_owned(),
                    route: None,
                });
                (end, error)
            }
            Target::Op(target) => {
                let at = self.spans.len();
                self.spans.push(SimSpan {
                    id,
                    parent,
                    service,
                    name: self.app.ops[*target].name,
                    kind: SpanKind::Client,
                    start: t,
                    end: t,
                    error: None,
                    db: None,
                    agent,
                    version: version.to_owned(),
                    pod: pod.to_owned(),
                    route: self.app.ops[*target].route,
                });
                let net = self.rng.lognormal(0.4, 0.3) * MS;
                let (end, failure) = self.server(*target, id, t + net as i64, depth + 1);
                let end = end + (self.rng.lognormal(0.4, 0.3) * MS) as i64;
                self.spans[at].end = end;
                self.spans[at].error = failure.clone();
                (end, failure)
            }
        }
    }
}
