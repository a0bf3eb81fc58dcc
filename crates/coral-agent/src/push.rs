//! Push modes (`--mode otel-collector|forwarder`): the outbox.
//!
//! The outbox is the store itself: every row has a seq_id, and
//! `coral_metadata.push_acked_seq_id` records the highest one the colony has
//! acknowledged. The pusher reads the rows after it (the same page read as
//! `QueryTelemetry`), sends them with `IngestTelemetry` and, once the colony
//! answers, persists the acknowledgement. Until then the rows stay in the
//! database (retention keeps unacknowledged rows up to
//! `agent.storage.outbox_max_age`), so a colony outage or an agent restart
//! loses nothing; the colony deduplicates by (agent, session, seq_id), so a
//! retry after a lost answer never double counts.
//!
//! Pushes go to `agent.colony.endpoint`; when it fails they go on to the
//! next of `fallback_endpoints` (colonies sharing one ClickHouse store, so
//! any of them acknowledges against the same cursor), back off only once
//! every colony has failed in a row, and stay with the one that answers.

use std::sync::Arc;
use std::time::Duration;

use coral_config::PushConfig;
use coral_proto::agent::QueryTelemetryRequest;
use coral_proto::colony::IngestTelemetryRequest;
use tokio_util::sync::CancellationToken;

use crate::link::{ColonyClient, LinkState, answer_within, describe};
use crate::store::Database;
use crate::store::read::query_telemetry;
use crate::store::writer::{WriteOp, WriterSender};

/// How long one `IngestTelemetry` call may take: a page can be large.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(30);

/// Pushes the outbox to `colonies` (the endpoint, then its fallbacks) until
/// `stop`.
#[allow(clippy::too_many_arguments)]
pub async fn run(
    colonies: Vec<(String, ColonyClient)>,
    agent_id: String,
    settings: PushConfig,
    db: Arc<Database>,
    writer: WriterSender,
    state: LinkState,
    stop: CancellationToken,
) {
    let mut acked = db.push_acked();
    let mut backoff = Duration::from_secs(1);
    let (mut current, mut failed_in_a_row) = (0usize, 0usize);
    loop {
        let (db2, agent, start, max) = (db.clone(), agent_id.clone(), acked, settings.max_records);
        let page = tokio::task::spawn_blocking(move || {
            let request = QueryTelemetryRequest {
                service_names: Vec::new(),
                start_seq_id: start,
                max_records: max as i32,
            };
            query_telemetry(&db2, &agent, &request)
        })
        .await;
        let page = match page {
            Ok(Ok(page)) => page,
            Ok(Err(error)) => {
                tracing::error!(%error, "cannot read the outbox");
                state.set_push_problem(Some(format!(
                    "push failing: cannot read the outbox in the agent's database: {error} — see the agent's log"
                )));
                if sleep_or_stop(&stop, settings.interval).await {
                    return;
                }
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "outbox read task failed");
                state.set_push_problem(Some(format!(
                    "push stopped: the outbox read task failed ({error}); restart the agent"
                )));
                return;
            }
        };
        let rows = page.buckets.len() + page.spans.len() + page.host_metrics.len();
        if page.max_seq_id <= acked {
            if sleep_or_stop(&stop, settings.interval).await {
                return;
            }
            continue;
        }
        let request = IngestTelemetryRequest {
            agent_id: agent_id.clone(),
            session_id: page.session_id.clone(),
            buckets: page.buckets,
            spans: page.spans,
            host_metrics: page.host_metrics,
            start_seq_id: acked,
            max_seq_id: page.max_seq_id,
        };
        let (endpoint, client) = &mut colonies[current].clone();
        match answer_within(PUSH_TIMEOUT, client.ingest_telemetry(request)).await {
            Ok(response) => {
                let r = response.into_inner();
                if r.rejected > 0 {
                    tracing::warn!(rejected = r.rejected, message = %r.message, "colony refused rows");
                }
                tracing::debug!(rows, acked = r.acked_seq_id, "outbox pushed");
                acked = r.acked_seq_id.max(page.max_seq_id);
                state.set_push_problem(None);
                let _ = writer.send(WriteOp::Ack(acked));
                backoff = Duration::from_secs(1);
                failed_in_a_row = 0;
                if !page.has_more && sleep_or_stop(&stop, settings.interval).await {
                    return;
                }
            }
            Err(status) => {
                let message = describe(endpoint, &status);
                tracing::warn!(rows, "push failed, rows stay in the outbox: {message}");
                state.set_push_problem(Some(format!(
                    "push failing: {message}; {rows} rows stay in the outbox"
                )));
                failed_in_a_row += 1;
                if colonies.len() > 1 {
                    current = (current + 1) % colonies.len();
                    tracing::info!(colony = %colonies[current].0, "pushing to the next colony of the fleet");
                }
                if failed_in_a_row < colonies.len() {
                    continue;
                }
                failed_in_a_row = 0;
                if sleep_or_stop(&stop, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(settings.max_backoff);
            }
        }
    }
}

/// Sleeps; true when `stop` fired instead.
async fn sleep_or_stop(stop: &CancellationToken, wait: Duration) -> bool {
    tokio::select! {
        _ = stop.cancelled() => true,
        _ = tokio::time::sleep(wait) => false,
    }
}
