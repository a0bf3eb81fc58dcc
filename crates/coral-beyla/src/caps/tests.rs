//! The capability matrix over a table of readings.

use super::*;

const ROOT: u64 = 0x1ff_ffff_ffff;
const fn bits(caps: &[u32]) -> u64 {
    let mut m = 0;
    let mut i = 0;
    while i < caps.len() {
        m |= 1u64 << caps[i];
        i += 1;
    }
    m
}
const SPLIT: u64 = bits(&[CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE, CAP_NET_ADMIN]);

fn all() -> Vec<String> {
    ["http", "grpc", "sql", "kafka", "redis"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

struct Case {
    name: &'static str,
    kernel: &'static str,
    btf: bool,
    caps: u64,
    protocols: &'static [&'static str],
    mode: Mode,
    tracing: bool,
    summary: &'static str,
    reason_has: &'static [&'static str],
}

#[test]
fn the_matrix() {
    let cases = [
        Case {
            name: "modern kernel as root",
            kernel: "6.1.0-18-amd64",
            btf: true,
            caps: ROOT,
            protocols: &["http", "grpc", "sql", "kafka", "redis"],
            mode: Mode::Full,
            tracing: true,
            summary: "Beyla full (kernel 6.1)",
            reason_has: &[],
        },
        Case {
            name: "5.8 with CAP_BPF and CAP_PERFMON instead of CAP_SYS_ADMIN",
            kernel: "5.8.0",
            btf: true,
            caps: SPLIT,
            protocols: &["http", "grpc", "sql", "kafka", "redis"],
            mode: Mode::Full,
            tracing: true,
            summary: "Beyla full (kernel 5.8)",
            reason_has: &[],
        },
        Case {
            name: "5.4 is HTTP and gRPC only",
            kernel: "5.4.0-169-generic",
            btf: true,
            caps: ROOT,
            protocols: &["http", "grpc"],
            mode: Mode::Limited,
            tracing: true,
            summary: "Beyla limited (kernel 5.4): HTTP and gRPC only",
            reason_has: &["older than 5.8"],
        },
        Case {
            name: "RHEL 8 (4.18) is HTTP and gRPC only",
            kernel: "4.18.0-348.el8.x86_64",
            btf: true,
            caps: ROOT,
            protocols: &["http", "grpc"],
            mode: Mode::Limited,
            tracing: true,
            summary: "Beyla limited (kernel 4.18): HTTP and gRPC only",
            reason_has: &["older than 5.8"],
        },
        Case {
            name: "4.15 is HTTP metrics only",
            kernel: "4.15.0-213-generic",
            btf: true,
            caps: ROOT,
            protocols: &["http"],
            mode: Mode::Limited,
            tracing: false,
            summary: "Beyla limited (kernel 4.15), HTTP metrics only",
            reason_has: &["older than 4.18", "no tracing"],
        },
        Case {
            name: "4.9 is unsupported",
            kernel: "4.9.0-8-amd64",
            btf: false,
            caps: ROOT,
            protocols: &[],
            mode: Mode::Disabled,
            tracing: false,
            summary: "Beyla disabled (kernel 4.9): needs kernel 4.14 or newer; OTLP only",
            reason_has: &["older than 4.14", "OTLP"],
        },
        Case {
            name: "no eBPF capabilities at all",
            kernel: "6.8.0",
            btf: true,
            caps: 0,
            protocols: &[],
            mode: Mode::Disabled,
            tracing: false,
            summary: "Beyla disabled: missing CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)",
            reason_has: &[
                "AmbientCapabilities=CAP_BPF CAP_PERFMON CAP_SYS_PTRACE",
                "setcap cap_bpf,cap_perfmon,cap_sys_ptrace,cap_net_admin,cap_dac_read_search+ep",
                "root",
            ],
        },
        Case {
            name: "CAP_BPF without CAP_PERFMON",
            kernel: "6.8.0",
            btf: true,
            caps: bits(&[CAP_BPF, CAP_SYS_PTRACE]),
            protocols: &[],
            mode: Mode::Disabled,
            tracing: false,
            summary: "Beyla disabled: missing CAP_PERFMON (or CAP_SYS_ADMIN)",
            reason_has: &["CAP_PERFMON"],
        },
        Case {
            name: "kernel 5.4 needs CAP_SYS_ADMIN",
            kernel: "5.4.0",
            btf: true,
            caps: SPLIT,
            protocols: &[],
            mode: Mode::Disabled,
            tracing: false,
            summary: "Beyla disabled: missing CAP_SYS_ADMIN (kernel 5.4)",
            reason_has: &[
                "only from 5.8",
                "AmbientCapabilities=CAP_SYS_ADMIN CAP_SYS_PTRACE",
            ],
        },
        Case {
            name: "no CAP_SYS_PTRACE is limited reach",
            kernel: "6.8.0",
            btf: true,
            caps: bits(&[CAP_BPF, CAP_PERFMON]),
            protocols: &["http", "grpc", "sql", "kafka", "redis"],
            mode: Mode::Limited,
            tracing: true,
            summary: "Beyla limited (kernel 6.8); missing CAP_SYS_PTRACE",
            reason_has: &["own user", "AmbientCapabilities="],
        },
        Case {
            name: "no BTF is limited with a reason",
            kernel: "5.10.0",
            btf: false,
            caps: ROOT,
            protocols: &["http", "grpc", "sql", "kafka", "redis"],
            mode: Mode::Limited,
            tracing: true,
            summary: "Beyla limited (kernel 5.10); no BTF",
            reason_has: &["CONFIG_DEBUG_INFO_BTF"],
        },
        Case {
            name: "old kernel and no BTF: both reasons",
            kernel: "5.4.0",
            btf: false,
            caps: ROOT,
            protocols: &["http", "grpc"],
            mode: Mode::Limited,
            tracing: true,
            summary: "Beyla limited (kernel 5.4): HTTP and gRPC only; no BTF",
            reason_has: &["older than 5.8", "BTF"],
        },
        Case {
            name: "garbage kernel release",
            kernel: "unknown",
            btf: true,
            caps: ROOT,
            protocols: &[],
            mode: Mode::Disabled,
            tracing: false,
            summary: "Beyla disabled: unknown kernel version",
            reason_has: &["\"unknown\""],
        },
    ];
    for c in cases {
        let host = HostReadings::new(c.kernel, c.btf, c.caps);
        let a = assess(&host, &all());
        assert_eq!(a.mode, c.mode, "{}: {a:?}", c.name);
        assert_eq!(a.protocols, c.protocols, "{}", c.name);
        assert_eq!(a.tracing, c.tracing, "{}", c.name);
        assert_eq!(a.summary, c.summary, "{}", c.name);
        assert_eq!(
            a.reason.is_empty(),
            c.mode == Mode::Full,
            "{}: {}",
            c.name,
            a.reason
        );
        for needle in c.reason_has {
            assert!(
                a.reason.contains(needle),
                "{}: {:?} lacks {needle:?}",
                c.name,
                a.reason
            );
        }
    }
}

