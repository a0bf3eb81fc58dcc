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

    /// Turns a failed call into an error that says what to do. Never prints
    /// an empty reason: a status without a message is described by its code.
    pub fn explain(&self, status: tonic::Status) -> anyhow::Error {
        let colony = &self.colony;
        match status.code() {
            tonic::Code::Unavailable if status.message().contains("certificate") => {
                anyhow::anyhow!(
                    "colony at {colony} is not trusted: {} — pass --ca-file (or set CORAL_CA_FILE) to the CA that signed its certificate",
                    status.message()
                )
            }
            tonic::Code::Unavailable => anyhow::anyhow!(
                "cannot reach colony at {colony}: {} — is `coral up` (or `coral colony serve`) running? Point at another one with --colony or CORAL_COLONY",
                short(&reason(&status))
            ),
            tonic::Code::Unauthenticated => anyhow::anyhow!(
                "colony at {colony} refused the request: {} — pass --token or set CORAL_TOKEN",
                reason(&status)
            ),
            tonic::Code::DeadlineExceeded => anyhow::anyhow!(
                "colony at {colony} did not answer in time; try a shorter --since window"
            ),
            tonic::Code::Unimplemented => anyhow::anyhow!(
                "{colony} answers gRPC but is not a Coral colony (it does not implement this ColonyService call{}) — the colony's API is on port 9000 by default, an agent's API on 9001; point --colony (or CORAL_COLONY) at the colony",
                if status.message().is_empty() {
                    String::new()
                } else {
                    format!(": {}", status.message())
                }
            ),
            _ => anyhow::anyhow!("colony at {colony}: {}", reason(&status)),
        }
    }
}

/// The status message, or, when it is empty, what the code means.
fn reason(status: &tonic::Status) -> String {
    let message = status.message().trim();
    if message.is_empty() {
        format!(
            "{:?} ({}) with no message",
            status.code(),
            status.code().description()
        )
    } else {
        message.to_owned()
    }
}

fn short(message: &str) -> &str {
    if message.contains("onnection refused") {
        "connection refused"
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(colony: &str) -> ColonyArgs {
        ColonyArgs {
            colony: colony.into(),
            token: None,
            ca_file: None,
        }
    }

    #[test]
    fn errors_never_end_in_an_empty_reason() {
        let a = args("127.0.0.1:9001");
        let text = a
            .explain(tonic::Status::new(tonic::Code::Unimplemented, ""))
            .to_string();
        assert!(
            text.starts_with("127.0.0.1:9001 answers gRPC but is not a Coral colony"),
            "{text}"
        );
        assert!(text.contains("port 9000 by default"), "{text}");
        let text = a
            .explain(tonic::Status::new(tonic::Code::Internal, ""))
            .to_string();
        assert_eq!(
            text,
            "colony at 127.0.0.1:9001: Internal (Internal error) with no message"
        );
        let text = a
            .explain(tonic::Status::new(tonic::Code::Unauthenticated, " "))
            .to_string();
        assert!(text.contains("Unauthenticated"), "{text}");
        let text = a
            .explain(tonic::Status::new(tonic::Code::NotFound, "no such agent"))
            .to_string();
        assert_eq!(text, "colony at 127.0.0.1:9001: no such agent");
    }

    #[test]
    fn an_untrusted_certificate_names_the_ca_setting() {
        let text = args("127.0.0.1:9000")
            .explain(tonic::Status::new(
                tonic::Code::Unavailable,
                "invalid peer certificate: UnknownIssuer",
            ))
            .to_string();
        assert!(text.contains("is not trusted"), "{text}");
        assert!(text.contains("--ca-file"), "{text}");
        assert!(text.contains("CORAL_CA_FILE"), "{text}");
    }
}
