//! A colony host and agent hosts in a [`Lab`], real OpenTelemetry SDK
//! clients (Python) sending steadily to each agent with exact counts, and
//! the reconciliation that ends every scenario: what the clients had
//! acknowledged against what the colony stored, per service and minute.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::common::{coral, python, repo_file, wait_for};
use super::delay::Delay;
use super::lab::{Host, Lab};

/// How one agent host is set up.
#[derive(Clone)]
pub struct AgentSpec {
    pub name: &'static str,
    /// `http` or `grpc`: how its client exports.
    pub protocol: &'static str,
    /// Spans per second its client sends.
    pub rate: u32,
    /// `agent.storage.retention`.
    pub retention: &'static str,
    /// The host's clock offset in seconds: the agent runs under libfaketime,
    /// the client stamps its spans with the host's time.
    pub clock: Option<i64>,
    /// Its traffic with the colony through [`Delay`] relays.
    pub relayed: bool,
    /// Its client's exports through a [`Delay`] relay (the agent's OTLP/HTTP
    /// listener then binds the host's address, for the relay to reach it).
    pub client_relayed: bool,
    /// Its data directory on a tmpfs of this size.
    pub tmpfs: Option<&'static str>,
}

impl AgentSpec {
    pub fn new(name: &'static str) -> AgentSpec {
        AgentSpec {
            name,
            protocol: "http",
            rate: 50,
            retention: "1h",
            clock: None,
            relayed: false,
            client_relayed: false,
            tmpfs: None,
        }
    }
}

const FAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// A process in a host, its output in `log`, killed when dropped.
pub struct Proc {
    child: Child,
    log: PathBuf,
    /// Highest resident set seen (kB), read before every stop.
    pub peak_rss_kb: u64,
}

