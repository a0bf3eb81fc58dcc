//! `coral ask --narrate`: a short explanation of the answer by a language
//! model, checked before it is printed.
//!
//! Off by default. With `--narrate`, and only when `CORAL_LLM_BASE_URL` is
//! set, the `coral ask` JSON document (and nothing else) is sent to that
//! OpenAI-compatible endpoint (`POST <base>/chat/completions`, model
//! `CORAL_LLM_MODEL`, bearer `CORAL_LLM_API_KEY` when set). The reply is
//! printed only if [`check::verify`] finds every number, trace id and
//! evidence id of it in the document; otherwise, and on a timeout
//! (`CORAL_LLM_TIMEOUT`, default 30 s) or an endpoint error, the
//! deterministic answer stands alone with a note saying why.

mod check;

use std::time::Duration;

use serde_json::{Value, json};

/// What the model is told.
const SYSTEM: &str = "You explain a diagnosis produced by Coral, an observability tool, to an \
on-call engineer. You get its JSON answer. Write at most five sentences: the verdict, the first \
cause with its chain, the numbers baseline → incident, and why it is believed. Cite evidence ids \
in brackets, e.g. [e5]. Copy every number and trace id exactly from the JSON; never compute, \
estimate or invent one. Do not number items.";

/// Where narrations come from.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    /// e.g. `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1`.
    pub base_url: String,
    pub model: String,
    pub api_key: Option<String>,
    pub timeout: Duration,
}

impl Endpoint {
    /// From `CORAL_LLM_*`; `Ok(None)` when `CORAL_LLM_BASE_URL` is unset
    /// (nothing will be sent), an error for a setting that cannot be used.
    pub fn from_env() -> Result<Option<Endpoint>, String> {
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let Some(base_url) = var("CORAL_LLM_BASE_URL") else {
            return Ok(None);
        };
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(format!(
                "CORAL_LLM_BASE_URL {base_url:?} is not an http(s) URL (e.g. https://api.openai.com/v1)"
            ));
        }
        let model = var("CORAL_LLM_MODEL")
            .ok_or("CORAL_LLM_MODEL is not set: name the model the endpoint serves")?;
        let timeout = match var("CORAL_LLM_TIMEOUT") {
            Some(t) => humantime::parse_duration(&t)
                .map_err(|_| format!("CORAL_LLM_TIMEOUT {t:?} is not a duration (e.g. 30s)"))?,
            None => Duration::from_secs(30),
        };
        Ok(Some(Endpoint {
            base_url: base_url.trim_end_matches('/').to_owned(),
            model,
            api_key: var("CORAL_LLM_API_KEY"),
            timeout,
        }))
    }
}

/// Why there is no narration to print.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The endpoint did not answer in time.
    Timeout(Duration),
    /// It answered with an error, or could not be reached.
    Endpoint(String),
    /// It answered something that is not a chat completion.
    Unreadable(String),
    /// The narration states what the evidence does not.
    Rejected(String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Timeout(d) => write!(
                f,
                "the endpoint did not answer within {} (CORAL_LLM_TIMEOUT)",
                humantime::format_duration(*d)
            ),
            Failure::Endpoint(e) => write!(f, "the endpoint failed: {e}"),
            Failure::Unreadable(e) => {
                write!(f, "the endpoint's reply is not a chat completion: {e}")
            }
            Failure::Rejected(why) => write!(f, "rejected: {why}"),
        }
    }
}

/// Asks `endpoint` to narrate `doc` and checks the reply. Blocking: call
/// it off the async runtime.
pub(crate) fn narrate(endpoint: &Endpoint, doc: &Value) -> Result<String, Failure> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(endpoint.timeout))
        .http_status_as_error(false)
        .build()
        .into();
    let body = json!({
        "model": endpoint.model,
        "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": doc.to_string()},
        ],
    });
    let mut request = agent
        .post(format!("{}/chat/completions", endpoint.base_url))
        .header("content-type", "application/json");
    if let Some(key) = &endpoint.api_key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    let failed = |e: ureq::Error| match e {
        ureq::Error::Timeout(_) => Failure::Timeout(endpoint.timeout),
        e => Failure::Endpoint(format!("{} ({e})", endpoint.base_url)),
    };
    let mut response = request.send(body.to_string()).map_err(failed)?;
    let status = response.status();
    let text = response.body_mut().read_to_string().map_err(failed)?;
    if !status.is_success() {
        let short: String = text.chars().take(200).collect();
        return Err(Failure::Endpoint(format!("HTTP {status}: {short}")));
    }
    let reply: Value =
        serde_json::from_str(&text).map_err(|e| Failure::Unreadable(e.to_string()))?;
    let narration = reply["choices"][0]["message"]["content"]
        .as_str()
        .ok_or_else(|| Failure::Unreadable("no choices[0].message.content".into()))?
        .trim()
        .to_owned();
    check::verify(&narration, doc).map_err(|r| Failure::Rejected(r.to_string()))?;
    Ok(narration)
}
