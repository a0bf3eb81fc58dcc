//! The ingest pipeline shared by the OTLP gRPC and HTTP receivers:
//! validate → aggregate (100% of spans) → filter → hand kept spans to storage.
//!
//! Admission is decided **before** any side effect: the number of spans the
//! filters will keep is computed first and that many permits are taken from a
//! bounded semaphore (`agent.telemetry.queue_spans`). If none are free the
//! request is refused as throttled and nothing was counted, so the client's
//! retry cannot double count. Permits travel with the spans to the writer and
//! are released when the batch is committed, which bounds memory end to end.

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use coral_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use coral_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::metrics::v1::metric::Data;
use regex::RegexSet;
use tokio::sync::Semaphore;

use crate::aggregate::Aggregator;
use crate::filter::StaticFilter;
use crate::metrics::Counters;
use crate::normalize::{self, SpanFacts};
use crate::store::writer::{WriteOp, WriterSender};

/// Seconds a throttled client is asked to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why a request was not accepted as a whole.
#[derive(Debug, PartialEq, Eq)]
pub enum IngestError {
    /// The pipeline is saturated; retry after the given seconds.
    Throttled {
        /// Suggested wait.
        retry_after_secs: u64,
    },
    /// The agent is shutting down.
    ShuttingDown,
}

/// The result of an accepted export: spans or points refused individually.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PartialOutcome {
    /// Items refused.
    pub rejected: u64,
    /// Why, for `partial_success.error_message` (empty when nothing was refused).
    pub message: String,
}

