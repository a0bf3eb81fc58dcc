//! Validation of individual setting values, shared by the file, environment
//! and flag layers. Each function returns a human-readable reason on failure;
//! the caller adds where the value came from.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    check_id(s, "agent id", "web-01")
}

/// Checks a colony id: the same rules as an agent id.
pub(crate) fn check_colony_id(s: &str) -> Result<String, String> {
    check_id(s, "colony id", "main")
}

/// Checks an identity (`what`, e.g. "agent id"): non-empty, without
/// whitespace or control characters.
pub(crate) fn check_id(s: &str, what: &str, example: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err(format!("the {what} must not be empty"));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "the {what} {s:?} contains whitespace or control characters — use e.g. \"{example}\""
        ));
    }
    Ok(s.to_owned())
}

/// Checks a TLS server name override: non-empty, no whitespace or control characters.
pub(crate) fn check_server_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} is not a valid TLS server name — use the host name in the server's \
             certificate, e.g. \"colony.internal\""
        ));
    }
    Ok(name.to_owned())
}

/// Checks a duration against `min` (and `max`, if any).
///
/// A `min` of at most 1 ms reads "must be longer than 0".
pub(crate) fn check_duration(
    d: Duration,
    min: Duration,
    max: Option<Duration>,
) -> Result<Duration, String> {
    if d < min {
        if min <= Duration::from_millis(1) {
            return Err("must be longer than 0".to_owned());
        }
        return Err(format!(
            "{} is too short — must be at least {}",
            format_duration(d),
            format_duration(min)
        ));
    }
    if let Some(max) = max.filter(|max| d > *max) {
        return Err(format!(
            "{} is too long — must be at most {}",
            format_duration(d),
            format_duration(max)
        ));
    }
    Ok(d)
}

/// Renders a duration in the configuration syntax, in the largest unit that
/// divides it exactly: `2d`, `1h`, `90s`, `500ms`.
pub(crate) fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
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

/// Checks a count in `min..=max` that fits in `usize`.
pub(crate) fn check_count_in(n: i128, min: usize, max: usize) -> Result<usize, String> {
    match usize::try_from(n) {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(format!(
            "{n} is out of range — use a whole number from {min} to {max}"
        )),
    }
}

/// Checks a shared-secret token: non-empty printable ASCII without spaces
/// (it is sent as an `authorization: Bearer <token>` header). Surrounding
/// whitespace is trimmed. The token itself never appears in the message.
pub(crate) fn check_token(s: &str) -> Result<String, String> {
    let token = s.trim();
    if token.is_empty() {
        return Err("the token must not be empty".to_owned());
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the token contains spaces, control or non-ASCII characters — use printable ASCII \
             without spaces (it is sent as an `authorization: Bearer <token>` header), e.g. the \
             output of `openssl rand -hex 32`"
                .to_owned(),
        );
    }
    Ok(token.to_owned())
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
    fn durations_counts_and_tokens() {
        let s = Duration::from_secs;
        assert_eq!(check_duration(s(5), s(1), None), Ok(s(5)));
        assert_eq!(
            check_duration(Duration::from_millis(500), s(1), Some(s(3600))).unwrap_err(),
            "500ms is too short — must be at least 1s"
        );
        assert!(
            check_duration(s(7200), s(1), Some(s(3600)))
                .unwrap_err()
                .contains("at most 1h")
        );
        assert_eq!(
            check_duration(Duration::ZERO, Duration::from_millis(1), None).unwrap_err(),
            "must be longer than 0"
        );
        assert_eq!(format_duration(s(172_800)), "2d");
        assert_eq!(format_duration(s(90)), "90s");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(check_count_in(5, 1, 10), Ok(5));
        assert!(
            check_count_in(11, 1, 10)
                .unwrap_err()
                .contains("from 1 to 10")
        );
        assert_eq!(check_token(" s3cret\n").unwrap(), "s3cret");
        assert!(check_token("  ").is_err());
        let err = check_token("has space").unwrap_err();
        assert!(!err.contains("has space"), "never echo the token: {err}");
        assert!(check_server_name("a b").is_err());
        assert_eq!(check_colony_id("main").unwrap(), "main");
        assert!(check_colony_id("").unwrap_err().contains("colony id"));
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
