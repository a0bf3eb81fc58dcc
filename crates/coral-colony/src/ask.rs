//! `Diagnose` (`coral ask`): reads the question against the services the
//! store knows, applies the flags (they win over the question), and runs the
//! diagnosis engine over the colony's store: the embedded DuckDB
//! ([`crate::store::diagnose::ColonyData`]) or ClickHouse
//! ([`crate::store::clickhouse::diagnose::ClickHouseData`]). Blocking: call
//! from a blocking context.

use coral_diagnose::{
    DiagnoseError, Diagnosis, DiagnosisData, QuestionError, Request, Symptom, Window,
    parse_question,
};
use coral_proto::colony::DiagnoseRequest;
use thiserror::Error;

use crate::store::diagnose::DataError;

/// How far back a service counts as known when reading a question.
pub const KNOWN_SERVICES_SECONDS: i64 = 7 * 86_400;

/// Why a question got no diagnosis.
#[derive(Debug, Error)]
pub enum AskError {
    /// The question or the flags cannot be used (unknown or ambiguous
    /// service, unreadable question, empty window): the caller's to fix.
    #[error("{0}")]
    Invalid(String),
    /// The store failed to answer.
    #[error("{0}")]
    Store(#[from] DataError),
    /// The engine failed for another reason.
    #[error("{0}")]
    Engine(DiagnoseError),
}

impl From<QuestionError> for AskError {
    fn from(e: QuestionError) -> Self {
        AskError::Invalid(e.to_string())
    }
}

/// The symptom of a `--symptom` value.
fn symptom(text: &str) -> Result<Symptom, AskError> {
    Symptom::ALL
        .into_iter()
        .find(|s| s.as_str().eq_ignore_ascii_case(text.trim()))
        .ok_or_else(|| {
            AskError::Invalid(format!(
                "unknown symptom {text:?}: use latency, errors or traffic"
            ))
        })
}

/// A window from request bounds (Unix seconds; both 0 = not given).
fn window(which: &str, from: i64, to: i64) -> Result<Option<Window>, AskError> {
    match (from, to) {
        (0, 0) => Ok(None),
        (0, _) | (_, 0) => Err(AskError::Invalid(format!(
            "the {which} window needs both its start and its end"
        ))),
        (from, to) if from >= to => Err(AskError::Invalid(format!(
            "the {which} window is empty: {} is not before {}",
            coral_diagnose::time::rfc3339(from),
            coral_diagnose::time::rfc3339(to)
        ))),
        (from, to) => Ok(Some(Window::new(from, to))),
    }
}

/// The known service `name` stands for (exact, case-insensitive, or a
/// unique close match), read as the question reads service names.
fn resolve_service(name: &str, known: &[String], now: i64) -> Result<String, AskError> {
    if known.iter().any(|s| s == name) {
        return Ok(name.to_owned());
    }
    let q = parse_question(&format!("why is {name} slow?"), known, now)?;
    q.service.ok_or_else(|| {
        QuestionError::UnknownService {
            name: name.to_owned(),
            candidates: known.to_vec(),
        }
        .into()
    })
}

/// The question read with `service` given by flag: a word the question
/// puts in the service's place that names no (or several) known services
/// is left out, since the flag names the service.
fn parse_with_service(
    text: &str,
    service: &str,
    known: &[String],
    now: i64,
) -> Result<coral_diagnose::Question, AskError> {
    let mut text = text.to_owned();
    for _ in 0..4 {
        match parse_question(&text, known, now) {
            Ok(mut q) => {
                q.service = Some(service.to_owned());
                return Ok(q);
            }
            Err(
                QuestionError::UnknownService { name, .. }
                | QuestionError::AmbiguousService { name, .. },
            ) => {
                text = text.replacen(&name, "", 1);
            }
            Err(other) => return Err(other.into()),
        }
    }
    Err(AskError::Invalid(format!(
        "cannot read {text:?} with --service {service}"
    )))
}

/// Answers `req` from `data` (either engine's store); `now` in Unix
/// seconds.
pub fn answer<D>(data: &D, req: &DiagnoseRequest, now: i64) -> Result<Diagnosis, AskError>
where
    D: DiagnosisData<Error = DataError>,
{
    let incident = window("incident", req.from_unix, req.to_unix)?;
    let baseline = window("baseline", req.baseline_from_unix, req.baseline_to_unix)?;
    let earliest = [incident, baseline]
        .into_iter()
        .flatten()
        .map(|w| w.from)
        .fold(now - KNOWN_SERVICES_SECONDS, i64::min);
    let known = data.services(Window::new(earliest, now + 120))?;
    let text = req.question.trim();
    let service_flag = req.service.trim();
    if text.is_empty() && service_flag.is_empty() {
        return Err(AskError::Invalid(format!(
            "ask a question (e.g. \"why is checkout slow?\") or name a service with --service; {}",
            known_text(&known)
        )));
    }
    let question = match (text.is_empty(), service_flag.is_empty()) {
        (true, _) => None,
        (false, true) => Some(parse_question(text, &known, now)?),
        (false, false) => {
            let service = resolve_service(service_flag, &known, now)?;
            Some(parse_with_service(text, &service, &known, now)?)
        }
    };
    let mut request = match &question {
        Some(q) => Request::from_question(q, now, &known).map_err(|e| match e {
            DiagnoseError::NoService { known } => AskError::Invalid(format!(
                "the question names no service; {} (or pass --service)",
                known_text(&known)
            )),
            other => AskError::Engine(other),
        })?,
        None => {
            let service = resolve_service(service_flag, &known, now)?;
            Request::new(&service, now)
        }
    };
    if !req.symptom.trim().is_empty() {
        request.symptoms = vec![symptom(&req.symptom)?];
    }
    if let Some(w) = incident {
        request.incident = Some(w);
        request.narrow = false;
    }
    if let Some(w) = baseline {
        request.baseline = Some(w);
    }
    coral_diagnose::diagnose(data, &request).map_err(|e| match e {
        DiagnoseError::EmptyWindow { .. } | DiagnoseError::NoService { .. } => {
            AskError::Invalid(e.to_string())
        }
        DiagnoseError::Data { .. } => AskError::Engine(e),
    })
}

fn known_text(known: &[String]) -> String {
    if known.is_empty() {
        "no services are known yet (data shows up once agents send spans)".to_owned()
    } else {
        format!("known services: {}", known.join(", "))
    }
}
