//! Addresses Coral dials (the colony from an agent, agents from the colony):
//! `host:port`, `http://host:port` or `https://host:port`.
//!
//! Unlike listen addresses these may use host names. They are normalized to
//! `http://host:port` or `https://host:port`; the scheme of a bare
//! `host:port` is decided by the caller (TLS configured or not).

/// What is accepted, appended to every error.
const ACCEPTED: &str = "use host:port, http://host:port or https://host:port, e.g. \
     \"10.0.0.5:9000\", \"colony.internal:9000\" or \"https://[fd00::5]:9000\"";

/// An explicit URL scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scheme {
    /// `http://`
    Http,
    /// `https://`
    Https,
}

/// A parsed dial address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DialTarget {
    /// The scheme, when one was written.
    pub(crate) scheme: Option<Scheme>,
    /// Host name, IPv4 address, or bracketed IPv6 address (`[::1]`).
    pub(crate) host: String,
    /// Port, 1–65535.
    pub(crate) port: u16,
}

impl DialTarget {
    /// Whether `https://` was written explicitly.
    pub(crate) fn is_https(&self) -> bool {
        self.scheme == Some(Scheme::Https)
    }

    /// `https://host:port` when `https`, else `http://host:port`.
    pub(crate) fn url(&self, https: bool) -> String {
        let scheme = if https { "https" } else { "http" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }

    /// The normalized URL keeping an explicit scheme; a bare `host:port`
    /// becomes `https://` when `tls_default`, else `http://`.
    pub(crate) fn url_or(&self, tls_default: bool) -> String {
        match self.scheme {
            Some(scheme) => self.url(scheme == Scheme::Https),
            None => self.url(tls_default),
        }
    }
}

/// Parses a dial address; the error explains what is wrong and what is accepted.
pub(crate) fn parse_dial_target(s: &str) -> Result<DialTarget, String> {
    let fail = |reason: String| format!("{s:?} is not a valid endpoint: {reason} — {ACCEPTED}");
    let text = s.trim();
    let (scheme, rest) = match text.split_once("://") {
        Some((scheme, rest)) => match scheme.to_ascii_lowercase().as_str() {
            "http" => (Some(Scheme::Http), rest),
            "https" => (Some(Scheme::Https), rest),
            other => return Err(fail(format!("unsupported scheme `{other}://`"))),
        },
        None => (None, text),
    };
    // A single trailing slash is harmless; anything after it is a path.
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if let Some(i) = rest.find(['/', '?', '#']) {
        return Err(fail(format!(
            "paths, queries and fragments are not allowed (found `{}`)",
            &rest[i..]
        )));
    }
    if rest.contains('@') {
        return Err(fail("user names are not allowed".to_owned()));
    }
    if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(fail("it contains whitespace".to_owned()));
    }
    let (host, port) = split_host_port(rest).map_err(fail)?;
    Ok(DialTarget { scheme, host, port })
}

/// Splits `host:port` / `[v6]:port` and validates both parts; host names
/// are lower-cased.
pub(crate) fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(after) = text.strip_prefix('[') {
        let (v6, tail) = after
            .split_once(']')
            .ok_or_else(|| "the IPv6 address has no closing `]`".to_owned())?;
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return Err(format!("`[{v6}]` is not a valid IPv6 address"));
        }
        let port = tail
            .strip_prefix(':')
            .ok_or_else(|| "the port is missing (e.g. `[::1]:9000`)".to_owned())?;
        (format!("[{v6}]"), port)
    } else {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| "the port is missing".to_owned())?;
        if host.contains(':') {
            return Err("put IPv6 addresses in brackets, e.g. `[fd00::5]:9000`".to_owned());
        }
        if host.is_empty() {
            return Err("the host is missing".to_owned());
        }
        check_host_name(host)?;
        (host.to_ascii_lowercase(), port)
    };
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ if port.is_empty() => return Err("the port is missing".to_owned()),
        _ => return Err(format!("port `{port}` is not a number from 1 to 65535")),
    };
    Ok((host, port))
}

/// A DNS name or IPv4 address: dot-separated labels of letters, digits,
/// `-` and `_`.
fn check_host_name(host: &str) -> Result<(), String> {
    let valid_label = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if host.len() <= 253 && host.split('.').all(valid_label) {
        Ok(())
    } else {
        Err(format!(
            "`{host}` is not a valid host name or IP address (letters, digits, `-`, `_` and dots)"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> String {
        parse_dial_target(s).unwrap().url_or(false)
    }

    #[test]
    fn accepted_forms_are_normalized() {
        assert_eq!(url("h:1"), "http://h:1");
        assert_eq!(url("http://h:1"), "http://h:1");
        assert_eq!(url("https://h:1"), "https://h:1");
        assert_eq!(
            url("HTTPS://Colony.Internal:9000/"),
            "https://colony.internal:9000"
        );
        assert_eq!(url(" 10.0.0.5:9001 "), "http://10.0.0.5:9001");
        assert_eq!(url("[::1]:9000"), "http://[::1]:9000");
        assert_eq!(url("https://[fd00::5]:443"), "https://[fd00::5]:443");
        assert_eq!(
            parse_dial_target("h:1").unwrap().url_or(true),
            "https://h:1"
        );
        assert!(parse_dial_target("https://h:1").unwrap().is_https());
    }

    #[test]
    fn rejected_forms_say_why_and_what_is_accepted() {
        let cases = [
            ("ftp://x:1", "unsupported scheme `ftp://`"),
            ("host", "port is missing"),
            ("host:", "port is missing"),
            (":9000", "host is missing"),
            ("http://h:1/path", "found `/path`"),
            ("h:1?x=1", "found `?x=1`"),
            ("user@h:1", "user names"),
            ("h:0", "from 1 to 65535"),
            ("h:70000", "from 1 to 65535"),
            ("h:abc", "from 1 to 65535"),
            ("::1:9000", "brackets"),
            ("[zz]:1", "not a valid IPv6"),
            ("[::1]", "port is missing"),
            ("bad..host:1", "not a valid host name"),
            ("h st:1", "whitespace"),
            ("", "port is missing"),
        ];
        for (input, reason) in cases {
            let err = parse_dial_target(input).unwrap_err();
            assert!(err.contains(reason), "{input:?}: {err}");
            assert!(err.contains("http://host:port"), "{input:?}: {err}");
        }
    }
}
