//! The Beyla supervisor against small shell scripts standing in for Beyla.
//!
//! Scripts get `-config <file>` like Beyla does and find their scratch
//! directory in `$OUT` (which also checks that the spec's environment is
//! passed). Waiting is always for a condition with a deadline: a state change
//! seen through `watch`, or a file the script writes.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coral_beyla::supervise::{self, LaunchSpec, RestartPolicy, State, Status};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(20);

fn script(dir: &Path, body: &str) -> PathBuf {
    let path = dir.join("fake-beyla");
    std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn spec(binary: PathBuf, dir: &Path, yaml: &str) -> LaunchSpec {
    LaunchSpec {
        binary,
        config_yaml: yaml.to_owned(),
        env: vec![("OUT".to_owned(), dir.display().to_string())],
        extra_args: Vec::new(),
        work_dir: dir.join("work"),
    }
}

fn fast_policy() -> RestartPolicy {
    RestartPolicy {
        backoff_initial: Duration::from_millis(30),
        backoff_max: Duration::from_millis(300),
        stable_after: Duration::from_secs(30),
        max_rapid_failures: 5,
        stop_timeout: Duration::from_secs(5),
    }
}

async fn wait_for(rx: &mut watch::Receiver<Status>, what: impl Fn(&Status) -> bool) -> Status {
    let found = tokio::time::timeout(DEADLINE, async {
        rx.wait_for(|s| what(s)).await.map(|s| s.clone())
    })
    .await;
    match found {
        Ok(found) => found.expect("supervisor gone"),
        Err(_) => panic!("timed out; last status {:?}", *rx.borrow()),
    }
}

/// Polls `cond` until it holds, failing after the deadline.
async fn until(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            !matches!(state, Some(Some('Z' | 'X')))
        }
        Err(_) => false,
    }
}

fn work_files(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("work")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[tokio::test]
async fn missing_binary_fails_at_once_with_a_clear_reason() {
    let dir = tempfile::tempdir().unwrap();
    let binary = dir.path().join("nowhere/beyla");
    let sup = supervise::spawn(spec(binary.clone(), dir.path(), "x: 1"), fast_policy());
    let status = wait_for(&mut sup.watch(), |s| s.state == State::Failed).await;
    let error = status.last_error.unwrap();
    assert!(error.contains(&binary.display().to_string()), "{error}");
    assert!(
        error.contains("does not exist") && error.contains("coral beyla install"),
        "{error}"
    );
    assert_eq!(status.restarts, 0);
    assert!(work_files(dir.path()).is_empty(), "config file left behind");
    let mut rx = sup.watch();
    sup.stop().await;
    assert_eq!(rx.borrow_and_update().state, State::Stopped);
}

#[tokio::test]
async fn a_crash_loop_backs_off_exponentially_then_gives_up() {
    let dir = tempfile::tempdir().unwrap();
    let binary = script(
        dir.path(),
        r#"date +%s%N >> "$OUT/starts"
echo "loading eBPF programs"
echo "fatal: cannot load eBPF programs" >&2
exit 2"#,
    );
    let sup = supervise::spawn(spec(binary, dir.path(), "x: 1"), fast_policy());

    // Every Restarting status seen on the way to Failed.
    let mut rx = sup.watch();
    let mut seen = Vec::new();
    let failed = tokio::time::timeout(DEADLINE, async {
        loop {
            let s = rx.borrow_and_update().clone();
            match s.state {
                State::Failed => return s,
                State::Restarting => seen.push(s.retry_in.unwrap()),
                _ => {}
            }
            rx.changed().await.unwrap();
        }
    })
    .await
    .expect("never gave up");

    // 5 short runs: 4 restarts, with delays 30, 60, 120, 240 ms (max 300).
    assert_eq!(failed.restarts, 4);
    let error = failed.last_error.unwrap();
    assert!(error.contains("ended with exit code 2"), "{error}");
    assert!(
        error.contains("fatal: cannot load eBPF programs"),
        "{error}"
    );
    let expected: Vec<Duration> = [30, 60, 120, 240].map(Duration::from_millis).to_vec();
    seen.dedup();
    assert!(seen.iter().all(|d| expected.contains(d)), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "delays must grow: {seen:?}"
    );

    // The script's own start times show the delays really were waited.
    let starts: Vec<u128> = read(&dir.path().join("starts"))
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 5);
    for (i, gap) in starts
        .windows(2)
        .map(|w| (w[1] - w[0]) / 1_000_000)
        .enumerate()
    {
        assert!(
            gap >= expected[i].as_millis(),
            "gap {i} was {gap} ms, wanted ≥ {:?}",
            expected[i]
        );
    }
    assert!(
        work_files(dir.path()).is_empty(),
        "config files left behind"
    );

    // It stays failed: no more starts.
    assert_eq!(sup.status().state, State::Failed);
    sup.stop().await;
    assert_eq!(read(&dir.path().join("starts")).lines().count(), 5);
}

