//! What this host lets Beyla do: kernel version, BTF and capabilities, and
//! the mode they allow.
//!
//! [`HostReadings::read`] takes three readings: the kernel release
//! (`/proc/sys/kernel/osrelease`), whether BTF is available
//! (`/sys/kernel/btf/vmlinux` exists) and the effective capability set
//! (`CapEff` in `/proc/self/status`). [`assess`] is a pure function from those
//! readings and the enabled protocols to an [`Assessment`], which is what the
//! agent reports in `BeylaCapabilities`.
//!
//! # The matrix
//!
//! | Kernel      | Mode     | Protocols            | Tracing |
//! |-------------|----------|----------------------|---------|
//! | ≥ 5.8       | full     | all enabled          | yes     |
//! | 4.18 – 5.7  | limited  | HTTP and gRPC        | yes     |
//! | 4.14 – 4.17 | limited  | HTTP                 | no      |
//! | < 4.14      | disabled | none (OTLP only)     | no      |
//!
//! Only enabled protocols are kept; when none of them is allowed, Beyla is
//! disabled (there would be nothing for it to do).
//!
//! # Capabilities
//!
//! Loading eBPF programs needs `CAP_SYS_ADMIN`, or, on kernels ≥ 5.8 which
//! split it, `CAP_BPF` **and** `CAP_PERFMON`. Without them Beyla is disabled
//! and the reason says how to grant them. The set checked is the agent's own
//! effective set: Beyla is the agent's child, and inherits these capabilities
//! when the agent runs as root or holds them as *ambient* capabilities
//! (systemd `AmbientCapabilities=`). A file capability (`setcap`) on the agent
//! binary alone is not inherited by Beyla, so the advice names both binaries.
//!
//! Two softer conditions make the mode `limited` without removing protocols,
//! and the reason says why:
//!
//! - no `CAP_SYS_PTRACE`: Beyla cannot inspect processes of other users, so it
//!   instruments only the agent's own user's processes;
//! - no BTF: Beyla's CO-RE programs need kernel type information; Beyla may
//!   fail to load them (the supervisor then reports the exit). Kernels with
//!   vendor backports (RHEL 8) usually ship BTF.
//!
//! `CAP_NET_ADMIN` only matters for network metrics and TC-based context
//! propagation; its absence is reported in the capability list, not in the mode.

use std::fmt;
use std::path::Path;

/// `CAP_NET_ADMIN`'s bit number.
pub const CAP_NET_ADMIN: u32 = 12;
/// `CAP_SYS_PTRACE`'s bit number.
pub const CAP_SYS_PTRACE: u32 = 19;
/// `CAP_SYS_ADMIN`'s bit number.
pub const CAP_SYS_ADMIN: u32 = 21;
/// `CAP_PERFMON`'s bit number (kernel ≥ 5.8).
pub const CAP_PERFMON: u32 = 38;
/// `CAP_BPF`'s bit number (kernel ≥ 5.8).
pub const CAP_BPF: u32 = 39;

/// The capabilities reported, in report order.
const REPORTED: [(u32, &str); 5] = [
    (CAP_BPF, "CAP_BPF"),
    (CAP_PERFMON, "CAP_PERFMON"),
    (CAP_SYS_ADMIN, "CAP_SYS_ADMIN"),
    (CAP_NET_ADMIN, "CAP_NET_ADMIN"),
    (CAP_SYS_PTRACE, "CAP_SYS_PTRACE"),
];

/// Capabilities to grant for eBPF on kernels ≥ 5.8 (no `CAP_SYS_ADMIN` needed).
const SPLIT_GRANT: [&str; 5] = [
    "CAP_BPF",
    "CAP_PERFMON",
    "CAP_SYS_PTRACE",
    "CAP_NET_ADMIN",
    "CAP_DAC_READ_SEARCH",
];
/// Capabilities to grant on kernels before 5.8.
const ADMIN_GRANT: [&str; 4] = [
    "CAP_SYS_ADMIN",
    "CAP_SYS_PTRACE",
    "CAP_NET_ADMIN",
    "CAP_DAC_READ_SEARCH",
];

/// How to give the agent, and Beyla after it, these capabilities.
fn grant_advice(caps: &[&str]) -> String {
    let setcap: Vec<String> = caps.iter().map(|c| c.to_ascii_lowercase()).collect();
    format!(
        "run the agent as root, or as a systemd service with `AmbientCapabilities={}`, or \
         `sudo setcap {}+ep` on both the coral binary and the beyla binary",
        caps.join(" "),
        setcap.join(",")
    )
}

/// The raw readings [`assess`] works from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostReadings {
    /// The kernel release, e.g. `5.15.0-91-generic`.
    pub kernel_release: String,
    /// Whether kernel BTF is available (`/sys/kernel/btf/vmlinux`).
    pub btf: bool,
    /// The effective capability set (`CapEff`), one bit per capability.
    pub cap_eff: u64,
}