impl Proc {
    pub fn spawn(mut cmd: Command, log: PathBuf) -> Proc {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        Proc {
            child,
            log,
            peak_rss_kb: 0,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process has ended.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    /// Reads the process's peak RSS (VmHWM) into `peak_rss_kb`.
    pub fn sample_rss(&mut self) {
        let hwm = status_kb(self.child.id(), "VmHWM");
        self.peak_rss_kb = self.peak_rss_kb.max(hwm);
    }

    /// Sends `signal` (`-KILL`, `-TERM`) and waits for the exit.
    pub fn signal(&mut self, signal: &str) -> ExitStatus {
        self.sample_rss();
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args([signal, &pid]).status();
        self.child.wait().unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(30).collect();
            eprintln!("--- last lines of {}:", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A `kB` field of `/proc/<pid>/status` (`VmRSS`, `VmHWM`), 0 when gone.
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// An agent host's agent.
pub struct Agent {
    pub spec: AgentSpec,
    pub home: PathBuf,
    config: PathBuf,
    pub proc: Option<Proc>,
    /// Peak RSS over every run of this agent (kB).
    pub peak_rss_kb: u64,
    runs: u32,
    /// The mounted tmpfs, when the spec asks for one.
    tmpfs: Option<PathBuf>,
}

/// A client's status file, as `client.py` writes it.
#[derive(Default, serde::Deserialize)]
pub struct ClientStatus {
    pub service: String,
    pub sent: u64,
    pub acked: u64,
    pub failed_attempts: u64,
    /// Milliseconds from a batch's first attempt to its acknowledgement
    /// (the latest 2,000).
    #[serde(default)]
    pub deliver_ms: Vec<f64>,
    pub minutes: BTreeMap<String, u64>,
    pub first: Option<String>,
    pub end: Option<String>,
    pub done: bool,
}

struct Client {
    agent: usize,
    status: PathBuf,
    stop: PathBuf,
    /// Held until the fleet goes.
    _proc: Proc,
}

/// The colony, its agents, their clients, and the lab they run in. Fields
/// drop in order: processes before the relays and the lab.
pub struct Fleet {
    clients: Vec<Client>,
    pub agents: Vec<Agent>,
    colony: Option<Proc>,
    pub colony_peak_rss_kb: u64,
    colony_runs: u32,
    relays: Vec<(usize, Delay)>,
    /// The relay each relayed client sends through, by agent.
    client_relays: Vec<(usize, String)>,
    pub lab: Lab,
    pub dir: tempfile::TempDir,
    /// The colony's API, as agents and the CLI dial it.
    pub colony_api: String,
    python: PathBuf,
    colony_yaml: PathBuf,
}

/// What a scenario's reconciliation found.
#[derive(Debug, Default)]
pub struct Figures {
    pub sent: u64,
    pub acked: u64,
    /// Spans the colony counts in its RED (SERVER summaries).
    pub counted: u64,
    /// Kept spans the colony holds.
    pub stored: u64,
    /// Per agent, every span the colony counts in its RED (any service).
    pub counted_by_agent: BTreeMap<String, u64>,
    /// Acknowledged spans missing from the colony's RED, per minute.
    pub lost: u64,
    /// Spans counted or stored more than once.
    pub duplicated: u64,
    /// Per minute, acknowledged and counted, where they differ.
    pub differences: Vec<String>,
    /// Services whose `coral query otel` minutes differ from the database.
    pub cli_disagrees: Vec<String>,
    /// Rows the colony recorded as gaps.
    pub gap_rows: u64,
    pub peak_rss_agent_mb: u64,
    pub peak_rss_colony_mb: u64,
}

impl Figures {
    pub fn row(&self, scenario: &str, recovery: Option<Duration>) -> String {
        format!(
            "| {scenario} | {} | {} | {} | {} | {} | {} | {} | {} | {} / {} |",
            self.sent,
            self.acked,
            self.counted,
            self.stored,
            self.lost,
            self.duplicated,
            self.gap_rows,
            recovery.map_or("–".into(), |r| format!("{:.1} s", r.as_secs_f64())),
            self.peak_rss_agent_mb,
            self.peak_rss_colony_mb,
        )
    }

    /// Nothing acknowledged lost, nothing counted twice.
    pub fn assert_exact(&self) {
        assert!(self.cli_disagrees.is_empty(), "{self:#?}");
        assert!(
            self.lost == 0 && self.duplicated == 0 && self.counted == self.acked,
            "{self:#?}"
        );
        assert_eq!(self.stored, self.acked, "{self:#?}");
    }
}

impl Fleet {
    /// A lab with a colony host and one host per spec, the colony and the
    /// agents running, and one client per agent sending. `None` when the
    /// machine cannot run it (see [`Lab::new`]).
    pub fn start(specs: &[AgentSpec], page_size: u32) -> Option<Fleet> {
        let mut names = vec!["colony"];
        names.extend(specs.iter().map(|s| s.name));
        let lab = Lab::new(&names)?;
        let python = python("opentelemetry.sdk,opentelemetry.exporter.otlp.proto.http")?;
        if specs.iter().any(|s| s.clock.is_some()) && !Path::new(FAKETIME).exists() {
            assert!(
                std::env::var("CORAL_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
                "the clock test needs libfaketime (Debian's faketime)"
            );
            eprintln!("skipped: no libfaketime (Debian's faketime)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let colony_ip = lab.host("colony").ip.clone();
        let colony_api = format!("{colony_ip}:9000");
        let colony_yaml = dir.path().join("colony.yaml");
        std::fs::write(
            &colony_yaml,
            format!(
                "colony:\n  id: chaos\n  api:\n    endpoint: {colony_api}\n  admin:\n    endpoint: {colony_ip}:9003\n  poll:\n    interval: 1s\n    timeout: 5s\n    page_size: {page_size}\n  health:\n    degraded_after: 5s\n    unreachable_after: 15s\n"
            ),
        )
        .unwrap();
        let mut fleet = Fleet {
            clients: Vec::new(),
            agents: Vec::new(),
            colony: None,
            colony_peak_rss_kb: 0,
            colony_runs: 0,
            relays: Vec::new(),
            client_relays: Vec::new(),
            lab,
            dir,
            colony_api,
            python,
            colony_yaml,
        };
        fleet.start_colony();
        for (i, spec) in specs.iter().enumerate() {
            fleet.add_agent(i, spec.clone());
            fleet.start_agent(i);
        }
        for i in 0..specs.len() {
            fleet.start_client(i);
        }
        Some(fleet)
    }

    fn host(&self, name: &str) -> &Host {
        self.lab.host(name)
    }

    pub fn start_colony(&mut self) {
        self.colony_runs += 1;
        let mut cmd = coral();
        cmd.args(["colony", "serve", "--config"])
            .arg(&self.colony_yaml)
            .env("CORAL_HOME", self.dir.path());
        let cmd = self.host("colony").wrap(&cmd);
        let log = self
            .dir
            .path()
            .join(format!("colony-{}.log", self.colony_runs));
        self.colony = Some(Proc::spawn(cmd, log));
        let api = self.colony_api.clone();
        wait_for("the colony answers", Duration::from_secs(60), || {
            coral()
                .args(["agents", "--colony", &api])
                .output()
                .is_ok_and(|o| o.status.success())
        });
    }

    /// SIGKILL (`-KILL`) or a clean stop (`-TERM`) of the colony.
    pub fn stop_colony(&mut self, signal: &str) {
        if let Some(mut colony) = self.colony.take() {
            colony.signal(signal);
            self.colony_peak_rss_kb = self.colony_peak_rss_kb.max(colony.peak_rss_kb);
        }
    }

    fn add_agent(&mut self, i: usize, spec: AgentSpec) {
        let home = self.dir.path().join(spec.name);
        std::fs::create_dir_all(&home).unwrap();
        let tmpfs = spec.tmpfs.map(|size| {
            let status = Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(&home)
                .status()
                .unwrap();
            assert!(status.success(), "mount a tmpfs on {}", home.display());
            home.clone()
        });
        let ip = self.host(spec.name).ip.clone();
        let api = format!("{ip}:9001");
        let (colony, advertise) = if spec.relayed {
            // The colony dials the agent through one relay, the agent the
            // colony through another: every byte between them is delayed.
            let to_agent = Delay::start(&self.lab.gateway, api.clone());
            let to_colony = Delay::start(&self.lab.gateway, self.colony_api.clone());
            let pair = (to_colony.addr.clone(), to_agent.addr.clone());
            self.relays.push((i, to_agent));
            self.relays.push((i, to_colony));
            pair
        } else {
            (self.colony_api.clone(), api.clone())
        };
        let http = if spec.client_relayed {
            let to_agent = Delay::start(&self.lab.gateway, format!("{ip}:4318"));
            self.client_relays.push((i, to_agent.addr.clone()));
            self.relays.push((i, to_agent));
            format!("{ip}:4318")
        } else {
            "127.0.0.1:4318".to_owned()
        };
        let config = home.join("agent.yaml");
        std::fs::write(
            &config,
            format!(
                "agent:\n  id: {}\n  telemetry:\n    endpoint: 127.0.0.1:4317\n    http_endpoint: {http}\n    ack: stored\n    filters:\n      - sample_rate: 1.0\n    aggregation:\n      flush_grace: 1s\n  api:\n    endpoint: {api}\n  admin:\n    endpoint: {ip}:9002\n  colony:\n    endpoint: {colony}\n    advertise_endpoint: {advertise}\n    heartbeat_interval: 2s\n  storage:\n    retention: {}\n    cleanup_interval: 2s\n",
                spec.name, spec.retention
            ),
        )
        .unwrap();
        self.agents.push(Agent {
            spec,
            home,
            config,
            proc: None,
            peak_rss_kb: 0,
            runs: 0,
            tmpfs,
        });
    }

    /// The environment a host's clock offset needs.
    fn clock(cmd: &mut Command, clock: Option<i64>) {
        if let Some(offset) = clock {
            cmd.env("LD_PRELOAD", FAKETIME)
                .env("FAKETIME", format!("{offset:+}"))
                .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
                .env("FAKETIME_NO_CACHE", "1");
        }
    }

    pub fn start_agent(&mut self, i: usize) {
        let agent = &mut self.agents[i];
        agent.runs += 1;
        let mut cmd = coral();
        cmd.args(["agent", "serve", "--config"])
            .arg(&agent.config)
            .env("CORAL_HOME", &agent.home);
        Self::clock(&mut cmd, agent.spec.clock);
        let cmd = self.lab.host(agent.spec.name).wrap(&cmd);
        let log = self
            .dir
            .path()
            .join(format!("{}-{}.log", agent.spec.name, agent.runs));
        agent.proc = Some(Proc::spawn(cmd, log));
        let status = self.agent_url(i, "healthz");
        wait_for("the agent answers", Duration::from_secs(60), || {
            reqwest::blocking::get(&status).is_ok_and(|r| r.status().is_success())
        });
    }

    /// SIGKILL (`-KILL`) or a clean stop (`-TERM`) of agent `i`.
    pub fn stop_agent(&mut self, i: usize, signal: &str) -> ExitStatus {
        let agent = &mut self.agents[i];
        let mut proc = agent.proc.take().expect("the agent runs");
        let status = proc.signal(signal);
        agent.peak_rss_kb = agent.peak_rss_kb.max(proc.peak_rss_kb);
        status
    }

    /// `http://<agent i's admin>/<path>`.
    pub fn agent_url(&self, i: usize, path: &str) -> String {
        format!(
            "http://{}:9002/{path}",
            self.host(self.agents[i].spec.name).ip
        )
    }

    /// Agent `i`'s `/status`.
    pub fn agent_status(&self, i: usize) -> serde_json::Value {
        reqwest::blocking::get(self.agent_url(i, "status"))
            .and_then(|r| r.text())
            .ok()
            .and_then(|body| serde_json::from_str(&body).ok())
            .unwrap_or_default()
    }

    /// The relays of agent `i` (empty unless its spec is `relayed`).
    pub fn relays(&self, i: usize) -> impl Iterator<Item = &Delay> {
        self.relays
            .iter()
            .filter(move |(a, _)| *a == i)
            .map(|(_, d)| d)
    }

    fn start_client(&mut self, i: usize) {
        let spec = self.agents[i].spec.clone();
        let status = self.dir.path().join(format!("{}-client.json", spec.name));
        let stop = self.dir.path().join(format!("{}-client.stop", spec.name));
        let relay = self.client_relays.iter().find(|(a, _)| *a == i);
        let endpoint = match (spec.protocol, relay) {
            ("grpc", _) => "127.0.0.1:4317".to_owned(),
            (_, Some((_, relay))) => format!("http://{relay}/v1/traces"),
            _ => "http://127.0.0.1:4318/v1/traces".to_owned(),
        };
        let mut cmd = Command::new(&self.python);
        cmd.arg(repo_file("tests/fixtures/chaos/client.py"))
            .args(["--service", &format!("svc-{}", spec.name)])
            .args(["--protocol", spec.protocol, "--endpoint", &endpoint])
            .args(["--rate", &spec.rate.to_string()])
            // About five exports a second, as a batching SDK sends.
            .args(["--batch", &(spec.rate / 5).max(10).to_string()])
            .arg("--status")
            .arg(&status)
            .arg("--stop")
            .arg(&stop);
        if let Some(offset) = spec.clock {
            cmd.args(["--clock-offset", &offset.to_string()]);
        }
        let cmd = self.host(spec.name).wrap(&cmd);
        let log = self.dir.path().join(format!("{}-client.log", spec.name));
        let proc = Proc::spawn(cmd, log);
        self.clients.push(Client {
            agent: i,
            status,
            stop,
            _proc: proc,
        });
    }

    /// The status of agent `i`'s client.
    pub fn client(&self, i: usize) -> ClientStatus {
        let client = self.clients.iter().find(|c| c.agent == i).unwrap();
        std::fs::read(&client.status)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }

    /// Waits until agent `i`'s client has had `more` spans acknowledged
    /// beyond what it had now.
    pub fn wait_acked(&self, i: usize, more: u64) {
        let target = self.client(i).acked + more;
        wait_for(
            &format!(
                "{more} more spans acknowledged by {}",
                self.agents[i].spec.name
            ),
            Duration::from_secs(120),
            || self.client(i).acked >= target,
        );
    }

    /// The colony's view of its agents (`coral agents -o json`).
    pub fn colony_agents(&self) -> Vec<serde_json::Value> {
        let out = coral()
            .args(["agents", "-o", "json", "--colony", &self.colony_api])
            .output()
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&out.stdout)
            .ok()
            .and_then(|v| v["agents"].as_array().cloned())
            .unwrap_or_default()
    }

    /// How long until the colony has read everything agent `i` held when
    /// this was called.
    pub fn wait_caught_up(&self, i: usize, timeout: Duration) -> Duration {
        let started = Instant::now();
        let id = self.agents[i].spec.name;
        let mut held = None;
        wait_for("the agent's status", Duration::from_secs(30), || {
            held = self.agent_status(i)["latest_seq_id"].as_u64();
            held.is_some()
        });
        let held = held.unwrap();
        wait_for(
            &format!("the colony to read {id} up to seq_id {held}"),
            timeout,
            || {
                self.colony_agents().iter().any(|a| {
                    a["agent_id"] == id && a["cursor_seq_id"].as_u64().unwrap_or(0) >= held
                })
            },
        );
        started.elapsed()
    }

    /// Per minute (RFC 3339), the SERVER spans of `service` the colony
    /// counts, between `from` and `to`.
    fn counted(&self, service: &str, from: &str, to: &str) -> BTreeMap<String, u64> {
        let out = coral()
            .args(["query", "otel", service, "--kind", "SERVER", "-o", "json"])
            .args(["--from", from, "--to", to, "--colony", &self.colony_api])
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
        let mut minutes = BTreeMap::new();
        for m in v["minutes"].as_array().into_iter().flatten() {
            let at = m["bucket_time"].as_str().unwrap_or_default().to_owned();
            *minutes.entry(at).or_default() += m["total_spans"].as_u64().unwrap_or(0);
        }
        minutes
    }

    /// Clients stop starting spans and deliver what they hold.
    pub fn stop_clients(&self) {
        for client in &self.clients {
            std::fs::write(&client.stop, b"").unwrap();
        }
        for i in 0..self.clients.len() {
            wait_for(
                "the clients delivered what they held",
                Duration::from_secs(120),
                || self.client(i).done,
            );
        }
    }

    /// Ends the scenario: clients stop and deliver what they hold, agents
    /// stop cleanly (writing the minute in progress) and start again, the
    /// colony reads them, then stops; its database is compared with what
    /// the clients had acknowledged, per service and minute.
    pub fn finish(mut self, settle: Duration) -> Figures {
        self.stop_clients();
        for i in 0..self.agents.len() {
            let status = self.stop_agent(i, "-TERM");
            assert!(status.success(), "agent {i} stopped: {status}");
            self.start_agent(i);
        }
        // Everything the agents hold, including the minutes their clean
        // stop wrote out, is below their latest seq_id: once the colony's
        // cursors reach it, the colony holds all it will ever get.
        for i in 0..self.agents.len() {
            self.wait_caught_up(i, settle);
        }
        let clients: Vec<ClientStatus> = (0..self.clients.len()).map(|i| self.client(i)).collect();
        // What a user sees: `coral query otel` over the clients' minutes.
        let shown: Vec<BTreeMap<String, u64>> = clients
            .iter()
            .map(|c| {
                let (first, end) = (c.first.as_deref(), c.end.as_deref());
                self.counted(&c.service, first.unwrap(), end.unwrap())
            })
            .collect();
        for agent in &mut self.agents {
            if let Some(proc) = agent.proc.as_mut() {
                proc.sample_rss();
                agent.peak_rss_kb = agent.peak_rss_kb.max(proc.peak_rss_kb);
            }
        }
        self.stop_colony("-TERM");

        let db = duckdb::Connection::open(self.dir.path().join("colony/colony.duckdb")).unwrap();
        let mut figures = Figures {
            peak_rss_agent_mb: self.agents.iter().map(|a| a.peak_rss_kb).max().unwrap_or(0) / 1024,
            peak_rss_colony_mb: self.colony_peak_rss_kb / 1024,
            ..Figures::default()
        };
        let mut stmt = db
            .prepare("SELECT agent_id, sum(total_spans)::UBIGINT FROM otel_spans GROUP BY 1")
            .unwrap();
        figures.counted_by_agent = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        figures.gap_rows = db
            .query_row(
                "SELECT coalesce(sum(to_seq_id - from_seq_id + 1), 0)::UBIGINT FROM gaps",
                [],
                |r| r.get(0),
            )
            .unwrap();
        for (c, shown) in clients.iter().zip(&shown) {
            figures.sent += c.sent;
            figures.acked += c.acked;
            let mut stmt = db
                .prepare(
                    "SELECT strftime(bucket_time, '%Y-%m-%dT%H:%M:00Z'), sum(total_spans)::UBIGINT \
                     FROM otel_spans WHERE service_name = ? AND span_kind = 'SERVER' GROUP BY 1",
                )
                .unwrap();
            let counted: BTreeMap<String, u64> = stmt
                .query_map([&c.service], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .map(Result::unwrap)
                .collect();
            if *shown != counted {
                figures.cli_disagrees.push(format!(
                    "{}: `coral query otel` shows {shown:?}, the database has {counted:?}",
                    c.service
                ));
            }
            let mut minutes: Vec<&String> = counted.keys().chain(c.minutes.keys()).collect();
            minutes.sort();
            minutes.dedup();
            for m in minutes {
                let (acked, got) = (
                    c.minutes.get(m).copied().unwrap_or(0),
                    counted.get(m).copied().unwrap_or(0),
                );
                figures.counted += got;
                figures.lost += acked.saturating_sub(got);
                figures.duplicated += got.saturating_sub(acked);
                if acked != got {
                    figures.differences.push(format!(
                        "{} {m}: acknowledged {acked}, counted {got}",
                        c.service
                    ));
                }
            }
            let (spans, distinct): (u64, u64) = db
                .query_row(
                    "SELECT count(*)::UBIGINT, count(DISTINCT span_id)::UBIGINT FROM trace_spans \
                     WHERE service_name = ?",
                    [&c.service],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap();
            figures.stored += distinct;
            figures.duplicated += spans - distinct;
        }
        figures
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.clients.clear();
        for agent in &mut self.agents {
            agent.proc = None;
        }
        self.colony = None;
        for agent in &self.agents {
            if let Some(dir) = &agent.tmpfs {
                let _ = Command::new("umount").arg("-l").arg(dir).status();
            }
        }
    }
}

/// The current minute (RFC 3339, UTC), as the clients write minutes.
pub fn minute_now() -> String {
    let out = Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:00Z"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}
