//! `coral beyla install` against fabricated release tarballs whose `beyla` is
//! a shell script.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use coral_beyla::install::{InstallError, asset_arch, install};
use flate2::Compression;
use flate2::write::GzEncoder;

const GOOD_BEYLA: &str = "#!/bin/sh\necho \"Beyla version: v2.7.8 (revision abc123)\"\n";

enum Entry<'a> {
    File(&'a str, &'a [u8]),
    /// A name written raw into the header, bypassing the tar crate's checks.
    RawName(&'a str, &'a [u8]),
    Symlink(&'a str, &'a str),
}

fn host_arch() -> &'static str {
    asset_arch().expect("tests run on linux amd64 or arm64")
}

fn other_arch() -> &'static str {
    if host_arch() == "amd64" {
        "arm64"
    } else {
        "amd64"
    }
}

fn tarball(dir: &Path, name: &str, entries: &[Entry]) -> PathBuf {
    let path = dir.join(name);
    let gz = GzEncoder::new(std::fs::File::create(&path).unwrap(), Compression::fast());
    let mut tar = tar::Builder::new(gz);
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o755);
        match entry {
            Entry::File(name, data) => {
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, name, *data).unwrap();
            }
            Entry::RawName(name, data) => {
                header.set_size(data.len() as u64);
                header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
                header.set_cksum();
                tar.append(&header, *data).unwrap();
            }
            Entry::Symlink(name, target) => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_size(0);
                tar.append_link(&mut header, name, target).unwrap();
            }
        }
    }
    tar.into_inner().unwrap().finish().unwrap();
    path
}

fn release_name(arch: &str) -> String {
    format!("beyla-linux-{arch}-v2.7.8.tar.gz")
}

fn bin_files(home: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(home.join("bin"))
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[tokio::test]
async fn installs_an_official_release() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("coral-home");
    let ball = tarball(
        dir.path(),
        &release_name(host_arch()),
        &[
            Entry::File("./beyla", GOOD_BEYLA.as_bytes()),
            Entry::File("./LICENSE", b"Apache License 2.0"),
            Entry::File("./NOTICE", b"Grafana Labs"),
            Entry::File("./README.md", b"not copied"),
        ],
    );
    let path = install(&ball, &home).unwrap();
    assert_eq!(path, home.join("bin/beyla"));
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o755);
    assert_eq!(
        coral_beyla::locate::version(&path).await.as_deref(),
        Some("v2.7.8")
    );
    assert_eq!(
        std::fs::read_to_string(home.join("bin/beyla.LICENSE")).unwrap(),
        "Apache License 2.0"
    );
    assert_eq!(bin_files(&home), ["beyla", "beyla.LICENSE", "beyla.NOTICE"]);

    // Upgrading replaces it.
    let newer = GOOD_BEYLA.replace("v2.7.8", "v3.1.0");
    let ball = tarball(
        dir.path(),
        &format!("beyla-linux-{}-v3.1.0.tar.gz", host_arch()),
        &[Entry::File("beyla", newer.as_bytes())],
    );
    install(&ball, &home).unwrap();
    assert_eq!(
        coral_beyla::locate::version(&path).await.as_deref(),
        Some("v3.1.0")
    );
}

#[test]
fn a_binary_that_does_not_run_replaces_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let good = tarball(
        dir.path(),
        &release_name(host_arch()),
        &[Entry::File("beyla", GOOD_BEYLA.as_bytes())],
    );
    install(&good, &home).unwrap();

    let bad_dir = dir.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    let bad = tarball(
        &bad_dir,
        &release_name(host_arch()),
        &[
            Entry::File(
                "beyla",
                b"#!/bin/sh\necho 'exec format error' >&2\nexit 1\n",
            ),
            Entry::File("LICENSE", b"other"),
        ],
    );
    let err = install(&bad, &home).unwrap_err();
    assert!(matches!(err, InstallError::DoesNotRun { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("Nothing was installed") && text.contains("--version"),
        "{text}"
    );
    assert_eq!(
        std::fs::read_to_string(home.join("bin/beyla")).unwrap(),
        GOOD_BEYLA
    );
    assert_eq!(bin_files(&home), ["beyla"], "temporary files left behind");
}

#[test]
fn names_and_architectures_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let other = release_name(other_arch());
    let err = install(&dir.path().join(&other), &home).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, InstallError::WrongArch { .. }), "{text}");
    assert!(text.contains(std::env::consts::ARCH), "{text}");
    assert!(text.contains(&release_name(host_arch())), "{text}");

    let err = install(&dir.path().join("beyla-darwin-arm64-v2.7.8.tar.gz"), &home).unwrap_err();
    assert!(matches!(err, InstallError::WrongOs { .. }), "{err}");
    for name in [
        "beyla.tar.gz",
        "beyla-linux-amd64.tar.gz",
        "grafana-linux-amd64-v1.0.tar.gz",
        "beyla-linux-amd64-v1.zip",
    ] {
        let err = install(&dir.path().join(name), &home).unwrap_err();
        assert!(matches!(err, InstallError::BadName { .. }), "{name}: {err}");
        assert!(
            err.to_string()
                .contains("beyla-linux-<amd64|arm64>-<tag>.tar.gz")
        );
    }
    assert!(!home.exists(), "nothing may be created for a rejected name");
}

