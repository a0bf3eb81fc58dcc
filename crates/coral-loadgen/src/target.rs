//! The process under test: attach to a pid or spawn a command, wait for its
//! OTLP endpoint to accept connections, and stop it with SIGTERM afterwards.

use std::fs::File;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Splits a command line like a POSIX shell would for simple cases: words
/// separated by whitespace, `'single'` and `"double"` quotes, and backslash
/// escapes (outside single quotes). No expansion of any kind.
pub fn shell_split(line: &str) -> Result<Vec<String>> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => bail!("unterminated ' in command line"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => bail!("unterminated \" in command line"),
                        },
                        Some(ch) => cur.push(ch),
                        None => bail!("unterminated \" in command line"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
}

/// Resolves `host:port`.
pub fn resolve(endpoint: &str) -> Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = endpoint
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve endpoint {endpoint:?} (expected host:port)"))?
        .collect();
    if addrs.is_empty() {
        bail!("endpoint {endpoint:?} resolved to no addresses");
    }
    Ok(addrs)
}

/// Tries one TCP connection to any of `addrs`.
fn probe(addrs: &[SocketAddr]) -> std::io::Result<()> {
    let mut last = None;
    for a in addrs {
        match TcpStream::connect_timeout(a, Duration::from_secs(1)) {
            Ok(_) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::other("no address")))
}

fn describe(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        std::io::ErrorKind::TimedOut => "timed out".to_owned(),
        _ => e.to_string(),
    }
}

/// Fails with a clear message if nothing accepts TCP connections on `endpoint`.
pub fn check_reachable(endpoint: &str) -> Result<()> {
    let addrs = resolve(endpoint)?;
    probe(&addrs).map_err(|e| {
        anyhow::anyhow!(
            "cannot connect to {endpoint}: {} — is the target running?",
            describe(&e)
        )
    })
}

/// Before spawning: fails if something already listens on `endpoint`
/// (we would measure the wrong process).
pub fn check_free(endpoint: &str) -> Result<()> {
    let addrs = resolve(endpoint)?;
    if probe(&addrs).is_ok() {
        bail!("{endpoint} already accepts connections; stop whatever listens there before --spawn");
    }
    Ok(())
}

/// A target process started by the harness.
pub struct Spawned {
    child: Child,
}

impl Spawned {
    /// Starts `command_line` with extra `env` (`K=V`), output to `log` or
    /// discarded.
    pub fn start(command_line: &str, env: &[String], log: Option<&Path>) -> Result<Self> {
        let argv = shell_split(command_line)?;
        let Some((program, args)) = argv.split_first() else {
            bail!("--spawn command line is empty");
        };
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::null());
        for kv in env {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--spawn-env {kv:?} is not K=V");
            };
            cmd.env(k, v);
        }
        match log {
            Some(path) => {
                let file = File::create(path)
                    .with_context(|| format!("creating spawn log {}", path.display()))?;
                cmd.stdout(file.try_clone()?).stderr(file);
            }
            None => {
                cmd.stdout(Stdio::null()).stderr(Stdio::null());
            }
        }
        let child = cmd
            .spawn()
            .with_context(|| format!("cannot start {program:?}"))?;
        Ok(Self { child })
    }

    /// The child's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls until `endpoint` accepts a TCP connection, the child exits, or
    /// `timeout` elapses.
    pub fn wait_ready(&mut self, endpoint: &str, timeout: Duration) -> Result<Duration> {
        let addrs = resolve(endpoint)?;
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("target exited during startup ({status}) before {endpoint} was reachable");
            }
            match probe(&addrs) {
                Ok(()) => return Ok(start.elapsed()),
                Err(e) if start.elapsed() >= timeout => bail!(
                    "cannot connect to {endpoint}: {} — target did not start listening within {:?}",
                    describe(&e),
                    timeout
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }

    /// True if the child has already exited.
    pub fn has_exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Sends SIGTERM (via `kill -TERM`), waits up to `grace`, then SIGKILLs.
    /// Returns a description of how it ended.
    pub fn terminate(mut self, grace: Duration) -> String {
        if let Ok(Some(status)) = self.child.try_wait() {
            return format!("had already exited ({status})");
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < grace {
            if let Ok(Some(status)) = self.child.try_wait() {
                return format!("exited after SIGTERM ({status})");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        format!("did not exit within {grace:?} of SIGTERM; killed")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            shell_split(r#"rotel start --x 'a b' "c \"d\"" e\ f"#).unwrap(),
            vec!["rotel", "start", "--x", "a b", "c \"d\"", "e f"]
        );
        assert_eq!(shell_split("  ").unwrap(), Vec::<String>::new());
        assert_eq!(shell_split("a ''").unwrap(), vec!["a", ""]);
        assert!(shell_split("'oops").is_err());
    }
}