/// What an OTLP receiver hands decoded requests to: the main [`Pipeline`],
/// or the Beyla sink behind the private receiver
/// ([`crate::beyla::BeylaSink`]).
pub trait OtlpSink: Send + Sync + 'static {
    /// A trace export.
    fn export_traces(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> Result<PartialOutcome, IngestError>;
    /// A metrics export.
    fn export_metrics(
        &self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<PartialOutcome, IngestError>;
    /// A logs export: Coral does not store logs; its records are counted.
    fn export_logs(&self, request: &ExportLogsServiceRequest) -> PartialOutcome {
        let records: usize = request
            .resource_logs
            .iter()
            .flat_map(|rl| &rl.scope_logs)
            .map(|sl| sl.log_records.len())
            .sum();
        Counters::add(&self.counters().log_records_received, records as u64);
        PartialOutcome::default()
    }
    /// The agent's counters (refusals are counted by the receivers).
    fn counters(&self) -> &Arc<Counters>;
}

impl OtlpSink for Pipeline {
    fn export_traces(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> Result<PartialOutcome, IngestError> {
        self.ingest_traces(request)
    }

    fn export_metrics(
        &self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<PartialOutcome, IngestError> {
        Ok(self.ingest_metrics(request))
    }

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }
}

/// The pipeline. Cheap to share behind an `Arc`.
pub struct Pipeline {
    aggregator: Mutex<Aggregator>,
    filter: StaticFilter,
    scrub: RegexSet,
    permits: Arc<Semaphore>,
    capacity: usize,
    writer: WriterSender,
    counters: Arc<Counters>,
}

impl Pipeline {
    /// Builds a pipeline writing to `writer`.
    pub fn new(
        aggregator: Aggregator,
        filter: StaticFilter,
        scrub: RegexSet,
        queue_spans: usize,
        writer: WriterSender,
        counters: Arc<Counters>,
    ) -> Pipeline {
        let capacity = queue_spans.clamp(1, Semaphore::MAX_PERMITS);
        Pipeline {
            aggregator: Mutex::new(aggregator),
            filter,
            scrub,
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            writer,
            counters,
        }
    }

    /// Ingests one trace export.
    pub fn ingest_traces(
        &self,
        request: &ExportTraceServiceRequest,
    ) -> Result<PartialOutcome, IngestError> {
        struct Accepted {
            resource: usize,
            scope: usize,
            span: usize,
            facts: SpanFacts,
            keep: Option<crate::filter::KeepReason>,
        }
        let mut accepted = Vec::new();
        let mut received = 0u64;
        let mut rejected = 0u64;
        let mut first_reason = None;
        for (ri, rs) in request.resource_spans.iter().enumerate() {
            for (si, ss) in rs.scope_spans.iter().enumerate() {
                for (pi, span) in ss.spans.iter().enumerate() {
                    received += 1;
                    match SpanFacts::of(span) {
                        Ok(facts) => accepted.push(Accepted {
                            resource: ri,
                            scope: si,
                            span: pi,
                            keep: self.filter.decide(&facts),
                            facts,
                        }),
                        Err(invalid) => {
                            rejected += 1;
                            first_reason.get_or_insert((invalid, span.name.clone()));
                        }
                    }
                }
            }
        }
        let kept = accepted.iter().filter(|a| a.keep.is_some()).count();
        let permit = if kept == 0 {
            None
        } else {
            let wanted = kept.min(self.capacity) as u32;
            match self.permits.clone().try_acquire_many_owned(wanted) {
                Ok(permit) => Some(permit),
                Err(_) => {
                    Counters::add(&self.counters.requests_throttled, 1);
                    return Err(IngestError::Throttled {
                        retry_after_secs: RETRY_AFTER_SECS,
                    });
                }
            }
        };

        // service.name is a resource attribute: look it up once per resource.
        let services: Vec<&str> = request
            .resource_spans
            .iter()
            .map(|rs| normalize::service_name(rs.resource.as_ref()))
            .collect();
        {
            let mut aggregator = self
                .aggregator
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for a in &accepted {
                let rs = &request.resource_spans[a.resource];
                let span = &rs.scope_spans[a.scope].spans[a.span];
                aggregator.record(services[a.resource], &span.name, &a.facts);
            }
        }

        let mut spans = Vec::with_capacity(kept);
        for a in accepted.iter().filter(|a| a.keep.is_some()) {
            let rs = &request.resource_spans[a.resource];
            let span = &rs.scope_spans[a.scope].spans[a.span];
            let mut t = normalize::to_telemetry_span(
                services[a.resource],
                rs.resource.as_ref(),
                span,
                &a.facts,
                &self.scrub,
            );
            t.keep_reason = a.keep.map(|k| k.as_str()).unwrap_or_default().to_owned();
            spans.push(t);
        }
        let accepted_count = accepted.len() as u64;
        Counters::add(&self.counters.spans_received, received);
        Counters::add(&self.counters.spans_accepted, accepted_count);
        Counters::add(&self.counters.spans_rejected, rejected);
        Counters::add(&self.counters.spans_filtered, accepted_count - kept as u64);
        if !spans.is_empty() && self.writer.send(WriteOp::Spans(spans, permit)).is_err() {
            Counters::add(&self.counters.spans_dropped, kept as u64);
            return Err(IngestError::ShuttingDown);
        }
        Ok(match first_reason {
            None => PartialOutcome::default(),
            Some((invalid, name)) => PartialOutcome {
                rejected,
                message: format!(
                    "{rejected} span(s) rejected; first: span {name:?}: {}",
                    invalid.reason()
                ),
            },
        })
    }

    /// Counts a metrics export's data points. The Beyla transformer consumes
    /// metrics in a later stage; the agent's OTLP endpoint validates and counts.
    pub fn ingest_metrics(&self, request: &ExportMetricsServiceRequest) -> PartialOutcome {
        let points: usize = request
            .resource_metrics
            .iter()
            .flat_map(|rm| &rm.scope_metrics)
            .flat_map(|sm| &sm.metrics)
            .map(|m| match &m.data {
                Some(Data::Gauge(g)) => g.data_points.len(),
                Some(Data::Sum(s)) => s.data_points.len(),
                Some(Data::Histogram(h)) => h.data_points.len(),
                Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                Some(Data::Summary(s)) => s.data_points.len(),
                None => 0,
            })
            .sum();
        Counters::add(&self.counters.metric_points_received, points as u64);
        PartialOutcome::default()
    }

    /// Sends closed minutes (all minutes with `force`) to storage.
    pub fn flush(&self, force: bool) {
        let buckets = self
            .aggregator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .flush(unix_now_secs(), force);
        if !buckets.is_empty() && self.writer.send(WriteOp::Buckets(buckets)).is_err() {
            tracing::error!("store writer stopped before buckets could be written");
        }
    }

    /// Asks the writer to delete rows older than `cutoff`.
    pub fn request_retention(&self, rule: crate::store::writer::RetentionRule) {
        let _ = self.writer.send(WriteOp::Retention(rule));
    }
}

/// Now, in Unix seconds.
pub fn unix_now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}
