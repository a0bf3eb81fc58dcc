//! Static filters: which raw spans are stored.
//!
//! Filters never affect RED numbers: every span is aggregated before this
//! decision. A span is kept when any enabled rule matches, checked in order:
//!
//! 1. `always_capture: errors` — the span is an error;
//! 2. `always_capture: latency_gt_ms:N` — its duration is strictly above N ms;
//! 3. `sample_rate: R` — its **trace id** falls in the sampled fraction R.
//!
//! Sampling is decided from the trace id alone (the same rule as the
//! OpenTelemetry `TraceIdRatioBased` sampler: the low 8 bytes of the id, shifted
//! right by one, compared with `R * 2^63`), so every agent keeps or drops all
//! spans of a trace together and kept traces are whole.

use coral_config::FilterConfig;

use crate::normalize::SpanFacts;

/// Why a span was kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// The span is an error.
    Error,
    /// The span is slower than the latency threshold.
    Latency,
    /// The span's trace is in the sampled fraction.
    Sampled,
}

impl KeepReason {
    /// The stored name: `error`, `latency` or `sampled`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeepReason::Error => "error",
            KeepReason::Latency => "latency",
            KeepReason::Sampled => "sampled",
        }
    }
}

/// The compiled static filters.
#[derive(Debug, Clone)]
pub struct StaticFilter {
    keep_errors: bool,
    latency_threshold_ms: Option<f64>,
    /// Sampled when `(low 8 bytes of trace id) >> 1 < sample_bound`; `None`
    /// samples everything.
    sample_bound: Option<u64>,
}

impl StaticFilter {
    /// Compiles the configured rules.
    pub fn new(config: &FilterConfig) -> StaticFilter {
        let sample_bound = coral_model::sampling::ratio_bound(config.sample_rate.clamp(0.0, 1.0));
        StaticFilter {
            keep_errors: config.keep_errors,
            latency_threshold_ms: config.latency_threshold_ms,
            sample_bound,
        }
    }

    /// Decides whether to keep a span, and why.
    pub fn decide(&self, facts: &SpanFacts) -> Option<KeepReason> {
        if self.keep_errors && facts.is_error {
            return Some(KeepReason::Error);
        }
        if let Some(threshold) = self.latency_threshold_ms
            && facts.duration_ms > threshold
        {
            return Some(KeepReason::Latency);
        }
        if self.trace_sampled(&facts.trace_id) {
            return Some(KeepReason::Sampled);
        }
        None
    }

    /// Whether a trace falls in the sampled fraction.
    pub fn trace_sampled(&self, trace_id: &[u8; 16]) -> bool {
        coral_model::sampling::keep_id(trace_id, self.sample_bound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coral_model::SpanKind;

    fn facts(trace: u128, ms: f64, is_error: bool) -> SpanFacts {
        SpanFacts {
            kind: SpanKind::Server,
            start_ns: 1,
            duration_ms: ms,
            is_error,
            trace_id: trace.to_be_bytes(),
        }
    }

    fn filter(keep_errors: bool, latency: Option<f64>, rate: f64) -> StaticFilter {
        StaticFilter::new(&FilterConfig {
            keep_errors,
            latency_threshold_ms: latency,
            sample_rate: rate,
        })
    }

    #[test]
    fn rules_apply_in_order_and_can_be_turned_off() {
        let f = filter(true, Some(500.0), 0.0);
        assert_eq!(f.decide(&facts(7, 10.0, true)), Some(KeepReason::Error));
        assert_eq!(f.decide(&facts(7, 500.1, false)), Some(KeepReason::Latency));
        assert_eq!(
            f.decide(&facts(7, 500.0, false)),
            None,
            "threshold is strict"
        );
        let off = filter(false, None, 0.0);
        assert_eq!(off.decide(&facts(7, 9999.0, true)), None);
        let all = filter(false, None, 1.0);
        assert_eq!(all.decide(&facts(7, 1.0, false)), Some(KeepReason::Sampled));
    }

    #[test]
    fn sampling_is_by_trace_and_close_to_the_rate() {
        let f = filter(false, None, 0.10);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut kept = 0;
        let n = 100_000;
        for _ in 0..n {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let trace = ((state as u128) << 64) | state.rotate_left(17) as u128;
            let decision = f.decide(&facts(trace, 1.0, false)).is_some();
            // Same trace, different span: same decision.
            assert_eq!(decision, f.decide(&facts(trace, 300.0, false)).is_some());
            kept += usize::from(decision);
        }
        let rate = kept as f64 / n as f64;
        assert!((rate - 0.10).abs() < 0.01, "sampled fraction {rate}");
    }
}