#[tokio::test]
async fn a_stable_run_resets_the_failure_count_and_backoff() {
    let dir = tempfile::tempdir().unwrap();
    // Run 2 lasts longer than stable_after; every other run fails at once.
    let binary = script(
        dir.path(),
        r#"n=$(cat "$OUT/count" 2>/dev/null || echo 0); n=$((n+1)); echo $n > "$OUT/count"
if [ "$n" = 2 ]; then sleep 0.6; fi
exit 3"#,
    );
    let policy = RestartPolicy {
        stable_after: Duration::from_millis(400),
        max_rapid_failures: 3,
        ..fast_policy()
    };
    let sup = supervise::spawn(spec(binary, dir.path(), "x: 1"), policy);
    let mut rx = sup.watch();

    // After the stable run 2, the next delay is back to the initial one.
    let after_stable = wait_for(&mut rx, |s| s.state == State::Restarting && s.restarts == 2).await;
    assert_eq!(after_stable.retry_in, Some(Duration::from_millis(30)));

    // Without the reset it would give up after run 3; with it, after run 5.
    let failed = wait_for(&mut rx, |s| s.state == State::Failed).await;
    assert_eq!(failed.restarts, 4);
    assert_eq!(read(&dir.path().join("count")).trim(), "5");
    sup.stop().await;
}

#[tokio::test]
async fn stop_is_graceful_and_removes_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let binary = script(
        dir.path(),
        r#"trap 'echo "got TERM" > "$OUT/marker"; exit 0' TERM
touch "$OUT/ready"
sleep 60 &
wait"#,
    );
    let sup = supervise::spawn(spec(binary, dir.path(), "x: 1"), fast_policy());
    let running = wait_for(&mut sup.watch(), |s| s.state == State::Running).await;
    let config = running.config_path.clone().unwrap();
    assert!(config.starts_with(dir.path().join("work")), "{config:?}");
    assert!(
        config
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("beyla-")
    );
    assert_eq!(read(&config), "x: 1");
    let mode = std::fs::metadata(&config).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    until("the script's trap", || dir.path().join("ready").exists()).await;

    let mut rx = sup.watch();
    let started = Instant::now();
    sup.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "it should not need SIGKILL"
    );
    assert_eq!(read(&dir.path().join("marker")).trim(), "got TERM");
    assert!(!config.exists(), "config file left behind");
    assert!(!alive(running.pid.unwrap()));
    assert_eq!(rx.borrow_and_update().state, State::Stopped);
}

#[tokio::test]
async fn a_child_ignoring_sigterm_is_killed_with_its_group() {
    let dir = tempfile::tempdir().unwrap();
    let binary = script(
        dir.path(),
        r#"trap '' TERM
sleep 300 &
echo $! > "$OUT/grandchild"
wait"#,
    );
    let policy = RestartPolicy {
        stop_timeout: Duration::from_millis(300),
        ..fast_policy()
    };
    let sup = supervise::spawn(spec(binary, dir.path(), "x: 1"), policy);
    let running = wait_for(&mut sup.watch(), |s| s.state == State::Running).await;
    let grandchild_file = dir.path().join("grandchild");
    until("the grandchild", || read(&grandchild_file).ends_with('\n')).await;
    let grandchild: u32 = read(&grandchild_file).trim().parse().unwrap();
    assert!(alive(grandchild));

    let started = Instant::now();
    sup.stop().await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "SIGKILL came before the timeout"
    );
    until("the child to die", || !alive(running.pid.unwrap())).await;
    until("the grandchild to die", || !alive(grandchild)).await;
    assert!(work_files(dir.path()).is_empty(), "config file left behind");
}

