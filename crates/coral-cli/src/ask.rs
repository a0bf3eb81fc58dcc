//! `coral ask "<question>"`: the colony's diagnosis (`Diagnose`), as text
//! (`coral_diagnose::render_text`) or as the versioned JSON document
//! (docs/cli.md), with the evidence saved under `./evidence/` by default.
//!
//! Exit status: 0 with an answer (whatever the verdict), 2 when the
//! question or the flags cannot be used (the colony's message says why:
//! candidates for an unknown service, the forms it understands), 1 when the
//! colony cannot be reached or fails.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use clap::Args;
use coral_proto::colony::DiagnoseRequest;

use crate::client::ColonyArgs;
use crate::output;

/// Where the evidence goes unless `--save` says otherwise.
pub const EVIDENCE_DIR: &str = "./evidence";

/// A question or flags the colony cannot use: exit status 2.
#[derive(Debug)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The symptom to diagnose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SymptomArg {
    /// Slower requests (P95).
    Latency,
    /// More failing requests.
    Errors,
    /// More or fewer requests.
    Traffic,
}

impl SymptomArg {
    fn as_str(self) -> &'static str {
        match self {
            SymptomArg::Latency => "latency",
            SymptomArg::Errors => "errors",
            SymptomArg::Traffic => "traffic",
        }
    }
}

/// Output of `coral ask`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum AskFormat {
    /// The verdict, numbered causes with their chain, share explained,
    /// trace ids and a reproduce line; what was ruled out; coverage.
    #[default]
    Text,
    /// The versioned JSON document (docs/cli.md).
    Json,
}

/// Options of `coral ask`.
#[derive(Args, Debug)]
pub struct AskArgs {
    /// The question, e.g. "why is checkout slow?", "why was checkout failing
    /// at 14:23?", "what's the slowest endpoint in checkout?", "what changed
    /// in checkout?".
    #[arg(required_unless_present = "service", value_name = "QUESTION")]
    pub question: Option<String>,
    /// The service to diagnose (wins over the question's).
    #[arg(long)]
    pub service: Option<String>,
    /// The symptom (wins over the question's; default: the question's, or
    /// all three).
    #[arg(long, value_enum)]
    pub symptom: Option<SymptomArg>,
    /// Incident window: the last D (e.g. 15m, 1h); default the last 15
    /// minutes, narrowed to where the change starts.
    #[arg(long, value_name = "D", value_parser = since, conflicts_with_all = ["from", "to"])]
    pub since: Option<i64>,
    /// Incident start, RFC 3339 (e.g. 2026-11-21T14:00:00Z).
    #[arg(long, value_name = "T", value_parser = time, requires = "to")]
    pub from: Option<i64>,
    /// Incident end, RFC 3339.
    #[arg(long, value_name = "T", value_parser = time, requires = "from")]
    pub to: Option<i64>,
    /// Baseline start, RFC 3339 (default: the hour before the incident).
    #[arg(long, value_name = "T", value_parser = time, requires = "baseline_to")]
    pub baseline_from: Option<i64>,
    /// Baseline end, RFC 3339.
    #[arg(long, value_name = "T", value_parser = time, requires = "baseline_from")]
    pub baseline_to: Option<i64>,
    /// Output: text or json.
    #[arg(short = 'o', long = "output", value_enum, default_value_t)]
    pub output: AskFormat,
    /// Directory to save the evidence in (default ./evidence).
    #[arg(long, value_name = "DIR", conflicts_with = "no_save")]
    pub save: Option<PathBuf>,
    /// Do not save the evidence.
    #[arg(long)]
    pub no_save: bool,
    /// Add a short explanation by a language model, checked against the
    /// evidence: sends the JSON answer (only) to the OpenAI-compatible
    /// endpoint CORAL_LLM_BASE_URL (model CORAL_LLM_MODEL, key
    /// CORAL_LLM_API_KEY). Without CORAL_LLM_BASE_URL nothing is sent.
    #[arg(long)]
    pub narrate: bool,
    #[command(flatten)]
    pub colony: ColonyArgs,
}

