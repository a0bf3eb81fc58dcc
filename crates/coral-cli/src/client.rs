//! Connecting the CLI to a colony: `--colony` / `CORAL_COLONY` (default
//! `127.0.0.1:9000`), `--token` / `CORAL_TOKEN`, `--ca-file` / `CORAL_CA_FILE`,
//! and errors that say what to do.

use std::time::Duration;

use clap::Args;
use coral_proto::colony::colony_service_client::ColonyServiceClient;
use coral_proto::transport::{BearerToken, ClientTlsSettings, channel};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// A colony client.
pub type Client = ColonyServiceClient<InterceptedService<Channel, BearerToken>>;

/// Where the colony is.
#[derive(Args, Debug, Clone)]
pub struct ColonyArgs {
    /// Colony API address (host:port or http(s)://host:port).
    #[arg(
        long,
        env = "CORAL_COLONY",
        default_value = "127.0.0.1:9000",
        value_name = "ADDR"
    )]
    pub colony: String,
    /// Shared token, when the colony requires one.
    #[arg(long, env = "CORAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// CA file to verify a TLS colony with.
    #[arg(long, env = "CORAL_CA_FILE", value_name = "FILE")]
    pub ca_file: Option<std::path::PathBuf>,
}

impl ColonyArgs {
    fn endpoint(&self) -> String {
        if self.colony.contains("://") {
            self.colony.clone()
        } else if self.ca_file.is_some() {
            format!("https://{}", self.colony)
        } else {
            format!("http://{}", self.colony)
        }
    }

    /// A client; connection errors surface on the first call.
    pub fn client(&self) -> anyhow::Result<Client> {
        let tls = ClientTlsSettings {
            ca_file: self.ca_file.clone(),
            server_name: None,
        };
        let channel = channel(&self.endpoint(), Some(&tls), Duration::from_secs(5))?;
        Ok(
            ColonyServiceClient::with_interceptor(channel, BearerToken::new(self.token.as_deref()))
                .accept_compressed(tonic::codec::CompressionEncoding::Gzip)
                .max_decoding_message_size(256 * 1024 * 1024),
        )
    }

    /// Turns a failed call into an error that says what to do.
    pub fn explain(&self, status: tonic::Status) -> anyhow::Error {
        let colony = &self.colony;
        match status.code() {
            tonic::Code::Unavailable => anyhow::anyhow!(
                "cannot reach colony at {colony}: {} — is `coral up` (or `coral colony serve`) running? Point at another one with --colony or CORAL_COLONY",
                short(status.message())
            ),
            tonic::Code::Unauthenticated => anyhow::anyhow!(
                "colony at {colony} refused the request: {} — pass --token or set CORAL_TOKEN",
                status.message()
            ),
            tonic::Code::DeadlineExceeded => anyhow::anyhow!(
                "colony at {colony} did not answer in time; try a shorter --since window"
            ),
            _ => anyhow::anyhow!("colony at {colony}: {}", status.message()),
        }
    }
}

fn short(message: &str) -> &str {
    if message.contains("onnection refused") {
        "connection refused"
    } else {
        message
    }
}
