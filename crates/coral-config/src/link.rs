//! The agent's link to a colony (`agent.colony`): where the colony is, how
//! to authenticate and verify it, heartbeats, and pushing telemetry.
//!
//! Absent section (and no `CORAL_COLONY_ENDPOINT` / `--colony-endpoint`) =
//! a standalone agent. `CORAL_COLONY_ENDPOINT` and `--colony-endpoint`
//! create the section (other settings default) when the file has none.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::ConfigError;
use crate::ctx::FileCtx;
use crate::dial::{DialTarget, parse_dial_target};
use crate::tls::{self, ClientTls};
use crate::token::{self, TokenSource};
use crate::yaml::{Node, line_of};

const LINK_KEYS: &[&str] = &[
    "endpoint",
    "token",
    "token_file",
    "tls",
    "heartbeat_interval",
    "advertise_endpoint",
    "push",
    "fallback_endpoints",
];
const PUSH_KEYS: &[&str] = &["interval", "max_records", "max_backoff"];

/// Most rows per `IngestTelemetry` call (`push.max_records`).
pub(crate) const MAX_PUSH_RECORDS: usize = 50_000;

/// How the agent reaches its colony (`agent.colony`).
#[derive(Clone, PartialEq, Eq)]
pub struct ColonyLink {
    /// The colony's gRPC address, normalized to `http://host:port` or
    /// `https://host:port` (`agent.colony.endpoint`). It is `https://` when
    /// the endpoint was written with `https://` or a `tls` section is set.
    pub endpoint: String,
    /// Shared secret sent as `authorization: Bearer <token>`; always equal
    /// to [`AgentConfig::auth_token`](crate::AgentConfig::auth_token)
    /// (`agent.colony.token` / `token_file`, `CORAL_TOKEN`, `--token`).
    pub token: Option<String>,
    /// `Some` exactly when [`endpoint`](Self::endpoint) is `https://`
    /// (`agent.colony.tls`); `Some(ClientTls::default())` = system roots.
    pub tls: Option<ClientTls>,
    /// How often the agent sends a heartbeat (`agent.colony.heartbeat_interval`, ≥ 1s).
    pub heartbeat_interval: Duration,
    /// Address the colony should dial for this agent's API, normalized like
    /// [`endpoint`](Self::endpoint) (`agent.colony.advertise_endpoint`). A bare
    /// `host:port` becomes `https://` when the agent API serves TLS
    /// (`agent.api.tls`), else `http://`. `None` = the runtime advertises the
    /// bound API address.
    pub advertise_endpoint: Option<String>,
    /// Pushing telemetry to the colony in `otel-collector` / `forwarder`
    /// modes (`agent.colony.push`).
    pub push: PushConfig,
    /// Other colonies of the fleet (sharing one store), normalized like
    /// [`endpoint`](Self::endpoint) (`agent.colony.fallback_endpoints`):
    /// registration and heartbeats move to the next when one does not
    /// answer. Empty by default.
    pub fallback_endpoints: Vec<String>,
}

impl fmt::Debug for ColonyLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ColonyLink")
            .field("endpoint", &self.endpoint)
            .field("token", &redacted(&self.token))
            .field("tls", &self.tls)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("advertise_endpoint", &self.advertise_endpoint)
            .field("push", &self.push)
            .field("fallback_endpoints", &self.fallback_endpoints)
            .finish()
    }
}

/// `Some("<redacted>")` / `None`, for `Debug` output of secrets.
pub(crate) fn redacted(secret: &Option<String>) -> Option<&'static str> {
    secret.as_ref().map(|_| "<redacted>")
}

/// Telemetry push settings (`agent.colony.push`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PushConfig {
    /// How often unacknowledged rows are pushed (`interval`, ≥ 100ms; default 5s).
    pub interval: Duration,
    /// Rows per `IngestTelemetry` call (`max_records`, 1–50000; default 5000).
    pub max_records: usize,
    /// Longest wait between retries after failures (`max_backoff`, ≥ 100ms; default 60s).
    pub max_backoff: Duration,
}

impl PushConfig {
    /// The defaults: every 5s, 5000 rows per call, back off up to 60s.
    pub const DEFAULT: PushConfig = PushConfig {
        interval: Duration::from_secs(5),
        max_records: 5000,
        max_backoff: Duration::from_secs(60),
    };
}

impl Default for PushConfig {
    fn default() -> Self {
        PushConfig::DEFAULT
    }
}