/// Parses an RFC 3339 time into Unix seconds (a usage error otherwise).
fn time(text: &str) -> Result<i64, String> {
    let at = humantime::parse_rfc3339_weak(text)
        .map_err(|_| format!("{text:?} is not a time; use RFC 3339, e.g. 2026-11-21T14:00:00Z"))?;
    Ok(at
        .duration_since(UNIX_EPOCH)
        .map_err(|_| format!("{text:?} is before 1970"))?
        .as_secs() as i64)
}

/// Parses a `--since` duration into seconds (at least one).
fn since(text: &str) -> Result<i64, String> {
    let d = humantime::parse_duration(text)
        .map_err(|_| format!("{text:?} is not a duration; use e.g. 15m, 1h or 2d"))?;
    if d.is_zero() {
        return Err(format!("{text} is an empty window; use e.g. 15m, 1h"));
    }
    Ok(d.as_secs().max(1) as i64)
}

fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64
}

impl AskArgs {
    /// The request the flags make, at `now` (Unix seconds).
    pub fn request(&self, now: i64) -> Result<DiagnoseRequest, UsageError> {
        let (from, to) = match (self.since, self.from, self.to) {
            (Some(d), _, _) => (now - d, now),
            (None, Some(f), Some(t)) => (f, t),
            _ => (0, 0),
        };
        if from != 0 && from >= to {
            return Err(UsageError(format!(
                "the incident window is empty: --from {} is not before --to {}",
                output::rfc3339(from),
                output::rfc3339(to)
            )));
        }
        let (baseline_from, baseline_to) = match (self.baseline_from, self.baseline_to) {
            (Some(f), Some(t)) => (f, t),
            _ => (0, 0),
        };
        if baseline_from != 0 && baseline_from >= baseline_to {
            return Err(UsageError(format!(
                "the baseline window is empty: --baseline-from {} is not before --baseline-to {}",
                output::rfc3339(baseline_from),
                output::rfc3339(baseline_to)
            )));
        }
        Ok(DiagnoseRequest {
            question: self.question.clone().unwrap_or_default(),
            service: self.service.clone().unwrap_or_default(),
            symptom: self
                .symptom
                .map(SymptomArg::as_str)
                .unwrap_or_default()
                .to_owned(),
            from_unix: from,
            to_unix: to,
            baseline_from_unix: baseline_from,
            baseline_to_unix: baseline_to,
        })
    }

    /// Where the evidence goes, if anywhere.
    pub fn evidence_dir(&self) -> Option<PathBuf> {
        if self.no_save {
            return None;
        }
        Some(
            self.save
                .clone()
                .unwrap_or_else(|| PathBuf::from(EVIDENCE_DIR)),
        )
    }
}

/// The evidence file's name: `ask-<service>-<UTC time>.json`, the service
/// reduced to characters safe in a file name.
pub fn evidence_file_name(service: &str, now: i64) -> String {
    let safe: String = service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = if safe.is_empty() || safe.starts_with('.') {
        format!("_{safe}")
    } else {
        safe
    };
    // 2026-11-21T14:23:00Z → 20261121T142300Z
    let stamp: String = output::rfc3339(now)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    format!("ask-{safe}-{stamp}.json")
}

/// Writes `document` as `dir/ask-<service>-<time>.json`; returns its path.
fn save(dir: &Path, service: &str, now: i64, document: &str) -> anyhow::Result<PathBuf> {
    use anyhow::Context as _;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create the evidence directory {} (choose another with --save DIR, or --no-save)",
            dir.display()
        )
    })?;
    let path = dir.join(evidence_file_name(service, now));
    let mut text = document.to_owned();
    if !text.ends_with('\n') {
        text.push('\n');
    }
    std::fs::write(&path, text).with_context(|| {
        format!(
            "cannot write the evidence to {} (choose another directory with --save DIR, or --no-save)",
            path.display()
        )
    })?;
    Ok(path)
}

