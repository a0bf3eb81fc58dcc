//! `coral mcp --http ADDR`: MCP over Streamable HTTP at `/mcp` (rmcp's
//! tower service under axum), until Ctrl-C or SIGTERM.
//!
//! With a token every request must carry `Authorization: Bearer <token>`
//! (401 otherwise, compared in constant time). Without one, only a loopback
//! address is served. The `Host` header is checked against localhost,
//! 127.0.0.1, ::1 and `--allowed-host` (a DNS-rebinding guard), unless a
//! token protects a non-loopback address and no host was named.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::CoralMcp;

/// Equal in time whatever the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(token): State<Arc<String>>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.as_bytes(), token.as_bytes()) => next.run(request).await,
        _ => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this MCP server needs `Authorization: Bearer <token>`: the token coral mcp was started with (--http-token, CORAL_MCP_TOKEN, or the colony's CORAL_TOKEN)\n",
        )
            .into_response(),
    }
}

/// Serves `server` on `addr` until Ctrl-C or SIGTERM.
pub(crate) async fn serve(
    server: CoralMcp,
    addr: SocketAddr,
    token: Option<String>,
    allowed_hosts: Vec<String>,
) -> anyhow::Result<()> {
    let token = token.filter(|t| !t.is_empty());
    if token.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve MCP on {addr} without a token: anyone who reaches it could query the colony. Set --http-token (or CORAL_MCP_TOKEN, or the colony's CORAL_TOKEN), or serve on 127.0.0.1"
        );
    }
    let stop = CancellationToken::new();
    let mut config =
        StreamableHttpServerConfig::default().with_cancellation_token(stop.child_token());
    if !allowed_hosts.is_empty() {
        let mut hosts: Vec<String> = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        hosts.extend(allowed_hosts);
        config = config.with_allowed_hosts(hosts);
    } else if !addr.ip().is_loopback() {
        // Clients reach it by names this process cannot know; the token
        // guards it.
        config = config.disable_allowed_hosts();
    }
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        LocalSessionManager::default().into(),
        config,
    );
    let mut router = axum::Router::new().nest_service("/mcp", service);
    if let Some(token) = token.clone() {
        router = router.layer(middleware::from_fn_with_state(
            Arc::new(token),
            require_token,
        ));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen for MCP on {addr} (is the port in use?)"))?;
    let bound = listener.local_addr()?;
    let signal = crate::agent::shutdown_signal();
    say!(
        "coral mcp: Streamable HTTP at http://{bound}/mcp ({})",
        if token.is_some() {
            "bearer token required"
        } else {
            "no token: loopback only"
        }
    );
    let shutdown = stop.clone();
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            signal.await;
            shutdown.cancel();
        })
        .await
        .context("the MCP HTTP server failed")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"s3cret", b"s3cret"));
        assert!(!same(b"s3cret", b"s3creT"));
        assert!(!same(b"s3cret", b"s3cre"));
        assert!(!same(b"", b"x"));
    }
}
