//! [`BeylaSink`]: what the private OTLP receiver hands Beyla's exports to.
//!
//! Metrics go through the stateful transformer (units, temporality, route
//! cap) into a minute window; closed minutes are flushed to the store on the
//! agent's flush tick. Spans are sampled by trace id and handed to the store
//! writer at once, admitted by a bound of their own
//! (`agent.telemetry.queue_spans` spans waiting for their commit, counted
//! apart from the OTLP receivers'): past it an export is answered 429 with
//! `Retry-After`, and Beyla's exporter retries it.
//! Logs are counted and dropped (the trait's default; Beyla sends none).

use std::sync::{Arc, Mutex};

use coral_beyla::transform::{MinuteWindow, TracesOptions, TransformOptions, Transformer, traces};
use coral_config::BeylaConfig;
use coral_proto::otlp::collector::metrics::v1::ExportMetricsServiceRequest;

use crate::metrics::Counters;
use crate::pipeline::{
    Admission, IngestError, OtlpSink, PartialOutcome, TraceExport, unix_now_secs,
};
use crate::store::beyla::BeylaRows;
use crate::store::writer::{WriteOp, WriterSender};

/// Seconds after a minute ends before it is written (late exports of that
/// minute still merge in memory; later ones become a second row, which
/// readers and the colony merge).
pub const FLUSH_GRACE_SECS: i64 = 10;

/// The Beyla side of the agent's OTLP handling.
pub struct BeylaSink {
    transformer: Mutex<Transformer>,
    window: Mutex<MinuteWindow>,
    traces: TracesOptions,
    /// Spans handed to the writer and not yet committed.
    admission: Admission,
    writer: WriterSender,
    counters: Arc<Counters>,
}

impl BeylaSink {
    /// A sink for Beyla configured by `cfg`, writing to `writer` with at
    /// most `queue_spans` spans waiting for their commit.
    pub fn new(
        cfg: &BeylaConfig,
        queue_spans: usize,
        writer: WriterSender,
        counters: Arc<Counters>,
    ) -> BeylaSink {
        BeylaSink {
            transformer: Mutex::new(Transformer::new(TransformOptions {
                max_routes_per_service: cfg.limits.max_routes_per_service,
                obfuscate_queries: cfg.protocols.sql.obfuscate_queries,
                ..TransformOptions::default()
            })),
            window: Mutex::new(MinuteWindow::new()),
            traces: TracesOptions {
                sample_rate: cfg.sampling_rate,
                obfuscate_queries: cfg.protocols.sql.obfuscate_queries,
            },
            admission: Admission::new(queue_spans),
            writer,
            counters,
        }
    }

    /// Writes closed minutes (every minute with `force`).
    pub fn flush(&self, force: bool) {
        let rows = self.window.lock().unwrap_or_else(|p| p.into_inner()).flush(
            unix_now_secs(),
            FLUSH_GRACE_SECS,
            force,
        );
        if rows.is_empty() {
            return;
        }
        let rows = BeylaRows {
            http: rows.http,
            grpc: rows.grpc,
            sql: rows.sql,
            spans: Vec::new(),
        };
        if self.writer.send(WriteOp::Beyla(rows, None)).is_err() {
            tracing::error!("store writer stopped before Beyla rows could be written");
        }
    }
}

impl OtlpSink for BeylaSink {
    fn export_traces(&self, request: TraceExport<'_>) -> Result<PartialOutcome, IngestError> {
        let request = request.decoded()?;
        let outcome = traces(&request, &self.traces);
        let permit = self
            .admission
            .admit(outcome.spans.len(), &self.counters.beyla_requests_throttled)?;
        let received = outcome.spans.len() as u64 + outcome.sampled_out + outcome.invalid;
        Counters::add(&self.counters.beyla_spans_received, received);
        Counters::add(&self.counters.beyla_spans_sampled_out, outcome.sampled_out);
        Counters::add(&self.counters.beyla_spans_attributes_cut, outcome.cut);
        if !outcome.spans.is_empty() {
            let rows = BeylaRows {
                spans: outcome.spans,
                ..BeylaRows::default()
            };
            if self.writer.send(WriteOp::Beyla(rows, permit)).is_err() {
                return Err(IngestError::ShuttingDown);
            }
        }
        Ok(match outcome.invalid_reason {
            Some(reason) if outcome.invalid > 0 => PartialOutcome {
                stored: None,
                rejected: outcome.invalid,
                message: format!("{} span(s) rejected; first: {reason}", outcome.invalid),
            },
            _ => PartialOutcome::default(),
        })
    }

    fn export_metrics(
        &self,
        request: &ExportMetricsServiceRequest,
    ) -> Result<PartialOutcome, IngestError> {
        let outcome = self
            .transformer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .metrics(request);
        let received = outcome.points_used
            + outcome.points_baselined
            + outcome.points_skipped
            + outcome.points_ignored;
        Counters::add(&self.counters.beyla_points_received, received);
        Counters::add(&self.counters.beyla_points_skipped, outcome.points_skipped);
        if let Some(reason) = &outcome.skip_reason {
            tracing::debug!(source = "beyla", skipped = outcome.points_skipped, %reason, "Beyla data points not used");
        }
        self.window
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(outcome.rows);
        Ok(PartialOutcome::default())
    }

    fn counters(&self) -> &Arc<Counters> {
        &self.counters
    }
}
