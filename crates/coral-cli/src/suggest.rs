//! "Did you mean …?" for service names: when a query about a service finds
//! nothing, ask the colony which services it has seen lately
//! (`ListServices` over [`LOOKBACK_SECS`]) and suggest the closest name, or
//! list the known ones.
//!
//! [`close_match`] is pure (exact, then case-insensitive, then edit distance,
//! then prefix); [`service_hint`] does the call and words the hint. An empty
//! window is not an error: callers keep exit code 0 and show the hint next to
//! the empty result (in the table, or on stderr for JSON and CSV).

use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};

use coral_proto::colony::ListServicesRequest;

use crate::client::Client;

/// How far back [`service_hint`] looks for known services: 7 days.
pub const LOOKBACK_SECS: i64 = 7 * 24 * 3600;

/// At most this many names are listed when nothing is close.
const MAX_LISTED: usize = 12;

/// The known name closest to `name`: an exact match, else a case-insensitive
/// one, else the nearest within a small edit distance (typos, swapped
/// letters), else one that starts with `name` or that `name` starts with
/// (`check` → `checkout`). Ties go to the first in `known`'s order.
pub(crate) fn close_match<'a>(name: &str, known: &'a [String]) -> Option<&'a str> {
    if let Some(exact) = known.iter().find(|k| *k == name) {
        return Some(exact);
    }
    let lower = name.to_lowercase();
    if let Some(k) = known.iter().find(|k| k.to_lowercase() == lower) {
        return Some(k);
    }
    let wanted: Vec<char> = lower.chars().collect();
    let mut best: Option<(usize, &str)> = None;
    for k in known {
        let other: Vec<char> = k.to_lowercase().chars().collect();
        let d = distance(&wanted, &other);
        // One edit per three characters of the longer name, two at most.
        let allowed = (wanted.len().max(other.len()) / 3).clamp(1, 2);
        if d <= allowed && best.is_none_or(|(b, _)| d < b) {
            best = Some((d, k));
        }
    }
    if let Some((_, k)) = best {
        return Some(k);
    }
    if wanted.len() < 3 {
        return None;
    }
    known
        .iter()
        .find(|k| {
            let k = k.to_lowercase();
            k.len() >= 3 && (k.starts_with(&lower) || lower.starts_with(&k))
        })
        .map(String::as_str)
}

/// Edit distance with adjacent transpositions counting as one edit
/// (optimal string alignment).
fn distance(a: &[char], b: &[char]) -> usize {
    let w = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * w];
    for i in 0..=a.len() {
        for j in 0..=b.len() {
            d[i * w + j] = if i == 0 || j == 0 {
                i + j
            } else {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut v = (d[(i - 1) * w + j] + 1)
                    .min(d[i * w + j - 1] + 1)
                    .min(d[(i - 1) * w + j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    v = v.min(d[(i - 2) * w + j - 2] + 1);
                }
                v
            };
        }
    }
    d[a.len() * w + b.len()]
}

/// The services a colony knows, as `ListServices` reports them: names with
/// the sources (`beyla`, `otlp`) each was seen from.
#[derive(Debug, Clone, Default)]
pub(crate) struct Known {
    /// Every name, sorted, once.
    pub names: Vec<String>,
    /// (name, source) pairs.
    pub sources: BTreeSet<(String, String)>,
}

impl Known {
    /// From `ListServices`' summaries.
    pub fn from_summaries(services: &[coral_proto::colony::ServiceSummary]) -> Known {
        let sources: BTreeSet<(String, String)> = services
            .iter()
            .map(|s| (s.service_name.clone(), s.source.clone()))
            .collect();
        let names: BTreeSet<String> = sources.iter().map(|(n, _)| n.clone()).collect();
        Known {
            names: names.into_iter().collect(),
            sources,
        }
    }

    /// The names, at most [`MAX_LISTED`] of them, comma-separated, with
    /// "…" when there are more.
    pub fn listing(&self) -> String {
        let mut list: Vec<&str> = self
            .names
            .iter()
            .take(MAX_LISTED)
            .map(String::as_str)
            .collect();
        if self.names.len() > MAX_LISTED {
            list.push("…");
        }
        list.join(", ")
    }

    fn has(&self, name: &str, source: &str) -> bool {
        self.sources.contains(&(name.to_owned(), source.to_owned()))
    }
}

