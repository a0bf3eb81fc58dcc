//! What to diagnose ([`Request`]) and the thresholds the checks use
//! ([`Settings`]).

use crate::error::DiagnoseError;
use crate::question::{Intent, Question, Symptom, hint_window};
use crate::time::Window;

/// Thresholds and limits. The defaults are the documented behaviour of
/// `coral ask`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// Default incident window: the last this many minutes.
    pub incident_minutes: i64,
    /// Default baseline: this many minutes before the incident.
    pub baseline_minutes: i64,
    /// Fewer requests than this in the incident: inconclusive.
    pub min_requests: u64,
    /// Fewer baseline minutes with data than this: inconclusive.
    pub min_baseline_minutes: usize,
    /// A P95 change counts from this relative change, percent…
    pub min_latency_change_pct: f64,
    /// …and this absolute change, ms.
    pub min_latency_change_ms: f64,
    /// An error-rate change counts from this absolute change (fraction)…
    pub min_error_rate_change: f64,
    /// …with at least this many failed requests in the incident.
    pub min_errors: u64,
    /// A traffic change counts from this ratio (or its inverse).
    pub traffic_ratio: f64,
    /// Robust z a change needs.
    pub z: f64,
    /// At most this many traces per trace query (the CLI's `--limit` cap).
    pub trace_limit: usize,
    /// Fewer sampled traces than this in a window: no attribution.
    pub min_traces: usize,
    /// A cause must explain at least this share of the regression.
    pub min_explains: f64,
    /// At most this many causes.
    pub max_causes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            incident_minutes: 15,
            baseline_minutes: 60,
            min_requests: 30,
            min_baseline_minutes: 10,
            min_latency_change_pct: 20.0,
            min_latency_change_ms: 5.0,
            min_error_rate_change: 0.01,
            min_errors: 5,
            traffic_ratio: 1.5,
            z: 3.0,
            trace_limit: 1000,
            min_traces: 10,
            min_explains: 0.1,
            max_causes: 5,
        }
    }
}

/// A diagnosis to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// The question as asked (echoed in the answer).
    pub question: String,
    /// The service.
    pub service: String,
    /// One operation of it, when asked about one.
    pub operation: Option<String>,
    /// Symptoms to confirm (empty: all three).
    pub symptoms: Vec<Symptom>,
    /// What is asked.
    pub intent: Intent,
    /// The incident window; `None`: the last [`Settings::incident_minutes`].
    pub incident: Option<Window>,
    /// The baseline window; `None`: the hour before the incident.
    pub baseline: Option<Window>,
    /// Narrow the incident to where the change starts (change point on the
    /// per-minute values). Off when the window was given with `--from/--to`.
    pub narrow: bool,
    /// Now, Unix seconds.
    pub now: i64,
    /// Thresholds.
    pub settings: Settings,
}

impl Request {
    /// A request about `service` with the defaults: every symptom, the last
    /// 15 minutes narrowed to the change, the hour before as baseline.
    pub fn new(service: &str, now: i64) -> Request {
        Request {
            question: format!("what is wrong with {service}?"),
            service: service.to_owned(),
            operation: None,
            symptoms: Symptom::ALL.to_vec(),
            intent: Intent::Why,
            incident: None,
            baseline: None,
            narrow: true,
            now,
            settings: Settings::default(),
        }
    }

    /// The request a question asks for. `known` lists the services (for the
    /// error when the question names none).
    pub fn from_question(
        q: &Question,
        now: i64,
        known: &[String],
    ) -> Result<Request, DiagnoseError> {
        let service = q.service.clone().ok_or_else(|| DiagnoseError::NoService {
            known: known.to_vec(),
        })?;
        let mut r = Request::new(&service, now);
        r.question = q.text.clone();
        r.symptoms = q.symptoms.clone();
        r.intent = q.intent;
        r.incident = q.time.map(|t| hint_window(t, now));
        Ok(r)
    }
}