/// A reading of the host failed.
#[derive(Debug, thiserror::Error)]
pub enum CapsError {
    /// A file under `/proc` could not be read.
    #[error("cannot read {path} ({source}); is /proc mounted? Beyla needs Linux with procfs")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `/proc/self/status` has no parseable `CapEff` line.
    #[error("{path} has no readable CapEff line; cannot tell which capabilities the agent holds")]
    NoCapEff {
        /// The file.
        path: String,
    },
}

impl HostReadings {
    /// Readings given directly (tests, or a caller that measured elsewhere).
    pub fn new(kernel_release: impl Into<String>, btf: bool, cap_eff: u64) -> Self {
        HostReadings {
            kernel_release: kernel_release.into(),
            btf,
            cap_eff,
        }
    }

    /// Reads this host.
    pub fn read() -> Result<Self, CapsError> {
        Self::read_from(Path::new("/"))
    }

    /// Reads a host whose filesystem root is `root` (`/` in production; a
    /// directory laid out like `/proc` and `/sys` in tests).
    pub fn read_from(root: &Path) -> Result<Self, CapsError> {
        let read = |rel: &str| {
            let path = root.join(rel);
            std::fs::read_to_string(&path).map_err(|source| CapsError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let kernel_release = read("proc/sys/kernel/osrelease")?.trim().to_owned();
        let status = read("proc/self/status")?;
        let cap_eff = parse_cap_eff(&status).ok_or_else(|| CapsError::NoCapEff {
            path: root.join("proc/self/status").display().to_string(),
        })?;
        let btf = root.join("sys/kernel/btf/vmlinux").exists();
        Ok(HostReadings {
            kernel_release,
            btf,
            cap_eff,
        })
    }

    /// Whether capability bit `cap` is in the effective set.
    pub fn has(&self, cap: u32) -> bool {
        cap < 64 && self.cap_eff & (1u64 << cap) != 0
    }
}

/// The `CapEff:` value of a `/proc/<pid>/status` text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
}

/// `(major, minor)` of a kernel release such as `4.18.0-348.el8.x86_64`.
pub fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.trim().split(|c: char| !c.is_ascii_digit());
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

/// What Beyla may do on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Everything enabled is available.
    Full,
    /// Beyla runs, with fewer protocols or reach; see the reason.
    Limited,
    /// Beyla does not run; the agent keeps OTLP ingestion only.
    Disabled,
}

