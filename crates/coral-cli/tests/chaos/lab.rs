//! Hosts with their own addresses on one machine: a network namespace per
//! host, each with a veth pair into one bridge (the "switch"), which also
//! carries an address in the test's own namespace so the test can reach
//! every host. Faults act on a host's link: cut (the switch port down) or
//! lossy (nftables dropping a share of its packets both ways).
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables); skipped with a message
//! otherwise, unless `CORAL_REQUIRE_ROOT_TESTS=1`, where it fails.

use std::ffi::OsStr;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

static LABS: AtomicU32 = AtomicU32::new(0);

/// One host of a [`Lab`].
pub struct Host {
    pub name: String,
    /// Its network namespace.
    pub ns: String,
    /// Its address on the switch.
    pub ip: String,
    /// Its switch port (the veth end outside the namespace).
    port: String,
}

/// A switch and its hosts, torn down when dropped (after the processes
/// that ran in them: declare the lab before them).
pub struct Lab {
    bridge: String,
    /// The test's own address on the switch.
    pub gateway: String,
    hosts: Vec<Host>,
}

fn sh(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("{program} {}: {e}", args.join(" "));
        });
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn available(program: &str) -> bool {
    Command::new(program)
        .arg("-V")
        .output()
        .is_ok_and(|out| out.status.success())
}

impl Lab {
    /// A switch with one host per name, addressed `10.<n>.<m>.1…` in order.
    /// `None` (with a message) when this machine cannot build one.
    pub fn new(names: &[&str]) -> Option<Lab> {
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0");
        let missing = if !root {
            Some("root")
        } else if !available("ip") {
            Some("ip (iproute2)")
        } else if !available("nft") {
            Some("nft (nftables)")
        } else {
            None
        };
        if let Some(missing) = missing {
            assert!(
                std::env::var("CORAL_REQUIRE_ROOT_TESTS").as_deref() != Ok("1"),
                "the chaos tests need {missing}: network namespaces are their hosts"
            );
            eprintln!("skipped: the chaos tests need {missing}");
            return None;
        }
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        // Interface names have 15 bytes at most: `k<pid hex><lab><host>`.
        let tag = format!("k{:x}{n}", pid & 0xfffff);
        let net = format!("10.{}.{}", 100 + pid % 100, n % 250);
        let bridge = format!("{tag}br");
        let mut lab = Lab {
            bridge: bridge.clone(),
            gateway: format!("{net}.254"),
            hosts: Vec::new(),
        };
        sh("ip", &["link", "add", &bridge, "type", "bridge"]);
        sh("ip", &["link", "set", &bridge, "up"]);
        sh(
            "ip",
            &[
                "addr",
                "add",
                &format!("{}/24", lab.gateway),
                "dev",
                &bridge,
            ],
        );
        for (i, name) in names.iter().enumerate() {
            let ns = format!("{tag}-{name}");
            let port = format!("{tag}p{i}");
            let peer = format!("{tag}q{i}");
            let ip = format!("{net}.{}", i + 1);
            sh("ip", &["netns", "add", &ns]);
            lab.hosts.push(Host {
                name: (*name).to_owned(),
                ns: ns.clone(),
                ip: ip.clone(),
                port: port.clone(),
            });
            sh(
                "ip",
                &["link", "add", &port, "type", "veth", "peer", "name", &peer],
            );
            sh("ip", &["link", "set", &peer, "netns", &ns]);
            sh("ip", &["-n", &ns, "link", "set", &peer, "name", "eth0"]);
            sh(
                "ip",
                &["-n", &ns, "addr", "add", &format!("{ip}/24"), "dev", "eth0"],
            );
            sh("ip", &["-n", &ns, "link", "set", "eth0", "up"]);
            sh("ip", &["-n", &ns, "link", "set", "lo", "up"]);
            sh("ip", &["link", "set", &port, "master", &bridge]);
            sh("ip", &["link", "set", &port, "up"]);
        }
        Some(lab)
    }

    pub fn host(&self, name: &str) -> &Host {
        self.hosts
            .iter()
            .find(|h| h.name == name)
            .unwrap_or_else(|| panic!("no host {name} in the lab"))
    }
}

impl Host {
    /// `program` run inside this host's namespace (`ip netns exec`, which
    /// execs it: the child's pid is the program's).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.ns]).arg(program);
        cmd
    }

    /// `cmd` (its program, arguments and environment) run inside this host.
    pub fn wrap(&self, cmd: &Command) -> Command {
        let mut inner = self.command(cmd.get_program());
        inner.args(cmd.get_args());
        for (key, value) in cmd.get_envs() {
            match value {
                Some(value) => inner.env(key, value),
                None => inner.env_remove(key),
            };
        }
        inner
    }

    /// Cuts the host off the switch: its packets go nowhere, its
    /// connections hang, as when a cable or a route goes.
    pub fn cut(&self) {
        sh("ip", &["link", "set", &self.port, "down"]);
    }

    /// Puts the host back on the switch.
    pub fn restore(&self) {
        sh("ip", &["link", "set", &self.port, "up"]);
    }

    /// Drops `percent` % of the host's packets on its link, each way.
    pub fn lossy(&self, percent: u32) {
        let nft = |args: &[&str]| {
            let mut all = vec!["netns", "exec", &self.ns, "nft"];
            all.extend_from_slice(args);
            sh("ip", &all);
        };
        nft(&["add", "table", "inet", "chaos"]);
        for (chain, hook, dir) in [("in", "input", "iifname"), ("out", "output", "oifname")] {
            nft(&[
                "add",
                "chain",
                "inet",
                "chaos",
                chain,
                &format!("{{ type filter hook {hook} priority 0; }}"),
            ]);
            nft(&[
                "add",
                "rule",
                "inet",
                "chaos",
                chain,
                dir,
                "eth0",
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                &percent.to_string(),
                "drop",
            ]);
        }
    }

    /// Ends [`Host::lossy`].
    pub fn lossless(&self) {
        sh(
            "ip",
            &[
                "netns", "exec", &self.ns, "nft", "delete", "table", "inet", "chaos",
            ],
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for host in &self.hosts {
            // Whatever still runs in the namespace goes with it.
            if let Ok(out) = Command::new("ip")
                .args(["netns", "pids", &host.ns])
                .output()
            {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    let _ = Command::new("kill").args(["-KILL", pid]).status();
                }
            }
            let _ = Command::new("ip").args(["netns", "del", &host.ns]).status();
            // Usually gone with its namespace already.
            let _ = Command::new("ip")
                .args(["link", "del", &host.port])
                .stderr(std::process::Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.bridge])
            .status();
    }
}
