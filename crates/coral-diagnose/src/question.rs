//! Reading a question deterministically: the service (exact, then
//! case-insensitive, then a unique close match), the symptom, the time and
//! the form ("why is X slow?", "what's the slowest endpoint in X?", "what
//! changed in X?").

use serde::{Deserialize, Serialize};

use crate::error::QuestionError;
use crate::time::{floor_minute, parse_duration, parse_rfc3339, split_number};

/// A symptom to diagnose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Symptom {
    /// Slower requests (P95).
    Latency,
    /// More failing requests.
    Errors,
    /// More or fewer requests.
    Traffic,
}

impl Symptom {
    /// All symptoms, in the order they are reported.
    pub const ALL: [Symptom; 3] = [Symptom::Latency, Symptom::Errors, Symptom::Traffic];

    /// The name used by `--symptom` and the JSON contract.
    pub fn as_str(self) -> &'static str {
        match self {
            Symptom::Latency => "latency",
            Symptom::Errors => "errors",
            Symptom::Traffic => "traffic",
        }
    }
}

/// What the question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Intent {
    /// "why is X slow/failing?": confirm and explain a symptom.
    Why,
    /// "what's the slowest endpoint in X?": rank X's operations by P95, then
    /// diagnose the top one.
    SlowestEndpoint,
    /// "what changed in X?": the significant changes, without a symptom.
    WhatChanged,
}

/// A time named in the question, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeHint {
    /// "at 14:23": the incident is around this time.
    At(i64),
    /// "since 10:00": the incident runs from this time to now.
    Since(i64),
    /// "in the last 30m": the incident is this many seconds before now.
    Last(i64),
}

/// A question, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The text as asked.
    pub text: String,
    /// The service, when the question names one.
    pub service: Option<String>,
    /// The symptoms asked about (all three when none is named).
    pub symptoms: Vec<Symptom>,
    /// What is asked.
    pub intent: Intent,
    /// A time, when named.
    pub time: Option<TimeHint>,
}

