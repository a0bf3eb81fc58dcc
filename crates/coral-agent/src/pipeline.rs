//! The ingest pipeline shared by the OTLP gRPC and HTTP receivers:
//! validate → aggregate (100% of spans) → filter → hand kept spans to storage.
//!
//! Trace exports are read in place from their protobuf bytes
//! ([`coral_proto::otlp_wire`]): every span is aggregated from borrowed views,
//! and only the spans the filters keep become owned rows, built from the same
//! bytes (`prost` decoding is left to OTLP/JSON and the Beyla path).
//!
//! Admission is decided **before** any side effect: the number of spans the
//! filters will keep is computed first and that many permits are taken from a
//! bounded semaphore (`agent.telemetry.queue_spans`). If none are free the
//! request is refused as throttled and nothing was counted, so the client's
//! retry cannot double count. Permits travel with the spans to the writer and
//! are released when the batch is committed, which bounds memory end to end.

use std::borrow::Cow;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use coral_proto::otlp::collector::logs::v1::ExportLogsServiceRequest;
use coral_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use coral_proto::otlp::metrics::v1::metric::Data;
use coral_proto::otlp_wire::{self, SpanDetail, TraceExportView};
use prost::Message;
use regex::RegexSet;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::aggregate::Aggregator;
use crate::dedup::{DigestKey, RecentExports, Seen};
use crate::durable::{Durability, OpenGeneration, Ticket};
use crate::filter::StaticFilter;
use crate::metrics::Counters;
use crate::normalize::{self, Invalid, SpanFacts};
use crate::store::health::StoreHealth;
use crate::store::writer::{WriteOp, WriterSender};

/// Seconds a throttled client is asked to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// A refusal as throttled (retry in [`RETRY_AFTER_SECS`]), counted in
/// `counter`: every place that sheds load refuses through this.
pub(crate) fn throttled(counter: &AtomicU64) -> IngestError {
    Counters::add(counter, 1);
    IngestError::Throttled {
        retry_after_secs: RETRY_AFTER_SECS,
    }
}

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
    /// The request body is not a valid export; the message says why.
    Malformed(String),
    /// `agent.telemetry.ack: stored`: the commit that held the request
    /// failed (or did not come); the message says why. Retry later.
    NotStored(String),
}

/// A trace export as it arrived: protobuf bytes (OTLP/gRPC, OTLP/HTTP with
/// protobuf) or a request decoded from OTLP/JSON.
#[derive(Debug, Clone, Copy)]
pub enum TraceExport<'a> {
    /// An encoded `ExportTraceServiceRequest`.
    Encoded(&'a [u8]),
    /// A decoded request.
    Decoded(&'a ExportTraceServiceRequest),
}

impl<'a> TraceExport<'a> {
    /// The request as protobuf bytes (a decoded request is encoded).
    pub fn encoded(self) -> Cow<'a, [u8]> {
        match self {
            TraceExport::Encoded(bytes) => Cow::Borrowed(bytes),
            TraceExport::Decoded(request) => Cow::Owned(request.encode_to_vec()),
        }
    }

    /// The request decoded into owned structs.
    pub fn decoded(self) -> Result<Cow<'a, ExportTraceServiceRequest>, IngestError> {
        match self {
            TraceExport::Encoded(bytes) => ExportTraceServiceRequest::decode(bytes)
                .map(Cow::Owned)
                .map_err(|e| IngestError::Malformed(e.to_string())),
            TraceExport::Decoded(request) => Ok(Cow::Borrowed(request)),
        }
    }
}

/// The result of an accepted export: spans or points refused individually.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PartialOutcome {
    /// Items refused.
    pub rejected: u64,
    /// Why, for `partial_success.error_message` (empty when nothing was refused).
    pub message: String,
    /// Under `agent.telemetry.ack: stored`, the commit to wait for before
    /// answering ([`OtlpSink::durability`]).
    pub stored: Option<Ticket>,
}

