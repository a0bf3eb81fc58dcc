//! Time windows (`[from, to)` in Unix seconds, minute-aligned by the
//! engine), RFC 3339 formatting and the small duration grammar of questions.

use std::time::{Duration, UNIX_EPOCH};

use serde::Serialize;

/// Seconds in a minute.
pub const MINUTE: i64 = 60;

/// A half-open time window `[from, to)`, Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Window {
    /// Start, inclusive.
    pub from: i64,
    /// End, exclusive.
    pub to: i64,
}

impl Window {
    /// A window from its bounds.
    pub fn new(from: i64, to: i64) -> Window {
        Window { from, to }
    }

    /// Length in seconds (0 when empty).
    pub fn seconds(&self) -> i64 {
        (self.to - self.from).max(0)
    }

    /// Length in whole minutes, at least 1 for a non-empty window.
    pub fn minutes(&self) -> i64 {
        if self.seconds() == 0 {
            0
        } else {
            ((self.seconds() + MINUTE - 1) / MINUTE).max(1)
        }
    }

    /// True when `t` (Unix seconds) lies inside.
    pub fn contains(&self, t: i64) -> bool {
        t >= self.from && t < self.to
    }

    /// True when `t_ns` (Unix nanoseconds) lies inside.
    pub fn contains_ns(&self, t_ns: i64) -> bool {
        self.contains(t_ns.div_euclid(1_000_000_000))
    }

    /// The minute starts inside the window.
    pub fn minute_starts(&self) -> impl Iterator<Item = i64> + use<> {
        let first = floor_minute(self.from);
        let to = self.to;
        (0..)
            .map(move |k| first + k * MINUTE)
            .take_while(move |&m| m < to)
    }
}

impl Serialize for Window {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Window", 2)?;
        st.serialize_field("from", &rfc3339(self.from))?;
        st.serialize_field("to", &rfc3339(self.to))?;
        st.end()
    }
}

impl<'de> serde::Deserialize<'de> for Window {
    /// Reads what [`Serialize`] writes: `{"from": T, "to": T}`, RFC 3339.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Window, D::Error> {
        #[derive(serde::Deserialize)]
        struct Bounds {
            from: String,
            to: String,
        }
        let b = Bounds::deserialize(d)?;
        let at = |text: &str| {
            parse_rfc3339(text).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not an RFC 3339 time"))
            })
        };
        Ok(Window::new(at(&b.from)?, at(&b.to)?))
    }
}

/// The start of the minute holding `t`.
pub fn floor_minute(t: i64) -> i64 {
    t.div_euclid(MINUTE) * MINUTE
}

/// `t` (Unix seconds) as RFC 3339 UTC, e.g. `2026-11-21T14:23:00Z`.
pub fn rfc3339(t: i64) -> String {
    let at = if t >= 0 {
        UNIX_EPOCH + Duration::from_secs(t as u64)
    } else {
        UNIX_EPOCH
    };
    humantime::format_rfc3339_seconds(at).to_string()
}

/// `HH:MM` of `t`, UTC, for text output.
pub fn clock(t: i64) -> String {
    let day = t.rem_euclid(86_400);
    format!("{:02}:{:02}", day / 3600, day % 3600 / 60)
}

/// Parses an RFC 3339 time into Unix seconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let at = humantime::parse_rfc3339_weak(text).ok()?;
    Some(at.duration_since(UNIX_EPOCH).ok()?.as_secs() as i64)
}

/// Parses a duration such as `30m`, `90s`, `2h`, `1d`, `30min`, `2hours`
/// into seconds; `unit` alone (e.g. `hour`) may follow a separate number.
pub fn parse_duration(number: &str, unit: &str) -> Option<i64> {
    let n: f64 = if number.is_empty() {
        1.0
    } else {
        number.parse().ok()?
    };
    let scale = match unit {
        "s" | "sec" | "secs" | "second" | "seconds" => 1.0,
        "m" | "min" | "mins" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hrs" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        _ => return None,
    };
    let secs = n * scale;
    (secs.is_finite() && secs > 0.0).then_some(secs.round() as i64)
}

/// Splits `30m` into (`30`, `m`); a word without digits is all unit.
pub fn split_number(token: &str) -> (&str, &str) {
    let at = token
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(token.len());
    token.split_at(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_rfc3339() {
        assert_eq!(rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
        assert_eq!(parse_rfc3339("2026-11-18T11:06:40Z"), Some(1_795_000_000));
        assert_eq!(clock(1_795_000_000), "11:06");
    }

    #[test]
    fn reads_durations() {
        assert_eq!(parse_duration("30", "m"), Some(1800));
        assert_eq!(parse_duration("", "hour"), Some(3600));
        assert_eq!(parse_duration("2", "days"), Some(172_800));
        assert_eq!(parse_duration("0", "m"), None);
        assert_eq!(split_number("30min"), ("30", "min"));
    }

    #[test]
    fn windows_count_minutes() {
        let w = Window::new(600, 1200);
        assert_eq!(w.minutes(), 10);
        assert_eq!(w.minute_starts().count(), 10);
        assert!(w.contains(600) && !w.contains(1200));
    }
}
