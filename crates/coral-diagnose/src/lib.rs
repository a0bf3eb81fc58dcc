//! Coral's diagnosis engine, behind `coral ask "why is checkout slow?"`.
//!
//! Deterministic and offline: it compares an incident window with a
//! baseline window over a [`DiagnosisData`] source (the colony's DuckDB in
//! production, in-memory fixtures in tests), confirms the symptom,
//! localises it, attributes it along the critical path over many traces,
//! finds error origins, checks call counts, attributes, hosts and state
//! changes, and answers with causes that each cite their evidence (rows, a
//! `coral query …` reproduce command, trace ids) and the share of the
//! regression they explain. When data is thin it says `inconclusive` and
//! what is missing; when nothing changed it says `no_regression` and names
//! no cause.
//!
//! # Layout
//!
//! - [`question`]: [`parse_question`], reading the question.
//! - [`data`]: the [`DiagnosisData`] trait and its row types.
//! - [`engine`]: [`diagnose`] and its checks.
//! - [`report`]: the answer ([`Diagnosis`]), the JSON contract.
//! - [`render`]: [`render_text`] and [`render_json`].
//! - [`reproduce`]: the `coral query …` commands, and [`reproduce::validate`].
//! - [`memory`]: [`MemoryData`], an in-memory [`DiagnosisData`].
//! - [`sim`]: the fault-injection simulator and the evaluation suite.
//! - [`time`], [`error`]: windows, times and errors.

pub mod data;
pub mod engine;
pub mod error;
mod evidence;
pub mod memory;
pub mod question;
mod red;
pub mod render;
pub mod report;
pub mod reproduce;
mod robust;
pub mod sim;
pub mod time;

pub use data::DiagnosisData;
pub use engine::{Request, Settings, diagnose};
pub use error::{DiagnoseError, QuestionError};
pub use memory::MemoryData;
pub use question::{Intent, Question, Symptom, TimeHint, parse_question};
pub use render::{render_json, render_text};
pub use report::{Cause, CauseKind, Diagnosis, Verdict};
pub use time::Window;