/// Words the hint for `service` given what the colony knows; `source`
/// (`beyla` or `otlp`) is the kind of data the query asked for, `None` for
/// any. Pure, so it is tested without a colony.
pub(crate) fn hint_for(service: &str, source: Option<&str>, known: &Known) -> String {
    let days = LOOKBACK_SECS / 86_400;
    if known.names.is_empty() {
        return format!(
            "no service has reported data in the last {days} days: check that apps export OTLP to an agent (and `coral agents` for the agents' health)"
        );
    }
    match close_match(service, &known.names) {
        Some(name) if name == service => {
            let other = |s: &str| match s {
                "beyla" => "otlp",
                _ => "beyla",
            };
            match source {
                Some(s) if !known.has(service, s) && known.has(service, other(s)) => {
                    if s == "beyla" {
                        format!(
                            "'{service}' has OTLP data but no Beyla data in the last {days} days: try `coral query otel {service}`"
                        )
                    } else {
                        format!(
                            "'{service}' has Beyla data but no OTLP spans in the last {days} days: try `coral query beyla http {service}`"
                        )
                    }
                }
                _ => format!(
                    "'{service}' has data in the last {days} days, none in this window: widen --since (e.g. --since 1d)"
                ),
            }
        }
        Some(name) => format!("no data for service '{service}'; did you mean '{name}'?"),
        None => format!(
            "no data for service '{service}'; services seen in the last {days} days: {}",
            known.listing()
        ),
    }
}

/// Asks the colony which services it has seen in the last 7 days and words
/// a hint for `service` (see [`hint_for`]). `None` when the colony cannot
/// say (the caller's own query already succeeded, so this never fails it).
pub(crate) async fn service_hint(
    client: &mut Client,
    service: &str,
    source: Option<&str>,
) -> Option<String> {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as i64;
    let response = client
        .list_services(ListServicesRequest {
            start_time_unix_ms: now_ms - LOOKBACK_SECS * 1000,
            end_time_unix_ms: 0,
        })
        .await
        .ok()?
        .into_inner();
    Some(hint_for(
        service,
        source,
        &Known::from_summaries(&response.services),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_proto::colony::ServiceSummary;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn close_match_prefers_exact_then_case_then_typos_then_prefixes() {
        let known = names(&["cart", "checkout", "Checkout-API", "payments-api"]);
        assert_eq!(close_match("checkout", &known), Some("checkout"));
        assert_eq!(close_match("CHECKOUT-api", &known), Some("Checkout-API"));
        assert_eq!(close_match("chekout", &known), Some("checkout"));
        assert_eq!(close_match("chcekout", &known), Some("checkout"), "swap");
        assert_eq!(close_match("crat", &known), Some("cart"));
        assert_eq!(close_match("payments", &known), Some("payments-api"));
        assert_eq!(close_match("inventory", &known), None);
        assert_eq!(close_match("ab", &known), None);
        assert_eq!(close_match("x", &[]), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_and_swaps() {
        let d = |a: &str, b: &str| {
            distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("ab", "ba"), 1);
        assert_eq!(d("checkout", "checkout"), 0);
    }

    fn known(list: &[(&str, &str)]) -> Known {
        let services: Vec<ServiceSummary> = list
            .iter()
            .map(|(name, source)| ServiceSummary {
                service_name: (*name).into(),
                source: (*source).into(),
                ..Default::default()
            })
            .collect();
        Known::from_summaries(&services)
    }

    #[test]
    fn hints_suggest_list_or_point_at_the_other_source() {
        let k = known(&[("checkout", "otlp"), ("cart", "beyla"), ("cart", "otlp")]);
        assert_eq!(k.names, names(&["cart", "checkout"]));
        assert_eq!(
            hint_for("chekout", None, &k),
            "no data for service 'chekout'; did you mean 'checkout'?"
        );
        assert_eq!(
            hint_for("inventory", None, &k),
            "no data for service 'inventory'; services seen in the last 7 days: cart, checkout"
        );
        assert_eq!(
            hint_for("checkout", Some("beyla"), &k),
            "'checkout' has OTLP data but no Beyla data in the last 7 days: try `coral query otel checkout`"
        );
        assert!(hint_for("cart", Some("otlp"), &k).contains("widen --since"));
        assert!(hint_for("x", None, &Known::default()).starts_with("no service has reported data"));
        let many: Vec<(String, String)> = (0..20)
            .map(|i| (format!("service-number-{i:02}"), "otlp".to_owned()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert!(hint_for("inventory", None, &known(&many)).ends_with("service-number-11, …"));
    }
}
