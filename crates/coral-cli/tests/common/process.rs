//! A `coral` process started by a test, stopped (and its log shown on
//! failure) when the test ends, and reading what it prints.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A `coral` process the test started: stopped with `signal` when the test
/// ends, killed if it does not stop; its log (stderr) is printed if the test
/// failed.
pub struct Process {
    child: Child,
    signal: &'static str,
    log: PathBuf,
}

impl Process {
    pub fn spawn(mut cmd: Command, signal: &'static str, log: PathBuf) -> Process {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Process { child, signal, log }
    }

    /// Stdout lines up to and including the first for which `last` holds.
    pub fn banner(&mut self, last: impl Fn(&str) -> bool) -> Vec<String> {
        let mut lines = Vec::new();
        for line in BufReader::new(self.child.stdout.take().unwrap()).lines() {
            let line = line.unwrap();
            let done = last(&line);
            lines.push(line);
            if done {
                return lines;
            }
        }
        panic!(
            "{} ended before it was ready: {lines:?}\n{}",
            self.log.display(),
            std::fs::read_to_string(&self.log).unwrap_or_default()
        );
    }

    pub fn stop(&mut self) -> ExitStatus {
        let ok = Command::new("kill")
            .args([self.signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        self.child.wait().unwrap()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = Command::new("kill")
                .args([self.signal, &self.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Sends `sig` (`-TERM`, `-KILL`, ...) to `child`.
pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Sends `sig` to `child` and waits until it has exited.
pub fn kill(child: &mut Child, sig: &str) {
    signal(child, sig);
    child.wait().unwrap();
}

/// The rest of the first line that starts with `prefix`, trimmed.
pub fn value_after<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    lines
        .iter()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .map(str::trim)
        .unwrap_or_else(|| panic!("no {prefix:?} in {lines:?}"))
}

/// The rest of the first word of `line` that starts with `prefix`.
pub fn word_after<'a>(line: &'a str, prefix: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no {prefix} in {line:?}"))
}
