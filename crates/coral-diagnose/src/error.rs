//! Error types: [`DiagnoseError`] for the engine, [`QuestionError`] for
//! reading a question.

use thiserror::Error;

/// Why a diagnosis could not be produced at all (thin data is not an error:
/// it is the verdict `inconclusive`).
#[derive(Debug, Error)]
pub enum DiagnoseError {
    /// The data source failed to answer a query.
    #[error("the {query} query failed: {source}")]
    Data {
        /// Which query (e.g. `red`, `traces`).
        query: &'static str,
        /// The data source's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// No service to diagnose: the question named none and none was given.
    #[error("no service to diagnose; name one of: {}", .known.join(", "))]
    NoService {
        /// The services the data holds.
        known: Vec<String>,
    },
    /// A window whose start is not before its end.
    #[error("the {which} window is empty: {from} is not before {to}")]
    EmptyWindow {
        /// `incident` or `baseline`.
        which: &'static str,
        /// Start, Unix seconds.
        from: i64,
        /// End, Unix seconds.
        to: i64,
    },
}

/// Why a question could not be read; the CLI exits 2 with this message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum QuestionError {
    /// A word in the service's place matches no known service.
    #[error("no service named {name:?}; {}", candidates_text(.candidates))]
    UnknownService {
        /// The word read as a service name.
        name: String,
        /// The closest known services (all of them when none is close).
        candidates: Vec<String>,
    },
    /// A word matches several services equally well.
    #[error("{name:?} matches several services: {}; name one", .candidates.join(", "))]
    AmbiguousService {
        /// The word read as a service name.
        name: String,
        /// The services it matches.
        candidates: Vec<String>,
    },
    /// A time phrase that is not a time (e.g. `at 25:99`).
    #[error(
        "{text:?} is not a time; use e.g. \"at 14:23\", \"since 10:00\" or \"in the last 30m\""
    )]
    BadTime {
        /// The phrase as written.
        text: String,
    },
    /// Nothing in the question can be read.
    #[error("cannot read {text:?}; ask one of: {}", .forms.join(" | "))]
    Unreadable {
        /// The question as given.
        text: String,
        /// The forms Coral understands.
        forms: Vec<String>,
    },
}

fn candidates_text(candidates: &[String]) -> String {
    if candidates.is_empty() {
        "no services are known yet".to_owned()
    } else {
        format!("did you mean one of: {}", candidates.join(", "))
    }
}
