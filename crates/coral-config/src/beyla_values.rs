//! Validation of individual values of the agent's `beyla:` section and the
//! colony's `storage.beyla` keys. Each function returns a human-readable
//! reason on failure; the caller adds the file, key and line.

/// What a port setting accepts, for errors.
pub(crate) const PORTS_HELP: &str = "a port (8080), a list of ports and ranges as text (\"80,443,8000-8999\") or a YAML list \
     ([80, 443, \"8000-8999\"]), ports 1–65535";

/// Characters with a meaning in Beyla's globs.
const GLOB_CHARS: &[char] = &['*', '?', '[', ']', '{', '}', '\\'];

/// Checks one port given as a number: 1–65535.
pub(crate) fn check_port(n: i128) -> Result<(u16, u16), String> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok((p, p)),
        _ => Err(format!("port {n} is out of range — use {PORTS_HELP}")),
    }
}

/// Parses `"80,443,8000-8999"` into inclusive ranges.
pub(crate) fn parse_port_list(s: &str) -> Result<Vec<(u16, u16)>, String> {
    let port = |text: &str| -> Result<u16, String> {
        match text.trim().parse::<u16>() {
            Ok(p) if p > 0 => Ok(p),
            _ => Err(format!(
                "{:?} in {s:?} is not a port — use {PORTS_HELP}",
                text.trim()
            )),
        }
    };
    let mut ranges = Vec::new();
    for item in s.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(format!("{s:?} has an empty entry — use {PORTS_HELP}"));
        }
        let range = match item.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(item)?;
                (p, p)
            }
        };
        if range.0 > range.1 {
            return Err(format!(
                "the range {item:?} is reversed — write the lower port first, e.g. \"{}-{}\"",
                range.1, range.0
            ));
        }
        ranges.push(range);
    }
    Ok(ranges)
}

/// Checks a service name: non-empty, without control characters.
pub(crate) fn check_service_name(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty() || name.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is not a valid service name — use non-empty text without control \
             characters, e.g. \"checkout-api\""
        ));
    }
    Ok(name.to_owned())
}

/// Checks a Beyla glob (`*` any text, `?` one character, `[abc]`,
/// `{a,b}`, `\` escapes): non-empty, no control characters, brackets and
/// braces balanced.
pub(crate) fn check_glob(s: &str) -> Result<String, String> {
    let glob = s.trim();
    if glob.is_empty() || glob.chars().any(char::is_control) {
        return Err(format!(
            "{s:?} is not a valid pattern — use non-empty text without control characters; \
             `*` matches any text, e.g. \"*checkout*\""
        ));
    }
    let (mut brackets, mut braces, mut escaped) = (0i32, 0i32, false);
    for c in glob.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => brackets += 1,
            ']' => brackets -= 1,
            '{' => braces += 1,
            '}' => braces -= 1,
            _ => {}
        }
        if brackets < 0 || braces < 0 {
            break;
        }
    }
    if brackets != 0 || braces != 0 || escaped {
        return Err(format!(
            "{s:?} is not a valid pattern: unbalanced `[]`, `{{}}` or a trailing `\\` — escape \
             literal characters with `\\`, e.g. \"*app\\[1\\]*\""
        ));
    }
    Ok(glob.to_owned())
}

/// Turns `process_name: checkout` into the executable-path glob
/// `*/checkout` (an executable named exactly `checkout`, in any directory).
pub(crate) fn process_name_glob(s: &str) -> Result<String, String> {
    let name = s.trim();
    if name.is_empty()
        || name.contains('/')
        || name.contains(GLOB_CHARS)
        || name.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(format!(
            "{s:?} is not an executable name — give the file name only, e.g. \"checkout\"; for \
             a path or a pattern use `exe_path` instead, e.g. \"*checkout*\""
        ));
    }
    Ok(format!("*/{name}"))
}

/// Checks a Kubernetes label name: `[prefix/]name` of letters, digits,
/// `.`, `_`, `-`.
pub(crate) fn check_label_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/'));
    if !ok {
        return Err(format!(
            "{s:?} is not a Kubernetes label name — use letters, digits, `.`, `_`, `-` and an \
             optional `prefix/`, e.g. app or app.kubernetes.io/name"
        ));
    }
    Ok(s.to_owned())
}

