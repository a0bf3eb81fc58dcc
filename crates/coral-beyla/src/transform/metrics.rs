//! [`Transformer`]: Beyla's OTLP metrics → per-minute, per-series rows.
//!
//! For every `ResourceMetrics`, the service is the resource's `service.name`
//! (else the data point's). Metrics that are not RED durations (body sizes,
//! `target.info`, `traces.*.info`, process metrics, …) are ignored and
//! counted as such, so Beyla's empty "system" resource never becomes a
//! service. Each histogram point is converted to milliseconds, turned into a
//! delta (cumulative temporality, see `delta`; delta points are used as they
//! are), keyed (see `catalog`), its HTTP route capped per service, and merged
//! into the minute of its `time_unix_nano`.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use coral_model::{Histogram, OVERFLOW_OPERATION, minute_of};
use coral_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use coral_proto::otlp::common::v1::{KeyValue, any_value::Value};
use coral_proto::otlp::metrics::v1::{AggregationTemporality, Metric, metric::Data};

use super::attrs::{find, hash_attrs, identity, str_of};
use super::catalog::{Family, Side, classify, ms_per_unit, series_key};
use super::delta::{DeltaTracker, Step};
use super::histo::{from_explicit, from_exponential};
use super::window::{BeylaRows, MinuteWindow, SeriesKey};
use super::{SkipReason, TransformOptions};

/// What one export gave.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsOutcome {
    /// The rows of this export, one per (minute, series). Feed them to a
    /// [`MinuteWindow`] to merge exports.
    pub rows: BeylaRows,
    /// RED data points used (including baselines and zero deltas).
    pub points_used: u64,
    /// Of those, first cumulative sightings recorded as a baseline only.
    pub points_baselined: u64,
    /// Of those, cumulative series that restarted (counter reset).
    pub resets: u64,
    /// RED data points that could not be used.
    pub points_skipped: u64,
    /// Why the first skipped point was skipped.
    pub skip_reason: Option<SkipReason>,
    /// Data points of metrics that are not RED durations.
    pub points_ignored: u64,
}

impl MetricsOutcome {
    fn skip(&mut self, n: u64, reason: SkipReason) {
        self.points_skipped += n;
        if self.skip_reason.is_none() && n > 0 {
            self.skip_reason = Some(reason);
        }
    }
}

/// Turns one agent's Beyla metrics into rows (state: cumulative series and
/// the routes of each service).
pub struct Transformer {
    opts: TransformOptions,
    deltas: DeltaTracker,
    /// service → route → last seen (Unix ns).
    routes: HashMap<String, HashMap<String, u64>>,
    last_route_sweep: u64,
}

struct Ctx<'a> {
    resource: &'a [KeyValue],
    resource_hash: u64,
    service: Option<&'a str>,
}

impl Transformer {
    /// A transformer with no state.
    pub fn new(opts: TransformOptions) -> Transformer {
        let deltas = DeltaTracker::new(
            opts.max_series,
            opts.series_ttl_secs,
            opts.fresh_series_secs,
        );
        Transformer {
            opts,
            deltas,
            routes: HashMap::new(),
            last_route_sweep: 0,
        }
    }

    /// The options in use.
    pub fn options(&self) -> &TransformOptions {
        &self.opts
    }

    /// Cumulative series currently tracked.
    pub fn tracked_series(&self) -> usize {
        self.deltas.len()
    }

    /// Turns one export into rows.
    pub fn metrics(&mut self, req: &ExportMetricsServiceRequest) -> MetricsOutcome {
        let mut out = MetricsOutcome::default();
        let mut window = MinuteWindow::with_max_pending(usize::MAX);
        let mut resources = Vec::new();
        for rm in &req.resource_metrics {
            let resource = rm
                .resource
                .as_ref()
                .map_or(&[][..], |r| r.attributes.as_slice());
            let ctx = Ctx {
                resource,
                resource_hash: hash_attrs(resource),
                service: match find(resource, "service.name") {
                    Some(Value::StringValue(s)) if !s.is_empty() => Some(s.as_str()),
                    _ => None,
                },
            };
            let mut used = false;
            for sm in &rm.scope_metrics {
                for m in &sm.metrics {
                    used |= self.metric(&ctx, m, &mut window, &mut out);
                }
            }
            if used {
                resources.push(ctx.resource_hash);
            }
        }
        self.deltas.end_export(resources);
        self.sweep_routes();
        out.rows = window.flush(0, 0, true);
        out
    }