/// Runs `coral ask`.
pub async fn ask(args: AskArgs) -> anyhow::Result<()> {
    let now = now_unix();
    let request = args.request(now)?;
    let mut client = args.colony.client()?;
    let response = output::with_progress("diagnosing", client.diagnose(request))
        .await
        .map_err(|status| {
            if status.code() == tonic::Code::InvalidArgument {
                anyhow::Error::new(UsageError(status.message().to_owned()))
            } else {
                args.colony.explain(status)
            }
        })?
        .into_inner();
    match args.output {
        AskFormat::Json => {
            print!("{}", response.diagnosis_json);
            if !response.diagnosis_json.ends_with('\n') {
                println!();
            }
        }
        AskFormat::Text => {
            let diagnosis: coral_diagnose::Diagnosis = serde_json::from_str(
                &response.diagnosis_json,
            )
            .map_err(|e| {
                anyhow::anyhow!(
                    "the colony's answer is not a diagnosis this coral can read ({e}); try -o json"
                )
            })?;
            let text = coral_diagnose::render_text(&diagnosis);
            print!("{}", crate::output::printable(&text, true));
        }
    }
    if args.narrate {
        let note = narration(&response.diagnosis_json).await;
        match args.output {
            AskFormat::Json => eprintln!("{note}"),
            AskFormat::Text => println!("\n{}", crate::output::printable(&note, true)),
        }
    }
    if let Some(dir) = args.evidence_dir() {
        let path = save(&dir, &response.service, now, &response.diagnosis_json)?;
        match args.output {
            // stdout stays one JSON document.
            AskFormat::Json => eprintln!("evidence saved to {}", path.display()),
            AskFormat::Text => println!("\nevidence saved to {}", path.display()),
        }
    }
    Ok(())
}

