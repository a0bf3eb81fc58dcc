//! Parsing of durations (`"30s"`, `"1h"`) and byte sizes (`"16MiB"`).

use std::time::Duration;

const DURATION_HELP: &str = "expected a whole number followed by a unit (ms, s, m, h, d), \
     e.g. \"500ms\", \"30s\", \"5m\", \"1h\", \"2d\", or a bare number of seconds";

const SIZE_HELP: &str = "expected a whole number of bytes, optionally followed by KiB, MiB or \
     GiB, e.g. 16777216, \"512KiB\", \"16MiB\"";

/// Parses a duration: a whole number followed by a unit — `ms`, `s`, `m`,
/// `h` or `d` (e.g. `"500ms"`, `"30s"`, `"5m"`, `"1h"`, `"2d"`) — or a bare
/// whole number meaning seconds (`"90"`). Surrounding whitespace and a space
/// between number and unit are allowed.
///
/// The error is a human-readable description of what is accepted.
///
/// ```
/// use std::time::Duration;
/// assert_eq!(coral_config::parse_duration("1h"), Ok(Duration::from_secs(3600)));
/// assert_eq!(coral_config::parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(coral_config::parse_duration("45"), Ok(Duration::from_secs(45)));
/// assert!(coral_config::parse_duration("1.5h").is_err());
/// ```
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let text = s.trim();
    let (number, unit) = split_number(text);
    let invalid = || format!("invalid duration {s:?}: {DURATION_HELP}");
    if number.is_empty() {
        return Err(invalid());
    }
    let n: u64 = number.parse().map_err(|_| invalid())?;
    let per_unit_ms: u64 = match unit.trim_start() {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(invalid()),
    };
    n.checked_mul(per_unit_ms)
        .map(Duration::from_millis)
        .ok_or_else(|| format!("invalid duration {s:?}: too large"))
}

/// Parses a byte size: a whole number of bytes, optionally followed by
/// `KiB`, `MiB` or `GiB` (case-insensitive), e.g. `"512KiB"`, `"16MiB"`.
pub(crate) fn parse_byte_size(s: &str) -> Result<usize, String> {
    let text = s.trim();
    let (number, unit) = split_number(text);
    if number.is_empty() {
        return Err(format!("invalid size {s:?}: {SIZE_HELP}"));
    }
    let n: usize = number
        .parse()
        .map_err(|_| format!("invalid size {s:?}: {SIZE_HELP}"))?;
    let multiplier: usize = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "kb" | "mb" | "gb" | "k" | "m" | "g" => {
            return Err(format!(
                "invalid size {s:?}: use binary units KiB, MiB or GiB (1 MiB = 1048576 bytes)"
            ));
        }
        _ => return Err(format!("invalid size {s:?}: {SIZE_HELP}")),
    };
    n.checked_mul(multiplier)
        .ok_or_else(|| format!("invalid size {s:?}: too large"))
}

/// Splits `"30s"` into `("30", "s")`.
fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    text.split_at(end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_with_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 10 s "), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_explain_the_format() {
        for bad in ["", "s", "1.5h", "-1s", "1w", "1hour", "1h30m", "h1"] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("\"500ms\""), "{bad:?}: {err}");
            assert!(err.contains(&format!("{bad:?}")), "{bad:?}: {err}");
        }
        assert!(parse_duration("99999999999999999999d").is_err());
        assert!(
            parse_duration("18446744073709551615d")
                .unwrap_err()
                .contains("too large")
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("16777216"), Ok(16 << 20));
        assert_eq!(parse_byte_size("16MiB"), Ok(16 << 20));
        assert_eq!(parse_byte_size("512 KiB"), Ok(512 << 10));
        assert_eq!(parse_byte_size("1gib"), Ok(1 << 30));
        assert!(parse_byte_size("4MB").unwrap_err().contains("binary units"));
        assert!(parse_byte_size("lots").unwrap_err().contains("16MiB"));
        assert!(parse_byte_size("1.5MiB").is_err());
    }
}
