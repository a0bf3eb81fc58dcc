//! How Coral's gRPC peers connect: the shared token and TLS.
//!
//! - [`TokenCheck`] is the server side: with a token configured, every call
//!   must carry `authorization: Bearer <token>`, compared in constant time;
//!   anything else is `UNAUTHENTICATED` with a message that says what to set.
//! - [`BearerToken`] is the client side: it adds the header to every call.
//! - [`channel`] builds a lazily connecting client channel to
//!   `http://host:port` or `https://host:port` (TLS, optionally with a custom
//!   CA and server name); [`server_tls`] loads a server certificate and key.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{
    Certificate, Channel, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig,
};
use tonic::{Request, Status};

/// Errors building a channel or a TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// A certificate, key or CA file could not be read.
    #[error("cannot read {what} {path}: {source} — check the path in the config")]
    Read {
        /// What the file is.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The endpoint or TLS settings were refused.
    #[error("invalid endpoint {endpoint}: {source}")]
    Endpoint {
        /// The endpoint.
        endpoint: String,
        /// tonic's complaint.
        source: tonic::transport::Error,
    },
}

/// Server-side token check (an [`Interceptor`]).
#[derive(Clone, Default)]
pub struct TokenCheck {
    expected: Option<Arc<[u8]>>,
    who: &'static str,
}

impl TokenCheck {
    /// Checks for `token` when it is `Some`; lets everything through otherwise.
    /// `who` names the server in errors ("colony", "agent").
    pub fn new(token: Option<&str>, who: &'static str) -> Self {
        TokenCheck {
            expected: token.map(|t| Arc::from(format!("Bearer {t}").into_bytes())),
            who,
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        match request.metadata().get("authorization") {
            Some(value) if constant_time_eq(value.as_bytes(), expected) => Ok(request),
            Some(_) => Err(Status::unauthenticated(format!(
                "wrong token for this {}: the token sent does not match — set the same token on both sides (CORAL_TOKEN, or colony.auth.token / agent.colony.token)",
                self.who
            ))),
            None => Err(Status::unauthenticated(format!(
                "this {} requires a token: send `authorization: Bearer <token>` — set CORAL_TOKEN (or agent.colony.token)",
                self.who
            ))),
        }
    }
}

/// Client-side token (an [`Interceptor`]) that adds `authorization`.
#[derive(Clone, Default)]
pub struct BearerToken {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl BearerToken {
    /// Sends `token` when it is `Some`. A token that is not a valid header
    /// value is sent as nothing (the server then refuses with a clear error).
    pub fn new(token: Option<&str>) -> Self {
        BearerToken {
            header: token.and_then(|t| format!("Bearer {t}").parse().ok()),
        }
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request
                .metadata_mut()
                .insert("authorization", header.clone());
        }
        Ok(request)
    }
}

/// TLS settings of a client.
#[derive(Debug, Clone, Default)]
pub struct ClientTlsSettings {
    /// PEM CA bundle to verify the server with (system roots when `None`).
    pub ca_file: Option<PathBuf>,
    /// Name to verify instead of the endpoint's host.
    pub server_name: Option<String>,
}

fn read(what: &'static str, path: &Path) -> Result<Vec<u8>, TransportError> {
    std::fs::read(path).map_err(|source| TransportError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// How often an HTTP/2 ping checks a connection to a peer.
const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a ping may go unanswered before the connection is dropped.
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(5);

/// A channel to `endpoint` (`http://host:port` or `https://host:port`) that
/// connects on first use and reconnects as needed. `tls` applies to https.
pub fn channel(
    endpoint: &str,
    tls: Option<&ClientTlsSettings>,
    connect_timeout: Duration,
) -> Result<Channel, TransportError> {
    let err = |source| TransportError::Endpoint {
        endpoint: endpoint.to_owned(),
        source,
    };
    let mut ep = Endpoint::from_shared(endpoint.to_owned())
        .map_err(err)?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        // A connection whose peer stopped answering (a cut link, a host
        // gone) is closed within 15 s and the next call dials afresh,
        // instead of waiting on TCP retransmissions for minutes.
        .http2_keep_alive_interval(KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .keep_alive_while_idle(true);
    if endpoint.starts_with("https://") {
        let settings = tls.cloned().unwrap_or_default();
        let mut config = ClientTlsConfig::new();
        config = match &settings.ca_file {
            Some(ca) => config.ca_certificate(Certificate::from_pem(read("CA file", ca)?)),
            None => config.with_native_roots(),
        };
        if let Some(name) = &settings.server_name {
            config = config.domain_name(name.clone());
        }
        ep = ep.tls_config(config).map_err(err)?;
    }
    Ok(ep.connect_lazy())
}

/// A server TLS configuration from PEM certificate chain and key files.
pub fn server_tls(cert_file: &Path, key_file: &Path) -> Result<ServerTlsConfig, TransportError> {
    let cert = read("certificate file", cert_file)?;
    let key = read("key file", key_file)?;
    Ok(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_check_refuses_missing_and_wrong_tokens() {
        let mut check = TokenCheck::new(Some("s3cret"), "colony");
        let mut ok = Request::new(());
        ok.metadata_mut()
            .insert("authorization", "Bearer s3cret".parse().unwrap());
        assert!(check.call(ok).is_ok());
        let missing = check.call(Request::new(())).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().contains("requires a token"));
        let mut wrong = Request::new(());
        wrong
            .metadata_mut()
            .insert("authorization", "Bearer nope".parse().unwrap());
        let wrong = check.call(wrong).unwrap_err();
        assert!(wrong.message().contains("does not match"));
        let mut open = TokenCheck::new(None, "agent");
        assert!(open.call(Request::new(())).is_ok());
    }

    #[test]
    fn bearer_token_adds_the_header() {
        let mut client = BearerToken::new(Some("abc"));
        let request = client.call(Request::new(())).unwrap();
        assert_eq!(
            request.metadata().get("authorization").unwrap(),
            "Bearer abc"
        );
    }
}