/// The forms of question Coral understands (for errors).
pub fn understood_forms() -> Vec<String> {
    [
        "why is <service> slow?",
        "why is <service> failing?",
        "why is <service> getting more traffic?",
        "why was <service> slow at 14:23?",
        "why is <service> slow since 10:00?",
        "why is <service> failing in the last 30m?",
        "what's the slowest endpoint in <service>?",
        "what changed in <service>?",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect()
}

const LATENCY_WORDS: &[&str] = &[
    "slow", "slower", "slowly", "slowness", "slowdown", "latency", "latent", "p99", "p95", "p90",
    "p50", "lag", "lagging", "laggy", "sluggish", "delay", "delayed", "hanging", "timeouts",
    "timeout", "timing",
];
const ERROR_WORDS: &[&str] = &[
    "error",
    "errors",
    "erroring",
    "failing",
    "fails",
    "fail",
    "failed",
    "failure",
    "failures",
    "5xx",
    "500",
    "500s",
    "502",
    "503",
    "504",
    "broken",
    "exception",
    "exceptions",
    "crashing",
    "crashes",
    "down",
];
const TRAFFIC_WORDS: &[&str] = &[
    "traffic",
    "load",
    "throughput",
    "requests",
    "rps",
    "qps",
    "busy",
    "surge",
    "surging",
    "volume",
];
const STOP_WORDS: &[&str] = &[
    "why",
    "is",
    "are",
    "was",
    "were",
    "the",
    "a",
    "an",
    "so",
    "very",
    "too",
    "what",
    "what's",
    "whats",
    "which",
    "in",
    "of",
    "for",
    "on",
    "with",
    "my",
    "our",
    "it",
    "its",
    "being",
    "been",
    "be",
    "getting",
    "got",
    "get",
    "today",
    "now",
    "right",
    "currently",
    "service",
    "services",
    "endpoint",
    "endpoints",
    "route",
    "routes",
    "operation",
    "operations",
    "api",
    "slowest",
    "changed",
    "change",
    "changes",
    "has",
    "have",
    "did",
    "does",
    "do",
    "there",
    "this",
    "that",
    "how",
    "come",
    "more",
    "much",
    "than",
    "usual",
    "normal",
    "suddenly",
    "again",
    "still",
    "and",
    "or",
    "all",
    "at",
    "since",
    "last",
    "past",
    "hour",
    "hours",
    "minutes",
    "minute",
    "mins",
    "min",
    "seconds",
    "please",
    "tell",
    "me",
    "show",
    "explain",
    "you",
    "can",
    "i",
    "we",
    "see",
    "seeing",
    "high",
    "higher",
    "spike",
    "spiking",
    "lately",
    "recently",
    "just",
    "going",
    "on",
];

/// A word of the question: the original text and its lowercase form.
struct Word {
    text: String,
    lower: String,
}

fn tokenize(text: &str) -> Vec<Word> {
    text.split_whitespace()
        .filter_map(|raw| {
            let t = raw.trim_matches(|c: char| "?!,;\"()[]{}".contains(c));
            let t = t.strip_suffix('.').unwrap_or(t);
            let t = t
                .strip_suffix("'s")
                .or_else(|| t.strip_suffix("’s"))
                .filter(|_| !t.eq_ignore_ascii_case("what's"))
                .unwrap_or(t);
            (!t.is_empty()).then(|| Word {
                text: t.to_owned(),
                lower: t.to_lowercase(),
            })
        })
        .collect()
}

/// Reads `text` against the services the colony knows; `now` (Unix
/// seconds) anchors times such as "at 14:23" (today, UTC, or yesterday when
/// that is still ahead).
pub fn parse_question(
    text: &str,
    known_services: &[String],
    now: i64,
) -> Result<Question, QuestionError> {
    let words = tokenize(text);
    let lower = text.to_lowercase();
    let mut used = vec![false; words.len()];

    let intent = if lower.contains("slowest") {
        Intent::SlowestEndpoint
    } else if lower.contains("what changed")
        || lower.contains("what has changed")
        || lower.contains("what's changed")
        || lower.contains("whats changed")
        || lower.contains("what is different")
    {
        Intent::WhatChanged
    } else {
        Intent::Why
    };

    let time = read_time(&words, &mut used, now)?;

    let mut symptoms = Vec::new();
    for (i, w) in words.iter().enumerate() {
        let found = if LATENCY_WORDS.contains(&w.lower.as_str()) {
            Some(Symptom::Latency)
        } else if ERROR_WORDS.contains(&w.lower.as_str()) {
            Some(Symptom::Errors)
        } else if TRAFFIC_WORDS.contains(&w.lower.as_str()) {
            Some(Symptom::Traffic)
        } else {
            None
        };
        if let Some(s) = found {
            used[i] = true;
            if !symptoms.contains(&s) {
                symptoms.push(s);
            }
        }
    }
    let named_symptom = !symptoms.is_empty();
    if intent == Intent::SlowestEndpoint {
        symptoms = vec![Symptom::Latency];
    }
    if symptoms.is_empty() {
        symptoms = Symptom::ALL.to_vec();
    }
    symptoms.sort();

    let candidates: Vec<&Word> = words
        .iter()
        .enumerate()
        .filter(|(i, w)| !used[*i] && !STOP_WORDS.contains(&w.lower.as_str()))
        .map(|(_, w)| w)
        .collect();
    let service = match find_service(&candidates, known_services)? {
        Some(s) => Some(s),
        None => {
            let understood = named_symptom || intent != Intent::Why || time.is_some();
            match candidates.first() {
                Some(w) if understood => {
                    return Err(QuestionError::UnknownService {
                        name: w.text.clone(),
                        candidates: closest(&w.lower, known_services),
                    });
                }
                _ if !understood => {
                    return Err(QuestionError::Unreadable {
                        text: text.to_owned(),
                        forms: understood_forms(),
                    });
                }
                _ => None,
            }
        }
    };
    Ok(Question {
        text: text.to_owned(),
        service,
        symptoms,
        intent,
        time,
    })
}

/// The service named among `candidates`: exact matches first, then
/// case-insensitive ones, then unique close ones.
fn find_service(candidates: &[&Word], known: &[String]) -> Result<Option<String>, QuestionError> {
    type Matcher = fn(&Word, &str) -> bool;
    let levels: [Matcher; 3] = [
        |w, s| w.text == s,
        |w, s| w.lower == s.to_lowercase(),
        |w, s| close(&w.lower, &s.to_lowercase()),
    ];
    for level in levels {
        let mut found: Vec<(&Word, Vec<String>)> = Vec::new();
        for w in candidates {
            let hits: Vec<String> = known.iter().filter(|s| level(w, s)).cloned().collect();
            if !hits.is_empty() {
                found.push((w, hits));
            }
        }
        let mut distinct: Vec<String> = found.iter().flat_map(|(_, h)| h.clone()).collect();
        distinct.sort();
        distinct.dedup();
        match distinct.len() {
            0 => continue,
            1 => return Ok(distinct.pop()),
            _ => {
                return Err(QuestionError::AmbiguousService {
                    name: found[0].0.text.clone(),
                    candidates: distinct,
                });
            }
        }
    }
    Ok(None)
}

/// A close match: a prefix of the name, one of its `-`/`_`/`.` parts, or
/// within a small edit distance.
fn close(word: &str, service: &str) -> bool {
    if word.len() >= 3 && service.starts_with(word) {
        return true;
    }
    if word.len() >= 3 && service.split(['-', '_', '.']).any(|p| p == word) {
        return true;
    }
    let limit = (service.len().max(word.len()) / 4).clamp(1, 2);
    word.len() >= 4 && edit_distance(word, service) <= limit
}

/// Known services by edit distance to `word` (at most five; all when none
/// is within a few edits).
fn closest(word: &str, known: &[String]) -> Vec<String> {
    let mut ranked: Vec<(usize, &String)> = known
        .iter()
        .map(|s| (edit_distance(word, &s.to_lowercase()), s))
        .collect();
    ranked.sort();
    let near: Vec<String> = ranked
        .iter()
        .filter(|(d, s)| *d <= s.len().max(word.len()) / 2)
        .take(5)
        .map(|(_, s)| (*s).clone())
        .collect();
    if near.is_empty() {
        known.to_vec()
    } else {
        near
    }
}

/// Levenshtein distance over characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Reads "at T", "since T", "in the last D" / "past D"; marks the words
/// used.
fn read_time(
    words: &[Word],
    used: &mut [bool],
    now: i64,
) -> Result<Option<TimeHint>, QuestionError> {
    for i in 0..words.len() {
        let w = words[i].lower.as_str();
        let next = words.get(i + 1).map(|w| w.lower.as_str());
        match (w, next) {
            ("at" | "around", Some(t)) if looks_like_time(t) => {
                used[i] = true;
                used[i + 1] = true;
                return clock_time(t, now).map(|at| Some(TimeHint::At(at)));
            }
            ("since", Some(t)) if looks_like_time(t) => {
                used[i] = true;
                used[i + 1] = true;
                return clock_time(t, now).map(|at| Some(TimeHint::Since(at)));
            }
            ("last" | "past" | "since", Some(_)) => {
                let (secs, taken) = duration_after(&words[i + 1..]);
                if let Some(secs) = secs {
                    for u in used.iter_mut().skip(i).take(taken + 1) {
                        *u = true;
                    }
                    return Ok(Some(TimeHint::Last(secs)));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

fn looks_like_time(t: &str) -> bool {
    t.contains(':') && t.starts_with(|c: char| c.is_ascii_digit())
}

/// "14:23", "14:23:05" (today UTC, or yesterday when ahead of `now`) or an
/// RFC 3339 time.
fn clock_time(t: &str, now: i64) -> Result<i64, QuestionError> {
    let bad = || QuestionError::BadTime { text: t.to_owned() };
    if t.contains('t') && t.contains('-') {
        return parse_rfc3339(&t.to_uppercase()).ok_or_else(bad);
    }
    let parts: Vec<&str> = t.trim_end_matches('z').split(':').collect();
    let nums: Vec<i64> = parts
        .iter()
        .map(|p| p.parse::<i64>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let (h, m, s) = match nums.as_slice() {
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, *s),
        _ => return Err(bad()),
    };
    if !(0..24).contains(&h) || !(0..60).contains(&m) || !(0..60).contains(&s) {
        return Err(bad());
    }
    let day = now.div_euclid(86_400) * 86_400;
    let mut at = day + h * 3600 + m * 60 + s;
    if at > now {
        at -= 86_400;
    }
    Ok(at)
}

/// A duration at the start of `words`: "30m", "30 minutes", "hour",
/// "2 hours"; returns it and how many words it took.
fn duration_after(words: &[Word]) -> (Option<i64>, usize) {
    let Some(first) = words.first() else {
        return (None, 0);
    };
    let (number, unit) = split_number(&first.lower);
    if !unit.is_empty() {
        return (parse_duration(number, unit), 1);
    }
    if let Some(second) = words.get(1) {
        return (parse_duration(number, &second.lower), 2);
    }
    (None, 0)
}

/// The incident window a time hint asks for, given `now`: "at T" is
/// `[T − 5 min, T + 10 min)` (never past now), "since T" is `[T, now)`,
/// "last D" is `[now − D, now)`. Minute-aligned.
pub fn hint_window(hint: TimeHint, now: i64) -> crate::time::Window {
    let end = floor_minute(now);
    let (from, to) = match hint {
        TimeHint::At(t) => (t - 300, (t + 600).min(end)),
        TimeHint::Since(t) => (t, end),
        TimeHint::Last(d) => (end - d, end),
    };
    let from = floor_minute(from);
    let to = floor_minute(to + 59);
    crate::time::Window::new(from, to.max(from + 60))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        [
            "checkout",
            "payments",
            "card-validator",
            "frontend",
            "Inventory",
            "payments-gateway",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect()
    }

    const NOW: i64 = 1_795_000_000; // 2026-11-18T11:06:40Z

    #[test]
    fn reads_the_seed_question() {
        let q = parse_question("why is checkout slow?", &known(), NOW).unwrap();
        assert_eq!(q.service.as_deref(), Some("checkout"));
        assert_eq!(q.symptoms, vec![Symptom::Latency]);
        assert_eq!(q.intent, Intent::Why);
        assert_eq!(q.time, None);
    }

    #[test]
    fn matches_services_exactly_then_loosely() {
        let q = parse_question("why is inventory failing", &known(), NOW).unwrap();
        assert_eq!(q.service.as_deref(), Some("Inventory"));
        assert_eq!(q.symptoms, vec![Symptom::Errors]);
        let q = parse_question("why is chekout slow", &known(), NOW).unwrap();
        assert_eq!(q.service.as_deref(), Some("checkout"));
        let q = parse_question("why is card slow", &known(), NOW).unwrap();
        assert_eq!(q.service.as_deref(), Some("card-validator"));
        // "payments" is exact even though payments-gateway starts with it.
        let q = parse_question("why is payments slow", &known(), NOW).unwrap();
        assert_eq!(q.service.as_deref(), Some("payments"));
    }

    #[test]
    fn ambiguous_and_unknown_services_list_candidates() {
        let err = parse_question("why is pay slow", &known(), NOW).unwrap_err();
        assert_eq!(
            err,
            QuestionError::AmbiguousService {
                name: "pay".into(),
                candidates: vec!["payments".into(), "payments-gateway".into()]
            }
        );
        let err = parse_question("why is zzzz slow", &known(), NOW).unwrap_err();
        assert!(matches!(err, QuestionError::UnknownService { ref name, .. } if name == "zzzz"));
        assert!(err.to_string().contains("did you mean"));
    }

    #[test]
    fn reads_symptoms_and_defaults_to_all() {
        let q = parse_question("why is checkout throwing 5xx", &known(), NOW).unwrap();
        assert_eq!(q.symptoms, vec![Symptom::Errors]);
        let q = parse_question("what is wrong with checkout?", &known(), NOW).unwrap();
        assert_eq!(q.symptoms, Symptom::ALL.to_vec());
        let q = parse_question("why so much traffic on frontend", &known(), NOW).unwrap();
        assert_eq!(q.symptoms, vec![Symptom::Traffic]);
        let q = parse_question("checkout p99 and errors", &known(), NOW).unwrap();
        assert_eq!(q.symptoms, vec![Symptom::Latency, Symptom::Errors]);
    }

    #[test]
    fn reads_times() {
        let q = parse_question("why was checkout slow at 08:10?", &known(), NOW).unwrap();
        assert_eq!(
            q.time,
            Some(TimeHint::At(NOW - NOW % 86_400 + 8 * 3600 + 600))
        );
        // 14:23 is still ahead today: yesterday's.
        let q = parse_question("checkout slow at 14:23", &known(), NOW).unwrap();
        let TimeHint::At(t) = q.time.unwrap() else {
            panic!()
        };
        assert!(t < NOW && NOW - t < 86_400);
        let q = parse_question("checkout slow since 08:00", &known(), NOW).unwrap();
        assert!(matches!(q.time, Some(TimeHint::Since(_))));
        let q = parse_question("errors in checkout in the last 30m", &known(), NOW).unwrap();
        assert_eq!(q.time, Some(TimeHint::Last(1800)));
        let q = parse_question("checkout slow in the past 2 hours", &known(), NOW).unwrap();
        assert_eq!(q.time, Some(TimeHint::Last(7200)));
        let q = parse_question("checkout slow over the last hour", &known(), NOW).unwrap();
        assert_eq!(q.time, Some(TimeHint::Last(3600)));
        let err = parse_question("checkout slow at 25:99", &known(), NOW).unwrap_err();
        assert!(matches!(err, QuestionError::BadTime { .. }));
        let w = hint_window(TimeHint::Last(1800), NOW);
        assert_eq!(w.seconds(), 1800);
    }

    #[test]
    fn reads_the_other_forms() {
        let q = parse_question("what's the slowest endpoint in checkout?", &known(), NOW).unwrap();
        assert_eq!(q.intent, Intent::SlowestEndpoint);
        assert_eq!(q.service.as_deref(), Some("checkout"));
        assert_eq!(q.symptoms, vec![Symptom::Latency]);
        let q = parse_question("What changed in payments?", &known(), NOW).unwrap();
        assert_eq!(q.intent, Intent::WhatChanged);
        assert_eq!(q.service.as_deref(), Some("payments"));
    }

    #[test]
    fn unreadable_questions_list_the_forms() {
        let err = parse_question("hello there", &known(), NOW).unwrap_err();
        let QuestionError::Unreadable { forms, .. } = err else {
            panic!("{err:?}")
        };
        assert!(forms.iter().any(|f| f.contains("slowest endpoint")));
        // A symptom without a service is readable: the service may come
        // from --service.
        let q = parse_question("why is it slow?", &known(), NOW).unwrap();
        assert_eq!(q.service, None);
    }
}