#[test]
fn unsafe_archives_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let cases: [(&str, Vec<Entry>, &str); 4] = [
        (
            "traversal",
            vec![
                Entry::File("beyla", GOOD_BEYLA.as_bytes()),
                Entry::RawName("../evil", b"x"),
            ],
            "climbs out",
        ),
        (
            "absolute",
            vec![Entry::RawName("/tmp/beyla", GOOD_BEYLA.as_bytes())],
            "absolute",
        ),
        ("symlink", vec![Entry::Symlink("beyla", "/bin/sh")], "link"),
        (
            "twice",
            vec![
                Entry::File("beyla", GOOD_BEYLA.as_bytes()),
                Entry::File("./beyla", GOOD_BEYLA.as_bytes()),
            ],
            "twice",
        ),
    ];
    for (case, entries, needle) in cases {
        let sub = dir.path().join(case);
        std::fs::create_dir(&sub).unwrap();
        let ball = tarball(&sub, &release_name(host_arch()), &entries);
        let err = install(&ball, &home).unwrap_err();
        assert!(
            matches!(err, InstallError::UnsafeEntry { .. }),
            "{case}: {err}"
        );
        assert!(err.to_string().contains(needle), "{case}: {err}");
    }
    assert!(!dir.path().join("evil").exists());
    assert!(bin_files(&home).is_empty());
}

#[test]
fn missing_binary_and_damaged_archives() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let ball = tarball(
        dir.path(),
        &release_name(host_arch()),
        &[Entry::File("LICENSE", b"x"), Entry::File("sub/beyla", b"x")],
    );
    let err = install(&ball, &home).unwrap_err();
    assert!(matches!(err, InstallError::NoBinary { .. }), "{err}");

    std::fs::write(&ball, b"this is not gzip").unwrap();
    let err = install(&ball, &home).unwrap_err();
    assert!(matches!(err, InstallError::Read { .. }), "{err}");
    assert!(err.to_string().contains("download it again"), "{err}");

    let err = install(
        &dir.path().join("sub").join(release_name(host_arch())),
        &home,
    )
    .unwrap_err();
    assert!(matches!(err, InstallError::Read { .. }), "{err}");
}

/// Released Beyla has no version flag: it logs a banner and rejects the flag.
#[test]
fn a_release_without_a_version_flag_is_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let real_like = r#"#!/bin/sh
echo 'time=2025-03-19T10:00:00.000Z level=INFO msg="Grafana Beyla" Version=v2.7.8 Revision=5a3c0f1'
echo "flag provided but not defined: ${1#-}" >&2
exit 2
"#;
    let ball = tarball(
        dir.path(),
        &release_name(host_arch()),
        &[Entry::File("beyla", real_like.as_bytes())],
    );
    install(&ball, &home).unwrap();

    // A binary that crashes is refused, whatever it printed.
    let crash = "#!/bin/sh\necho 'Beyla version v2.7.8'\nkill -SEGV $$\n";
    let sub = dir.path().join("crash");
    std::fs::create_dir(&sub).unwrap();
    let ball = tarball(
        &sub,
        &release_name(host_arch()),
        &[Entry::File("beyla", crash.as_bytes())],
    );
    let err = install(&ball, &home).unwrap_err();
    assert!(err.to_string().contains("signal"), "{err}");
    assert_eq!(
        std::fs::read_to_string(home.join("bin/beyla")).unwrap(),
        real_like
    );
}
