//! Trace-consistent sampling: the decision depends only on the trace id, so
//! every agent and the colony keep or drop the same traces, whole.
//!
//! The rule is OpenTelemetry's `TraceIdRatioBased` sampler (as the Go SDK that
//! Beyla uses implements it): the last 8 bytes of the trace id, big-endian,
//! shifted right by one, kept when below `rate × 2^63`. Applying it after
//! Beyla's own `traceidratio` sampler at the same rate is therefore idempotent.

/// True when the trace with this lowercase-hex id is kept at `rate` (0–1).
/// A rate ≥ 1 keeps everything, ≤ 0 nothing; an id that is not 32 hex
/// characters is kept (it cannot be decided, and dropping data silently is
/// worse).
pub fn keep_trace(trace_id_hex: &str, rate: f64) -> bool {
    if rate >= 1.0 {
        return true;
    }
    if rate <= 0.0 {
        return false;
    }
    let Some(low) = trace_id_hex
        .get(16..32)
        .filter(|_| trace_id_hex.len() == 32)
        .and_then(|s| u64::from_str_radix(s, 16).ok())
    else {
        return true;
    };
    let bound = (rate * (1u64 << 63) as f64) as u64;
    (low >> 1) < bound
}

#[cfg(test)]
mod tests {
    use super::keep_trace;

    #[test]
    fn decides_on_the_low_half_of_the_trace_id() {
        let low = "00000000000000000000000000000000";
        let high = "0000000000000000ffffffffffffffff";
        assert!(keep_trace(low, 0.01));
        assert!(!keep_trace(high, 0.99));
        assert!(keep_trace(high, 1.0));
        assert!(!keep_trace(low, 0.0));
        // Exactly half: 0x7fff… >> 1 is just under 2^62 = 0.5 × 2^63.
        assert!(keep_trace("00000000000000007ffffffffffffffe", 0.5));
        assert!(!keep_trace("00000000000000008000000000000000", 0.5));
        assert!(keep_trace("not-a-trace-id", 0.1));
    }

    #[test]
    fn keeps_about_the_rate() {
        let kept = (0u64..10_000)
            .filter(|i| {
                let id = format!("{:016x}{:016x}", i, i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                keep_trace(&id, 0.25)
            })
            .count();
        assert!((2_300..2_700).contains(&kept), "{kept}");
    }
}
