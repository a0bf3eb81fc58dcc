//! A real ClickHouse server for a test: Debian's `clickhouse-server` started
//! on loopback ports with its own data directory and config, stopped when
//! dropped. A skip with a message where the package is missing, a failure
//! with `CORAL_REQUIRE_CLICKHOUSE=1` (set by CI).
//!
//! A cluster is two such servers, each a shard of `remote_servers` cluster
//! [`CLUSTER`], and Debian's ZooKeeper (package `zookeeper`), which `ON
//! CLUSTER` statements need, on a loopback port of its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use coral_colony::store::clickhouse::Settings;

/// The password of the `coral` user the servers have.
pub const PASSWORD: &str = "coral-test-password";

/// The cluster's name in the servers' `remote_servers`.
pub const CLUSTER: &str = "coral_test";

/// True in the test binaries of a cluster (`tests/on_clickhouse_cluster.rs`,
/// which runs the engine-neutral tests on one, and
/// `tests/clickhouse_cluster.rs`): their shared server is one of two shards.
const CLUSTERED: bool = matches!(
    env!("CARGO_CRATE_NAME").as_bytes(),
    b"on_clickhouse_cluster" | b"clickhouse_cluster"
);

/// A running server.
pub struct Server {
    child: Child,
    dir: tempfile::TempDir,
    die_with_parent: bool,
    binary: PathBuf,
    /// Its HTTP port.
    pub http_port: u16,
    /// Its native protocol port (what `remote_servers` names).
    pub tcp_port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        stop(&mut self.child, self.die_with_parent);
    }
}

/// Stops a process [`start_process`] started: under a watchdog shell, the
/// process the shell runs first (killing the shell alone would leave it).
fn stop(child: &mut Child, watched: bool) {
    if watched {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &child.id().to_string()])
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The server binary, or a skip (a failure when required).
pub fn binary() -> Option<PathBuf> {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|dir| dir.join("clickhouse-server"))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CORAL_REQUIRE_CLICKHOUSE").as_deref() != Ok("1"),
            "clickhouse-server is required (CORAL_REQUIRE_CLICKHOUSE=1): apt-get install clickhouse-server, or run .ci/run"
        );
        eprintln!("skipped: no clickhouse-server (apt-get install clickhouse-server)");
    }
    found
}

/// A server of the test's own, or a skip (see [`binary`]).
pub async fn server() -> Option<Server> {
    Some(Server::start(&binary()?, "").await)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `<remote_servers>` block naming one cluster of one-replica shards at
/// the given native ports.
pub fn cluster_xml(name: &str, tcp_ports: &[u16]) -> String {
    let shards: String = tcp_ports
        .iter()
        .map(|p| {
            format!(
                "<shard><replica><host>127.0.0.1</host><port>{p}</port><user>coral</user><password>{PASSWORD}</password></replica></shard>"
            )
        })
        .collect();
    format!("<remote_servers><{name}>{shards}</{name}></remote_servers>")
}

fn spawn(binary: &Path, dir: &Path, die_with_parent: bool) -> Child {
    let config = format!("--config-file={}/config.xml", dir.display());
    start_process(
        binary.as_os_str(),
        &[config.as_str().as_ref()],
        dir,
        die_with_parent,
    )
}

/// Starts `program args` in `dir`, its output in `dir/stdout.log`. With
/// `die_with_parent`, a watchdog shell stops it (and removes `dir`) once
/// the test process has ended, or ends when it does.
fn start_process(
    program: &std::ffi::OsStr,
    args: &[&std::ffi::OsStr],
    dir: &Path,
    die_with_parent: bool,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("stdout.log"))
        .unwrap();
    let mut command = if die_with_parent {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(
                r#"dir="$1"; parent="$2"; shift 2; "$@" & pid=$!
while kill -0 "$parent" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do sleep 1; done
kill -9 "$pid" 2>/dev/null; wait "$pid"; status=$?
kill -0 "$parent" 2>/dev/null || rm -rf "$dir"
exit "$status""#,
            )
            .arg("watchdog")
            .arg(dir)
            .arg(std::process::id().to_string())
            .arg(program)
            .args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    };
    command
        .current_dir(dir)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log));
    command
        .spawn()
        .unwrap_or_else(|e| panic!("{} starts: {e}", program.to_string_lossy()))
}

/// The ZooKeeper of a test cluster, stopped when dropped (or, shared, when
/// the test process ends).
pub struct ZooKeeper {
    child: Child,
    watched: bool,
    _dir: tempfile::TempDir,
    /// Its client port.
    pub port: u16,
}

