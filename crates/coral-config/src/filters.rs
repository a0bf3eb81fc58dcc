//! The `agent.telemetry.filters` list.
//!
//! Each item is a single-key mapping, one of:
//!
//! - `always_capture: errors` — keep error spans;
//! - `always_capture: latency_gt_ms:<ms>` — keep spans slower than `<ms>`
//!   milliseconds (may be fractional);
//! - `sample_rate: <r>` — keep fraction `r` (0.0–1.0) of the remaining spans.
//!
//! Without the key the defaults apply ([`FilterConfig::DEFAULT`]); with a list
//! only the listed rules are on, so `filters: []` stores no raw spans.

use crate::ConfigError;
use crate::ctx::FileCtx;
use crate::error::closest;
use crate::types::FilterConfig;
use crate::values;
use crate::yaml::{Node, Value};

const ACCEPTED: &str = "accepted rules: `always_capture: errors`, \
     `always_capture: latency_gt_ms:<milliseconds>` (e.g. latency_gt_ms:500), \
     `sample_rate: <0.0–1.0>` (e.g. sample_rate: 0.10)";

const LATENCY_PREFIX: &str = "latency_gt_ms:";

/// One parsed list item.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    Errors,
    Latency(f64),
    Sample(f64),
}

impl Rule {
    /// Slot index used to detect a rule listed twice.
    fn slot(self) -> usize {
        match self {
            Rule::Errors => 0,
            Rule::Latency(_) => 1,
            Rule::Sample(_) => 2,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Rule::Errors => "always_capture: errors",
            Rule::Latency(_) => "always_capture: latency_gt_ms",
            Rule::Sample(_) => "sample_rate",
        }
    }
}

/// Parses the `filters` list at `key`.
pub(crate) fn parse(f: &FileCtx, node: &Node, key: &str) -> Result<FilterConfig, ConfigError> {
    let items = match &node.value {
        Value::Seq(items) => items,
        Value::Null => {
            let msg = format!(
                "has no value — list the rules to enable, write `filters: []` to store no raw \
                 spans, or remove the key for the defaults (errors, latency_gt_ms:500, \
                 sample_rate 0.10); {ACCEPTED}"
            );
            return Err(f.invalid(key, node, msg));
        }
        other => {
            let msg = format!(
                "expected a list of rules, found {}; {ACCEPTED}",
                other.describe()
            );
            return Err(f.invalid(key, node, msg));
        }
    };
    let mut config = FilterConfig::NONE;
    let mut seen: [Option<usize>; 3] = [None; 3];
    for (i, item) in items.iter().enumerate() {
        let item_key = format!("{key}[{i}]");
        let rule = parse_rule(f, item, &item_key)?;
        if let Some(first) = seen[rule.slot()] {
            let msg = format!(
                "the rule `{}` is listed twice (also at {key}[{first}]) — keep only one",
                rule.name()
            );
            return Err(f.invalid(&item_key, item, msg));
        }
        seen[rule.slot()] = Some(i);
        match rule {
            Rule::Errors => config.keep_errors = true,
            Rule::Latency(ms) => config.latency_threshold_ms = Some(ms),
            Rule::Sample(rate) => config.sample_rate = rate,
        }
    }
    Ok(config)
}

fn parse_rule(f: &FileCtx, item: &Node, key: &str) -> Result<Rule, ConfigError> {
    let bad = |msg: String| f.invalid(key, item, msg);
    let (rule_key, value) = match &item.value {
        Value::Map(entries) if entries.len() == 1 => (&entries[0].0.value, &entries[0].1),
        Value::Map(entries) => {
            let keys: Vec<&str> = entries.iter().map(|(k, _)| k.value.as_str()).collect();
            return Err(bad(format!(
                "each rule must be its own list item with a single key, found keys {} — \
                 start each rule with `- `; {ACCEPTED}",
                keys.join(", ")
            )));
        }
        other => {
            return Err(bad(format!(
                "expected a rule, found {}; {ACCEPTED}",
                other.describe()
            )));
        }
    };
    match rule_key.as_str() {
        "always_capture" => match &value.value {
            Value::Str(s) if s.trim() == "errors" => Ok(Rule::Errors),
            Value::Str(s) if s.trim().starts_with(LATENCY_PREFIX) => {
                let ms_text = s.trim()[LATENCY_PREFIX.len()..].trim();
                match ms_text.parse::<f64>() {
                    Ok(ms) if ms.is_finite() && ms >= 0.0 => Ok(Rule::Latency(ms)),
                    _ => Err(bad(format!(
                        "`always_capture: {s}`: the latency threshold must be a number of \
                         milliseconds ≥ 0, e.g. latency_gt_ms:500"
                    ))),
                }
            }
            other => Err(bad(format!(
                "unknown `always_capture` value {}; {ACCEPTED}",
                describe_scalar(other)
            ))),
        },
        "sample_rate" => {
            let rate = match value.value {
                Value::Float(x) => x,
                Value::Int(n) => n as f64,
                ref other => {
                    return Err(bad(format!(
                        "`sample_rate` expects a number from 0.0 to 1.0, found {}",
                        other.describe()
                    )));
                }
            };
            values::check_sample_rate(rate)
                .map(Rule::Sample)
                .map_err(bad)
        }
        other => {
            let hint = closest(other, &["always_capture", "sample_rate"])
                .map(|s| format!(" (did you mean `{s}`?)"))
                .unwrap_or_default();
            Err(bad(format!(
                "unknown filter rule `{other}`{hint}; {ACCEPTED}"
            )))
        }
    }
}

/// `"warnings"` for strings, otherwise the generic description.
fn describe_scalar(value: &Value) -> String {
    match value {
        Value::Str(s) => format!("{s:?}"),
        other => other.describe(),
    }
}
