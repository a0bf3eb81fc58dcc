//! Admin HTTP endpoint (default `127.0.0.1:9002`): `GET /metrics` (Prometheus
//! text), `GET /healthz` (liveness) and `GET /status` (the `GetStatus` answer as
//! JSON).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::api::AgentApi;

/// The admin router.
pub fn router(api: Arc<AgentApi>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .with_state(api)
}

/// `ok` (200), or 503 saying why the store cannot write.
async fn healthz(State(api): State<Arc<AgentApi>>) -> axum::response::Response {
    match api.store_health() {
        None => "ok\n".into_response(),
        Some(failing) => (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "store failing since {}: {}; exports are refused until it writes again (free disk space in the data directory)\n",
                humantime::format_rfc3339_seconds(failing.since),
                failing.reason
            ),
        )
            .into_response(),
    }
}

async fn metrics(State(api): State<Arc<AgentApi>>) -> impl IntoResponse {
    let status = api.status();
    let failing = api.store_health().is_some();
    let gauges = [
        (
            "store_failing",
            "1 while the store cannot write (exports are refused), else 0.",
            u64::from(failing),
        ),
        (
            "db_size_bytes",
            "Bytes used by the agent database on disk.",
            status.counters.as_ref().map_or(0, |c| c.db_size_bytes),
        ),
        (
            "latest_seq_id",
            "Newest seq_id stored.",
            status.latest_seq_id,
        ),
        (
            "uptime_seconds",
            "Seconds since the agent started.",
            status.uptime_seconds,
        ),
    ];
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        api.counters().render_prometheus(&gauges),
    )
}

async fn status(State(api): State<Arc<AgentApi>>) -> impl IntoResponse {
    let s = api.status();
    let c = s.counters.unwrap_or_default();
    axum::Json(serde_json::json!({
        "version": s.version,
        "agent_id": s.agent_id,
        "session_id": s.session_id,
        "mode": s.mode,
        "uptime_seconds": s.uptime_seconds,
        "started_at": s.started_at,
        "data_dir": s.data_dir,
        "latest_seq_id": s.latest_seq_id,
        "capabilities": s.capabilities,
        "colony_state": s.colony_state,
        "push_acked_seq_id": s.push_acked_seq_id,
        "endpoints": s.endpoints.iter().map(|e| (e.name.clone(), serde_json::Value::String(e.address.clone()))).collect::<serde_json::Map<_, _>>(),
        "counters": crate::metrics::Counters::json(&c),
        "store": match api.store_health() {
            None => serde_json::json!({"ok": true}),
            Some(failing) => serde_json::json!({
                "ok": false,
                "failing_since": humantime::format_rfc3339_seconds(failing.since).to_string(),
                "reason": failing.reason,
            }),
        },
        "beyla": s.beyla.map(|b| serde_json::json!({
            "enabled": b.enabled,
            "mode": b.mode,
            "state": b.state,
            "summary": b.summary,
            "reason": b.reason,
            "version": b.version,
            "binary": b.binary,
            "protocols": b.supported_protocols,
            "tracing": b.tracing_enabled,
            "kernel": b.kernel,
            "btf": b.btf,
            "capabilities": b.capabilities,
            "restarts": b.restarts,
            "last_error": b.last_error,
        })),
    }))
}

/// Serves the admin endpoint until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    api: Arc<AgentApi>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(api))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}
