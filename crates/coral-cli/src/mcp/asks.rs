//! The evidence of the last asks, kept for the session's resources
//! (`coral://asks/<n>`): an assistant can re-read what `coral_ask` answered
//! without asking again. Bounded: the last [`KEPT`] answers, in memory.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Answers kept.
pub(crate) const KEPT: usize = 10;

/// One remembered answer.
#[derive(Debug, Clone)]
pub(crate) struct Ask {
    /// 1, 2, … in the order asked (the resource's number).
    pub number: u64,
    pub question: String,
    pub service: String,
    pub verdict: String,
    pub document: Value,
}

impl Ask {
    pub fn uri(&self) -> String {
        format!("coral://asks/{}", self.number)
    }
}

/// The last asks, shared by every session of one `coral mcp`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Asks(Arc<Mutex<(u64, VecDeque<Ask>)>>);

impl Asks {
    /// Keeps an answer, dropping the oldest past [`KEPT`].
    pub fn remember(&self, question: &str, service: &str, verdict: &str, document: &Value) {
        let mut guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let (next, list) = &mut *guard;
        *next += 1;
        list.push_back(Ask {
            number: *next,
            question: question.to_owned(),
            service: service.to_owned(),
            verdict: verdict.to_owned(),
            document: document.clone(),
        });
        while list.len() > KEPT {
            list.pop_front();
        }
    }

    /// Newest first.
    pub fn list(&self) -> Vec<Ask> {
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.iter().rev().cloned().collect()
    }

    /// The answer a `coral://asks/<n>` URI names, if still kept.
    pub fn get(&self, uri: &str) -> Option<Ask> {
        let n: u64 = uri.strip_prefix("coral://asks/")?.parse().ok()?;
        let guard = self.0.lock().unwrap_or_else(|p| p.into_inner());
        guard.1.iter().find(|a| a.number == n).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_answers_by_number() {
        let asks = Asks::default();
        for i in 0..(KEPT as u64 + 2) {
            asks.remember(
                &format!("q{i}"),
                "checkout",
                "regression",
                &serde_json::json!({"i": i}),
            );
        }
        let list = asks.list();
        assert_eq!(list.len(), KEPT);
        assert_eq!(list[0].number, KEPT as u64 + 2, "newest first");
        assert_eq!(list[0].uri(), format!("coral://asks/{}", KEPT + 2));
        assert!(
            asks.get("coral://asks/1").is_none(),
            "the oldest were dropped"
        );
        assert_eq!(asks.get("coral://asks/3").unwrap().question, "q2");
        assert!(asks.get("coral://asks/x").is_none());
        assert!(asks.get("coral://services").is_none());
    }
}