/// What an OTLP receiver hands decoded requests to: the main [`Pipeline`],
/// or the Beyla sink behind the private receiver
/// ([`crate::beyla::BeylaSink`]).
pub trait OtlpSink: Send + Sync + 'static {
    /// A trace export.
    fn export_traces(&self, request: TraceExport<'_>) -> Result<PartialOutcome, IngestError>;
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
    /// Under `agent.telemetry.ack: stored`, where receivers wait for an
    /// outcome's [`PartialOutcome::stored`] ticket before answering.
    fn durability(&self) -> Option<&Durability> {
        None
    }
}

impl OtlpSink for Pipeline {
    fn export_traces(&self, request: TraceExport<'_>) -> Result<PartialOutcome, IngestError> {
        self.ingest_traces(&request.encoded())
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

    fn durability(&self) -> Option<&Durability> {
        self.durability.as_ref()
    }
}

/// A bound on spans handed to the store writer and not yet committed: each
/// batch takes permits for its spans, and they travel with it to the writer.
pub struct Admission {
    permits: Arc<Semaphore>,
    capacity: usize,
}

impl Admission {
    /// Room for `queue_spans` spans (at least one).
    pub fn new(queue_spans: usize) -> Admission {
        let capacity = queue_spans.clamp(1, Semaphore::MAX_PERMITS);
        Admission {
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
        }
    }

    /// Permits for `spans` spans (none for none; a batch larger than the
    /// whole bound waits for all of it), or `Throttled`, counted in
    /// `throttled`, when that many are not free.
    pub fn admit(
        &self,
        spans: usize,
        throttled: &AtomicU64,
    ) -> Result<Option<OwnedSemaphorePermit>, IngestError> {
        if spans == 0 {
            return Ok(None);
        }
        let wanted = spans.min(self.capacity) as u32;
        match self.permits.clone().try_acquire_many_owned(wanted) {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => Err(self::throttled(throttled)),
        }
    }
}

/// The pipeline. Cheap to share behind an `Arc`.
pub struct Pipeline {
    aggregator: Arc<Mutex<Aggregator>>,
    durability: Option<Durability>,
    health: Option<Arc<StoreHealth>>,
    filter: StaticFilter,
    scrub: RegexSet,
    admission: Admission,
    writer: WriterSender,
    counters: Arc<Counters>,
    /// Exports taken recently, to recognise a client's retry.
    digest_key: DigestKey,
    recent: Mutex<RecentExports>,
    /// Under `ack: stored`, what the generation open now holds.
    open_generation: Mutex<OpenGeneration>,
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
        Pipeline {
            aggregator: Arc::new(Mutex::new(aggregator)),
            durability: None,
            health: None,
            filter,
            scrub,
            admission: Admission::new(queue_spans),
            writer,
            counters,
            digest_key: DigestKey::default(),
            recent: Mutex::new(RecentExports::default()),
            open_generation: Mutex::new(OpenGeneration::default()),
        }
    }

    /// Answers exports once they are stored (`agent.telemetry.ack:
    /// stored`): the writer, given [`Self::aggregator`] and `durability`
    /// through [`WriteOp::AckStored`], commits each generation of RED with
    /// its kept spans and publishes the outcome that requests wait for.
    pub fn with_stored_ack(mut self, durability: Durability) -> Pipeline {
        self.durability = Some(durability);
        self
    }

    /// Refuses exports while `health` says the store cannot write, so that
    /// nothing is acknowledged that would not be stored.
    pub fn with_store_health(mut self, health: Arc<StoreHealth>) -> Pipeline {
        self.health = Some(health);
        self
    }

    /// The aggregator, shared with the writer under `ack: stored`.
    pub fn aggregator(&self) -> Arc<Mutex<Aggregator>> {
        self.aggregator.clone()
    }

