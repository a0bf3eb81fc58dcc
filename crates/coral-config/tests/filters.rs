//! The `agent.telemetry.filters` list: every form, turning rules off, errors.

mod common;

use common::{assert_contains_all, error_of, load_str};
use coral_config::FilterConfig;

fn filters(list: &str) -> FilterConfig {
    let yaml = format!("agent:\n  telemetry:\n    filters: {list}\n");
    load_str(&yaml)
        .unwrap_or_else(|e| panic!("{list}: {e}"))
        .telemetry
        .filters
}

fn filter_error(list: &str) -> String {
    error_of(&format!("agent:\n  telemetry:\n    filters: {list}\n"))
}

#[test]
fn absent_list_means_the_defaults() {
    assert_eq!(
        load_str("").unwrap().telemetry.filters,
        FilterConfig::DEFAULT
    );
}

#[test]
fn each_form_alone() {
    let errors = filters("[{always_capture: errors}]");
    assert_eq!(
        errors,
        FilterConfig {
            keep_errors: true,
            ..FilterConfig::NONE
        }
    );

    let latency = filters("[{always_capture: \"latency_gt_ms:750\"}]");
    assert_eq!(latency.latency_threshold_ms, Some(750.0));
    assert!(!latency.keep_errors);
    assert_eq!(latency.sample_rate, 0.0);

    let fractional = filters("[{always_capture: \"latency_gt_ms:12.5\"}]");
    assert_eq!(fractional.latency_threshold_ms, Some(12.5));

    let sampled = filters("[{sample_rate: 0.25}]");
    assert_eq!(
        sampled,
        FilterConfig {
            sample_rate: 0.25,
            ..FilterConfig::NONE
        }
    );
}

#[test]
fn block_list_form_from_the_seed() {
    let yaml = "agent:\n  telemetry:\n    filters:\n      - always_capture: errors\n      - always_capture: latency_gt_ms:500\n      - sample_rate: 0.10  # 10%\n";
    assert_eq!(
        load_str(yaml).unwrap().telemetry.filters,
        FilterConfig::DEFAULT
    );
}

#[test]
fn rules_can_be_turned_off() {
    // Only sampling: errors and latency rules are off.
    let all = filters("[{sample_rate: 1.0}]");
    assert_eq!(
        all,
        FilterConfig {
            keep_errors: false,
            latency_threshold_ms: None,
            sample_rate: 1.0
        }
    );
    // Integer sample rates are accepted.
    assert_eq!(filters("[{sample_rate: 1}]").sample_rate, 1.0);
    assert_eq!(filters("[{sample_rate: 0}]").sample_rate, 0.0);
    // An empty list keeps nothing.
    assert_eq!(filters("[]"), FilterConfig::NONE);
}

#[test]
fn unknown_always_capture_value() {
    let msg = filter_error("[{always_capture: errors}, {always_capture: warnings}]");
    assert_contains_all(
        &msg,
        &[
            "agent.yaml",
            "`agent.telemetry.filters[1]`",
            "\"warnings\"",
            "accepted rules",
        ],
    );
}

#[test]
fn misspelled_rule_key_gets_a_suggestion() {
    let msg = filter_error("[{sample_rte: 0.1}]");
    assert_contains_all(
        &msg,
        &[
            "`agent.telemetry.filters[0]`",
            "unknown filter rule `sample_rte`",
            "did you mean `sample_rate`?",
        ],
    );
}

#[test]
fn out_of_range_and_malformed_values() {
    let cases = [
        ("[{sample_rate: 1.5}]", "out of range"),
        ("[{sample_rate: -0.1}]", "out of range"),
        (
            "[{sample_rate: \"10%\"}]",
            "expects a number from 0.0 to 1.0",
        ),
        ("[{always_capture: \"latency_gt_ms:-5\"}]", "≥ 0"),
        (
            "[{always_capture: \"latency_gt_ms:fast\"}]",
            "number of milliseconds",
        ),
        ("[{always_capture: 3}]", "the number 3"),
    ];
    for (list, expected) in cases {
        let msg = filter_error(list);
        assert_contains_all(&msg, &["`agent.telemetry.filters[0]`", expected]);
    }
}

#[test]
fn item_shape_errors() {
    let two_keys = filter_error("[{always_capture: errors, sample_rate: 0.1}]");
    assert_contains_all(
        &two_keys,
        &["filters[0]", "single key", "always_capture, sample_rate"],
    );

    let bare = filter_error("[errors]");
    assert_contains_all(&bare, &["filters[0]", "expected a rule", "\"errors\""]);

    let not_list = filter_error("{sample_rate: 0.1}");
    assert_contains_all(
        &not_list,
        &["`agent.telemetry.filters`", "expected a list of rules"],
    );
}

#[test]
fn empty_value_is_ambiguous_and_rejected() {
    let msg = error_of("agent:\n  telemetry:\n    filters:\n");
    assert_contains_all(
        &msg,
        &[
            "`agent.telemetry.filters` (line 3)",
            "has no value",
            "filters: []",
        ],
    );
}

#[test]
fn duplicate_rules_are_rejected() {
    let msg = filter_error("[{sample_rate: 0.1}, {always_capture: errors}, {sample_rate: 0.2}]");
    assert_contains_all(
        &msg,
        &["`agent.telemetry.filters[2]`", "listed twice", "filters[0]"],
    );
}