    /// One metric; true when it was a RED duration.
    fn metric(
        &mut self,
        ctx: &Ctx<'_>,
        m: &Metric,
        window: &mut MinuteWindow,
        out: &mut MetricsOutcome,
    ) -> bool {
        let Some(family) = classify(&m.name) else {
            out.points_ignored += point_count(m);
            return false;
        };
        let Some(scale) = ms_per_unit(&m.unit) else {
            let reason = SkipReason::Unit {
                metric: m.name.clone(),
                unit: m.unit.clone(),
            };
            out.skip(point_count(m).max(1), reason);
            return true;
        };
        let series_hash = |attrs: &[KeyValue]| {
            let mut h = DefaultHasher::new();
            (ctx.resource_hash, &m.name, hash_attrs(attrs)).hash(&mut h);
            h.finish()
        };
        match &m.data {
            Some(Data::Histogram(h)) => {
                let cumulative = h.aggregation_temporality != AggregationTemporality::Delta as i32;
                for p in &h.data_points {
                    let hist = from_explicit(p, scale);
                    let times = (p.start_time_unix_nano, p.time_unix_nano);
                    let key = cumulative.then(|| series_hash(&p.attributes));
                    self.point(ctx, family, &p.attributes, hist, times, key, window, out);
                }
            }
            Some(Data::ExponentialHistogram(h)) => {
                let cumulative = h.aggregation_temporality != AggregationTemporality::Delta as i32;
                for p in &h.data_points {
                    let hist = from_exponential(p, scale);
                    let times = (p.start_time_unix_nano, p.time_unix_nano);
                    let key = cumulative.then(|| series_hash(&p.attributes));
                    self.point(ctx, family, &p.attributes, hist, times, key, window, out);
                }
            }
            Some(_) => out.skip(
                point_count(m).max(1),
                SkipReason::NotHistogram(m.name.clone()),
            ),
            None => out.skip(1, SkipReason::NoData(m.name.clone())),
        }
        true
    }

    /// One histogram point; `series` is the cumulative series hash (`None`
    /// for a delta point).
    #[allow(clippy::too_many_arguments)]
    fn point(
        &mut self,
        ctx: &Ctx<'_>,
        family: Family,
        attrs: &[KeyValue],
        hist: Result<Histogram, SkipReason>,
        (start, time): (u64, u64),
        series: Option<u64>,
        window: &mut MinuteWindow,
        out: &mut MetricsOutcome,
    ) {
        let point_service;
        let service = match ctx.service {
            Some(s) => s,
            None => match str_of(attrs, &["service.name"]).filter(|s| !s.is_empty()) {
                Some(s) => {
                    point_service = s;
                    point_service.as_str()
                }
                None => return out.skip(1, SkipReason::NoService),
            },
        };
        let hist = match hist {
            Ok(h) => h,
            Err(reason) => return out.skip(1, reason),
        };
        let delta = match series {
            None => {
                self.deltas.observe(time);
                hist
            }
            Some(key) => match self
                .deltas
                .cumulative(key, ctx.resource_hash, start, time, hist)
            {
                Step::Emit { delta, reset } => {
                    out.resets += u64::from(reset);
                    delta
                }
                Step::Baseline => {
                    out.points_used += 1;
                    out.points_baselined += 1;
                    return;
                }
                Step::Skip(reason) => return out.skip(1, reason),
            },
        };
        out.points_used += 1;
        if delta.count == 0 {
            return;
        }
        let (mut key, failed) = series_key(family, service, attrs, self.opts.obfuscate_queries);
        key.cut_names(coral_model::json::MAX_NAME_BYTES);
        if let SeriesKey::Http { service, route, .. } = &mut key {
            self.cap_route(service, route, time);
        }
        let mut identity = identity(attrs, ctx.resource);
        if family == Family::Db(Side::Server) {
            identity.insert("span.kind".into(), "server".into());
        }
        let errors = if failed { delta.count } else { 0 };
        window.add_series(minute_of(time), key, delta, identity, errors);
    }

    /// Keeps `route` if it is known for `service` or there is room, else
    /// replaces it with the overflow route.
    fn cap_route(&mut self, service: &str, route: &mut String, time: u64) {
        let routes = match self.routes.get_mut(service) {
            Some(r) => r,
            None => self.routes.entry(service.to_string()).or_default(),
        };
        if let Some(seen) = routes.get_mut(route.as_str()) {
            *seen = (*seen).max(time);
        } else if routes.len() < self.opts.max_routes_per_service {
            routes.insert(route.clone(), time);
        } else {
            *route = OVERFLOW_OPERATION.to_string();
        }
    }

    /// Forgets routes (and services) not seen for the series TTL, about
    /// once a minute.
    fn sweep_routes(&mut self) {
        let now = self.deltas.clock();
        if now.saturating_sub(self.last_route_sweep) < 60_000_000_000 {
            return;
        }
        self.last_route_sweep = now;
        let horizon = now.saturating_sub(self.opts.series_ttl_secs.saturating_mul(1_000_000_000));
        for routes in self.routes.values_mut() {
            routes.retain(|_, seen| *seen >= horizon);
        }
        self.routes.retain(|_, routes| !routes.is_empty());
    }
}

fn point_count(m: &Metric) -> u64 {
    (match &m.data {
        Some(Data::Gauge(g)) => g.data_points.len(),
        Some(Data::Sum(s)) => s.data_points.len(),
        Some(Data::Histogram(h)) => h.data_points.len(),
        Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
        Some(Data::Summary(s)) => s.data_points.len(),
        None => 0,
    }) as u64
}