#[tokio::test]
async fn dropping_the_supervisor_kills_beyla() {
    let dir = tempfile::tempdir().unwrap();
    let binary = script(
        dir.path(),
        r#"trap '' TERM
sleep 300 &
echo $! > "$OUT/grandchild"
wait"#,
    );
    let sup = supervise::spawn(spec(binary, dir.path(), "x: 1"), fast_policy());
    let running = wait_for(&mut sup.watch(), |s| s.state == State::Running).await;
    let grandchild_file = dir.path().join("grandchild");
    until("the grandchild", || read(&grandchild_file).ends_with('\n')).await;
    let grandchild: u32 = read(&grandchild_file).trim().parse().unwrap();

    drop(sup);
    until("the child to die", || !alive(running.pid.unwrap())).await;
    until("the grandchild to die", || !alive(grandchild)).await;
    until("the config file to go", || {
        work_files(dir.path()).is_empty()
    })
    .await;
}

#[tokio::test]
async fn reconfigure_restarts_with_the_new_config() {
    let dir = tempfile::tempdir().unwrap();
    // Beyla's calling convention: `-config <file>`.
    let binary = script(
        dir.path(),
        r#"[ "$1" = "-config" ] || exit 64
[ "$BEYLA_CONFIG_PATH" = "$2" ] || exit 65
cat "$2" > "$OUT/tmp.$$" && mv "$OUT/tmp.$$" "$OUT/seen"
sleep 60 &
wait"#,
    );
    let sup = supervise::spawn(
        spec(binary.clone(), dir.path(), "generation: 1"),
        fast_policy(),
    );
    let mut rx = sup.watch();
    let first = wait_for(&mut rx, |s| s.state == State::Running).await;
    let seen = dir.path().join("seen");
    until("the first config", || read(&seen) == "generation: 1").await;

    sup.reconfigure(spec(binary, dir.path(), "generation: 2"))
        .await;
    let second = sup.status();
    assert_eq!(second.state, State::Running);
    assert_ne!(second.pid, first.pid);
    assert_ne!(second.config_path, first.config_path);
    assert_eq!(second.restarts, 0, "a reconfiguration is not a failure");
    until("the second config", || read(&seen) == "generation: 2").await;
    assert!(
        !first.config_path.unwrap().exists(),
        "old config file left behind"
    );
    assert!(!alive(first.pid.unwrap()));
    sup.stop().await;
    assert!(work_files(dir.path()).is_empty());
}

#[tokio::test]
async fn reconfigure_recovers_from_failed() {
    let dir = tempfile::tempdir().unwrap();
    let sup = supervise::spawn(
        spec(dir.path().join("missing"), dir.path(), "x: 1"),
        fast_policy(),
    );
    wait_for(&mut sup.watch(), |s| s.state == State::Failed).await;
    let binary = script(dir.path(), "sleep 60 &\nwait");
    sup.reconfigure(spec(binary, dir.path(), "x: 2")).await;
    let status = sup.status();
    assert_eq!(status.state, State::Running, "{status:?}");
    sup.stop().await;
}

/// A `tracing` writer that appends to a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn output_lines_become_bounded_tracing_events() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime has one thread, so every task sees this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let dir = tempfile::tempdir().unwrap();
    let binary = script(
        dir.path(),
        r#"echo "hello from stdout"
echo "trouble on stderr" >&2
head -c 10000 /dev/zero | tr '\0' x >&2; echo >&2
echo "done" >&2
sleep 60 &
wait"#,
    );
    let sup = supervise::spawn(spec(binary, dir.path(), "x: 1"), fast_policy());
    until("the last line", || captured.text().contains("done")).await;
    sup.stop().await;

    let text = captured.text();
    let line = |needle: &str| {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in {text}"))
            .to_owned()
    };
    let out = line("hello from stdout");
    assert!(
        out.contains("INFO beyla:") && out.contains("source=\"beyla\""),
        "{out}"
    );
    let err = line("trouble on stderr");
    assert!(
        err.contains("WARN beyla:") && err.contains("source=\"beyla\""),
        "{err}"
    );
    let long = line("xxxxxxxx");
    assert!(long.contains("[truncated]"), "long line kept whole");
    assert!(
        long.len() < supervise::MAX_LINE_BYTES + 300,
        "{} bytes",
        long.len()
    );
    // Lifecycle events for audit.
    assert!(
        text.contains("beyla started") && text.contains("pid="),
        "{text}"
    );
    assert!(text.contains("beyla supervisor stopped"), "{text}");
}