    /// Ingests one encoded `ExportTraceServiceRequest`.
    pub fn ingest_traces(&self, request: &[u8]) -> Result<PartialOutcome, IngestError> {
        if let Some(failing) = self.health.as_ref().and_then(|h| h.failing()) {
            Counters::add(&self.counters.requests_not_stored, 1);
            return Err(IngestError::NotStored(format!(
                "the agent store cannot write: {}",
                failing.reason
            )));
        }
        let view =
            TraceExportView::parse(request).map_err(|e| IngestError::Malformed(e.to_string()))?;
        struct Accepted<'a> {
            span: usize,
            facts: SpanFacts,
            /// What is stored of the span and why it is kept, for kept spans only.
            kept: Option<(SpanDetail<'a>, crate::filter::KeepReason)>,
        }
        let mut accepted = Vec::with_capacity(view.spans.len());
        // Resource attributes as JSON, built once per resource with kept spans.
        let mut resources: Vec<Option<String>> = vec![None; view.resources.len()];
        // Resources checked (every resource with a span, kept or not).
        let mut checked = vec![false; view.resources.len()];
        // Spans whose ids have the wrong length, beyond the first: invalid
        // without a look (the first is in `view.spans` and gives the reason).
        let mut rejected = view.skipped_bad_ids as u64;
        let mut first_reason = None;
        for (i, span) in view.spans.iter().enumerate() {
            let facts = SpanFacts::of(span).and_then(|facts| {
                // Every span is held to the same rules, kept or not: a
                // malformed attribute (found while the view was read) or
                // resource is refused whether or not the filters would
                // store the span.
                if let Some(why) = span.malformed {
                    return Err(Invalid::Encoding(why));
                }
                if !checked[span.resource] {
                    if let Some(raw) = view.resources[span.resource].raw {
                        otlp_wire::check_resource(raw).map_err(|e| Invalid::Encoding(e.0))?;
                    }
                    checked[span.resource] = true;
                }
                let Some(reason) = self.filter.decide(&facts) else {
                    return Ok((facts, None));
                };
                // Kept spans are read whole, with their resource (once),
                // still in place.
                let detail =
                    otlp_wire::span_detail(span.raw).map_err(|e| Invalid::Encoding(e.0))?;
                if resources[span.resource].is_none() {
                    let attributes = view.resources[span.resource]
                        .raw
                        .map(otlp_wire::resource_attributes)
                        .transpose()
                        .map_err(|e| Invalid::Encoding(e.0))?
                        .unwrap_or_default();
                    resources[span.resource] =
                        Some(normalize::attributes_json(&attributes, &self.scrub).0);
                }
                Ok((facts, Some((detail, reason))))
            });
            match facts {
                Ok((facts, kept)) => accepted.push(Accepted {
                    span: i,
                    facts,
                    kept,
                }),
                Err(invalid) => {
                    rejected += 1;
                    first_reason.get_or_insert((invalid, span.name));
                }
            }
        }
        let kept = accepted.iter().filter(|a| a.kept.is_some()).count();
        // Under `ack: stored`, a store that has committed nothing for a while
        // with requests waiting is behind: refuse before queueing more.
        if self
            .durability
            .as_ref()
            .is_some_and(|d| d.behind(crate::durable::MAX_COMMIT_LAG))
        {
            return Err(throttled(&self.counters.requests_throttled));
        }
        let permit = self
            .admission
            .admit(kept, &self.counters.requests_throttled)?;

        let service = |resource: usize| {
            view.resources[resource]
                .service_name
                .unwrap_or(normalize::UNKNOWN_SERVICE)
        };
        let mut spans = Vec::with_capacity(kept);
        let mut cut = 0;
        for a in &accepted {
            let Some((detail, reason)) = &a.kept else {
                continue;
            };
            let span = &view.spans[a.span];
            let (mut t, was_cut) = normalize::to_telemetry_span(
                service(span.resource),
                resources[span.resource].as_deref().unwrap_or("{}"),
                span,
                detail,
                &a.facts,
                &self.scrub,
            );
            cut += u64::from(was_cut);
            t.keep_reason = reason.as_str().to_owned();
            spans.push(t);
        }
        let received = (view.spans.len() + view.skipped_bad_ids) as u64;
        let accepted_count = received - rejected;
        let digest = (accepted_count > 0).then(|| self.digest_key.digest(&view.spans));
        let outcome = |stored: Option<u64>| match &first_reason {
            None => PartialOutcome {
                stored: stored.map(Ticket),
                ..PartialOutcome::default()
            },
            Some((invalid, name)) => PartialOutcome {
                rejected,
                message: format!(
                    "{rejected} span(s) rejected; first: span {name:?}: {}",
                    invalid.reason()
                ),
                stored: stored.map(Ticket),
            },
        };

        let mut aggregator = self
            .aggregator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Under `ack: stored` one generation is one commit: past its bound
        // the export waits for the next (refused before any side effect).
        let generation = self.durability.as_ref().map(|_| aggregator.generation());
        let mut open = match generation {
            Some(generation) => {
                let bytes: usize = spans.iter().map(crate::store::span_bytes).sum();
                let mut open = self
                    .open_generation
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                if !open.fits(generation, bytes) {
                    return Err(throttled(&self.counters.requests_throttled));
                }
                Some((open, bytes))
            }
            None => None,
        };
        // A retry of an export already taken is answered as the first copy
        // is (after its commit, under `ack: stored`) and counts nothing. The
        // check and the count happen under the aggregator's lock, so two
        // copies arriving together are told apart too.
        if let Some(digest) = digest {
            let seen = self
                .recent
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .take(digest, generation, std::time::Instant::now(), |g| {
                    self.durability
                        .as_ref()
                        .is_some_and(|d| d.may_have_failed(g))
                });
            if let Seen::Retry(first) = seen {
                drop(aggregator);
                drop(permit);
                Counters::add(&self.counters.spans_received, received);
                Counters::add(&self.counters.spans_rejected, rejected);
                Counters::add(&self.counters.requests_retried, 1);
                Counters::add(&self.counters.spans_retried, accepted_count);
                return Ok(outcome(first));
            }
        }
        if let Some((open, bytes)) = open.as_mut() {
            open.add(*bytes);
        }
        drop(open);
        for a in &accepted {
            let span = &view.spans[a.span];
            aggregator.record(
                service(span.resource),
                span.name,
                &a.facts,
                a.kept.is_some(),
            );
        }
        // Under `ack: stored` the spans are queued before the lock is let
        // go, so the commit that takes this generation's RED holds them too
        // (an empty batch still wakes the writer).
        let stored = self
            .durability
            .is_some()
            .then(|| aggregator.generation())
            .filter(|_| accepted_count > 0);
        if stored.is_none() {
            drop(aggregator);
        }
        let send = !spans.is_empty() || stored.is_some();
        let sent = !send || self.writer.send(WriteOp::Spans(spans, permit)).is_ok();
        Counters::add(&self.counters.spans_received, received);
        Counters::add(&self.counters.spans_accepted, accepted_count);
        Counters::add(&self.counters.spans_rejected, rejected);
        Counters::add(&self.counters.spans_filtered, accepted_count - kept as u64);
        Counters::add(&self.counters.spans_attributes_cut, cut);
        if !sent {
            Counters::add(&self.counters.spans_dropped, kept as u64);
            return Err(IngestError::ShuttingDown);
        }
        Ok(outcome(stored))
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

    /// Sends closed minutes (all minutes with `force`) to storage. Under
    /// `ack: stored` the writer takes the aggregator's deltas itself.
    pub fn flush(&self, force: bool) {
        if self.durability.is_some() {
            return;
        }
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

#[cfg(test)]
#[path = "pipeline_tests.rs"]
mod tests;