impl Drop for ZooKeeper {
    fn drop(&mut self) {
        stop(&mut self.child, self.watched);
    }
}

/// Debian's ZooKeeper jar and a `java` to run it, or a skip (a failure when
/// ClickHouse is required: CI installs the package).
pub fn zookeeper_jar() -> Option<PathBuf> {
    let jar = PathBuf::from("/usr/share/java/zookeeper.jar");
    let java = Command::new("java")
        .arg("-version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if jar.is_file() && java {
        return Some(jar);
    }
    assert!(
        std::env::var("CORAL_REQUIRE_CLICKHOUSE").as_deref() != Ok("1"),
        "a ClickHouse cluster needs ZooKeeper (CORAL_REQUIRE_CLICKHOUSE=1): apt-get install zookeeper, or run .ci/run"
    );
    eprintln!("skipped: no ZooKeeper for a ClickHouse cluster (apt-get install zookeeper)");
    None
}

impl ZooKeeper {
    /// Starts a standalone ZooKeeper with its data in `dir`; returns once
    /// it accepts connections.
    async fn start_in(jar: &Path, dir: tempfile::TempDir, die_with_parent: bool) -> ZooKeeper {
        let port = free_port();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let port_arg = port.to_string();
        let child = start_process(
            "java".as_ref(),
            &[
                "-Xmx256m".as_ref(),
                "-cp".as_ref(),
                jar.as_os_str(),
                "org.apache.zookeeper.server.ZooKeeperServerMain".as_ref(),
                port_arg.as_str().as_ref(),
                data.as_os_str(),
            ],
            dir.path(),
            die_with_parent,
        );
        let mut zk = ZooKeeper {
            child,
            watched: die_with_parent,
            _dir: dir,
            port,
        };
        // Serving, not only listening: 18.16's distributed DDL crashes the
        // server when ZooKeeper accepts its connection but drops the
        // handshake, as it does while starting.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !serving(port).await {
            if let Some(status) = zk.child.try_wait().unwrap() {
                panic!("ZooKeeper exited ({status})");
            }
            assert!(
                std::time::Instant::now() < deadline,
                "ZooKeeper did not serve on {port} in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        zk
    }

    /// Starts one for a test.
    pub async fn start(jar: &Path) -> ZooKeeper {
        ZooKeeper::start_in(jar, tempfile::tempdir().unwrap(), false).await
    }

    /// The servers' `<zookeeper>` section, and the queue of their
    /// distributed DDL in it.
    pub fn xml(&self) -> String {
        format!(
            "<zookeeper><node><host>127.0.0.1</host><port>{}</port></node></zookeeper>\
             <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>",
            self.port
        )
    }
}

/// Waits until every server at `urls` runs `ON CLUSTER` statements: each
/// starts its distributed DDL once it has a ZooKeeper session, a moment
/// after it answers `/ping`.
async fn cluster_ready(urls: &[String]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    for url in urls {
        loop {
            let u = url.clone();
            let answer = tokio::task::spawn_blocking(move || {
                ureq::post(&u)
                    .header("X-ClickHouse-User", "coral")
                    .header("X-ClickHouse-Key", PASSWORD)
                    .send(format!(
                        "CREATE DATABASE IF NOT EXISTS cluster_ready ON CLUSTER {CLUSTER}"
                    ))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap();
            match answer {
                Ok(()) => break,
                Err(e) => assert!(
                    std::time::Instant::now() < deadline,
                    "the cluster's distributed DDL did not start in 60 s: {e}: {}",
                    ureq::post(url.as_str())
                        .header("X-ClickHouse-User", "coral")
                        .header("X-ClickHouse-Key", PASSWORD)
                        .send(format!(
                            "CREATE DATABASE IF NOT EXISTS cluster_ready ON CLUSTER {CLUSTER}"
                        ))
                        .err()
                        .map(|e| e.to_string())
                        .unwrap_or_default()
                ),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// True once the ZooKeeper on `port` answers `srvr` (the four-letter
/// command it allows by default) as a server that is up.
async fn serving(port: u16) -> bool {
    tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let mut answer = String::new();
        stream.write_all(b"srvr").is_ok()
            && stream.read_to_string(&mut answer).is_ok()
            && answer.contains("Mode: ")
    })
    .await
    .unwrap()
}

/// Two servers, each a shard of [`CLUSTER`], and their ZooKeeper.
pub struct Cluster {
    /// The shards.
    pub shards: [Server; 2],
    /// Their ZooKeeper.
    pub zookeeper: ZooKeeper,
}

impl Cluster {
    /// Starts a cluster for a test, or `None` (a skip) when ClickHouse or
    /// ZooKeeper is not installed.
    pub async fn start() -> Option<Cluster> {
        let binary = binary()?;
        let jar = zookeeper_jar()?;
        let zookeeper = ZooKeeper::start(&jar).await;
        let ports = [(free_port(), free_port()), (free_port(), free_port())];
        let extra = format!(
            "{}{}",
            cluster_xml(CLUSTER, &[ports[0].1, ports[1].1]),
            zookeeper.xml()
        );
        let first = Server::start_on(&binary, ports[0].0, ports[0].1, &extra).await;
        let second = Server::start_on(&binary, ports[1].0, ports[1].1, &extra).await;
        cluster_ready(&[first.url(), second.url()]).await;
        Some(Cluster {
            shards: [first, second],
            zookeeper,
        })
    }

    /// Settings for the `coral` user on `database`, through the first shard.
    pub fn settings(&self, database: &str) -> Settings {
        Settings {
            cluster: Some(CLUSTER.into()),
            ..self.shards[0].settings(database)
        }
    }
}

/// Prefix of the data directories of shared servers (with the test
/// process id after it).
const SHARED_PREFIX: &str = "coral-test-clickhouse-";

/// A server this test binary shares (see [`shared`]).
pub struct Shared {
    /// Its HTTP URL.
    pub url: String,
    /// A file holding the `coral` user's password.
    pub password_file: PathBuf,
    /// In the cluster run, the cluster the server is a shard of.
    pub cluster: Option<String>,
    /// In the cluster run, the other shard's HTTP URL.
    pub other_shard: Option<String>,
}

impl Shared {
    /// The colony YAML `storage:` section for the `coral` user on `database`.
    pub fn storage_yaml(&self, database: &str) -> String {
        let cluster = match &self.cluster {
            Some(c) => format!("  cluster: {c}\n"),
            None => String::new(),
        };
        format!(
            "storage:\n  engine: clickhouse\n  url: {}\n  database: {database}\n  user: coral\n  password_file: {}\n{cluster}",
            self.url,
            self.password_file.display()
        )
    }

    /// Settings for the `coral` user on `database`.
    pub fn settings(&self, database: &str) -> Settings {
        Settings {
            url: self.url.clone(),
            database: database.to_owned(),
            user: "coral".into(),
            password: PASSWORD.into(),
            cluster: self.cluster.clone(),
        }
    }
}

/// One server for every test of this process that asks, started on first
/// use; `None` (a skip) when no server is installed. It runs until the
/// process exits: a watchdog shell then stops it and removes its data
/// (directories left by a killed watchdog are removed here).
pub fn shared() -> Option<&'static Shared> {
    static SHARED: std::sync::OnceLock<Option<Shared>> = std::sync::OnceLock::new();
    SHARED
        .get_or_init(|| {
            let binary = binary()?;
            remove_stale_shared_dirs();
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::Builder::new()
                .name("clickhouse-server".into())
                .spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let prefix = format!("{SHARED_PREFIX}{}-", std::process::id());
                    let dir = || tempfile::Builder::new().prefix(&prefix).tempdir().unwrap();
                    let ports = [(free_port(), free_port()), (free_port(), free_port())];
                    let (extra, zookeeper) = if CLUSTERED {
                        let jar = zookeeper_jar().expect("ZooKeeper for the cluster run");
                        let zk = runtime.block_on(ZooKeeper::start_in(&jar, dir(), true));
                        let extra = format!(
                            "{}{}",
                            cluster_xml(CLUSTER, &[ports[0].1, ports[1].1]),
                            zk.xml()
                        );
                        (extra, Some(zk))
                    } else {
                        (String::new(), None)
                    };
                    let server =
                        runtime.block_on(Server::start_in(&binary, dir(), ports[0], &extra, true));
                    let other = zookeeper.is_some().then(|| {
                        runtime.block_on(Server::start_in(&binary, dir(), ports[1], &extra, true))
                    });
                    if let Some(other) = &other {
                        runtime.block_on(cluster_ready(&[server.url(), other.url()]));
                    }
                    let password_file = server.dir.path().join("password");
                    std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
                    tx.send(Shared {
                        url: server.url(),
                        password_file,
                        cluster: zookeeper.as_ref().map(|_| CLUSTER.to_owned()),
                        other_shard: other.as_ref().map(Server::url),
                    })
                    .unwrap();
                    let _cluster = (other, zookeeper);
                    // Parked for good: the server lives until the process ends.
                    let _server = server;
                    loop {
                        std::thread::park();
                    }
                })
                .unwrap();
            Some(rx.recv().expect("the shared clickhouse-server started"))
        })
        .as_ref()
}

/// [`shared`] when `wanted`.
pub fn shared_if(wanted: bool) -> Option<&'static Shared> {
    if wanted { shared() } else { None }
}

fn remove_stale_shared_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(SHARED_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Server {
    /// Starts `binary` with `extra` XML inside its config (e.g. a
    /// `remote_servers` block); waits until it answers `/ping`.
    pub async fn start(binary: &Path, extra: &str) -> Server {
        Server::start_on(binary, free_port(), free_port(), extra).await
    }

    /// Starts on the given ports.
    pub async fn start_on(binary: &Path, http_port: u16, tcp_port: u16, extra: &str) -> Server {
        let dir = tempfile::tempdir().unwrap();
        Server::start_in(binary, dir, (http_port, tcp_port), extra, false).await
    }

    /// Starts with its data in `dir`, on the given ports; with
    /// `die_with_parent`, the server is stopped when the test process ends.
    async fn start_in(
        binary: &Path,
        dir: tempfile::TempDir,
        (http_port, tcp_port): (u16, u16),
        extra: &str,
        die_with_parent: bool,
    ) -> Server {
        let d = dir.path().display();
        std::fs::write(
            dir.path().join("config.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{d}/server.log</log><errorlog>{d}/error.log</errorlog></logger>
  <http_port>{http_port}</http_port>
  <tcp_port>{tcp_port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>{d}/data/</path>
  <tmp_path>{d}/data/tmp/</tmp_path>
  <user_files_path>{d}/data/user_files/</user_files_path>
  <format_schema_path>{d}/data/format_schemas/</format_schema_path>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <mlock_executable>false</mlock_executable>
  <query_log><database>system</database><table>query_log</table><flush_interval_milliseconds>100</flush_interval_milliseconds></query_log>
  {extra}
</yandex>
"#
            ),
        )
        .unwrap();
        std::fs::write(
            dir.path().join("users.xml"),
            format!(
                r#"<?xml version="1.0"?>
<yandex>
  <profiles>
    <default><max_memory_usage>2000000000</max_memory_usage><log_queries>1</log_queries></default>
    <readonly><readonly>1</readonly></readonly>
  </profiles>
  <users>
    <default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default>
    <coral><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></coral>
    <reader><password>{PASSWORD}</password><networks><ip>127.0.0.1</ip></networks><profile>readonly</profile><quota>default</quota></reader>
  </users>
  <quotas><default></default></quotas>
</yandex>
"#
            ),
        )
        .unwrap();
        let child = spawn(binary, dir.path(), die_with_parent);
        let mut server = Server {
            child,
            dir,
            die_with_parent,
            binary: binary.to_owned(),
            http_port,
            tcp_port,
        };
        server.wait_ready().await;
        server
    }

    /// Kills the server (SIGKILL); its data stays.
    pub fn kill(&mut self) {
        stop(&mut self.child, self.die_with_parent);
    }

    /// Starts the killed server again on the same ports and data.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.binary, self.dir.path(), self.die_with_parent);
        self.wait_ready().await;
    }

    async fn wait_ready(&mut self) {
        let url = format!("http://127.0.0.1:{}/ping", self.http_port);
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log =
                    std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default();
                let errors =
                    std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default();
                panic!("clickhouse-server exited ({status}):\n{log}\n{errors}");
            }
            let u = url.clone();
            let ok = tokio::task::spawn_blocking(move || {
                ureq::get(&u)
                    .call()
                    .ok()
                    .and_then(|mut r| r.body_mut().read_to_string().ok())
            })
            .await
            .unwrap();
            if ok.as_deref().map(str::trim) == Some("Ok.") {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "clickhouse-server did not answer {url} in 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Its HTTP URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The colony YAML `storage:` section for the `coral` user on
    /// `database`, its password in a file under `dir`.
    pub fn storage_yaml(&self, dir: &Path, database: &str) -> String {
        let password = dir.join("clickhouse-password");
        std::fs::write(&password, format!("{PASSWORD}\n")).unwrap();
        format!(
            "storage:\n  engine: clickhouse\n  url: {}\n  database: {database}\n  user: coral\n  password_file: {}\n",
            self.url(),
            password.display()
        )
    }

    /// Settings for the `coral` user on `database`.
    pub fn settings(&self, database: &str) -> Settings {
        Settings {
            url: self.url(),
            database: database.to_owned(),
            user: "coral".into(),
            password: PASSWORD.into(),
            cluster: None,
        }
    }
}
