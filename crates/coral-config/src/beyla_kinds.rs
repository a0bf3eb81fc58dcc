//! Value types of the `beyla:` section: [`PortSet`] (Beyla's `open_ports`
//! syntax), [`UnmatchedRoutes`] and [`BeylaLogLevel`].

use std::fmt;
use std::str::FromStr;

/// A set of TCP ports: sorted, non-overlapping inclusive ranges of ports
/// 1–65535. Displays in Beyla's `open_ports` syntax, e.g. `80,8000-8999`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSet {
    ranges: Vec<(u16, u16)>,
}

impl PortSet {
    /// The set of the given inclusive ranges (merged and sorted); `None`
    /// when empty or when a range is reversed or includes port 0.
    pub fn new(ranges: impl IntoIterator<Item = (u16, u16)>) -> Option<PortSet> {
        let mut ranges: Vec<(u16, u16)> = ranges.into_iter().collect();
        if ranges.is_empty() || ranges.iter().any(|&(a, b)| a == 0 || a > b) {
            return None;
        }
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (a, b) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(a) <= u32::from(last.1) + 1 => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        Some(PortSet { ranges: merged })
    }

    /// The inclusive ranges, sorted and non-overlapping.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }

    /// Whether `port` is in the set.
    pub fn contains(&self, port: u16) -> bool {
        self.ranges.iter().any(|&(a, b)| (a..=b).contains(&port))
    }
}

impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, &(a, b)) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

/// Beyla's `routes.unmatched`: the route reported for a path that no
/// pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnmatchedRoutes {
    /// No route (`unset`).
    Unset,
    /// The raw path; unbounded cardinality (`path`).
    Path,
    /// `/**` (`wildcard`).
    Wildcard,
    /// Segments that look like ids become `*` (`heuristic`).
    Heuristic,
    /// A segment becomes `*` once it has too many distinct values
    /// (`low-cardinality`).
    LowCardinality,
}

impl UnmatchedRoutes {
    /// The accepted spellings (Beyla's), in order.
    pub const NAMES: [&'static str; 5] =
        ["unset", "path", "wildcard", "heuristic", "low-cardinality"];

    /// Beyla's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            UnmatchedRoutes::Unset => "unset",
            UnmatchedRoutes::Path => "path",
            UnmatchedRoutes::Wildcard => "wildcard",
            UnmatchedRoutes::Heuristic => "heuristic",
            UnmatchedRoutes::LowCardinality => "low-cardinality",
        }
    }
}

impl fmt::Display for UnmatchedRoutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for UnmatchedRoutes {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let all = [
            UnmatchedRoutes::Unset,
            UnmatchedRoutes::Path,
            UnmatchedRoutes::Wildcard,
            UnmatchedRoutes::Heuristic,
            UnmatchedRoutes::LowCardinality,
        ];
        all.into_iter()
            .find(|u| u.as_str() == s.trim())
            .ok_or_else(|| {
                format!(
                    "unknown unmatched-route mode {s:?}; expected one of: {}",
                    UnmatchedRoutes::NAMES.join(", ")
                )
            })
    }
}

/// Beyla's own log level (`beyla.log_level`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BeylaLogLevel {
    /// `debug`.
    Debug,
    /// `info`.
    Info,
    /// `warn`.
    Warn,
    /// `error`.
    Error,
}

impl BeylaLogLevel {
    /// The accepted spellings (any case), in order.
    pub const NAMES: [&'static str; 4] = ["debug", "info", "warn", "error"];

    /// The configuration spelling: `debug`, `info`, `warn` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            BeylaLogLevel::Debug => "debug",
            BeylaLogLevel::Info => "info",
            BeylaLogLevel::Warn => "warn",
            BeylaLogLevel::Error => "error",
        }
    }

    /// Beyla's spelling: `DEBUG`, `INFO`, `WARN` or `ERROR`.
    pub fn beyla_name(self) -> &'static str {
        match self {
            BeylaLogLevel::Debug => "DEBUG",
            BeylaLogLevel::Info => "INFO",
            BeylaLogLevel::Warn => "WARN",
            BeylaLogLevel::Error => "ERROR",
        }
    }
}

impl fmt::Display for BeylaLogLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BeylaLogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Ok(BeylaLogLevel::Debug),
            "info" => Ok(BeylaLogLevel::Info),
            "warn" | "warning" => Ok(BeylaLogLevel::Warn),
            "error" => Ok(BeylaLogLevel::Error),
            _ => Err(format!(
                "unknown Beyla log level {s:?}; expected one of: {}",
                BeylaLogLevel::NAMES.join(", ")
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_sets_merge_and_display_in_beyla_syntax() {
        let set = PortSet::new([(9000, 9010), (8080, 8080), (9005, 9020), (8081, 8081)]).unwrap();
        assert_eq!(set.to_string(), "8080-8081,9000-9020");
        assert!(set.contains(9015) && !set.contains(8082));
        assert!(PortSet::new([]).is_none());
        assert!(PortSet::new([(0, 10)]).is_none());
        assert!(PortSet::new([(10, 9)]).is_none());
    }

    #[test]
    fn enums_round_trip() {
        for name in UnmatchedRoutes::NAMES {
            assert_eq!(name.parse::<UnmatchedRoutes>().unwrap().to_string(), name);
        }
        for name in BeylaLogLevel::NAMES {
            assert_eq!(name.parse::<BeylaLogLevel>().unwrap().to_string(), name);
        }
        assert_eq!("WARN".parse::<BeylaLogLevel>(), Ok(BeylaLogLevel::Warn));
        assert!("trace".parse::<BeylaLogLevel>().is_err());
    }
}