#[test]
fn only_enabled_protocols_are_kept() {
    let host = HostReadings::new("5.4.0", true, ROOT);
    let a = assess(&host, &["GRPC".to_owned(), "sql".to_owned()]);
    assert_eq!(a.mode, Mode::Limited);
    assert_eq!(a.protocols, ["grpc"]);

    let a = assess(&host, &["sql".to_owned()]);
    assert_eq!(a.mode, Mode::Disabled);
    assert!(a.reason.contains("enabled: sql"), "{}", a.reason);
    assert!(a.reason.contains("older than 5.8"), "{}", a.reason);

    let a = assess(&HostReadings::new("6.1", true, ROOT), &[]);
    assert_eq!(a.mode, Mode::Disabled);
    assert!(a.reason.contains("enabled: none"), "{}", a.reason);
}

#[test]
fn capabilities_are_reported_in_a_fixed_order() {
    let a = assess(&HostReadings::new("6.1", true, ROOT), &all());
    assert_eq!(
        a.capabilities,
        [
            "CAP_BPF",
            "CAP_PERFMON",
            "CAP_SYS_ADMIN",
            "CAP_NET_ADMIN",
            "CAP_SYS_PTRACE"
        ]
    );
    let a = assess(
        &HostReadings::new("6.1", true, bits(&[CAP_NET_ADMIN])),
        &all(),
    );
    assert_eq!(a.capabilities, ["CAP_NET_ADMIN"]);
}

#[test]
fn readings_parse() {
    assert_eq!(parse_kernel("5.15.0-91-generic"), Some((5, 15)));
    assert_eq!(parse_kernel("4.18.0-348.el8.x86_64"), Some((4, 18)));
    assert_eq!(parse_kernel("6.1"), Some((6, 1)));
    assert_eq!(parse_kernel("6"), None);
    assert_eq!(parse_kernel(""), None);
    let status = "Name:\tcat\nCapInh:\t0000000000000000\nCapEff:\t000001ffffffffff\n";
    assert_eq!(parse_cap_eff(status), Some(0x1ff_ffff_ffff));
    assert_eq!(parse_cap_eff("Name: x\n"), None);
}

#[test]
fn readings_come_from_proc_and_sys() {
    let root = tempfile::tempdir().unwrap();
    let p = root.path();
    std::fs::create_dir_all(p.join("proc/sys/kernel")).unwrap();
    std::fs::create_dir_all(p.join("proc/self")).unwrap();
    std::fs::write(p.join("proc/sys/kernel/osrelease"), "5.10.0-28-amd64\n").unwrap();
    std::fs::write(p.join("proc/self/status"), "CapEff:\t00000000a80425fb\n").unwrap();
    let r = HostReadings::read_from(p).unwrap();
    assert_eq!(r, HostReadings::new("5.10.0-28-amd64", false, 0xa804_25fb));
    assert!(
        !r.has(CAP_SYS_ADMIN),
        "Docker's default set has no CAP_SYS_ADMIN"
    );

    std::fs::create_dir_all(p.join("sys/kernel/btf")).unwrap();
    std::fs::write(p.join("sys/kernel/btf/vmlinux"), b"").unwrap();
    assert!(HostReadings::read_from(p).unwrap().btf);

    std::fs::write(p.join("proc/self/status"), "Name:\tx\n").unwrap();
    let err = HostReadings::read_from(p).unwrap_err().to_string();
    assert!(err.contains("CapEff"), "{err}");

    let empty = tempfile::tempdir().unwrap();
    let err = HostReadings::read_from(empty.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("osrelease") && err.contains("procfs"), "{err}");
}

#[cfg(target_os = "linux")]
#[test]
fn this_host_can_be_read() {
    let r = HostReadings::read().unwrap();
    assert!(parse_kernel(&r.kernel_release).is_some(), "{r:?}");
}
