//! A full disk under steady load, with `agent.telemetry.ack: stored`: while
//! the store cannot write the agent refuses exports (503) and `/healthz`
//! says why; once space returns it writes again by itself, without a
//! restart; and every span it acknowledged, before, during or after, is
//! stored and counted. And a full disk under the colony: pulls fail without
//! moving their cursors, and once space returns every kept span arrives,
//! without a restart.
//!
//! Needs root (it mounts a small tmpfs); skipped otherwise, unless
//! `CORAL_REQUIRE_ROOT_TESTS=1` (as `.ci/run` sets), where it fails.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent_command;
use common::process::Process;

const SPANS_PER_REQUEST: usize = 20;
const CLIENTS: usize = 2;
const PATIENCE: Duration = Duration::from_secs(90);

/// A tmpfs mounted for the test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
        if !root {
            assert!(
                std::env::var("CORAL_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
                "the disk-full test needs root to mount a tmpfs"
            );
            eprintln!("skipped: not root, cannot mount a tmpfs");
            return None;
        }
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(status.success(), "mount a tmpfs on {}", dir.display());
        Some(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn export(client: usize, request: usize) -> (String, Vec<String>) {
    common::json_export("disk", "GET /cart", 3, SPANS_PER_REQUEST, client, request)
}

#[test]
fn a_full_disk_refuses_exports_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(dir.path(), "48m") else {
        return;
    };
    let home = tmpfs.0.clone();
    let config = home.join("agent.yaml");
    std::fs::write(
        &config,
        "agent:\n  telemetry:\n    ack: stored\n    filters:\n      - sample_rate: 1.0\n",
    )
    .unwrap();
    let cmd = agent_command(&home, "disk", Some(&config));
    // The log stays off the tmpfs, which the test fills.
    let mut agent = Process::spawn(cmd, "-TERM", dir.path().with_extension("agent.log"));
    let banner = agent.banner(|line| line.contains("otlp-http="));
    let word = |prefix: &str| {
        banner
            .iter()
            .flat_map(|line| line.split_whitespace())
            .find_map(|w| w.strip_prefix(prefix))
            .unwrap()
            .to_owned()
    };
    let (http, admin) = (word("otlp-http="), word("admin="));
    let healthz = move || {
        reqwest::blocking::get(format!("http://{admin}/healthz"))
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
            .unwrap_or((0, String::new()))
    };

    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (sent, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (acked, sent, refused, stop) =
                (acked.clone(), sent.clone(), refused.clone(), stop.clone());
            let url = format!("http://{http}/v1/traces");
            std::thread::spawn(move || {
                let http = reqwest::blocking::Client::new();
                let mut request = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (body, ids) = export(client, request);
                    request += 1;
                    sent.fetch_add(ids.len(), Ordering::Relaxed);
                    let status = http
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .map(|r| r.status().as_u16())
                        .unwrap_or(0);
                    if status == 200 {
                        acked.lock().unwrap().extend(ids);
                    } else {
                        // As an SDK would: back off (the spans are not kept).
                        refused.fetch_add(1, Ordering::Relaxed);
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        })
        .collect();
    let acked_len = || acked.lock().unwrap().len();
    common::wait_for("exports before the disk fills", PATIENCE, || {
        acked_len() >= 2_000
    });

    common::fill(&home.join("filler"));
    common::wait_for("/healthz to report the store failing", PATIENCE, || {
        healthz().0 == 503
    });
    let (_, why) = healthz();
    assert!(why.contains("store failing since"), "{why}");
    let refused_while_full = refused.load(Ordering::Relaxed);
    common::wait_for("exports refused while the disk is full", PATIENCE, || {
        refused.load(Ordering::Relaxed) > refused_while_full + 5
    });

    std::fs::remove_file(home.join("filler")).unwrap();
    let freed = Instant::now();
    common::wait_for("/healthz ok once space returns", PATIENCE, || {
        healthz().0 == 200
    });
    let recovery = freed.elapsed();
    let acked_at_recovery = acked_len();
    common::wait_for("exports acknowledged again", PATIENCE, || {
        acked_len() >= acked_at_recovery + 1_000
    });
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.join().unwrap();
    }
    assert!(agent.stop().success());
    eprintln!(
        "disk full: sent {} spans, acknowledged {}, {} exports refused; healthy {:.1}s after space returned",
        sent.load(Ordering::Relaxed),
        acked_len(),
        refused.load(Ordering::Relaxed),
        recovery.as_secs_f64()
    );

    let db = duckdb::Connection::open(home.join("agent/agent.duckdb")).unwrap();
    let stored: HashSet<String> = db
        .prepare("SELECT trace_id FROM otel_spans_local WHERE service_name = 'disk'")
        .unwrap()
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let counted: i64 = db
        .query_row(
            "SELECT coalesce(sum(total_spans), 0) FROM otel_buckets_local WHERE service_name = 'disk'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    drop(db);
    let acked = acked.lock().unwrap();
    let lost = acked.difference(&stored).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged spans not stored",
        acked.len()
    );
    let sent = sent.load(Ordering::Relaxed) as i64;
    assert!(
        (acked.len() as i64..=sent).contains(&counted),
        "RED counted {counted}; {} acknowledged, {sent} sent",
        acked.len()
    );
    drop(agent);
    drop(tmpfs);
}

/// Sends `n` exports of [`SPANS_PER_REQUEST`] spans from `client`, each
/// answered 200.
fn send(http: &str, client: usize, n: usize) {
    let http_client = reqwest::blocking::Client::new();
    for request in 0..n {
        let (body, _) = export(client, request);
        let status = http_client
            .post(format!("http://{http}/v1/traces"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
}

/// Kept traces of the `disk` service the colony holds.
fn colony_traces(colony: &str) -> usize {
    common::kept_traces(colony, "disk").unwrap_or(0)
}

#[test]
fn a_full_disk_under_the_colony_delays_rows_and_loses_none() {
    let home = tempfile::tempdir().unwrap();
    let colony_dir = home.path().join("colony");
    std::fs::create_dir_all(&colony_dir).unwrap();
    let Some(tmpfs) = Tmpfs::mount(&colony_dir, "48m") else {
        return;
    };
    let config = home.path().join("agent.yaml");
    std::fs::write(
        &config,
        "agent:\n  telemetry:\n    filters:\n      - sample_rate: 1.0\n",
    )
    .unwrap();
    let mut cmd = common::up_command(home.path(), "disk-colony", Path::new("/nonexistent/beyla"));
    cmd.args(["--config", config.to_str().unwrap()]);
    let log = home.path().join("up.log");
    let mut up = Process::spawn(cmd, "-TERM", log.clone());
    let banner = up.banner(|line| line.contains("agent API"));
    let field = |label: &str| {
        common::process::value_after(&banner, label)
            .trim_start_matches("http://")
            .to_owned()
    };
    let (http, colony) = (field("OTLP HTTP:"), field("colony API:"));

    send(&http, 0, 10);
    let before = 10 * SPANS_PER_REQUEST;
    common::wait_for("the colony to hold the first spans", PATIENCE, || {
        colony_traces(&colony) >= before
    });

    common::fill(&colony_dir.join("filler"));
    send(&http, 1, 10);
    common::wait_for("a pull to fail on the full disk", PATIENCE, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("cannot store page"))
    });
    assert!(
        colony_traces(&colony) < 2 * before,
        "nothing new while full"
    );

    std::fs::remove_file(colony_dir.join("filler")).unwrap();
    let freed = Instant::now();
    common::wait_for(
        "every kept span at the colony once space returns",
        PATIENCE,
        || colony_traces(&colony) == 2 * before,
    );
    eprintln!(
        "colony disk full: {} kept spans, all at the colony {:.1}s after space returned",
        2 * before,
        freed.elapsed().as_secs_f64()
    );
    assert!(up.stop().success());
    drop(up);
    drop(tmpfs);
}
