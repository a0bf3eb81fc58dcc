//! Trace-consistent sampling: the decision depends only on the trace id, so
//! every agent and the colony keep or drop the same traces, whole.
//!
//! The rule is OpenTelemetry's `TraceIdRatioBased` sampler (as the Go SDK that
//! Beyla uses implements it): the last 8 bytes of the trace id, big-endian,
//! shifted right by one, kept when below `rate × 2^63`. Applying it after
//! Beyla's own `traceidratio` sampler at the same rate is therefore idempotent.

/// The decision bound for `rate`: `None` keeps everything (a rate ≥ 1, or
/// NaN); otherwise ids whose low half shifted right by one is below it.
pub fn ratio_bound(rate: f64) -> Option<u64> {
    if rate >= 1.0 || rate.is_nan() {
        return None;
    }
    Some((rate.max(0.0) * (1u64 << 63) as f64) as u64)
}

/// The decision for a 16-byte trace id against a [`ratio_bound`]. An id of
/// another length is kept (it cannot be decided, and dropping data silently
/// is worse).
#[inline]
pub fn keep_id(trace_id: &[u8], bound: Option<u64>) -> bool {
    let (Some(bound), Ok(low)) = (
        bound,
        <[u8; 8]>::try_from(trace_id.get(8..16).unwrap_or(&[])),
    ) else {
        return true;
    };
    trace_id.len() != 16 || (u64::from_be_bytes(low) >> 1) < bound
}

/// True when the trace with this lowercase-hex id is kept at `rate` (0–1).
/// A rate ≥ 1 keeps everything, ≤ 0 nothing; an id that is not 32 hex
/// characters is kept.
pub fn keep_trace(trace_id_hex: &str, rate: f64) -> bool {
    match hex::decode(trace_id_hex) {
        Ok(id) => keep_id(&id, ratio_bound(rate)),
        Err(_) => true,
    }
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
