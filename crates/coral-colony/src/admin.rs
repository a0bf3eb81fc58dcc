//! The colony's admin HTTP endpoint (default `127.0.0.1:9003`,
//! `colony.admin.endpoint`): `GET /metrics` (its own health in the
//! Prometheus text format), `GET /metrics/red` (RED per service and
//! operation, when `colony.admin.red_metrics` is on) and `GET /healthz`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::metrics::text::CONTENT_TYPE;
use crate::metrics::{AgentGauges, HealthGauges};
use crate::service::Colony;
use crate::store::engine::Store;

/// The admin router.
pub fn router(colony: Arc<Colony>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/metrics/red", get(red))
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(colony)
}

/// Serves the admin endpoint until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    colony: Arc<Colony>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(colony))
        .with_graceful_shutdown(stop.cancelled_owned())
        .await
}

async fn metrics(State(colony): State<Arc<Colony>>) -> Response {
    // A store that does not answer is a gauge, not a failed scrape: the
    // colony's own counters stay visible next to `coral_colony_store_up 0`.
    let (listing, store_up) = match colony.agents().await {
        Ok(listing) => (listing, true),
        Err(status) => {
            tracing::warn!(error = %status.message(), "/metrics: the colony's store did not answer");
            (Default::default(), false)
        }
    };
    let now = SystemTime::now();
    let seen: HashMap<String, Option<SystemTime>> = colony
        .registry
        .snapshot()
        .into_iter()
        .map(|state| (state.record.agent_id, state.last_seen))
        .collect();
    let mut by_health: Vec<(&'static str, u64)> = ["healthy", "degraded", "unreachable", "unknown"]
        .into_iter()
        .map(|h| (h, 0))
        .collect();
    let mut agents = Vec::with_capacity(listing.agents.len());
    for agent in &listing.agents {
        if let Some(slot) = by_health.iter_mut().find(|(h, _)| *h == agent.health) {
            slot.1 += 1;
        }
        agents.push(AgentGauges {
            agent_id: agent.agent_id.clone(),
            lag_rows: agent.lag_rows,
            gaps: agent.gap_count,
            seconds_since_seen: seen
                .get(&agent.agent_id)
                .copied()
                .flatten()
                .map(|at| now.duration_since(at).unwrap_or_default().as_secs_f64()),
        });
    }
    let gauges = HealthGauges {
        agents_by_health: by_health,
        agents,
        db_size_bytes: match &colony.store {
            Store::DuckDb(db) => db_size(db.path()),
            Store::ClickHouse(ch) if store_up => ch.disk_bytes().await.unwrap_or_default(),
            Store::ClickHouse(_) => 0,
        },
        store_up,
    };
    let text = colony.writer.metrics().render(&gauges);
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response()
}

async fn red(State(colony): State<Arc<Colony>>) -> Response {
    match colony.writer.metrics().render_red() {
        Some(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            "the RED exposition is off: set colony.admin.red_metrics: true (or CORAL_RED_METRICS=true, or --red-metrics) and restart the colony\n",
        )
            .into_response(),
    }
}

/// The database file and its write-ahead log, in bytes.
fn db_size(path: &std::path::Path) -> u64 {
    let wal = path.with_extension("duckdb.wal");
    [path, wal.as_path()]
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}