/// The narration of an answer, checked, or a note saying why there is none.
async fn narration(document: &str) -> String {
    use crate::narrate::{Endpoint, narrate};
    let endpoint = match Endpoint::from_env() {
        Ok(Some(e)) => e,
        Ok(None) => {
            return "narration: not configured, nothing was sent (set CORAL_LLM_BASE_URL and CORAL_LLM_MODEL to an OpenAI-compatible endpoint)".into();
        }
        Err(e) => return format!("narration: not sent: {e}"),
    };
    let Ok(doc) = serde_json::from_str::<serde_json::Value>(document) else {
        return "narration: not sent: the colony's answer is not JSON".into();
    };
    let model = endpoint.model.clone();
    let outcome = output::with_progress(
        "narrating",
        tokio::task::spawn_blocking(move || narrate(&endpoint, &doc)),
    )
    .await;
    match outcome {
        Ok(Ok(text)) => format!(
            "Narration ({model}; every number and id checked against the evidence):\n{text}"
        ),
        Ok(Err(failure)) => format!(
            "narration not shown: {failure}. The answer above is Coral's own, from the evidence."
        ),
        Err(e) => format!("narration not shown: it failed ({e})"),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        ask: AskArgs,
    }

    fn parse(args: &[&str]) -> Result<AskArgs, clap::Error> {
        let mut argv = vec!["coral-ask"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|c| c.ask)
    }

    const NOW: i64 = 1_795_000_000; // 2026-11-18T11:06:40Z

    #[test]
    fn flags_make_the_request() {
        let a = parse(&["why is checkout slow?"]).unwrap();
        let r = a.request(NOW).unwrap();
        assert_eq!(r.question, "why is checkout slow?");
        assert_eq!((r.from_unix, r.to_unix), (0, 0));
        assert_eq!((r.baseline_from_unix, r.baseline_to_unix), (0, 0));
        assert_eq!(r.symptom, "");
        assert_eq!(a.output, AskFormat::Text);
        assert_eq!(a.evidence_dir(), Some(PathBuf::from("./evidence")));

        let a = parse(&[
            "why?",
            "--service",
            "checkout",
            "--symptom",
            "errors",
            "--from",
            "2026-11-18T11:00:00Z",
            "--to",
            "2026-11-18T11:06:00Z",
            "--baseline-from",
            "2026-11-18T10:00:00Z",
            "--baseline-to",
            "2026-11-18T11:00:00Z",
            "-o",
            "json",
            "--save",
            "/tmp/ev",
        ])
        .unwrap();
        let r = a.request(NOW).unwrap();
        assert_eq!(r.service, "checkout");
        assert_eq!(r.symptom, "errors");
        assert_eq!((r.from_unix, r.to_unix), (1_794_999_600, 1_794_999_960));
        assert_eq!(
            (r.baseline_from_unix, r.baseline_to_unix),
            (1_794_996_000, 1_794_999_600)
        );
        assert_eq!(a.output, AskFormat::Json);
        assert_eq!(a.evidence_dir(), Some(PathBuf::from("/tmp/ev")));

        let a = parse(&["--service", "checkout", "--since", "30m", "--no-save"]).unwrap();
        let r = a.request(NOW).unwrap();
        assert_eq!(r.question, "");
        assert_eq!((r.from_unix, r.to_unix), (NOW - 1800, NOW));
        assert_eq!(a.evidence_dir(), None);
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        use clap::error::ErrorKind;
        let kind = |args: &[&str]| parse(args).err().map(|e| e.kind());
        // A question or a service is needed.
        assert_eq!(kind(&[]), Some(ErrorKind::MissingRequiredArgument));
        assert_eq!(
            kind(&["q", "--symptom", "speed"]),
            Some(ErrorKind::InvalidValue)
        );
        assert_eq!(
            kind(&["q", "--since", "soon"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["q", "--since", "0s"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["q", "--from", "yesterday", "--to", "2026-11-18T11:00:00Z"]),
            Some(ErrorKind::ValueValidation)
        );
        assert_eq!(
            kind(&["q", "--from", "2026-11-18T11:00:00Z"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&["q", "--baseline-to", "2026-11-18T11:00:00Z"]),
            Some(ErrorKind::MissingRequiredArgument)
        );
        assert_eq!(
            kind(&[
                "q",
                "--since",
                "1h",
                "--from",
                "2026-11-18T11:00:00Z",
                "--to",
                "2026-11-18T11:06:00Z"
            ]),
            Some(ErrorKind::ArgumentConflict)
        );
        assert_eq!(
            kind(&["q", "--save", "x", "--no-save"]),
            Some(ErrorKind::ArgumentConflict)
        );
        assert_eq!(kind(&["q", "-o", "table"]), Some(ErrorKind::InvalidValue));

        let a = parse(&[
            "q",
            "--from",
            "2026-11-18T11:06:00Z",
            "--to",
            "2026-11-18T11:00:00Z",
        ])
        .unwrap();
        let e = a.request(NOW).unwrap_err();
        assert!(e.0.contains("incident window is empty"), "{}", e.0);
        let a = parse(&[
            "q",
            "--baseline-from",
            "2026-11-18T11:00:00Z",
            "--baseline-to",
            "2026-11-18T11:00:00Z",
        ])
        .unwrap();
        let e = a.request(NOW).unwrap_err();
        assert!(e.0.contains("baseline window is empty"), "{}", e.0);
    }

    #[test]
    fn evidence_files_are_named_by_service_and_time() {
        assert_eq!(
            evidence_file_name("checkout", NOW),
            "ask-checkout-20261118T110640Z.json"
        );
        assert_eq!(
            evidence_file_name("shop/api v2", NOW),
            "ask-shop_api_v2-20261118T110640Z.json"
        );
        assert_eq!(
            evidence_file_name("..", NOW),
            "ask-_..-20261118T110640Z.json"
        );

        let dir = tempfile::tempdir().unwrap();
        let path = save(&dir.path().join("ev"), "checkout", NOW, "{\"version\": 1}").unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"version\": 1}\n"
        );
        assert!(path.ends_with("ev/ask-checkout-20261118T110640Z.json"));
    }
}
