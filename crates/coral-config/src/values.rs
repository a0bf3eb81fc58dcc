//! Validation of individual setting values, shared by the file, environment
//! and flag layers. Each function returns a human-readable reason on failure;
//! the caller adds where the value came from.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Parses a `host:port` listen address (an IP address; port 0 = any free port).
pub(crate) fn parse_endpoint(s: &str) -> Result<SocketAddr, String> {
    s.trim().parse::<SocketAddr>().map_err(|_| {
        format!(
            "{s:?} is not a valid host:port socket address — use an IP address and a port \
             0–65535, e.g. \"127.0.0.1:4317\", \"0.0.0.0:4317\" or \"[::1]:4317\" (host names \
             such as localhost are not resolved; port 0 picks a free port)"
        )
    })
}

/// Checks an agent id: non-empty, without whitespace or control characters.
pub(crate) fn check_agent_id(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the agent id must not be empty".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the agent id {s:?} contains whitespace or control characters — use e.g. \"web-01\""
        ));
    }
    Ok(s.to_owned())
}

/// Checks a log level directive: any non-empty `tracing` `EnvFilter` string.
pub(crate) fn check_log_level(s: &str) -> Result<String, String> {
    let level = s.trim();
    if level.is_empty() {
        return Err(
            "the log level must not be empty — use e.g. \"info\", \"debug\" or \"coral=debug,info\""
                .to_owned(),
        );
    }
    Ok(level.to_owned())
}

/// Checks a data directory path: non-empty.
pub(crate) fn check_data_dir(s: &str) -> Result<PathBuf, String> {
    if s.trim().is_empty() {
        return Err("the data directory must not be empty".to_owned());
    }
    Ok(PathBuf::from(s))
}

/// Checks a sampling fraction: a finite number in 0.0–1.0.
pub(crate) fn check_sample_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && (0.0..=1.0).contains(&rate) {
        Ok(rate)
    } else {
        Err(format!(
            "sample rate {rate} is out of range — use a fraction from 0.0 (none) to 1.0 (all), e.g. 0.10 for 10%"
        ))
    }
}

/// Parses a sampling fraction from text (environment variables).
pub(crate) fn parse_sample_rate(s: &str) -> Result<f64, String> {
    let rate: f64 = s.trim().parse().map_err(|_| {
        format!("{s:?} is not a number — use a fraction from 0.0 to 1.0, e.g. 0.10 for 10%")
    })?;
    check_sample_rate(rate)
}

/// Parses a boolean from an environment variable: `true`/`false`/`1`/`0`.
pub(crate) fn parse_env_bool(s: &str) -> Result<bool, String> {
    match s.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err("expected true, false, 1 or 0".to_owned()),
    }
}

/// Checks a positive count (at least 1) that fits in `usize`.
pub(crate) fn check_count(n: i128, min: usize) -> Result<usize, String> {
    match usize::try_from(n) {
        Ok(v) if v >= min => Ok(v),
        _ => Err(format!("{n} is out of range — use a whole number ≥ {min}")),
    }
}

/// Compiles an attribute-key scrubbing regex, with a one-line error.
pub(crate) fn compile_regex(pattern: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(pattern).map_err(|err| {
        let text = err.to_string();
        let reason = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("error:"))
            .map(str::trim)
            .unwrap_or(text.as_str())
            .to_owned();
        format!("{pattern:?} is not a valid regular expression: {reason}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_must_be_ip_and_port() {
        assert_eq!(
            parse_endpoint("127.0.0.1:4317").unwrap(),
            "127.0.0.1:4317".parse().unwrap()
        );
        assert_eq!(parse_endpoint("[::1]:0").unwrap().port(), 0);
        for bad in [
            "localhost:4317",
            "127.0.0.1:99999",
            "127.0.0.1",
            ":4317",
            "",
        ] {
            let err = parse_endpoint(bad).unwrap_err();
            assert!(err.contains("not a valid host:port"), "{bad}: {err}");
        }
    }

    #[test]
    fn scalar_checks() {
        assert!(check_agent_id("web 01").is_err());
        assert!(check_agent_id("").is_err());
        assert_eq!(check_agent_id("web-01").unwrap(), "web-01");
        assert_eq!(check_log_level(" debug ").unwrap(), "debug");
        assert!(check_log_level("  ").is_err());
        assert!(check_sample_rate(1.5).is_err());
        assert!(check_sample_rate(f64::NAN).is_err());
        assert_eq!(parse_sample_rate("0"), Ok(0.0));
        assert!(parse_sample_rate("10%").is_err());
        assert_eq!(parse_env_bool("TRUE"), Ok(true));
        assert_eq!(parse_env_bool("0"), Ok(false));
        assert!(parse_env_bool("yes").is_err());
        assert_eq!(check_count(5, 1), Ok(5));
        assert!(check_count(0, 1).is_err());
        assert!(check_count(-3, 0).is_err());
    }

    #[test]
    fn regex_errors_are_one_line() {
        let err = compile_regex("(").unwrap_err();
        assert!(!err.contains('\n'), "{err}");
        assert!(
            err.contains("\"(\"") && err.contains("unclosed group"),
            "{err}"
        );
    }
}