/// `agent.colony` while layers are applied; finished by [`LinkDraft::finish`].
#[derive(Debug, Clone)]
pub(crate) struct LinkDraft {
    /// Line of the `agent.colony` section (for "endpoint is required").
    pub(crate) line: Option<u64>,
    /// The endpoint, from the file, env or a flag.
    pub(crate) endpoint: Option<DialTarget>,
    /// The `tls` section, if any.
    pub(crate) tls: Option<ClientTls>,
    /// Heartbeat interval.
    pub(crate) heartbeat_interval: Duration,
    /// Advertised API address, if set.
    pub(crate) advertise: Option<DialTarget>,
    /// Push settings.
    pub(crate) push: PushConfig,
    /// Other colonies to try, in order.
    pub(crate) fallbacks: Vec<DialTarget>,
}

impl LinkDraft {
    /// All defaults, no endpoint yet; `line` is where the section starts.
    pub(crate) fn new(line: Option<u64>) -> LinkDraft {
        LinkDraft {
            line,
            endpoint: None,
            tls: None,
            heartbeat_interval: Duration::from_secs(15),
            advertise: None,
            push: PushConfig::DEFAULT,
            fallbacks: Vec::new(),
        }
    }

    /// Normalizes the endpoints and attaches the resolved token.
    /// `api_tls` says whether the agent API serves TLS.
    pub(crate) fn finish(
        self,
        token: Option<String>,
        api_tls: bool,
        origin: Option<&Path>,
    ) -> Result<ColonyLink, ConfigError> {
        let Some(endpoint) = self.endpoint else {
            return Err(ConfigError::InvalidValue {
                path: origin.map_or_else(|| PathBuf::from("(config)"), Path::to_path_buf),
                key: "agent.colony.endpoint".to_owned(),
                line: self.line,
                message: "is required when `agent.colony` is set — set it to the colony's \
                          address (host:port, http://host:port or https://host:port), or set \
                          CORAL_COLONY_ENDPOINT or --colony-endpoint, or remove `agent.colony` \
                          to run a standalone agent"
                    .to_owned(),
            });
        };
        let https = endpoint.is_https() || self.tls.is_some();
        Ok(ColonyLink {
            endpoint: endpoint.url(https),
            token,
            tls: https.then(|| self.tls.unwrap_or_default()),
            heartbeat_interval: self.heartbeat_interval,
            advertise_endpoint: self.advertise.map(|a| a.url_or(api_tls)),
            push: self.push,
            fallback_endpoints: self.fallbacks.iter().map(|e| e.url(https)).collect(),
        })
    }
}

/// Parses `agent.colony` (`key_line` is the line of the `colony:` key);
/// returns the draft and the token source, if the section names one.
pub(crate) fn parse(
    f: &FileCtx,
    node: &Node,
    key_line: Option<u64>,
) -> Result<(LinkDraft, Option<TokenSource>), ConfigError> {
    const P: &str = "agent.colony";
    let mut draft = LinkDraft::new(key_line.or_else(|| line_of(node)));
    let (mut token, mut token_file) = (None, None);
    for (key, v) in f.mapping(node, P, LINK_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "endpoint" => draft.endpoint = Some(f.parse(v, &k, parse_dial_target)?),
            "token" => token = Some(v),
            "token_file" => token_file = Some(v),
            "tls" => draft.tls = Some(tls::client_tls(f, v, &k)?),
            "heartbeat_interval" => {
                draft.heartbeat_interval = f.duration(v, &k, Duration::from_secs(1))?;
            }
            "advertise_endpoint" => draft.advertise = Some(f.parse(v, &k, parse_dial_target)?),
            "push" => draft.push = push(f, v)?,
            "fallback_endpoints" => {
                for item in f.list(v, &k, "[colony-b:9000, colony-c:9000]")? {
                    draft.fallbacks.push(f.parse(item, &k, parse_dial_target)?);
                }
            }
            _ => return Err(f.unknown(key, P, LINK_KEYS, None)),
        }
    }
    let token = token::from_file(f, P, token, token_file)?;
    Ok((draft, token))
}

fn push(f: &FileCtx, node: &Node) -> Result<PushConfig, ConfigError> {
    const P: &str = "agent.colony.push";
    let min = Duration::from_millis(100);
    let mut push = PushConfig::DEFAULT;
    for (key, v) in f.mapping(node, P, PUSH_KEYS)? {
        let k = f.join(P, key);
        match key.value.as_str() {
            "interval" => push.interval = f.duration(v, &k, min)?,
            "max_records" => push.max_records = f.count_in(v, &k, 1, MAX_PUSH_RECORDS)?,
            "max_backoff" => push.max_backoff = f.duration(v, &k, min)?,
            _ => return Err(f.unknown(key, P, PUSH_KEYS, None)),
        }
    }
    Ok(push)
}