/// Resource attributes Coral sets itself or that would mislabel every
/// service.
const RESERVED_ATTRIBUTES: [(&str, &str); 2] = [
    (
        "service.name",
        "it would give every instrumented process the same name — name services with \
         `beyla.discovery.services[].name`",
    ),
    (
        "coral.agent.id",
        "Coral sets it to the agent id — set `agent.id` instead",
    ),
];

/// Checks a resource attribute key: letters, digits, `.`, `_`, `-`; not
/// reserved.
pub(crate) fn check_attribute_key(s: &str) -> Result<String, String> {
    if let Some((_, why)) = RESERVED_ATTRIBUTES.iter().find(|(k, _)| *k == s) {
        return Err(format!("the attribute {s:?} cannot be set here: {why}"));
    }
    let ok = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !ok {
        return Err(format!(
            "{s:?} is not a valid attribute name — use letters, digits, `.`, `_` and `-`, e.g. \
             deployment.environment"
        ));
    }
    Ok(s.to_owned())
}

/// Checks a resource attribute value: any text without control characters.
pub(crate) fn check_attribute_value(s: &str) -> Result<String, String> {
    if s.chars().any(char::is_control) {
        return Err("the value contains control characters — use plain text".to_owned());
    }
    Ok(s.to_owned())
}

/// Checks an HTTP route pattern: starts with `/`, no whitespace.
pub(crate) fn check_route(s: &str) -> Result<String, String> {
    let route = s.trim();
    if !route.starts_with('/') || route.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "{s:?} is not a route pattern — start with `/` and mark variable segments as \
             `:name` or `{{name}}`, e.g. \"/api/v1/users/:id\"; a trailing `*` matches the rest"
        ));
    }
    Ok(route.to_owned())
}

/// Checks a trace sampling fraction: greater than 0, at most 1.
pub(crate) fn check_trace_rate(rate: f64) -> Result<f64, String> {
    if rate.is_finite() && rate > 0.0 && rate <= 1.0 {
        Ok(rate)
    } else {
        Err(format!(
            "{rate} is out of range — use a fraction greater than 0 and at most 1, e.g. 0.25 for \
             25% of traces"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_lists() {
        assert_eq!(
            parse_port_list("8080, 9000-9010").unwrap(),
            [(8080, 8080), (9000, 9010)]
        );
        assert!(parse_port_list("0").unwrap_err().contains("\"0\""));
        assert!(
            parse_port_list("80,,90")
                .unwrap_err()
                .contains("empty entry")
        );
        assert!(parse_port_list("90-80").unwrap_err().contains("\"80-90\""));
        assert!(parse_port_list("70000").is_err());
        assert!(check_port(65536).is_err());
        assert_eq!(check_port(443), Ok((443, 443)));
    }

    #[test]
    fn globs_names_and_keys() {
        assert_eq!(check_glob(" *checkout* ").unwrap(), "*checkout*");
        assert!(check_glob("app[1").is_err());
        assert!(check_glob("a}").is_err());
        assert!(check_glob("x\\").is_err());
        assert_eq!(check_glob("app\\[1").unwrap(), "app\\[1");
        assert_eq!(process_name_glob("checkout").unwrap(), "*/checkout");
        assert!(process_name_glob("/usr/bin/x").is_err());
        assert!(process_name_glob("check*").is_err());
        assert!(check_label_name("app.kubernetes.io/name").is_ok());
        assert!(check_label_name("a b").is_err());
        assert!(
            check_attribute_key("service.name")
                .unwrap_err()
                .contains("discovery")
        );
        assert!(check_attribute_key("env=x").is_err());
        assert!(check_route("api/x").is_err());
        assert!(check_trace_rate(0.0).is_err());
        assert!(check_trace_rate(f64::NAN).is_err());
        assert_eq!(check_trace_rate(1.0), Ok(1.0));
    }
}