impl Mode {
    /// `"full"`, `"limited"` or `"disabled"`, as in `BeylaCapabilities.mode`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Full => "full",
            Mode::Limited => "limited",
            Mode::Disabled => "disabled",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of [`assess`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    /// Full, limited or disabled.
    pub mode: Mode,
    /// The enabled protocols Beyla may instrument (lower case), in input order.
    pub protocols: Vec<String>,
    /// Whether Beyla may produce traces.
    pub tracing: bool,
    /// Why the mode is not full (empty when it is), with what to do about it.
    pub reason: String,
    /// One line for humans, e.g. `Beyla limited (kernel 5.4): HTTP and gRPC only`.
    pub summary: String,
    /// The eBPF-relevant capabilities held, e.g. `CAP_BPF`, in a fixed order.
    pub capabilities: Vec<String>,
}

/// Which protocols a kernel allows.
enum KernelTier {
    /// ≥ 5.8.
    Full,
    /// 4.18 – 5.7.
    HttpGrpc,
    /// 4.14 – 4.17.
    HttpOnly,
    /// < 4.14.
    Unsupported,
}

fn tier(version: (u32, u32)) -> KernelTier {
    match version {
        v if v >= (5, 8) => KernelTier::Full,
        v if v >= (4, 18) => KernelTier::HttpGrpc,
        v if v >= (4, 14) => KernelTier::HttpOnly,
        _ => KernelTier::Unsupported,
    }
}

/// Applies the matrix in the module docs to `host` and the protocols enabled
/// in the agent's configuration (the effective list, after defaults).
pub fn assess(host: &HostReadings, enabled_protocols: &[String]) -> Assessment {
    let capabilities: Vec<String> = REPORTED
        .iter()
        .filter(|(bit, _)| host.has(*bit))
        .map(|(_, name)| (*name).to_owned())
        .collect();
    let disabled = |reason: String, summary: String| Assessment {
        mode: Mode::Disabled,
        protocols: Vec::new(),
        tracing: false,
        reason,
        summary,
        capabilities: capabilities.clone(),
    };

    let Some(version) = parse_kernel(&host.kernel_release) else {
        return disabled(
            format!(
                "cannot parse the kernel release {:?}; Beyla needs Linux 4.14 or newer",
                host.kernel_release
            ),
            "Beyla disabled: unknown kernel version".to_owned(),
        );
    };
    let kernel = format!("{}.{}", version.0, version.1);
    let tier = tier(version);
    if let KernelTier::Unsupported = tier {
        return disabled(
            format!(
                "kernel {kernel} is older than 4.14, the oldest Beyla supports; only OTLP ingestion \
                 is available. Upgrade the kernel to 5.8 or newer for full support"
            ),
            format!("Beyla disabled (kernel {kernel}): needs kernel 4.14 or newer; OTLP only"),
        );
    }

    // Capabilities: CAP_SYS_ADMIN always works; CAP_BPF + CAP_PERFMON only
    // exist from 5.8 on.
    if !host.has(CAP_SYS_ADMIN) {
        let split_caps = matches!(tier, KernelTier::Full);
        if !split_caps {
            return disabled(
                format!(
                    "missing CAP_SYS_ADMIN, which kernel {kernel} needs to load eBPF programs \
                     (CAP_BPF and CAP_PERFMON exist only from 5.8); {}",
                    grant_advice(&ADMIN_GRANT)
                ),
                format!("Beyla disabled: missing CAP_SYS_ADMIN (kernel {kernel})"),
            );
        }
        let missing: Vec<&str> = [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
            .iter()
            .filter(|(bit, _)| !host.has(*bit))
            .map(|(_, name)| *name)
            .collect();
        if !missing.is_empty() {
            let missing = missing.join(" and ");
            return disabled(
                format!(
                    "missing {missing} (or CAP_SYS_ADMIN), needed to load eBPF programs; {}",
                    grant_advice(&SPLIT_GRANT)
                ),
                format!("Beyla disabled: missing {missing} (or CAP_SYS_ADMIN)"),
            );
        }
    }

    // Protocols the kernel allows, intersected with the enabled ones.
    let allowed = |p: &str| match tier {
        KernelTier::Full => true,
        KernelTier::HttpGrpc => p == "http" || p == "grpc",
        KernelTier::HttpOnly => p == "http",
        KernelTier::Unsupported => false,
    };
    let enabled: Vec<String> = enabled_protocols
        .iter()
        .map(|p| p.trim().to_ascii_lowercase())
        .collect();
    let protocols: Vec<String> = enabled.iter().filter(|p| allowed(p)).cloned().collect();
    let (kernel_reason, kernel_summary) = match tier {
        KernelTier::Full => (None, None),
        KernelTier::HttpGrpc => (
            Some(format!(
                "kernel {kernel} is older than 5.8: only HTTP and gRPC are instrumented; upgrade \
                 to 5.8 or newer for every protocol"
            )),
            Some(format!(
                "Beyla limited (kernel {kernel}): HTTP and gRPC only"
            )),
        ),
        KernelTier::HttpOnly | KernelTier::Unsupported => (
            Some(format!(
                "kernel {kernel} is older than 4.18: only HTTP metrics, no tracing; upgrade to \
                 5.8 or newer for every protocol and traces"
            )),
            Some(format!(
                "Beyla limited (kernel {kernel}), HTTP metrics only"
            )),
        ),
    };
    if protocols.is_empty() {
        let enabled_list = if enabled.is_empty() {
            "none".to_owned()
        } else {
            enabled.join(", ")
        };
        return disabled(
            format!(
                "no enabled protocol can be instrumented (enabled: {enabled_list}){}",
                kernel_reason.map(|r| format!("; {r}")).unwrap_or_default()
            ),
            format!("Beyla disabled (kernel {kernel}): none of the enabled protocols is available"),
        );
    }

    let mut reasons: Vec<String> = kernel_reason.into_iter().collect();
    let mut notes: Vec<&str> = Vec::new();
    if !host.has(CAP_SYS_PTRACE) {
        reasons.push(format!(
            "missing CAP_SYS_PTRACE: Beyla can only inspect and instrument processes of the \
             agent's own user; {}",
            grant_advice(&["CAP_SYS_PTRACE"])
        ));
        notes.push("missing CAP_SYS_PTRACE");
    }
    if !host.btf {
        reasons.push(
            "no kernel BTF (/sys/kernel/btf/vmlinux is missing): Beyla's programs may fail to \
             load; use a kernel built with CONFIG_DEBUG_INFO_BTF=y"
                .to_owned(),
        );
        notes.push("no BTF");
    }
    let mode = if reasons.is_empty() {
        Mode::Full
    } else {
        Mode::Limited
    };
    let mut summary = match (mode, kernel_summary) {
        (Mode::Full, _) => format!("Beyla full (kernel {kernel})"),
        (_, Some(s)) => s,
        (_, None) => format!("Beyla limited (kernel {kernel})"),
    };
    if !notes.is_empty() {
        summary.push_str(&format!("; {}", notes.join(", ")));
    }
    Assessment {
        mode,
        protocols,
        tracing: !matches!(tier, KernelTier::HttpOnly),
        reason: reasons.join("; "),
        summary,
        capabilities,
    }
}

#[cfg(test)]
mod tests;
